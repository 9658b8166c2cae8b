//! mist-connector: the runtime under every MistIn/MistOut process and the controller.
//!
//! One mio event loop ([`Runtime`]) owns the listeners (TCP, Unix, UDP), the connections and
//! their output queues, timers and wake-ups. A protocol is a sans-IO [`Session`]: bytes in,
//! bytes out, time passed in. The runtime fences every call into session code with
//! `catch_unwind`, so a panic closes one connection and is logged with the peer address.
//! Each listener has its own [`Limits`]: connection caps (total and per remote address), input
//! and output bounds (slow-viewer cut), a per-turn read budget and timeouts.
//!
//! [`ask`] runs requests to the controller off the loop with a bounded number in flight.

pub mod ask;
pub mod limits;
pub mod runtime;
pub mod session;
pub mod transport;

pub use limits::Limits;
pub use runtime::{App, Ctl, Flow, Remote, Runtime};
pub use session::{ConnId, Harness, Io, ListenerId, Session};
pub use transport::{OutQueue, Peer, Stream};
