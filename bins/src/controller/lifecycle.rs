//! Stream lifecycle triggers the controller owns (INTERFACES §5.3): INPUT_ABORT when an input
//! exits uncleanly, DEFAULT_STREAM (and the `defaultStream` config key) when a viewer asks for a
//! stream that cannot open.

use super::{Controller, Pending, TriggerResult};
use mist_core::control::{Request, Response};
use mist_core::triggers;
use mist_core::warn;
use serde_json::Value;
use std::time::{Duration, Instant};

/// INPUT_ABORT's code for an exit description of `children::describe_exit`.
fn abort_code(how: &str) -> String {
    if let Some(sig) = how
        .strip_prefix("killed by signal ")
        .and_then(|s| s.parse::<i32>().ok())
    {
        return match sig {
            libc::SIGSEGV => "SEGFAULT",
            libc::SIGABRT => "ABORT",
            libc::SIGBUS => "BUSERROR",
            libc::SIGFPE => "FPE",
            libc::SIGILL => "ILLEGAL",
            libc::SIGKILL => "KILLED",
            libc::SIGTERM => "TERMINATED",
            _ => "SIGNAL",
        }
        .to_string();
    }
    "EXIT".to_string()
}

impl Controller {
    /// An input process exited: fires INPUT_ABORT unless it exited 0 or was asked to stop.
    pub fn input_aborted(&self, stream: &str, bin: &str, pid: u32, how: &str, requested: bool) {
        if requested || how == "exit code 0" {
            return;
        }
        let source = self
            .input_sources
            .get(stream)
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        let lines = [
            stream,
            source.as_str(),
            bin,
            &pid.to_string(),
            &abort_code(how),
            how,
        ];
        self.fire_background("INPUT_ABORT", Some(stream), triggers::payload(&lines));
    }

    /// A viewer asked for `requested`, which is not configured: the DEFAULT_STREAM trigger (off
    /// the loop) or the `defaultStream` key names a fallback. `None`: neither is set.
    pub fn default_stream(
        &mut self,
        token: mio::Token,
        requested: &str,
        host: &str,
        connector: &str,
        url: &str,
    ) -> Option<Option<Response>> {
        let ds = self.cfg.config.default_stream.clone().unwrap_or_default();
        let t = &self.cfg.config.triggers;
        let play = |stream: String| Request::Play {
            stream,
            host: host.to_string(),
            connector: connector.to_string(),
            url: url.to_string(),
        };
        if !triggers::exists(t, "DEFAULT_STREAM", Some(requested)) {
            if ds.is_empty() {
                return None;
            }
            let fallback = ds.replace("$stream", requested);
            return Some(self.control_resolved(token, play(fallback), false, true));
        }
        let trig = t.clone();
        let tx = self.trig_tx.clone();
        let waker = self.spawner.waker.clone();
        let (req_name, host, connector, url) = (
            requested.to_string(),
            host.to_string(),
            connector.to_string(),
            url.to_string(),
        );
        let work = move || {
            let o = triggers::fire(
                &trig,
                "DEFAULT_STREAM",
                Some(&req_name),
                &triggers::payload(&[&ds, &req_name, &host, &connector, &url]),
            );
            // No sync handler: the configured default.
            let answer = if o.handled {
                o.answer.unwrap_or_default()
            } else {
                ds
            };
            let name = answer.trim().to_string();
            let res = TriggerResult {
                ok: !name.is_empty(),
                error: "stream not configured (DEFAULT_STREAM gave no fallback)".into(),
                source: None,
                rewritten: Some((
                    Request::Play {
                        stream: name,
                        host,
                        connector,
                        url,
                    },
                    true,
                )),
            };
            let _ = tx.send((token, res));
            let _ = waker.wake();
        };
        if let Err(e) = std::thread::Builder::new()
            .name("default-stream".into())
            .spawn(work)
        {
            warn!("cannot run the DEFAULT_STREAM trigger: {e}");
            return None;
        }
        self.pending.push(Pending {
            token,
            stream: requested.to_string(),
            config: Value::Null,
            source: String::new(),
            deadline: Instant::now() + Duration::from_secs(3600),
            since: Instant::now(),
            trigger: true,
        });
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn abort_codes() {
        assert_eq!(super::abort_code("killed by signal 11"), "SEGFAULT");
        assert_eq!(super::abort_code("killed by signal 9"), "KILLED");
        assert_eq!(super::abort_code("exit code 3"), "EXIT");
    }
}
