//! USER_NEW for HTTP players (INTERFACES §5.3): one decision per viewer session (address,
//! stream, connector, token), reused for 10 minutes, so an HLS/DASH player's playlist and
//! segment requests fire USER_NEW once. Requests of a session whose decision is pending are
//! parked here (the handler runs in a thread, never on the event loop).

use mist_core::triggers::{viewers, Engine};
use mist_net::http::Request as HttpRequest;
use mist_net::server::ConnId;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// A parked request: what is needed to continue it.
pub struct Parked<R> {
    pub id: ConnId,
    pub stream: String,
    pub route: R,
    pub target: String,
}

pub struct Gate<R> {
    pending: HashMap<String, Vec<Parked<R>>>,
    tx: Sender<(String, bool)>,
    rx: Receiver<(String, bool)>,
}

/// What to do with a request now.
pub enum Verdict<R> {
    Pass(R),
    Refuse,
    Parked,
}

/// The session token of a request, as `tknMode` says (INTERFACES §2.1): bit 1 the `tkn`, `sid`,
/// `sessId` or `jwt` parameter, bit 2 a `tkn`/`jwt` cookie (`sid` too); `Authorization: Bearer`
/// always wins.
pub fn token(req: &HttpRequest) -> String {
    token_with(req, viewers::modes().tkn)
}

/// [`token`] with an explicit `tknMode`.
pub fn token_with(req: &HttpRequest, tkn_mode: u8) -> String {
    use mist_core::triggers::session_modes::{TKN_READ_COOKIE, TKN_READ_PARAM};
    if let Some(t) = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        return t;
    }
    if tkn_mode & TKN_READ_PARAM != 0 {
        if let Some(t) = req.query_param("jwt").filter(|t| !t.is_empty()) {
            return t;
        }
        for k in ["tkn", "sid", "sessId"] {
            if let Some(t) = req.query_param(k).filter(|t| !t.is_empty()) {
                return t;
            }
        }
    }
    if tkn_mode & TKN_READ_COOKIE != 0 {
        if let Some(c) = req.header("cookie") {
            let mut found = None;
            for kv in c.split(';') {
                if let Some((k, v)) = kv.trim().split_once('=') {
                    match k {
                        "jwt" if !v.is_empty() => return v.to_string(),
                        "tkn" | "sid" if found.is_none() && !v.is_empty() => {
                            found = Some(v.to_string())
                        }
                        _ => {}
                    }
                }
            }
            if let Some(t) = found {
                return t;
            }
        }
    }
    String::new()
}

impl<R: Send + 'static> Gate<R> {
    pub fn new() -> Gate<R> {
        let (tx, rx) = channel();
        Gate {
            pending: HashMap::new(),
            tx,
            rx,
        }
    }

    /// Decides a request for `stream` from `host` over `connector`.
    pub fn check(
        &mut self,
        p: Parked<R>,
        host: &str,
        connector: &str,
        token: &str,
        waker: Option<Arc<mio::Waker>>,
    ) -> Verdict<R> {
        if !Engine::global().exists("USER_NEW", Some(&p.stream)) {
            return Verdict::Pass(p.route);
        }
        let sid = viewers::session_id(&p.stream, host, connector, token);
        match viewers::cached(&sid) {
            Some(true) => return Verdict::Pass(p.route),
            Some(false) => return Verdict::Refuse,
            None => {}
        }
        let first = !self.pending.contains_key(&sid);
        let (stream, url) = (p.stream.clone(), p.target.clone());
        self.pending.entry(sid.clone()).or_default().push(p);
        if first {
            let (tx, host, connector, token) = (
                self.tx.clone(),
                host.to_string(),
                connector.to_string(),
                token.to_string(),
            );
            std::thread::spawn(move || {
                let ok = viewers::user_new(&stream, &host, &connector, &url, &token);
                let _ = tx.send((sid, ok));
                if let Some(w) = waker {
                    let _ = w.wake();
                }
            });
        }
        Verdict::Parked
    }

    /// Requests whose session was decided: (request, admitted).
    pub fn decided(&mut self) -> Vec<(Parked<R>, bool)> {
        let mut out = Vec::new();
        while let Ok((sid, ok)) = self.rx.try_recv() {
            for p in self.pending.remove(&sid).unwrap_or_default() {
                out.push((p, ok));
            }
        }
        out
    }

    /// Forgets a closed connection's parked request.
    pub fn closed(&mut self, id: ConnId) {
        for v in self.pending.values_mut() {
            v.retain(|p| p.id != id);
        }
    }
}

impl<R: Send + 'static> Default for Gate<R> {
    fn default() -> Self {
        Gate::new()
    }
}
