//! `mist_media::remux` end to end on arbitrary bytes: the first byte picks the input container (low
//! 2 bits) and the output container (next 3 bits); the rest is the input file. Every pair must
//! finish or fail with an error, never panic, and what it writes stays in memory.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mist_media::remux::{remux, Input, Output};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, file)) = data.split_first() else { return };
    let i = [Input::Ts, Input::Flv, Input::Mp4, Input::Mkv][(sel & 3) as usize];
    let o = [Output::Ts, Output::Flv, Output::Mp4, Output::Fmp4, Output::Mkv, Output::Webm, Output::Fmp4, Output::Ts]
        [(sel >> 2 & 7) as usize];
    let _ = remux(Cursor::new(file.to_vec()), file.len() as u64, i, Cursor::new(Vec::new()), o);
});
