//! The controller's event loop on the connector runtime: API (HTTP on TCP), control socket (Unix),
//! signals, children. The API listener and the control socket have separate limits, so API clients
//! can never use up what the children's requests need.

use super::children::{ChildLine, Event, Role, Spawner, Supervisor};
use super::{api, caps, paths, push_log, shm_call, Controller, LogRing, Opts};
use bytes::Bytes;
use mio::net::UnixListener;
use mio::Token;
use mist_connector::{App, ConnId, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use mist_core::config::{Config, DEFAULT_API_INTERFACE, DEFAULT_API_PORT};
use mist_core::control::{Request, Response};
use mist_core::log;
use mist_core::{info, warn};
use mist_net::http::{self, Limits as HttpLimits};
use serde_json::Value;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_CONNS: usize = 1024;
const CONTROL_MAX: usize = 64 * 1024;
/// API connections idle this long are closed.
const API_IDLE: Duration = Duration::from_secs(60);
/// Input an API connection may buffer before it logged in (a remote peer).
const API_PRELOGIN_MAX: usize = 64 * 1024;
/// Longest an API request (head and body) may take to arrive.
const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The public API listener's limits: before login a remote connection may buffer little
/// ([`API_PRELOGIN_MAX`]); a logged-in or local one up to a whole config upload.
fn api_limits() -> Limits {
    Limits {
        max_conns: MAX_CONNS,
        max_per_ip: 64,
        max_input: API_LIMITS.max_head + API_LIMITS.max_body + 1,
        header_timeout: Some(API_REQUEST_TIMEOUT),
        idle_timeout: Some(API_IDLE),
        ..Limits::default()
    }
}

/// The control socket's limits: its own connection cap, one small request line each, and no
/// idle timeout (an answer may wait for an input to come up).
fn control_limits() -> Limits {
    Limits {
        max_conns: MAX_CONNS,
        max_per_ip: usize::MAX,
        max_input: CONTROL_MAX,
        header_timeout: Some(API_REQUEST_TIMEOUT),
        idle_timeout: None,
        ..Limits::default()
    }
}

pub(super) struct ApiConn {
    peer: SocketAddr,
    close: bool,
    /// `100 Continue` already sent for the request being read.
    continued: bool,
    session: api::Session,
}

pub(super) struct CtlConn {
    token: Token,
}

pub(super) enum Conn {
    Api(ApiConn),
    Ctl(CtlConn),
}

struct Flags {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

fn register_signals() -> std::io::Result<(Flags, mio::net::UnixStream)> {
    use signal_hook::consts::*;
    let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
    rx.set_nonblocking(true)?;
    tx.set_nonblocking(true)?;
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for s in [SIGTERM, SIGINT] {
        signal_hook::flag::register(s, term.clone())?;
        signal_hook::low_level::pipe::register(s, tx.try_clone()?)?;
    }
    for s in [SIGHUP, SIGUSR1] {
        signal_hook::flag::register(s, hup.clone())?;
        signal_hook::low_level::pipe::register(s, tx.try_clone()?)?;
    }
    signal_hook::low_level::pipe::register(SIGCHLD, tx)?;
    // SIGPIPE: a child or peer that went away must not kill us.
    // SAFETY: setting a signal disposition to ignore.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok((Flags { term, hup }, mio::net::UnixStream::from_std(rx)))
}

fn bind_control(path: &PathBuf) -> std::io::Result<UnixListener> {
    paths::prepare_dir(path)?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                ErrorKind::AddrInUse,
                "another controller is listening there",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    paths::set_socket_mode(path)?;
    Ok(l)
}

/// The controller as a runtime application: sessions for its two listeners, and the work of
/// each loop turn (children, signals, triggers, waiting answers, config sync).
struct Server {
    ctl: Controller,
    api: ListenerId,
    control: ListenerId,
    udp: Option<ListenerId>,
    flags: Flags,
    line_rx: mpsc::Receiver<ChildLine>,
    trig_rx: mpsc::Receiver<(Token, super::TriggerResult)>,
    last_file_check: Instant,
    /// Tells systemd when the API and the protocol listeners are up.
    ready: super::notify::Readiness,
}

pub fn run(opts: Opts, cfg: Config, config_path: PathBuf, logs: LogRing) -> i32 {
    let mut rt = match Runtime::<Server>::new() {
        Ok(r) => r,
        Err(e) => {
            mist_core::fail!("cannot create poll: {e}");
            return super::EXIT_OTHER;
        }
    };
    // API listener.
    let port = opts
        .port
        .or(cfg.config.controller.port)
        .unwrap_or(DEFAULT_API_PORT);
    let iface = opts
        .interface
        .clone()
        .or_else(|| {
            cfg.config
                .controller
                .interface
                .clone()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_API_INTERFACE.to_string());
    let addr: SocketAddr = match format!("{iface}:{port}")
        .parse()
        .or_else(|_| format!("[{iface}]:{port}").parse())
    {
        Ok(a) => a,
        Err(_) => {
            mist_core::fail!("invalid API interface {iface:?}");
            return super::EXIT_USAGE;
        }
    };
    // The control socket and the UDP API are bound before the API listener: a client that
    // sees the API port open can use them at once.
    let control_path = paths::control_socket_path();
    let control = match bind_control(&control_path) {
        Ok(l) => l,
        Err(e) => {
            mist_core::fail!("cannot bind control socket {}: {e}", control_path.display());
            return super::EXIT_BIND;
        }
    };
    if let Err(e) = super::privs::drop_after_bind(&opts, &cfg, &control_path) {
        mist_core::fail!("{e}");
        return super::EXIT_OTHER;
    }
    // MistServer's unauthenticated local UDP API, only when asked for (env MIST_UDP_API=ADDR:PORT,
    // loopback addresses only).
    let mut udp = None;
    if let Some(a) = std::env::var("MIST_UDP_API").ok().filter(|s| !s.is_empty()) {
        match a.parse::<SocketAddr>() {
            Ok(sa) if sa.ip().is_loopback() => match mio::net::UdpSocket::bind(sa) {
                Ok(u) => {
                    if let Ok(id) = rt.listen_udp(u, "UDP API") {
                        info!("UDP API (unauthenticated, local) on {sa}");
                        udp = Some(id);
                    }
                }
                Err(e) => {
                    mist_core::fail!("cannot bind UDP API on {sa}: {e}");
                    let _ = std::fs::remove_file(&control_path);
                    return super::EXIT_BIND;
                }
            },
            _ => {
                mist_core::fail!("MIST_UDP_API must be a loopback ADDR:PORT, not {a:?}");
                let _ = std::fs::remove_file(&control_path);
                return super::EXIT_USAGE;
            }
        }
    }
    let api_listener = match mist_connector::bind_tcp(addr) {
        Ok(l) => l,
        Err(e) => {
            mist_core::fail!("cannot bind API on {addr}: {e}");
            let _ = std::fs::remove_file(&control_path);
            return super::EXIT_BIND;
        }
    };
    let api_addr = api_listener.local_addr().unwrap_or(addr);
    let flags = match register_signals().and_then(|(f, pipe)| rt.watch(pipe, "signals").map(|_| f))
    {
        Ok(f) => f,
        Err(e) => {
            mist_core::fail!("cannot set up signals: {e}");
            return super::EXIT_OTHER;
        }
    };
    let waker = rt.remote().waker();
    let (api_id, control_id) =
        match rt
            .listen_tcp(api_listener, "API", api_limits())
            .and_then(|a| {
                rt.listen_unix(control, "control socket", control_limits())
                    .map(|c| (a, c))
            }) {
            Ok(x) => x,
            Err(e) => {
                mist_core::fail!("cannot register listeners: {e}");
                return super::EXIT_OTHER;
            }
        };

    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."));
    let (line_tx, line_rx) = mpsc::channel::<ChildLine>();
    let (trig_tx, trig_rx) = mpsc::channel::<(Token, super::TriggerResult)>();
    let mut env = vec![
        (
            mist_core::control::ENV_CONTROL.to_string(),
            control_path.display().to_string(),
        ),
        (
            "MIST_SHM_DIR".to_string(),
            mist_shm::shm_dir().display().to_string(),
        ),
    ];
    env.push(("MIST_CONTROLLER_PID".into(), std::process::id().to_string()));
    env.push((
        mist_core::triggers::ENV_TRIGGERS.into(),
        super::ingest::triggers_file().display().to_string(),
    ));
    let spawner = Spawner {
        env,
        lines: line_tx,
        waker,
    };
    let (read_mode, write_mode) = match opts.configrw.as_str() {
        "r" => (true, false),
        "w" => (false, true),
        "none" => (false, false),
        _ => (true, true),
    };
    let mut ctl = Controller {
        config_mtime: super::mtime(&config_path),
        opts,
        cfg,
        config_path,
        read_mode,
        write_mode,
        dirty_since: None,
        caps: caps::Caps::scan(&bin_dir, Duration::from_secs(3)),
        bin_dir,
        sup: Supervisor::default(),
        spawner,
        logs,
        auth: super::auth::Authenticator::new(),
        shutdown: false,
        missing: Default::default(),
        pending: Vec::new(),
        started: Instant::now(),
        trig_tx,
        stop_fired: false,
        input_sources: HashMap::new(),
        pushes: Default::default(),
        sessions: Default::default(),
        shm: Default::default(),
    };
    if ctl.apply_account_opt() {
        info!("account from --account set");
        ctl.mark_dirty();
    }
    for (b, why) in &ctl.caps.failed {
        mist_core::debug!("{b} -j: {why}");
    }
    info!(
        "found {} binaries ({} connectors, {} inputs with capabilities) in {}",
        ctl.caps.binaries.len(),
        ctl.caps.connectors.len(),
        ctl.caps.inputs.len(),
        ctl.bin_dir.display()
    );
    if let Some(n) = shm_call(mist_shm::cleanup_stale) {
        if n > 0 {
            info!("removed {n} stale shared-memory segments");
        }
    }
    super::interactive_setup(&mut ctl);
    info!(
        "API listening on {api_addr}; control socket {}",
        control_path.display()
    );
    ctl.sync_triggers();
    ctl.apply_protocols();
    if !ctl
        .fire_blocking("SYSTEM_START", None, env!("CARGO_PKG_VERSION"))
        .ok
    {
        warn!("the SYSTEM_START trigger answered false: shutting down");
        ctl.shutdown = true;
    }

    let mut server = Server {
        ctl,
        api: api_id,
        control: control_id,
        udp,
        flags,
        line_rx,
        trig_rx,
        last_file_check: Instant::now(),
        ready: super::notify::Readiness::new(),
    };
    if let Err(e) = rt.run(&mut server) {
        mist_core::error!("poll: {e}");
    }
    let mut ctl = server.ctl;
    if !ctl.stop_fired {
        // A signal cannot be refused: the answer is ignored.
        ctl.fire_blocking("SYSTEM_STOP", None, "signal");
    }
    for p in &ctl.cfg.config.protocols {
        ctl.fire_blocking(
            "OUTPUT_STOP",
            None,
            &serde_json::to_string(p).unwrap_or_default(),
        );
    }
    super::push::shutdown(&mut ctl, super::STOP_GRACE);
    info!("stopping {} children", ctl.sup.children.len());
    ctl.sup.stop_all(super::STOP_GRACE);
    // The CONN_CLOSE the stopped outputs still owed, then the queued non-blocking handlers
    // (SYSTEM_STOP, OUTPUT_STOP, …) run before the controller exits (bounded).
    shm_call(mist_bins::conn_close::reap);
    mist_core::triggers::Engine::global().flush(Duration::from_secs(5));
    if let Some(list) = ctl.shm_streams() {
        for s in list {
            let n = s.name.clone();
            match shm_call(move || mist_shm::remove_stream(&n)) {
                Some(Ok(())) => mist_core::debug!("removed shared memory of {}", s.name),
                Some(Err(e)) => warn!("cannot remove shared memory of {}: {e}", s.name),
                None => {}
            }
        }
    }
    if ctl.write_mode && ctl.dirty_since.is_some() {
        if let Err(e) = ctl.save() {
            mist_core::error!("final save failed: {e}");
        }
    }
    let _ = std::fs::remove_file(&control_path);
    let _ = std::fs::remove_file(super::ingest::triggers_file());
    info!("shut down");
    super::EXIT_OK
}

impl App for Server {
    type Session = Conn;

    fn accept(&mut self, listener: ListenerId, peer: Peer, _now: Instant) -> Option<Conn> {
        if listener == self.api {
            let Peer::Tcp(peer) = peer else { return None };
            Some(Conn::Api(ApiConn {
                peer,
                close: false,
                continued: false,
                session: api::Session::default(),
            }))
        } else if listener == self.control {
            // The token is set on the first read (it is the connection id).
            Some(Conn::Ctl(CtlConn { token: Token(0) }))
        } else {
            None
        }
    }

    fn datagram(
        &mut self,
        listener: ListenerId,
        data: &[u8],
        from: SocketAddr,
        _now: Instant,
    ) -> Option<Vec<u8>> {
        if Some(listener) != self.udp || !from.ip().is_loopback() {
            return None;
        }
        let cmd = serde_json::from_slice::<Value>(data).ok()?;
        let mut sess = api::Session::default();
        let answer = api::handle(&mut self.ctl, &mut sess, "local", true, &cmd);
        Some(answer.to_string().into_bytes())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.ctl.sup.next_deadline()
    }

    fn turn(&mut self, conns: &mut Ctl<'_, Self>, _now: Instant) -> Flow {
        self.ready.tick(&self.ctl);
        self.ctl.sync_triggers();
        let ctl = &mut self.ctl;
        // Children's stderr.
        while let Ok(cl) = self.line_rx.try_recv() {
            let p = log::parse_line(&cl.line);
            let who = p.binary.clone().unwrap_or_else(|| cl.binary.clone());
            // "Binary: message" without a level: do not repeat the name.
            let mut p = p;
            if let Some(rest) = p.message.strip_prefix(&format!("{who}: ")) {
                p.message = rest.to_string();
            }
            log::write_stderr(p.level, &who, &p.message);
            push_log(
                &ctl.logs,
                p.level,
                format!("{who} ({}): {}", cl.pid, p.message),
            );
        }
        // STREAM_PUSH triggers that finished.
        while let Ok((token, res)) = self.trig_rx.try_recv() {
            if let Some(resp) = ctl.trigger_done(token, res) {
                queue_answer(conns, token, &resp);
            }
        }
        // Signals.
        if self.flags.term.swap(false, Ordering::Relaxed) {
            info!("termination signal received");
            ctl.shutdown = true;
        }
        if self.flags.hup.swap(false, Ordering::Relaxed) {
            ctl.reload();
        }
        // Children.
        for ev in ctl.sup.reap(&ctl.spawner, super::STOP_GRACE) {
            let Event::Exited {
                role,
                name,
                pid,
                how,
                restart_in,
                requested,
            } = ev;
            match (&role, restart_in) {
                (_, Some(d)) => warn!(
                    "{name} (pid {pid}) {how}; restarting in {} ms",
                    d.as_millis()
                ),
                (Role::Input(s), None) => {
                    info!("{name} (pid {pid}) for stream {s} ended: {how}");
                    ctl.input_aborted(s, &name, pid, &how, requested);
                    ctl.input_exited(s, &how, requested);
                }
                (_, None) => info!("{name} (pid {pid}) stopped: {how}"),
            }
        }
        // The periodic scans share one list of the streams (and keep their mappings).
        ctl.shm.begin_turn();
        super::push::tick(ctl);
        ctl.sessions.tick(super::now_unix(), &ctl.shm);
        ctl.shm.end_turn();
        answer_pending(ctl, conns);
        // Config file sync.
        if ctl.write_mode
            && ctl
                .dirty_since
                .is_some_and(|t| t.elapsed() >= super::AUTOSAVE_DELAY)
        {
            if let Err(e) = ctl.save() {
                mist_core::error!("autosave failed: {e}");
                ctl.dirty_since = Some(Instant::now());
            }
        }
        if ctl.read_mode && self.last_file_check.elapsed() >= Duration::from_secs(2) {
            self.last_file_check = Instant::now();
            let m = super::mtime(&ctl.config_path);
            if m.is_some() && m != ctl.config_mtime {
                info!("config file changed on disk");
                ctl.reload();
            }
        }
        // On shutdown the runtime writes pending API answers (e.g. to "shutdown") and returns.
        if ctl.shutdown {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl Session<Server> for Conn {
    fn on_read(&mut self, app: &mut Server, io: &mut Io<'_>) {
        match self {
            Conn::Api(c) => service_api(&mut app.ctl, c, io),
            Conn::Ctl(c) => service_ctl(&mut app.ctl, c, io),
        }
    }
}

const API_LIMITS: HttpLimits = HttpLimits {
    max_head: 16 * 1024,
    max_headers: 64,
    max_body: 4 << 20,
};

/// Answers the complete requests an API connection sent.
fn service_api(ctl: &mut Controller, c: &mut ApiConn, io: &mut Io<'_>) {
    while !c.close {
        match http::parse_request(io.input(), &API_LIMITS) {
            Ok(Some((req, used))) => {
                io.consume(used);
                c.continued = false;
                let mut resp = answer_http(ctl, c, &req);
                if !req.keep_alive() {
                    resp.keep_alive = false;
                    c.close = true;
                }
                io.send(Bytes::from(resp.to_bytes()));
            }
            Ok(None) => {
                if !c.continued && http::wants_continue(io.input()) {
                    io.write(http::CONTINUE);
                    c.continued = true;
                }
                // Before login a remote peer may only send small requests (also through a
                // proxy on this machine: a forwarded request is not local).
                let local =
                    c.peer.ip().is_loopback() && !super::gate::carries_forwarding(io.input());
                let trusted = local || c.session.has_login();
                if !trusted && io.input().len() > API_PRELOGIN_MAX {
                    let resp = http::Response::text(413, "request too large before login\n")
                        .keep_alive(false);
                    io.send(Bytes::from(resp.to_bytes()));
                    c.close = true;
                    io.clear_input();
                }
                break;
            }
            Err(e) => {
                let resp = http::Response::text(e.status(), &format!("{e}\n")).keep_alive(false);
                io.send(Bytes::from(resp.to_bytes()));
                c.close = true;
                io.clear_input();
            }
        }
    }
    if c.close {
        io.clear_input();
        io.close();
    }
}

fn answer_http(ctl: &mut Controller, c: &mut ApiConn, req: &http::Request) -> http::Response {
    let cors = |r: http::Response| {
        r.header("Access-Control-Allow-Origin", "*")
            .header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            .header("Access-Control-Allow-Headers", "Content-Type")
    };
    if req.method == "OPTIONS" {
        return cors(http::Response::new(204));
    }
    if let Some(p) = ctl.prometheus_path() {
        if req.path.trim_matches('/') == p && req.method == "GET" {
            return http::Response::new(200)
                .header("Content-Type", "text/plain; version=0.0.4")
                .header("Cache-Control", "no-store")
                .body(ctl.metrics());
        }
        if req.path.trim_matches('/') == format!("{p}.json") && req.method == "GET" {
            return http::Response::new(200)
                .header("Content-Type", "application/json")
                .header("Cache-Control", "no-store")
                .body(ctl.sessions.metrics_json().to_string());
        }
    }
    if req.path != "/api" && req.path != "/api2" {
        if req.path == "/" {
            return http::Response::text(
                200,
                &format!(
                    "MistController {}: JSON API at /api\n",
                    super::version_string()
                ),
            );
        }
        return http::Response::text(404, "not found\n");
    }
    if req.method != "GET" && req.method != "POST" {
        return http::Response::text(405, "method not allowed\n");
    }
    // Authorisation, CORS and JSONP rules: the API gate (docs/security.md).
    super::gate::answer(ctl, &mut c.session, c.peer, req)
}

/// Reads a control connection's one request line and answers it, now or (waiting for an input
/// or a trigger) later from [`answer_pending`] or the trigger results.
fn service_ctl(ctl: &mut Controller, c: &mut CtlConn, io: &mut Io<'_>) {
    let Some(nl) = io.input().iter().position(|&b| b == b'\n') else {
        return;
    };
    c.token = Token(io.id().0);
    let line = io.input()[..nl].to_vec();
    io.clear_input();
    // One request per connection: read no more; the answer closes it.
    io.pause_reading(true);
    let resp = match serde_json::from_slice::<Request>(&line) {
        Ok(req) => {
            mist_core::debug!("control request: {}", super::gate::redacted(&req));
            ctl.control(c.token, req)
        }
        Err(e) => Some(Response {
            ok: false,
            stream: String::new(),
            error: format!("bad request: {e}"),
            config: Value::Null,
        }),
    };
    if let Some(resp) = resp {
        io.send(answer_line(&resp));
        io.close();
    }
}

fn answer_line(resp: &Response) -> Bytes {
    let mut b = serde_json::to_vec(resp).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Sends a late answer on control connection `token` and closes it once written.
fn queue_answer(conns: &mut Ctl<'_, Server>, token: Token, resp: &Response) {
    let id = ConnId(token.0);
    if conns.send(id, answer_line(resp)) {
        conns.close(id);
    }
}

/// Answers control requests that wait for an input to come up.
fn answer_pending(ctl: &mut Controller, conns: &mut Ctl<'_, Server>) {
    if ctl.pending.is_empty() {
        return;
    }
    let shm_ok = !super::SHM_BROKEN.load(Ordering::Relaxed);
    let now = Instant::now();
    let mut done = Vec::new();
    for (i, p) in ctl.pending.iter().enumerate() {
        if p.trigger {
            continue;
        }
        let running = ctl.input_running(&p.stream);
        let answer = if ctl.stream_ready(&p.stream) {
            Some(Ok(()))
        } else if !running {
            Some(Err("input exited before the stream was ready".to_string()))
        } else if !shm_ok && now.duration_since(p.since) >= Duration::from_millis(300) {
            // Without shared-memory status, an input that stays up is taken as ready.
            Some(Ok(()))
        } else if now >= p.deadline {
            warn!(
                "stream {}: input runs but no buffer after {:?}; answering anyway",
                p.stream,
                super::input_wait()
            );
            Some(Ok(()))
        } else {
            None
        };
        if let Some(a) = answer {
            done.push((i, a));
        }
    }
    for (i, a) in done.into_iter().rev() {
        let p = ctl.pending.remove(i);
        let resp = match a {
            Ok(()) => Response {
                ok: true,
                stream: p.stream.clone(),
                error: String::new(),
                config: p.config,
            },
            Err(e) => {
                warn!("control: stream {}: {e}", p.stream);
                Response {
                    ok: false,
                    stream: p.stream.clone(),
                    error: e,
                    config: Value::Null,
                }
            }
        };
        queue_answer(conns, p.token, &resp);
    }
}
