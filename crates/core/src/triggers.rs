//! Triggers (INTERFACES §5): run the handlers configured under `config.triggers.NAME`.
//!
//! A handler is an executable path (payload on stdin, trigger name as argv[1], environment
//! `MIST_TRIGGER`, `MIST_TRIG_DEF`, `MIST_PID`; the answer is its stdout) or an `http://` URL
//! (payload POSTed as the body with `X-Trigger`, `X-Trigger-UUID` and `X-Trigger-UnixMillis`
//! headers; the answer is the response body). `https://` handlers are not supported yet and
//! answer their default. A `sync` handler's answer is waited for: a handler still running after
//! 10 s gets SIGTERM, after 15 s SIGKILL, and the answer is then its `default` (`true` if unset).
//! Non-sync handlers run in the background and their answer is ignored.

use crate::config::TriggerHandler;
use crate::names;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const STOP_AFTER: Duration = Duration::from_secs(10);
pub const KILL_AFTER: Duration = Duration::from_secs(15);
/// Largest answer read from a handler.
const MAX_ANSWER: u64 = 1 << 20;

/// MistServer's boolean reading of an answer: ignoring leading whitespace and case, it starts with
/// `1`, `yes`, `true` or `cont`.
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

/// Whether a handler applies to `stream` (no `streams` list = all; an entry `base` also matches
/// `base+anything`).
pub fn applies(h: &TriggerHandler, stream: Option<&str>) -> bool {
    if h.streams.is_empty() {
        return true;
    }
    match stream {
        None => true,
        Some(s) => h.streams.iter().any(|e| e == s || e == names::base_name(s)),
    }
}

/// The handlers of trigger `name` that apply to `stream`.
pub fn handlers<'a>(
    triggers: &'a BTreeMap<String, Vec<TriggerHandler>>,
    name: &str,
    stream: Option<&str>,
) -> Vec<&'a TriggerHandler> {
    triggers
        .get(name)
        .map(|l| {
            l.iter()
                .filter(|h| !h.handler.is_empty() && applies(h, stream))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether anything is configured for this trigger and stream.
pub fn exists(
    triggers: &BTreeMap<String, Vec<TriggerHandler>>,
    name: &str,
    stream: Option<&str>,
) -> bool {
    !handlers(triggers, name, stream).is_empty()
}

fn default_answer(h: &TriggerHandler) -> String {
    h.default.clone().unwrap_or_else(|| "true".to_string())
}

/// Runs one handler and returns its answer (its default when it fails or times out).
pub fn run_handler(h: &TriggerHandler, name: &str, payload: &str) -> String {
    let res = if h.handler.starts_with("http://") {
        run_http(&h.handler, name, payload, STOP_AFTER)
    } else if h.handler.starts_with("https://") {
        Err("https trigger handlers are not supported yet".to_string())
    } else {
        run_exec(&h.handler, name, payload, &default_answer(h))
    };
    match res {
        Ok(a) => a,
        Err(e) => {
            crate::warn!(
                "trigger {name}: handler {}: {e}; using default answer",
                h.handler
            );
            default_answer(h)
        }
    }
}

fn run_exec(path: &str, name: &str, payload: &str, def: &str) -> Result<String, String> {
    let mut command = Command::new(path);
    command
        .arg(name)
        .env("MIST_TRIGGER", name)
        .env("MIST_TRIG_DEF", def)
        .env("MIST_PID", std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // ETXTBSY is transient: the script was just written (a deploy tool
    // replacing it, or another thread of ours forking while its write
    // descriptor was open, so a child holds it until its exec). Retry
    // briefly instead of answering the default for a handler that is fine.
    let mut attempts = 0;
    let mut child = loop {
        match command.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(format!("cannot run: {e}")),
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let data = payload.as_bytes().to_vec();
    // Write from a thread: a handler that does not read its stdin must not block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_ANSWER).read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    let mut termed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        let t = start.elapsed();
        if t >= KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if t >= STOP_AFTER && !termed {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            termed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    match status {
        Some(_) if !termed => Ok(String::from_utf8_lossy(&out).into_owned()),
        _ => Err("timed out".to_string()),
    }
}

fn run_http(url: &str, name: &str, payload: &str, timeout: Duration) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http URL")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']')
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or("no address")?;
    let mut s =
        std::net::TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uuid = uuid_v4();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nX-Trigger: {name}\r\nX-Trigger-UUID: {uuid}\r\nX-Trigger-UnixMillis: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        now.as_millis(),
        payload.len()
    );
    s.write_all(req.as_bytes())
        .and_then(|_| s.write_all(payload.as_bytes()))
        .map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf) {
            let code = resp.code.unwrap_or(0);
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            let chunked = resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("transfer-encoding")
                    && h.value.eq_ignore_ascii_case(b"chunked")
            });
            if chunked {
                return Err("chunked answers are not supported".into());
            }
            if let Some(l) = len {
                if buf.len() >= n + l {
                    if !(200..300).contains(&code) {
                        return Err(format!("HTTP status {code}"));
                    }
                    return Ok(String::from_utf8_lossy(&buf[n..n + l]).into_owned());
                }
            }
            let r = s.read(&mut tmp).map_err(|e| format!("read: {e}"))?;
            if r == 0 {
                if !(200..300).contains(&code) {
                    return Err(format!("HTTP status {code}"));
                }
                return Ok(String::from_utf8_lossy(&buf[n..]).into_owned());
            }
            buf.extend_from_slice(&tmp[..r]);
        } else {
            let r = s.read(&mut tmp).map_err(|e| format!("read: {e}"))?;
            if r == 0 {
                return Err("connection closed before an answer".into());
            }
            buf.extend_from_slice(&tmp[..r]);
        }
        if buf.len() as u64 > MAX_ANSWER || Instant::now() > deadline {
            return Err("answer too large or too slow".into());
        }
    }
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The result of firing a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether any sync handler ran.
    pub handled: bool,
    /// All sync answers read as booleans (true when none ran).
    pub ok: bool,
    /// The last sync handler's answer (`None` when none ran).
    pub answer: Option<String>,
}

/// Fires a trigger: sync handlers run in order on this thread, the others in background threads.
pub fn fire(
    triggers: &BTreeMap<String, Vec<TriggerHandler>>,
    name: &str,
    stream: Option<&str>,
    payload: &str,
) -> Outcome {
    let mut out = Outcome {
        handled: false,
        ok: true,
        answer: None,
    };
    for h in handlers(triggers, name, stream) {
        if h.sync {
            let a = run_handler(h, name, payload);
            out.handled = true;
            out.ok &= is_true(&a);
            out.answer = Some(a);
        } else {
            let (h, name, payload) = (h.clone(), name.to_string(), payload.to_string());
            std::thread::spawn(move || {
                run_handler(&h, &name, &payload);
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
