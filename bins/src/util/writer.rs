//! MistUtilWriter: copies stdin to a file or an HTTP PUT.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit code: written (file complete, or the HTTP server answered 2xx).
pub const EXIT_OK: i32 = 0;
/// Exit code: bad or unsupported URL.
pub const EXIT_USAGE: i32 = 1;
/// Exit code: the write failed (I/O error, connection failure, or an HTTP answer other than 2xx).
pub const EXIT_FAILED: i32 = 2;

/// Where stdin goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A file (`PATH` or `file://PATH`).
    File(PathBuf),
    /// An HTTP PUT.
    Http {
        /// Host to connect to.
        host: String,
        /// Port (80 unless given).
        port: u16,
        /// Path and query.
        path: String,
    },
}

/// Why the copy failed (the exit code tells usage from failure).
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Not a target the writer knows.
    #[error("unsupported URL {0:?} (a file path, file://PATH or http://HOST[:PORT]/PATH)")]
    Unsupported(String),
    /// Opening, reading or writing failed: what, and the error.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The HTTP server refused the PUT.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The HTTP server's answer is not HTTP.
    #[error("bad answer from the server: {0}")]
    BadAnswer(String),
}

impl WriterError {
    /// [`EXIT_USAGE`] or [`EXIT_FAILED`], as the man page lists them.
    pub fn exit_code(&self) -> i32 {
        match self {
            WriterError::Unsupported(_) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// Parses a target: a path, `file://PATH` or `http://HOST[:PORT]/PATH`.
pub fn parse_target(url: &str) -> Result<Target, WriterError> {
    if let Some(p) = url.strip_prefix("file://") {
        return Ok(Target::File(PathBuf::from(p)));
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse() {
                Ok(p) => (h, p),
                Err(_) if hostport.starts_with('[') && hostport.ends_with(']') => (hostport, 80),
                Err(_) => return Err(WriterError::Unsupported(url.into())),
            },
            _ => (hostport, 80),
        };
        if host.is_empty() {
            return Err(WriterError::Unsupported(url.into()));
        }
        return Ok(Target::Http {
            host: host.to_string(),
            port,
            path: path.to_string(),
        });
    }
    if url.is_empty() || url.contains("://") {
        return Err(WriterError::Unsupported(url.into()));
    }
    Ok(Target::File(PathBuf::from(url)))
}

/// Copies `input` into the file (parent directories created; truncated unless `append`).
pub fn write_file(mut input: impl Read, path: &Path, append: bool) -> Result<u64, WriterError> {
    let io = |e| WriterError::Io(path.display().to_string(), e);
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(io)?;
    let n = std::io::copy(&mut input, &mut f).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(n)
}

/// PUTs `input` to the server with chunked transfer encoding; Ok(bytes) on a 2xx answer.
pub fn put(mut input: impl Read, host: &str, port: u16, path: &str) -> Result<u64, WriterError> {
    let what = format!("http://{host}:{port}{path}");
    let io = |e| WriterError::Io(what.clone(), e);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| io(std::io::Error::other("no address")))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    s.set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let host_hdr = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host_hdr}\r\nUser-Agent: MistUtilWriter/{}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut total = 0u64;
    let sent: std::io::Result<()> = (|| {
        s.write_all(head.as_bytes())?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            s.write_all(format!("{n:x}\r\n").as_bytes())?;
            s.write_all(&buf[..n])?;
            s.write_all(b"\r\n")?;
            total += n as u64;
        }
        s.write_all(b"0\r\n\r\n")
    })();
    // The server may answer (and close) early, e.g. 405 or 413: its status is the better error.
    let mut answer = Vec::new();
    let _ = (&s).take(64 << 10).read_to_end(&mut answer);
    let status = super::client::split_http(&answer).ok().map(|(st, _)| st);
    match (status, sent) {
        (Some(st), Ok(())) if (200..300).contains(&st) => Ok(total),
        (Some(st), _) if !(200..300).contains(&st) => Err(WriterError::Status(st)),
        (_, Err(e)) => Err(io(e)),
        (None, Ok(())) => Err(WriterError::BadAnswer(format!(
            "{} bytes without an HTTP status",
            answer.len()
        ))),
        (Some(_), Ok(())) => unreachable!("2xx handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("/a/b.ts").unwrap(),
            Target::File("/a/b.ts".into())
        );
        assert_eq!(
            parse_target("rel.ts").unwrap(),
            Target::File("rel.ts".into())
        );
        assert_eq!(
            parse_target("file:///x").unwrap(),
            Target::File("/x".into())
        );
        assert_eq!(
            parse_target("http://h:8080/up/x.ts").unwrap(),
            Target::Http {
                host: "h".into(),
                port: 8080,
                path: "/up/x.ts".into()
            }
        );
        assert_eq!(
            parse_target("http://h").unwrap(),
            Target::Http {
                host: "h".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            parse_target("http://[::1]:81/x").unwrap(),
            Target::Http {
                host: "[::1]".into(),
                port: 81,
                path: "/x".into()
            }
        );
        for bad in [
            "",
            "https://h/x",
            "s3://b/k",
            "http://:80/x",
            "http://h:port/x",
        ] {
            assert!(
                matches!(parse_target(bad), Err(WriterError::Unsupported(_))),
                "{bad}"
            );
        }
    }
}
