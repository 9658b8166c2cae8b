//! The HTTP(S) edge of the pull inputs (MistInHLS, MistInTS `http(s)://` sources): a blocking
//! [`ureq`] agent with rustls (the client the trigger handlers already use), connect and read
//! timeouts, and bodies capped so that a hostile or broken server cannot make this process hold
//! more than the caller allows.

use std::io::Read;
use std::time::Duration;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with a status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// No answer: DNS, connect, TLS or a timeout (ureq's words).
    #[error("{0}")]
    Transport(String),
    /// More than a playlist or segment may be: a peer must not choose our memory.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body broke off.
    #[error("reading the body: {0}")]
    Io(#[from] std::io::Error),
}

/// A small blocking HTTP client.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

/// Time to connect (and for TLS to shake hands).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence while reading an answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Http {
    /// An agent with the input's timeouts and redirect limit, shared by every fetch.
    pub fn new() -> Http {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .redirects(5)
            .user_agent(concat!("mist-rs/", env!("CARGO_PKG_VERSION")))
            .build();
        Http { agent }
    }

    fn call(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        total: Option<Duration>,
    ) -> Result<ureq::Response, FetchError> {
        let mut req = self.agent.get(url);
        if let Some((a, b)) = range {
            req = req.set("Range", &format!("bytes={a}-{b}"));
        }
        if let Some(t) = total {
            req = req.timeout(t);
        }
        match req.call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, _)) => Err(FetchError::Status(code)),
            Err(e) => Err(FetchError::Transport(e.to_string())),
        }
    }

    /// GETs `url` (the inclusive byte `range` when given) whole, at most `cap` bytes, within
    /// `total` (connect, headers and body).
    pub fn get(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        cap: usize,
        total: Duration,
    ) -> Result<Vec<u8>, FetchError> {
        let r = self.call(url, range, Some(total))?;
        if let Some(len) = r
            .header("Content-Length")
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            if len > cap as u64 {
                return Err(FetchError::TooLarge(cap));
            }
        }
        let mut body = Vec::new();
        r.into_reader()
            .take(cap as u64 + 1)
            .read_to_end(&mut body)?;
        if body.len() > cap {
            return Err(FetchError::TooLarge(cap));
        }
        // A server that ignored the Range header sent the whole resource: cut the range out.
        if let Some((a, b)) = range {
            if body.len() as u64 > b - a + 1 && body.len() as u64 > b {
                body = body[a as usize..=b as usize].to_vec();
            }
        }
        Ok(body)
    }

    /// Opens `url` as an endless body (a live TS pull): the reader fails after
    /// [`READ_TIMEOUT`] without data.
    pub fn open(&self, url: &str) -> Result<Box<dyn Read + Send + Sync>, FetchError> {
        Ok(self.call(url, None, None)?.into_reader())
    }
}
