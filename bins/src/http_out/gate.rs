//! The viewer triggers of MistOutHTTP (INTERFACES §5.3): CONN_OPEN and CONN_PLAY on a
//! connection's first request for a stream, USER_NEW once per viewer session (its answer reused
//! for 10 minutes, so an HLS/DASH player's playlist and segment requests, over one connection or
//! several, fire it once), CONN_CLOSE when an admitted connection closes. Requests that wait for
//! a blocking handler are parked here (the handlers run in threads, never on the event loop).

use mist_core::triggers::viewers::{self, Refused, Steps};
use mist_core::triggers::Engine;
use mist_net::http::Request as HttpRequest;
use mist_net::server::ConnId;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// A stream request at the gate: what is needed to continue it.
pub struct Parked<R> {
    pub id: ConnId,
    pub stream: String,
    pub route: R,
    /// The request target (path and query).
    pub target: String,
    /// The viewer's address.
    pub host: String,
    /// `HLS`, `CMAF`, or `HTTP` (progressive).
    pub connector: String,
    /// The session token (`token`).
    pub token: String,
    /// The request's full URL (the triggers' URL line).
    pub url: String,
}

/// What a connection was admitted to (for its CONN_CLOSE).
struct Admitted {
    stream: String,
    host: String,
    connector: String,
    url: String,
}

pub struct Gate<R> {
    pending: HashMap<u64, Parked<R>>,
    next: u64,
    tx: Sender<(u64, Result<(), Refused>)>,
    rx: Receiver<(u64, Result<(), Refused>)>,
    /// Streams each open connection was admitted to.
    admitted: HashMap<ConnId, Vec<Admitted>>,
}

/// What to do with a request now.
pub enum Verdict<R> {
    Pass(R),
    Refuse(Refused),
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
            next: 0,
            tx,
            rx,
            admitted: HashMap::new(),
        }
    }

    fn admit(&mut self, p: &Parked<R>) {
        let list = self.admitted.entry(p.id).or_default();
        if !list.iter().any(|a| a.stream == p.stream) {
            list.push(Admitted {
                stream: p.stream.clone(),
                host: p.host.clone(),
                connector: p.connector.clone(),
                url: p.url.clone(),
            });
        }
    }

    /// Decides a stream request: at once when no blocking handler must run, else parked until
    /// [`Gate::decided`] gives it back.
    pub fn check(&mut self, p: Parked<R>, waker: Option<Arc<mio::Waker>>) -> Verdict<R> {
        let e = Engine::global();
        let stream = Some(p.stream.as_str());
        let fresh = !self
            .admitted
            .get(&p.id)
            .is_some_and(|l| l.iter().any(|a| a.stream == p.stream));
        let mut steps = Steps {
            open: fresh && e.exists("CONN_OPEN", stream),
            user_new: false,
            play: fresh && e.exists("CONN_PLAY", stream),
        };
        if e.exists("USER_NEW", stream) {
            let sid = viewers::session_id(&p.stream, &p.host, &p.connector, &p.token);
            match viewers::cached(&sid) {
                Some(true) => {}
                Some(false) => return Verdict::Refuse(Refused("USER_NEW")),
                None => steps.user_new = true,
            }
        }
        if !steps.open && !steps.user_new && !steps.play {
            self.admit(&p);
            return Verdict::Pass(p.route);
        }
        let job = self.next;
        self.next += 1;
        let tx = self.tx.clone();
        let (stream, host, connector, url, token) = (
            p.stream.clone(),
            p.host.clone(),
            p.connector.clone(),
            p.url.clone(),
            p.token.clone(),
        );
        self.pending.insert(job, p);
        std::thread::spawn(move || {
            let r = viewers::admit_steps(steps, &stream, &host, &connector, &url, &token);
            let _ = tx.send((job, r));
            if let Some(w) = waker {
                let _ = w.wake();
            }
        });
        Verdict::Parked
    }

    /// Requests whose handlers answered: (request, admitted or the refusing trigger).
    pub fn decided(&mut self) -> Vec<(Parked<R>, Result<(), Refused>)> {
        let mut out = Vec::new();
        while let Ok((job, r)) = self.rx.try_recv() {
            if let Some(p) = self.pending.remove(&job) {
                if r.is_ok() {
                    self.admit(&p);
                }
                out.push((p, r));
            }
        }
        out
    }

    /// A connection closed: forgets its parked requests; CONN_CLOSE for each stream it was
    /// admitted to.
    pub fn closed(&mut self, id: ConnId) {
        self.pending.retain(|_, p| p.id != id);
        for a in self.admitted.remove(&id).unwrap_or_default() {
            viewers::closed(&a.stream, &a.host, &a.connector, &a.url);
        }
    }
}

impl<R: Send + 'static> Default for Gate<R> {
    fn default() -> Self {
        Gate::new()
    }
}
