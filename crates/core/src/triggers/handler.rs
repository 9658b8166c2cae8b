//! Running one handler (INTERFACES §5.2): an executable (no shell) or an `http(s)://` URL.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A sync executable handler still running after this gets SIGTERM.
pub const STOP_AFTER: Duration = Duration::from_secs(10);
/// … then SIGKILL after this …
pub const KILL_AFTER: Duration = Duration::from_secs(14);
/// … and is given up after this (its answer is then the default).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(15);
/// Timeout of one HTTP attempt.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP attempts before giving up.
pub const HTTP_TRIES: u32 = 5;
/// Largest answer taken from a handler; a bigger one is a failure (the default answer is used).
pub const MAX_ANSWER: usize = 1 << 20;

/// Who is firing: the values of the `MIST_INSTANCE`/`X-Instance` and `MIST_NAME`/`X-Name` fields.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `MIST_INSTANCE` / `X-Instance`.
    pub instance: String,
    /// `MIST_NAME` / `X-Name`.
    pub name: String,
}

/// Why a handler gave no answer. Displayed in the single log line a failure produces.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The handler could not be started.
    #[error("cannot run: {0}")]
    Spawn(std::io::Error),
    /// The handler printed more than [`MAX_ANSWER`] bytes.
    #[error("printed more than {MAX_ANSWER} bytes")]
    TooLarge,
    /// The handler ran too long and was killed.
    #[error("still running after {0:?}, killed")]
    Killed(Duration),
    /// The handler exited with a failure status.
    #[error("exited with {0}")]
    Exit(std::process::ExitStatus),
    /// Every HTTP attempt failed.
    #[error("{tries} HTTP attempt(s) failed, last: {last}")]
    Http {
        /// How many attempts were made.
        tries: u32,
        /// The last attempt's error.
        last: String,
    },
}

/// Unix milliseconds now.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// An RFC 7231 date (`Thu, 03 Dec 2026 03:40:15 GMT`) for a unix time in seconds.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days.rem_euclid(7)) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A random (version 4) UUID.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            ^ u128::from(std::process::id());
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

