//! Finding sibling binaries (MistIn*, MistOut*, MistUtil*) and merging their `-j` capabilities.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const PREFIXES: [&str; 3] = ["MistIn", "MistOut", "MistUtil"];

/// Executables in `dir` whose names start with one of [`PREFIXES`] (no extension), sorted by name.
pub fn find_binaries(dir: &Path) -> Vec<(String, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !PREFIXES
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
            || name.contains('.')
        {
            continue;
        }
        let path = e.path();
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.is_file() && md.permissions().mode() & 0o111 != 0 {
            out.push((name, path));
        }
    }
    out.sort();
    out
}

/// Why a binary's capabilities could not be read (the binary is then left out, with a log line).
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// It could not be started.
    #[error("cannot run: {0}")]
    Run(std::io::Error),
    /// It did not exit within the time limit (and was killed).
    #[error("timed out")]
    Timeout,
    /// Its output is not JSON (not one of ours, or it failed).
    #[error("no capabilities JSON (exit {0})")]
    NotJson(i32),
    /// Its output is JSON but not an object.
    #[error("capabilities are not a JSON object")]
    NotObject,
}

/// Runs `bin -j` with a timeout and parses its JSON object.
pub fn query(bin: &Path, timeout: Duration) -> Result<Value, CapsError> {
    let mut child = Command::new(bin)
        .arg("-j")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(CapsError::Run)?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = Vec::new();
        let _ = (&mut stdout).take(4 << 20).read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CapsError::Timeout);
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    let v: Value = serde_json::from_slice(&out)
        .map_err(|_| CapsError::NotJson(status.code().unwrap_or(-1)))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(CapsError::NotObject)
    }
}

/// The merged capabilities of every binary found.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    /// Connector name (without `MistOut`) → capabilities.
    pub connectors: Map<String, Value>,
    /// Input name (without `MistIn`) → capabilities.
    pub inputs: Map<String, Value>,
    /// Utility name (without `MistUtil`) → capabilities.
    pub utils: Map<String, Value>,
    /// Binaries found, name → path (also those whose `-j` failed).
    pub binaries: Vec<(String, PathBuf)>,
    /// Binaries whose `-j` failed, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Caps {
    /// Finds and queries every binary in `dir` (in parallel, bounded by `timeout` each).
    pub fn scan(dir: &Path, timeout: Duration) -> Caps {
        let bins = find_binaries(dir);
        let handles: Vec<_> = bins
            .iter()
            .map(|(name, path)| {
                let (name, path) = (name.clone(), path.clone());
                std::thread::spawn(move || (name, query(&path, timeout)))
            })
            .collect();
        let mut caps = Caps {
            binaries: bins,
            ..Caps::default()
        };
        for h in handles {
            let Ok((name, res)) = h.join() else { continue };
            match res {
                Ok(v) => {
                    let (map, short) = if let Some(s) = name.strip_prefix("MistOut") {
                        (&mut caps.connectors, s)
                    } else if let Some(s) = name.strip_prefix("MistIn") {
                        (&mut caps.inputs, s)
                    } else {
                        (
                            &mut caps.utils,
                            name.strip_prefix("MistUtil").unwrap_or(&name),
                        )
                    };
                    map.insert(short.to_string(), v);
                }
                Err(e) => caps.failed.push((name, e.to_string())),
            }
        }
        caps
    }

    /// The API's `capabilities` answer.
    pub fn to_api(&self) -> Value {
        serde_json::json!({
            "connectors": self.connectors,
            "inputs": self.inputs,
            "utils": self.utils,
        })
    }

    /// Picks the input for a source: `push://` → Buffer; otherwise the input whose `source_match`
    /// matches with the highest `priority`.
    pub fn input_for(&self, source: &str) -> Option<String> {
        if source.starts_with("push://") {
            return Some("Buffer".to_string());
        }
        let mut best: Option<(i64, String)> = None;
        for (name, c) in &self.inputs {
            let pats: Vec<&str> = match c.get("source_match") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => continue,
            };
            if pats.iter().any(|p| glob_match(p, source)) {
                let prio = c.get("priority").and_then(Value::as_i64).unwrap_or(0);
                if best.as_ref().is_none_or(|(bp, _)| prio > *bp) {
                    best = Some((prio, name.clone()));
                }
            }
        }
        best.map(|(_, n)| n)
    }
}

