//! Code that several binaries of this package share: the HTTP output's routes, muxers and the
//! standalone writer behind MistOutHTTP, MistOutTS, MistOutFLV, MistOutMP4 and MistOutEBML; and the
//! VoD file input behind MistInMP4, MistInTS, MistInFLV and MistInEBML.

#![warn(missing_docs)]

pub mod access;
pub mod conn_close;
pub mod feed;
pub mod hls_in;
pub mod http_out;
pub mod ingest;
pub mod push_out;
pub mod record;
pub mod rtsp_in;
pub mod rtsp_out;
pub mod tls_reload;
pub mod ts_live;
pub mod util;
pub mod vod_input;

/// One shared-memory directory for the unit tests of this library that write streams (the
/// variable is process-wide, and tests run in parallel: each uses stream names of its own).
#[cfg(test)]
pub(crate) fn test_shm_dir() {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("MIST_SHM_DIR", d.path());
        std::env::remove_var("MIST_CONTROL");
        d
    });
}