/// Runs an executable handler: argv[1] = trigger name, payload on stdin, the `MIST_*`
/// environment; the answer is its stdout. Waits at most [`GIVE_UP_AFTER`] (SIGTERM at
/// [`STOP_AFTER`], SIGKILL at [`KILL_AFTER`]) when `sync`, else up to the same bounds (a
/// non-sync handler's answer is ignored, but it must not pile up either).
pub fn run_exec(
    path: &str,
    name: &str,
    payload: &str,
    default: &str,
    id: &Identity,
) -> Result<String, HandlerError> {
    let now = unix_ms();
    let mut command = Command::new(path);
    command
        .arg(name)
        .env("MIST_TRIGGER", name)
        .env("MIST_TRIG_DEF", default)
        .env("MIST_PID", std::process::id().to_string())
        .env("MIST_INSTANCE", &id.instance)
        .env("MIST_NAME", &id.name)
        .env("MIST_TUUID", uuid_v4())
        .env("MIST_TIME", now.to_string())
        .env("MIST_DATE", http_date((now / 1000) as u64))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    // ETXTBSY is transient: the script was just written (a deploy tool replacing it, or another
    // thread of ours forking while its write descriptor was open, so a child holds it until its
    // exec). Retry briefly instead of answering the default for a handler that is fine.
    let mut attempts = 0;
    let mut child = loop {
        match command.spawn() {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(HandlerError::Spawn(e)),
        }
    };
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(HandlerError::Spawn(std::io::Error::other("no pipes")));
    };
    let data = payload.as_bytes().to_vec();
    // Write from a thread, never joined: a handler that does not read its stdin must not block
    // us.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    // Read from a thread into a shared buffer, at most MAX_ANSWER + 1 bytes (one more than
    // allowed means "too large"). Never joined: a process the handler left behind may hold
    // its stdout open long after the handler is gone.
    let out = Arc::new(Mutex::new((Vec::new(), false)));
    let shared = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = stdout.read(&mut buf).unwrap_or(0);
            let mut o = shared.lock().unwrap_or_else(|e| e.into_inner());
            o.0.extend_from_slice(&buf[..n]);
            if n == 0 || o.0.len() > MAX_ANSWER {
                o.1 = true;
                return;
            }
        }
    });
    let read_done = || out.lock().map(|o| o.1).unwrap_or(true);
    let pid = rustix::process::Pid::from_child(&child);
    // The handler runs in its own process group: a timeout stops what it started too.
    let signal_group = |sig| {
        let _ = rustix::process::kill_process_group(pid, sig);
    };
    let start = Instant::now();
    let mut termed = false;
    let mut killed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        let t = start.elapsed();
        if t >= KILL_AFTER && !killed {
            signal_group(rustix::process::Signal::KILL);
            killed = true;
        }
        if t >= STOP_AFTER && !termed {
            signal_group(rustix::process::Signal::TERM);
            termed = true;
        }
        if t >= GIVE_UP_AFTER {
            break None;
        }
        if read_done() && !termed {
            // stdout is closed or the cap was hit: a handler flooding us is stopped right away.
            signal_group(rustix::process::Signal::KILL);
            termed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.is_none() {
        signal_group(rustix::process::Signal::KILL);
        // Reap in the background: a process stuck in the kernel must not hold us.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
    // The handler exited: give its output a moment to drain, not more (see above).
    let drain = Instant::now();
    while !read_done() && drain.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = std::mem::take(&mut out.lock().unwrap_or_else(|e| e.into_inner()).0);
    if out.len() > MAX_ANSWER {
        return Err(HandlerError::TooLarge);
    }
    match status {
        Some(s) if !termed => {
            if s.success() || !out.is_empty() {
                Ok(String::from_utf8_lossy(&out).into_owned())
            } else {
                Err(HandlerError::Exit(s))
            }
        }
        // A handler that closed its stdout and kept running was stopped by us: its output is
        // complete, so it counts.
        Some(_) if start.elapsed() < STOP_AFTER => Ok(String::from_utf8_lossy(&out).into_owned()),
        _ => Err(HandlerError::Killed(start.elapsed())),
    }
}

/// POSTs the payload to an `http://` or `https://` handler (rustls, system roots, plus
/// `MIST_TLS_CA_FILE`, see [`super::tls`]) with the
/// `X-Trigger*` headers; up to [`HTTP_TRIES`] attempts of [`HTTP_TIMEOUT`] each, bounded in total
/// by `budget`. The answer is the body of a 2xx response.
pub fn run_http(
    url: &str,
    name: &str,
    payload: &str,
    id: &Identity,
    budget: Duration,
) -> Result<String, HandlerError> {
    let start = Instant::now();
    let uuid = uuid_v4();
    let mut last = String::new();
    let mut tries = 0;
    for attempt in 1..=HTTP_TRIES {
        let left = budget.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        tries = attempt;
        let mut agent = ureq::AgentBuilder::new()
            .timeout(HTTP_TIMEOUT.min(left))
            .redirects(0);
        if let Some(tls) = super::tls::client_config() {
            agent = agent.tls_config(tls);
        }
        let agent = agent.build();
        let now = unix_ms();
        let res = agent
            .post(url)
            .set("X-Trigger", name)
            .set("X-Instance", &id.instance)
            .set("X-Name", &id.name)
            .set("X-PID", &std::process::id().to_string())
            .set("X-Trigger-UUID", &uuid)
            .set("X-Trigger-UnixMillis", &now.to_string())
            .set("Date", &http_date((now / 1000) as u64))
            .set("X-Attempt", &attempt.to_string())
            .set("Content-Type", "text/plain")
            .send_string(payload);
        match res {
            Ok(resp) if (200..300).contains(&resp.status()) => {
                let mut body = Vec::new();
                match resp
                    .into_reader()
                    .take(MAX_ANSWER as u64 + 1)
                    .read_to_end(&mut body)
                {
                    Ok(_) if body.len() > MAX_ANSWER => return Err(HandlerError::TooLarge),
                    Ok(_) => return Ok(String::from_utf8_lossy(&body).into_owned()),
                    Err(e) => last = format!("reading the answer: {e}"),
                }
            }
            Ok(resp) => last = format!("HTTP status {}", resp.status()),
            Err(ureq::Error::Status(code, _)) => last = format!("HTTP status {code}"),
            Err(e) => last = e.to_string(),
        }
        if attempt < HTTP_TRIES {
            let pause = Duration::from_millis(200 * u64::from(attempt));
            if budget.saturating_sub(start.elapsed()) <= pause {
                break;
            }
            std::thread::sleep(pause);
        }
    }
    Err(HandlerError::Http { tries, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_796_269_215), "Thu, 03 Dec 2026 03:40:15 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
