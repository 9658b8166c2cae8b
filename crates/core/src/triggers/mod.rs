//! Triggers (INTERFACES §5): run the handlers configured under `config.triggers.NAME`.
//!
//! A handler is an executable path (exec'd without a shell; argv[1] = trigger name, payload on
//! stdin, environment `MIST_TRIGGER`, `MIST_TRIG_DEF`, `MIST_PID`, `MIST_INSTANCE`, `MIST_NAME`,
//! `MIST_TUUID`, `MIST_TIME`, `MIST_DATE`; the answer is its stdout) or an `http://`/`https://`
//! URL (payload POSTed with the `X-Trigger*` headers, 5 s per attempt, 5 attempts, a 2xx needed
//! for an answer). See `docs/triggers.md`.
//!
//! The [`Engine`] is what processes use: [`Engine::global`] holds the trigger config of this
//! process (the controller installs it with [`Engine::set_config`]; the processes it spawns read
//! the file named by `MIST_TRIGGERS`, which the controller keeps current), a bounded worker pool
//! runs non-blocking handlers in per-stream order, and a cap bounds how many callers may wait
//! on blocking handlers at once. The short forms are [`fire_event`] (waits for blocking
//! handlers, returns the [`Outcome`]) and [`emit`] (never waits).
//!
//! Answers (§5.2): used verbatim as values; as booleans see [`is_true`] (empty = false). A
//! handler's `default` (else `"true"`) is its answer when it is blank, fails, is killed, prints
//! more than [`MAX_ANSWER`] bytes, or is not `sync`.

mod handler;
pub mod pool;
pub mod session_modes;
pub mod tls;
pub mod viewers;

pub use handler::{
    http_date, run_exec, run_http, uuid_v4, HandlerError, Identity, GIVE_UP_AFTER, HTTP_TIMEOUT,
    HTTP_TRIES, KILL_AFTER, MAX_ANSWER, STOP_AFTER,
};

use crate::config::TriggerHandler;
use crate::names;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The trigger section of the config: trigger name → handlers.
pub type Triggers = BTreeMap<String, Vec<TriggerHandler>>;

/// Environment variable naming the trigger file a controller's children read.
pub const ENV_TRIGGERS: &str = "MIST_TRIGGERS";
/// Worker threads for non-blocking handlers (per process).
pub const WORKERS: usize = 8;
/// Non-blocking events queued at most (per process); more are dropped with a log line.
pub const MAX_QUEUED: usize = 10_000;
/// Callers waiting on blocking handlers at most (per process); more get the default answers
/// at once, with a log line.
pub const MAX_WAITERS: usize = 256;

/// Triggers that are not stream-specific: their handlers' `streams` lists are ignored (§5.1).
pub const GLOBAL: &[&str] = &[
    "SYSTEM_START",
    "SYSTEM_STOP",
    "OUTPUT_START",
    "OUTPUT_STOP",
    "RTMP_PUSH_REWRITE",
    "PUSH_REWRITE",
    "USER_END",
    "LIVEPEER_SEGMENT_REJECTED",
];

/// Whether trigger `name` ignores the handlers' `streams` lists.
pub fn is_global(name: &str) -> bool {
    GLOBAL.contains(&name)
}

/// MistServer's boolean reading of an answer: ignoring leading whitespace and case, it starts with
/// `1`, `yes`, `true` or `cont`. Empty is false.
pub fn is_true(answer: &str) -> bool {
    let a = answer.trim_start().to_ascii_lowercase();
    ["1", "yes", "true", "cont"]
        .iter()
        .any(|p| a.starts_with(p))
}

/// Joins payload lines with `\n`, no trailing newline.
pub fn payload(lines: &[&str]) -> String {
    lines.join("\n")
}

/// §5.1 stream matching of one `streams` list: empty = all; an entry matches the full name, the
/// base name (`live` matches `live+cam`) or, ending in `+`, a prefix (`live+` matches
/// `live+cam`); `#tag` matches a tag of the stream; `!x` negates (a matching negation
/// excludes); a list of only negations means "all except".
pub fn stream_matches(list: &[String], stream: &str, tags: &[String]) -> bool {
    stream_matches_by(list, stream, |t| tags.iter().any(|x| x == t))
}

/// [`stream_matches`] with the stream's tags given as a lookup, asked only for `#tag` entries
/// (so a list without one never looks tags up).
pub fn stream_matches_by(list: &[String], stream: &str, has_tag: impl Fn(&str) -> bool) -> bool {
    if list.is_empty() {
        return true;
    }
    let base = names::base_name(stream);
    let m = |e: &str| match e.strip_prefix('#') {
        Some(tag) => !tag.is_empty() && has_tag(tag),
        None => {
            e == stream || e == base || (e.ends_with('+') && e.len() > 1 && stream.starts_with(e))
        }
    };
    let mut positives = false;
    let mut matched = false;
    for e in list {
        match e.strip_prefix('!') {
            Some(neg) => {
                if m(neg) {
                    return false;
                }
            }
            None => {
                positives = true;
                matched |= m(e);
            }
        }
    }
    !positives || matched
}

