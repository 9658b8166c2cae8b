//! Supervision of child processes: spawning with the control socket in the environment, collecting
//! stderr lines, restarting crashed children with backoff, stopping them (TERM, then KILL).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First restart delay after a crash.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that stayed up this long gets its backoff reset.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// An output for a configured protocol; the key is the protocol entry as JSON (to diff on
    /// config changes).
    Protocol(String),
    /// The input of a stream.
    Input(String),
    /// A push process (supervised by `controller::push`, not by the [`Supervisor`]).
    Push(u64),
}

/// A line a child wrote on stderr.
pub struct ChildLine {
    pub binary: String,
    pub pid: u32,
    pub line: String,
}

pub struct Managed {
    pub role: Role,
    /// Binary name, e.g. `MistOutRTMP`.
    pub name: String,
    pub path: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub started: Instant,
    pub backoff: Duration,
    pub restart_at: Option<Instant>,
    /// Restart after it exits (outputs yes; inputs no: they are started on demand).
    pub restart: bool,
    /// Being stopped on purpose: do not restart, forget once gone.
    pub stopping: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

impl Managed {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// Environment and plumbing shared by all spawns.
pub struct Spawner {
    pub env: Vec<(String, String)>,
    pub lines: Sender<ChildLine>,
    pub waker: Arc<mio::Waker>,
}

impl Spawner {
    pub fn spawn(&self, m: &mut Managed) -> std::io::Result<()> {
        let mut cmd = Command::new(&m.path);
        cmd.args(&m.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A child must not outlive a controller that was killed with -9.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                // Signals the controller ignores or blocks must not stay so in the child.
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        if let Some(err) = child.stderr.take() {
            let tx = self.lines.clone();
            let waker = self.waker.clone();
            let binary = m.name.clone();
            std::thread::Builder::new()
                .name(format!("stderr-{pid}"))
                .spawn(move || {
                    let mut r = BufReader::new(err);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        // Bound one line so a child printing garbage cannot exhaust memory.
                        match (&mut r).take(64 * 1024).read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                                if line.is_empty() {
                                    continue;
                                }
                                if tx
                                    .send(ChildLine {
                                        binary: binary.clone(),
                                        pid,
                                        line,
                                    })
                                    .is_err()
                                {
                                    break;
                                }
                                let _ = waker.wake();
                            }
                        }
                    }
                })?;
        }
        m.child = Some(child);
        m.started = Instant::now();
        m.restart_at = None;
        Ok(())
    }
}

use std::io::Read as _;

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a pid we spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

pub fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit".into(),
    }
}

/// What happened to a child in one [`Supervisor::reap`] pass.
pub enum Event {
    Exited {
        role: Role,
        name: String,
        pid: u32,
        how: String,
        restart_in: Option<Duration>,
        /// The controller asked it to stop.
        requested: bool,
    },
}

#[derive(Default)]
pub struct Supervisor {
    pub children: Vec<Managed>,
}

impl Supervisor {
    pub fn find(&self, role: &Role) -> Option<&Managed> {
        self.children
            .iter()
            .find(|m| &m.role == role && m.stopping.is_none())
    }

    /// Adds and starts a child. A spawn failure schedules a retry for restartable children.
    pub fn start(
        &mut self,
        sp: &Spawner,
        role: Role,
        name: &str,
        path: PathBuf,
        args: Vec<String>,
        restart: bool,
    ) -> std::io::Result<u32> {
        let mut m = Managed {
            role,
            name: name.to_string(),
            path,
            args,
            child: None,
            started: Instant::now(),
            backoff: BACKOFF_START,
            restart_at: None,
            restart,
            stopping: None,
            restarts: 0,
            last_exit: None,
        };
        let r = sp.spawn(&mut m);
        if r.is_err() && restart {
            m.restart_at = Some(Instant::now() + m.backoff);
            m.backoff = (m.backoff * 2).min(BACKOFF_MAX);
        }
        let pid = m.pid().unwrap_or(0);
        if r.is_ok() || restart {
            self.children.push(m);
        }
        r.map(|_| pid)
    }

    /// Asks a child to stop (SIGTERM now, SIGKILL after `grace` in [`Supervisor::reap`]).
    pub fn stop(&mut self, role: &Role) {
        for m in self
            .children
            .iter_mut()
            .filter(|m| &m.role == role && m.stopping.is_none())
        {
            m.stopping = Some(Instant::now());
            m.restart_at = None;
            if let Some(pid) = m.pid() {
                signal(pid, libc::SIGTERM);
            }
        }
    }

