//! Custom `$variables` (INTERFACES §2 `variables`, §3.4 `variable_add`/`variable_remove`/
//! `variable_list`): `{name: {target?, interval?, value?, waitTime?}}` in the config, used by
//! push targets and by the `start_rule`/`end_rule` of auto-push rules.
//!
//! A variable with a `target` gets its value from running it, as MistServer does: at once when
//! it is added or changed, then every `interval` seconds (never again with interval 0, once it
//! gave a value). An `http(s)://` target is POSTed to (empty body, `X-Custom-Variable: NAME`)
//! and its 2xx answer is the value; anything else is a command, split at spaces and run without
//! a shell with `MIST_CUSTOM_VARIABLE=NAME` in its environment, its stdout the value (a command
//! that exits with a failure status gives none). Either may take `waitTime` seconds (default:
//! the interval, at least 1). The value is trimmed and cut to 127 bytes; `lastunix` says when
//! it was last run. A run that fails keeps the old value and is retried 2 s later, then after
//! waits that double up to a minute (or at the next interval, if that comes first), until one
//! succeeds. The runs happen off the controller's loop.

use super::Controller;
use mist_core::{info, warn};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

/// A fetched value is cut to this many bytes.
const MAX_VALUE: usize = 127;

/// The result of running one variable's target: (name, target, value or error).
type RunResult = (String, String, Result<String, RunError>);

/// Why a variable's target gave no value (logged with the variable and its target).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Http(Box<ureq::Error>),
    #[error("reading the answer: {0}")]
    ReadAnswer(std::io::Error),
    #[error("empty command")]
    EmptyCommand,
    #[error("{prog}: {source}")]
    Spawn {
        prog: String,
        source: std::io::Error,
    },
    #[error("no stdout")]
    NoStdout,
    #[error("reading its output: {0}")]
    ReadOutput(std::io::Error),
    /// The command did not end its output within the wait (seconds).
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// The command exited with a failure status.
    #[error("{0}")]
    Failed(std::process::ExitStatus),
}

/// The first retry of a variable whose run failed, and the longest wait between retries.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The wait before the next retry after a failed run (`prev`: the wait before this one).
fn next_backoff(prev: Option<Duration>) -> Duration {
    prev.map_or(RETRY_FIRST, |d| (d * 2).clamp(RETRY_FIRST, RETRY_MAX))
}

/// Whether a variable's target is to be run now (unix seconds): it never ran (`last` 0), its
/// interval passed, or a retry after a failure is due.
fn due(interval: u64, last: u64, now: u64, retry_due: bool) -> bool {
    last == 0 || retry_due || (interval > 0 && last + interval <= now)
}

/// Variables whose targets are being run.
pub struct Runs {
    running: HashSet<String>,
    /// Variables whose last run failed: when to retry, and the wait that led there.
    failed: HashMap<String, (Instant, Duration)>,
    tx: Sender<RunResult>,
    rx: Receiver<RunResult>,
    last_check: Option<Instant>,
}

impl Default for Runs {
    fn default() -> Runs {
        let (tx, rx) = channel();
        Runs {
            running: HashSet::new(),
            failed: HashMap::new(),
            tx,
            rx,
            last_check: None,
        }
    }
}

/// Names are cut to this length, as MistServer does.
const MAX_NAME: usize = 31;

/// A value as MistServer stores it: text.
fn text(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.clone()),
        Value::Null => Value::String(String::new()),
        other => Value::String(other.to_string()),
    }
}

fn number(v: &Value) -> Value {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
        .unwrap_or(Value::from(0))
}

