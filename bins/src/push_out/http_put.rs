//! `http(s)://…/x.EXT` pushes: one HTTP/1.1 `PUT` whose body is the stream, sent in chunks
//! (`Transfer-Encoding: chunked`, the length is not known in advance). The server's answer is
//! read when the body is complete (or when a write fails, for the reason); it must be 2xx.

use std::io::{self, Read, Write};
use std::time::Duration;

/// The connection under the request: TCP or TLS.
pub trait Conn: Read + Write + Send {
    /// Sets how long a read may wait.
    fn read_timeout(&mut self, t: Duration);
}

impl Conn for std::net::TcpStream {
    fn read_timeout(&mut self, t: Duration) {
        let _ = self.set_read_timeout(Some(t));
    }
}

impl Conn for super::tls::TlsStream {
    fn read_timeout(&mut self, t: Duration) {
        let _ = self.sock.set_read_timeout(Some(t));
    }
}

/// Body bytes gathered before a chunk is sent.
const CHUNK: usize = 64 << 10;

/// The request head of a chunked PUT.
pub fn request_head(path: &str, authority: &str, content_type: &str) -> String {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: mist-rs/{}\r\n\
         Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// One chunk of a chunked body (`data` not empty: an empty chunk ends the body).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

/// The last chunk.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A response whose first line is no HTTP/1.x status line (the line, trimmed).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an HTTP answer: {0:?}")]
pub struct NotHttp(pub String);

/// The status code of a response's first line (`HTTP/1.1 201 Created`), once that line is
/// complete.
pub fn status_code(head: &[u8]) -> Option<Result<u16, NotHttp>> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    Some(match code.parse::<u16>() {
        Ok(c) if proto.starts_with("HTTP/1.") => Ok(c),
        _ => Err(NotHttp(line.trim().to_string())),
    })
}

/// A PUT in progress.
pub struct HttpPut {
    conn: Box<dyn Conn>,
    buf: Vec<u8>,
    /// The first line of the answer, once read.
    answer: Option<String>,
}

impl HttpPut {
    /// Sends the request head.
    pub fn start(
        mut conn: Box<dyn Conn>,
        path: &str,
        authority: &str,
        content_type: &str,
    ) -> Result<HttpPut, super::PushOutError> {
        conn.write_all(request_head(path, authority, content_type).as_bytes())
            .and_then(|_| conn.flush())
            .map_err(|source| super::PushOutError::Put {
                path: path.to_string(),
                source,
            })?;
        mist_core::info!("PUT {path} to {authority}");
        Ok(HttpPut {
            conn,
            buf: Vec::with_capacity(CHUNK),
            answer: None,
        })
    }

    /// Reads the answer's status (waiting at most `wait`). `Ok(None)`: none came.
    fn read_status(&mut self, wait: Duration) -> io::Result<Option<u16>> {
        self.conn.read_timeout(wait);
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while head.len() < 8192 {
            match self.conn.read(&mut b) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&b[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
            if let Some(s) = status_code(&head) {
                let line = String::from_utf8_lossy(&head);
                self.answer = line.lines().next().map(str::to_string);
                return s
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(None)
    }

    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let c = chunk(&self.buf);
        self.buf.clear();
        if let Err(e) = self.conn.write_all(&c) {
            // The server may have answered (and closed) with the reason.
            if let Ok(Some(code)) = self.read_status(Duration::from_millis(500)) {
                return Err(io::Error::other(format!(
                    "the server answered {code} ({})",
                    self.answer.clone().unwrap_or_default()
                )));
            }
            return Err(e);
        }
        Ok(())
    }
}

impl Write for HttpPut {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send_chunk()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_chunk()?;
        self.conn.flush()
    }
}

impl super::Sink for HttpPut {
    /// The last chunk, then the answer must be 2xx.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        self.conn.write_all(LAST_CHUNK)?;
        self.conn.flush()?;
        match self.read_status(Duration::from_secs(10))? {
            Some(c) if (200..300).contains(&c) => Ok(()),
            Some(c) => Err(io::Error::other(format!(
                "the server answered {c} ({})",
                self.answer.clone().unwrap_or_default()
            ))),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the server",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
        assert_eq!(chunk(&[0u8; 300])[..5], *b"12c\r\n");
        let h = request_head("/up/x.ts", "h:8080", "video/mp2t");
        assert!(h.starts_with("PUT /up/x.ts HTTP/1.1\r\nHost: h:8080\r\n"));
        assert!(h.contains("\r\nTransfer-Encoding: chunked\r\n"));
        assert!(h.ends_with("\r\n\r\n"));
    }

    #[test]
    fn answers() {
        assert_eq!(status_code(b"HTTP/1.1 201 Created\r\n"), Some(Ok(201)));
        assert_eq!(
            status_code(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n"),
            Some(Ok(200))
        );
        assert_eq!(status_code(b"HTTP/1.1 20"), None);
        assert!(status_code(b"SSH-2.0-x\r\n").unwrap().is_err());
        assert!(status_code(b"HTTP/1.1 abc\r\n").unwrap().is_err());
    }
}