/// Whether some handler's `streams` list has a `#tag` entry (negated or not): only then does the
/// controller share the streams' tags with its children.
pub fn uses_tags(triggers: &Triggers) -> bool {
    triggers.values().flatten().any(|h| {
        h.streams
            .iter()
            .any(|e| e.trim_start_matches('!').starts_with('#'))
    })
}

/// The tags of streams as the controller knows them, for `#tag` entries (§5.1): a stream has the
/// `tags` of its config (a wildcard stream `live+alice` those of `live`) and the tags given to
/// it, by its full name, at run time (`tag_stream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTags {
    /// The `tags` of stream configs, by config (base) name.
    #[serde(default)]
    pub config: BTreeMap<String, Vec<String>>,
    /// Tags given at run time, by full stream name.
    #[serde(default)]
    pub runtime: BTreeMap<String, Vec<String>>,
}

impl StreamTags {
    /// Whether `stream` has `tag`.
    pub fn has(&self, stream: &str, tag: &str) -> bool {
        let is = |l: Option<&Vec<String>>| l.is_some_and(|l| l.iter().any(|t| t == tag));
        is(self.runtime.get(stream)) || is(self.config.get(names::base_name(stream)))
    }

    /// No stream has a tag.
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.runtime.is_empty()
    }
}

/// Whether a handler applies to `stream` (no `streams` list = all; see [`stream_matches`];
/// `#tag` entries see the tags this process knows). A `None` stream (global trigger) matches
/// every handler.
pub fn applies(h: &TriggerHandler, stream: Option<&str>) -> bool {
    match stream {
        None => true,
        Some(s) => Engine::global().matches(&h.streams, s),
    }
}

/// The handlers of trigger `name` that apply to `stream` (global triggers ignore the list);
/// `#tag` entries see the tags this process knows (the controller's, shared through the
/// trigger file).
pub fn handlers<'a>(
    triggers: &'a Triggers,
    name: &str,
    stream: Option<&str>,
) -> Vec<&'a TriggerHandler> {
    Engine::global().handlers_in(triggers, name, stream)
}

/// [`handlers`] with the stream's tags given.
pub fn handlers_tagged<'a>(
    triggers: &'a Triggers,
    name: &str,
    stream: Option<&str>,
    tags: &[String],
) -> Vec<&'a TriggerHandler> {
    handlers_by(triggers, name, stream, |t| tags.iter().any(|x| x == t))
}

