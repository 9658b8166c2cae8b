//! MistInBuffer: owns a live stream's lifetime.
//!
//! * Creates (or adopts) the stream's shared-memory metadata and registers itself as the stream's
//!   buffer process, so readers leave ending the stream to it. The pushing process (MistOutRTMP,
//!   MistInTS …) is the frame *writer* (`mist_shm::StreamWriter::create`); it may start before or
//!   after this process: whoever comes first creates the metadata.
//! * DVR eviction is done by the writer as it appends (it knows the newest time); this process
//!   only stores the DVR window in the metadata for writers that did not set one.
//! * When the publisher is gone (writer pid dead, writer detached or heartbeat older than 2 s)
//!   for longer than the timeout (`--timeout MS`, stream option `idleTime`; or `-i SECONDS`),
//!   it marks the stream ended, removes its files and exits 0. A publisher that returns within
//!   the timeout takes the stream over (new epoch) and viewers continue.
//! * A writer that closes the stream (`StreamWriter::close`) ends it at once. SIGINT/SIGTERM end
//!   it too.

use mist_shm::{StreamBuffer, WriterOptions};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEFAULT_DVR_MS: u64 = 50_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

pub fn set_debug(level: u8) {
    mist_core::log::init("MistInBuffer", level);
}

#[derive(Debug, Clone)]
pub struct Options {
    pub stream: String,
    pub source: String,
    pub dvr_ms: u64,
    /// How long the stream survives without a publisher.
    pub timeout_ms: u64,
}

/// The capabilities JSON printed by `-j`.
pub fn capabilities() -> serde_json::Value {
    json!({
        "name": "Buffer",
        "desc": "Live buffer for pushed streams: keeps the DVR window in shared memory, lets a returning publisher continue, and ends the stream when the publisher has been gone for its timeout.",
        "source_match": ["push://*"],
        "priority": 9,
        "optional": {
            "DVR": {
                "name": "Buffer time (ms)",
                "help": "How much of the live stream is kept for viewers to seek back in, in milliseconds.",
                "type": "uint",
                "default": DEFAULT_DVR_MS,
                "option": "--dvr"
            },
            "idleTime": {
                "name": "Publisher timeout (ms)",
                "help": "How long the stream stays available after the publisher disconnects, in milliseconds; a publisher returning within it continues the stream.",
                "type": "uint",
                "default": DEFAULT_TIMEOUT_MS,
                "option": "--timeout"
            },
            "inputtimeout": {
                "name": "Input timeout (s)",
                "help": "Same as idleTime, in seconds (used when idleTime is not given).",
                "type": "uint",
                "option": "--inputtimeout",
                "short": "i"
            }
        }
    })
}

/// Runs the buffer until the stream ends; returns the process exit code.
pub fn run(opts: &Options, stop: Arc<AtomicBool>) -> i32 {
    if !opts.source.starts_with("push://") {
        mist_core::error!("unsupported source {:?} (only push://)", opts.source);
        return 1;
    }
    let idle = opts.timeout_ms.min(u32::MAX as u64) as u32;
    let buf = match StreamBuffer::open(
        &opts.stream,
        WriterOptions {
            live: true,
            dvr_ms: opts.dvr_ms,
        },
        idle,
    ) {
        Ok(b) => b,
        Err(mist_shm::ShmError::WriterAlive(_, pid)) => {
            mist_core::error!(
                "stream {} already has a buffer process (pid {pid})",
                opts.stream
            );
            return 1;
        }
        Err(e) => {
            mist_core::error!("cannot open buffer for stream {}: {e}", opts.stream);
            return 1;
        }
    };
    mist_core::info!(
        "buffer for stream {} ready (DVR {} ms, publisher timeout {} ms)",
        opts.stream,
        opts.dvr_ms,
        opts.timeout_ms
    );
    let timeout = Duration::from_millis(opts.timeout_ms);
    let mut gone_since = Some(Instant::now());
    let mut had_publisher = false;
    let mut epoch = buf.status().epoch;
    let mut state = "EMPTY";
    let mut viewers = 0usize;
    let mut last_viewer_check = Instant::now();
    loop {
        if last_viewer_check.elapsed() >= Duration::from_secs(2) {
            // Listing the users table also frees the slots of dead viewers.
            last_viewer_check = Instant::now();
            let n = buf.viewers();
            if n != viewers {
                viewers = n;
                mist_core::debug!("stream {} has {n} viewer(s)", opts.stream);
            }
        }
        if stop.load(Ordering::Relaxed) {
            mist_core::info!("stopping: ending stream {}", opts.stream);
            return end(buf, &opts.stream);
        }
        let st = buf.status();
        if st.ended {
            mist_core::info!("publisher closed stream {}", opts.stream);
            return end(buf, &opts.stream);
        }
        if buf.writer_alive() {
            if gone_since.take().is_some() {
                if had_publisher {
                    mist_core::info!(
                        "publisher returned to stream {} (pid {}, epoch {})",
                        opts.stream,
                        st.writer_pid,
                        st.epoch
                    );
                } else {
                    mist_core::info!(
                        "publisher connected to stream {} (pid {}, epoch {})",
                        opts.stream,
                        st.writer_pid,
                        st.epoch
                    );
                }
                had_publisher = true;
            }
            if st.epoch != epoch {
                epoch = st.epoch;
                mist_core::debug!("stream {} epoch {epoch}", opts.stream);
            }
            let new_state = if st.last_ms > st.first_ms {
                if state == "DRY" {
                    "RECOVER"
                } else {
                    "FULL"
                }
            } else {
                state
            };
            if new_state != state {
                state = new_state;
                mist_core::info!("stream {} buffer {state}", opts.stream);
            }
        } else {
            let since = *gone_since.get_or_insert_with(|| {
                if had_publisher {
                    mist_core::info!(
                        "publisher of stream {} gone; waiting {} ms for it to return",
                        opts.stream,
                        opts.timeout_ms
                    );
                }
                Instant::now()
            });
            if had_publisher && state != "DRY" {
                state = "DRY";
                mist_core::info!("stream {} buffer {state}", opts.stream);
            }
            // Gone since the last sign of a publisher: its last heartbeat (push), or the moment
            // we noticed it gone (or our start), whichever is more recent.
            let hb_age = Duration::from_millis(now_ms().saturating_sub(buf.last_heartbeat_ms()));
            let gone = since.elapsed().min(hb_age);
            if gone >= timeout {
                mist_core::info!(
                    "no publisher for stream {} in {} ms: ending it",
                    opts.stream,
                    opts.timeout_ms
                );
                return end(buf, &opts.stream);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn end(buf: StreamBuffer, stream: &str) -> i32 {
    match buf.end() {
        Ok(()) | Err(mist_shm::ShmError::NoStream(_)) => {
            mist_core::info!("stream {stream} ended");
            0
        }
        Err(e) => {
            mist_core::error!("ending stream {stream}: {e}");
            1
        }
    }
}
