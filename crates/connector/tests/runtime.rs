//! The runtime against real sockets: a panicking session closes only its connection, caps refuse
//! with the listener still serving, and the read budget keeps a flooding peer from stalling others.

use mist_connector::{App, Ctl, Flow, Io, Limits, ListenerId, Peer, Runtime, Session};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Echoes lines; panics on the line "boom".
struct Echo;

impl Session<Lines> for Echo {
    fn on_read(&mut self, app: &mut Lines, io: &mut Io<'_>) {
        while let Some(nl) = io.input().iter().position(|&b| b == b'\n') {
            let line = io.input()[..=nl].to_vec();
            io.consume(nl + 1);
            if line == b"boom\n" {
                panic!("injected panic");
            }
            if line == b"timer boom\n" {
                let now = io.now();
                io.set_timer(Some(now));
                continue;
            }
            app.lines += 1;
            io.write(&line);
        }
    }
    fn on_timer(&mut self, _: &mut Lines, _: &mut Io<'_>) {
        panic!("injected panic in a timer");
    }
}

struct Lines {
    lines: usize,
    stop: Arc<AtomicBool>,
}

impl App for Lines {
    type Session = Echo;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Echo> {
        Some(Echo)
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, _: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

struct Running {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    remote: mist_connector::Remote,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.remote.wake_loop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(limits: Limits) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let l = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut rt = Runtime::<Lines>::new().unwrap();
        rt.listen_tcp(l, "test", limits).unwrap();
        tx.send(rt.remote()).unwrap();
        let mut app = Lines { lines: 0, stop: s2 };
        rt.run(&mut app).unwrap();
        app.lines
    });
    let remote = rx.recv().unwrap();
    Running {
        addr,
        stop,
        remote,
        thread: Some(thread),
    }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn roundtrip(s: &mut TcpStream, line: &str) -> String {
    s.write_all(line.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while !got.ends_with(b"\n") {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed while waiting for {line:?}");
        got.extend_from_slice(&b[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// Reads until the server closes; true if it did (EOF or reset), with no bytes sent.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_panicking_session_closes_only_its_connection() {
    let r = start(Limits::default());
    let mut a = connect(r.addr);
    let mut b = connect(r.addr);
    assert_eq!(roundtrip(&mut a, "one\n"), "one\n");
    assert_eq!(roundtrip(&mut b, "two\n"), "two\n");
    b.write_all(b"boom\n").unwrap();
    assert!(
        closed_by_server(&mut b),
        "the panicking connection must be closed"
    );
    // The other connection and the listener go on.
    assert_eq!(roundtrip(&mut a, "three\n"), "three\n");
    let mut c = connect(r.addr);
    assert_eq!(roundtrip(&mut c, "four\n"), "four\n");
    // A panic in a timer callback: the same.
    c.write_all(b"timer boom\n").unwrap();
    assert!(
        closed_by_server(&mut c),
        "the connection whose timer panicked must be closed"
    );
    assert_eq!(roundtrip(&mut a, "five\n"), "five\n");
}

#[test]
fn per_address_cap_refuses_and_the_listener_goes_on() {
    let r = start(Limits {
        max_per_ip: 2,
        ..Limits::default()
    });
    let mut a = connect(r.addr);
    let mut b = connect(r.addr);
    assert_eq!(roundtrip(&mut a, "a\n"), "a\n");
    assert_eq!(roundtrip(&mut b, "b\n"), "b\n");
    let mut c = connect(r.addr);
    assert!(
        closed_by_server(&mut c),
        "the third connection must be refused"
    );
    drop(b);
    // Room again once one closed (the close is seen by the loop a moment later).
    let mut ok = false;
    for _ in 0..100 {
        let mut d = connect(r.addr);
        if d.write_all(b"d\n").is_ok() {
            let mut buf = [0u8; 8];
            if matches!(d.read(&mut buf), Ok(2)) {
                ok = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "a connection must be admitted once another closed");
    assert_eq!(roundtrip(&mut a, "a2\n"), "a2\n");
}

#[test]
fn an_oversized_partial_message_is_cut() {
    let r = start(Limits {
        max_input: 4096,
        ..Limits::default()
    });
    let mut a = connect(r.addr);
    let mut flood = connect(r.addr);
    let _ = flood.write_all(&vec![b'x'; 64 * 1024]);
    assert!(closed_by_server(&mut flood));
    assert_eq!(roundtrip(&mut a, "still here\n"), "still here\n");
}

#[test]
fn a_flooding_peer_does_not_stall_others() {
    let r = start(Limits {
        read_budget: 4096,
        ..Limits::default()
    });
    let mut flood = connect(r.addr);
    let mut a = connect(r.addr);
    // Many small lines the server echoes; the flooder never reads its answers, so it is
    // eventually paused by backpressure, while `a` keeps being answered.
    let t = std::thread::spawn(move || {
        let line = vec![b'y'; 1023];
        let mut msg = line.clone();
        msg.push(b'\n');
        for _ in 0..20_000 {
            if flood.write_all(&msg).is_err() {
                break;
            }
        }
    });
    for i in 0..20 {
        let l = format!("line {i}\n");
        assert_eq!(roundtrip(&mut a, &l), l);
    }
    drop(r);
    let _ = t.join();
}

/// Says "tick" once a second after the first byte, in simulated time.
struct Ticker;

impl Session<()> for Ticker {
    fn on_read(&mut self, _: &mut (), io: &mut Io<'_>) {
        io.clear_input();
        let at = io.now() + Duration::from_secs(1);
        io.set_timer(Some(at));
    }
    fn on_timer(&mut self, _: &mut (), io: &mut Io<'_>) {
        io.write(b"tick\n");
        let at = io.now() + Duration::from_secs(1);
        io.set_timer(Some(at));
    }
}

#[test]
fn sessions_run_on_simulated_time() {
    let t0 = Instant::now();
    let mut h = mist_connector::Harness::new(Ticker, Peer::Unix);
    assert!(h.feed(&mut (), b"go", t0).is_empty());
    assert_eq!(h.timer(), Some(t0 + Duration::from_secs(1)));
    assert!(h
        .advance(&mut (), t0 + Duration::from_millis(999))
        .is_empty());
    assert_eq!(h.advance(&mut (), t0 + Duration::from_secs(1)), b"tick\n");
    assert_eq!(h.advance(&mut (), t0 + Duration::from_secs(2)), b"tick\n");
}

#[test]
fn a_partial_message_times_out_and_others_go_on() {
    let r = start(Limits {
        header_timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    });
    let mut slow = connect(r.addr);
    slow.write_all(b"no newline yet").unwrap();
    let mut a = connect(r.addr);
    assert_eq!(roundtrip(&mut a, "fine\n"), "fine\n");
    // Cut by the runtime (the read timeout of 10 s is only a safety net).
    assert!(closed_by_server(&mut slow), "a slowloris must be cut");
    assert_eq!(roundtrip(&mut a, "still\n"), "still\n");
}

#[test]
fn an_idle_connection_is_closed() {
    let r = start(Limits {
        idle_timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    });
    let mut idle = connect(r.addr);
    assert_eq!(roundtrip(&mut idle, "hello\n"), "hello\n");
    assert!(
        closed_by_server(&mut idle),
        "an idle connection must be closed"
    );
}

/// A read that fills less than the buffer ends the read loop without a last `WouldBlock` read;
/// the peer's close must still be seen, whether it comes after the bytes were read or with them.
#[test]
fn a_peer_closing_after_short_reads_is_seen() {
    let r = start(Limits::default()); // idle timeout 60 s: only the close can end these
    let mut later = connect(r.addr);
    assert_eq!(roundtrip(&mut later, "one\n"), "one\n");
    later.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        closed_by_server(&mut later),
        "a close after a short read must be seen"
    );
    let mut with = connect(r.addr);
    with.write_all(b"two\n").unwrap();
    with.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    with.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"two\n", "answered, then closed");
}

/// Answers "woken" on each wake-up from another thread.
struct Wakee;

impl Session<Waking> for Wakee {
    fn on_read(&mut self, app: &mut Waking, io: &mut Io<'_>) {
        io.clear_input();
        let _ = app.ids.send(io.id());
    }
    fn on_wake(&mut self, _: &mut Waking, io: &mut Io<'_>) {
        io.write(b"woken\n");
    }
}

struct Waking {
    ids: std::sync::mpsc::Sender<mist_connector::ConnId>,
    stop: Arc<AtomicBool>,
}

impl App for Waking {
    type Session = Wakee;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Wakee> {
        Some(Wakee)
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, _: Instant) -> Flow {
        if self.stop.load(Ordering::Relaxed) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

#[test]
fn another_thread_wakes_one_connection() {
    let stop = Arc::new(AtomicBool::new(false));
    let l = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (rtx, rrx) = std::sync::mpsc::channel();
    let (itx, irx) = std::sync::mpsc::channel();
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        let mut rt = Runtime::<Waking>::new().unwrap();
        rt.listen_tcp(l, "wake", Limits::default()).unwrap();
        rtx.send(rt.remote()).unwrap();
        rt.run(&mut Waking { ids: itx, stop: s2 }).unwrap();
    });
    let remote = rrx.recv().unwrap();
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"id?\n").unwrap();
    let id_a = irx.recv_timeout(Duration::from_secs(10)).unwrap();
    b.write_all(b"id?\n").unwrap();
    let _ = irx.recv_timeout(Duration::from_secs(10)).unwrap();
    remote.wake(id_a);
    let mut buf = [0u8; 16];
    let n = a.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"woken\n");
    // b was not woken: nothing for it.
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        b.read(&mut buf).is_err(),
        "only the woken connection answers"
    );
    stop.store(true, Ordering::Relaxed);
    remote.wake_loop();
    t.join().unwrap();
}

/// Re-arms its timer on every byte it reads, as an RTMP publisher's tick does on every message.
struct Rearm;

impl Session<Counting> for Rearm {
    fn on_read(&mut self, _: &mut Counting, io: &mut Io<'_>) {
        io.clear_input();
        let at = io.now() + Duration::from_millis(400);
        io.set_timer(Some(at));
    }
    fn on_timer(&mut self, app: &mut Counting, _: &mut Io<'_>) {
        app.fired.fetch_add(1, Ordering::Relaxed);
    }
}

struct Counting {
    turns: Arc<std::sync::atomic::AtomicUsize>,
    fired: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl App for Counting {
    type Session = Rearm;
    fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<Rearm> {
        Some(Rearm)
    }
    fn turn(&mut self, _: &mut Ctl<'_, Self>, _: Instant) -> Flow {
        self.turns.fetch_add(1, Ordering::Relaxed);
        if self.stop.load(Ordering::Relaxed) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

#[test]
fn a_timer_set_again_does_not_wake_the_loop_at_its_old_times() {
    use std::sync::atomic::AtomicUsize;
    let stop = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let l = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (rtx, rrx) = std::sync::mpsc::channel();
    let app = Counting {
        turns: turns.clone(),
        fired: fired.clone(),
        stop: stop.clone(),
    };
    let t = std::thread::spawn(move || {
        let mut app = app;
        let mut rt = Runtime::<Counting>::new().unwrap();
        rt.listen_tcp(l, "rearm", Limits::default()).unwrap();
        rtx.send(rt.remote()).unwrap();
        rt.run(&mut app).unwrap();
    });
    let remote = rrx.recv().unwrap();
    let mut c = connect(addr);
    c.set_nodelay(true).unwrap();
    // 30 messages 10 ms apart: the timer moves 30 times, to 400 ms after each.
    let t0 = Instant::now();
    for _ in 0..30 {
        c.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    // The old times fall between 400 and 700 ms after the first message; count the loop's
    // turns in most of that span. Without stale entries dropped it turns once for each (25 or
    // so); with, only for the loop's own 100 ms wait and its 250 ms sweep.
    let at = |ms| t0 + Duration::from_millis(ms);
    std::thread::sleep(at(380).saturating_duration_since(Instant::now()));
    let before = turns.load(Ordering::Relaxed);
    std::thread::sleep(at(640).saturating_duration_since(Instant::now()));
    let during = turns.load(Ordering::Relaxed) - before;
    std::thread::sleep(at(1200).saturating_duration_since(Instant::now()));
    assert!(
        during <= 12,
        "{during} turns in 260 ms of a timer moved 30 times"
    );
    assert_eq!(
        fired.load(Ordering::Relaxed),
        1,
        "the timer fires once, at its last time"
    );
    stop.store(true, Ordering::Relaxed);
    remote.wake_loop();
    t.join().unwrap();
}
