//! Viewer triggers for the connector serving the viewer (INTERFACES §5.3): CONN_OPEN, USER_NEW
//! (answer cached per session for 10 minutes), CONN_PLAY before playback, CONN_STOP at the end of
//! the data, CONN_CLOSE after.

use super::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a USER_NEW answer is reused for the same session.
pub const USER_NEW_CACHE: Duration = Duration::from_secs(600);

/// The session id of a viewer as MistServer makes it: the SHA-256 (64 hex digits) of the fields
/// the configured `sessionViewerMode` selects (default 14: stream, address and token; 15 adds
/// the connector). See [`super::session_modes`].
pub fn session_id(stream: &str, host: &str, connector: &str, token: &str) -> String {
    let mode = Engine::global().config().sessions.viewer;
    super::session_modes::session_id_with(mode, stream, host, connector, token)
}

/// The configured session settings of this process.
pub fn modes() -> super::session_modes::SessionModes {
    Engine::global().config().sessions
}

fn cache() -> &'static Mutex<HashMap<String, (Instant, bool)>> {
    static C: OnceLock<Mutex<HashMap<String, (Instant, bool)>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The cached USER_NEW answer of a session, if still fresh.
pub fn cached(sid: &str) -> Option<bool> {
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    // Expired answers are swept at most once a second: this runs on every stream request, and
    // a sweep walks every session.
    static SWEPT: Mutex<Option<Instant>> = Mutex::new(None);
    let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
    if swept.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
        *swept = Some(now);
        c.retain(|_, (t, _)| now.duration_since(*t) < USER_NEW_CACHE);
    }
    c.get(sid)
        .filter(|(t, _)| now.duration_since(*t) < USER_NEW_CACHE)
        .map(|(_, ok)| *ok)
}

/// Forgets the cached USER_NEW answer of a session (`invalidate_sessions`): its next request
/// fires USER_NEW again.
pub fn forget(sid: &str) {
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(sid);
}

/// Fires USER_NEW for a new session (blocking; the answer is cached for the session) and
/// returns whether the viewer is admitted. Call it off the event loop.
pub fn user_new(stream: &str, host: &str, connector: &str, url: &str, token: &str) -> bool {
    let sid = session_id(stream, host, connector, token);
    let ok = Engine::global()
        .fire(
            "USER_NEW",
            Some(stream),
            &[stream, host, token, connector, url, &sid],
        )
        .ok;
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sid, (Instant::now(), ok));
    ok
}

/// A USER_NEW decision being made: its answer once known.
type Deciding = Arc<(Mutex<Option<bool>>, Condvar)>;

fn deciding() -> &'static Mutex<HashMap<String, Deciding>> {
    static D: OnceLock<Mutex<HashMap<String, Deciding>>> = OnceLock::new();
    D.get_or_init(Default::default)
}

/// The USER_NEW answer of a session: cached, or decided now. Callers asking for a session whose
/// decision is under way (an HLS player's parallel first requests) wait for that one: USER_NEW
/// fires once. Blocks on handlers: call it off the event loop.
pub fn user_new_once(stream: &str, host: &str, connector: &str, url: &str, token: &str) -> bool {
    let sid = session_id(stream, host, connector, token);
    if let Some(ok) = cached(&sid) {
        return ok;
    }
    let (cell, leader) = {
        let mut d = deciding().lock().unwrap_or_else(|p| p.into_inner());
        match d.get(&sid) {
            Some(c) => (c.clone(), false),
            None => {
                let c: Deciding = Arc::new((Mutex::new(None), Condvar::new()));
                d.insert(sid.clone(), c.clone());
                (c, true)
            }
        }
    };
    if leader {
        let ok = user_new(stream, host, connector, url, token);
        *cell.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
        cell.1.notify_all();
        deciding()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sid);
        return ok;
    }
    let mut g = cell.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(ok) = *g {
            return ok;
        }
        g = cell.1.wait(g).unwrap_or_else(|p| p.into_inner());
    }
}

/// The blocking viewer triggers a connection still needs before it may play `stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// CONN_OPEN (the connection's first request for the stream).
    pub open: bool,
    /// USER_NEW (the session is not decided).
    pub user_new: bool,
    /// CONN_PLAY (the connection's first request for the stream).
    pub play: bool,
}