impl Caps {
    /// INTERFACES §4.2: an `<inputname>:` prefix (case-insensitive, e.g. `ts:tsudp://:5000`,
    /// `TS:/media/a.ts`) forces that input; the input gets the source without the prefix.
    /// Otherwise [`Caps::input_for`] on the whole source. `name://…` is a URL scheme, never a
    /// prefix.
    pub fn input_and_source<'a>(&self, source: &'a str) -> Option<(String, &'a str)> {
        if let Some((pre, rest)) = source.split_once(':') {
            if !rest.starts_with("//") && !pre.is_empty() {
                if let Some(name) = self.inputs.keys().find(|n| n.eq_ignore_ascii_case(pre)) {
                    return Some((name.clone(), rest));
                }
            }
        }
        self.input_for(source).map(|n| (n, source))
    }
}

/// `*` matches any run of characters (MistServer's `source_match`/`push_urls` patterns).
pub fn glob_match(pat: &str, s: &str) -> bool {
    let (p, s) = (pat.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Command-line options for a config entry (protocol or stream): every key that the binary's
/// capabilities list under `required`/`optional` with an `option` is passed as `--option value`.
/// Without capabilities, `port` → `-p` and `interface` → `-i` (the options every output takes).
pub fn option_args(entry: &Map<String, Value>, caps: Option<&Value>) -> Vec<String> {
    let mut args = Vec::new();
    let push = |args: &mut Vec<String>, opt: &str, v: &Value| match v {
        Value::Null => {}
        Value::Bool(false) => {}
        Value::Bool(true) => args.push(opt.to_string()),
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => {
            args.push(opt.to_string());
            args.push(s.clone());
        }
        Value::Number(n) => {
            args.push(opt.to_string());
            args.push(n.to_string());
        }
        other => {
            args.push(opt.to_string());
            args.push(other.to_string());
        }
    };
    match caps {
        Some(c) => {
            for section in ["required", "optional"] {
                let Some(opts) = c.get(section).and_then(Value::as_object) else {
                    continue;
                };
                for (key, spec) in opts {
                    let Some(opt) = spec.get("option").and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some(v) = entry.get(key) {
                        push(&mut args, opt, v);
                    }
                }
            }
        }
        None => {
            for (key, opt) in [("port", "-p"), ("interface", "-i")] {
                if let Some(v) = entry.get(key) {
                    push(&mut args, opt, v);
                }
            }
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globbing() {
        assert!(glob_match("/*.mp4", "/a/b.mp4"));
        assert!(!glob_match("/*.mp4", "/a/b.mkv"));
        assert!(glob_match("push://*", "push://"));
        assert!(glob_match("*", ""));
        assert!(glob_match("rtmp://*", "rtmp://x/y"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn args_from_caps() {
        let caps = json!({"optional": {"port": {"option": "--port", "short": "p"}, "interface": {"option": "--interface"},
                          "debug": {"option": "--debug"}, "flag": {"option": "--flag"}},
                          "required": {"cert": {"option": "--cert"}}});
        let entry = json!({"connector": "X", "port": 1935, "interface": "", "cert": "/c.pem", "flag": true, "other": 1});
        let a = option_args(entry.as_object().unwrap(), Some(&caps));
        assert_eq!(a, vec!["--cert", "/c.pem", "--flag", "--port", "1935"]);
        let b = option_args(entry.as_object().unwrap(), None);
        assert_eq!(b, vec!["-p", "1935"]);
    }

    #[test]
    fn input_choice() {
        let mut c = Caps::default();
        c.inputs.insert(
            "MP4".into(),
            json!({"source_match": ["/*.mp4", "/*.mov"], "priority": 9}),
        );
        c.inputs
            .insert("Other".into(), json!({"source_match": "/*", "priority": 1}));
        assert_eq!(c.input_for("push://").as_deref(), Some("Buffer"));
        assert_eq!(c.input_for("/x/y.mov").as_deref(), Some("MP4"));
        assert_eq!(c.input_for("/x/y.ts").as_deref(), Some("Other"));
        assert_eq!(c.input_for("rtsp://x"), None);
        // A forced input: `name:` prefix, case-insensitive, stripped for the input.
        assert_eq!(
            c.input_and_source("mp4:/x/y.ts"),
            Some(("MP4".to_string(), "/x/y.ts"))
        );
        assert_eq!(
            c.input_and_source("/x/y.mov"),
            Some(("MP4".to_string(), "/x/y.mov"))
        );
        assert_eq!(c.input_and_source("mp4://x"), None);
    }
}
