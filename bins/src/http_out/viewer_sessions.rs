//! Viewer sessions of MistOutHTTP for the controller (`mist_shm::sessions`): every admitted
//! stream request belongs to the session of (stream, host, connector, token), the id USER_NEW
//! was given (`viewers::session_id`); its connection counts in that session until it closes,
//! with the bytes of the answers sent on it. An HLS player's playlist and segment requests,
//! over one connection or many, are one session. Sessions the controller ends (`stop_sessid`)
//! get their connections closed.

use crate::http_out::segmented::Answer;
use mist_core::triggers::viewers;
use mist_net::server::ConnId;
use mist_shm::sessions::{self, SessionKey};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes queued to progressive viewers by the shared feeds since the last
/// [`ViewerSessions::tick`] (the feeds do not know the sessions).
fn fanned() -> &'static Mutex<HashMap<ConnId, u64>> {
    static F: OnceLock<Mutex<HashMap<ConnId, u64>>> = OnceLock::new();
    F.get_or_init(Default::default)
}

/// A feed queued `bytes` to each of `ids`.
pub fn fanout(ids: &[ConnId], bytes: u64) {
    if ids.is_empty() || bytes == 0 {
        return;
    }
    let mut f = fanned().lock().unwrap_or_else(|p| p.into_inner());
    for id in ids {
        *f.entry(*id).or_default() += bytes;
    }
}

/// The viewer sessions (`mist_shm::sessions`) of the HTTP output's connections, so the controller counts HTTP viewers as it counts RTMP ones.
#[derive(Default)]
pub struct ViewerSessions {
    /// The session of each connection's current request, before it is admitted.
    asked: mist_connector::IdMap<ConnId, SessionKey>,
    /// Admitted connections: (connection key in `mist_shm::sessions`, bytes sent, the session's
    /// key, whose `sid` is its id).
    open: mist_connector::IdMap<ConnId, (u64, u64, SessionKey)>,
    last_tick: Option<Instant>,
}

impl ViewerSessions {
    /// A stream request arrived on `id` (before the viewer gate).
    pub fn request(&mut self, id: ConnId, stream: &str, host: &str, connector: &str, token: &str) {
        // A keep-alive connection asking for the same session again (a player's next segment)
        // keeps its session: no new id to hash, no key to copy.
        if let Some((_, _, k)) = self.open.get(&id) {
            if k.stream == stream && k.host == host && k.connector == connector && k.token == token
            {
                self.asked.remove(&id);
                return;
            }
        }
        self.asked.insert(
            id,
            SessionKey {
                sid: viewers::session_id(stream, host, connector, token),
                stream: stream.to_string(),
                connector: connector.to_string(),
                host: host.to_string(),
                token: token.to_string(),
            },
        );
    }

    /// Whether a request on `id` for `stream` with `token` belongs to the session the
    /// connection already counts in (the peer address of a connection does not change).
    pub fn same_session(&self, id: ConnId, stream: &str, connector: &str, token: &str) -> bool {
        self.open.get(&id).is_some_and(|(_, _, k)| {
            k.stream == stream && k.connector == connector && k.token == token
        }) && !self.asked.contains_key(&id)
    }

    /// PLAY_REWRITE renamed the stream of the request on `id`: its session is the new stream's.
    pub fn rewritten(&mut self, id: ConnId, stream: &str) {
        if let Some(k) = self.asked.get_mut(&id).filter(|k| k.stream != stream) {
            k.stream = stream.to_string();
            k.sid = viewers::session_id(stream, &k.host, &k.connector, &k.token);
        }
    }

    /// The request on `id` was admitted: the connection counts in its session.
    pub fn admitted(&mut self, id: ConnId) {
        let Some(k) = self.asked.remove(&id) else {
            return;
        };
        if self
            .open
            .get(&id)
            .is_some_and(|(_, _, open)| open.sid == k.sid)
        {
            return;
        }
        self.closed(id);
        let key = sessions::conn_open(&k);
        self.open.insert(id, (key, 0, k));
    }

    /// `bytes` of an answer were queued on `id`.
    pub fn sent(&mut self, id: ConnId, bytes: u64) {
        if let Some((key, up, _)) = self.open.get_mut(&id) {
            *up += bytes;
            sessions::conn_bytes(*key, 0, *up);
        }
    }

    /// [`ViewerSessions::sent`] with the size of a segmented answer.
    pub fn answered(&mut self, id: ConnId, a: &Answer) {
        let n = match a {
            Answer::Ready { body, .. } => body.len(),
            Answer::Cached(c) => c.bytes.len(),
            Answer::Wait | Answer::NotFound(_) => 0,
        };
        if n > 0 {
            self.sent(id, n as u64);
        }
    }

    /// A connection closed: its session's bytes are final and its slot may linger, then go.
    pub fn closed(&mut self, id: ConnId) {
        self.asked.remove(&id);
        let fed = fanned()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(n) = fed {
            self.sent(id, n);
        }
        if let Some((key, _, _)) = self.open.remove(&id) {
            sessions::conn_close(key);
        }
    }

    /// Now and then: frees idle sessions' slots; returns the connections of sessions the
    /// controller ended, to be closed. Sessions the controller invalidated decide USER_NEW again.
    pub fn tick(&mut self) -> Vec<ConnId> {
        if self
            .last_tick
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return Vec::new();
        }
        self.last_tick = Some(Instant::now());
        let fanned = std::mem::take(&mut *fanned().lock().unwrap_or_else(|p| p.into_inner()));
        for (id, n) in fanned {
            self.sent(id, n);
        }
        let asked = sessions::tick();
        for sid in &asked.invalidated {
            viewers::forget(sid);
        }
        if asked.killed.is_empty() {
            return Vec::new();
        }
        self.open
            .iter()
            .filter(|(_, (_, _, k))| asked.killed.contains(&k.sid))
            .map(|(id, _)| *id)
            .collect()
    }
}
