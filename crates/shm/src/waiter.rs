//! `Waiter`: one thread waits on many streams' futex words at once.

use crate::futex::{waitv, wake};
use crate::meta::Meta;
use crate::ShmError;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Entry {
    stream: String,
    meta: Arc<Meta>,
    seen: u32,
}

struct Inner {
    entries: Mutex<Vec<Entry>>,
    kick: AtomicU32,
}

/// Waits on several streams from one thread.
///
/// An output process runs one helper thread that loops on [`Waiter::wait`] and wakes its mio loop:
///
/// ```ignore
/// let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE_TOKEN)?);
/// let waiter = mist_shm::Waiter::new();
/// let (w2, k2) = (waiter.clone(), waker.clone());
/// std::thread::spawn(move || loop {
///     let ready = w2.wait(Duration::from_secs(1));
///     if !ready.is_empty() { /* queue `ready` for the loop */ k2.wake().ok(); }
/// });
/// // in the loop: waiter.add("live")? when the first viewer of a stream arrives, waiter.remove()
/// // when the last leaves; on WAKE_TOKEN call `next()` on the readers of the ready streams
/// // until they return Pending.
/// ```
///
/// `add`/`remove` call `kick()` so a `wait` in progress picks up the new set. Uses futex_waitv
/// (Linux 5.16+, up to 127 streams per wait); with more streams or an older kernel it polls every
/// few milliseconds.
#[derive(Clone)]
pub struct Waiter {
    inner: Arc<Inner>,
}

impl Default for Waiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiter {
    /// A waiter with its helper thread, watching no stream yet.
    pub fn new() -> Waiter {
        Waiter {
            inner: Arc::new(Inner {
                entries: Mutex::new(Vec::new()),
                kick: AtomicU32::new(0),
            }),
        }
    }

    /// Starts watching a stream (no-op if already watched).
    pub fn add(&self, stream: &str) -> Result<(), ShmError> {
        let meta = crate::open_meta(&crate::shm_dir(), stream)?;
        let mut e = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        if !e.iter().any(|x| x.stream == stream) {
            let seen = meta.futex().load(SeqCst);
            e.push(Entry {
                stream: stream.to_owned(),
                meta,
                seen,
            });
        }
        drop(e);
        self.kick();
        Ok(())
    }

    /// Stops watching a stream.
    pub fn remove(&self, stream: &str) {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|x| x.stream != stream);
        self.kick();
    }

    /// Interrupts a `wait` in progress (it returns an empty list).
    pub fn kick(&self) {
        self.inner.kick.fetch_add(1, SeqCst);
        wake(&self.inner.kick);
    }

    /// Blocks until one of the watched streams changes (or `kick`, or the timeout) and returns the
    /// names of the streams that changed since the previous call.
    pub fn wait(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let kick_seen = self.inner.kick.load(SeqCst);
        let metas: Vec<(Arc<Meta>, u32)> = {
            let e = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
            e.iter().map(|x| (x.meta.clone(), x.seen)).collect()
        };
        for (m, _) in &metas {
            m.seg.u32(crate::layout::M_WAITERS).fetch_add(1, SeqCst);
        }
        loop {
            let changed = metas
                .iter()
                .any(|(m, seen)| m.futex().load(SeqCst) != *seen);
            let now = Instant::now();
            if changed || now >= deadline || self.inner.kick.load(SeqCst) != kick_seen {
                break;
            }
            let left = deadline - now;
            if metas.len() < 128 {
                let mut words: Vec<(&AtomicU32, u32)> =
                    metas.iter().map(|(m, s)| (m.futex(), *s)).collect();
                words.push((&self.inner.kick, kick_seen));
                if waitv(&words, left) {
                    continue;
                }
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
        for (m, _) in &metas {
            m.seg.u32(crate::layout::M_WAITERS).fetch_sub(1, SeqCst);
        }
        let mut out = Vec::new();
        let mut e = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        for x in e.iter_mut() {
            let v = x.meta.futex().load(SeqCst);
            if v != x.seen {
                x.seen = v;
                out.push(x.stream.clone());
            }
        }
        out
    }
}
