//! Answer bodies and heads: bodies of known length pulled as the socket drains ([`Body`]),
//! bodies kept in a file and sent with `sendfile(2)` ([`FileBody`]), single `Range` requests and
//! the headers every answer carries.

use crate::http::Response;
use bytes::Bytes;
use mist_connector::FileSource;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

/// A body of known length produced on demand
/// ([`Io::respond_body`](crate::http_session::Io::respond_body)): the server asks for the
/// next bytes whenever less than [`BODY_LOW`] bytes are queued, so a large answer never sits in
/// memory whole.
pub trait Body: Send {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Whether the body is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes from `offset` on, about `max` of them (more is cut off, fewer is fine; nothing
    /// before the end ends the answer and closes the connection).
    fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes>;
    /// A body kept in a file is sent with `sendfile(2)` instead of [`read`](Body::read).
    fn file(&self) -> Option<&FileBody> {
        None
    }
}

/// A body kept in a file and sent with `sendfile(2)`: the kernel hands the file's pages to the
/// socket, with no copy through user space. Cheap to clone (the file is shared).
#[derive(Clone)]
pub struct FileBody {
    file: Arc<std::fs::File>,
    /// Bytes of the body (after the head, if any).
    len: u64,
    /// The answer whose head is stored in the file before the body (see [`FileBody::answer`]).
    head: Option<Arc<(Response, u64)>>,
}

impl FileBody {
    /// Copies `bytes` once into an anonymous in-memory file (`memfd_create`), to be sent to any
    /// number of sockets without further copies.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> io::Result<FileBody> {
        let mut file = memfd(name)?;
        file.write_all(bytes)?;
        Ok(FileBody {
            file: Arc::new(file),
            len: bytes.len() as u64,
            head: None,
        })
    }

    /// Like [`from_bytes`](FileBody::from_bytes), with the whole keep-alive answer `resp` stored:
    /// its head before the body in the file.
    /// [`Io::respond_file`](crate::http_session::Io::respond_file) then answers a plain GET
    /// with one `sendfile(2)` of head and body, and no per-request head to build or send.
    pub fn answer(name: &str, resp: Response, bytes: &[u8]) -> io::Result<FileBody> {
        // The stored head is only sent on keep-alive connections, so it must say so.
        let resp = resp.keep_alive(true);
        let head = standard_head(resp.clone(), 0, bytes.len() as u64);
        let mut file = memfd(name)?;
        file.write_all(&head)?;
        file.write_all(bytes)?;
        Ok(FileBody {
            file: Arc::new(file),
            len: bytes.len() as u64,
            head: Some(Arc::new((resp, head.len() as u64))),
        })
    }

    /// Sends body bytes `pos..end` to `sock` (one `sendfile(2)`). Returns the bytes sent
    /// (`WouldBlock` is an `Err`).
    fn send_to(&self, sock: BorrowedFd<'_>, pos: u64, end: u64) -> io::Result<usize> {
        let skip = self.head.as_ref().map_or(0, |h| h.1);
        let mut off = (pos + skip) as libc::off_t;
        let count = (end - pos).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the duration of the call (the socket is borrowed,
        // the file is held by `self`); `off` is a valid off_t the kernel updates.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), self.file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The answer stored by [`FileBody::answer`].
    pub(crate) fn stored_response(&self) -> Option<Response> {
        self.head.as_ref().map(|h| h.0.clone())
    }

    /// The stored head and body as one body (for `Io::respond_file`).
    pub(crate) fn whole(&self) -> Option<FileBody> {
        let h = self.head.as_ref()?;
        Some(FileBody {
            file: self.file.clone(),
            len: h.1 + self.len,
            head: None,
        })
    }
}

/// An anonymous in-memory file (`memfd_create`).
fn memfd(name: &str) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name.replace('\0', "_"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd it returns is owned by
    // the File created right after (and only then).
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// The head of a [`Body`] answer: `resp` with the common headers, `Accept-Ranges` and a
/// `Content-Length` of `start..end`.
pub(crate) fn standard_head(resp: Response, start: u64, end: u64) -> Vec<u8> {
    let mut head = common_headers(resp).header("Accept-Ranges", "bytes");
    head.body = Vec::new();
    let mut h = head.head_bytes();
    let cl = format!("Content-Length: {}\r\n", end - start);
    if let Some(p) = find(&h, b"Content-Length: 0\r\n") {
        h.splice(p..p + 19, cl.bytes());
    }
    h
}

impl Body for FileBody {
    fn len(&self) -> u64 {
        self.len
    }
    fn read(&mut self, offset: u64, max: usize) -> Vec<Bytes> {
        use std::os::unix::fs::FileExt;
        let n = (self.len.saturating_sub(offset)).min(max as u64) as usize;
        let mut buf = vec![0; n];
        let skip = self.head.as_ref().map_or(0, |h| h.1);
        match self.file.read_exact_at(&mut buf, offset + skip) {
            Ok(()) => vec![Bytes::from(buf)],
            Err(_) => Vec::new(),
        }
    }
    fn file(&self) -> Option<&FileBody> {
        Some(self)
    }
}

impl FileSource for FileBody {
    fn send(&self, sock: BorrowedFd<'_>, pos: u64, end: u64) -> io::Result<usize> {
        self.send_to(sock, pos, end)
    }
    fn send_before(&self, sock: BorrowedFd<'_>, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        send_more(sock, slices)
    }
    fn read(&self, pos: u64, max: usize) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let n = (self.len.saturating_sub(pos)).min(max as u64) as usize;
        let mut buf = vec![0; n];
        let skip = self.head.as_ref().map_or(0, |h| h.1);
        self.file.read_exact_at(&mut buf, pos + skip)?;
        Ok(Bytes::from(buf))
    }
}

/// `sendmsg(2)` of `slices` with `MSG_MORE` (more data follows at once).
fn send_more(sock: BorrowedFd<'_>, slices: &[IoSlice]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid; msg_iov points at `slices`, whose IoSlice layout is
    // guaranteed to match iovec, and it outlives the call.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = slices.len() as _;
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Queued bytes below which a [`Body`] is asked for more.
pub const BODY_LOW: usize = 512 << 10;
/// How much is asked of a [`Body`] at once.
pub(crate) const BODY_STEP: usize = 256 << 10;

/// Common headers on every answer.
pub(crate) fn common_headers(r: Response) -> Response {
    r.header("Access-Control-Allow-Origin", "*")
        .header("Server", concat!("mist-rs/", env!("CARGO_PKG_VERSION")))
}

/// A `Range` that cannot be satisfied (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// Parses a single `bytes=a-b` range against a body length: `Ok(None)` when absent or not a
/// single bytes range (answer 200), `Err(Unsatisfiable)` when unsatisfiable (416).
pub fn parse_range(h: &str, len: usize) -> Result<Option<(usize, usize)>, Unsatisfiable> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: usize = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let s: usize = a.parse().map_err(|_| Unsatisfiable)?;
        let e = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<usize>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        (s, e)
    };
    if len == 0 || start >= len || end < start {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

pub(crate) fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    h.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 100), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(Unsatisfiable));
    }
}
