//! What can go wrong reading or handling RTSP.

/// An RTSP framing, header or session error. Framing errors are fatal for the connection (the byte
/// stream can no longer be trusted); the others are answered with the status [`RtspError::status`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtspError {
    /// A line of the head is longer than the decoder's limit: not a client we can serve.
    #[error("RTSP line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The whole head is longer than the limit (memory is bounded per connection).
    #[error("RTSP message head longer than {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header lines than the limit.
    #[error("more than {limit} RTSP headers")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// `Content-Length` larger than the limit: refused before anything is buffered.
    #[error("RTSP body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// What the message announced.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// The request or status line is not `METHOD URI RTSP/1.0` / `RTSP/1.0 CODE REASON`.
    #[error("bad RTSP start line: {0:?}")]
    BadStartLine(String),
    /// Neither `RTSP/1.0` nor `RTSP/2.0` (answered 505).
    #[error("unsupported RTSP version {0:?}")]
    BadVersion(String),
    /// A header line without a colon, or with a bad name.
    #[error("bad RTSP header line: {0:?}")]
    BadHeader(String),
    /// `Content-Length` is not a number.
    #[error("bad Content-Length: {0:?}")]
    BadContentLength(String),
    /// The head is not UTF-8 text.
    #[error("RTSP text is not UTF-8")]
    NotUtf8,
    /// `CSeq` is missing or not a number: an answer could not be matched to its request.
    #[error("missing or bad CSeq")]
    BadCSeq,
    /// A `Transport` header this server cannot honour or parse.
    #[error("bad Transport header: {0}")]
    BadTransport(String),
    /// An `Authorization` or `WWW-Authenticate` header that does not parse.
    #[error("bad {what} authentication header: {detail}")]
    BadAuth {
        /// The scheme (`Basic`, `Digest`).
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A `Range` header that cannot be honoured (answered 457).
    #[error("bad Range header: {0:?}")]
    BadRange(String),
}

impl RtspError {
    /// The status a server answers with when this error comes from a request.
    pub fn status(&self) -> u16 {
        match self {
            RtspError::LineTooLong { .. } | RtspError::HeadTooLarge { .. } => 414,
            RtspError::TooManyHeaders { .. } => 400,
            RtspError::BodyTooLarge { .. } => 413,
            RtspError::BadVersion(_) => 505,
            RtspError::BadTransport(_) => 461,
            RtspError::BadRange(_) => 457,
            _ => 400,
        }
    }
}
