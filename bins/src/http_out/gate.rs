//! The viewer triggers of MistOutHTTP (INTERFACES §5.3): CONN_OPEN and CONN_PLAY on a
//! connection's first request for a stream, USER_NEW once per viewer session (its answer reused
//! for 10 minutes, so an HLS/DASH player's playlist and segment requests, over one connection or
//! several, fire it once), CONN_CLOSE when an admitted connection closes. Requests that wait for
//! a blocking handler are parked here (the handlers run in threads, never on the event loop).

use mist_core::triggers::viewers::{self, Refused, Steps};
use mist_core::triggers::Engine;
use mist_net::http::Request as HttpRequest;
use mist_net::server::ConnId;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// A stream request at the gate: what is needed to continue it.
pub struct Parked<R> {
    /// The request's connection (its answer goes there).
    pub id: ConnId,
    /// The stream asked for (before PLAY_REWRITE).
    pub stream: String,
    /// How to serve it once admitted.
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

/// What a parked request's thread found: the request, admitted or the refusing trigger, the
/// stream PLAY_REWRITE named (if it ran and renamed), whether CONN_OPEN was fired.
struct Decision {
    job: u64,
    result: Result<(), Refused>,
    rewritten: Option<String>,
    opened: bool,
}

/// Runs the viewer triggers (USER_NEW, CONN_OPEN, PLAY_REWRITE) off the loop and parks the requests that wait on them.
pub struct Gate<R> {
    /// Parked requests.
    pending: mist_connector::IdMap<u64, Parked<R>>,
    /// Parked requests whose connection closed while their handlers ran.
    orphaned: std::collections::HashSet<u64>,
    next: u64,
    tx: Sender<Decision>,
    rx: Receiver<Decision>,
    /// Streams each open connection was admitted to.
    admitted: mist_connector::IdMap<ConnId, Vec<Admitted>>,
    /// PLAY_REWRITE answers per open connection: requested stream → stream played.
    rewrites: mist_connector::IdMap<ConnId, Vec<(String, String)>>,
}

/// What to do with a request now.
pub enum Verdict<R> {
    /// Serve it now: the stream to play (PLAY_REWRITE may have renamed it) and the route.
    Pass(String, R),
    /// A trigger refused the viewer: answer 403 with its reason.
    Refuse(Refused),
    /// Triggers are running: the answer comes from [`Gate::decided`].
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
    /// A gate with its decision channel and nothing parked.
    pub fn new() -> Gate<R> {
        let (tx, rx) = channel();
        Gate {
            pending: Default::default(),
            orphaned: Default::default(),
            next: 0,
            tx,
            rx,
            admitted: Default::default(),
            rewrites: Default::default(),
        }
    }

    fn admit(&mut self, p: &Parked<R>) {
        let list = self.admitted.entry(p.id).or_default();
        if !list.iter().any(|a| a.stream == p.stream) {
            crate::conn_close::opened(&p.stream, &p.host, &p.connector, &p.url);
            list.push(Admitted {
                stream: p.stream.clone(),
                host: p.host.clone(),
                connector: p.connector.clone(),
                url: p.url.clone(),
            });
        }
    }

    /// What PLAY_REWRITE answered for connection `id` asking for `stream`, if it ran.
    fn rewritten(&self, id: ConnId, stream: &str) -> Option<&str> {
        self.rewrites
            .get(&id)
            .and_then(|l| l.iter().find(|(asked, _)| asked == stream))
            .map(|(_, to)| to.as_str())
    }

    /// The stream to play when connection `id`, already admitted to `stream` (after the
    /// PLAY_REWRITE it got for it, if any), asks for it again and no USER_NEW handler applies:
    /// what [`Gate::check`] would pass without running a handler. `None`: ask [`Gate::check`].
    pub fn admitted_again(&self, id: ConnId, stream: &str) -> Option<String> {
        let e = Engine::global();
        let to = match self.rewritten(id, stream) {
            Some(to) => to,
            None if e.exists("PLAY_REWRITE", Some(stream)) => return None,
            None => stream,
        };
        let admitted = self
            .admitted
            .get(&id)
            .is_some_and(|l| l.iter().any(|a| a.stream == to));
        (admitted && !e.exists("USER_NEW", Some(to))).then(|| to.to_string())
    }

    /// Decides a stream request: at once when no blocking handler must run, else parked until
    /// [`Gate::decided`] gives it back. PLAY_REWRITE runs first, once per connection and
    /// requested stream; then CONN_OPEN and CONN_PLAY once per connection and stream, USER_NEW
    /// once per session.
    pub fn check(&mut self, mut p: Parked<R>, waker: Option<Arc<mio::Waker>>) -> Verdict<R> {
        let e = Engine::global();
        match self.rewritten(p.id, &p.stream) {
            Some(to) => p.stream = to.to_string(),
            None if e.exists("PLAY_REWRITE", Some(&p.stream)) => {
                let done: Vec<String> = self
                    .admitted
                    .get(&p.id)
                    .map(|l| l.iter().map(|a| a.stream.clone()).collect())
                    .unwrap_or_default();
                return self.park(p, None, done, waker);
            }
            None => {}
        }
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
            return Verdict::Pass(p.stream, p.route);
        }
        self.park(p, Some(steps), Vec::new(), waker)
    }

