//! Requests to the controller, asked off the loop with a bounded number in flight.
//!
//! A connector asks the controller before it lets a peer play or publish. The question goes over
//! the control socket, which may take a while (the controller may start an input first), so it
//! must not block the event loop; and it must not cost a thread per request either. [`Asker`]
//! keeps a small fixed pool of worker threads (at most [`MAX_IN_FLIGHT`]) and a bounded queue.
//!
//! One policy decides every answer ([`decide`]):
//! - **standalone** (the process was started without `MIST_CONTROL`, so no controller is
//!   configured): **allowed**, as the stream name asked for; there is nobody to ask.
//! - **controller configured but unreachable** (connect error, timeout, garbage answer):
//!   **refused**, since the controller's rules (push whitelists, passwords, triggers) cannot be
//!   checked. Allowing here would turn a controller outage into an open door.
//! - a queue overflow (more than `queue` requests waiting) is refused too.
//! - otherwise the controller's answer stands.

use mio::Waker;
use mist_core::control::{ControlError, Request, Response};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most controller requests in flight at once, per process.
pub const MAX_IN_FLIGHT: usize = 8;

/// The outcome of a controller request, after the policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go ahead; the controller's answer (or a made-up one when standalone).
    Allow(Response),
    /// Refused, with the reason for the log and the peer.
    Refuse(Refusal),
}

/// Why a request was refused. A connector shows it to the peer and logs it; which case it is
/// matters to an operator reading the log (a rule of theirs, or a controller that is down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The controller said no (its rules: whitelists, passwords, triggers), for this reason.
    #[error("{0}")]
    Controller(String),
    /// The controller said no without a reason.
    #[error("refused by the controller")]
    NoReason,
    /// The controller is configured but could not be asked, so its rules cannot be checked.
    /// The [`ControlError`]'s text: the error itself (an `io::Error`) cannot be cloned.
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    /// More requests were waiting than the queue holds.
    #[error("too many controller requests waiting")]
    QueueFull,
}

/// Applies the one policy to a request's result (see the module docs).
pub fn decide(req: &Request, r: Result<Response, ControlError>) -> Verdict {
    match r {
        Ok(resp) if resp.ok => Verdict::Allow(resp),
        Ok(resp) if resp.error.is_empty() => Verdict::Refuse(Refusal::NoReason),
        Ok(resp) => Verdict::Refuse(Refusal::Controller(resp.error)),
        Err(ControlError::NotSet(_)) => Verdict::Allow(Response {
            ok: true,
            stream: requested_stream(req),
            error: String::new(),
            config: Default::default(),
        }),
        Err(e) => Verdict::Refuse(Refusal::Unreachable(e.to_string())),
    }
}

fn requested_stream(req: &Request) -> String {
    match req {
        Request::Push { stream, .. }
        | Request::Play { stream, .. }
        | Request::StreamConfig { stream, .. } => stream.clone(),
        Request::Api { .. } => String::new(),
    }
}

/// How a request reaches the controller (the real one: [`mist_core::control::request`]).
pub type Requester =
    Arc<dyn Fn(&Request, Duration) -> Result<Response, ControlError> + Send + Sync>;

type Job<K> = (K, Request, Duration);

/// A bounded pool of controller requests. `K` says whom an answer is for (e.g. a `ConnId`).
pub struct Asker<K: Send + 'static> {
    jobs: SyncSender<Job<K>>,
    results: Receiver<(K, Verdict)>,
    standalone: bool,
    /// Time limit of [`Asker::ask`].
    timeout: Duration,
    /// Answers decided without asking (standalone, queue full), handed out with the others.
    ready: VecDeque<(K, Verdict)>,
    pool: Pool<K>,
}

/// The worker threads: started one by one while all started ones are busy, up to `max`.
struct Pool<K> {
    rx: Arc<Mutex<Receiver<Job<K>>>>,
    tx: Sender<(K, Verdict)>,
    requester: Requester,
    waker: Arc<Waker>,
    max: usize,
    started: usize,
    /// Requests sent and not yet answered.
    busy: Arc<AtomicUsize>,
}

