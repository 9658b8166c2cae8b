//! Input health: counters an input publishes next to a stream's segments, for the controller's
//! `active_streams` (`loss`, `health`) and anyone else who asks.
//!
//! The file `mist-S-health` (S = sanitised stream name) holds `key value` lines of unsigned
//! counters, e.g. `loss 3`. The writer replaces it whole (temp file + `rename(2)`), so a reader
//! never sees half of it; it is removed with the stream's other files. Unknown keys are kept, so
//! inputs may add counters without a format change. An input that never writes it reports nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Counters of one stream's input, by name (`loss`, `packets`, `datagrams`, …).
pub type InputHealth = BTreeMap<String, u64>;

fn path(stream: &str) -> PathBuf {
    crate::shm_dir().join(format!("mist-{}-health", crate::seg::sanitise(stream)))
}

/// Publishes `h` as the stream's input health (replacing what was there).
pub fn write_input_health(stream: &str, h: &InputHealth) -> std::io::Result<()> {
    let p = path(stream);
    let tmp = crate::tmp_name(&p);
    let text: String = h.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &p).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The stream's input health, if its input publishes one. Malformed lines are skipped.
pub fn input_health(stream: &str) -> Option<InputHealth> {
    let text = std::fs::read_to_string(path(stream)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// Removes the stream's input health file (the input is leaving).
pub fn remove_input_health(stream: &str) {
    let _ = std::fs::remove_file(path(stream));
}
