//! MistOutHTTPS: MistOutHTTP behind a TLS listener (`cert`/`key` options; default port 4433).
//! Same process, same routes, same code path; TLS is the connector runtime's transport.

use mist_connector::PemPair;
use serde_json::{json, Value};

/// The default HTTPS port (as MistServer).
pub const DEFAULT_PORT: u16 = 4433;

/// The capabilities JSON (`-j`) of MistOutHTTPS: MistOutHTTP's, renamed, with `cert`/`key`.
pub fn capabilities() -> Value {
    let mut c = super::capabilities();
    c["name"] = json!("HTTPS");
    c["friendly"] = json!("HTTPS (HTTP over TLS)");
    c["desc"] = json!("HTTPS connector: everything the HTTP connector serves (HLS, CMAF, progressive TS/FLV/MP4/Matroska, stream info, the player), over TLS (rustls, ALPN http/1.1, session resumption). Certificate files are reloaded when they change on disk (certbot renewals need no restart).");
    c["required"] = json!({
        "cert": {"name": "Certificate", "help": "Certificate chain file (PEM, leaf first, e.g. certbot's fullchain.pem); a JSON list of files for several certificates chosen by SNI", "type": "inputlist", "option": "--cert"},
        "key": {"name": "Key", "help": "Private key file (PEM; RSA, ECDSA or Ed25519) matching the certificate; a JSON list in the same order as the certificates", "type": "inputlist", "option": "--key"}
    });
    c["optional"]["port"]["default"] = json!(DEFAULT_PORT);
    c["url_rel"] = json!("/$");
    c
}

/// Error of [`pairs`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairsError {
    /// HTTPS needs a certificate.
    #[error("no certificate (--cert) given")]
    NoCert,
    /// Certificates and keys are paired in order, so their counts must match.
    #[error("{certs} certificate(s) but {keys} key(s): give one --key per --cert")]
    Mismatch {
        /// `--cert` options given.
        certs: usize,
        /// `--key` options given.
        keys: usize,
    },
}

/// Expands `--cert`/`--key` values: each a path, or a JSON list of paths (as the controller
/// passes a config list), into certificate/key pairs in order.
pub fn pairs(certs: &[String], keys: &[String]) -> Result<Vec<PemPair>, PairsError> {
    let certs = expand(certs);
    let keys = expand(keys);
    if certs.is_empty() {
        return Err(PairsError::NoCert);
    }
    if certs.len() != keys.len() {
        return Err(PairsError::Mismatch {
            certs: certs.len(),
            keys: keys.len(),
        });
    }
    Ok(certs
        .into_iter()
        .zip(keys)
        .map(|(c, k)| PemPair::new(c, k))
        .collect())
}

fn expand(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        let t = v.trim();
        if t.starts_with('[') {
            if let Ok(list) = serde_json::from_str::<Vec<String>>(t) {
                out.extend(list.into_iter().filter(|s| !s.is_empty()));
                continue;
            }
        }
        if !t.is_empty() {
            out.push(v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_paths_and_json_lists() {
        let p = pairs(&["/a.pem".into()], &["/a.key".into()]).unwrap();
        assert_eq!(p, vec![PemPair::new("/a.pem", "/a.key")]);
        let p = pairs(
            &[r#"["/a.pem","/b.pem"]"#.into()],
            &[r#"["/a.key","/b.key"]"#.into()],
        )
        .unwrap();
        assert_eq!(p[1], PemPair::new("/b.pem", "/b.key"));
        assert_eq!(pairs(&[], &[]), Err(PairsError::NoCert));
        assert_eq!(
            pairs(&["/a.pem".into(), "/b.pem".into()], &["/a.key".into()]),
            Err(PairsError::Mismatch { certs: 2, keys: 1 })
        );
    }

    #[test]
    fn capabilities_name_https_with_cert_and_key() {
        let c = capabilities();
        assert_eq!(c["name"], "HTTPS");
        assert_eq!(c["required"]["cert"]["option"], "--cert");
        assert_eq!(c["required"]["key"]["option"], "--key");
        assert_eq!(c["optional"]["port"]["default"], 4433);
        assert!(c.get("deps").is_none());
    }
}
