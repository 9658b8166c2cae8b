//! How the operator utilities (MistUtilCertbot, MistUtilHealth) reach the local controller.
//!
//! Two transports, both authorised by being local (no password, as MistServer's local API):
//! 1. the controller's control socket (`mist_core::control`, `Request::Api`): `$MIST_CONTROL`,
//!    else the paths the controller itself picks (`/run/mist-rs/control.sock`,
//!    `$XDG_RUNTIME_DIR/mist-rs/control.sock`, `/tmp/mist-rs-<uid>/control.sock`; as root also
//!    every `/tmp/mist-rs-*/control.sock`, so root's certbot finds a controller run by a service
//!    user), the first one that accepts a connection;
//! 2. else the HTTP API on `127.0.0.1:4242` (or `--api HOST:PORT`), which authorises requests
//!    from a local address without forwarding headers.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Default HTTP API address.
pub const DEFAULT_API: &str = "127.0.0.1:4242";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the controller API could not be used (the message names the address tried).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error("cannot reach the controller: {0}")]
    Unreachable(String),
    /// The address is not `HOST:PORT`.
    #[error("bad API address {0:?}")]
    BadAddress(String),
    /// The connection broke.
    #[error("controller API: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not the JSON the API sends.
    #[error("bad answer from the controller API: {0}")]
    BadAnswer(String),
    /// The API answered, but not to us: a remote address or a wrong password.
    #[error("the controller API refused us (not a local, authorised caller): {0}")]
    Refused(String),
}

/// How the utilities reach the controller.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Its control socket (local, no password needed).
    Socket(PathBuf),
    /// Its HTTP API.
    Http(SocketAddr),
}

/// A connection description to the local controller's API.
#[derive(Debug, Clone)]
pub struct Client {
    /// The way chosen (the control socket when there is one).
    pub transport: Transport,
}

/// Control socket paths to try, in order.
pub fn socket_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os(mist_core::control::ENV_CONTROL).filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    v.push(PathBuf::from("/run/mist-rs/control.sock"));
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(x).join("mist-rs/control.sock"));
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    v.push(PathBuf::from(format!("/tmp/mist-rs-{uid}/control.sock")));
    if uid == 0 {
        if let Ok(rd) = std::fs::read_dir("/tmp") {
            let mut others: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("mist-rs-"))
                .map(|e| e.path().join("control.sock"))
                .collect();
            others.sort();
            v.extend(others);
        }
    }
    v.dedup();
    v
}

impl Client {
    /// `api`: an explicit `HOST:PORT` of the HTTP API (skips the control socket).
    pub fn discover(api: Option<&str>) -> Result<Client, ClientError> {
        if let Some(a) = api {
            return Ok(Client {
                transport: Transport::Http(resolve(a)?),
            });
        }
        for p in socket_candidates() {
            if UnixStream::connect(&p).is_ok() {
                return Ok(Client {
                    transport: Transport::Socket(p),
                });
            }
        }
        Ok(Client {
            transport: Transport::Http(resolve(DEFAULT_API)?),
        })
    }

    /// The way chosen, for messages (`control socket PATH`, `HTTP API ADDR`).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Socket(p) => format!("control socket {}", p.display()),
            Transport::Http(a) => format!("HTTP API {a}"),
        }
    }

    /// Sends one API command object; returns the answer object.
    pub fn call(&self, cmd: &Value) -> Result<Value, ClientError> {
        match &self.transport {
            Transport::Socket(p) => {
                let req = mist_core::control::Request::Api {
                    command: cmd.clone(),
                };
                let mut s = UnixStream::connect(p)
                    .map_err(|e| ClientError::Unreachable(format!("{}: {e}", p.display())))?;
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                let mut line =
                    serde_json::to_vec(&req).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                line.push(b'\n');
                s.write_all(&line)?;
                let mut buf = Vec::new();
                (&s).take(16 << 20).read_to_end(&mut buf)?;
                let resp: mist_core::control::Response = serde_json::from_slice(&buf)
                    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                if !resp.ok {
                    return Err(ClientError::Refused(resp.error));
                }
                check_auth(resp.config)
            }
            Transport::Http(a) => {
                let body = cmd.to_string();
                let mut s = TcpStream::connect_timeout(a, TIMEOUT)
                    .map_err(|e| ClientError::Unreachable(format!("{a}: {e}")))?;
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                let req = format!(
                    "POST /api HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(req.as_bytes())?;
                let mut buf = Vec::new();
                (&s).take(16 << 20).read_to_end(&mut buf)?;
                let (status, body) = split_http(&buf)?;
                if status != 200 {
                    return Err(ClientError::BadAnswer(format!("HTTP status {status}")));
                }
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                check_auth(v)
            }
        }
    }
}

fn resolve(a: &str) -> Result<SocketAddr, ClientError> {
    a.to_socket_addrs()
        .ok()
        .and_then(|mut i| i.next())
        .ok_or_else(|| ClientError::BadAddress(a.to_string()))
}

fn check_auth(v: Value) -> Result<Value, ClientError> {
    match v.pointer("/authorize/status").and_then(Value::as_str) {
        Some("CHALL") | Some("NOACC") => Err(ClientError::Refused(
            "the API asks for a login; run this on the controller's machine, from a local address"
                .into(),
        )),
        _ if !v.is_object() => Err(ClientError::BadAnswer("not a JSON object".into())),
        _ => Ok(v),
    }
}

/// Splits a whole HTTP/1.x response (Content-Length or close-delimited) into status and body.
pub fn split_http(buf: &[u8]) -> Result<(u16, &[u8]), ClientError> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ClientError::BadAnswer("no HTTP header end".into()))?;
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| ClientError::BadAnswer("head".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::BadAnswer(format!("status line {:?}", head.lines().next())))?;
    Ok((status, &buf[end + 4..]))
}

/// One plain HTTP GET (HTTP/1.0, close-delimited); returns status and body.
pub fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ClientError> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    (&s).take(1 << 20).read_to_end(&mut buf)?;
    let (st, body) = split_http(&buf)?;
    Ok((st, body.to_vec()))
}
