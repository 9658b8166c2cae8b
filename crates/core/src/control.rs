//! The control socket between MistController and its children.
//!
//! A Unix stream socket (mode 0660) whose path children find in the environment variable
//! `MIST_CONTROL` (set by the controller when it spawns them). One request per connection: the child
//! writes one JSON object and a newline, the controller answers with one JSON object and a newline and
//! closes. Binaries started by hand without `MIST_CONTROL` run standalone.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable naming the controller's control socket in its children.
pub const ENV_CONTROL: &str = "MIST_CONTROL";

/// What a child asks the controller over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// A connector received an incoming push. The controller applies the stream's `push://` rules
    /// (whitelist, password) and the push triggers, makes sure MistInBuffer runs for the stream, and
    /// answers with the stream name to write to.
    Push {
        /// Stream name as requested (sanitised by the controller).
        stream: String,
        /// The RTMP app name or URL path part that may carry a push password.
        app: String,
        /// Peer address.
        host: String,
        /// Connector name (`RTMP`, `RTSP` …).
        connector: String,
        /// Full request URL as the peer sent it.
        url: String,
    },
    /// A connector wants to play a stream: the controller starts its input if needed.
    Play {
        /// Stream name as requested.
        stream: String,
        /// Peer address.
        host: String,
        /// Connector name (`RTMP`, `HLS` …).
        connector: String,
        /// Full request URL as the peer sent it.
        url: String,
    },
    /// A connector wants a stream's config before it asks to play or push it (MistOutRTSP checks
    /// the stream's own credentials first, so that a client without them starts nothing): the
    /// config a `Play` or `Push` of that name would find (a push's stream key mapped to its
    /// stream, a wildcard stream's base config) in `Response::config`, and the stream's name in
    /// `Response::stream`. Nothing is started and no trigger fires; refused when no stream of
    /// that name is configured.
    StreamConfig {
        /// Stream name as requested.
        stream: String,
        /// The name is a push's (it may be a stream key).
        push: bool,
    },
    /// A JSON API command object, exactly as sent to the HTTP API (e.g. `{"config": true}`), from a
    /// local utility such as MistUtilCertbot. Authorised by the socket's file permissions (this
    /// replaces MistServer's unauthenticated local UDP API). The API answer object is returned in
    /// `Response::config`.
    Api {
        /// The API command object.
        command: serde_json::Value,
    },
}

/// The controller's answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// Whether the request is allowed.
    pub ok: bool,
    /// The stream name to use (after wildcard/rewrite rules).
    #[serde(default)]
    pub stream: String,
    /// Why it was refused, for the peer and the log.
    #[serde(default)]
    pub error: String,
    /// The stream's effective config (the base stream's for a wildcard stream).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Why the controller could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The environment variable that names the control socket is not set.
    #[error("no controller: {0} is not set")]
    NotSet(&'static str),
    /// The control socket could not be used.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: String,
        /// What using it gave.
        source: std::io::Error,
    },
    /// The answer was not a [`Response`].
    #[error("bad answer from controller: {0}")]
    BadAnswer(String),
}

/// The control socket path from the environment, if this process was started by a controller.
pub fn socket_path() -> Option<PathBuf> {
    std::env::var_os(ENV_CONTROL).map(PathBuf::from)
}

/// Sends one request and waits for the answer (bounded by `timeout`).
pub fn request(req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let path = socket_path().ok_or(ControlError::NotSet(ENV_CONTROL))?;
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut sock = UnixStream::connect(&path).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).expect("request serialises");
    line.push(b'\n');
    sock.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    // One line of at most 1 MiB: the controller is trusted, but a wrong socket path must not hang us.
    BufReader::new((&sock).take(1 << 20))
        .read_line(&mut answer)
        .map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ControlError::BadAnswer(e.to_string()))
}
