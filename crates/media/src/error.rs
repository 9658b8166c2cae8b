//! The error type shared by the parsers of this crate.

/// What went wrong while reading or writing a container or codec structure.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// More bytes are needed before anything can be decided.
    #[error("need more data")]
    NeedMore,
    /// The input breaks the format's rules; the string names what.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The structure.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The input is valid but uses something we do not handle.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// The structure.
        what: &'static str,
        /// What in it is not handled.
        detail: String,
    },
    /// A length or count exceeds the bound we accept from a peer.
    #[error("{what} too large: {size} > {limit}")]
    TooLarge {
        /// The length or count.
        what: &'static str,
        /// Its value.
        size: u64,
        /// The bound.
        limit: u64,
    },
}

impl MediaError {
    /// [`MediaError::Malformed`].
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        MediaError::Malformed {
            what,
            detail: detail.into(),
        }
    }
    /// [`MediaError::Unsupported`].
    pub fn unsupported(what: &'static str, detail: impl Into<String>) -> Self {
        MediaError::Unsupported {
            what,
            detail: detail.into(),
        }
    }
}