/// Runs the `steps` in order (CONN_OPEN, USER_NEW once per session, CONN_PLAY); `Err(trigger)`
/// refuses the viewer. A viewer that CONN_OPEN let in and USER_NEW or CONN_PLAY refused gets its
/// CONN_CLOSE at once (every CONN_OPEN has one). Blocks on handlers: call it off the event loop.
pub fn admit_steps(
    steps: Steps,
    stream: &str,
    host: &str,
    connector: &str,
    url: &str,
    token: &str,
) -> Result<(), Refused> {
    let e = Engine::global();
    let base = [stream, host, connector, url];
    if steps.open && !e.fire("CONN_OPEN", Some(stream), &base).ok {
        return Err(Refused("CONN_OPEN"));
    }
    let refused = |r: Refused| {
        if steps.open {
            closed(stream, host, connector, url);
        }
        Err(r)
    };
    if steps.user_new && !user_new_once(stream, host, connector, url, token) {
        return refused(Refused("USER_NEW"));
    }
    if steps.play && !e.fire("CONN_PLAY", Some(stream), &base).ok {
        return refused(Refused("CONN_PLAY"));
    }
    Ok(())
}

/// Runs the blocking viewer triggers for a viewer about to play `stream`: CONN_OPEN, USER_NEW
/// (once per session in 10 minutes), CONN_PLAY. `Err(trigger)` refuses the viewer; one that
/// CONN_OPEN let in gets its CONN_CLOSE at once. Blocks on handlers: call it off the event loop.
pub fn admit(
    stream: &str,
    host: &str,
    connector: &str,
    url: &str,
    token: &str,
) -> Result<String, Refused> {
    let e = Engine::global();
    let base = [stream, host, connector, url];
    if !e.fire("CONN_OPEN", Some(stream), &base).ok {
        return Err(Refused("CONN_OPEN"));
    }
    let sid = session_id(stream, host, connector, token);
    // A CONN_OPEN handler saw this viewer: a refusal now owes it its CONN_CLOSE.
    let opened = e.exists("CONN_OPEN", Some(stream));
    let refused = |r: Refused| {
        if opened {
            closed(stream, host, connector, url);
        }
        Err(r)
    };
    if e.exists("USER_NEW", Some(stream)) {
        let ok = user_new_once(stream, host, connector, url, token);
        if !ok {
            return refused(Refused("USER_NEW"));
        }
    }
    if !e.fire("CONN_PLAY", Some(stream), &base).ok {
        return refused(Refused("CONN_PLAY"));
    }
    Ok(sid)
}

/// PLAY_REWRITE before a viewer's stream is looked up: `Ok(Some(name))` plays that stream
/// instead, `Ok(None)` leaves it (no blocking handler), `Err` refuses (empty answer). Blocks on
/// handlers: call it off the event loop.
pub fn play_rewrite(
    stream: &str,
    host: &str,
    connector: &str,
    url: &str,
) -> Result<Option<String>, Refused> {
    let o = Engine::global().fire(
        "PLAY_REWRITE",
        Some(stream),
        &[stream, host, connector, url],
    );
    if !o.handled {
        return Ok(None);
    }
    let a = o.answer.unwrap_or_default();
    let name = a.trim();
    if name.is_empty() {
        return Err(Refused("PLAY_REWRITE"));
    }
    Ok(Some(name.to_string()))
}

/// A viewer refused by the named blocking trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused by the {0} trigger")]
pub struct Refused(pub &'static str);

/// A viewer admitted by [`admit`] left: CONN_CLOSE (never waits).
pub fn closed(stream: &str, host: &str, connector: &str, url: &str) {
    Engine::global().emit("CONN_CLOSE", Some(stream), &[stream, host, connector, url]);
}

/// An admitted viewer's playback reached the end of the stream's data: CONN_STOP (never waits;
/// undocumented in MistServer, payload stream, peer, connector and an empty line). For the
/// [`SESSION_CONNECTORS`] the controller fires it when the viewer session ends.
pub fn stopped(stream: &str, host: &str, connector: &str) {
    Engine::global().emit("CONN_STOP", Some(stream), &[stream, host, connector, ""]);
}

/// Connectors whose viewer is a session of many HTTP requests (playlists, manifests, segments)
/// rather than one connection: HLS and CMAF (DASH, HLSv7, Smooth). Their CONN_STOP fires once,
/// when the viewer session ends.
pub const SESSION_CONNECTORS: &[&str] = &["HLS", "CMAF"];

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids() {
        // No config installed: MistServer's default mode 14 (connector not included).
        let a = super::session_id("s", "1.2.3.4", "RTMP", "");
        assert_eq!(a.len(), 64);
        assert_eq!(a, super::session_id("s", "1.2.3.4", "HLS", ""));
        assert_ne!(a, super::session_id("s", "1.2.3.4", "RTMP", "t"));
    }
}
