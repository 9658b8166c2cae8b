//! MistUtilNuke: stops a stuck stream's own processes and removes its shared memory.
//!
//! A stream's own processes are `MistIn*`, `MistOut*` and `MistProc*` processes started for that
//! stream (`-s STREAM` / `--stream STREAM` on their command line: its input, pushes, recordings).
//! Listeners serving many streams (MistOutHTTP, MistOutRTMP without `-s`) and the controller are
//! never touched: removing the shared memory ends the stream for them.

use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(1);

/// A process as `/proc` shows it: enough to tell a stream's own processes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: i32,
    /// Its command line.
    pub argv: Vec<String>,
}

impl ProcInfo {
    /// The binary's name (`MistInMP4` …), without its path.
    pub fn name(&self) -> String {
        self.argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default()
    }
}

/// Every process whose command line we can read.
pub fn processes() -> Vec<ProcInfo> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = raw
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (!argv.is_empty()).then_some(ProcInfo { pid, argv })
        })
        .collect()
}

/// Whether `argv` is a per-stream mist process for `stream`.
pub fn is_stream_process(argv: &[String], stream: &str) -> bool {
    let Some(exe) = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)) else {
        return false;
    };
    if !["MistIn", "MistOut", "MistProc"]
        .iter()
        .any(|p| exe.starts_with(p))
    {
        return false;
    }
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let named = if a == "-s" || a == "--stream" {
            it.next().map(String::as_str)
        } else if let Some(v) = a.strip_prefix("--stream=") {
            Some(v)
        } else {
            a.strip_prefix("-s").filter(|v| !v.is_empty())
        };
        if named == Some(stream) {
            return true;
        }
    }
    false
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What [`nuke`] did.
#[derive(Debug, Default)]
pub struct Report {
    /// Stopped with SIGTERM: (pid, name).
    pub stopped: Vec<(i32, String)>,
    /// Still alive after the grace, killed with SIGKILL.
    pub killed: Vec<(i32, String)>,
    /// Could not be signalled (pid, name, error).
    pub failed: Vec<(i32, String, String)>,
    /// Its shared memory existed and was removed.
    pub removed_shm: bool,
}

/// Stops the stream's own processes (SIGTERM, SIGKILL after [`GRACE`]) and removes its shared
/// memory.
pub fn nuke(stream: &str) -> Report {
    let me = std::process::id() as i32;
    let mut report = Report::default();
    let targets: Vec<ProcInfo> = processes()
        .into_iter()
        .filter(|p| p.pid != me && is_stream_process(&p.argv, stream))
        .collect();
    let mut waiting = Vec::new();
    for p in &targets {
        // SAFETY: plain kill(2) on a pid we just read; no memory is involved.
        if unsafe { libc::kill(p.pid, libc::SIGTERM) } == 0 {
            report.stopped.push((p.pid, p.name()));
            waiting.push(p);
        } else {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                report.failed.push((p.pid, p.name(), e.to_string()));
            }
        }
    }
    let end = Instant::now() + GRACE;
    while waiting.iter().any(|p| alive(p.pid)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in waiting.into_iter().filter(|p| alive(p.pid)) {
        // SAFETY: as above.
        if unsafe { libc::kill(p.pid, libc::SIGKILL) } == 0 {
            report.killed.push((p.pid, p.name()));
        }
    }
    report.removed_shm = mist_shm::remove_stream(stream).is_ok();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stream_processes() {
        assert!(is_stream_process(
            &v(&["/usr/bin/MistInBuffer", "-g", "4", "-s", "live", "push://"]),
            "live"
        ));
        assert!(is_stream_process(
            &v(&["MistOutFLV", "--stream", "live", "/rec.flv"]),
            "live"
        ));
        assert!(is_stream_process(
            &v(&["MistInMP4", "--stream=live", "/a.mp4"]),
            "live"
        ));
        assert!(is_stream_process(
            &v(&["MistInMP4", "-slive", "/a.mp4"]),
            "live"
        ));
        assert!(!is_stream_process(
            &v(&["MistInBuffer", "-s", "live2"]),
            "live"
        ));
        assert!(!is_stream_process(
            &v(&["MistOutHTTP", "-p", "8080"]),
            "live"
        ));
        assert!(!is_stream_process(
            &v(&["MistController", "-s", "live"]),
            "live"
        ));
        assert!(!is_stream_process(
            &v(&["bash", "-c", "MistInBuffer -s live"]),
            "live"
        ));
        assert!(!is_stream_process(
            &v(&["MistInBuffer", "push://live"]),
            "live"
        ));
    }
}
