//! The controller's event loop: API (HTTP on TCP), control socket (Unix), signals, children.

use super::children::{ChildLine, Event, Role, Spawner, Supervisor};
use super::{api, caps, paths, push_log, shm_call, Controller, LogRing, Opts};
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use mist_core::config::{Config, DEFAULT_API_INTERFACE, DEFAULT_API_PORT};
use mist_core::control::{Request, Response};
use mist_core::log;
use mist_core::{info, warn};
use mist_net::http::{self, Limits};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const API: Token = Token(0);
const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
const WAKER: Token = Token(3);
const UDP_API: Token = Token(4);
const FIRST_CONN: usize = 16;
const MAX_CONNS: usize = 1024;
const CONTROL_MAX: usize = 64 * 1024;
/// API connections idle this long are closed.
const API_IDLE: Duration = Duration::from_secs(60);

struct ApiConn {
    sock: TcpStream,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    close: bool,
    /// `100 Continue` already sent for the request being read.
    continued: bool,
    last_active: Instant,
    session: api::Session,
}

struct CtlConn {
    sock: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// Answered (or waiting for an answer): read no more.
    done: bool,
}

enum Conn {
    Api(ApiConn),
    Ctl(CtlConn),
}

struct Flags {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

fn register_signals(poll: &Poll) -> std::io::Result<(Flags, UnixStream)> {
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
    let mut rx = UnixStream::from_std(rx);
    poll.registry()
        .register(&mut rx, SIGNALS, Interest::READABLE)?;
    Ok((Flags { term, hup }, rx))
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

pub fn run(opts: Opts, cfg: Config, config_path: PathBuf, logs: LogRing) -> i32 {
    let mut poll = match Poll::new() {
        Ok(p) => p,
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
    let mut api_listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            mist_core::fail!("cannot bind API on {addr}: {e}");
            return super::EXIT_BIND;
        }
    };
    let api_addr = api_listener.local_addr().unwrap_or(addr);
    // Control socket.
    let control_path = paths::control_socket_path();
    let mut control = match bind_control(&control_path) {
        Ok(l) => l,
        Err(e) => {
            mist_core::fail!("cannot bind control socket {}: {e}", control_path.display());
            return super::EXIT_BIND;
        }
    };
    // MistServer's unauthenticated local UDP API, only when asked for (env MIST_UDP_API=ADDR:PORT,
    // loopback addresses only).
    let mut udp = None;
    if let Some(a) = std::env::var("MIST_UDP_API").ok().filter(|s| !s.is_empty()) {
        match a.parse::<SocketAddr>() {
            Ok(sa) if sa.ip().is_loopback() => match mio::net::UdpSocket::bind(sa) {
                Ok(mut u) => {
                    if poll
                        .registry()
                        .register(&mut u, UDP_API, Interest::READABLE)
                        .is_ok()
                    {
                        info!("UDP API (unauthenticated, local) on {sa}");
                        udp = Some(u);
                    }
                }
                Err(e) => {
                    mist_core::fail!("cannot bind UDP API on {sa}: {e}");
                    return super::EXIT_BIND;
                }
            },
            _ => {
                mist_core::fail!("MIST_UDP_API must be a loopback ADDR:PORT, not {a:?}");
                return super::EXIT_USAGE;
            }
        }
    }
    let (flags, mut sigpipe) = match register_signals(&poll) {
        Ok(x) => x,
        Err(e) => {
            mist_core::fail!("cannot set up signals: {e}");
            return super::EXIT_OTHER;
        }
    };
    let waker = match Waker::new(poll.registry(), WAKER) {
        Ok(w) => Arc::new(w),
        Err(e) => {
            mist_core::fail!("cannot create waker: {e}");
            return super::EXIT_OTHER;
        }
    };
    if let Err(e) = poll
        .registry()
        .register(&mut api_listener, API, Interest::READABLE)
        .and_then(|_| {
            poll.registry()
                .register(&mut control, CONTROL, Interest::READABLE)
        })
    {
        mist_core::fail!("cannot register listeners: {e}");
        return super::EXIT_OTHER;
    }

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
        waker: waker.clone(),
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

    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = FIRST_CONN;
    let mut events = Events::with_capacity(256);
    let mut last_file_check = Instant::now();
    let mut last_sweep = Instant::now();
    let mut ready = super::notify::Readiness::new();
    loop {
        ready.tick(&ctl);
        ctl.sync_triggers();
        let mut timeout = Duration::from_millis(100);
        if let Some(t) = ctl.sup.next_deadline() {
            timeout = timeout.min(t.saturating_duration_since(Instant::now()));
        }
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                mist_core::error!("poll: {e}");
            }
        }
        for ev in events.iter() {
            match ev.token() {
                API => loop {
                    match api_listener.accept() {
                        Ok((mut sock, peer)) => {
                            if conns.len() >= MAX_CONNS {
                                continue;
                            }
                            let t = Token(next_token);
                            next_token = next_token.wrapping_add(1).max(FIRST_CONN);
                            if poll
                                .registry()
                                .register(&mut sock, t, Interest::READABLE | Interest::WRITABLE)
                                .is_ok()
                            {
                                conns.insert(
                                    t,
                                    Conn::Api(ApiConn {
                                        sock,
                                        peer,
                                        inbuf: Vec::new(),
                                        outbuf: Vec::new(),
                                        close: false,
                                        continued: false,
                                        last_active: Instant::now(),
                                        session: api::Session::default(),
                                    }),
                                );
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            warn!("API accept: {e}");
                            break;
                        }
                    }
                },
                CONTROL => loop {
                    match control.accept() {
                        Ok((mut sock, _)) => {
                            if conns.len() >= MAX_CONNS {
                                continue;
                            }
                            let t = Token(next_token);
                            next_token = next_token.wrapping_add(1).max(FIRST_CONN);
                            if poll
                                .registry()
                                .register(&mut sock, t, Interest::READABLE | Interest::WRITABLE)
                                .is_ok()
                            {
                                conns.insert(
                                    t,
                                    Conn::Ctl(CtlConn {
                                        sock,
                                        inbuf: Vec::new(),
                                        outbuf: Vec::new(),
                                        done: false,
                                    }),
                                );
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            warn!("control accept: {e}");
                            break;
                        }
                    }
                },
                SIGNALS => {
                    let mut buf = [0u8; 64];
                    while matches!(sigpipe.read(&mut buf), Ok(n) if n > 0) {}
                }
                WAKER => {}
                UDP_API => {
                    let Some(u) = udp.as_ref() else { continue };
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, from)) = u.recv_from(&mut buf) {
                        if !from.ip().is_loopback() {
                            continue;
                        }
                        let Ok(cmd) = serde_json::from_slice::<Value>(&buf[..n]) else {
                            continue;
                        };
                        let mut sess = api::Session::default();
                        let answer = api::handle(&mut ctl, &mut sess, "local", true, &cmd);
                        let _ = u.send_to(answer.to_string().as_bytes(), from);
                    }
                }
                t => {
                    let keep = match conns.get_mut(&t) {
                        Some(Conn::Api(c)) => service_api(&mut ctl, c),
                        Some(Conn::Ctl(c)) => service_ctl(&mut ctl, t, c),
                        None => true,
                    };
                    if !keep {
                        if let Some(mut c) = conns.remove(&t) {
                            deregister(&poll, &mut c);
                        }
                    }
                }
            }
        }
        // Children's stderr.
        while let Ok(cl) = line_rx.try_recv() {
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
        while let Ok((token, res)) = trig_rx.try_recv() {
            if let Some(resp) = ctl.trigger_done(token, res) {
                if let Some(Conn::Ctl(c)) = conns.get_mut(&token) {
                    queue_answer(c, &resp);
                    let _ = flush(&mut c.sock, &mut c.outbuf);
                }
            }
        }
        // Signals.
        if flags.term.swap(false, Ordering::Relaxed) {
            info!("termination signal received");
            ctl.shutdown = true;
        }
        if flags.hup.swap(false, Ordering::Relaxed) {
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
        answer_pending(&mut ctl, &mut conns);
        // Idle API connections.
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            let idle: Vec<Token> = conns
                .iter()
                .filter_map(|(t, c)| match c {
                    Conn::Api(a) if a.last_active.elapsed() >= API_IDLE => Some(*t),
                    _ => None,
                })
                .collect();
            for t in idle {
                if let Some(mut c) = conns.remove(&t) {
                    deregister(&poll, &mut c);
                }
            }
        }
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
        if ctl.read_mode && last_file_check.elapsed() >= Duration::from_secs(2) {
            last_file_check = Instant::now();
            let m = super::mtime(&ctl.config_path);
            if m.is_some() && m != ctl.config_mtime {
                info!("config file changed on disk");
                ctl.reload();
            }
        }
        if ctl.shutdown {
            // Let pending API answers (e.g. to "shutdown") go out.
            for c in conns.values_mut() {
                let _ = match c {
                    Conn::Api(a) => flush(&mut a.sock, &mut a.outbuf),
                    Conn::Ctl(a) => flush(&mut a.sock, &mut a.outbuf),
                };
            }
            break;
        }
    }
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
    info!("stopping {} children", ctl.sup.children.len());
    ctl.sup.stop_all(super::STOP_GRACE);
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

fn deregister(poll: &Poll, c: &mut Conn) {
    let _ = match c {
        Conn::Api(a) => poll.registry().deregister(&mut a.sock),
        Conn::Ctl(a) => poll.registry().deregister(&mut a.sock),
    };
}

/// Writes as much of `out` as the socket takes. Err on a dead peer.
fn flush<W: Write>(w: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    while !out.is_empty() {
        match w.write(out) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads everything available. Returns false when the peer closed or errored.
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> bool {
    let mut tmp = [0u8; 8192];
    loop {
        match r.read(&mut tmp) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                if buf.len() > cap {
                    return true;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

const API_LIMITS: Limits = Limits {
    max_head: 16 * 1024,
    max_headers: 64,
    max_body: 4 << 20,
};

/// Handles readiness on an API connection. Returns false to drop it.
fn service_api(ctl: &mut Controller, c: &mut ApiConn) -> bool {
    c.last_active = Instant::now();
    let open = fill(
        &mut c.sock,
        &mut c.inbuf,
        API_LIMITS.max_head + API_LIMITS.max_body + 1,
    );
    while !c.close {
        match http::parse_request(&c.inbuf, &API_LIMITS) {
            Ok(Some((req, used))) => {
                c.inbuf.drain(..used);
                c.continued = false;
                let mut resp = answer_http(ctl, c, &req);
                if !req.keep_alive() {
                    resp.keep_alive = false;
                    c.close = true;
                }
                c.outbuf.extend(resp.to_bytes());
            }
            Ok(None) => {
                if !c.continued && http::wants_continue(&c.inbuf) {
                    c.outbuf.extend_from_slice(http::CONTINUE);
                    c.continued = true;
                }
                break;
            }
            Err(e) => {
                let resp = http::Response::text(e.status(), &format!("{e}\n")).keep_alive(false);
                c.outbuf.extend(resp.to_bytes());
                c.close = true;
                c.inbuf.clear();
            }
        }
    }
    if flush(&mut c.sock, &mut c.outbuf).is_err() {
        return false;
    }
    if c.close && c.outbuf.is_empty() {
        return false;
    }
    open || !c.outbuf.is_empty()
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
    // Who is asking: the peer, or the client a trusted proxy names (mist_core::proxy).
    let xff = req.header_joined("x-forwarded-for");
    let fwd = mist_core::proxy::Forwarding {
        x_forwarded_for: xff.as_deref(),
        x_real_ip: req.header("x-real-ip"),
        forwarded: req.header("forwarded"),
    };
    let who = mist_core::proxy::client(
        &c.peer.ip().to_string(),
        &fwd,
        &ctl.cfg.config.trusted_proxies(),
    );
    let (host, local) = (who.host, who.local);
    // The command: ?command=, form body command=, or a raw JSON body.
    let mut text = req.query_param("command");
    if text.is_none() && !req.body.is_empty() {
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let ctype = req
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if ctype.starts_with("application/x-www-form-urlencoded") || body.starts_with("command=") {
            text = http::parse_query(&body)
                .into_iter()
                .find(|(k, _)| k == "command")
                .map(|(_, v)| v);
        } else {
            text = Some(body);
        }
    }
    let cmd: Value = match text.as_deref().map(str::trim) {
        None | Some("") => json!({}),
        Some(t) => match serde_json::from_str(t) {
            Ok(v) => v,
            Err(e) => {
                if !(local || c.session.is_authorized(&host)) {
                    let v = api::handle(ctl, &mut c.session, &host, local, &json!({}));
                    return cors(http::Response::json(200, v.to_string()));
                }
                return cors(http::Response::json(
                    400,
                    json!({"error": format!("invalid JSON: {e}")}).to_string(),
                ));
            }
        },
    };
    let answer = api::handle(ctl, &mut c.session, &host, local, &cmd);
    let mut body = answer.to_string();
    if let Some(cb) = req.query_param("callback").filter(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    }) {
        body = format!("{cb}({body});");
    }
    cors(http::Response::json(200, body))
}

/// Handles readiness on a control connection. Returns false to drop it.
fn service_ctl(ctl: &mut Controller, token: Token, c: &mut CtlConn) -> bool {
    if !c.done {
        let open = fill(&mut c.sock, &mut c.inbuf, CONTROL_MAX);
        if let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') {
            c.done = true;
            let line = c.inbuf[..nl].to_vec();
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => {
                    mist_core::debug!("control request: {}", String::from_utf8_lossy(&line));
                    if let Some(resp) = ctl.control(token, req) {
                        queue_answer(c, &resp);
                    }
                }
                Err(e) => queue_answer(
                    c,
                    &Response {
                        ok: false,
                        stream: String::new(),
                        error: format!("bad request: {e}"),
                        config: Value::Null,
                    },
                ),
            }
        } else if c.inbuf.len() > CONTROL_MAX || !open {
            return false;
        }
    }
    if flush(&mut c.sock, &mut c.outbuf).is_err() {
        return false;
    }
    // Answered and written: close. Waiting: keep.
    !(c.done && c.outbuf.is_empty() && !ctl.pending.iter().any(|p| p.token == token))
}

fn queue_answer(c: &mut CtlConn, resp: &Response) {
    let mut b = serde_json::to_vec(resp).unwrap_or_default();
    b.push(b'\n');
    c.outbuf.extend(b);
}

/// Answers control requests that wait for an input to come up.
fn answer_pending(ctl: &mut Controller, conns: &mut HashMap<Token, Conn>) {
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
        if let Some(Conn::Ctl(c)) = conns.get_mut(&p.token) {
            queue_answer(c, &resp);
            if flush(&mut c.sock, &mut c.outbuf).is_err() || c.outbuf.is_empty() {
                conns.remove(&p.token);
            }
        }
    }
}
