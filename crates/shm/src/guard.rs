//! SIGBUS guard for mapped segments.
//!
//! A segment file that is truncated while we have it mapped (by a buggy or hostile process of the
//! same user) makes every access past the new end raise SIGBUS, which would kill the process. The
//! guard catches SIGBUS for addresses inside a registered segment mapping, maps a private zero page
//! over the faulting page and lets the access retry: the reader sees zeros (a record that does not
//! validate, an offset that does not move) instead of dying. [`faults`] counts how often that
//! happened. A SIGBUS anywhere else restores the default action and is raised again (the process
//! dies as it would have).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings tracked at most; a mapping past this is still made, just not guarded.
const SLOTS: usize = 8192;

static START: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static LEN: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static FAULTS: AtomicUsize = AtomicUsize::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();

/// How many accesses to a truncated segment the guard has absorbed.
pub fn faults() -> usize {
    FAULTS.load(Ordering::Relaxed)
}

/// Guards `[start, start+len)`; returns the slot to give to [`unregister`].
pub(crate) fn register(start: usize, len: usize) -> Option<usize> {
    if start == 0 || len == 0 {
        return None;
    }
    INSTALL.call_once(install);
    for (i, l) in LEN.iter().enumerate() {
        if l.compare_exchange(0, len, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            START[i].store(start, Ordering::Release);
            return Some(i);
        }
    }
    None
}

/// Stops guarding a mapping (before it is unmapped).
pub(crate) fn unregister(slot: usize) {
    START[slot].store(0, Ordering::Release);
    LEN[slot].store(0, Ordering::Release);
}

fn install() {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is a valid starting value; we set the handler, flags and an
    // empty mask before installing it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let inside = START.iter().zip(LEN.iter()).any(|(s, l)| {
        let s = s.load(Ordering::Acquire);
        let l = l.load(Ordering::Acquire);
        s != 0 && addr >= s && addr - s < l
    });
    let page = PAGE.load(Ordering::Relaxed);
    if inside {
        let at = addr & !(page - 1);
        // SAFETY: `at` is a page inside one of our own live mappings (registered until just
        // before it is unmapped); replacing that page with a private zero page only changes what
        // that mapping reads there. mmap is a plain system call, safe in a signal handler.
        let r = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    // Not ours (or no memory): die of the SIGBUS as without the guard.
    // SAFETY: restoring the default disposition is async-signal-safe.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}
