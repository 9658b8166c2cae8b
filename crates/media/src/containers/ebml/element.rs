//! Incremental EBML element reader: feed bytes in any chunking, get element events.
//!
//! The reader keeps a stack of open master elements with their end offsets (or none for the
//! unknown size), reads the leaves the schema asks for whole (bounded by [`Limits::max_leaf`]),
//! and discards everything else without buffering it. A master of unknown size ends where an
//! element appears whose known parent is one of its ancestors (the Matroska rule that ends a live
//! Cluster at the next Cluster), or at the end of the stream.

use bytes::{Buf, Bytes, BytesMut};

use super::vint::{read_id, read_size};
use crate::error::MediaError;

/// How the reader treats an element ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Descend into it: `Start`, the children's events, then `End`.
    Master,
    /// Read it whole and hand it over as `Leaf`.
    Leaf,
    /// Discard its bytes.
    Skip,
}

/// What the caller knows about a format's elements.
pub trait Schema {
    /// How the reader treats element `id`: descend into it, read it whole, or skip it.
    fn kind(&self, id: u32) -> Kind;
    /// The ID of the element's required parent (0 = top level), or `None` if it may appear
    /// anywhere / is not known.
    fn parent(&self, id: u32) -> Option<u32>;
}

/// Bounds on what a peer can make the reader hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest leaf element (a Block, CodecPrivate …) read whole.
    pub max_leaf: u64,
    /// Deepest nesting of masters.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_leaf: 64 << 20,
            max_depth: 16,
        }
    }
}

/// The ID and size that start an element, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The element ID, marker bits included (as in [`super::ids`]).
    pub id: u32,
    /// Payload size, `None` for unknown.
    pub size: Option<u64>,
    /// Absolute offset of the element's first ID byte.
    pub offset: u64,
    /// Bytes taken by ID and size.
    pub header_len: u8,
}

impl Header {
    /// Absolute offset of the payload.
    pub fn data_offset(&self) -> u64 {
        self.offset + self.header_len as u64
    }
}

/// What the element reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A master element opens: its children follow until the matching [`Event::End`].
    Start(Header),
    /// A leaf element and its whole payload (bounded by [`Limits`]).
    Leaf(Header, Bytes),
    /// The master with this ID closed (its size ran out, a sibling or parent started, or the
    /// input ended).
    End(u32),
}

#[derive(Debug, Clone, Copy)]
struct Open {
    id: u32,
    end: Option<u64>,
}

/// The element reader. `push` bytes, then call `next` until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Reader {
    buf: BytesMut,
    /// Absolute offset of `buf[0]`.
    pos: u64,
    stack: Vec<Open>,
    skip: u64,
    eof: bool,
    limits: Limits,
    failed: bool,
}

impl Reader {
    /// A reader at offset 0, bounded by `limits`.
    pub fn new(limits: Limits) -> Reader {
        Reader {
            buf: BytesMut::new(),
            pos: 0,
            stack: Vec::new(),
            skip: 0,
            eof: false,
            limits,
            failed: false,
        }
    }

