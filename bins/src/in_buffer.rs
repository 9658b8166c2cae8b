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
//! * It fires the triggers of the stream's life it owns (INTERFACES §5.3, `docs/triggers.md`):
//!   STREAM_READY (false: the buffer exits), STREAM_BUFFER `FULL`/`DRY`/`RECOVER` with the health
//!   JSON and `EMPTY` at the end, LIVE_TRACK_LIST when the track set changes, LIVE_BANDWIDTH (a blocking handler's false
//!   ends the stream),
//!   STREAM_UNLOAD and STREAM_END.

use mist_core::triggers;
use mist_media::info;
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
    /// DVR bytes kept at most (stream option `dvr_bytes`, 0 = none); None: the writer's own cap
    /// (`MIST_DVR_MAX_BYTES`, else 1 GiB).
    pub dvr_bytes: Option<u64>,
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
            "dvr_bytes": {
                "name": "Buffer size (bytes)",
                "help": "At most this many bytes of the live stream are kept for seeking back, whatever the buffer time says (a publisher with frozen timestamps never leaves the buffer time). 0: no limit. Default: 1 GiB (environment MIST_DVR_MAX_BYTES).",
                "type": "uint",
                "default": mist_shm::DEFAULT_MAX_DVR_BYTES,
                "option": "--dvr-bytes"
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
    if let Some(bytes) = opts.dvr_bytes {
        buf.set_max_dvr_bytes(bytes);
    }
    let dvr_bytes = match opts.dvr_bytes {
        Some(0) => "no byte limit".to_string(),
        Some(n) => format!("at most {n} bytes"),
        None => "the writer's byte limit".to_string(),
    };
    mist_core::info!(
        "buffer for stream {} ready (DVR {} ms, {dvr_bytes}, publisher timeout {} ms)",
        opts.stream,
        opts.dvr_ms,
        opts.timeout_ms
    );
    let mut ev = Events::new(&opts.stream);
    if !ev.ready() {
        mist_core::warn!(
            "the STREAM_READY trigger refused stream {}: ending it",
            opts.stream
        );
        return ev.end(buf, "STREAM_READY trigger refused", 0);
    }
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
            ev.viewers(n);
            if n != viewers {
                viewers = n;
                mist_core::debug!("stream {} has {n} viewer(s)", opts.stream);
            }
        }
        if stop.load(Ordering::Relaxed) {
            mist_core::info!("stopping: ending stream {}", opts.stream);
            return ev.end(buf, "stop signal", viewers);
        }
        let st = buf.status();
        if st.ended {
            mist_core::info!("publisher closed stream {}", opts.stream);
            return ev.end(buf, "publisher closed the stream", viewers);
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
                ev.buffer(state, &st);
            }
            ev.tracks(&st);
            if ev.bandwidth_refused() {
                mist_core::warn!(
                    "the LIVE_BANDWIDTH trigger refused stream {}: ending it",
                    opts.stream
                );
                return ev.end(buf, "LIVE_BANDWIDTH trigger refused", viewers);
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
                ev.buffer(state, &buf.status());
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
                return ev.end(buf, "no publisher", viewers);
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

/// The triggers of the stream's life this process owns (fired through the trigger engine, whose
/// config the controller shares through `MIST_TRIGGERS`).
struct Events {
    stream: String,
    track_keys: Vec<String>,
    peak_viewers: usize,
    viewer_secs: u64,
    last_viewers: (Instant, usize),
    last_bandwidth: Instant,
    /// A LIVE_BANDWIDTH round is running.
    bandwidth_busy: Arc<AtomicBool>,
    /// A LIVE_BANDWIDTH handler answered false.
    bandwidth_refused: Arc<AtomicBool>,
}

impl Events {
    fn new(stream: &str) -> Events {
        Events {
            stream: stream.to_string(),
            track_keys: Vec::new(),
            peak_viewers: 0,
            viewer_secs: 0,
            last_viewers: (Instant::now(), 0),
            last_bandwidth: Instant::now(),
            bandwidth_busy: Arc::default(),
            bandwidth_refused: Arc::default(),
        }
    }

    /// STREAM_READY (blocking): false means the buffer must not serve.
    fn ready(&self) -> bool {
        triggers::fire_event(
            "STREAM_READY",
            Some(&self.stream),
            &[&self.stream, "Buffer"],
        )
        .ok
    }

    fn viewers(&mut self, n: usize) {
        let (t, prev) = self.last_viewers;
        self.viewer_secs += t.elapsed().as_secs() * prev as u64;
        self.last_viewers = (Instant::now(), n);
        self.peak_viewers = self.peak_viewers.max(n);
    }

    /// STREAM_BUFFER with the health JSON: the buffered media time and per track its codec and
    /// rate.
    fn buffer(&self, state: &str, st: &mist_shm::StreamStatus) {
        let tracks: serde_json::Map<String, serde_json::Value> = st
            .tracks
            .iter()
            .map(|t| {
                (
                    t.id.to_string(),
                    json!({"codec": t.codec.mist_name(), "kbits": u64::from(t.bps) * 8 / 1000}),
                )
            })
            .collect();
        let mut health = json!({
            "buffer": (st.last_ms - st.first_ms).max(0),
            "tracks": tracks,
        });
        if state == "DRY" {
            health["issues"] = json!("publisher gone");
        }
        triggers::emit(
            "STREAM_BUFFER",
            Some(&self.stream),
            &[&self.stream, state, &health.to_string()],
        );
    }

    /// LIVE_TRACK_LIST when the set of tracks changed; LIVE_BANDWIDTH (every 5 s at most) when
    /// the stream's rate reaches a handler's `params` threshold.
    fn tracks(&mut self, st: &mist_shm::StreamStatus) {
        let keys: Vec<String> = st.tracks.iter().map(info::track_key).collect();
        if !keys.is_empty() && keys != self.track_keys {
            self.track_keys = keys;
            let list: Vec<info::TrackInfo> = st
                .tracks
                .iter()
                .map(|t| info::TrackInfo {
                    track: t.clone(),
                    firstms: st.first_ms,
                    lastms: st.last_ms,
                })
                .collect();
            let j = info::tracks_object(&list).to_string();
            triggers::emit(
                "LIVE_TRACK_LIST",
                Some(&self.stream),
                &[&self.stream, &j, ""],
            );
        }
        if self.last_bandwidth.elapsed() >= Duration::from_secs(5) {
            self.last_bandwidth = Instant::now();
            let bps: u64 = st.tracks.iter().map(|t| u64::from(t.bps)).sum();
            let engine = triggers::Engine::global();
            let cfg = engine.config();
            let due: Vec<_> =
                triggers::handlers(&cfg.triggers, "LIVE_BANDWIDTH", Some(&self.stream))
                    .into_iter()
                    .filter(|h| {
                        triggers::params(h)
                            .and_then(|p| p.trim().parse::<u64>().ok())
                            .is_some_and(|l| bps >= l)
                    })
                    .cloned()
                    .collect();
            // Blocking handlers run off this loop, one round at a time; a false answer stops
            // the buffer at its next turn.
            if !due.is_empty() && !self.bandwidth_busy.swap(true, Ordering::AcqRel) {
                let mut one = triggers::Triggers::new();
                one.insert("LIVE_BANDWIDTH".into(), due);
                let p = triggers::payload(&[&self.stream, &bps.to_string()]);
                let (stream, busy, refused) = (
                    self.stream.clone(),
                    self.bandwidth_busy.clone(),
                    self.bandwidth_refused.clone(),
                );
                std::thread::spawn(move || {
                    let o = triggers::Engine::global().fire_with(
                        &one,
                        "LIVE_BANDWIDTH",
                        Some(&stream),
                        &p,
                    );
                    if !o.ok {
                        refused.store(true, Ordering::Release);
                    }
                    busy.store(false, Ordering::Release);
                });
            }
        }
    }

    /// A LIVE_BANDWIDTH handler answered false: the buffer must stop.
    fn bandwidth_refused(&self) -> bool {
        self.bandwidth_refused.load(Ordering::Acquire)
    }

    /// Ends the stream: STREAM_BUFFER `EMPTY`, STREAM_UNLOAD (uncancelable, directly followed by
    /// the reason, as MistServer writes it), STREAM_END, waiting (bounded) for their handlers.
    fn end(mut self, buf: StreamBuffer, reason: &str, viewers: usize) -> i32 {
        self.viewers(viewers);
        let s = self.stream.clone();
        let code = end(buf, &s);
        triggers::emit("STREAM_BUFFER", Some(&s), &[&s, "EMPTY"]);
        triggers::emit(
            "STREAM_UNLOAD",
            Some(&s),
            &[&s, "Buffer", &format!("uncancelable{reason}")],
        );
        // Byte counts are not tracked by the buffer yet: 0.
        let (peak, vsecs) = (self.peak_viewers.to_string(), self.viewer_secs.to_string());
        triggers::emit(
            "STREAM_END",
            Some(&s),
            &[&s, "0", "0", &peak, "1", &peak, &vsecs],
        );
        if !triggers::Engine::global().flush(Duration::from_secs(30)) {
            mist_core::warn!("stream {s}: trigger handlers still running at exit");
        }
        code
    }
}