impl<K: Send + 'static> Pool<K> {
    /// Counts a request about to be queued (before a worker can take it, so the count never
    /// goes below zero). Returns the requests in flight, this one included.
    fn reserve(&self) -> usize {
        self.busy.fetch_add(1, Ordering::SeqCst).saturating_add(1)
    }

    /// A reserved request could not be queued.
    fn unreserve(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// A request was queued with `busy` in flight: start a worker if every started one is busy.
    fn grow(&mut self, busy: usize) {
        if busy <= self.started || self.started >= self.max {
            return;
        }
        let (rx, tx, requester, waker, busy) = (
            self.rx.clone(),
            self.tx.clone(),
            self.requester.clone(),
            self.waker.clone(),
            self.busy.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("ask-{}", self.started))
            .spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok((k, req, timeout)) = job else { return };
                let r = requester(&req, timeout);
                if let Err(e) = &r {
                    mist_core::warn!("control socket: {e}");
                }
                let v = decide(&req, r);
                busy.fetch_sub(1, Ordering::SeqCst);
                if tx.send((k, v)).is_err() {
                    return;
                }
                let _ = waker.wake();
            });
        match spawned {
            Ok(_) => self.started += 1,
            Err(e) => mist_core::warn!("cannot start a controller request thread: {e}"),
        }
    }
}