fn stored(ctl: &Controller) -> Map<String, Value> {
    ctl.cfg
        .extra
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn save(ctl: &mut Controller, m: Map<String, Value>) -> Value {
    let v = Value::Object(m);
    ctl.cfg.extra.insert("variables".into(), v.clone());
    ctl.mark_dirty();
    v
}

/// `variable_list`: the variables as stored.
pub fn list(ctl: &Controller) -> Value {
    Value::Object(stored(ctl))
}

/// `variable_add`: `[name, value]`, `[name, target, interval(, value(, waitTime))]` or
/// `{name, target?, interval?, value?, waitTime?}`. Answers the list.
pub fn add(ctl: &mut Controller, arg: &Value) -> Value {
    let mut m = stored(ctl);
    let (name, fields): (String, Vec<(&str, Value)>) = match arg {
        Value::Array(a) if (2..=5).contains(&a.len()) && a[0].is_string() => {
            let name = a[0].as_str().unwrap_or_default().to_string();
            let f = if a.len() == 2 {
                vec![("value", text(&a[1]))]
            } else {
                let mut f = vec![("target", text(&a[1])), ("interval", number(&a[2]))];
                if let Some(v) = a.get(3) {
                    f.push(("value", text(v)));
                }
                if let Some(w) = a.get(4) {
                    f.push(("waitTime", number(w)));
                }
                f
            };
            (name, f)
        }
        Value::Object(o) if o.get("name").is_some_and(Value::is_string) => {
            let name = o["name"].as_str().unwrap_or_default().to_string();
            let mut f = Vec::new();
            for k in ["target", "value"] {
                if let Some(v) = o.get(k) {
                    f.push((k, text(v)));
                }
            }
            for k in ["interval", "waitTime"] {
                if let Some(v) = o.get(k) {
                    f.push((k, number(v)));
                }
            }
            (name, f)
        }
        _ => {
            warn!("variable_add: cannot read {arg}");
            return Value::Object(m);
        }
    };
    let mut name: String = name.chars().take(MAX_NAME).collect();
    name.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() {
        warn!("variable_add: no usable name in {arg}");
        return Value::Object(m);
    }
    let entry = m
        .entry(name.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(e) = entry {
        let has_target = fields.iter().any(|(k, _)| *k == "target");
        for (k, v) in fields {
            // An empty value does not replace the last one fetched (as MistServer).
            if k == "value" && has_target && v.as_str().is_some_and(str::is_empty) {
                continue;
            }
            e.insert(k.into(), v);
        }
        if has_target {
            // Run the (new) target at the next check.
            e.insert("lastunix".into(), Value::from(0));
            ctl.pushes.vars.failed.remove(&name);
        }
    }
    info!("variable {name} updated");
    save(ctl, m)
}

/// `variable_remove`: a name or a list of names. Answers the list.
pub fn remove(ctl: &mut Controller, arg: &Value) -> Value {
    let mut m = stored(ctl);
    let names: Vec<&str> = match arg {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for n in names {
        if m.remove(n).is_some() {
            info!("variable {n} removed");
        }
    }
    save(ctl, m)
}

/// Trims a fetched value and cuts it to [`MAX_VALUE`] bytes (at a character boundary).
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut v = text.trim().to_string();
    if v.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
    }
    v
}

/// Runs one target (blocking, at most `wait`): the value, or why there is none.
fn run_target(name: &str, target: &str, wait: Duration) -> Result<String, RunError> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let mut agent = ureq::AgentBuilder::new().timeout(wait);
        if let Some(tls) = mist_core::triggers::tls::client_config() {
            agent = agent.tls_config(tls);
        }
        let resp = agent
            .build()
            .post(target)
            .set("X-Custom-Variable", name)
            .set("Content-Type", "text/plain")
            .send_string("")
            .map_err(|e| RunError::Http(Box::new(e)))?;
        let mut body = Vec::new();
        resp.into_reader()
            .take(64 * 1024)
            .read_to_end(&mut body)
            .map_err(RunError::ReadAnswer)?;
        return Ok(clean(&body));
    }
    let args: Vec<&str> = target.split_whitespace().collect();
    let Some((prog, rest)) = args.split_first() else {
        return Err(RunError::EmptyCommand);
    };
    let mut child = Command::new(prog)
        .args(rest)
        .env("MIST_CUSTOM_VARIABLE", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| RunError::Spawn {
            prog: prog.to_string(),
            source,
        })?;
    let Some(mut out) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunError::NoStdout);
    };
    let (tx, rx) = channel();
    // Read in a thread of its own: a command that keeps its stdout open is given up on.
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut out).take(64 * 1024).read_to_end(&mut buf);
        let _ = tx.send(r.map(|_| buf));
    });
    let deadline = Instant::now() + wait;
    let got = rx.recv_timeout(wait);
    // Its output ended: how it exits, within what is left of the wait.
    let status = match got {
        Ok(Ok(_)) => loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break None,
            }
        },
        _ => None,
    };
    if status.is_none() {
        let _ = child.kill();
        // Reaped in the background: the loop never waits for a stuck process.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
    match (got, status) {
        (Ok(Ok(_)), Some(st)) if !st.success() => Err(RunError::Failed(st)),
        // (A command that closed its stdout but is still running gave its value.)
        (Ok(Ok(buf)), _) => Ok(clean(&buf)),
        (Ok(Err(e)), _) => Err(RunError::ReadOutput(e)),
        (Err(_), _) => Err(RunError::Timeout(wait.as_secs())),
    }
}

