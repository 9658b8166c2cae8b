//! Remuxes a file: `cargo run --release -p mist-media --example remux IN OUT [--frag]`.
//!
//! Input by extension: `.ts`, `.flv`, `.mp4`/`.mov`, `.mkv`/`.webm`. Output by extension: `.ts`,
//! `.flv`, `.mp4` (progressive, moov first; fragmented with `--frag`), `.fmp4` (fragmented), `.mkv`,
//! `.webm`.
//! See `mist_media::remux`. Prints the tracks and counters to stderr unless `-q`.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use mist_media::remux::{remux, Input, Output, Stats};

/// Opens the files and remuxes, formats chosen by extension (`frag`: `.mp4` out is fragmented).
fn remux_path(input: &Path, output: &Path, frag: bool) -> io::Result<Stats> {
    let unknown = |what: &str, p: &Path| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown {what} type: {}", p.display()),
        )
    };
    let i = Input::from_path(input).ok_or_else(|| unknown("input", input))?;
    let o = Output::from_path(output, frag).ok_or_else(|| unknown("output", output))?;
    let file = File::open(input)?;
    let len = file.metadata()?.len();
    let out = BufWriter::with_capacity(1 << 20, File::create(output)?);
    remux(file, len, i, out, o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let frag = args.iter().any(|a| a == "--frag");
    let quiet = args.iter().any(|a| a == "-q");
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if files.len() != 2 {
        eprintln!("usage: remux IN OUT [--frag] [-q]");
        std::process::exit(2);
    }
    match remux_path(Path::new(files[0]), Path::new(files[1]), frag) {
        Ok(s) => {
            if !quiet {
                for t in &s.tracks {
                    eprintln!(
                        "track {}: {} {}x{} {} Hz {} ch",
                        t.id,
                        t.codec.mist_name(),
                        t.width,
                        t.height,
                        t.rate,
                        t.channels
                    );
                }
                for t in &s.tracks_dropped {
                    eprintln!(
                        "dropped track {}: {} (not carried by the output)",
                        t.id,
                        t.codec.mist_name()
                    );
                }
                eprintln!(
                    "{} frames ({} dropped), {} bytes in, {} bytes out, times shifted by {} ms",
                    s.frames, s.frames_dropped, s.bytes_in, s.bytes_out, s.shift_ms
                );
            }
        }
        Err(e) => {
            eprintln!("remux: {e}");
            std::process::exit(1);
        }
    }
}
