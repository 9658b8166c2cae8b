//! A table of fixed-size slots shared by every process (the viewer sessions and the owed
//! CONN_CLOSEs): one segment in the shm directory, a header checked on open, and slots that a
//! process claims with a compare-and-swap and marks with its pid, so that the slots of a dead
//! process can be found and freed by another.
//!
//! A slot starts with its state ([`S_STATE`]: [`FREE`], [`CLAIMING`], [`USED`]) and its
//! owner's pid ([`S_PID`]); the rest of it is the table's own. Strings are stored truncated to
//! their capacity (on a character boundary), with their lengths in a row of `u32`s.

use crate::seg::{my_pid, pid_alive, Seg};
use crate::ShmError;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;

const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_SLOTS: usize = 12;
/// The high-water mark ([`high_mark`]).
const H_HIGH: usize = 16;
const BASE: usize = 64;

/// Offset of a slot's state (`u32`) in the slot.
pub(crate) const S_STATE: usize = 0;
/// Offset of a slot's owner pid (`u32`) in the slot.
pub(crate) const S_PID: usize = 4;

pub(crate) const FREE: u32 = 0;
pub(crate) const CLAIMING: u32 = 1;
pub(crate) const USED: u32 = 2;

/// What a table is: its file, header and slot geometry.
pub(crate) struct Layout {
    /// File name in the shm directory. Not `mist-…`: the stale-segment cleanup removes orphaned
    /// `mist-` files, and a table outlives any one process.
    pub name: &'static str,
    pub magic: u64,
    pub version: u32,
    pub slots: usize,
    /// Bytes a slot.
    pub slot: usize,
    /// What the table holds, for the error of a bad header.
    pub what: &'static str,
}

impl Layout {
    /// Segment `n`'s file: the name, then `NAME.1`, `NAME.2` … for a table that grows.
    pub fn path(&self, n: usize) -> PathBuf {
        match n {
            0 => crate::shm_dir().join(self.name),
            n => crate::shm_dir().join(format!("{}.{n}", self.name)),
        }
    }

    fn size(&self) -> usize {
        BASE + self.slots * self.slot
    }
}

/// An open table.
pub(crate) struct SlotTable {
    pub seg: Seg,
    layout: &'static Layout,
}

impl SlotTable {
    /// Opens an existing table (read-write).
    pub fn open(layout: &'static Layout) -> Result<SlotTable, ShmError> {
        SlotTable::open_segment(layout, 0)
    }

    /// Opens the table, creating it first if there is none.
    pub fn create_or_open(layout: &'static Layout) -> Result<SlotTable, ShmError> {
        SlotTable::create_or_open_segment(layout, 0)
    }

    /// Opens segment `n` of a table that grows ([`Layout::path`]).
    pub fn open_segment(layout: &'static Layout, n: usize) -> Result<SlotTable, ShmError> {
        let p = layout.path(n);
        let seg = Seg::open(&p, layout.size(), true)?;
        if seg.u64(H_MAGIC).load(Acquire) != layout.magic
            || seg.u32(H_VERSION).load(Relaxed) != layout.version
            || seg.u32(H_SLOTS).load(Relaxed) as usize != layout.slots
        {
            return Err(ShmError::Corrupt(
                p.display().to_string(),
                format!("bad {} header", layout.what),
            ));
        }
        Ok(SlotTable { seg, layout })
    }

