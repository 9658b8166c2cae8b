//! RTP and RTCP (RFC 3550), sans-IO: packet parsing and building, a bounded reorder buffer, RTCP
//! sender-report clock mapping, and per-codec depacketisers and packetisers.
//!
//! Receiving: datagrams (or interleaved frames) → [`Packet::parse`] → [`ReorderBuffer`] →
//! [`Depacketizer::push`] → [`Depacketizer::pull`] gives [`AccessUnit`]s in the track's canonical
//! form (4-byte length-prefixed NAL units for H.264/HEVC, raw AAC access units, …) stamped with
//! the RTP time; [`Timeline`] turns RTP times into milliseconds, anchored on RTCP sender reports
//! when there are any; [`Reception`] keeps the loss and jitter counts of RTCP receiver reports.
//!
//! Sending: [`Packetizer::packetize`] turns one frame into packets of at most the given MTU.

mod aac;
mod depacketizer;
mod h26x;
mod jitter;
mod packet;
mod packetizer;
mod reception;
pub mod rtcp;
mod timeline;

pub use depacketizer::{AccessUnit, Depacketizer};
pub use jitter::ReorderBuffer;
pub use packet::{Packet, PacketBuilder};
pub use packetizer::Packetizer;
pub use reception::Reception;
pub use timeline::Timeline;

/// What can be wrong with RTP or RTCP input.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its headers say.
    #[error("RTP/RTCP packet truncated")]
    Truncated,
    /// Not version 2: usually not RTP at all (a STUN or DTLS packet on a shared port).
    #[error("RTP/RTCP version {0} (only 2 exists)")]
    BadVersion(u8),
    /// A padding count of 0 or longer than the payload.
    #[error("bad RTP/RTCP padding")]
    BadPadding,
    /// A payload format's framing is broken (its own headers contradict the packet).
    #[error("malformed {what} payload: {detail}")]
    Malformed {
        /// The payload format (`H.264`, `AAC` …).
        what: &'static str,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// Valid, but a feature of the payload format that is not implemented (e.g. interleaving).
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// The payload format.
        what: &'static str,
        /// The feature.
        detail: &'static str,
    },
    /// An access unit grew past [`MAX_ACCESS_UNIT`]; it is dropped rather than allocated.
    #[error("access unit larger than {limit} bytes")]
    TooLarge {
        /// The limit it passed.
        limit: usize,
    },
}

/// Largest access unit a depacketiser assembles; beyond it the unit is dropped.
pub const MAX_ACCESS_UNIT: usize = 8 * 1024 * 1024;

/// `a` minus `b` as a signed distance on the 16-bit sequence circle.
pub fn seq_diff(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}
