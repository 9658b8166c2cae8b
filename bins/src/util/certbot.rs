//! MistUtilCertbot: certbot's manual auth hook and deploy hook (INTERFACES §8).
//!
//! The planning functions are pure (config in, API commands out) so the rules are unit-tested;
//! [`auth_hook`] and [`deploy_hook`] talk to the controller through [`super::client::Client`].

use super::client::{Client, ClientError};
use serde_json::{json, Value};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

/// Challenges kept in one HTTP protocol's `certbot` option (one per name of a multi-name
/// certificate; older ones are dropped).
pub const MAX_CHALLENGES: usize = 16;
/// How long the auth hook waits for the listener to serve the challenge.
pub const SERVE_WAIT: Duration = Duration::from_secs(30);

/// Why the tool stops (its message is what the user reads).
#[derive(Debug, thiserror::Error)]
pub enum CertbotError {
    /// The controller could not be asked.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The challenge port is another connector's: HTTP cannot answer it.
    #[error("port {port} belongs to the {connector} connector, not HTTP; free port {port} or change that protocol")]
    PortTaken {
        /// The HTTP port the challenge must be answered on.
        port: u16,
        /// The connector that has it.
        connector: String,
    },
    /// The controller has no protocol list to put the certificate in.
    #[error("the controller's config has no protocol list")]
    NoProtocols,
    /// A file certbot should have written (`RENEWED_LINEAGE/…`).
    #[error("{0} is missing")]
    MissingFile(String),
    /// The ACME challenge file was not answered over HTTP in time (the order would fail).
    #[error("the challenge was not served on {0} within {1:?}")]
    NotServed(String, Duration),
    /// The controller answered without the changed protocol.
    #[error("the controller did not take the change: {0}")]
    NotApplied(String),
}

/// One change to the protocol list.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An HTTPS protocol gets the new certificate.
    Update {
        /// The protocol as configured.
        old: Value,
        /// The same with the new certificate and key.
        new: Value,
    },
    /// No HTTPS protocol yet: one is added with the certificate.
    Add(Value),
}

impl Change {
    /// The API command that makes this change.
    pub fn command(&self) -> Value {
        match self {
            Change::Update { old, new } => json!({"updateprotocol": [old, new]}),
            Change::Add(p) => json!({"addprotocol": p}),
        }
    }
    fn result(&self) -> &Value {
        match self {
            Change::Update { new, .. } => new,
            Change::Add(p) => p,
        }
    }
}

/// A protocol entry without runtime keys (`online`, `error`, `log`).
fn clean(p: &Value) -> Value {
    let mut p = p.clone();
    if let Some(o) = p.as_object_mut() {
        for k in ["online", "error", "log"] {
            o.remove(k);
        }
    }
    p
}

fn connector_caps<'a>(caps: &'a Value, connector: &str) -> Option<&'a Value> {
    caps.get("connectors").and_then(|c| c.get(connector))
}

/// The port a protocol entry listens on: its `port`, else its connector's default port; None for
/// connectors served through another (HLS, CMAF … have `deps`) or without a port.
pub fn listen_port(p: &Value, caps: &Value) -> Option<u16> {
    let connector = p.get("connector").and_then(Value::as_str).unwrap_or("");
    let c = connector_caps(caps, connector);
    let deps = c.and_then(|c| c.get("deps")).is_some_and(|d| match d {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    });
    if deps {
        return None;
    }
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    if let Some(port) = p.get("port").and_then(num).filter(|&n| n != 0) {
        return Some(port);
    }
    let default = c.and_then(|c| {
        ["optional", "required"].iter().find_map(|k| {
            c.get(*k)
                .and_then(|o| o.get("port"))
                .and_then(|p| p.get("default"))
        })
    });
    match default.and_then(num) {
        Some(p) => Some(p),
        // Without capabilities (connector not installed): the well-known defaults.
        None => match connector {
            "HTTP" => Some(8080),
            "HTTPS" => Some(4433),
            "RTMP" => Some(1935),
            "RTSP" => Some(5554),
            "DTSC" => Some(4200),
            _ => None,
        },
    }
}

/// The `TOKEN:VALIDATION` pairs of a `certbot` option (separated by spaces or commas).
pub fn challenges(opt: &str) -> Vec<(&str, &str)> {
    opt.split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|p| p.split_once(':'))
        .filter(|(t, _)| !t.is_empty())
        .collect()
}

