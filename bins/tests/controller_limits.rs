//! The controller's two listeners have separate limits: with the public API listener saturated
//! (its per-address connection cap reached by idle, half-sent requests), the control socket the
//! children use still answers, and the API refuses further connections with a log line.

mod common;

use common::ctl::CtlDir as Controller;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The API listener's caps (bins/src/controller/server.rs): per address and in total.
const API_PER_IP: usize = 64;
const API_MAX: usize = 1024;

/// A TCP connection to 127.0.0.1:`port` from the local address 127.0.0.`src`, so that one test
/// can fill the listener's total cap without hitting its per-address cap first.
fn connect_from(src: u8, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let sin = |a: [u8; 4], p: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: p.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket syscalls on a fresh descriptor with valid sockaddr_in values; the
    // descriptor is owned by the TcpStream afterwards.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let local = sin([127, 0, 0, src], 0);
        let r = libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let remote = sin([127, 0, 0, 1], port);
        let r = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// Raises this process's open-file limit (inherited by the controller) so that both ends of
/// more than [`API_MAX`] connections fit.
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let want = (4 * API_MAX as libc::rlim_t).min(r.rlim_max);
        if r.rlim_cur < want {
            r.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        }
    }
    assert!(
        r.rlim_cur >= 2 * API_MAX as libc::rlim_t + 64,
        "open-file limit {} too low for this test (raise the hard limit: ulimit -Hn)",
        r.rlim_cur
    );
}

fn start() -> Controller {
    raise_fd_limit();
    let c = Controller::new(Some(&json!({"config": {"protocols": []}, "streams": {}})))
        .start(&["-c", "mist.conf"], &[]);
    common::wait_until("the control socket", Duration::from_secs(20), || {
        c.sock().exists()
    });
    c
}

fn control(c: &Controller, req: &Value) -> Value {
    c.control(req)
}

/// True when the server closes `s` without answering.
fn refused(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn control_socket_answers_while_the_api_is_saturated() {
    let c = start();
    // Fill the API listener's total cap with connections that never finish a request, from as
    // many local addresses as the per-address cap requires.
    let mut hogs = Vec::new();
    for i in 0..API_MAX {
        let mut s = connect_from(2 + (i / API_PER_IP) as u8, c.port);
        s.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n").unwrap();
        hogs.push(s);
    }
    // One more is refused, even from a fresh address: the listener's cap is reached (a connect
    // may still succeed in the kernel backlog, but the controller closes it at once).
    let mut extra = connect_from(100, c.port);
    assert!(refused(&mut extra), "the API must refuse beyond its cap");
    // The control socket has its own limit and still answers.
    let r = control(&c, &json!({"cmd": "api", "command": {"config": true}}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["config"]["config"].is_object(), "{r}");
    // A malformed control request is refused with the same clear answer as before.
    let r = control(&c, &json!({"cmd": "nonsense"}));
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("bad request"), "{r}");
    let log = c.stderr();
    assert!(
        log.contains("API: connection cap"),
        "no cap log line in:\n{log}"
    );
    // Once the hogs go, the API answers again.
    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", c.port)).unwrap();
        if !refused(&mut s) {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_address_is_capped_below_the_listener() {
    let c = start();
    let mut hogs = Vec::new();
    for _ in 0..API_PER_IP {
        let mut s = TcpStream::connect(("127.0.0.1", c.port)).unwrap();
        s.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n").unwrap();
        hogs.push(s);
    }
    let mut extra = TcpStream::connect(("127.0.0.1", c.port)).unwrap();
    assert!(refused(&mut extra), "the address must be capped");
    // Another address still gets in.
    let mut other = connect_from(3, c.port);
    assert!(!refused(&mut other), "another address must be served");
    let log = c.stderr();
    assert!(
        log.contains("per-address cap"),
        "no cap log line in:\n{log}"
    );
}

#[test]
fn an_oversized_request_head_is_answered_431() {
    // A loopback peer counts as local and may send a large config; that path is covered by
    // controller_api. Here: a request head over the limit is answered with 431, not a hang.
    let c = start();
    let mut s = TcpStream::connect(("127.0.0.1", c.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = format!(
        "GET /api HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let _ = s.write_all(big.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}
