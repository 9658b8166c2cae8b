//! A bounded pool of worker threads for non-blocking triggers, keeping per-key order: jobs with
//! the same key (a stream name) run one after the other in submission order; jobs with different
//! keys run in parallel on up to `workers` threads. No thread is started per event.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    queues: HashMap<String, VecDeque<Job>>,
    /// Keys with queued jobs and no job running, in the order they became ready.
    ready: VecDeque<String>,
    busy: HashSet<String>,
    queued: usize,
    started: usize,
}

/// Worker threads that run trigger handlers, in order per stream, with a bounded queue.
pub struct Pool {
    shared: Arc<(Mutex<State>, Condvar)>,
    workers: usize,
    max_queued: usize,
}

/// The queue is full: the job was dropped.
#[derive(Debug, thiserror::Error)]
#[error("trigger queue full ({0} events waiting)")]
pub struct Full(pub usize);

impl Pool {
    /// A pool of `workers` threads that queues at most `max_queued` jobs.
    pub fn new(workers: usize, max_queued: usize) -> Pool {
        Pool {
            shared: Arc::new((Mutex::new(State::default()), Condvar::new())),
            workers: workers.max(1),
            max_queued,
        }
    }

    /// Queues `job` behind the other jobs of `key`.
    pub fn submit(&self, key: &str, job: impl FnOnce() + Send + 'static) -> Result<(), Full> {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        if st.queued >= self.max_queued {
            return Err(Full(st.queued));
        }
        st.queued += 1;
        let q = st.queues.entry(key.to_string()).or_default();
        let was_empty = q.is_empty();
        q.push_back(Box::new(job));
        if was_empty && !st.busy.contains(key) {
            st.ready.push_back(key.to_string());
        }
        // Start workers lazily, up to the bound.
        if st.started < self.workers && st.started < st.queued + st.busy.len() {
            st.started += 1;
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("trigger-worker".into())
                .spawn(move || worker(shared));
            if spawned.is_err() {
                st.started -= 1;
            }
        }
        cv.notify_one();
        Ok(())
    }

    /// Waits until every queued job has run (or `timeout` passed); returns whether it did. A
    /// process that exits right after firing calls this so its last events are not lost.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        loop {
            {
                let (lock, _) = &*self.shared;
                let st = lock.lock().unwrap_or_else(|e| e.into_inner());
                if st.queued == 0 && st.busy.is_empty() {
                    return true;
                }
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Jobs queued and not started yet.
    pub fn queued(&self) -> usize {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).queued
    }
}

fn worker(shared: Arc<(Mutex<State>, Condvar)>) {
    let (lock, cv) = &*shared;
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let Some(key) = st.ready.pop_front() else {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let job = st.queues.get_mut(&key).and_then(VecDeque::pop_front);
        let Some(job) = job else {
            st.queues.remove(&key);
            continue;
        };
        st.queued -= 1;
        st.busy.insert(key.clone());
        drop(st);
        // A panicking handler job must not take the worker (and the key's order) down.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        st = lock.lock().unwrap_or_else(|e| e.into_inner());
        st.busy.remove(&key);
        if st.queues.get(&key).is_some_and(|q| !q.is_empty()) {
            st.ready.push_back(key);
            cv.notify_one();
        } else {
            st.queues.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn per_key_order_and_parallel_keys() {
        let pool = Pool::new(3, 1000);
        let (tx, rx) = mpsc::channel();
        // Key "a" is held by a slow job; key "b" must still run meanwhile.
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let t = tx.clone();
        pool.submit("a", move || {
            let _ = gate_rx.recv();
            t.send("a1").unwrap();
        })
        .unwrap();
        for n in ["a2", "a3"] {
            let t = tx.clone();
            pool.submit("a", move || t.send(n).unwrap()).unwrap();
        }
        let t = tx.clone();
        pool.submit("b", move || t.send("b1").unwrap()).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "b1");
        gate_tx.send(()).unwrap();
        let got: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(got, ["a1", "a2", "a3"]);
    }

    #[test]
    fn bounded_queue() {
        let pool = Pool::new(1, 2);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        pool.submit("x", move || {
            let _ = gate_rx.recv();
        })
        .unwrap();
        // The first job may or may not have been taken by the worker yet.
        let mut accepted = 0;
        for _ in 0..5 {
            if pool.submit("x", || {}).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted <= 2, "{accepted}");
        gate_tx.send(()).unwrap();
    }
}
