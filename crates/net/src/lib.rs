//! mist-net: the mio event loop pieces, listeners and HTTP/1.1 framing shared by the outputs and the
//! controller's API.

pub mod http;
pub mod server;
