//! What the TLS tests of the runtime share: certificates made by `openssl req -x509`, a byte
//! pattern nobody gets by accident, and a runtime serving one TLS listener on a thread.
#![allow(dead_code)]

use mist_connector::{App, Flow, Limits, Remote, Runtime, TlsConfigHandle};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// A self-signed certificate for `names` (DNS names; 127.0.0.1 is added), `rsa` or ECDSA P-256:
/// `DIR/STEM.crt.pem` and `DIR/STEM.key.pem`.
pub fn make_cert(
    dir: &Path,
    stem: &str,
    cn: &str,
    names: &[&str],
    rsa: bool,
) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.crt.pem"));
    let key = dir.join(format!("{stem}.key.pem"));
    let mut san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    san.push("IP:127.0.0.1".into());
    let mut c = Command::new("openssl");
    c.args(["req", "-x509", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName={}", san.join(",")))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    if rsa {
        c.args(["-newkey", "rsa:2048"]);
    } else {
        c.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    openssl_req(&mut c);
    (cert, key)
}

/// A self-signed leaf certificate (not a CA: webpki refuses a CA as the end entity, and takes
/// a leaf as its own trust anchor) for `localhost` and 127.0.0.1, ECDSA P-256.
pub fn make_leaf(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.crt.pem"));
    let key = dir.join(format!("{stem}.key.pem"));
    let mut c = Command::new("openssl");
    c.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
    ])
    .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
    .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    .args(["-addext", "basicConstraints=critical,CA:FALSE"])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    openssl_req(&mut c);
    (cert, key)
}

/// Runs an `openssl req` command; it must succeed.
pub fn openssl_req(c: &mut Command) {
    let out = c
        .output()
        .expect("openssl is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` bytes nobody would get by accident.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
}

/// What an app's `turn` answers: stop once `stop` is set.
pub fn until(stop: &AtomicBool) -> Flow {
    if stop.load(Ordering::Relaxed) {
        Flow::Stop
    } else {
        Flow::Continue
    }
}

/// A runtime on a thread of its own serving one TLS listener. Dropping it stops the loop and
/// waits for the thread; [`TlsServer::stop`] also fails the test if the loop failed.
pub struct TlsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    /// Serves `l` (named `name`) with `tls` under `limits`; `app` makes the app from the stop
    /// flag, which its `turn` must heed ([`until`]).
    pub fn start<A: App + 'static>(
        l: mio::net::TcpListener,
        name: &'static str,
        limits: Limits,
        tls: TlsConfigHandle,
        app: impl FnOnce(Arc<AtomicBool>) -> A + Send + 'static,
    ) -> TlsServer {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rt = Runtime::<A>::new().unwrap();
            rt.listen_tcp_tls(l, name, limits, tls).unwrap();
            tx.send(rt.remote()).unwrap();
            rt.run(&mut app(s2)).unwrap();
        });
        let remote = rx.recv().unwrap();
        TlsServer {
            addr,
            stop,
            remote,
            thread: Some(thread),
        }
    }

    /// Stops the loop; panics if it failed or panicked.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.remote.wake_loop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.remote.wake_loop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
