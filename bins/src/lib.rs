//! Code that several binaries of this package share: the HTTP output's routes, muxers and the
//! standalone writer behind MistOutHTTP, MistOutTS, MistOutFLV, MistOutMP4 and MistOutEBML; and the
//! VoD file input behind MistInMP4, MistInTS, MistInFLV and MistInEBML.

#![warn(missing_docs)]

pub mod access;
pub mod conn_close;
pub mod feed;
pub mod hls_in;
pub mod http_out;
pub mod ingest;
pub mod push_out;
pub mod record;
pub mod rtsp_in;
pub mod rtsp_out;
pub mod tls_reload;
pub mod ts_live;
pub mod util;
pub mod vod_input;
