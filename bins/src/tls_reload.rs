//! New certificate paths for a running TLS listener (MistOutHTTPS, MistOutRTMP with RTMPS).
//!
//! Files that change on disk are picked up by every handshake already
//! ([`mist_connector::tls`]). When the *paths* change (API `updateprotocol`, a config reload,
//! MistUtilCertbot's deploy hook), the controller keeps the process and sends it SIGHUP
//! (`controller::tls_update`); [`follow_hangups`] then asks the controller for the config over
//! the control socket, finds this process's entry (its connector and port) and points the
//! listener at the entry's `cert`/`key` with [`TlsConfigHandle::set_pairs`]. New handshakes use
//! them; connections already open are not touched. Files that fail to load change nothing.

use mist_connector::{PemPair, TlsConfigHandle};
use mist_core::control::{self, Request};
use mist_core::{info, warn};
use serde_json::{json, Value};
use std::time::Duration;

/// Why the new pairs could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The controller could not be asked.
    #[error("asking the controller for the config: {0}")]
    Control(#[from] control::ControlError),
    /// This listener's protocol is gone from the config (deleted, or its port changed).
    #[error("no {connector} protocol on port {port} in the config")]
    NoEntry {
        /// `HTTPS`, `RTMPS` …
        connector: String,
        /// The port this process listens on.
        port: u16,
    },
    /// The protocol's certificates and keys do not pair up.
    #[error("{0}")]
    Pairs(#[from] crate::http_out::https::PairsError),
}

/// `cert`/`key` values as the config holds them: a path, or a list of paths.
fn paths(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The entry's port (a number or a string; `default` when unset).
fn port_of(entry: &Value, default: u16) -> Option<u16> {
    match entry.get("port") {
        None | Some(Value::Null) => Some(default),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) if s.trim().is_empty() => Some(default),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The certificate/key pairs of the `connector` entry on `port` in a protocol list.
pub fn pairs_in(
    protocols: &[Value],
    connector: &str,
    port: u16,
    default_port: u16,
) -> Result<Vec<PemPair>, ReloadError> {
    let entry = protocols
        .iter()
        .find(|p| {
            p.get("connector").and_then(Value::as_str) == Some(connector)
                && port_of(p, default_port) == Some(port)
        })
        .ok_or_else(|| ReloadError::NoEntry {
            connector: connector.to_string(),
            port,
        })?;
    Ok(crate::http_out::https::pairs(
        &paths(entry.get("cert")),
        &paths(entry.get("key")),
    )?)
}

/// Asks the controller for this listener's pairs now.
pub fn fetch(connector: &str, port: u16, default_port: u16) -> Result<Vec<PemPair>, ReloadError> {
    let r = control::request(
        &Request::Api {
            command: json!({"config": true}),
        },
        Duration::from_secs(5),
    )?;
    let list = r
        .config
        .pointer("/config/protocols")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    pairs_in(&list, connector, port, default_port)
}

/// On every SIGHUP (from the controller), loads the certificate paths of this process's
/// protocol entry into `tls`. A thread of its own; does nothing without a controller.
pub fn follow_hangups(connector: &'static str, port: u16, default_port: u16, tls: TlsConfigHandle) {
    if control::socket_path().is_none() {
        return;
    }
    let mut signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot handle SIGHUP ({e}): new certificate paths need a restart");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                match fetch(connector, port, default_port).map(|pairs| {
                    let first = pairs.first().map(|p| p.cert.display().to_string());
                    (tls.set_pairs(pairs), first)
                }) {
                    Ok((Ok(()), first)) => info!(
                        "TLS: new certificate {} for new connections",
                        first.unwrap_or_default()
                    ),
                    Ok((Err(e), _)) => warn!("TLS: {e}; keeping the certificate in use"),
                    Err(e) => warn!("TLS reload: {e}; keeping the certificate in use"),
                }
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the certificate reload thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_entry_by_connector_and_port() {
        let list = vec![
            json!({"connector": "RTMP", "port": 1935}),
            json!({"connector": "RTMP", "port": "1936", "cert": "/a.pem", "key": "/a.key"}),
            json!({"connector": "HTTPS", "cert": ["/b.pem", "/c.pem"], "key": ["/b.key", "/c.key"]}),
        ];
        let p = pairs_in(&list, "RTMP", 1936, 1935).unwrap();
        assert_eq!(p, vec![PemPair::new("/a.pem", "/a.key")]);
        let p = pairs_in(&list, "HTTPS", 4433, 4433).unwrap();
        assert_eq!(p[1], PemPair::new("/c.pem", "/c.key"));
        assert!(matches!(
            pairs_in(&list, "RTMP", 1935, 1935),
            Err(ReloadError::Pairs(_))
        ));
        assert!(matches!(
            pairs_in(&list, "HTTPS", 443, 4433),
            Err(ReloadError::NoEntry { .. })
        ));
    }
}
