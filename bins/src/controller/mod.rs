//! MistController: config, API, supervision of outputs and inputs, control socket.
//!
//! Exit codes: 0 clean shutdown, 1 config error (unreadable or invalid file), 2 usage error,
//! 3 cannot bind the API port or the control socket, 4 other start-up failure.

pub mod api;
pub mod auth;
pub mod caps;
pub mod children;
pub mod gate;
pub mod ingest;
pub mod lifecycle;
pub mod limits;
pub mod notify;
pub mod paths;
pub mod privs;
pub mod push;
pub mod server;
pub mod sessions;
pub mod stream_tags;
pub mod tls_update;
pub mod variables;

use children::{Role, Spawner, Supervisor};
use clap::Parser;
use mist_core::config::{self, Config};
use mist_core::log::{self, Level};
use mist_core::triggers;
use mist_core::{info, warn};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connectors without a port of their own, served through the HTTP(S) connector (INTERFACES §1).
pub const HTTP_SERVED: [&str; 21] = [
    "HLS",
    "CMAF",
    "HDS",
    "HTTPTS",
    "FLV",
    "MP4",
    "EBML",
    "MP3",
    "AAC",
    "FLAC",
    "WAV",
    "OGG",
    "JPG",
    "JSON",
    "JSONLine",
    "H264",
    "SDP",
    "SRT",
    "WebRTC",
    "Raw",
    "HTTPS_HLS",
];

pub const EXIT_OK: i32 = 0;
pub const EXIT_CONFIG: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BIND: i32 = 3;
pub const EXIT_OTHER: i32 = 4;

