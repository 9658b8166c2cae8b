//! mist-net: HTTP/1.1 framing shared by the outputs and the controller's API, and the HTTP server
//! (a sans-IO session on the connector runtime) the outputs serve viewers with.

#![warn(missing_docs)]

pub mod body;
pub mod config;
pub mod http;
pub mod http_session;
pub mod server;
