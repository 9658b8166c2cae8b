//! File ranges in an output queue: bytes the kernel sends from a file to the socket
//! (`sendfile(2)`), so a large answer stored once (a segment, a memfd) reaches any number of
//! connections with no copy through user space.
//!
//! The system calls live with the file's owner (this crate has no `unsafe`): a [`FileSource`]
//! sends a range to a socket descriptor, and the queue calls it when a range reaches its head.
//! Streams without a descriptor (TLS later, in-memory tests) get the bytes through
//! [`FileSource::read`].

use bytes::Bytes;
use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// A file whose ranges can be sent to a socket.
pub trait FileSource: Send + Sync {
    /// Sends bytes `pos..end` to `sock` (non-blocking); returns how many were sent. `Ok(0)`
    /// means the file is shorter than promised.
    fn send(&self, sock: BorrowedFd<'_>, pos: u64, end: u64) -> io::Result<usize>;
    /// Writes `slices` (the bytes queued just before a range of this file) to `sock`, telling the
    /// kernel that more follows at once (`MSG_MORE`), so a small head shares the body's first
    /// packet. Returns the bytes written.
    fn send_before(&self, sock: BorrowedFd<'_>, slices: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Reads up to `max` bytes from `pos` (for streams without a descriptor). Empty: the file is
    /// shorter than promised.
    fn read(&self, pos: u64, max: usize) -> io::Result<Bytes>;
}

/// Bytes `pos..end` of a shared file, queued on a connection.
#[derive(Clone)]
pub struct FileRange {
    /// The file.
    pub src: Arc<dyn FileSource>,
    /// First byte still to send.
    pub pos: u64,
    /// One past the last byte.
    pub end: u64,
}

impl FileRange {
    /// Bytes left to send.
    pub fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.pos)
    }
}