    /// Reaps exited children, restarts due ones, escalates stops to SIGKILL after `grace`.
    pub fn reap(&mut self, sp: &Spawner, grace: Duration) -> Vec<Event> {
        let now = Instant::now();
        let mut events = Vec::new();
        for m in self.children.iter_mut() {
            if let Some(c) = m.child.as_mut() {
                match c.try_wait() {
                    Ok(Some(status)) => {
                        let pid = c.id();
                        m.child = None;
                        let how = describe_exit(status);
                        m.last_exit = Some(how.clone());
                        let mut restart_in = None;
                        if m.restart && m.stopping.is_none() {
                            if now.duration_since(m.started) >= BACKOFF_RESET_AFTER {
                                m.backoff = BACKOFF_START;
                            }
                            restart_in = Some(m.backoff);
                            m.restart_at = Some(now + m.backoff);
                            m.backoff = (m.backoff * 2).min(BACKOFF_MAX);
                        }
                        events.push(Event::Exited {
                            role: m.role.clone(),
                            name: m.name.clone(),
                            pid,
                            how,
                            restart_in,
                            requested: m.stopping.is_some(),
                        });
                    }
                    Ok(None) => {
                        if let Some(t) = m.stopping {
                            if now.duration_since(t) >= grace {
                                signal(c.id(), libc::SIGKILL);
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        // Forget stopped children and finished non-restarting ones.
        self.children
            .retain(|m| m.child.is_some() || (m.restart && m.stopping.is_none()));
        for m in self.children.iter_mut() {
            if m.child.is_none() && m.restart_at.is_some_and(|t| t <= now) {
                m.restarts += 1;
                if sp.spawn(m).is_err() {
                    m.restart_at = Some(now + m.backoff);
                    m.backoff = (m.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        events
    }

    /// The earliest pending restart (to bound the poll timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.children.iter().filter_map(|m| m.restart_at).min()
    }

    /// Stops every child: SIGTERM, wait up to `grace`, then SIGKILL and reap.
    pub fn stop_all(&mut self, grace: Duration) {
        for m in self.children.iter_mut() {
            m.restart = false;
            m.restart_at = None;
            if let Some(pid) = m.pid() {
                signal(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            for m in self.children.iter_mut() {
                if let Some(c) = m.child.as_mut() {
                    if let Ok(Some(_)) = c.try_wait() {
                        m.child = None;
                    }
                }
            }
            if self.children.iter().all(|m| m.child.is_none()) {
                break;
            }
            if Instant::now() >= deadline {
                for m in self.children.iter_mut() {
                    if let Some(c) = m.child.as_mut() {
                        let _ = c.kill();
                        let _ = c.wait();
                        m.child = None;
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.children.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawner() -> (Spawner, std::sync::mpsc::Receiver<ChildLine>, mio::Poll) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        (
            Spawner {
                env: vec![("MIST_TEST_ENV".into(), "x".into())],
                lines: tx,
                waker,
            },
            rx,
            poll,
        )
    }

    #[test]
    fn backoff_doubles_for_a_crashing_child() {
        let (sp, rx, _poll) = spawner();
        let mut sup = Supervisor::default();
        let args = vec![
            "-c".to_string(),
            "echo \"WARN Fake: $MIST_TEST_ENV\" >&2; exit 3".to_string(),
        ];
        sup.start(
            &sp,
            Role::Protocol("k".into()),
            "Fake",
            "/bin/sh".into(),
            args,
            true,
        )
        .unwrap();
        let mut delays = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while delays.len() < 3 && Instant::now() < deadline {
            for Event::Exited {
                how, restart_in, ..
            } in sup.reap(&sp, Duration::from_secs(1))
            {
                assert_eq!(how, "exit code 3");
                delays.push(restart_in.unwrap());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            delays,
            [BACKOFF_START, BACKOFF_START * 2, BACKOFF_START * 4]
        );
        let line = rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(line.line, "WARN Fake: x");
        assert_eq!(line.binary, "Fake");
        sup.stop_all(Duration::from_secs(1));
        assert!(sup.children.is_empty());
    }

    #[test]
    fn stop_escalates_and_forgets() {
        let (sp, _rx, _poll) = spawner();
        let mut sup = Supervisor::default();
        // Ignores SIGTERM: only SIGKILL after the grace period ends it.
        let args = vec![
            "-c".to_string(),
            "trap '' TERM; while :; do sleep 0.05; done".to_string(),
        ];
        let role = Role::Input("s".into());
        sup.start(&sp, role.clone(), "Stubborn", "/bin/sh".into(), args, false)
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        sup.stop(&role);
        let t0 = Instant::now();
        while !sup.children.is_empty() {
            sup.reap(&sp, Duration::from_millis(300));
            assert!(t0.elapsed() < Duration::from_secs(5), "not stopped");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }
}
