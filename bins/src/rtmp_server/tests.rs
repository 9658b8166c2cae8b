//! In-process tests of the RTMP server on the connector runtime: a session that panics, and a
//! peer over the per-address cap, each affect only their own connection.

use super::*;
use mist_media::rtmp::{ClientEvent, ClientMode, ClientSession};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;

/// A play of this name panics inside the session (test builds only).
pub const PANIC_NAME: &str = "__panic_in_session__";

const FLV: &[u8] =
    include_bytes!("../../../crates/media/tests/fixtures/flv/testsrc_320x240_1s.flv");

/// One shared-memory directory for the tests of this process (the variable is process-wide).
fn shm_dir() {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("MIST_SHM_DIR", d.path());
        std::env::remove_var("MIST_CONTROL");
        d
    });
}

/// A standalone server on a free port, run on its own thread until the guard drops.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(max_per_ip: usize) -> Running {
    shm_dir();
    let mut server = Server::bind(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        controlled: false,
        merge: Duration::from_millis(20),
        max_conns: 0,
        max_per_ip,
        tls: None,
    })
    .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || server.run(s2).unwrap());
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// A client connection driven over a blocking socket.
struct Client {
    sock: TcpStream,
    session: ClientSession,
}

impl Client {
    fn new(addr: SocketAddr, app: &str, stream: &str, mode: ClientMode, seed: u64) -> Client {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tc = format!("rtmp://{addr}/{app}");
        Client {
            sock,
            session: ClientSession::new(app, &tc, stream, mode, seed),
        }
    }

