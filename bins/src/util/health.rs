//! MistUtilHealth: is the local server healthy? (controller answering, every listener running,
//! memory, shared memory and CPU under their limits).

use super::client::Client;
use serde_json::{json, Value};
use std::path::Path;

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was checked (a listener, `memory` …).
    pub what: String,
    /// What was found, for the report.
    pub detail: String,
}

impl Check {
    fn new(ok: bool, what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            ok,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Limits in percent; 0 turns a check off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Used memory (% of total).
    pub mem: f64,
    /// Used shared memory (% of its filesystem).
    pub shm: f64,
    /// CPU load (% of all cores).
    pub cpu: f64,
}

/// The protocol checks from a config answer: a listener whose `online` is 1 (or one served by
/// the HTTP connector) is fine; one not running, or whose binary is missing, is not.
pub fn protocol_checks(config: &Value) -> Vec<Check> {
    let Some(list) = config
        .pointer("/config/protocols")
        .and_then(Value::as_array)
    else {
        return vec![Check::new(
            false,
            "protocols",
            "the controller sent no protocol list",
        )];
    };
    list.iter()
        .filter_map(|p| {
            let c = p.get("connector").and_then(Value::as_str).unwrap_or("?");
            let what = match p.get("port") {
                Some(port) => format!("protocol {c}:{}", port.to_string().trim_matches('"')),
                None => format!("protocol {c}"),
            };
            match p.get("online") {
                Some(v) if v == &json!(1) => Some(Check::new(true, what, "running")),
                Some(Value::String(s)) if s == "Served by HTTP" => None,
                Some(Value::String(s)) => Some(Check::new(false, what, s.to_lowercase())),
                _ => Some(Check::new(false, what, "not running")),
            }
        })
        .collect()
}

/// Percent of memory in use (MemTotal - MemAvailable) from `/proc/meminfo` text.
pub fn mem_used_percent(meminfo: &str) -> Option<f64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
    };
    let (total, avail) = (field("MemTotal")?, field("MemAvailable")?);
    (total > 0.0).then(|| 100.0 * (total - avail) / total)
}

/// Percent of the file system holding `dir` in use.
pub fn fs_used_percent(dir: &Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs fills the struct for a valid NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded and initialised it.
    let st = unsafe { st.assume_init() };
    let total = st.f_blocks as f64;
    (total > 0.0).then(|| 100.0 * (total - st.f_bavail as f64) / total)
}

/// One-minute load average per CPU, in percent.
pub fn cpu_percent() -> Option<f64> {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let n = std::thread::available_parallelism().ok()?.get() as f64;
    Some(100.0 * load / n)
}

fn limit_check(what: &str, used: Option<f64>, limit: f64) -> Option<Check> {
    if limit <= 0.0 {
        return None;
    }
    Some(match used {
        Some(u) => Check::new(
            u <= limit,
            what,
            format!("{u:.0}% used (limit {limit:.0}%)"),
        ),
        None => Check::new(false, what, "cannot be measured"),
    })
}

/// Every check, in order.
pub fn run(api: Option<&str>, limits: Limits) -> Vec<Check> {
    let mut out = Vec::new();
    let answer = Client::discover(api).and_then(|c| {
        let v = c.call(&json!({"config": true, "version": true}))?;
        Ok((c, v))
    });
    match answer {
        Ok((c, v)) => {
            let version = v.get("version").and_then(Value::as_str).unwrap_or("?");
            out.push(Check::new(
                true,
                "controller",
                format!("{version}, {}", c.describe()),
            ));
            out.extend(protocol_checks(&v));
        }
        Err(e) => out.push(Check::new(false, "controller", e.to_string())),
    }
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_used_percent(&m));
    out.extend(limit_check("memory", mem, limits.mem));
    out.extend(limit_check(
        "shared memory",
        fs_used_percent(&mist_shm::shm_dir()),
        limits.shm,
    ));
    out.extend(limit_check("cpu", cpu_percent(), limits.cpu));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        let v = json!({"config": {"protocols": [
            {"connector": "HTTP", "port": 8080, "online": 1},
            {"connector": "HLS", "online": "Served by HTTP"},
            {"connector": "RTMP", "port": 1935, "online": 0},
            {"connector": "HTTPS", "port": 443, "online": "Not installed"},
        ]}});
        let c = protocol_checks(&v);
        assert_eq!(c.len(), 3);
        assert!(c[0].ok && c[0].what == "protocol HTTP:8080");
        assert!(!c[1].ok && c[1].detail == "not running");
        assert!(!c[2].ok && c[2].detail == "not installed");
        assert!(!protocol_checks(&json!({}))[0].ok);
    }

    #[test]
    fn meminfo() {
        let m = "MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    250 kB\n";
        assert_eq!(mem_used_percent(m), Some(75.0));
        assert_eq!(mem_used_percent("nonsense"), None);
    }
}
