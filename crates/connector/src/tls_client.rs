//! The client side of TLS as a [`crate::Stream`]: a rustls client connection over a non-blocking
//! TCP socket this process connected, for [`crate::Runtime::adopt`] (pushes to `rtmps://`).
//!
//! The transport is the one the server side uses ([`TlsTransport`]): the ClientHello leaves on
//! the first writable event, plaintext the session queues meanwhile is held by rustls and leaves
//! once the handshake is done, a handshake not done by the deadline is closed by the runtime's
//! sweep. What is particular to this side is where a failure goes: a session's `on_close` sees
//! only that the connection is gone, so why it failed (a certificate that is not trusted, an
//! alert) is kept in [`TlsClientStream::error_slot`] for it to read.

use crate::tls_stream::{TlsSide, TlsTransport};
use mio::net::TcpStream;
use rustls::client::ClientConnectionData;
use rustls::ClientConnection;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a client stream leaves the reason it failed.
pub type ErrorSlot = Arc<Mutex<Option<String>>>;

/// The client side of a [`TlsTransport`]: the first failure is kept in an [`ErrorSlot`].
pub struct ClientSide {
    error: ErrorSlot,
}

impl ClientSide {
    fn fail(&mut self, why: String) {
        if let Ok(mut e) = self.error.lock() {
            e.get_or_insert(why);
        }
    }
}

impl TlsSide for ClientSide {
    type Data = ClientConnectionData;
    type Conn = ClientConnection;

    fn refused(&mut self, _handshaking: bool, e: &rustls::Error) {
        self.fail(format!("TLS: {e}"));
    }

    fn closed_in_handshake(&mut self) {
        self.fail("TLS: the server closed the connection during the handshake".into());
    }

    fn timed_out(&mut self) {
        self.fail("TLS handshake timeout".into());
    }
}

/// A client-side TLS connection over TCP: reads and writes carry plaintext.
pub type TlsClientStream = TlsTransport<ClientSide>;

impl TlsClientStream {
    /// Wraps a connected non-blocking socket; the handshake must be over by `deadline`.
    pub fn new(tcp: TcpStream, conn: ClientConnection, deadline: Instant) -> TlsClientStream {
        let side = ClientSide {
            error: Arc::new(Mutex::new(None)),
        };
        TlsTransport::with_side(tcp, conn, deadline, side)
    }

    /// Where the reason of a TLS failure is left (read it after the connection closed).
    pub fn error_slot(&self) -> ErrorSlot {
        self.side.error.clone()
    }
}