    fn flush(&mut self) {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.sock.write_all(&out).unwrap();
        }
    }

    /// Reads and handles events until `done` says so; None when the server closed the
    /// connection (or refused), or 10 s passed.
    fn until(&mut self, mut done: impl FnMut(&ClientEvent) -> bool) -> Option<()> {
        let t = Instant::now();
        let mut buf = vec![0u8; 65536];
        while t.elapsed() < Duration::from_secs(10) {
            loop {
                match self.session.poll() {
                    Ok(Some(ClientEvent::Refused(_))) | Err(_) => return None,
                    Ok(Some(e)) if done(&e) => {
                        self.flush();
                        return Some(());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
            self.flush();
            match self.sock.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.session.feed(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Client {
    /// Whether the server closes this connection within 5 s (the client goes on with its
    /// handshake and commands meanwhile).
    fn closed_by_server(&mut self) -> bool {
        let t = Instant::now();
        let mut buf = vec![0u8; 65536];
        while t.elapsed() < Duration::from_secs(5) {
            while let Ok(Some(_)) = self.session.poll() {}
            let out = self.session.take_output();
            if !out.is_empty() && self.sock.write_all(&out).is_err() {
                return true;
            }
            match self.sock.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.session.feed(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// The fixture's tracks and frames.
fn fixture() -> (Vec<Track>, Vec<Frame>) {
    let mut d = mist_media::flv::Demuxer::new();
    d.feed(FLV);
    let (mut tracks, mut frames) = (Vec::<Track>::new(), Vec::new());
    while let Some(t) = d.next_tag().unwrap() {
        if let Some(tr) = t.converted.track {
            tracks.retain(|x| x.id != tr.id);
            tracks.push(tr);
        }
        if let Some(f) = t.converted.frame {
            frames.push(f);
        }
    }
    (tracks, frames)
}

/// Publishes the fixture `loops` times (timestamps shifted on), as fast as the socket takes it.
fn publish(p: &mut Client, tracks: &[Track], frames: &[Frame], loop_no: i64) {
    for f in frames {
        let mut f = f.clone();
        f.dts += loop_no * 1000;
        let t = tracks.iter().find(|t| t.id == f.track).unwrap();
        p.session.send_frame(t, &f).unwrap();
    }
    p.flush();
}

fn publisher(addr: SocketAddr, name: &str, tracks: &[Track]) -> Client {
    let mut p = Client::new(addr, "live", name, ClientMode::Publish, 1);
    p.flush();
    p.until(|e| matches!(e, ClientEvent::Ready { .. }))
        .expect("publish accepted");
    p.session.send_tracks(tracks).unwrap();
    p.flush();
    p
}

/// Counts the video frames a viewer gets with a timestamp at or after `from_ms`.
fn frames_from(v: &mut Client, from_ms: i64) -> bool {
    v.until(|e| matches!(e, ClientEvent::Frame(f) if f.dts >= from_ms))
        .is_some()
}

#[test]
fn a_panicking_session_closes_only_its_own_connection() {
    let srv = start(0);
    let (tracks, frames) = fixture();
    let mut p = publisher(srv.addr, "calm", &tracks);
    publish(&mut p, &tracks, &frames, 0);

    let mut viewer = Client::new(srv.addr, "play", "calm", ClientMode::Play, 2);
    viewer.flush();
    viewer
        .until(|e| matches!(e, ClientEvent::Ready { .. }))
        .expect("viewer plays");

    // A client whose play makes its session panic: its connection goes, with a log line.
    let mut bad = Client::new(srv.addr, "play", PANIC_NAME, ClientMode::Play, 3);
    bad.flush();
    assert!(
        bad.closed_by_server(),
        "the panicking session's connection stayed open"
    );
    // A hostile peer sending garbage: its connection goes too.
    let mut garbage = TcpStream::connect(srv.addr).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = garbage.write_all(&[0x03; 1537]);
    let _ = garbage.write_all(&[0xff; 70000]);
    let mut sink = [0u8; 65536];
    let closed = loop {
        match garbage.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) => {
                break !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    };
    assert!(closed, "the garbage peer stayed connected");

    // The process and the other viewer go on: frames published after the panic arrive.
    publish(&mut p, &tracks, &frames, 1);
    assert!(
        frames_from(&mut viewer, 1000),
        "the viewer got nothing after another session panicked"
    );
    // And a new viewer can still start.
    let mut late = Client::new(srv.addr, "play", "calm", ClientMode::Play, 4);
    late.flush();
    publish(&mut p, &tracks, &frames, 2);
    assert!(frames_from(&mut late, 0), "a new viewer got nothing");
}

#[test]
fn connections_over_the_per_address_cap_are_refused() {
    let srv = start(2);
    let (tracks, frames) = fixture();
    // Two connections from 127.0.0.1 are allowed: a publisher and a viewer.
    let mut p = publisher(srv.addr, "capped", &tracks);
    publish(&mut p, &tracks, &frames, 0);
    let mut viewer = Client::new(srv.addr, "play", "capped", ClientMode::Play, 2);
    viewer.flush();
    viewer
        .until(|e| matches!(e, ClientEvent::Ready { .. }))
        .expect("the second connection is allowed");
    // The third is closed at once, before any handshake.
    let mut third = Client::new(srv.addr, "play", "capped", ClientMode::Play, 3);
    third.flush();
    assert!(
        third.closed_by_server(),
        "a third connection from one address was served"
    );
    // The two allowed ones are unaffected.
    publish(&mut p, &tracks, &frames, 1);
    assert!(frames_from(&mut viewer, 1000), "the viewer stopped");
    // Once one leaves, a new connection from the same address is accepted again.
    drop(viewer);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = Client::new(srv.addr, "play", "capped", ClientMode::Play, 4);
    again.flush();
    assert!(
        again
            .until(|e| matches!(e, ClientEvent::Ready { .. }))
            .is_some(),
        "a connection after one left was refused"
    );
}

#[test]
fn a_track_selection_gets_only_its_tracks() {
    let srv = start(0);
    let (tracks, frames) = fixture();
    assert!(tracks
        .iter()
        .any(|t| t.kind() == mist_media::TrackKind::Audio));
    let mut p = publisher(srv.addr, "sel", &tracks);
    publish(&mut p, &tracks, &frames, 0);
    let mut all = Client::new(srv.addr, "play", "sel", ClientMode::Play, 2);
    let mut video = Client::new(srv.addr, "play", "sel?audio=none", ClientMode::Play, 3);
    all.flush();
    video.flush();
    for v in [&mut all, &mut video] {
        v.until(|e| matches!(e, ClientEvent::Ready { .. }))
            .expect("plays");
    }
    publish(&mut p, &tracks, &frames, 1);
    // Every event up to a frame of the second loop, by kind of track.
    let kinds = |v: &mut Client| {
        let mut ids = std::collections::HashMap::new();
        let mut got = Vec::new();
        let done = v.until(|e| {
            match e {
                ClientEvent::Track(t) => {
                    ids.insert(t.id, t.kind());
                }
                ClientEvent::Frame(f) => got.push(ids.get(&f.track).copied()),
                _ => {}
            }
            matches!(e, ClientEvent::Frame(f) if f.dts >= 1000)
        });
        assert!(done.is_some(), "no frame of the second loop");
        (ids, got)
    };
    let (ids, got) = kinds(&mut all);
    assert!(
        ids.values().any(|k| *k == mist_media::TrackKind::Audio),
        "{ids:?}"
    );
    assert!(got.contains(&Some(mist_media::TrackKind::Audio)));
    let (ids, got) = kinds(&mut video);
    assert!(
        ids.values().all(|k| *k == mist_media::TrackKind::Video) && !ids.is_empty(),
        "?audio=none announced {ids:?}"
    );
    assert!(
        got.iter().all(|k| *k == Some(mist_media::TrackKind::Video)),
        "?audio=none got other frames: {got:?}"
    );
}
