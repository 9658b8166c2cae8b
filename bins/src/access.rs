//! Who may play: the controller's answer and the viewer triggers around it, shared by the
//! connectors that serve viewers (MistOutRTMP, MistOutRTSP).

use mist_core::control::{ControlError, Request, Response};
use mist_core::names::sanitize;
use mist_core::triggers;
use std::time::Duration;

/// The fields of a play request.
struct Play<'a> {
    stream: &'a str,
    host: &'a str,
    connector: &'a str,
    url: &'a str,
}

impl<'a> Play<'a> {
    /// The play in `req`; `None` for other requests.
    fn of(req: &'a Request) -> Option<Play<'a>> {
        match req {
            Request::Play {
                stream,
                host,
                connector,
                url,
            } => Some(Play {
                stream,
                host,
                connector,
                url,
            }),
            _ => None,
        }
    }

    /// This viewer's play of `stream` at `url`.
    fn request(&self, stream: &str, url: String) -> Request {
        Request::Play {
            stream: stream.to_string(),
            host: self.host.to_string(),
            connector: self.connector.to_string(),
            url,
        }
    }
}

/// The controller request of a publish or play, run on an [`mist_connector::ask::Asker`]
/// worker. A play also runs the viewer triggers around it: PLAY_REWRITE before (it may rename
/// the stream or refuse), then CONN_OPEN, USER_NEW and CONN_PLAY once the stream is known.
pub fn ask_with_viewer_triggers(
    req: &Request,
    timeout: Duration,
) -> Result<Response, ControlError> {
    let resp = ask_play(req, timeout)?;
    let Some(play) = Play::of(req) else {
        return Ok(resp);
    };
    if !resp.ok {
        return Ok(resp);
    }
    let admitted = play.request(
        &resp.stream,
        viewer_url(play.url, play.stream, &resp.stream),
    );
    let verdict = admit_play(&admitted, timeout)?;
    if verdict.ok {
        Ok(resp)
    } else {
        Ok(verdict)
    }
}

/// The first half of [`ask_with_viewer_triggers`], for a connector that checks something of its
/// own between the controller's answer and the viewer triggers (MistOutRTSP: the stream's
/// credentials): PLAY_REWRITE, then the controller's answer (its `stream` always set, its
/// `config` the stream's). Other requests go to the controller as they are.
pub fn ask_play(req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let Some(play) = Play::of(req) else {
        return mist_core::control::request(req, timeout);
    };
    let stream =
        match triggers::viewers::play_rewrite(play.stream, play.host, play.connector, play.url) {
            Ok(Some(new)) => new,
            Ok(None) => play.stream.to_string(),
            Err(e) => return Ok(refusal(e.to_string())),
        };
    let asked = play.request(&stream, viewer_url(play.url, play.stream, &stream));
    let mut resp = mist_core::control::request(&asked, timeout)?;
    if resp.ok && resp.stream.is_empty() {
        resp.stream = sanitize(&stream);
    }
    Ok(resp)
}

/// The second half of [`ask_with_viewer_triggers`]: the viewer triggers (CONN_OPEN, USER_NEW,
/// CONN_PLAY) of a play the controller allowed; `req` names the stream the controller named and
/// its URL ([`viewer_url`]). Nothing is asked of the controller.
pub fn admit_play(req: &Request, _timeout: Duration) -> Result<Response, ControlError> {
    let Some(p) = Play::of(req) else {
        return Ok(refusal("not a play".into()));
    };
    if let Err(e) = triggers::viewers::admit(p.stream, p.host, p.connector, p.url, "") {
        return Ok(refusal(e.to_string()));
    }
    Ok(Response {
        ok: true,
        stream: p.stream.to_string(),
        error: String::new(),
        config: Default::default(),
    })
}

/// The URL line of the viewer triggers of a play of `asked` requested with `url` and admitted as
/// `stream` (PLAY_REWRITE or the controller may rename it): the URL with the asked name at its
/// end replaced by the stream's. The CONN_CLOSE of a connection repeats its CONN_OPEN's line.
pub fn viewer_url(url: &str, asked: &str, stream: &str) -> String {
    let base = url.strip_suffix(asked).unwrap_or(url);
    format!("{base}{stream}")
}

fn refusal(error: String) -> Response {
    Response {
        ok: false,
        stream: String::new(),
        error,
        config: Default::default(),
    }
}

/// The `dvr_bytes` capability entry (stream option → `--dvr-bytes`) of the live inputs that write
/// their stream themselves (MistInTS, MistInRTSP, MistInHLS; MistInBuffer has its own).
pub fn dvr_bytes_capability() -> serde_json::Value {
    serde_json::json!({
        "name": "Buffer size (bytes)",
        "help": "Live: at most this many bytes of the stream are kept for seeking back, whatever the buffer time says (frozen timestamps never leave the buffer time). 0: no limit. Default: 1 GiB (environment MIST_DVR_MAX_BYTES).",
        "type": "uint",
        "default": mist_shm::DEFAULT_MAX_DVR_BYTES,
        "option": "--dvr-bytes"
    })
}

/// `--dvr-bytes` of an input that writes its stream itself: the writer takes its DVR byte cap
/// from `MIST_DVR_MAX_BYTES` when it is created (0 = none). Call at the start of `main`, before
/// any thread is started.
pub fn apply_dvr_bytes(bytes: Option<u64>) {
    if let Some(n) = bytes {
        std::env::set_var("MIST_DVR_MAX_BYTES", n.to_string());
    }
}

/// DVR window when the controller does not say (MistServer's default).
pub const DEFAULT_DVR_MS: u64 = 50_000;

/// DVR window from a stream config (`DVR`, ms), MistServer's default otherwise.
pub fn dvr_ms(config: &serde_json::Value) -> u64 {
    config
        .get("DVR")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(DEFAULT_DVR_MS)
}