    /// Appends input; bytes inside an element being skipped are dropped at once, never buffered.
    pub fn push(&mut self, data: &[u8]) {
        // Discard what is being skipped straight away, so skipped bytes are never buffered.
        let mut data = data;
        if self.skip > 0 && self.buf.is_empty() {
            let n = (self.skip.min(data.len() as u64)) as usize;
            self.skip -= n as u64;
            self.pos += n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks the end of the input: open masters are closed.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Absolute offset of the next byte not yet consumed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes pushed and not consumed yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Masters open around the current position.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// ID of the innermost open master, 0 at top level.
    pub fn parent_id(&self) -> u32 {
        self.stack.last().map_or(0, |o| o.id)
    }

    /// Whether any open master has this id.
    pub fn inside(&self, id: u32) -> bool {
        self.stack.iter().any(|o| o.id == id)
    }

    /// Forgets buffered bytes and resumes at `offset` (where the caller will push from next)
    /// inside the masters `open` (id, absolute end offset), outermost first.
    pub fn reset(&mut self, offset: u64, open: &[(u32, Option<u64>)]) {
        self.buf.clear();
        // Positions only grow by bytes received; a bound far above any file keeps them from
        // overflowing whatever offset a hostile Cue pointed at.
        self.pos = offset.min(1 << 62);
        self.skip = 0;
        self.eof = false;
        self.failed = false;
        self.stack.clear();
        self.stack
            .extend(open.iter().map(|&(id, end)| Open { id, end }));
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.pos += n as u64;
    }

    /// The next event, `Ok(None)` when more bytes are needed (or the input ended).
    /// After an error the reader stays failed until `reset`.
    pub fn next<S: Schema + ?Sized>(&mut self, schema: &S) -> Result<Option<Event>, MediaError> {
        if self.failed {
            return Ok(None);
        }
        let r = self.next_inner(schema);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn next_inner<S: Schema + ?Sized>(&mut self, schema: &S) -> Result<Option<Event>, MediaError> {
        loop {
            if let Some(top) = self.stack.last() {
                if top.end.is_some_and(|e| self.pos >= e) {
                    let id = top.id;
                    self.stack.pop();
                    return Ok(Some(Event::End(id)));
                }
            }
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len() as u64) as usize;
                self.consume(n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return self.starved();
                }
                continue;
            }
            let Some((id, id_len)) = read_id(&self.buf)? else {
                return self.starved();
            };
            let Some((size, size_len)) = read_size(&self.buf[id_len..])? else {
                return self.starved();
            };
            let header_len = id_len + size_len;

            // An element that belongs to an ancestor ends the open masters below that ancestor.
            // Only masters of unknown size can be ended this way.
            if let Some(p) = schema.parent(id) {
                if let Some(top) = self.stack.last() {
                    if top.id != p && top.end.is_none() && (p == 0 || self.inside(p)) {
                        let id = top.id;
                        self.stack.pop();
                        return Ok(Some(Event::End(id)));
                    }
                }
            }

            let parent_end = self.stack.last().and_then(|o| o.end);
            let end = match size {
                Some(s) => {
                    let e = self
                        .pos
                        .checked_add(header_len as u64)
                        .and_then(|x| x.checked_add(s));
                    match (e, parent_end) {
                        (Some(e), Some(pe)) if e <= pe => Some(e),
                        (Some(e), None) => Some(e),
                        _ => {
                            return Err(MediaError::malformed(
                                "EBML element",
                                format!("{id:#x} of size {s} at {} overruns its parent", self.pos),
                            ))
                        }
                    }
                }
                None => parent_end,
            };
            if parent_end.is_some_and(|pe| self.pos + header_len as u64 > pe) {
                return Err(MediaError::malformed(
                    "EBML element",
                    "header overruns its parent",
                ));
            }
            let header = Header {
                id,
                size,
                offset: self.pos,
                header_len: header_len as u8,
            };

            match schema.kind(id) {
                Kind::Master => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(MediaError::TooLarge {
                            what: "EBML nesting depth",
                            size: self.stack.len() as u64 + 1,
                            limit: self.limits.max_depth as u64,
                        });
                    }
                    self.consume(header_len);
                    self.stack.push(Open { id, end });
                    return Ok(Some(Event::Start(header)));
                }
                Kind::Leaf => {
                    let Some(s) = size.or(end.map(|e| e - self.pos - header_len as u64)) else {
                        return Err(MediaError::malformed(
                            "EBML element",
                            format!("leaf {id:#x} of unknown size"),
                        ));
                    };
                    if s > self.limits.max_leaf {
                        return Err(MediaError::TooLarge {
                            what: "EBML element",
                            size: s,
                            limit: self.limits.max_leaf,
                        });
                    }
                    let total = header_len + s as usize;
                    if self.buf.len() < total {
                        // Reserve no more than what is missing, which the bound above caps.
                        return self.starved();
                    }
                    self.consume(header_len);
                    let data = self.buf.split_to(s as usize).freeze();
                    self.pos += s;
                    return Ok(Some(Event::Leaf(header, data)));
                }
                Kind::Skip => {
                    let s = match size.or(end.map(|e| e - self.pos - header_len as u64)) {
                        Some(s) => s,
                        // Unknown size, no known end: nothing tells where it stops.
                        None => {
                            return Err(MediaError::unsupported(
                                "EBML element",
                                format!("unknown-size element {id:#x} that is not read"),
                            ))
                        }
                    };
                    self.consume(header_len);
                    self.skip = s;
                }
            }
        }
    }

    /// No complete element in the buffer: at the end of input close what is open, else wait.
    fn starved(&mut self) -> Result<Option<Event>, MediaError> {
        if !self.eof {
            return Ok(None);
        }
        if let Some(top) = self.stack.pop() {
            return Ok(Some(Event::End(top.id)));
        }
        if !self.buf.is_empty() || self.skip > 0 {
            let n = self.buf.len();
            self.consume(n);
            self.skip = 0;
            return Err(MediaError::malformed(
                "EBML stream",
                "truncated element at end of input",
            ));
        }
        Ok(None)
    }
}
