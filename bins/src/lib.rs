//! Code that several binaries of this package share: the HTTP output's routes, muxers and the
//! standalone writer behind MistOutHTTP, MistOutTS, MistOutFLV, MistOutMP4 and MistOutEBML.

pub mod http_out;
