//! Pushes and recordings (INTERFACES §2 `auto_push`/`push_settings`, §3.4): `push_start`,
//! `push_stop`, `push_list`, `push_auto_add`/`_remove`/`_list`, and the supervision of the push
//! processes (`MistOut<X> -s STREAM TARGET`, one per push, reading the stream's shm as a
//! viewer).
//!
//! Auto-push rules live in the config under `auto_push` (`{id: {stream, target, scheduletime?,
//! completetime?, start_rule?, end_rule?, inhibit?}}`); a rule's `stream` is a full name or
//! `base+` (every wildcard stream of `base`). A stream that becomes active gets its pushes at
//! once; a push missing on a stream that is already active (a rule added, a push that ended) is
//! started `push_settings.wait` seconds later. A push whose target cannot be opened (exit code
//! 3 of the recorders) is one error in the log and in `push_list`, and is retried with a
//! backoff that starts at `wait` and doubles up to 5 minutes; `maxspeed` bounds the starts per
//! second: auto-pushes, their retries and `push_start` pushes over that rate wait (state
//! `waiting` in `push_list`) for a later second.

use super::children::{describe_exit, signal, Managed, Role};
use super::Controller;
use mist_core::push::{inhibited, stream_matches};
use mist_core::{info, warn};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Longest delay between retries of a failing auto-push.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long a finished manual push with an error stays in `push_list`.
const KEEP_FAILED: Duration = Duration::from_secs(300);

/// One push: a running process, or one waiting to be retried.
pub struct Push {
    pub id: u64,
    pub stream: String,
    /// The target as given (with `$variables` and parameters).
    pub target: String,
    /// The target PUSH_OUT_START gave instead.
    pub rewritten: Option<String>,
    /// The file being written, as the process last reported it.
    pub actual: String,
    /// The auto-push rule that made it.
    pub rule: Option<String>,
    pub proc: Option<Managed>,
    pub started: Instant,
    pub bytes: u64,
    pub media_ms: i64,
    pub state: &'static str,
    pub error: String,
    pub logs: Vec<String>,
    pub retry_at: Option<Instant>,
    pub backoff: Duration,
    pub done_at: Option<Instant>,
    pub stopping: bool,
    /// The running process reported why it failed (`recording_end`): kept as the error.
    pub reported: bool,
}

type TriggerAnswer = (u64, Option<String>);

pub struct Pushes {
    /// PUSH_OUT_START answers from their threads: (push id, answer).
    trig: (
        std::sync::mpsc::Sender<TriggerAnswer>,
        std::sync::mpsc::Receiver<TriggerAnswer>,
    ),
    pub list: Vec<Push>,
    next_id: u64,
    last_scan: Option<Instant>,
    /// Streams active at the last scan, and since when.
    active: HashMap<String, Instant>,
    /// Starts in the current second (maxspeed).
    second: Option<(Instant, u32)>,
    /// When each rule was added (for `wait` on streams already active).
    rule_seen: HashMap<String, Instant>,
    /// Stream tags given at run time (`tag_stream`).
    pub tags: super::stream_tags::Tags,
    /// Custom variables whose value comes from running their target.
    pub vars: super::variables::Runs,
}

impl Default for Pushes {
    fn default() -> Pushes {
        Pushes {
            trig: std::sync::mpsc::channel(),
            list: Vec::new(),
            next_id: 0,
            last_scan: None,
            active: HashMap::new(),
            second: None,
            rule_seen: HashMap::new(),
            tags: Default::default(),
            vars: Default::default(),
        }
    }
}

/// Fires a trigger whose answer is ignored (the trigger engine's entry point for pushes).
fn fire(ctl: &Controller, name: &str, stream: &str, payload: String) {
    ctl.fire_background(name, Some(stream), payload);
}

fn settings(ctl: &Controller) -> (Duration, u32) {
    let s = ctl.cfg.push_settings.clone().unwrap_or(Value::Null);
    let wait = s
        .get("wait")
        .and_then(Value::as_f64)
        .unwrap_or(3.0)
        .max(0.0);
    // A number (MistServer stores an integer) or a numeric string; anything else: no limit.
    let maxspeed = s
        .get("maxspeed")
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|n| n.is_finite() && *n >= 1.0)
        .map_or(0, |n| n.min(u32::MAX as f64) as u32);
    (Duration::from_secs_f64(wait), maxspeed)
}

/// The `auto_push` map of the config (legacy `autopushes` arrays are converted).
pub fn rules(ctl: &mut Controller) -> Map<String, Value> {
    if let Some(Value::Array(old)) = ctl.cfg.autopushes.take() {
        let mut m = stored(ctl);
        for r in old {
            if let Some((id, v)) = rule_from(&r) {
                m.insert(id, v);
            }
        }
        ctl.cfg.extra.insert("auto_push".into(), Value::Object(m));
        ctl.mark_dirty();
    }
    stored(ctl)
}

