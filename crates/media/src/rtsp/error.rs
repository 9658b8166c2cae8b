//! What can go wrong reading or handling RTSP.

/// An RTSP framing, header or session error. Framing errors are fatal for the connection (the byte
/// stream can no longer be trusted); the others are answered with the status [`RtspError::status`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtspError {
    #[error("RTSP line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("RTSP message head longer than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("more than {limit} RTSP headers")]
    TooManyHeaders { limit: usize },
    #[error("RTSP body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge { size: u64, limit: usize },
    #[error("bad RTSP start line: {0:?}")]
    BadStartLine(String),
    #[error("unsupported RTSP version {0:?}")]
    BadVersion(String),
    #[error("bad RTSP header line: {0:?}")]
    BadHeader(String),
    #[error("bad Content-Length: {0:?}")]
    BadContentLength(String),
    #[error("RTSP text is not UTF-8")]
    NotUtf8,
    #[error("missing or bad CSeq")]
    BadCSeq,
    #[error("bad Transport header: {0}")]
    BadTransport(String),
    #[error("bad {what} authentication header: {detail}")]
    BadAuth { what: &'static str, detail: String },
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
