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
//!
//! A new protocol on the runtime (each line in is answered with its length):
//!
//! ```
//! use mist_connector::{App, Io, Limits, ListenerId, Peer, Runtime, Session};
//! use std::time::Instant;
//!
//! struct LineLen; // per connection: no state needed
//! struct Counter { lines: u64 } // per process, handed to every session call
//!
//! impl Session<Counter> for LineLen {
//!     fn on_read(&mut self, app: &mut Counter, io: &mut Io<'_>) {
//!         while let Some(nl) = io.input().iter().position(|&b| b == b'\n') {
//!             io.consume(nl + 1); // a partial line stays buffered for the next call
//!             io.write(format!("{nl}\n").as_bytes());
//!             app.lines += 1;
//!         }
//!     }
//! }
//!
//! impl App for Counter {
//!     type Session = LineLen;
//!     fn accept(&mut self, _: ListenerId, _: Peer, _: Instant) -> Option<LineLen> {
//!         Some(LineLen)
//!     }
//! }
//!
//! let mut rt = Runtime::<Counter>::new()?;
//! let l = mist_connector::bind_tcp("127.0.0.1:0".parse().unwrap())?;
//! rt.listen_tcp(l, "linelen", Limits::default())?;
//! // rt.run(&mut Counter { lines: 0 })?; // until App::turn answers Flow::Stop
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]
// `unsafe` only for system calls: in `ktls`, which allows it for itself, and the one listen(2)
// of `bind`.
#![deny(unsafe_code)]

pub mod ask;
pub mod bind;
pub mod file;
pub mod idmap;
pub mod ktls;
pub mod limits;
pub mod runtime;
pub mod session;
pub mod tls;
pub mod tls_client;
pub mod tls_stream;
pub mod transport;

pub use bind::bind_tcp;
pub use file::{FileRange, FileSource};
pub use idmap::IdMap;
pub use limits::Limits;
pub use mio;
pub use runtime::{App, Ctl, Flow, Remote, Runtime};
pub use session::{ConnId, Harness, Io, ListenerId, Session};
pub use tls::{PemPair, TlsConfigHandle, TlsSettings};
pub use tls_client::TlsClientStream;
pub use transport::{OutQueue, Peer, Stream};