fn stored(ctl: &Controller) -> Map<String, Value> {
    ctl.cfg
        .extra
        .get("auto_push")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// One rule from the array form `[stream, target, start?, end?, startVar, startOp, startVal,
/// endVar, endOp, endVal]` or the object form; its id is the caller's `id` or the md5 of its
/// JSON.
fn rule_from(v: &Value) -> Option<(String, Value)> {
    let mut o = Map::new();
    let mut id = None;
    match v {
        Value::Array(a) => {
            o.insert("stream".into(), a.first()?.as_str()?.into());
            o.insert("target".into(), a.get(1)?.as_str()?.into());
            for (i, k) in [(2, "scheduletime"), (3, "completetime")] {
                if let Some(n) = a.get(i).and_then(Value::as_u64).filter(|n| *n > 0) {
                    o.insert(k.into(), n.into());
                }
            }
            if a.len() >= 7 {
                o.insert("start_rule".into(), json!(a[4..7]));
            }
            if a.len() >= 10 {
                o.insert("end_rule".into(), json!(a[7..10]));
            }
        }
        Value::Object(m) => {
            m.get("stream")?.as_str()?;
            m.get("target")?.as_str()?;
            for (k, v) in m {
                match k.as_str() {
                    "id" => id = v.as_str().map(str::to_string),
                    "stream" | "target" | "scheduletime" | "completetime" | "start_rule"
                    | "end_rule" | "inhibit" | "x-LSP-notes" => {
                        o.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        _ => return None,
    }
    let v = Value::Object(o);
    let id = id.unwrap_or_else(|| super::auth::md5hex(v.to_string().as_bytes()));
    Some((id, v))
}

/// The legacy list form of the rules.
fn legacy_list(rules: &Map<String, Value>) -> Value {
    Value::Array(
        rules
            .values()
            .map(|r| {
                let mut a = vec![
                    r["stream"].clone(),
                    r["target"].clone(),
                    r.get("scheduletime").cloned().unwrap_or(json!(0)),
                    r.get("completetime").cloned().unwrap_or(json!(0)),
                ];
                for k in ["start_rule", "end_rule"] {
                    if let Some(Value::Array(x)) = r.get(k) {
                        a.extend(x.iter().cloned());
                    }
                }
                Value::Array(a)
            })
            .collect(),
    )
}

/// `push_auto_add`: one rule (array or object form), or a list or map of them.
pub fn auto_add(ctl: &mut Controller, arg: &Value) -> Map<String, Value> {
    let mut m = rules(ctl);
    let mut add = |v: &Value| match rule_from(v) {
        Some((id, r)) => {
            m.insert(id, r);
        }
        None => warn!("push_auto_add: ignoring {v}"),
    };
    match arg {
        Value::Array(a) if a.first().is_some_and(Value::is_string) => add(arg),
        Value::Array(a) => a.iter().for_each(add),
        Value::Object(o) if o.contains_key("stream") => add(arg),
        Value::Object(o) => {
            for (id, v) in o {
                let mut v = v.clone();
                if let Value::Object(x) = &mut v {
                    x.entry("id").or_insert_with(|| id.clone().into());
                }
                add(&v);
            }
        }
        _ => {}
    }
    ctl.cfg.extra.insert("auto_push".into(), Value::Object(m));
    ctl.mark_dirty();
    auto_list(ctl)
}

/// `push_auto_remove`: ids, stream names, `[stream, target]` specs, or a list of those.
pub fn auto_remove(ctl: &mut Controller, arg: &Value) -> Map<String, Value> {
    let mut m = rules(ctl);
    let matches = |id: &str, r: &Value, x: &Value| match x {
        Value::String(s) => s == id || r["stream"] == *s,
        Value::Array(a) if a.first().is_some_and(Value::is_string) => {
            r["stream"] == a[0] && a.get(1).is_none_or(|t| r["target"] == *t)
        }
        Value::Object(o) => {
            o.get("stream").is_some_and(|s| r["stream"] == *s)
                && o.get("target").is_none_or(|t| r["target"] == *t)
        }
        _ => false,
    };
    let specs: Vec<Value> = match arg {
        Value::Array(a) if !a.first().is_some_and(Value::is_string) => a.clone(),
        Value::Array(a) if a.len() == 2 && a.iter().all(Value::is_string) => vec![arg.clone()],
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    m.retain(|id, r| !specs.iter().any(|x| matches(id, r, x)));
    ctl.cfg.extra.insert("auto_push".into(), Value::Object(m));
    ctl.mark_dirty();
    auto_list(ctl)
}

/// `push_auto_list` answer: the `auto_push` map and the legacy list.
pub fn auto_list(ctl: &mut Controller) -> Map<String, Value> {
    let m = rules(ctl);
    let mut out = Map::new();
    out.insert("push_auto_list".into(), legacy_list(&m));
    out.insert("auto_push".into(), Value::Object(m));
    out
}

/// The output binary for a target, in MistServer's order: `name:rest` naming an output, then
/// the first output whose `push_urls` glob matches (parameters after the last `?` ignored).
fn output_for(ctl: &Controller, target: &str) -> Option<(String, String)> {
    if let Some((name, rest)) = target.split_once(':') {
        if !rest.starts_with("//") {
            if let Some(k) = ctl
                .caps
                .connectors
                .keys()
                .find(|k| k.eq_ignore_ascii_case(name))
            {
                return Some((format!("MistOut{k}"), rest.to_string()));
            }
        }
    }
    let base = target.rsplit_once('?').map_or(target, |(b, _)| b);
    for (k, c) in &ctl.caps.connectors {
        let urls = c.get("push_urls").and_then(Value::as_array);
        if urls.is_some_and(|u| {
            u.iter()
                .filter_map(Value::as_str)
                .any(|p| super::caps::glob_match(p, base))
        }) {
            return Some((format!("MistOut{k}"), target.to_string()));
        }
    }
    // (3) A remote http(s)://…/x.EXT: the output of `/*.EXT` files, which writes it with PUT.
    let lower = base.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let ext = base
            .rsplit_once('.')
            .map(|(_, e)| e)
            .filter(|e| !e.contains('/'))?;
        let want = format!("/*.{}", ext.to_ascii_lowercase());
        for (k, c) in &ctl.caps.connectors {
            let urls = c.get("push_urls").and_then(Value::as_array);
            if urls.is_some_and(|u| u.iter().any(|p| p.as_str() == Some(want.as_str()))) {
                return Some((format!("MistOut{k}"), target.to_string()));
            }
        }
    }
    None
}

/// The custom `$variables` (`config.variables[name].value`).
fn custom_vars(ctl: &Controller) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(Value::Object(vars)) = ctl.cfg.extra.get("variables") {
        for (k, v) in vars {
            let val = match v {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("value").map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                Value::Array(a) => a.get(1).and_then(Value::as_str).map(str::to_string),
                _ => None,
            };
            if let Some(val) = val {
                m.insert(k.clone(), val);
            }
        }
    }
    m
}

/// Custom `$variables` for the push process, as JSON (`MIST_VARIABLES`).
fn variables_env(ctl: &Controller) -> String {
    serde_json::to_string(&custom_vars(ctl)).unwrap_or_else(|_| "{}".into())
}

/// The tags of a stream (for `#tag` matchers): its config `tags` and `tag_stream` ones.
fn stream_tags(ctl: &Controller, stream: &str) -> Vec<String> {
    super::stream_tags::of(ctl, stream)
}

/// Whether an auto-push rule lets its push of `stream` run now (`start_rule`/`end_rule`,
/// evaluated with that stream's `$variables`).
fn rule_allows(rule: &Value, stream: &str, custom: &BTreeMap<String, String>) -> bool {
    if rule.get("start_rule").is_none() && rule.get("end_rule").is_none() {
        return true;
    }
    let vars = mist_core::push::Vars {
        stream,
        custom: custom.clone(),
        ..Default::default()
    };
    mist_core::push::rule_allows(rule, &vars, &mist_core::push::LocalTime::now())
}

impl Pushes {
    /// `push_settings.maxspeed`: whether one more push may start at `now` (and counts it).
    /// Starts are counted in windows of one second from the first start of the window; 0 is
    /// no limit. Auto-pushes, their retries and `push_start` all go through here.
    fn may_start(&mut self, maxspeed: u32, now: Instant) -> bool {
        if maxspeed == 0 {
            return true;
        }
        let s = self.second.get_or_insert((now, 0));
        if now.duration_since(s.0) >= Duration::from_secs(1) {
            *s = (now, 0);
        }
        if s.1 >= maxspeed {
            return false;
        }
        s.1 += 1;
        true
    }
}

/// Starts a push: through PUSH_OUT_START first when a handler is configured (run off the
/// loop; its answer rewrites the target, an empty answer aborts), else at once.
fn launch(ctl: &mut Controller, p: &mut Push) {
    let t = &ctl.cfg.config.triggers;
    if !mist_core::triggers::exists(t, "PUSH_OUT_START", Some(&p.stream)) {
        spawn(ctl, p);
        return;
    }
    p.state = "trigger";
    p.retry_at = None;
    let (t, id, stream, target) = (t.clone(), p.id, p.stream.clone(), p.target.clone());
    let tx = ctl.pushes.trig.0.clone();
    let waker = ctl.spawner.waker.clone();
    std::thread::spawn(move || {
        let payload = mist_core::triggers::payload(&[&stream, &target]);
        let out = mist_core::triggers::fire(&t, "PUSH_OUT_START", Some(&stream), &payload);
        let _ = tx.send((id, out.answer));
        let _ = waker.wake();
    });
}

/// PUSH_OUT_START answers that came back.
fn trigger_answers(ctl: &mut Controller, wait: Duration) {
    while let Ok((id, answer)) = ctl.pushes.trig.1.try_recv() {
        let Some(i) = ctl.pushes.list.iter().position(|p| p.id == id) else {
            continue;
        };
        let mut p = std::mem::replace(&mut ctl.pushes.list[i], new_push_placeholder());
        match answer {
            Some(a) if a.trim().is_empty() => {
                p.state = "error";
                p.error = "aborted by PUSH_OUT_START".into();
                info!("push {} of {}: {}", p.id, p.stream, p.error);
                p.done_at = Some(Instant::now());
                if p.rule.is_some() {
                    p.backoff = (p.backoff * 2).clamp(wait.max(Duration::from_secs(1)), RETRY_MAX);
                    p.retry_at = Some(Instant::now() + p.backoff);
                }
            }
            Some(a) => {
                let a = a.trim();
                if a != p.target {
                    info!(
                        "push {} of {}: PUSH_OUT_START rewrote the target to {a}",
                        p.id, p.stream
                    );
                    p.rewritten = Some(a.to_string());
                }
                spawn(ctl, &mut p);
            }
            None => spawn(ctl, &mut p),
        }
        ctl.pushes.list[i] = p;
    }
}

/// Starts the process of a push (a new one, or a retry).
fn spawn(ctl: &mut Controller, p: &mut Push) {
    let Some((bin, target)) = output_for(ctl, p.rewritten.as_deref().unwrap_or(&p.target)) else {
        return failed(p, format!("no output can push to {}", p.target));
    };
    let Some(path) = ctl.binary(&bin) else {
        return failed(p, format!("{bin} not found"));
    };
    let mut m = Managed {
        role: Role::Push(p.id),
        name: bin.clone(),
        path,
        args: vec![
            "-g".into(),
            ctl.debug_level().to_string(),
            "-s".into(),
            p.stream.clone(),
            target,
        ],
        child: None,
        started: Instant::now(),
        backoff: Duration::ZERO,
        restart_at: None,
        restart: false,
        stopping: None,
        restarts: 0,
        last_exit: None,
    };
    let mut env = ctl.spawner.env.clone();
    env.push(("MST_ORIG_TARGET".into(), p.target.clone()));
    p.rewritten = None;
    env.push(("MIST_VARIABLES".into(), variables_env(ctl)));
    let sp = super::children::Spawner {
        env,
        lines: ctl.spawner.lines.clone(),
        waker: ctl.spawner.waker.clone(),
    };
    match sp.spawn(&mut m) {
        Ok(()) => {
            info!(
                "push {}: {bin} (pid {}) {} → {}",
                p.id,
                m.pid().unwrap_or(0),
                p.stream,
                p.target
            );
            p.proc = Some(m);
            p.started = Instant::now();
            p.state = "active";
            p.retry_at = None;
            p.reported = false;
        }
        Err(e) => failed(p, format!("cannot start {bin}: {e}")),
    }
}

/// A push whose process could not be started. It stays in `push_list` with its error, as one
/// whose process failed does: a `push_start` push for [`KEEP_FAILED`], an auto-push until its
/// retry.
fn failed(p: &mut Push, error: String) {
    p.state = "error";
    p.done_at = Some(Instant::now());
    if p.logs.last() != Some(&error) {
        mist_core::error!("push {} of {}: {error}", p.id, p.stream);
        p.logs.push(error.clone());
        if p.logs.len() > 50 {
            p.logs.remove(0);
        }
    }
    p.error = error;
}

fn new_push(ctl: &mut Controller, stream: &str, target: &str, rule: Option<String>) -> Push {
    ctl.pushes.next_id += 1;
    Push {
        id: ctl.pushes.next_id,
        stream: stream.to_string(),
        target: target.to_string(),
        rewritten: None,
        actual: String::new(),
        rule,
        proc: None,
        started: Instant::now(),
        bytes: 0,
        media_ms: 0,
        state: "starting",
        error: String::new(),
        logs: Vec::new(),
        retry_at: None,
        backoff: Duration::ZERO,
        done_at: None,
        stopping: false,
        reported: false,
    }
}

/// Why a `push_start` did nothing (the API answer's `push_start_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushStartError {
    /// The argument lacks the stream or the target (or one is not a string).
    #[error("push_start needs a stream and a target")]
    Arguments,
}

/// `push_start`: `[stream, target]` or `{stream, target}`; `base+` starts one per active
/// wildcard stream, `#tag` one per active stream with that tag.
pub fn start(ctl: &mut Controller, arg: &Value) -> Result<(), PushStartError> {
    let (stream, target) = match arg {
        Value::Array(a) => (a.first(), a.get(1)),
        Value::Object(o) => (o.get("stream"), o.get("target")),
        _ => (None, None),
    };
    let (Some(stream), Some(target)) = (
        stream.and_then(Value::as_str),
        target.and_then(Value::as_str),
    ) else {
        return Err(PushStartError::Arguments);
    };
    let streams: Vec<String> = if stream.ends_with('+') || stream.starts_with('#') {
        ctl.active_streams()
            .into_iter()
            .filter(|s| stream_matches(stream, s, &stream_tags(ctl, s)))
            .collect()
    } else {
        vec![mist_core::names::sanitize(stream)]
    };
    let (_, maxspeed) = settings(ctl);
    for s in streams {
        let mut p = new_push(ctl, &s, target, None);
        let now = Instant::now();
        if ctl.pushes.may_start(maxspeed, now) {
            launch(ctl, &mut p);
        } else {
            // Over `maxspeed`: `tick` starts it once the rate allows.
            p.state = "waiting";
            p.retry_at = Some(now);
        }
        ctl.pushes.list.push(p);
    }
    Ok(())
}

/// `push_stop`: push id(s) (the pid in `push_list`) or a stream name.
pub fn stop(ctl: &mut Controller, arg: &Value) {
    let list: Vec<Value> = match arg {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    for p in ctl.pushes.list.iter_mut() {
        let pid = p.proc.as_ref().and_then(Managed::pid).unwrap_or(0) as u64;
        let hit = list.iter().any(|x| match x {
            Value::Number(n) => n.as_u64().is_some_and(|n| n == pid || n == p.id),
            Value::String(s) => *s == p.stream || s.parse::<u64>().is_ok_and(|n| n == pid),
            _ => false,
        });
        if hit {
            p.stopping = true;
            p.retry_at = None;
            if pid > 0 {
                signal(pid as u32, libc::SIGTERM);
            } else {
                p.done_at = Some(Instant::now() - KEEP_FAILED);
            }
        }
    }
}

/// `push_list`: `[[pid, stream, origTarget, actualTarget, lastLogs, status], …]`.
pub fn list(ctl: &Controller) -> Value {
    Value::Array(
        ctl.pushes
            .list
            .iter()
            .map(|p| {
                let pid = p.proc.as_ref().and_then(Managed::pid).unwrap_or(0);
                json!([
                    pid,
                    p.stream,
                    p.target,
                    p.actual,
                    p.logs.iter().rev().take(10).rev().collect::<Vec<_>>(),
                    status(p),
                ])
            })
            .collect(),
    )
}

fn status(p: &Push) -> Value {
    let mut s = json!({
        "id": p.id,
        "state": p.state,
        "bytes": p.bytes,
        "active_seconds": if p.proc.is_some() { p.started.elapsed().as_secs() } else { 0 },
        "media_ms": p.media_ms,
    });
    if !p.error.is_empty() {
        s["error"] = p.error.clone().into();
    }
    if let Some(r) = &p.rule {
        s["auto_push"] = r.clone().into();
    }
    s
}

/// `push_status_update` from a push process: `{pid, target, bytes, media_ms}`.
pub fn status_update(ctl: &mut Controller, arg: &Value) {
    let Some(pid) = arg.get("pid").and_then(Value::as_u64) else {
        return;
    };
    if let Some(p) = ctl
        .pushes
        .list
        .iter_mut()
        .find(|p| p.proc.as_ref().and_then(Managed::pid) == Some(pid as u32))
    {
        if let Some(t) = arg.get("target").and_then(Value::as_str) {
            p.actual = t.to_string();
        }
        if let Some(b) = arg.get("bytes").and_then(Value::as_u64) {
            p.bytes = b;
        }
        if let Some(m) = arg.get("media_ms").and_then(Value::as_i64) {
            p.media_ms = m;
        }
    }
}

/// `recording_end` from a push process: fires RECORDING_END (files only) and OUTPUT_END with
/// its payload.
pub fn recording_end(ctl: &mut Controller, arg: &Value) {
    let (Some(stream), Some(payload)) = (
        arg.get("stream").and_then(Value::as_str),
        arg.get("payload").and_then(Value::as_str),
    ) else {
        return;
    };
    let lines: Vec<&str> = payload.split('\n').collect();
    if let Some(p) = arg.get("pid").and_then(Value::as_u64).and_then(|pid| {
        ctl.pushes
            .list
            .iter_mut()
            .find(|p| p.proc.as_ref().and_then(Managed::pid) == Some(pid as u32))
    }) {
        // What the file holds, as the recorder counted it on disk (a write that failed is
        // not in it).
        if let Some(b) = lines.get(3).and_then(|b| b.parse().ok()) {
            p.bytes = b;
        }
        if let Some(m) = lines.get(7).and_then(|m| m.parse().ok()) {
            p.media_ms = m;
        }
        if let Some(t) = lines.get(1) {
            p.actual = t.to_string();
        }
        if lines.get(10).is_some_and(|c| *c != "0") {
            p.error = lines.get(11).unwrap_or(&"").to_string();
            p.reported = true;
        }
    }
    // A network push (`network`: true) is no recording: OUTPUT_END only.
    if !arg.get("network").and_then(Value::as_bool).unwrap_or(false) {
        fire(ctl, "RECORDING_END", stream, payload.to_string());
    }
    fire(ctl, "OUTPUT_END", stream, payload.to_string());
}

/// Reaps push processes, fires PUSH_END, retries, and starts the auto-pushes that are due.
/// Called from the event loop on every turn.
pub fn tick(ctl: &mut Controller) {
    let now = Instant::now();
    let (wait, maxspeed) = settings(ctl);
    trigger_answers(ctl, wait);
    super::variables::tick(ctl);
    // Reap.
    let mut ended = Vec::new();
    for p in ctl.pushes.list.iter_mut() {
        let Some(m) = p.proc.as_mut() else { continue };
        let Some(c) = m.child.as_mut() else { continue };
        let Ok(Some(st)) = c.try_wait() else { continue };
        let pid = c.id();
        let how = describe_exit(st);
        p.proc = None;
        p.done_at = Some(now);
        let code = st.code();
        let line = format!("{} (pid {pid}) {how}", p.target);
        p.logs.push(line);
        if p.logs.len() > 50 {
            p.logs.remove(0);
        }
        match code {
            Some(0) => {
                p.state = "finished";
                info!("push {} of {} to {} finished", p.id, p.stream, p.target);
            }
            Some(3) => {
                p.state = "error";
                let first = p.error.is_empty();
                p.error = format!("cannot open the target {}", p.target);
                if first {
                    mist_core::error!("push {} of {}: {}", p.id, p.stream, p.error);
                }
            }
            _ => {
                p.state = "error";
                // The reason the push gave (recording_end) says more than its exit code.
                if !p.reported {
                    p.error = format!("{} {how}", p.target);
                }
                warn!("push {} of {}: {}", p.id, p.stream, p.error);
            }
        }
        if p.rule.is_some() && !p.stopping {
            // Retry: at `wait` after a clean end, with a doubling backoff after errors.
            p.backoff = if code == Some(0) {
                wait
            } else {
                (p.backoff * 2).clamp(wait.max(Duration::from_secs(1)), RETRY_MAX)
            };
            p.retry_at = Some(now + p.backoff);
        }
        ended.push((
            p.id,
            p.stream.clone(),
            p.target.clone(),
            p.actual.clone(),
            p.logs.clone(),
            status(p),
        ));
    }
    for (id, stream, target, actual, logs, st) in ended {
        let payload = mist_core::triggers::payload(&[
            &id.to_string(),
            &stream,
            &target,
            &actual,
            &Value::from(logs).to_string(),
            &st.to_string(),
        ]);
        fire(ctl, "PUSH_END", &stream, payload);
    }
    // Scan the streams and rules at most twice a second.
    if ctl
        .pushes
        .last_scan
        .is_some_and(|t| now.duration_since(t) < Duration::from_millis(500))
    {
        return;
    }
    ctl.pushes.last_scan = Some(now);
    let rules = rules(ctl);
    let active: HashSet<String> = ctl.active_streams().into_iter().collect();
    ctl.pushes.tags.update(&active);
    let unix = super::now_unix();
    // Rules seen for the first time wait `wait` for streams already active.
    for id in rules.keys() {
        ctl.pushes.rule_seen.entry(id.clone()).or_insert(now);
    }
    ctl.pushes.rule_seen.retain(|id, _| rules.contains_key(id));
    let newly: HashSet<String> = active
        .iter()
        .filter(|s| !ctl.pushes.active.contains_key(*s))
        .cloned()
        .collect();
    ctl.pushes.active.retain(|s, _| active.contains(s));
    for s in &newly {
        ctl.pushes.active.insert(s.clone(), now);
    }
    // Forget auto-pushes of streams that went away, of removed rules, and old finished ones.
    ctl.pushes
        .list
        .retain(|p| kept(p, |r| rules.contains_key(r), &active, now));
    // Stop pushes past their rule's completetime.
    for p in ctl.pushes.list.iter_mut() {
        let Some(r) = p.rule.as_ref().and_then(|r| rules.get(r)) else {
            continue;
        };
        let complete = r.get("completetime").and_then(Value::as_u64).unwrap_or(0);
        if complete > 0 && unix >= complete && !p.stopping {
            p.stopping = true;
            p.retry_at = None;
            if let Some(pid) = p.proc.as_ref().and_then(Managed::pid) {
                info!("push {} of {}: completetime reached", p.id, p.stream);
                signal(pid, libc::SIGTERM);
            }
        }
    }
    // Stop pushes whose rule's start_rule no longer holds or whose end_rule holds.
    let custom = custom_vars(ctl);
    let mut held = HashSet::new();
    for p in ctl.pushes.list.iter_mut() {
        let Some(r) = p.rule.as_ref().and_then(|r| rules.get(r)) else {
            continue;
        };
        if p.stopping || rule_allows(r, &p.stream, &custom) {
            continue;
        }
        held.insert(p.id);
        p.retry_at = None;
        if let Some(pid) = p.proc.as_ref().and_then(Managed::pid) {
            info!(
                "push {} of {}: the conditions of its rule no longer hold; stopping",
                p.id, p.stream
            );
            p.stopping = true;
            signal(pid, libc::SIGTERM);
        } else if p.state != "trigger" {
            // A push waiting for its retry: gone; the rule starts it again when it holds.
            p.stopping = true;
            p.done_at = Some(now);
        }
    }
    // Retries and pushes waiting for `maxspeed` that are due, those waiting longest first (so
    // that pushes restarting often cannot keep a new one from its turn).
    let mut due = Vec::new();
    for (i, p) in ctl.pushes.list.iter().enumerate() {
        if p.proc.is_none() && p.retry_at.is_some_and(|t| t <= now) && !held.contains(&p.id) {
            due.push(i);
        }
    }
    due.sort_by_key(|&i| ctl.pushes.list[i].retry_at);
    for i in due {
        if !ctl.pushes.may_start(maxspeed, now) {
            break;
        }
        let mut p = std::mem::replace(&mut ctl.pushes.list[i], new_push_placeholder());
        if p.rule.is_none() {
            // A `push_start` that waited for `maxspeed`: started once, never retried.
            p.retry_at = None;
        }
        launch(ctl, &mut p);
        if p.rule.is_some() && p.proc.is_none() && p.state != "trigger" {
            // It could not even start (no output for the target…): back off.
            p.backoff = (p.backoff * 2).clamp(wait.max(Duration::from_secs(1)), RETRY_MAX);
            p.retry_at = Some(now + p.backoff);
        }
        ctl.pushes.list[i] = p;
    }
    // Auto-pushes missing on active streams.
    for (id, r) in &rules {
        let (Some(rs), Some(target)) = (
            r.get("stream").and_then(Value::as_str),
            r.get("target").and_then(Value::as_str),
        ) else {
            continue;
        };
        let sched = r.get("scheduletime").and_then(Value::as_u64).unwrap_or(0);
        let complete = r.get("completetime").and_then(Value::as_u64).unwrap_or(0);
        if (sched > 0 && unix < sched) || (complete > 0 && unix >= complete) {
            continue;
        }
        let rule_at = ctl.pushes.rule_seen.get(id).copied().unwrap_or(now);
        let mut matching: Vec<&String> = Vec::new();
        for s in &active {
            let tags = stream_tags(ctl, s);
            if stream_matches(rs, s, &tags) && !inhibited(r, s, &tags) {
                matching.push(s);
            }
        }
        for s in matching {
            if ctl
                .pushes
                .list
                .iter()
                .any(|p| p.rule.as_deref() == Some(id) && &p.stream == s)
            {
                continue;
            }
            if !rule_allows(r, s, &custom) {
                continue;
            }
            // A stream that became active now: at once; one already active: after `wait`.
            let since = ctl
                .pushes
                .active
                .get(s)
                .copied()
                .unwrap_or(now)
                .max(rule_at);
            let fresh = newly.contains(s);
            if !fresh && now.duration_since(since) < wait {
                continue;
            }
            let mut p = new_push(ctl, s, target, Some(id.clone()));
            if ctl.pushes.may_start(maxspeed, now) {
                launch(ctl, &mut p);
                // (While PUSH_OUT_START runs it is no retry: its answer starts or aborts it.)
                if p.proc.is_none() && p.state != "trigger" {
                    p.backoff = wait.max(Duration::from_secs(1));
                    p.retry_at = Some(now + p.backoff);
                }
            } else {
                // Over `maxspeed`: in the queue of the retries, in the order it came.
                p.state = "waiting";
                p.retry_at = Some(now);
            }
            ctl.pushes.list.push(p);
        }
    }
}

/// Whether a push stays in the list at a scan: running, waiting for its trigger or its turn, an
/// auto-push of a rule that still exists on a stream still active, or a `push_start` push that
/// failed less than [`KEEP_FAILED`] ago.
fn kept(
    p: &Push,
    rule_exists: impl Fn(&str) -> bool,
    active: &HashSet<String>,
    now: Instant,
) -> bool {
    p.proc.is_some()
        || p.state == "trigger"
        || (p.state == "waiting" && p.rule.is_none() && !p.stopping)
        || match &p.rule {
            Some(r) => !p.stopping && rule_exists(r) && active.contains(&p.stream),
            None => p.done_at.is_some_and(|t| {
                p.state == "error" && !p.stopping && now.duration_since(t) < KEEP_FAILED
            }),
        }
}

fn new_push_placeholder() -> Push {
    Push {
        id: 0,
        stream: String::new(),
        target: String::new(),
        rewritten: None,
        actual: String::new(),
        rule: None,
        proc: None,
        started: Instant::now(),
        bytes: 0,
        media_ms: 0,
        state: "",
        error: String::new(),
        logs: Vec::new(),
        retry_at: None,
        backoff: Duration::ZERO,
        done_at: None,
        stopping: false,
        reported: false,
    }
}

/// Stops every push process (controller shutdown): SIGTERM, then wait up to `grace` for them
/// to finish their files.
pub fn shutdown(ctl: &mut Controller, grace: Duration) {
    for p in ctl.pushes.list.iter() {
        if let Some(pid) = p.proc.as_ref().and_then(Managed::pid) {
            signal(pid, libc::SIGTERM);
        }
    }
    let end = Instant::now() + grace;
    for p in ctl.pushes.list.iter_mut() {
        let Some(c) = p.proc.as_mut().and_then(|m| m.child.as_mut()) else {
            continue;
        };
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= end => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxspeed_counts_starts_per_second() {
        let mut p = Pushes::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // 0: no limit.
        assert!((0..100).all(|_| p.may_start(0, t0)));
        // 2 a second: the third start of a window waits for the next one.
        assert!(p.may_start(2, ms(0)));
        assert!(p.may_start(2, ms(10)));
        assert!(!p.may_start(2, ms(500)));
        assert!(!p.may_start(2, ms(999)));
        assert!(p.may_start(2, ms(1000)));
        assert!(p.may_start(2, ms(1900)));
        assert!(!p.may_start(2, ms(1999)));
        assert!(p.may_start(2, ms(2000)));
        // 1 a second over 3 s: 3 starts.
        let mut p = Pushes::default();
        let n = (0..30).filter(|i| p.may_start(1, ms(i * 100))).count();
        assert_eq!(n, 3);
    }

    #[test]
    fn a_push_that_could_not_start_stays_listed_with_its_error() {
        let active: HashSet<String> = ["live".to_string()].into();
        let mut p = new_push_placeholder();
        p.stream = "live".into();
        failed(&mut p, "MistOutTS not found".into());
        failed(&mut p, "MistOutTS not found".into());
        assert_eq!(
            (p.state, p.error.as_str()),
            ("error", "MistOutTS not found")
        );
        assert_eq!(p.logs, ["MistOutTS not found"], "logged once");
        let now = Instant::now();
        assert!(kept(&p, |_| true, &active, now));
        assert!(!kept(&p, |_| true, &active, now + KEEP_FAILED));
        // Stopped by push_stop: gone at the next scan.
        p.stopping = true;
        assert!(!kept(&p, |_| true, &active, now));
        // An auto-push stays while its rule and stream do.
        let mut a = new_push_placeholder();
        a.stream = "live".into();
        a.rule = Some("r1".into());
        failed(&mut a, "cannot start MistOutTS: denied".into());
        assert!(kept(&a, |r| r == "r1", &active, now + KEEP_FAILED));
        assert!(!kept(&a, |_| false, &active, now));
        assert!(!kept(&a, |_| true, &HashSet::new(), now));
    }
}
