//! New certificate paths without a restart.
//!
//! A protocol entry is the key of its output process ([`Role::Protocol`]), so any change to it
//! stops the old process and starts a new one. For a TLS listener (`HTTPS`, `RTMP` with a
//! certificate) whose entry changed only in `cert`/`key` (MistUtilCertbot's deploy hook, an API
//! `updateprotocol`, a config reload), that would drop every viewer. Instead the running process
//! takes the new entry as its key and arguments (for a later restart) and gets SIGHUP: it then
//! fetches its entry from the config through the control socket and loads the new files for new
//! handshakes ([`mist_bins::tls_reload`]); connections already open keep going.

use super::caps;
use super::children::{signal, Role};
use super::Controller;
use mist_core::config::Protocol;
use mist_core::info;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Connectors whose binary reloads its certificates on SIGHUP.
const RELOADING: &[&str] = &["HTTPS", "RTMP"];
/// A process younger than this may not have its SIGHUP handler yet (the default action would
/// end it): it is restarted as before.
const SETTLED: Duration = Duration::from_secs(2);

/// The entry has a certificate (a TLS listener).
fn has_cert(p: &Protocol) -> bool {
    match p.options.get("cert") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    }
}

/// The entry without `cert`/`key` (and the API's `online`).
fn rest(p: &Protocol) -> Protocol {
    let mut p = p.clone();
    for k in ["cert", "key", "online"] {
        p.options.remove(k);
    }
    p
}

/// Whether `old` can become `new` by loading other certificate files.
pub fn cert_only_change(old: &Protocol, new: &Protocol) -> bool {
    old.connector == new.connector
        && RELOADING.contains(&old.connector.as_str())
        && has_cert(old)
        && has_cert(new)
        && rest(old) == rest(new)
}

impl Controller {
    /// Gives running TLS outputs whose entry changed only in `cert`/`key` their new entry and
    /// SIGHUP (see the module documentation). Runs before [`Controller::apply_protocols`] diffs
    /// the entries, which then finds them running.
    pub fn retarget_certificates(&mut self) {
        let wanted: Vec<(String, Protocol)> = self
            .cfg
            .config
            .protocols
            .iter()
            .map(|p| (serde_json::to_string(p).unwrap_or_default(), p.clone()))
            .collect();
        let keys: HashSet<&String> = wanted.iter().map(|(k, _)| k).collect();
        let mut taken: HashSet<String> = self
            .sup
            .children
            .iter()
            .filter(|m| m.stopping.is_none())
            .filter_map(|m| match &m.role {
                Role::Protocol(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        let debug = self.debug_level().to_string();
        for m in self.sup.children.iter_mut() {
            let Role::Protocol(k) = &m.role else {
                continue;
            };
            if keys.contains(k) || m.stopping.is_some() || m.started.elapsed() < SETTLED {
                continue;
            }
            let Some(pid) = m.pid() else {
                continue;
            };
            let Ok(old) = serde_json::from_str::<Protocol>(k) else {
                continue;
            };
            let Some((nk, new)) = wanted
                .iter()
                .find(|(nk, new)| !taken.contains(nk) && cert_only_change(&old, new))
            else {
                continue;
            };
            let mut args = vec!["-g".to_string(), debug.clone()];
            args.extend(caps::option_args(
                &new.options,
                self.caps.connectors.get(&new.connector),
            ));
            info!(
                "{} (pid {pid}): new certificate files ({}), loaded without a restart",
                m.name,
                new.options
                    .get("cert")
                    .map(Value::to_string)
                    .unwrap_or_default()
            );
            taken.insert(nk.clone());
            m.role = Role::Protocol(nk.clone());
            m.args = args;
            signal(pid, libc::SIGHUP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cert_and_key_changes_of_tls_listeners_reload() {
        let a = Protocol::new("HTTPS")
            .with("port", 4433)
            .with("cert", "/a.pem")
            .with("key", "/a.key");
        let b = Protocol::new("HTTPS")
            .with("port", 4433)
            .with("cert", "/b.pem")
            .with("key", "/b.key");
        assert!(cert_only_change(&a, &b));
        // Another port: a new listener, so a restart.
        assert!(!cert_only_change(&a, &b.clone().with("port", 4434)));
        // TLS switched off (or on): the listener changes kind.
        let plain = Protocol::new("RTMP").with("port", 1935);
        let tls = plain.clone().with("cert", "/a.pem").with("key", "/a.key");
        assert!(!cert_only_change(&plain, &tls));
        assert!(!cert_only_change(&tls, &plain));
        assert!(cert_only_change(
            &tls,
            &tls.clone().with("cert", serde_json::json!(["/b.pem"]))
        ));
        // Connectors that do not reload on SIGHUP are restarted.
        let ts = Protocol::new("TSSRT").with("cert", "/a").with("key", "/b");
        assert!(!cert_only_change(&ts, &ts.clone().with("cert", "/c")));
    }
}