    /// Runs the handlers of a request in a thread: `steps`, or (None) PLAY_REWRITE and then the
    /// steps of the stream it names (`done`: the streams the connection was admitted to).
    fn park(
        &mut self,
        p: Parked<R>,
        steps: Option<Steps>,
        done: Vec<String>,
        waker: Option<Arc<mio::Waker>>,
    ) -> Verdict<R> {
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
            let d = match steps {
                Some(steps) => Decision {
                    job,
                    result: viewers::admit_steps(steps, &stream, &host, &connector, &url, &token),
                    rewritten: None,
                    opened: steps.open,
                },
                None => rewrite_then_admit(job, &stream, &host, &connector, &url, &token, &done),
            };
            let _ = tx.send(d);
            if let Some(w) = waker {
                let _ = w.wake();
            }
        });
        Verdict::Parked
    }

    /// Requests whose handlers answered: (request, admitted or the refusing trigger). A request
    /// PLAY_REWRITE renamed carries the new stream name.
    pub fn decided(&mut self) -> Vec<(Parked<R>, Result<(), Refused>)> {
        let mut out = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            let Some(mut p) = self.pending.remove(&d.job) else {
                continue;
            };
            if let Some(to) = d.rewritten {
                if !self.orphaned.contains(&d.job) {
                    let l = self.rewrites.entry(p.id).or_default();
                    if !l.iter().any(|(asked, _)| *asked == p.stream) {
                        l.push((p.stream.clone(), to.clone()));
                    }
                }
                p.stream = to;
            }
            if self.orphaned.remove(&d.job) {
                // Its connection is gone: a CONN_OPEN that admitted it still gets its CONN_CLOSE.
                if d.result.is_ok() && d.opened {
                    crate::conn_close::closed(&p.stream, &p.host, &p.connector, &p.url);
                }
                continue;
            }
            if d.result.is_ok() {
                self.admit(&p);
            }
            out.push((p, d.result));
        }
        out
    }

    /// A connection closed: its parked requests are dropped once decided; CONN_CLOSE for each
    /// stream it was admitted to.
    pub fn closed(&mut self, id: ConnId) {
        // Kept until their handlers answer (see `decided`).
        self.orphaned.extend(
            self.pending
                .iter()
                .filter(|(_, p)| p.id == id)
                .map(|(job, _)| *job),
        );
        self.rewrites.remove(&id);
        for a in self.admitted.remove(&id).unwrap_or_default() {
            crate::conn_close::closed(&a.stream, &a.host, &a.connector, &a.url);
        }
    }
}

/// PLAY_REWRITE for an HTTP request (blocking), then the viewer triggers of the stream it names:
/// CONN_OPEN and CONN_PLAY unless the connection was admitted to that stream (`done`), USER_NEW
/// unless the session is decided. An empty or invalid answer refuses.
fn rewrite_then_admit(
    job: u64,
    stream: &str,
    host: &str,
    connector: &str,
    url: &str,
    token: &str,
    done: &[String],
) -> Decision {
    let refused = |r: Refused| Decision {
        job,
        result: Err(r),
        rewritten: None,
        opened: false,
    };
    let to = match viewers::play_rewrite(stream, host, connector, url) {
        Ok(Some(name)) => {
            let n = mist_core::names::sanitize(&name);
            if !mist_core::names::is_valid(&n) {
                mist_core::warn!(
                    "PLAY_REWRITE answered {name:?} for {stream} ({host}): not a stream name; refused"
                );
                return refused(Refused("PLAY_REWRITE"));
            }
            n
        }
        Ok(None) => stream.to_string(),
        Err(r) => return refused(r),
    };
    let e = Engine::global();
    let fresh = !done.contains(&to);
    let steps = Steps {
        open: fresh && e.exists("CONN_OPEN", Some(&to)),
        user_new: e.exists("USER_NEW", Some(&to)),
        play: fresh && e.exists("CONN_PLAY", Some(&to)),
    };
    Decision {
        job,
        result: viewers::admit_steps(steps, &to, host, connector, url, token),
        rewritten: (to != stream).then_some(to),
        opened: steps.open,
    }
}

impl<R: Send + 'static> Default for Gate<R> {
    fn default() -> Self {
        Gate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(id: ConnId, stream: &str) -> Parked<()> {
        Parked {
            id,
            stream: stream.to_string(),
            route: (),
            target: format!("/hls/{stream}/index.m3u8"),
            host: "192.0.2.7".to_string(),
            connector: "HLS".to_string(),
            token: String::new(),
            url: format!("http://h/hls/{stream}/index.m3u8"),
        }
    }

    /// The keep-alive fast path passes exactly what `check` already admitted on that
    /// connection (no handlers configured in this process), and nothing after it closed.
    #[test]
    fn only_an_admitted_connection_is_admitted_again() {
        let mut g: Gate<()> = Gate::new();
        assert_eq!(g.admitted_again(1, "live"), None);
        match g.check(parked(1, "live"), None) {
            Verdict::Pass(s, ()) => assert_eq!(s, "live"),
            _ => panic!("no handler configured: the request passes"),
        }
        assert_eq!(g.admitted_again(1, "live").as_deref(), Some("live"));
        assert_eq!(g.admitted_again(1, "other"), None);
        assert_eq!(g.admitted_again(2, "live"), None);
        g.closed(1);
        assert_eq!(g.admitted_again(1, "live"), None);
    }
}
