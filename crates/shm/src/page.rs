//! Data pages: append-only files of frame records.

use crate::layout::*;
use crate::seg::Seg;
use crate::ShmError;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A mapped page. Shared by all readers of a process (see `open_cached`); frames handed out as
/// `Bytes` keep it mapped, so an unlinked (evicted) page stays readable while anyone uses it.
pub(crate) struct Page {
    pub seg: Seg,
    pub id: u64,
}

/// A frame payload inside a page, owning a reference to the mapping (for `Bytes::from_owner`).
struct Payload {
    page: Arc<Page>,
    off: usize,
    len: usize,
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        // Checked when the Payload was made (`Page::record`): inside committed bytes.
        self.page.seg.published(self.off, self.len).unwrap_or(&[])
    }
}

/// Why the record at an offset of a page cannot be read (the reader skips the rest of the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// The offset is not that of a record inside the committed bytes.
    #[error("record offset {off} outside committed {committed}")]
    Outside { off: usize, committed: usize },
    /// The record header is not inside the published bytes.
    #[error("record header")]
    Header,
    /// A payload length over `MAX_FRAME`.
    #[error("record length {0}")]
    Length(usize),
    /// The record runs past the committed bytes.
    #[error("record at {off} ends past committed {committed}")]
    PastCommitted { off: usize, committed: usize },
    /// The body of an external record is not inside the published bytes.
    #[error("record body")]
    Body,
}

/// One decoded record header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec {
    pub dts: i64,
    pub pts_off: i32,
    pub track: u32,
    pub key: bool,
    /// Offset of the payload in the page (inline records) or of the body (external records).
    pub off: usize,
    /// Payload length.
    pub len: usize,
    pub next: usize,
    /// External record: the payload's offset in the stream's source file.
    pub ext: Option<u64>,
}

impl Page {
    pub fn committed(&self) -> usize {
        self.seg.u64(P_COMMITTED).load(Acquire) as usize
    }
    pub fn sealed(&self) -> bool {
        self.seg.u32(P_FLAGS).load(Acquire) & PAGE_SEALED != 0
    }

    /// Parses the record at `off`, which must be below the committed offset `committed`.
    pub fn record(&self, off: usize, committed: usize) -> Result<Rec, RecordError> {
        if committed > self.seg.len()
            || off < PAGE_HDR
            || off & 7 != 0
            || off.saturating_add(REC_HDR) > committed
        {
            return Err(RecordError::Outside { off, committed });
        }
        let h = self
            .seg
            .published(off, REC_HDR)
            .ok_or(RecordError::Header)?;
        let rd8 = |o: usize| i64::from_ne_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
        let rd4 = |o: usize| u32::from_ne_bytes(h[o..o + 4].try_into().unwrap_or([0; 4]));
        let len = rd4(R_LEN) as usize;
        if len > MAX_FRAME {
            return Err(RecordError::Length(len));
        }
        let flags = rd4(R_FLAGS);
        let external = flags & REC_EXT != 0;
        let next = off + rec_size(if external { REC_EXT_BODY } else { len });
        if next > committed {
            return Err(RecordError::PastCommitted { off, committed });
        }
        let ext = if external {
            let b = self
                .seg
                .published(off + REC_HDR, REC_EXT_BODY)
                .ok_or(RecordError::Body)?;
            Some(u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
        } else {
            None
        };
        Ok(Rec {
            dts: rd8(R_DTS),
            pts_off: rd4(R_PTS_OFF) as i32,
            track: rd4(R_TRACK),
            key: flags & REC_KEY != 0,
            off: off + REC_HDR,
            len,
            next,
            ext,
        })
    }

    /// The payload of an inline record (empty for an external one).
    pub fn payload(self: &Arc<Page>, rec: &Rec) -> Bytes {
        if rec.len == 0 || rec.ext.is_some() {
            return Bytes::new();
        }
        Bytes::from_owner(Payload {
            page: self.clone(),
            off: rec.off,
            len: rec.len,
        })
    }

    /// Writer: creates page `id` (replacing a stale file of that name).
    pub fn create(
        path: &Path,
        id: u64,
        nonce: u64,
        epoch: u32,
        cap: usize,
        first_ms: i64,
    ) -> Result<Page, ShmError> {
        let _ = std::fs::remove_file(path);
        let seg = Seg::create(path, cap)?;
        seg.u64(P_ID).store(id, Relaxed);
        seg.u64(P_NONCE).store(nonce, Relaxed);
        seg.u32(P_EPOCH).store(epoch, Relaxed);
        seg.u64(P_CAP).store(cap as u64, Relaxed);
        seg.i64(P_FIRST_MS).store(first_ms, Relaxed);
        seg.u64(P_COMMITTED).store(PAGE_HDR as u64, Relaxed);
        seg.u64(P_MAGIC).store(MAGIC_PAGE, Release);
        Ok(Page { seg, id })
    }

    /// Opens (read-write, for sealing) a page of a dead writer.
    pub fn open_rw(path: &Path) -> Result<Page, ShmError> {
        let seg = Seg::open(path, PAGE_HDR, true)?;
        let id = seg.u64(P_ID).load(Relaxed);
        Ok(Page { seg, id })
    }

    fn open(path: &Path, id: u64, nonce: u64) -> Result<Page, ShmError> {
        let seg = Seg::open(path, PAGE_HDR, false)?;
        let bad = |w: &str| ShmError::Corrupt(path.display().to_string(), w.to_string());
        if seg.u64(P_MAGIC).load(Acquire) != MAGIC_PAGE {
            return Err(bad("bad page magic"));
        }
        if seg.u64(P_ID).load(Relaxed) != id || seg.u64(P_NONCE).load(Relaxed) != nonce {
            return Err(bad("page belongs to another stream incarnation"));
        }
        Ok(Page { seg, id })
    }
}

type Cache = Mutex<HashMap<PathBuf, Weak<Page>>>;
fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Maps a page for reading, sharing one mapping per process.
pub(crate) fn open_cached(path: &Path, id: u64, nonce: u64) -> Result<Arc<Page>, ShmError> {
    use std::os::unix::fs::MetadataExt;
    // The file must still exist under this name (an evicted page is gone for new readers), and be
    // the same file as the cached mapping.
    let ino = std::fs::metadata(path)
        .map_err(|e| crate::seg::io_err(path, e))?
        .ino();
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = c.get(path).and_then(Weak::upgrade) {
        if p.id == id && p.seg.ino == ino && p.seg.u64(P_NONCE).load(Relaxed) == nonce {
            return Ok(p);
        }
    }
    let p = Arc::new(Page::open(path, id, nonce)?);
    if c.len() > 256 {
        c.retain(|_, w| w.strong_count() > 0);
    }
    c.insert(path.to_owned(), Arc::downgrade(&p));
    Ok(p)
}