/// [`handlers`] with the stream's tags given as a lookup (asked only for `#tag` entries).
pub fn handlers_by<'a>(
    triggers: &'a Triggers,
    name: &str,
    stream: Option<&str>,
    has_tag: impl Fn(&str) -> bool,
) -> Vec<&'a TriggerHandler> {
    let global = is_global(name);
    triggers
        .get(name)
        .map(|l| {
            l.iter()
                .filter(|h| {
                    !h.handler.is_empty()
                        && (global
                            || match stream {
                                None => true,
                                Some(s) => stream_matches_by(&h.streams, s, &has_tag),
                            })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether anything is configured for this trigger and stream.
pub fn exists(triggers: &Triggers, name: &str, stream: Option<&str>) -> bool {
    !handlers(triggers, name, stream).is_empty()
}

/// A handler's `default`, else `"true"`.
pub fn default_answer(h: &TriggerHandler) -> String {
    h.default.clone().unwrap_or_else(|| "true".to_string())
}

/// The `params` of a handler (used by LIVE_BANDWIDTH as its threshold), as text.
pub fn params(h: &TriggerHandler) -> Option<String> {
    match h.extra.get("params")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        v => Some(v.to_string()),
    }
}

/// Runs one handler and returns its answer (its default, with one log line, when it fails or
/// times out).
pub fn run_handler(h: &TriggerHandler, name: &str, payload: &str) -> String {
    run_handler_as(h, name, payload, &Engine::global().identity())
}

fn run_handler_as(h: &TriggerHandler, name: &str, payload: &str, id: &Identity) -> String {
    let res = if h.handler.starts_with("http://") || h.handler.starts_with("https://") {
        let budget = if h.sync {
            GIVE_UP_AFTER
        } else {
            HTTP_TIMEOUT * (HTTP_TRIES + 1)
        };
        run_http(&h.handler, name, payload, id, budget)
    } else {
        run_exec(&h.handler, name, payload, &default_answer(h), id)
    };
    match res {
        Ok(a) => a,
        Err(e) => {
            crate::warn!(
                "trigger {name}: handler {}: {e}; using the default answer",
                h.handler
            );
            default_answer(h)
        }
    }
}

/// The result of firing a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether any sync handler ran.
    pub handled: bool,
    /// All answers read as booleans, ANDed (non-sync handlers count with their default; true when
    /// no handler matched).
    pub ok: bool,
    /// The last sync handler's answer, verbatim (`None` when none ran).
    pub answer: Option<String>,
}

impl Outcome {
    /// No handler ran: allowed, no answer.
    pub const NONE: Outcome = Outcome {
        handled: false,
        ok: true,
        answer: None,
    };
}

/// Fires a trigger with an explicit config: sync handlers run in order on this thread, the others
/// are queued on the global engine's worker pool (per-stream order).
pub fn fire(triggers: &Triggers, name: &str, stream: Option<&str>, payload: &str) -> Outcome {
    Engine::global().fire_with(triggers, name, stream, payload)
}

/// Fires a trigger from the global engine's config and waits for its blocking handlers (at most
/// 15 s each). The payload lines are joined with `\n`.
pub fn fire_event(name: &str, stream: Option<&str>, lines: &[&str]) -> Outcome {
    Engine::global().fire(name, stream, lines)
}

/// Fires a trigger from the global engine's config without waiting: every handler (sync ones
/// too, whose answers are then ignored) runs on the worker pool, in per-stream order.
pub fn emit(name: &str, stream: Option<&str>, lines: &[&str]) {
    Engine::global().emit(name, stream, lines)
}

/// What the controller writes for its children (the file named by `MIST_TRIGGERS`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    /// This server's instance id.
    #[serde(default)]
    pub instance: String,
    /// This server's name.
    #[serde(default)]
    pub name: String,
    /// The configured triggers.
    #[serde(default)]
    pub triggers: Triggers,
    /// The session settings (`sessionViewerMode`, `tknMode`, …).
    #[serde(default)]
    pub sessions: session_modes::SessionModes,
    /// The streams' tags, for `#tag` entries (empty unless some handler has one).
    #[serde(default, skip_serializing_if = "StreamTags::is_empty")]
    pub tags: StreamTags,
}

struct FileSource {
    path: PathBuf,
    /// The file's (mtime, inode, length) when last read: the controller replaces it by a rename,
    /// so a new inode tells a change that came within the same mtime tick.
    stamp: Option<(SystemTime, u64, u64)>,
    checked: Option<Instant>,
}

/// The trigger engine of one process.
pub struct Engine {
    config: Mutex<Arc<Shared>>,
    file: Mutex<Option<FileSource>>,
    pool: pool::Pool,
    waiters: AtomicUsize,
}

/// How often a child re-reads the trigger file's mtime.
const RECHECK: Duration = Duration::from_millis(500);

impl Engine {
    /// An engine with no triggers configured.
    pub fn new() -> Engine {
        Engine {
            config: Mutex::new(Arc::new(Shared::default())),
            file: Mutex::new(None),
            pool: pool::Pool::new(WORKERS, MAX_QUEUED),
            waiters: AtomicUsize::new(0),
        }
    }

    /// This process's engine. In a child of the controller it reads the file named by
    /// `MIST_TRIGGERS` (and re-reads it when it changes).
    pub fn global() -> &'static Engine {
        static G: OnceLock<Engine> = OnceLock::new();
        G.get_or_init(|| {
            let e = Engine::new();
            if let Some(p) = std::env::var_os(ENV_TRIGGERS).filter(|p| !p.is_empty()) {
                *e.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(FileSource {
                    path: PathBuf::from(p),
                    stamp: None,
                    checked: None,
                });
            }
            e
        })
    }

    /// Installs the config (controller), and when `file` is given writes it there for the
    /// children (atomically; only when it changed). Returns whether it changed.
    pub fn set_config(&self, shared: Shared, file: Option<&Path>) -> bool {
        let mut cur = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if **cur == shared {
            return false;
        }
        if let Some(path) = file {
            if let Err(e) = write_shared(path, &shared) {
                crate::warn!("cannot write the trigger file {}: {e}", path.display());
            }
        }
        *cur = Arc::new(shared);
        true
    }

    /// Whether `same` holds of the config [`set_config`](Self::set_config) would compare with
    /// (the trigger file is not re-read): lets a caller check its config against the current
    /// one without building a [`Shared`].
    pub fn config_is(&self, same: impl FnOnce(&Shared) -> bool) -> bool {
        let cur = self.config.lock().unwrap_or_else(|e| e.into_inner());
        same(&cur)
    }

    /// The current config (re-read from the trigger file if it changed).
    pub fn config(&self) -> Arc<Shared> {
        self.refresh();
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refresh(&self) {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(src) = f.as_mut() else { return };
        if src.checked.is_some_and(|t| t.elapsed() < RECHECK) {
            return;
        }
        src.checked = Some(Instant::now());
        let m = std::fs::metadata(&src.path).ok().and_then(|m| {
            use std::os::unix::fs::MetadataExt;
            Some((m.modified().ok()?, m.ino(), m.len()))
        });
        if m == src.stamp {
            return;
        }
        src.stamp = m;
        let parsed = std::fs::read(&src.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Shared>(&b).ok());
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(parsed.unwrap_or_default());
    }

    /// `MIST_INSTANCE` / `MIST_NAME` of this process's handlers.
    pub fn identity(&self) -> Identity {
        let c = self.config();
        Identity {
            instance: c.instance.clone(),
            name: c.name.clone(),
        }
    }

    /// Whether any handler is configured for this trigger and stream.
    pub fn exists(&self, name: &str, stream: Option<&str>) -> bool {
        !self
            .handlers_in(&self.config().triggers, name, stream)
            .is_empty()
    }

    /// Whether `stream` matches a `streams` list, its `#tag` entries seeing the tags of this
    /// engine's config.
    pub fn matches(&self, list: &[String], stream: &str) -> bool {
        let c = std::cell::OnceCell::new();
        stream_matches_by(list, stream, |t| {
            c.get_or_init(|| self.config()).tags.has(stream, t)
        })
    }

    /// The handlers of trigger `name` in `triggers` that apply to `stream`, `#tag` entries
    /// seeing the tags of this engine's config (read only when such an entry is met).
    pub fn handlers_in<'a>(
        &self,
        triggers: &'a Triggers,
        name: &str,
        stream: Option<&str>,
    ) -> Vec<&'a TriggerHandler> {
        let c = std::cell::OnceCell::new();
        handlers_by(triggers, name, stream, |t| {
            stream.is_some_and(|s| c.get_or_init(|| self.config()).tags.has(s, t))
        })
    }

    /// Fires `name` from this engine's config; waits for blocking handlers.
    pub fn fire(&self, name: &str, stream: Option<&str>, lines: &[&str]) -> Outcome {
        let c = self.config();
        self.fire_with(&c.triggers, name, stream, &payload(lines))
    }

    /// Fires `name` without waiting for anything: every handler (sync ones too, their answers
    /// ignored) is queued on the worker pool, in per-stream order.
    pub fn emit(&self, name: &str, stream: Option<&str>, lines: &[&str]) {
        let c = self.config();
        self.emit_with(&c.triggers, name, stream, &payload(lines));
    }

    /// [`Engine::emit`] that runs `first` when the event's turn comes, just before its handlers
    /// (at once when no handler matches or the queue is full). CONN_CLOSE uses it to take back
    /// the claim that lets the controller fire it for a process that dies before its turn.
    pub fn emit_then(
        &self,
        name: &str,
        stream: Option<&str>,
        lines: &[&str],
        first: impl FnOnce() + Send + 'static,
    ) {
        let c = self.config();
        let list = self.handlers_in(&c.triggers, name, stream);
        if list.is_empty() {
            return first();
        }
        let key = stream.map_or_else(|| format!("#{name}"), str::to_string);
        let id = self.identity();
        let jobs: Vec<TriggerHandler> = list.into_iter().cloned().collect();
        let (n, p) = (name.to_string(), payload(lines));
        let first = Arc::new(Mutex::new(Some(first)));
        let again = first.clone();
        let r = self.pool.submit(&key, move || {
            if let Some(f) = again.lock().unwrap_or_else(|e| e.into_inner()).take() {
                f();
            }
            for h in &jobs {
                run_handler_as(h, &n, &p, &id);
            }
        });
        if let Err(e) = r {
            crate::warn!("trigger {name}: {e}; event dropped");
            if let Some(f) = first.lock().unwrap_or_else(|e| e.into_inner()).take() {
                f();
            }
        }
    }

    /// [`Engine::emit`] with an explicit config and payload.
    pub fn emit_with(&self, triggers: &Triggers, name: &str, stream: Option<&str>, payload: &str) {
        let list = self.handlers_in(triggers, name, stream);
        if list.is_empty() {
            return;
        }
        let key = stream.map_or_else(|| format!("#{name}"), str::to_string);
        let id = self.identity();
        let jobs: Vec<TriggerHandler> = list.into_iter().cloned().collect();
        let (n, p) = (name.to_string(), payload.to_string());
        self.submit(&key, name, move || {
            for h in &jobs {
                run_handler_as(h, &n, &p, &id);
            }
        });
    }

    /// Waits (at most `timeout`) until the queued non-blocking handlers have run: call before a
    /// process exits after firing.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.pool.wait_idle(timeout)
    }

    fn submit(&self, key: &str, name: &str, job: impl FnOnce() + Send + 'static) {
        if let Err(e) = self.pool.submit(key, job) {
            crate::warn!("trigger {name}: {e}; event dropped");
        }
    }

    /// Fires with an explicit config (`#tag` entries see the tags of this engine's config): sync
    /// handlers run in order on this thread (at most [`MAX_WAITERS`] callers at once), the others
    /// are queued in per-stream order.
    pub fn fire_with(
        &self,
        triggers: &Triggers,
        name: &str,
        stream: Option<&str>,
        payload: &str,
    ) -> Outcome {
        let list = self.handlers_in(triggers, name, stream);
        if list.is_empty() {
            return Outcome::NONE;
        }
        let id = self.identity();
        let mut out = Outcome::NONE;
        let asyncs: Vec<TriggerHandler> = list
            .iter()
            .filter(|h| !h.sync)
            .map(|h| (*h).clone())
            .collect();
        if !asyncs.is_empty() {
            for h in &asyncs {
                out.ok &= is_true(&default_answer(h));
            }
            let key = stream.map_or_else(|| format!("#{name}"), str::to_string);
            let (n, p, id) = (name.to_string(), payload.to_string(), id.clone());
            self.submit(&key, name, move || {
                for h in &asyncs {
                    run_handler_as(h, &n, &p, &id);
                }
            });
        }
        let syncs: Vec<&TriggerHandler> = list.into_iter().filter(|h| h.sync).collect();
        if syncs.is_empty() {
            return out;
        }
        let waiting = self.waiters.fetch_add(1, Ordering::SeqCst);
        let over = waiting >= MAX_WAITERS;
        if over {
            crate::warn!(
                "trigger {name}: {waiting} callers already wait for blocking handlers; using the default answers"
            );
        }
        for h in syncs {
            let a = if over {
                default_answer(h)
            } else {
                run_handler_as(h, name, payload, &id)
            };
            out.handled = true;
            out.ok &= is_true(&a);
            out.answer = Some(a);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

fn write_shared(path: &Path, s: &Shared) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // Handler URLs may carry secrets: readable by the controller's user and group only, like
    // the control socket.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(s).map_err(std::io::Error::other)?)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    fn handler(h: &str, sync: bool, streams: &[&str], def: Option<&str>) -> TriggerHandler {
        TriggerHandler {
            handler: h.to_string(),
            sync,
            streams: streams.iter().map(|s| s.to_string()).collect(),
            default: def.map(str::to_string),
            extra: Default::default(),
        }
    }

    fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mist-trig-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn truthiness() {
        for t in ["1", "yes", "TRUE", "  Continue", "true\n", "yessir"] {
            assert!(is_true(t), "{t}");
        }
        for f in ["", "0", "no", "false", " nope", "t"] {
            assert!(!is_true(f), "{f}");
        }
        assert_eq!(payload(&["a", "b"]), "a\nb");
    }

    #[test]
    fn stream_filter() {
        let h = handler("/x", true, &["live"], None);
        assert!(applies(&h, Some("live")));
        assert!(applies(&h, Some("live+cam")));
        assert!(!applies(&h, Some("other")));
        assert!(applies(&handler("/x", true, &[], None), Some("any")));
        let mut t = BTreeMap::new();
        t.insert(
            "STREAM_PUSH".to_string(),
            vec![h, handler("", true, &[], None)],
        );
        assert_eq!(handlers(&t, "STREAM_PUSH", Some("live")).len(), 1);
        assert!(!exists(&t, "STREAM_PUSH", Some("x")));
        assert!(!exists(&t, "OTHER", None));
    }

    #[test]
    fn exec_handler_gets_payload_args_env() {
        let d = tmpdir("exec");
        let s = script(
            &d,
            "h.sh",
            &format!(
                "cat > {0}/in; echo \"$1 $MIST_TRIGGER $MIST_TRIG_DEF\" > {0}/meta; echo no",
                d.display()
            ),
        );
        let mut t = BTreeMap::new();
        t.insert(
            "STREAM_PUSH".to_string(),
            vec![handler(&s, true, &[], Some("maybe"))],
        );
        let o = fire(
            &t,
            "STREAM_PUSH",
            Some("live"),
            &payload(&["live", "1.2.3.4", "RTMP", "rtmp://x/live"]),
        );
        assert_eq!(
            o,
            Outcome {
                handled: true,
                ok: false,
                answer: Some("no\n".into())
            }
        );
        assert_eq!(
            std::fs::read_to_string(d.join("in")).unwrap(),
            "live\n1.2.3.4\nRTMP\nrtmp://x/live"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("meta")).unwrap().trim(),
            "STREAM_PUSH STREAM_PUSH maybe"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn failing_handler_uses_default() {
        let h = handler("/nonexistent/handler", true, &[], Some("false"));
        assert_eq!(run_handler(&h, "X", ""), "false");
        let h = handler("/nonexistent/handler", true, &[], None);
        assert!(is_true(&run_handler(&h, "X", "")));
        let h = handler("https://example.invalid/x", true, &[], Some("nope"));
        assert_eq!(run_handler(&h, "X", ""), "nope");
    }

    #[test]
    fn async_handlers_do_not_block_or_count() {
        let d = tmpdir("async");
        let s = script(&d, "slow.sh", "sleep 2; echo no");
        let mut t = BTreeMap::new();
        t.insert(
            "OUTPUT_START".to_string(),
            vec![handler(&s, false, &[], None)],
        );
        let t0 = Instant::now();
        let o = fire(&t, "OUTPUT_START", None, "{}");
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert_eq!(
            o,
            Outcome {
                handled: false,
                ok: true,
                answer: None
            }
        );
    }

    #[test]
    fn http_handler() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let srv = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            loop {
                let n = c.read(&mut tmp).unwrap();
                buf.extend_from_slice(&tmp[..n]);
                let s = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = s.find("\r\n\r\n") {
                    if s.len() >= i + 4 + "live\n1.2.3.4".len() {
                        break;
                    }
                }
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnewname")
                .unwrap();
            String::from_utf8(buf).unwrap()
        });
        let h = handler(&format!("http://127.0.0.1:{port}/hook"), true, &[], None);
        assert_eq!(run_handler(&h, "PUSH_REWRITE", "live\n1.2.3.4"), "newname");
        let req = srv.join().unwrap();
        assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("X-Trigger: PUSH_REWRITE\r\n"));
        assert!(req.contains("X-Trigger-UUID: "));
        assert!(req.contains("X-Trigger-UnixMillis: "));
        assert!(req.ends_with("\r\n\r\nlive\n1.2.3.4"));
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn h(handler: &str, sync: bool, streams: &[&str], def: Option<&str>) -> TriggerHandler {
        TriggerHandler {
            handler: handler.to_string(),
            sync,
            streams: streams.iter().map(|s| s.to_string()).collect(),
            default: def.map(str::to_string),
            extra: Default::default(),
        }
    }

    fn v(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matching_rules() {
        let tags = v(&["vip"]);
        assert!(stream_matches(&[], "x", &[]));
        assert!(stream_matches(&v(&["live"]), "live+alice", &[]));
        assert!(stream_matches(&v(&["live+alice"]), "live+alice", &[]));
        assert!(!stream_matches(&v(&["live+bob"]), "live+alice", &[]));
        assert!(stream_matches(&v(&["#vip"]), "other", &tags));
        assert!(!stream_matches(&v(&["#vip"]), "other", &[]));
        assert!(!stream_matches(&v(&["!live"]), "live+a", &[]));
        assert!(stream_matches(&v(&["!live"]), "vod", &[]));
        assert!(!stream_matches(&v(&["live", "!live+a"]), "live+a", &[]));
        assert!(stream_matches(&v(&["live", "!live+a"]), "live+b", &[]));
        assert!(!stream_matches(&v(&["!#vip"]), "x", &tags));
        // Global triggers ignore the list.
        let mut t = Triggers::new();
        t.insert(
            "SYSTEM_START".into(),
            vec![h("/x", true, &["nothing"], None)],
        );
        t.insert("STREAM_END".into(), vec![h("/x", true, &["nothing"], None)]);
        assert_eq!(handlers(&t, "SYSTEM_START", Some("other")).len(), 1);
        assert_eq!(handlers(&t, "STREAM_END", Some("other")).len(), 0);
    }

    #[test]
    fn names_prefixes_and_tags() {
        // A full name, a base name, a `base+` prefix.
        assert!(stream_matches(&v(&["live+"]), "live+alice", &[]));
        assert!(!stream_matches(&v(&["live+"]), "live", &[]));
        assert!(!stream_matches(&v(&["live+"]), "lively+x", &[]));
        assert!(!stream_matches(&v(&["+"]), "live+x", &[]));
        assert!(!stream_matches(&v(&["liv"]), "live+x", &[]));
        assert!(stream_matches(&v(&["x", "live+a"]), "live+a", &[]));
        // `#` alone names no tag.
        assert!(!stream_matches(&v(&["#"]), "x", &v(&[""])));
        // A list without a `#tag` entry never looks tags up.
        let asked = std::cell::Cell::new(0);
        let count = |_: &str| {
            asked.set(asked.get() + 1);
            true
        };
        assert!(stream_matches_by(&v(&["live", "!vod"]), "live+a", count));
        assert_eq!(asked.get(), 0);
        assert!(stream_matches_by(&v(&["other", "#vip"]), "live+a", count));
        assert_eq!(asked.get(), 1);

        let mut tags = StreamTags::default();
        tags.config.insert("vip".into(), v(&["vip", "gold"]));
        tags.config.insert("live".into(), v(&["pub"]));
        tags.runtime.insert("live+b".into(), v(&["vip"]));
        tags.runtime.insert("live".into(), v(&["baseonly"]));
        // Config tags by base name: the wildcard streams of `vip` have them.
        assert!(tags.has("vip", "gold"));
        assert!(tags.has("vip+a", "vip"));
        // Run-time tags by full name, beside the base's config tags.
        assert!(tags.has("live+b", "vip") && tags.has("live+b", "pub"));
        assert!(!tags.has("live+c", "vip"));
        assert!(tags.has("live+c", "pub"));
        // The base stream's run-time tags are its own, not its wildcard streams'.
        assert!(tags.has("live", "baseonly"));
        assert!(!tags.has("live+c", "baseonly"));

        let mut t = Triggers::new();
        t.insert(
            "STREAM_BUFFER".into(),
            vec![h("/vip", false, &["#vip"], None)],
        );
        t.insert(
            "CONN_PLAY".into(),
            vec![h("/notvip", true, &["!#vip"], None)],
        );
        t.insert("STREAM_END".into(), vec![h("/any", false, &["live"], None)]);
        assert!(uses_tags(&t));
        t.remove("CONN_PLAY");
        t.remove("STREAM_BUFFER");
        assert!(!uses_tags(&t));
        t.insert(
            "STREAM_BUFFER".into(),
            vec![h("/vip", false, &["#vip"], None)],
        );
        t.insert(
            "CONN_PLAY".into(),
            vec![h("/notvip", true, &["!#vip"], None)],
        );

        // An engine matches with the tags of its config, for explicit trigger lists too.
        let e = Engine::new();
        e.set_config(
            Shared {
                triggers: t.clone(),
                tags,
                ..Default::default()
            },
            None,
        );
        for (s, vip) in [
            ("vip", true),
            ("vip+a", true),
            ("live+b", true),
            ("live+c", false),
            ("live", false),
        ] {
            assert_eq!(e.exists("STREAM_BUFFER", Some(s)), vip, "{s}");
            assert_eq!(
                e.handlers_in(&t, "STREAM_BUFFER", Some(s)).len(),
                usize::from(vip),
                "{s}"
            );
            assert_eq!(e.exists("CONN_PLAY", Some(s)), !vip, "{s}");
            assert_eq!(e.matches(&v(&["#vip"]), s), vip, "{s}");
        }
        // Without tags, `#vip` matches nothing.
        let bare = Engine::new();
        assert!(!bare.exists("STREAM_BUFFER", Some("vip+a")));
        assert_eq!(
            handlers_tagged(&t, "STREAM_BUFFER", Some("x"), &v(&["vip"])).len(),
            1
        );
        assert!(handlers_tagged(&t, "STREAM_BUFFER", Some("x"), &[]).is_empty());
    }

    #[test]
    fn a_child_reads_the_tags_from_the_trigger_file() {
        let d = std::env::temp_dir().join(format!("mist-eng-tagfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("triggers.json");
        let mut t = Triggers::new();
        t.insert(
            "STREAM_BUFFER".into(),
            vec![h("/vip", false, &["#vip"], None)],
        );
        let mut shared = Shared {
            triggers: t,
            ..Default::default()
        };
        let controller = Engine::new();
        controller.set_config(shared.clone(), Some(&file));
        let child = Engine::new();
        *child.file.lock().unwrap() = Some(FileSource {
            path: file.clone(),
            stamp: None,
            checked: None,
        });
        assert!(!child.exists("STREAM_BUFFER", Some("live+b")));
        // Tagged at run time: the file is rewritten, the child sees it at its next check.
        shared.tags.runtime.insert("live+b".into(), v(&["vip"]));
        assert!(controller.set_config(shared.clone(), Some(&file)));
        child.file.lock().unwrap().as_mut().unwrap().checked = None;
        assert!(child.exists("STREAM_BUFFER", Some("live+b")));
        assert!(!child.exists("STREAM_BUFFER", Some("live+c")));
        // Another tag instead (likely within the same mtime tick).
        shared.tags.runtime.insert("live+b".into(), v(&["gold"]));
        assert!(controller.set_config(shared, Some(&file)));
        child.file.lock().unwrap().as_mut().unwrap().checked = None;
        assert!(!child.exists("STREAM_BUFFER", Some("live+b")));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn both_config_forms() {
        let t: Triggers = serde_json::from_str(
            r##"{"STREAM_BUFFER": [["/a", true, ["live", "#vip"]]],
                "PUSH_REWRITE": [{"handler": "http://x/", "sync": "1", "default": "no", "params": 5}]}"##,
        )
        .unwrap();
        let a = &t["STREAM_BUFFER"][0];
        assert_eq!((a.handler.as_str(), a.sync), ("/a", true));
        assert_eq!(a.streams, ["live", "#vip"]);
        let b = &t["PUSH_REWRITE"][0];
        assert!(b.sync);
        assert_eq!(b.default.as_deref(), Some("no"));
        assert_eq!(params(b).as_deref(), Some("5"));
        // Written back as objects.
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["STREAM_BUFFER"][0]["handler"], "/a");
    }

    fn script(body: &str, tag: &str) -> (PathBuf, String) {
        let d = std::env::temp_dir().join(format!("mist-eng-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("h.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        (d, p.display().to_string())
    }

    #[test]
    fn answers_verbatim_and_defaults() {
        let (d, s) = script("printf ' live+alice\\n'", "verb");
        let e = Engine::new();
        let mut t = Triggers::new();
        t.insert("PUSH_REWRITE".into(), vec![h(&s, true, &[], Some("x"))]);
        let o = e.fire_with(&t, "PUSH_REWRITE", None, "a");
        assert_eq!(o.answer.as_deref(), Some(" live+alice\n"));
        assert!(!o.ok);
        // Empty answer = false.
        let (_d2, s2) = script("true", "empty");
        t.insert("STREAM_PUSH".into(), vec![h(&s2, true, &[], None)]);
        assert!(!e.fire_with(&t, "STREAM_PUSH", Some("s"), "a").ok);
        // Async handlers answer their default.
        t.insert(
            "STREAM_PUSH".into(),
            vec![h(&s2, false, &[], Some("false"))],
        );
        assert!(!e.fire_with(&t, "STREAM_PUSH", Some("s"), "a").ok);
        // Nonzero exit without output, not executable, missing: the default.
        let (_d3, s3) = script("exit 3", "fail");
        t.insert("STREAM_PUSH".into(), vec![h(&s3, true, &[], Some("nope"))]);
        assert_eq!(
            e.fire_with(&t, "STREAM_PUSH", Some("s"), "a")
                .answer
                .as_deref(),
            Some("nope")
        );
        let noexec = d.join("noexec");
        std::fs::write(&noexec, "#!/bin/sh\necho yes\n").unwrap();
        t.insert(
            "STREAM_PUSH".into(),
            vec![h(&noexec.display().to_string(), true, &[], Some("nope"))],
        );
        assert_eq!(
            e.fire_with(&t, "STREAM_PUSH", Some("s"), "a")
                .answer
                .as_deref(),
            Some("nope")
        );
    }

    #[test]
    fn a_hung_handler_and_what_it_started_are_stopped() {
        // The handler's child keeps stdout open: the answer still comes at the 15 s bound, and
        // the child is killed with the handler's process group.
        let marker = std::env::temp_dir().join(format!("mist-eng-hungpid-{}", std::process::id()));
        let (_d, s) = script(
            &format!("sleep 60 & echo $! > {}; wait", marker.display()),
            "hung",
        );
        let e = Engine::new();
        let mut t = Triggers::new();
        t.insert("STREAM_PUSH".into(), vec![h(&s, true, &[], Some("late"))]);
        let o = e.fire_with(&t, "STREAM_PUSH", Some("s"), "a");
        assert_eq!(o.answer.as_deref(), Some("late"));
        let pid = std::fs::read_to_string(&marker).unwrap();
        let _ = std::fs::remove_file(&marker);
        // Reaped by init once killed; give it a moment.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !Path::new(&format!("/proc/{}", pid.trim())).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                    .is_ok_and(|st| st.contains(") Z "))
        });
        assert!(gone, "the handler's child {pid} survived");
    }

    #[test]
    fn emit_then_runs_first_before_the_handlers_or_at_once() {
        let out = std::env::temp_dir().join(format!("mist-eng-thenout-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let (dir, s) = script(&format!("echo handler >> {}", out.display()), "then");
        let e = Engine::new();
        let mut t = Triggers::new();
        t.insert("CONN_CLOSE".into(), vec![h(&s, false, &["live"], None)]);
        e.set_config(
            Shared {
                triggers: t,
                ..Default::default()
            },
            None,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let o = out.clone();
        e.emit_then(
            "CONN_CLOSE",
            Some("live+a"),
            &["live+a", "h", "RTMP", "u"],
            move || {
                // Runs before the handler: the file has no line of it yet.
                let had = std::fs::read_to_string(&o).unwrap_or_default();
                let _ = tx.send(had);
            },
        );
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).as_deref(), Ok(""));
        assert!(e.flush(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "handler\n");
        // No handler for this stream: at once, on this thread.
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = flag.clone();
        e.emit_then("CONN_CLOSE", Some("vod"), &["vod"], move || {
            f.store(true, Ordering::SeqCst)
        });
        assert!(flag.load(Ordering::SeqCst));
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn huge_output_gives_default() {
        let (_d, s) = script("head -c 10000000 /dev/zero | tr '\\0' y; sleep 30", "huge");
        let e = Engine::new();
        let mut t = Triggers::new();
        t.insert("STREAM_PUSH".into(), vec![h(&s, true, &[], Some("dflt"))]);
        let o = e.fire_with(&t, "STREAM_PUSH", Some("s"), "a");
        assert_eq!(o.answer.as_deref(), Some("dflt"));
    }

    #[test]
    fn env_is_set() {
        let d = std::env::temp_dir().join(format!("mist-eng-envout-{}", std::process::id()));
        let (_d, s) = script(
            &format!("env | grep ^MIST_ | sort > {}; echo ok", d.display()),
            "env",
        );
        let e = Engine::new();
        e.set_config(
            Shared {
                instance: "iid1".into(),
                name: "srv".into(),
                triggers: Triggers::new(),
                ..Default::default()
            },
            None,
        );
        let mut t = Triggers::new();
        t.insert("STREAM_PUSH".into(), vec![h(&s, true, &[], None)]);
        assert_eq!(
            e.fire_with(&t, "STREAM_PUSH", Some("s"), "a")
                .answer
                .as_deref(),
            Some("ok\n")
        );
        let env = std::fs::read_to_string(&d).unwrap();
        for k in [
            "MIST_TRIGGER=STREAM_PUSH",
            "MIST_TRIG_DEF=true",
            "MIST_INSTANCE=iid1",
            "MIST_NAME=srv",
            "MIST_PID=",
            "MIST_TUUID=",
            "MIST_TIME=",
            "MIST_DATE=",
        ] {
            assert!(env.contains(k), "{k} missing in {env}");
        }
        let _ = std::fs::remove_file(&d);
    }
}
