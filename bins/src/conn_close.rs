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
        mist_core::warn!(
            "CONN_CLOSE of {peer} on {stream} is not covered should this process die (connections table full)"
        );
        return;
    };
    owed()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((stream.into(), peer.into(), connector.into(), url.into()))
        .or_default()
        .push(slot);
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
