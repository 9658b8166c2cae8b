//! RTSP (RFC 2326, and the RFC 7826 subset ffmpeg, GStreamer and IP cameras use), sans-IO.
//!
//! Bytes from a connection go into a [`Decoder`], which yields [`Item`]s: whole requests and
//! responses, or `$`-interleaved binary frames (RTP/RTCP over the RTSP TCP connection). A server
//! feeds each request to a [`ServerSession`], which answers what it can itself and asks the IO edge
//! (through [`Step::Ask`]) for what only the edge knows: the SDP of a stream, whether a push is
//! accepted, the UDP ports it opened, where playback starts.
//!
//! ```text
//! socket bytes ─▶ Decoder ─▶ Item::Message(Request) ─▶ ServerSession::handle ─▶ Step::Reply(Response)
//!                        └─▶ Item::Interleaved{channel,data} ─▶ (RTP/RTCP of a SETUP track)   └▶ Step::Ask(..) ─▶ edge ─▶ ServerSession::answer
//! ```
//!
//! Everything a peer sends is bounded: header count, line length, head size and `Content-Length`
//! (see [`Limits`]); interleaved frames are at most 65 535 bytes by construction.

pub mod auth;
pub mod client;
mod error;
pub mod message;
pub mod range;
pub mod server;
pub mod transport;

pub use auth::{
    AuthCheck, Authenticator, BasicCredentials, DigestChallenge, DigestCredentials, ReplayGuard,
};
pub use client::{Client, ClientError, ClientEvent, RtspUrl};
pub use error::RtspError;
pub use message::{Decoder, Headers, Item, Limits, Message, Method, Request, Response, Version};
pub use range::{npt_range, npt_start_ms};
pub use server::{Answer, Ask, PlayInfo, ServerConfig, ServerSession, SessionEvent, Step};
pub use transport::{Lower, Transport};
