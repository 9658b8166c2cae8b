//! CONN_CLOSE that is never lost (INTERFACES §5.3, issue 11): an output that admits a viewer
//! connection records the CONN_CLOSE it owes in the shared `mist_conns` table
//! (`mist_shm::conns`); when the connection ends it takes the record back and fires CONN_CLOSE
//! itself. When the output process dies first (SIGKILL, crash), the controller finds the records
//! of the dead process and fires their CONN_CLOSE ([`reap`]). Each connection's CONN_CLOSE is
//! fired by exactly one of the two.
//!
//! Records are only made while a CONN_CLOSE handler is configured for the stream: without one
//! this costs nothing.

use mist_core::triggers::Engine;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The payload of a CONN_CLOSE: stream, peer, connector, URL.
type Key = (String, String, String, String);

/// This process's records: payload → table slots (connections with the same payload are
/// interchangeable).
fn owed() -> &'static Mutex<HashMap<Key, Vec<usize>>> {
    static O: OnceLock<Mutex<HashMap<Key, Vec<usize>>>> = OnceLock::new();
    O.get_or_init(Default::default)
}

/// An output admitted a viewer connection (CONN_CLOSE is now due when it ends).
pub fn opened(stream: &str, peer: &str, connector: &str, url: &str) {
    if !Engine::global().exists("CONN_CLOSE", Some(stream)) {
        return;
    }
    let Some(slot) = mist_shm::conns::register(stream, peer, connector, url) else {
        // Still served, and still closed by this process: only a crash of it would lose the
        // CONN_CLOSE. One line per 10 s, with how many since the last.
        table_full(peer, stream);
        return;
    };
    owed()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((stream.into(), peer.into(), connector.into(), url.into()))
        .or_default()
        .push(slot);
}

/// Logs (at most once per 10 s, counting the others) a connection the `mist_conns` table had
/// no slot for.
fn table_full(peer: &str, stream: &str) {
    use std::time::{Duration, Instant};
    static LAST: Mutex<(Option<Instant>, u64)> = Mutex::new((None, 0));
    let mut l = LAST.lock().unwrap_or_else(|p| p.into_inner());
    l.1 += 1;
    if l.0.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
        return;
    }
    mist_core::warn!(
        "connections table full ({} connections owe a CONN_CLOSE): CONN_CLOSE of {peer} on {stream} and {} other(s) since the last such line is fired by this process but not covered should it die",
        mist_shm::conns::MAX_CONNS,
        l.1 - 1
    );
    *l = (Some(Instant::now()), 0);
}

/// An admitted viewer connection ended: CONN_CLOSE (never waits). Its record is taken back when
/// the event's turn comes, just before the handlers run.
pub fn closed(stream: &str, peer: &str, connector: &str, url: &str) {
    let slot = {
        let mut o = owed().lock().unwrap_or_else(|p| p.into_inner());
        let k: Key = (stream.into(), peer.into(), connector.into(), url.into());
        let s = o.get_mut(&k).and_then(Vec::pop);
        if o.get(&k).is_some_and(Vec::is_empty) {
            o.remove(&k);
        }
        s
    };
    Engine::global().emit_then(
        "CONN_CLOSE",
        Some(stream),
        &[stream, peer, connector, url],
        move || {
            if let Some(s) = slot {
                mist_shm::conns::release(s);
            }
        },
    );
}

/// Controller: fires the CONN_CLOSE owed by processes that died, once each, with one log line
/// per connection. Returns how many.
pub fn reap() -> usize {
    let list = mist_shm::conns::reap();
    for c in &list {
        mist_core::info!(
            "CONN_CLOSE for {} on {} ({}): its output process {} died",
            c.peer,
            c.stream,
            c.connector,
            c.pid
        );
        Engine::global().emit(
            "CONN_CLOSE",
            Some(&c.stream),
            &[&c.stream, &c.peer, &c.connector, &c.url],
        );
    }
    list.len()
}