/// Takes in the values that came back and, once a second, starts the targets that are due.
/// Called from the event loop on every turn.
pub fn tick(ctl: &mut Controller) {
    let now = super::now_unix();
    let results: Vec<RunResult> = ctl.pushes.vars.rx.try_iter().collect();
    if !results.is_empty() {
        let mut m = stored(ctl);
        let mut changed = false;
        for (name, target, res) in results {
            ctl.pushes.vars.running.remove(&name);
            let Some(Value::Object(e)) = m.get_mut(&name) else {
                continue;
            };
            // The target changed meanwhile: this answer is for the old one.
            if e.get("target").and_then(Value::as_str) != Some(target.as_str()) {
                continue;
            }
            e.insert("lastunix".into(), Value::from(now));
            let failed = &mut ctl.pushes.vars.failed;
            match res {
                Ok(v) => {
                    failed.remove(&name);
                    if e.get("value").and_then(Value::as_str) != Some(v.as_str()) {
                        info!("variable {name} = {v:?} (from {target})");
                        e.insert("value".into(), Value::from(v));
                        changed = true;
                    }
                }
                Err(err) => {
                    // Kept: the old value. Tried again, whatever the interval.
                    let wait = next_backoff(failed.get(&name).map(|f| f.1));
                    warn!(
                        "variable {name}: {target}: {err}; trying again in {} s",
                        wait.as_secs()
                    );
                    failed.insert(name.clone(), (Instant::now() + wait, wait));
                }
            }
        }
        ctl.cfg.extra.insert("variables".into(), Value::Object(m));
        // Only a new value is a change worth saving (lastunix alone is not).
        if changed {
            ctl.mark_dirty();
        }
    }
    if ctl
        .pushes
        .vars
        .last_check
        .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
    {
        return;
    }
    ctl.pushes.vars.last_check = Some(Instant::now());
    let m = stored(ctl);
    let runs = &mut ctl.pushes.vars;
    runs.failed.retain(|name, _| m.contains_key(name));
    let now_i = Instant::now();
    for (name, v) in &m {
        let Some(target) = v.get("target").and_then(Value::as_str) else {
            continue;
        };
        if target.trim().is_empty() || runs.running.contains(name) {
            continue;
        }
        let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0).max(0.0) as u64;
        let (interval, last) = (num("interval"), num("lastunix"));
        let retry_due = runs.failed.get(name).is_some_and(|(at, _)| *at <= now_i);
        if !due(interval, last, now, retry_due) {
            continue;
        }
        let wait = match num("waitTime") {
            0 => interval,
            w => w,
        }
        .max(1);
        runs.running.insert(name.clone());
        let (tx, name, target) = (runs.tx.clone(), name.clone(), target.to_string());
        let waker = ctl.spawner.waker.clone();
        std::thread::spawn(move || {
            let r = run_target(&name, &target, Duration::from_secs(wait));
            let _ = tx.send((name, target, r));
            let _ = waker.wake();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_cut() {
        assert_eq!(clean(b"  on air\n"), "on air");
        let long = "é".repeat(100);
        let v = clean(long.as_bytes());
        assert!(v.len() <= MAX_VALUE && v.chars().all(|c| c == 'é'), "{v}");
    }

    #[test]
    fn commands_run_without_a_shell() {
        let w = Duration::from_secs(5);
        assert_eq!(run_target("v", "echo a  $HOME", w).unwrap(), "a $HOME");
        assert!(run_target("v", "/nonexistent/x", w).is_err());
        assert!(run_target("v", "sleep 5", Duration::from_secs(1)).is_err());
        // A failure status is no value (an empty one is).
        assert!(matches!(
            run_target("v", "false", w),
            Err(RunError::Failed(_))
        ));
        assert_eq!(run_target("v", "true", w).unwrap(), "");
    }

    #[test]
    fn failed_runs_are_retried_with_a_backoff() {
        // Run when it never ran, or when its interval passed; with 0 only once...
        assert!(due(0, 0, 100, false));
        assert!(!due(0, 90, 100, false));
        assert!(due(10, 90, 100, false));
        assert!(!due(10, 95, 100, false));
        // ...unless a retry after a failure is due.
        assert!(due(0, 90, 100, true));
        assert!(due(3600, 95, 100, true));
        // 2 s, doubling, at most a minute.
        let mut waits = vec![next_backoff(None)];
        for _ in 0..6 {
            waits.push(next_backoff(waits.last().copied()));
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60]);
    }
}