impl<K: Send + 'static> Asker<K> {
    /// Asks the controller named in the environment, each request bounded by `timeout`;
    /// standalone when `MIST_CONTROL` is unset. Answers wake the loop through `waker`.
    pub fn from_env(waker: Arc<Waker>, timeout: Duration) -> Asker<K> {
        let standalone = mist_core::control::socket_path().is_none();
        Asker::with(
            waker,
            Arc::new(mist_core::control::request),
            standalone,
            MAX_IN_FLIGHT,
            256,
        )
        .timeout(timeout)
    }

    /// An asker with its own requester, at most `workers` (and at most [`MAX_IN_FLIGHT`])
    /// threads, started as requests need them, and room for `queue` waiting requests. Results
    /// wake the loop through `waker`.
    pub fn with(
        waker: Arc<Waker>,
        requester: Requester,
        standalone: bool,
        workers: usize,
        queue: usize,
    ) -> Asker<K> {
        let (jobs, rx) = mpsc::sync_channel::<Job<K>>(queue);
        let (tx, results) = mpsc::channel();
        Asker {
            jobs,
            results,
            standalone,
            timeout: Duration::from_secs(10),
            ready: VecDeque::new(),
            pool: Pool {
                rx: Arc::new(Mutex::new(rx)),
                tx,
                requester,
                waker,
                max: workers.clamp(1, MAX_IN_FLIGHT),
                started: 0,
                busy: Arc::new(AtomicUsize::new(0)),
            },
        }
    }

    /// Sets the time limit of [`Asker::ask`] (10 s unless set).
    pub fn timeout(mut self, timeout: Duration) -> Asker<K> {
        self.timeout = timeout;
        self
    }

    /// Asks; the verdict comes out of [`Asker::take`] later (at once when standalone).
    pub fn ask(&mut self, key: K, req: Request) {
        let t = self.timeout;
        self.ask_within(key, req, t)
    }

    /// [`Asker::ask`] with its own time limit.
    pub fn ask_within(&mut self, key: K, req: Request, timeout: Duration) {
        if self.standalone {
            let v = decide(
                &req,
                Err(ControlError::NotSet(mist_core::control::ENV_CONTROL)),
            );
            self.ready.push_back((key, v));
            return;
        }
        let busy = self.pool.reserve();
        match self.jobs.try_send((key, req, timeout)) {
            Ok(()) => self.pool.grow(busy),
            Err(TrySendError::Full((k, ..))) | Err(TrySendError::Disconnected((k, ..))) => {
                self.pool.unreserve();
                self.ready
                    .push_back((k, Verdict::Refuse(Refusal::QueueFull)));
            }
        }
    }

    /// The next verdict that is in, if any.
    pub fn take(&mut self) -> Option<(K, Verdict)> {
        self.ready
            .pop_front()
            .or_else(|| self.results.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{App, Runtime};
    use crate::session::{Io, Session};

    struct Nothing;
    struct NoSession;
    impl Session<Nothing> for NoSession {
        fn on_read(&mut self, _: &mut Nothing, _: &mut Io<'_>) {}
    }
    impl App for Nothing {
        type Session = NoSession;
        fn accept(
            &mut self,
            _: crate::ListenerId,
            _: crate::Peer,
            _: std::time::Instant,
        ) -> Option<NoSession> {
            None
        }
    }

    fn play(s: &str) -> Request {
        Request::Play {
            stream: s.into(),
            host: "127.0.0.1".into(),
            connector: "test".into(),
            url: String::new(),
        }
    }

    fn drain(a: &mut Asker<usize>, n: usize) -> Vec<(usize, Verdict)> {
        let mut got = Vec::new();
        while got.len() < n {
            match a.take() {
                Some(x) => got.push(x),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        got.sort_by_key(|x| x.0);
        got
    }

    #[test]
    fn standalone_allows_and_unreachable_refuses() {
        let rt = Runtime::<Nothing>::new().unwrap();
        let unreachable: Requester = Arc::new(|_, _| {
            Err(ControlError::Io {
                path: "/nonexistent".into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            })
        });
        let mut a = Asker::with(rt.remote().waker(), unreachable.clone(), true, 2, 4);
        a.ask(1, play("s1"));
        match drain(&mut a, 1).pop().unwrap().1 {
            Verdict::Allow(r) => assert_eq!(r.stream, "s1"),
            v => panic!("standalone must allow, got {v:?}"),
        }
        let mut a = Asker::with(rt.remote().waker(), unreachable, false, 2, 4);
        a.ask(1, play("s1"));
        match drain(&mut a, 1).pop().unwrap().1 {
            Verdict::Refuse(why) => {
                assert!(matches!(why, Refusal::Unreachable(_)), "{why:?}");
                assert!(why.to_string().contains("unreachable"), "{why}");
            }
            v => panic!("unreachable must refuse, got {v:?}"),
        }
    }

    #[test]
    fn one_after_another_reuses_a_worker() {
        // Each answer is in before the next ask: an idle worker may take a job before the
        // asker counted it (this once made the in-flight count wrap below zero).
        let rt = Runtime::<Nothing>::new().unwrap();
        let fast: Requester = Arc::new(|r, _| {
            Ok(Response {
                ok: true,
                stream: requested_stream(r),
                error: String::new(),
                config: Default::default(),
            })
        });
        let mut a = Asker::with(rt.remote().waker(), fast, false, 8, 8);
        for i in 0..200 {
            a.ask(i, play("s"));
            let (k, v) = drain(&mut a, 1).pop().unwrap();
            assert_eq!(k, i);
            assert!(matches!(v, Verdict::Allow(_)));
        }
        assert!(
            a.pool.started <= 2,
            "{} workers for one request at a time",
            a.pool.started
        );
    }

    #[test]
    fn in_flight_is_bounded() {
        let rt = Runtime::<Nothing>::new().unwrap();
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n2, p2) = (now.clone(), peak.clone());
        let slow: Requester = Arc::new(move |r, _| {
            let c = n2.fetch_add(1, Ordering::SeqCst) + 1;
            p2.fetch_max(c, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            n2.fetch_sub(1, Ordering::SeqCst);
            Ok(Response {
                ok: true,
                stream: requested_stream(r),
                error: String::new(),
                config: Default::default(),
            })
        });
        let mut a = Asker::with(rt.remote().waker(), slow, false, 100, 100);
        for i in 0..40 {
            a.ask(i, play(&format!("s{i}")));
        }
        let got = drain(&mut a, 40);
        assert!(got.iter().all(|(_, v)| matches!(v, Verdict::Allow(_))));
        let p = peak.load(Ordering::SeqCst);
        assert!(p <= MAX_IN_FLIGHT, "peak {p} in flight");
    }
}