    /// Opens segment `n`, creating it first if there is none (two processes that race to
    /// create it end up on the same file: it is linked into place whole, header written).
    pub fn create_or_open_segment(
        layout: &'static Layout,
        n: usize,
    ) -> Result<SlotTable, ShmError> {
        if let Ok(t) = SlotTable::open_segment(layout, n) {
            return Ok(t);
        }
        let p = layout.path(n);
        let _ = std::fs::create_dir_all(crate::shm_dir());
        let tmp = crate::tmp_name(&p);
        let seg = Seg::create(&tmp, layout.size())?;
        seg.u32(H_VERSION).store(layout.version, Relaxed);
        seg.u32(H_SLOTS).store(layout.slots as u32, Relaxed);
        mark_new(&seg, H_HIGH);
        seg.u64(H_MAGIC).store(layout.magic, Release);
        let r = std::fs::hard_link(&tmp, &p);
        let _ = std::fs::remove_file(&tmp);
        match r {
            Ok(()) => Ok(SlotTable {
                seg: seg.renamed(&p),
                layout,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                SlotTable::open_segment(layout, n)
            }
            Err(e) => Err(crate::seg::io_err(&p, e)),
        }
    }

    /// Slots in the table.
    pub fn slots(&self) -> usize {
        self.layout.slots
    }

    /// One past the highest slot ever claimed: every used slot is below it.
    pub fn high(&self) -> usize {
        high_mark(&self.seg, H_HIGH, self.slots())
    }

    /// Offset of slot `i` in the segment.
    pub fn slot(&self, i: usize) -> usize {
        BASE + i * self.layout.slot
    }

    /// Claims a free slot for this process: `fill` writes its fields (given the slot's offset)
    /// before it is marked used. The scan starts where this process's last claim ended
    /// (`hint`), so a slot just freed is not reused at once. `None` when every slot is taken.
    pub fn claim(&self, hint: &AtomicUsize, fill: impl FnOnce(usize)) -> Option<usize> {
        let n = self.slots();
        let from = hint.load(Relaxed);
        for i in (from..n).chain(0..from) {
            let st = self.seg.u32(self.slot(i) + S_STATE);
            if st.load(Relaxed) != FREE {
                continue;
            }
            if st
                .compare_exchange(FREE, CLAIMING, Acquire, Relaxed)
                .is_ok()
            {
                self.seg.u32(self.slot(i) + S_PID).store(my_pid(), Relaxed);
                mark_claimed(&self.seg, H_HIGH, i);
                fill(self.slot(i));
                st.store(USED, Release);
                hint.store((i + 1) % n, Relaxed);
                return Some(i);
            }
        }
        None
    }

    /// Whether slot `i` is in use by this process.
    pub fn mine(&self, i: usize) -> bool {
        i < self.slots()
            && self.seg.u32(self.slot(i) + S_STATE).load(Acquire) == USED
            && self.seg.u32(self.slot(i) + S_PID).load(Relaxed) == my_pid()
    }

    /// Frees slot `i` if this process holds it.
    pub fn release(&self, i: usize) {
        if self.mine(i) {
            self.seg.u32(self.slot(i) + S_STATE).store(FREE, Release);
        }
    }

    /// Frees the slots of dead processes, each by exactly one caller (a compare-and-swap takes
    /// it), after `f` read it; returns how many.
    pub fn reap_dead(&self, mut f: impl FnMut(usize)) -> usize {
        let mut n = 0;
        for i in 0..self.high() {
            let b = self.slot(i);
            let st = self.seg.u32(b + S_STATE);
            if st.load(Acquire) != USED || pid_alive(self.seg.u32(b + S_PID).load(Relaxed)) {
                continue;
            }
            if st.compare_exchange(USED, CLAIMING, AcqRel, Relaxed).is_ok() {
                f(i);
                st.store(FREE, Release);
                n += 1;
            }
        }
        n
    }

    /// Writes `texts` at the (offset, capacity) places `strs` of the slot at `b`, each truncated
    /// to its capacity, and their lengths from `lens` on.
    pub fn write_strs<'a>(
        &self,
        b: usize,
        lens: usize,
        strs: &[(usize, usize)],
        texts: impl IntoIterator<Item = &'a str>,
    ) {
        for (n, (text, &(off, cap))) in texts.into_iter().zip(strs).enumerate() {
            let t = trunc(text, cap);
            self.seg.write_words(b + off, t);
            self.seg
                .u32(b + lens + 4 * n)
                .store(t.len() as u32, Relaxed);
        }
    }

    /// The strings that [`SlotTable::write_strs`] wrote (lossy: a slot read while it changes
    /// hands may hold anything).
    pub fn read_strs<const N: usize>(
        &self,
        b: usize,
        lens: usize,
        strs: &[(usize, usize); N],
    ) -> [String; N] {
        std::array::from_fn(|n| {
            let (off, cap) = strs[n];
            let l = (self.seg.u32(b + lens + 4 * n).load(Relaxed) as usize).min(cap);
            String::from_utf8_lossy(&self.seg.read_words(b + off, l)).into_owned()
        })
    }
}

// A table's high-water mark: a `u32` in its header, one past the highest slot ever claimed,
// with TRACKED set. Scans stop there, so the pages of slots never used are never touched and
// stay holes in the tmpfs file, costing no memory: a scan of a whole table (2 MiB of sessions,
// 1 MiB of users per stream) would make the kernel back every page of it. A table made before
// the mark existed has zero there and is scanned whole.
const TRACKED: u32 = 1 << 31;

/// Sets the mark of a table being made: tracked, nothing claimed.
pub(crate) fn mark_new(seg: &Seg, off: usize) {
    seg.u32(off).store(TRACKED, Release);
}

/// Raises the mark over slot `i`, just claimed.
pub(crate) fn mark_claimed(seg: &Seg, off: usize, i: usize) {
    seg.u32(off).fetch_max(TRACKED | (i as u32 + 1), AcqRel);
}

/// Slots a scan must read: below the mark, or all `slots` of a table without one.
pub(crate) fn high_mark(seg: &Seg, off: usize, slots: usize) -> usize {
    match seg.u32(off).load(Acquire) {
        h if h & TRACKED != 0 => ((h & !TRACKED) as usize).min(slots),
        _ => slots,
    }
}

fn trunc(s: &str, max: usize) -> &[u8] {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s.as_bytes()[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST: Layout = Layout {
        name: "mist_slots_unit",
        magic: u64::from_le_bytes(*b"MISTUNIT"),
        version: 1,
        slots: 64,
        slot: 512,
        what: "unit",
    };

    #[test]
    fn scans_stop_at_the_highest_slot_ever_claimed() {
        crate::tests::setup();
        let t = SlotTable::create_or_open(&TEST).unwrap();
        let hint = AtomicUsize::new(0);
        assert_eq!(t.high(), 0, "a new table has no claims");
        let a = t.claim(&hint, |_| {}).unwrap();
        let b = t.claim(&hint, |_| {}).unwrap();
        let c = t.claim(&hint, |_| {}).unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(t.high(), 3);
        // Freeing does not lower it: a slot above a freed one may still be used.
        t.release(a);
        t.release(c);
        assert_eq!(t.high(), 3);
        // A dead owner's slot below the mark is found by the reaper.
        t.seg.u32(t.slot(b) + S_PID).store(0, Relaxed);
        assert_eq!(t.reap_dead(|_| {}), 1);
        // A table written before the mark existed (zero there) is scanned whole.
        t.seg.u32(H_HIGH).store(0, Relaxed);
        assert_eq!(t.high(), TEST.slots);
        let _ = std::fs::remove_file(TEST.path(0));
    }
}
