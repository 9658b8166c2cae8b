//! A MistController started by hand in a directory of its own, for the tests of the controller
//! itself (API, security, limits): `mist.conf`, `shm/`, `control.sock`, `stderr.log`, and with
//! [`CtlDir::with_bin`] a `bin/` holding a copy of the binary plus stand-in siblings (the
//! controller finds its children in its own directory). Also raw HTTP and control-socket
//! exchanges and the API's MD5 login digest.

use super::free_port;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const CONTROLLER: &str = env!("CARGO_BIN_EXE_MistController");

pub struct CtlDir {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// The API port (`-p`).
    pub port: u16,
    /// On drop: SIGTERM and up to 10 s for the controller to stop the children it started, then
    /// SIGKILL. Otherwise SIGKILL at once.
    pub term_on_drop: bool,
}

impl CtlDir {
    /// A directory with `shm/` and, when given, `config` as `mist.conf`; the real binary runs.
    pub fn new(config: Option<&Value>) -> CtlDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shm")).unwrap();
        let ctl = CtlDir {
            dir,
            child: None,
            port: free_port(),
            term_on_drop: false,
        };
        if let Some(c) = config {
            std::fs::write(ctl.config_path(), serde_json::to_vec_pretty(c).unwrap()).unwrap();
        }
        ctl
    }

    /// [`CtlDir::new`] plus `bin/MistController` (a copy) and executable stand-ins
    /// `(name, script)` beside it.
    pub fn with_bin(config: Option<&Value>, standins: &[(&str, &str)]) -> CtlDir {
        use std::os::unix::fs::PermissionsExt;
        let ctl = CtlDir::new(config);
        let bin = ctl.bin_dir();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(CONTROLLER, bin.join("MistController")).unwrap();
        for (name, script) in standins {
            let p = bin.join(name);
            std::fs::write(&p, script).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        ctl
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mist.conf")
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }
    pub fn shm(&self) -> PathBuf {
        self.dir.path().join("shm")
    }
    /// What the controller wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("controller started").id()
    }
    /// `127.0.0.1:PORT`, the API's own Host.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// The binary: the copy in `bin/` when there is one.
    pub fn exe(&self) -> PathBuf {
        let copy = self.bin_dir().join("MistController");
        if copy.exists() {
            copy
        } else {
            PathBuf::from(CONTROLLER)
        }
    }

    /// Starts the controller: `-p PORT -i 127.0.0.1 ARGS…` in its directory, with `MIST_CONTROL`,
    /// `MIST_SHM_DIR` and `envs`, stderr to `stderr.log`; waits until the API port answers
    /// (panics with the log when it exits first or after 20 s).
    pub fn start(mut self, args: &[&str], envs: &[(&str, &str)]) -> CtlDir {
        let err = std::fs::File::create(self.dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(self.exe());
        cmd.args(["-p", &self.port.to_string(), "-i", "127.0.0.1"])
            .args(args)
            .current_dir(self.dir.path())
            .env("MIST_CONTROL", self.sock())
            .env("MIST_SHM_DIR", self.shm())
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        self.child = Some(spawn_retrying(&mut cmd));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("controller exited early ({st}): {}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "controller did not start: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// Waits for the controller to exit; panics with its log after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let c = self.child.as_mut().expect("controller started");
        match super::wait_exit(c, within) {
            Some(st) => st,
            None => panic!("controller did not exit: {}", self.stderr()),
        }
    }

    /// SIGKILLs the controller and reaps it.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A new connection to the API port.
    pub fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).unwrap()
    }

    /// One request on the control socket; returns the answer line as JSON.
    pub fn control(&self, req: &Value) -> Value {
        control_at(&self.sock(), req)
    }
}

impl Drop for CtlDir {
    fn drop(&mut self) {
        let Some(c) = self.child.as_mut() else { return };
        if c.try_wait().ok().flatten().is_some() {
            return;
        }
        if !self.term_on_drop {
            // The controller and what it started, before the directory goes.
            super::stop_tree(c.id(), Duration::from_secs(1));
        } else {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Spawns `cmd`, retrying while the executable is still open for writing in a process forked by
/// another test thread (ETXTBSY: binaries copied into each test's own directory).
pub fn spawn_retrying(cmd: &mut Command) -> Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("executable stayed busy (ETXTBSY)");
}

/// One request line on the control socket at `sock`; the answer line as JSON.
pub fn control_at(sock: &std::path::Path, req: &Value) -> Value {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// Lower-case hex MD5 of `s` (the API's login digest).
pub fn md5hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One HTTP answer read off a connection.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends raw request bytes on `conn` and reads one answer (its body by Content-Length).
pub fn exchange(conn: &mut TcpStream, raw: &[u8]) -> Answer {
    conn.write_all(raw).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
            headers.push((k.to_string(), v.trim().to_string()));
        }
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&b).into_owned(),
    }
}