/// Grace between SIGTERM and SIGKILL when stopping children.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// With `-C w`/`rw`: save this long after the last change.
pub const AUTOSAVE_DELAY: Duration = Duration::from_secs(60);
/// Kept log lines for the `log` API command.
pub const LOG_KEEP: usize = 500;
/// How long a Push/Play request waits for the stream's buffer to appear (env `MIST_INPUT_WAIT_MS`
/// overrides).
pub fn input_wait() -> Duration {
    std::env::var("MIST_INPUT_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5))
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "MistController",
    about = "mist-rs controller: config, API, process supervision",
    disable_version_flag = true
)]
pub struct Opts {
    /// Config file (default: config.json in the working directory).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// API port (default: config, else 4242).
    #[arg(short = 'p', long = "port")]
    pub port: Option<u16>,
    /// API bind address (default: config, else 0.0.0.0).
    #[arg(short = 'i', long = "interface")]
    pub interface: Option<String>,
    /// When started as root: switch to this user once the API port and control socket are bound
    /// (default: the config's controller username, if any).
    #[arg(short = 'u', long = "username", visible_alias = "user")]
    pub username: Option<String>,
    /// Create or replace an API account, user:password.
    #[arg(short = 'a', long = "account")]
    pub account: Option<String>,
    /// Write the log to this file instead of stderr (appending).
    #[arg(short = 'L', long = "logfile")]
    pub logfile: Option<PathBuf>,
    /// Access log (stored in the config; not written yet).
    #[arg(short = 'A', long = "accesslog")]
    pub accesslog: Option<String>,
    /// Config file sync: r = reload when the file changes on disk, w = write 60 s after API changes,
    /// rw = both.
    #[arg(short = 'C', long = "configrw", default_value = "rw", value_parser = ["r", "w", "rw", "wr", "none"])]
    pub configrw: String,
    /// Serve Prometheus metrics (text format) on the API port under this path.
    #[arg(short = 'S', long = "prometheus")]
    pub prometheus: Option<String>,
    /// Debug level 0-10 (3 production, 4 default).
    #[arg(short = 'g', long = "debug", value_parser = clap::value_parser!(u8).range(0..=10))]
    pub debug: Option<u8>,
    /// Print the capabilities JSON and exit.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

pub fn version_string() -> String {
    format!("mist-rs {}", env!("CARGO_PKG_VERSION"))
}

static SHM_BROKEN: AtomicBool = AtomicBool::new(false);

/// Calls into mist-shm, surviving a panic (the API may still be a stub): after the first panic, shm
/// is treated as unavailable and `None` is returned.
pub fn shm_call<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    if SHM_BROKEN.load(Ordering::Relaxed) {
        return None;
    }
    match std::panic::catch_unwind(f) {
        Ok(v) => Some(v),
        Err(_) => {
            SHM_BROKEN.store(true, Ordering::Relaxed);
            warn!("shared memory API unavailable; stream statistics disabled");
            None
        }
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

pub type LogRing = Arc<Mutex<VecDeque<(u64, String, String)>>>;

pub fn push_log(ring: &LogRing, level: Level, msg: String) {
    let mut r = ring.lock().unwrap_or_else(|e| e.into_inner());
    if r.len() >= LOG_KEEP {
        r.pop_front();
    }
    r.push_back((now_unix(), level.as_str().to_string(), msg));
}

/// A control-socket request waiting for a stream's input to come up.
pub struct Pending {
    pub token: mio::Token,
    pub stream: String,
    pub config: Value,
    pub source: String,
    pub deadline: Instant,
    pub since: Instant,
    /// Waiting for a STREAM_PUSH trigger (not for the input).
    pub trigger: bool,
}

/// What the blocking triggers before an input start decided.
pub struct TriggerResult {
    pub ok: bool,
    pub error: String,
    /// A STREAM_SOURCE answer replacing the configured source.
    pub source: Option<String>,
    /// The push request after RTMP_PUSH_REWRITE/PUSH_REWRITE (`ingest.rs`), or the play request
    /// after DEFAULT_STREAM (`lifecycle.rs`, then `true`): continue with it.
    pub rewritten: Option<(mist_core::control::Request, bool)>,
}

/// Why the input of a stream could not be started; the text goes to the log and, for a
/// play or push request, back to the connector that asked.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A resource cap of the config (`limits`) is reached.
    #[error(transparent)]
    Limit(#[from] limits::LimitReached),
    /// No installed MistIn* binary claims the stream's source.
    #[error("no input accepts source {0}")]
    NoInput(String),
    /// The binary that claims it is gone (removed since the capabilities were read).
    #[error("{0} not found")]
    NotFound(String),
    /// The binary could not be spawned.
    #[error("cannot start {name}: {source}")]
    Start {
        /// The binary.
        name: String,
        /// What spawning it gave.
        source: std::io::Error,
    },
}

fn refusal(stream: &str, error: String) -> mist_core::control::Response {
    warn!("control: refused {stream}: {error}");
    mist_core::control::Response {
        ok: false,
        stream: stream.to_string(),
        error,
        config: Value::Null,
    }
}

fn answer_ok(stream: String, config: Value) -> mist_core::control::Response {
    mist_core::control::Response {
        ok: true,
        stream,
        error: String::new(),
        config,
    }
}

pub struct Controller {
    pub opts: Opts,
    pub cfg: Config,
    pub config_path: PathBuf,
    pub config_mtime: Option<SystemTime>,
    pub read_mode: bool,
    pub write_mode: bool,
    pub dirty_since: Option<Instant>,
    pub bin_dir: PathBuf,
    pub caps: caps::Caps,
    pub sup: Supervisor,
    pub spawner: Spawner,
    pub logs: LogRing,
    pub auth: auth::Authenticator,
    pub shutdown: bool,
    /// Protocols whose binary is missing (warned once).
    pub missing: HashSet<String>,
    pub pending: Vec<Pending>,
    pub started: Instant,
    /// Results of STREAM_PUSH triggers run off the loop: (connection, accepted).
    pub trig_tx: std::sync::mpsc::Sender<(mio::Token, TriggerResult)>,
    /// SYSTEM_STOP already fired (API shutdown).
    pub stop_fired: bool,
    /// The source and stream config each running input was started with (to start a buffer
    /// again whose publisher outlived it).
    pub input_sources: HashMap<String, (String, Value)>,
    /// Pushes and recordings (controller::push).
    pub pushes: push::Pushes,
    /// Viewer sessions across processes (controller::sessions).
    pub sessions: sessions::Sessions,
    /// The shm mappings read periodically, kept open, and this loop turn's list of streams.
    pub shm: ShmView,
}

/// The shared memory the controller reads periodically (the streams' metadata, their users
/// tables), mapped once and kept open across loop turns (`mist_shm::StreamCache`), and the
/// list of streams read at most once per turn: the push scan, the tags and the sessions poll of
/// one turn share it. Outside a turn (API requests) every read lists the streams again.
#[derive(Default)]
pub struct ShmView(Mutex<ShmInner>);

#[derive(Default)]
struct ShmInner {
    cache: mist_shm::StreamCache,
    in_turn: bool,
    turn_list: Option<Vec<mist_shm::StreamStatus>>,
}

impl ShmView {
    fn lock(&self) -> std::sync::MutexGuard<'_, ShmInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A loop turn starts: the first read of the streams is kept until [`end_turn`].
    pub fn begin_turn(&self) {
        let mut g = self.lock();
        g.in_turn = true;
        g.turn_list = None;
    }

    /// The loop turn ended: later reads list the streams again.
    pub fn end_turn(&self) {
        let mut g = self.lock();
        g.in_turn = false;
        g.turn_list = None;
    }

    /// Calls `f` with the streams in shared memory (`mist_shm::list_streams`); None when shm is
    /// unavailable. `f` must not read this view again (it runs under its lock).
    pub fn with_streams<R>(&self, f: impl FnOnce(&[mist_shm::StreamStatus]) -> R) -> Option<R> {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.in_turn {
            if inner.turn_list.is_none() {
                let cache = &mut inner.cache;
                let list = shm_call(std::panic::AssertUnwindSafe(|| cache.list_streams()))?;
                inner.turn_list = Some(list);
            }
            return Some(f(inner.turn_list.as_deref().unwrap_or_default()));
        }
        let cache = &mut inner.cache;
        let list = shm_call(std::panic::AssertUnwindSafe(|| cache.list_streams()))?;
        Some(f(&list))
    }

    /// The users table of `stream` (`mist_shm::users`).
    pub fn users(&self, stream: &str) -> Vec<mist_shm::UserSlot> {
        let mut g = self.lock();
        let cache = &mut g.cache;
        shm_call(std::panic::AssertUnwindSafe(|| cache.users(stream))).unwrap_or_default()
    }
}

impl Controller {
    pub fn debug_level(&self) -> u8 {
        self.opts
            .debug
            .or(self.cfg.config.debug)
            .unwrap_or(log::DEFAULT_LEVEL)
    }

    pub fn mark_dirty(&mut self) {
        self.dirty_since = Some(Instant::now());
    }

    /// Saves the config file now.
    pub fn save(&mut self) -> Result<(), config::ConfigError> {
        self.cfg.save(&self.config_path)?;
        self.config_mtime = mtime(&self.config_path);
        self.dirty_since = None;
        info!("config saved to {}", self.config_path.display());
        Ok(())
    }

    /// Applies `-a user:pass` to the config. Returns true if it changed anything.
    pub fn apply_account_opt(&mut self) -> bool {
        let Some((u, p)) = self.opts.account.as_deref().and_then(|a| a.split_once(':')) else {
            return false;
        };
        let hash = auth::md5hex(p.as_bytes());
        if self.cfg.account.get(u).is_some_and(|a| a.password == hash) {
            return false;
        }
        self.cfg.set_account(u, &hash);
        true
    }

    /// Re-reads the config file (SIGHUP/SIGUSR1, or `-C r` on change). Keeps the running config
    /// if the file is missing or invalid.
    pub fn reload(&mut self) {
        match Config::load(&self.config_path) {
            Ok(Some(c)) => {
                info!("reloading config from {}", self.config_path.display());
                let old_streams = self.cfg.streams.clone();
                self.cfg = c;
                self.config_mtime = mtime(&self.config_path);
                self.dirty_since = None;
                if self.apply_account_opt() {
                    self.mark_dirty();
                }
                log::set_level(self.debug_level());
                self.caps = caps::Caps::scan(&self.bin_dir, Duration::from_secs(3));
                self.missing.clear();
                self.apply_protocols();
                for name in old_streams.keys() {
                    if !self.cfg.streams.contains_key(name) {
                        self.stop_stream_inputs(name);
                    }
                }
            }
            Ok(None) => warn!(
                "config file {} is gone; keeping the running config",
                self.config_path.display()
            ),
            Err(e) => mist_core::error!("{e}; keeping the running config"),
        }
    }

    /// The binary path for `name` in our directory, if present.
    pub fn binary(&self, name: &str) -> Option<PathBuf> {
        let p = self.bin_dir.join(name);
        p.is_file().then_some(p)
    }

    /// Starts outputs for configured protocols that are not running, stops those no longer
    /// configured.
    pub fn apply_protocols(&mut self) {
        self.retarget_certificates();
        let debug = self.debug_level().to_string();
        let wanted: Vec<(String, config::Protocol)> = self
            .cfg
            .config
            .protocols
            .iter()
            .map(|p| (serde_json::to_string(p).unwrap_or_default(), p.clone()))
            .collect();
        let keys: HashSet<&String> = wanted.iter().map(|(k, _)| k).collect();
        let stale: Vec<Role> = self
            .sup
            .children
            .iter()
            .filter(|m| m.stopping.is_none())
            .filter_map(|m| match &m.role {
                Role::Protocol(k) if !keys.contains(k) => Some(m.role.clone()),
                _ => None,
            })
            .collect();
        for r in stale {
            if let Some(m) = self.sup.find(&r) {
                info!("stopping {} (protocol removed or changed)", m.name);
            }
            if let Role::Protocol(k) = &r {
                self.fire_background("OUTPUT_STOP", None, k.clone());
            }
            self.sup.stop(&r);
        }
        for (key, p) in wanted {
            let role = Role::Protocol(key.clone());
            if self.sup.find(&role).is_some() {
                continue;
            }
            let name = format!("MistOut{}", p.connector);
            // Connectors that depend on another (HLS, CMAF, ... on HTTP) have no listener of
            // their own: the HTTP(S) connector serves them.
            let deps = self
                .caps
                .connectors
                .get(&p.connector)
                .and_then(|c| c.get("deps"))
                .is_some_and(|d| match d {
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => false,
                });
            if deps || (self.binary(&name).is_none() && HTTP_SERVED.contains(&p.connector.as_str()))
            {
                if self.missing.insert(key) {
                    mist_core::debug!("protocol {}: served by the HTTP connector", p.connector);
                }
                continue;
            }
            let Some(path) = self.binary(&name) else {
                if self.missing.insert(key) {
                    warn!(
                        "protocol {}: {} not found in {}",
                        p.connector,
                        name,
                        self.bin_dir.display()
                    );
                }
                continue;
            };
            let mut args = vec!["-g".to_string(), debug.clone()];
            args.extend(caps::option_args(
                &p.options,
                self.caps.connectors.get(&p.connector),
            ));
            let pjson = serde_json::to_string(&p).unwrap_or_default();
            match self
                .sup
                .start(&self.spawner, role, &name, path, args.clone(), true)
            {
                Ok(pid) => {
                    info!("started {name} (pid {pid}) {}", args.join(" "));
                    self.fire_background("OUTPUT_START", None, pjson);
                }
                Err(e) => mist_core::error!("cannot start {name}: {e}; will retry"),
            }
        }
    }

    /// Stops the inputs of a stream and its wildcard children.
    pub fn stop_stream_inputs(&mut self, name: &str) {
        let roles: Vec<Role> = self
            .sup
            .children
            .iter()
            .filter_map(|m| match &m.role {
                Role::Input(s) if s == name || mist_core::names::base_name(s) == name => {
                    Some(m.role.clone())
                }
                _ => None,
            })
            .collect();
        for r in roles {
            self.sup.stop(&r);
        }
    }

    /// Names of the streams that exist in shared memory (None when shm is unavailable).
    pub fn shm_streams(&self) -> Option<Vec<mist_shm::StreamStatus>> {
        self.shm.with_streams(<[_]>::to_vec)
    }

    /// Names of the live streams that have tracks and have not ended: what auto-push rules,
    /// `push_start` and run-time tags treat as active.
    pub fn active_streams(&self) -> Vec<String> {
        self.shm
            .with_streams(|l| {
                l.iter()
                    .filter(|s| s.live && !s.ended && !s.tracks.is_empty())
                    .map(|s| s.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes sure the input for `stream` runs, or says why it cannot.
    pub fn ensure_input(
        &mut self,
        stream: &str,
        source: &str,
        stream_cfg: &Value,
    ) -> Result<(), InputError> {
        let role = Role::Input(stream.to_string());
        if self.sup.find(&role).is_some_and(|m| m.running()) {
            return Ok(());
        }
        let limits = limits::Limits::from_config(self.cfg.config.extra.get("limits"));
        let running = self.sup.children.iter().filter(|m| m.running());
        let sources = &self.input_sources;
        let running = running.filter_map(|m| match &m.role {
            Role::Input(s) => Some(limits::Running {
                stream: s.as_str(),
                live: sources
                    .get(s)
                    .is_some_and(|(src, _)| src.starts_with("push://")),
            }),
            _ => None,
        });
        if let Err(e) = limits.check(stream, source.starts_with("push://"), running) {
            warn!("stream {stream}: not started: {e}");
            return Err(e.into());
        }
        let (input, input_source) = self
            .caps
            .input_and_source(source)
            .ok_or_else(|| InputError::NoInput(source.to_string()))?;
        let name = format!("MistIn{input}");
        let path = self
            .binary(&name)
            .ok_or_else(|| InputError::NotFound(name.clone()))?;
        let mut args = vec!["-g".to_string(), self.debug_level().to_string()];
        if let (Some(obj), Some(c)) = (stream_cfg.as_object(), self.caps.inputs.get(&input)) {
            args.extend(caps::option_args(obj, Some(c)));
        }
        args.extend([
            "-s".to_string(),
            stream.to_string(),
            input_source.to_string(),
        ]);
        let pid = self
            .sup
            .start(&self.spawner, role, &name, path, args, false)
            .map_err(|source| InputError::Start {
                name: name.clone(),
                source,
            })?;
        info!("started {name} (pid {pid}) for stream {stream}");
        self.input_sources
            .insert(stream.to_string(), (source.to_string(), stream_cfg.clone()));
        Ok(())
    }

    /// After the input of `stream` exited: what it left in shared memory is cleaned up. A live
    /// stream whose publisher is still sending gets a new buffer; anything else left behind (the
    /// input was killed before it could end the stream) is ended and removed, so viewers and
    /// outputs see it end instead of waiting on a stream that nobody keeps. An input the
    /// controller stopped (`requested`) is not started again.
    pub fn input_exited(&mut self, stream: &str, how: &str, requested: bool) {
        let source = self.input_sources.remove(stream);
        if self.input_running(stream) {
            return;
        }
        let Some(Ok(st)) = shm_call(|| mist_shm::stream_status(stream)) else {
            return; // removed: the input ended the stream itself
        };
        if st.writer_alive && !st.ended && !requested {
            if let (true, Some((source, cfg))) = (st.live, source) {
                warn!("the buffer of stream {stream} {how} while its publisher is still sending; starting it again");
                if let Err(e) = self.ensure_input(stream, &source, &cfg) {
                    mist_core::error!("stream {stream}: {e}");
                }
            }
            // Otherwise a writer of its own (a standalone publisher) ends the stream.
            return;
        }
        warn!("the input of stream {stream} {how} without ending it; ending the stream");
        let _ = mist_shm::remove_stream(stream);
    }

    pub fn input_running(&self, stream: &str) -> bool {
        self.sup
            .find(&Role::Input(stream.to_string()))
            .is_some_and(|m| m.running())
    }

    /// Handles one control-socket request from connection `token`. `Some(resp)`: answer now.
    /// `None`: the answer comes later (a STREAM_PUSH trigger runs, or the input is starting; see
    /// `self.pending`).
    pub fn control(
        &mut self,
        token: mio::Token,
        req: mist_core::control::Request,
    ) -> Option<mist_core::control::Response> {
        match self.resolve_push(token, req) {
            ingest::Resolve::Now(r) => self.control_resolved(token, r.req, r.via_key, false),
            ingest::Resolve::Answer(a) => Some(a),
            ingest::Resolve::Queued => None,
        }
    }

    /// [`Controller::control`] after the stream key and push rewrite rules (§7.1 steps 3–4).
    fn control_resolved(
        &mut self,
        token: mio::Token,
        req: mist_core::control::Request,
        via_key: bool,
        fallback: bool,
    ) -> Option<mist_core::control::Response> {
        use mist_core::control::Request;
        use mist_core::names;
        let (stream, is_push, host, app, connector, url) = match &req {
            Request::Push {
                stream,
                app,
                host,
                connector,
                url,
            } => (
                stream.clone(),
                true,
                host.clone(),
                app.clone(),
                connector.clone(),
                url.clone(),
            ),
            Request::Play {
                stream,
                host,
                connector,
                url,
            } => (
                stream.clone(),
                false,
                host.clone(),
                String::new(),
                connector.clone(),
                url.clone(),
            ),
            Request::StreamConfig { stream, push } => {
                return Some(self.stream_config(stream, *push));
            }
            Request::Api { command } => {
                let mut sess = api::Session::default();
                let answer = api::handle(self, &mut sess, "local", true, command);
                return Some(answer_ok(String::new(), answer));
            }
        };
        let name = names::sanitize(&stream);
        if !names::is_valid(&name) {
            return Some(refusal(&stream, "invalid stream name".into()));
        }
        let Some((_, scfg)) = names::lookup(&self.cfg.streams, &name) else {
            if !is_push && !fallback {
                if let Some(r) = self.default_stream(token, &name, &host, &connector, &url) {
                    return r;
                }
            }
            return Some(refusal(&name, "stream not configured".into()));
        };
        let scfg = scfg.clone();
        let mut source = scfg
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if is_push && via_key {
            // A stream key skips the IP and password checks; the stream is started as a push
            // buffer whatever its configured source, unless that source is already running.
            if !source.starts_with("push://") {
                if self.input_running(&name) {
                    return Some(refusal(
                        &name,
                        "stream is running from a non-push source".into(),
                    ));
                }
                source = "push://".to_string();
            }
        } else if is_push {
            let Some(rule) = names::PushRule::parse(&source) else {
                return Some(refusal(&name, "stream does not accept pushes".into()));
            };
            if let Err(e) = rule.check(&host, &app) {
                return Some(refusal(&name, e.to_string()));
            }
        } else if source.starts_with("push://") {
            // Live: known stream; the buffer exists only while someone pushes.
            return Some(answer_ok(name, scfg));
        }
        // Blocking triggers before an input starts run off the event loop; `trigger_done`
        // continues: STREAM_PUSH (pushes), then STREAM_SOURCE and STREAM_LOAD when the input is
        // not running yet.
        let t = &self.cfg.config.triggers;
        let starting = !self.input_running(&name);
        let want_push = is_push && triggers::exists(t, "STREAM_PUSH", Some(&name));
        let want_source = starting && triggers::exists(t, "STREAM_SOURCE", Some(&name));
        let want_load = starting && triggers::exists(t, "STREAM_LOAD", Some(&name));
        if want_push || want_source || want_load {
            let trig = t.clone();
            let tx = self.trig_tx.clone();
            let waker = self.spawner.waker.clone();
            let n = name.clone();
            std::thread::spawn(move || {
                let mut res = TriggerResult {
                    ok: true,
                    error: String::new(),
                    source: None,
                    rewritten: None,
                };
                if want_push {
                    let payload = triggers::payload(&[&n, &host, &connector, &url]);
                    if !triggers::fire(&trig, "STREAM_PUSH", Some(&n), &payload).ok {
                        res.ok = false;
                        res.error = "refused by the STREAM_PUSH trigger".into();
                    }
                }
                if res.ok && want_source {
                    let out = triggers::fire(&trig, "STREAM_SOURCE", Some(&n), &n);
                    let a = out.answer.unwrap_or_default();
                    if !a.trim().is_empty() {
                        res.source = Some(a.trim().to_string());
                    }
                }
                if res.ok && want_load && !triggers::fire(&trig, "STREAM_LOAD", Some(&n), &n).ok {
                    res.ok = false;
                    res.error = "refused by the STREAM_LOAD trigger".into();
                }
                let _ = tx.send((token, res));
                let _ = waker.wake();
            });
            self.pending.push(Pending {
                token,
                stream: name,
                config: scfg,
                source,
                deadline: Instant::now() + Duration::from_secs(3600),
                since: Instant::now(),
                trigger: true,
            });
            return None;
        }
        self.start_and_wait(token, name, scfg, source)
    }

    /// Starts the stream's input if needed; answers now if its buffer exists, else queues.
    fn start_and_wait(
        &mut self,
        token: mio::Token,
        name: String,
        scfg: Value,
        source: String,
    ) -> Option<mist_core::control::Response> {
        if let Err(e) = self.ensure_input(&name, &source, &scfg) {
            return Some(refusal(&name, e.to_string()));
        }
        if self.stream_ready(&name) {
            return Some(answer_ok(name, scfg));
        }
        self.pending.push(Pending {
            token,
            stream: name,
            config: scfg,
            source,
            deadline: Instant::now() + input_wait(),
            since: Instant::now(),
            trigger: false,
        });
        None
    }

    /// Fires a trigger whose answer is ignored, entirely off the event loop.
    pub fn fire_background(&self, name: &str, stream: Option<&str>, payload: String) {
        // Queued on the engine's worker pool, in per-stream order.
        triggers::Engine::global().emit_with(&self.cfg.config.triggers, name, stream, &payload);
    }

    /// Fires a trigger and waits for its blocking handlers (at most 15 s).
    pub fn fire_blocking(
        &self,
        name: &str,
        stream: Option<&str>,
        payload: &str,
    ) -> triggers::Outcome {
        triggers::fire(&self.cfg.config.triggers, name, stream, payload)
    }

    /// The blocking triggers for the request of `token` finished.
    pub fn trigger_done(
        &mut self,
        token: mio::Token,
        res: TriggerResult,
    ) -> Option<mist_core::control::Response> {
        let i = self
            .pending
            .iter()
            .position(|p| p.token == token && p.trigger)?;
        let p = self.pending.remove(i);
        if !res.ok {
            return Some(refusal(&p.stream, res.error));
        }
        if let Some((req, fallback)) = res.rewritten {
            return self.control_resolved(token, req, false, fallback);
        }
        let source = match res.source {
            Some(s) => {
                info!(
                    "stream {}: source {s} from the STREAM_SOURCE trigger",
                    p.stream
                );
                s
            }
            None => p.source,
        };
        self.start_and_wait(token, p.stream, p.config, source)
    }

    /// Whether a stream's buffer exists in shared memory. A live buffer is ready as soon as it
    /// exists (a publisher sets the tracks later); a VoD stream once its input has set the track
    /// table, so that a viewer answered now finds something to play.
    pub fn stream_ready(&self, name: &str) -> bool {
        let n = name.to_string();
        shm_call(move || mist_shm::stream_status(&n))
            .is_some_and(|r| r.is_ok_and(|s| !s.ended && (s.live || !s.tracks.is_empty())))
    }
}

/// On a terminal (stdin and stdout both ttys), asks whether to create an account and enable the
/// default protocols when the config has none, as MistServer does. Without a terminal it never
/// asks.
pub fn interactive_setup(ctl: &mut Controller) {
    use std::io::{BufRead, Write};
    // SAFETY: isatty on the standard descriptors.
    let tty = unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 };
    if !tty {
        return;
    }
    let stdin = std::io::stdin();
    let ask = |q: &str| -> String {
        print!("{q}");
        let _ = std::io::stdout().flush();
        let mut l = String::new();
        let _ = stdin.lock().read_line(&mut l);
        l.trim().to_string()
    };
    if ctl.cfg.account.is_empty()
        && ask("Account not set, do you want to create an account? (y/n) > ")
            .starts_with(['y', 'Y'])
    {
        let user = ask("Username: ");
        let pass = ask("Password: ");
        if !user.is_empty() && !pass.is_empty() {
            ctl.cfg.set_account(&user, &auth::md5hex(pass.as_bytes()));
            ctl.mark_dirty();
        }
    }
    if ctl.cfg.config.protocols.is_empty()
        && ask("Protocols not set, do you want to enable default protocols? (y/n) > ")
            .starts_with(['y', 'Y'])
    {
        for name in ctl.caps.connectors.keys() {
            ctl.cfg.config.protocols.push(config::Protocol::new(name));
        }
        ctl.mark_dirty();
    }
}

impl Controller {
    /// `config` as the API shows it: each protocol gets `online` (1 running, 0 not running,
    /// "Not installed" when its binary is missing, "Served by HTTP" for HTTP-served ones).
    pub fn config_answer(&self) -> Value {
        let mut v = serde_json::to_value(&self.cfg.config).unwrap_or(Value::Null);
        if let Some(list) = v.get_mut("protocols").and_then(Value::as_array_mut) {
            for (p, entry) in self.cfg.config.protocols.iter().zip(list.iter_mut()) {
                let key = serde_json::to_string(p).unwrap_or_default();
                let running = self
                    .sup
                    .find(&Role::Protocol(key.clone()))
                    .is_some_and(|m| m.running());
                let online = if running {
                    json!(1)
                } else if self.missing.contains(&key)
                    && self.binary(&format!("MistOut{}", p.connector)).is_none()
                {
                    if HTTP_SERVED.contains(&p.connector.as_str()) {
                        json!("Served by HTTP")
                    } else {
                        json!("Not installed")
                    }
                } else if self.missing.contains(&key) {
                    json!("Served by HTTP")
                } else {
                    json!(0)
                };
                if let Some(o) = entry.as_object_mut() {
                    o.insert("online".into(), online);
                }
            }
        }
        v
    }

    /// The Prometheus path (`-S` or `config.prometheus`), without slashes.
    pub fn prometheus_path(&self) -> Option<String> {
        let p = self
            .opts
            .prometheus
            .clone()
            .or_else(|| self.cfg.config.prometheus.clone())?;
        let p = p.trim_matches('/').to_string();
        (!p.is_empty()).then_some(p)
    }

    /// Metrics in the Prometheus text format.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', " ")
        };
        let _ = writeln!(o, "# HELP mist_uptime_seconds Seconds since the controller started.\n# TYPE mist_uptime_seconds counter");
        let _ = writeln!(
            o,
            "mist_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        let _ = writeln!(
            o,
            "# HELP mist_children Running child processes by binary.\n# TYPE mist_children gauge"
        );
        let mut by_bin: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
        for m in &self.sup.children {
            let e = by_bin.entry(m.name.as_str()).or_default();
            e.0 += u32::from(m.running());
            e.1 += m.restarts;
        }
        for (b, (n, _)) in &by_bin {
            let _ = writeln!(o, "mist_children{{binary=\"{}\"}} {n}", esc(b));
        }
        let _ = writeln!(o, "# HELP mist_child_restarts_total Restarts of crashed children by binary.\n# TYPE mist_child_restarts_total counter");
        for (b, (_, r)) in &by_bin {
            let _ = writeln!(o, "mist_child_restarts_total{{binary=\"{}\"}} {r}", esc(b));
        }
        let streams = self.shm_streams().unwrap_or_default();
        let _ = writeln!(o, "# HELP mist_streams_active Streams present in shared memory.\n# TYPE mist_streams_active gauge");
        let _ = writeln!(
            o,
            "mist_streams_active {}",
            streams.iter().filter(|s| !s.ended).count()
        );
        let _ = writeln!(
            o,
            "# HELP mist_viewers Readers registered per stream.\n# TYPE mist_viewers gauge"
        );
        let mut bytes = Vec::new();
        for s in &streams {
            let users = self.shm.users(&s.name);
            let _ = writeln!(
                o,
                "mist_viewers{{stream=\"{}\"}} {}",
                esc(&s.name),
                users.len()
            );
            let (d, u) = users
                .iter()
                .fold((0u64, 0u64), |(d, u), x| (d + x.bytes_down, u + x.bytes_up));
            bytes.push((s.name.clone(), d, u));
        }
        let _ = writeln!(o, "# HELP mist_bytes_down Bytes sent to the current readers per stream.\n# TYPE mist_bytes_down gauge");
        for (n, d, _) in &bytes {
            let _ = writeln!(o, "mist_bytes_down{{stream=\"{}\"}} {d}", esc(n));
        }
        let _ = writeln!(o, "# HELP mist_bytes_up Bytes received from the current readers per stream.\n# TYPE mist_bytes_up gauge");
        for (n, _, u) in &bytes {
            let _ = writeln!(o, "mist_bytes_up{{stream=\"{}\"}} {u}", esc(n));
        }
        o.push_str(&self.sessions.metrics());
        o
    }
}

pub fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn controller_caps() -> Value {
    json!({
        "name": "Controller",
        "desc": "Config, API and process supervision",
        "optional": {
            "config": {"name": "Config file", "help": "Config file path", "option": "--config", "short": "c", "type": "str", "default": "config.json"},
            "port": {"name": "API port", "help": "API port", "option": "--port", "short": "p", "type": "uint", "default": 4242},
            "interface": {"name": "API interface", "help": "API bind address", "option": "--interface", "short": "i", "type": "str", "default": "0.0.0.0"},
            "account": {"name": "Account", "help": "user:password to create", "option": "--account", "short": "a", "type": "str"},
            "logfile": {"name": "Log file", "help": "Log to this file", "option": "--logfile", "short": "L", "type": "str"},
            "configrw": {"name": "Config sync", "help": "r, w or rw", "option": "--configrw", "short": "C", "type": "str", "default": "rw"},
            "debug": {"name": "Debug level", "help": "0-10", "option": "--debug", "short": "g", "type": "uint", "default": 4}
        }
    })
}

pub fn main() -> i32 {
    let opts = match Opts::try_parse() {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    if opts.version {
        println!("MistController {}", version_string());
        return EXIT_OK;
    }
    if opts.json {
        println!("{}", controller_caps());
        return EXIT_OK;
    }
    if let Some(a) = &opts.account {
        if !a.contains(':') || a.starts_with(':') {
            eprintln!("MistController: --account wants user:password");
            return EXIT_USAGE;
        }
    }
    if let Some(lf) = &opts.logfile {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(lf)
        {
            Ok(f) => {
                use std::os::fd::AsRawFd;
                // SAFETY: dup2 onto our own stderr.
                unsafe { libc::dup2(f.as_raw_fd(), 2) };
            }
            Err(e) => {
                eprintln!("MistController: cannot open log file {}: {e}", lf.display());
                return EXIT_CONFIG;
            }
        }
    }
    log::init("MistController", opts.debug.unwrap_or(log::DEFAULT_LEVEL));
    let logs: LogRing = Arc::new(Mutex::new(VecDeque::new()));
    {
        let ring = logs.clone();
        log::set_hook(move |lvl, msg| push_log(&ring, lvl, format!("MistController: {msg}")));
    }
    std::panic::set_hook(Box::new(|pi| {
        log::emit(Level::Error, format_args!("panic: {pi}"));
    }));

    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config.json"));
    let cfg = match Config::load(&config_path) {
        Ok(Some(c)) => {
            info!("config loaded from {}", config_path.display());
            c
        }
        Ok(None) => {
            info!(
                "no config at {}; starting on the built-in default",
                config_path.display()
            );
            config::default_config()
        }
        Err(e) => {
            mist_core::fail!("{e}");
            return EXIT_CONFIG;
        }
    };
    if let Some(d) = opts.debug.or(cfg.config.debug) {
        log::set_level(d);
    }
    server::run(opts, cfg, config_path, logs)
}