/// The answer for `/.well-known/acme-challenge/TOKEN` given a `certbot` option.
pub fn challenge_answer<'a>(opt: &'a str, token: &str) -> Option<&'a str> {
    challenges(opt)
        .into_iter()
        .rev()
        .find(|(t, _)| *t == token)
        .map(|(_, v)| v)
}

/// `certbot` option with `token:validation` added (replacing the same token), keeping at most
/// [`MAX_CHALLENGES`] pairs, newest last.
pub fn add_challenge(opt: Option<&str>, token: &str, validation: &str) -> String {
    let mut list: Vec<(&str, &str)> = opt
        .map(challenges)
        .unwrap_or_default()
        .into_iter()
        .filter(|(t, _)| *t != token)
        .collect();
    list.push((token, validation));
    let skip = list.len().saturating_sub(MAX_CHALLENGES);
    list[skip..]
        .iter()
        .map(|(t, v)| format!("{t}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the auth hook must do for `port`: Ok(None) when already served as wanted.
pub fn plan_auth(
    protocols: &[Value],
    caps: &Value,
    port: u16,
    token: &str,
    validation: &str,
) -> Result<Option<Change>, CertbotError> {
    for p in protocols {
        if listen_port(p, caps) != Some(port) {
            continue;
        }
        let connector = p.get("connector").and_then(Value::as_str).unwrap_or("");
        if connector != "HTTP" {
            return Err(CertbotError::PortTaken {
                port,
                connector: connector.to_string(),
            });
        }
        let old = clean(p);
        let cur = old.get("certbot").and_then(Value::as_str);
        if cur.and_then(|c| challenge_answer(c, token)) == Some(validation) {
            return Ok(None);
        }
        let mut new = old.clone();
        new["certbot"] = json!(add_challenge(cur, token, validation));
        return Ok(Some(Change::Update { old, new }));
    }
    Ok(Some(Change::Add(json!({
        "connector": "HTTP",
        "port": port,
        "certbot": format!("{token}:{validation}"),
    }))))
}

/// `cert`/`key` of an entry as lists (string or array of strings).
fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// A certificate file certbot manages (`…/live/NAME/fullchain.pem`).
fn is_certbot_lineage(path: &str) -> bool {
    let p = Path::new(path);
    p.file_name().is_some_and(|f| f == "fullchain.pem")
        && p.parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|d| d == "live")
}

/// What the deploy hook must do: every HTTPS entry gets `cert`/`key` (certificates of *other*
/// certbot lineages are kept beside it, for SNI; any other certificate is replaced); none → an
/// HTTPS entry on port 443.
pub fn plan_deploy(protocols: &[Value], cert: &str, key: &str) -> Vec<Change> {
    let mut out = Vec::new();
    let mut any = false;
    for p in protocols {
        if p.get("connector").and_then(Value::as_str) != Some("HTTPS") {
            continue;
        }
        any = true;
        let old = clean(p);
        let certs = str_list(old.get("cert"));
        let keys = str_list(old.get("key"));
        let mut pairs: Vec<(String, String)> = if certs.len() == keys.len()
            && certs.iter().all(|c| is_certbot_lineage(c) && c != cert)
        {
            certs.into_iter().zip(keys).collect()
        } else if let Some(i) = certs.iter().position(|c| c == cert) {
            // Ours already: keep the others as they are, fix our key.
            let mut v: Vec<(String, String)> = certs
                .iter()
                .cloned()
                .zip(keys.iter().cloned().chain(std::iter::repeat(String::new())))
                .collect();
            v[i].1 = key.to_string();
            v.retain(|(_, k)| !k.is_empty());
            v
        } else {
            vec![]
        };
        if !pairs.iter().any(|(c, _)| c == cert) {
            pairs.push((cert.to_string(), key.to_string()));
        }
        let mut new = old.clone();
        if pairs.len() == 1 {
            new["cert"] = json!(pairs[0].0);
            new["key"] = json!(pairs[0].1);
        } else {
            new["cert"] = json!(pairs.iter().map(|p| &p.0).collect::<Vec<_>>());
            new["key"] = json!(pairs.iter().map(|p| &p.1).collect::<Vec<_>>());
        }
        if new != old {
            out.push(Change::Update { old, new });
        }
    }
    if !any {
        out.push(Change::Add(json!({
            "connector": "HTTPS",
            "port": 443,
            "cert": cert,
            "key": key,
        })));
    }
    out
}

fn protocols_of(answer: &Value) -> Result<Vec<Value>, CertbotError> {
    answer
        .pointer("/config/protocols")
        .and_then(Value::as_array)
        .cloned()
        .ok_or(CertbotError::NoProtocols)
}

/// Whether `want` (ignoring runtime keys) is in the protocol list.
fn contains(protocols: &[Value], want: &Value) -> bool {
    let want = clean(want);
    protocols.iter().any(|p| clean(p) == want)
}

fn apply(client: &Client, changes: &[Change]) -> Result<(), CertbotError> {
    for c in changes {
        mist_core::info!("{}", c.command());
        let answer = client.call(&c.command())?;
        if !contains(&protocols_of(&answer)?, c.result()) {
            return Err(CertbotError::NotApplied(c.command().to_string()));
        }
    }
    // A separate request: commands of one object run in key order, and "save" sorts first.
    let answer = client.call(&json!({"save": true}))?;
    match answer.get("save") {
        Some(Value::String(s)) if s == "OK" => Ok(()),
        other => Err(CertbotError::NotApplied(format!(
            "save: {}",
            other.cloned().unwrap_or(Value::Null)
        ))),
    }
}

/// Where to check that `p` serves the challenge: its interface (unless a wildcard), else localhost.
fn check_addr(p: &Value, port: u16) -> Option<SocketAddr> {
    let iface = p
        .get("interface")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != "0.0.0.0" && *s != "::")
        .unwrap_or("127.0.0.1");
    let host = if iface.contains(':') && !iface.starts_with('[') {
        format!("[{iface}]:{port}")
    } else {
        format!("{iface}:{port}")
    };
    host.to_socket_addrs().ok().and_then(|mut i| i.next())
}

/// The auth hook: make the HTTP listener on `port` answer the challenge, and wait until it does.
pub fn auth_hook(
    client: &Client,
    port: u16,
    token: &str,
    validation: &str,
) -> Result<(), CertbotError> {
    let answer = client.call(&json!({"config": true, "capabilities": true}))?;
    let protocols = protocols_of(&answer)?;
    let caps = answer.get("capabilities").cloned().unwrap_or(Value::Null);
    let change = plan_auth(&protocols, &caps, port, token, validation)?;
    let target = match &change {
        Some(c) => c.result().clone(),
        None => protocols
            .iter()
            .find(|p| listen_port(p, &caps) == Some(port))
            .cloned()
            .unwrap_or(Value::Null),
    };
    match &change {
        Some(c) => apply(client, std::slice::from_ref(c))?,
        None => mist_core::info!("port {port} already answers this challenge"),
    }
    let addr = check_addr(&target, port)
        .ok_or_else(|| CertbotError::NotServed(format!("port {port}"), Duration::ZERO))?;
    let path = format!("/.well-known/acme-challenge/{token}");
    let end = Instant::now() + SERVE_WAIT;
    loop {
        if let Ok((200, body)) =
            super::client::http_get(addr, "localhost", &path, Duration::from_secs(3))
        {
            if body == validation.as_bytes() {
                mist_core::info!("http://{addr}{path} answers the validation");
                return Ok(());
            }
        }
        if Instant::now() >= end {
            return Err(CertbotError::NotServed(
                format!("http://{addr}{path}"),
                SERVE_WAIT,
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The deploy hook: point every HTTPS protocol at the lineage's `fullchain.pem`/`privkey.pem`.
pub fn deploy_hook(client: &Client, lineage: &Path) -> Result<(), CertbotError> {
    let cert = lineage.join("fullchain.pem");
    let key = lineage.join("privkey.pem");
    for f in [&cert, &key] {
        if !f.is_file() {
            return Err(CertbotError::MissingFile(f.display().to_string()));
        }
    }
    let answer = client.call(&json!({"config": true}))?;
    let protocols = protocols_of(&answer)?;
    let changes = plan_deploy(&protocols, &cert.to_string_lossy(), &key.to_string_lossy());
    if changes.is_empty() {
        mist_core::info!("every HTTPS protocol already uses {}", cert.display());
    }
    apply(client, &changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Value {
        json!({"connectors": {
            "HTTP": {"optional": {"port": {"default": 8080}}},
            "RTMP": {"optional": {"port": {"default": 1935}}},
            "HLS": {"deps": "HTTP"},
        }})
    }

    #[test]
    fn ports_explicit_default_and_served() {
        let c = caps();
        assert_eq!(
            listen_port(&json!({"connector": "HTTP", "port": 80}), &c),
            Some(80)
        );
        assert_eq!(
            listen_port(&json!({"connector": "HTTP", "port": "80"}), &c),
            Some(80)
        );
        assert_eq!(listen_port(&json!({"connector": "HTTP"}), &c), Some(8080));
        assert_eq!(
            listen_port(&json!({"connector": "HLS", "port": 80}), &c),
            None
        );
        assert_eq!(listen_port(&json!({"connector": "HTTPS"}), &c), Some(4433));
    }

    #[test]
    fn auth_adds_updates_refuses() {
        let c = caps();
        let add = plan_auth(&[json!({"connector": "RTMP"})], &c, 80, "T", "V").unwrap();
        assert_eq!(
            add,
            Some(Change::Add(
                json!({"connector": "HTTP", "port": 80, "certbot": "T:V"})
            ))
        );
        let http = json!({"connector": "HTTP", "port": 80, "online": 1});
        let up = plan_auth(&[http], &c, 80, "T", "V").unwrap();
        assert_eq!(
            up,
            Some(Change::Update {
                old: json!({"connector": "HTTP", "port": 80}),
                new: json!({"connector": "HTTP", "port": 80, "certbot": "T:V"})
            })
        );
        let done = json!({"connector": "HTTP", "port": 80, "certbot": "A:B T:V"});
        assert_eq!(plan_auth(&[done], &c, 80, "T", "V").unwrap(), None);
        let rtmp = json!({"connector": "RTMP", "port": 80});
        assert!(matches!(
            plan_auth(&[rtmp], &c, 80, "T", "V"),
            Err(CertbotError::PortTaken { .. })
        ));
        // HTTP on its default port 8080 does not count for port 80.
        let other = plan_auth(&[json!({"connector": "HTTP"})], &c, 80, "T", "V").unwrap();
        assert!(matches!(other, Some(Change::Add(_))));
    }

    #[test]
    fn several_challenges() {
        let o = add_challenge(Some("A:1 B:2"), "A", "3");
        assert_eq!(o, "B:2 A:3");
        assert_eq!(challenge_answer(&o, "A"), Some("3"));
        assert_eq!(challenge_answer(&o, "B"), Some("2"));
        assert_eq!(challenge_answer(&o, "C"), None);
        assert_eq!(challenge_answer("tok:val", "tok"), Some("val"));
        assert_eq!(challenge_answer(":val", ""), None);
        let mut s = String::new();
        for i in 0..40 {
            s = add_challenge(Some(&s), &format!("t{i}"), "v");
        }
        assert_eq!(challenges(&s).len(), MAX_CHALLENGES);
        assert_eq!(challenge_answer(&s, "t39"), Some("v"));
        assert_eq!(challenge_answer(&s, "t0"), None);
    }

    #[test]
    fn deploy_rules() {
        let (c, k) = ("/le/live/a/fullchain.pem", "/le/live/a/privkey.pem");
        assert_eq!(
            plan_deploy(&[json!({"connector": "HTTP"})], c, k),
            vec![Change::Add(
                json!({"connector": "HTTPS", "port": 443, "cert": c, "key": k})
            )]
        );
        // A self-made certificate is replaced.
        let own =
            json!({"connector": "HTTPS", "port": 4433, "cert": "/etc/x.pem", "key": "/etc/x.key"});
        let ch = plan_deploy(&[own], c, k);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].result()["cert"], json!(c));
        assert_eq!(ch[0].result()["key"], json!(k));
        // Another lineage is kept beside ours (SNI).
        let other = json!({"connector": "HTTPS", "cert": "/le/live/b/fullchain.pem", "key": "/le/live/b/privkey.pem"});
        let ch = plan_deploy(&[other], c, k);
        assert_eq!(
            ch[0].result()["cert"],
            json!(["/le/live/b/fullchain.pem", c])
        );
        assert_eq!(ch[0].result()["key"], json!(["/le/live/b/privkey.pem", k]));
        // Already ours: nothing to do.
        let ours = json!({"connector": "HTTPS", "cert": c, "key": k, "online": 0});
        assert!(plan_deploy(&[ours], c, k).is_empty());
        // Two HTTPS entries: both updated.
        let two = [
            json!({"connector": "HTTPS", "port": 443}),
            json!({"connector": "HTTPS", "port": 4433}),
        ];
        assert_eq!(plan_deploy(&two, c, k).len(), 2);
    }
}
