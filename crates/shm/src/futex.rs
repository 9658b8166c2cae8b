//! The futex system calls on words in shared mappings: wait, wake, and wait on many words
//! (`futex_waitv`). [`crate::meta::Meta`] and [`crate::Waiter`] build on them.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// FUTEX_WAIT (shared, not PRIVATE: the word lives in a MAP_SHARED file mapping).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 4-byte atomic that outlives the call; FUTEX_WAIT only
    // reads it; `tsp` is null or points to a timespec on this stack frame.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// FUTEX_WAKE all waiters.
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 4-byte atomic; FUTEX_WAKE does not access user memory
    // beyond looking up the futex key of the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}
const FUTEX2_SIZE_U32: u32 = 2;
const SYS_FUTEX_WAITV: libc::c_long = 449; // same number on x86_64 and the generic table (aarch64)

/// futex_waitv (Linux 5.16+). Returns false if the kernel lacks it.
pub(crate) fn waitv(words: &[(&AtomicU32, u32)], timeout: Duration) -> bool {
    let v: Vec<FutexWaitv> = words
        .iter()
        .map(|(w, val)| FutexWaitv {
            val: *val as u64,
            uaddr: w.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let mut dl_ns = now.tv_nsec as u64 + timeout.subsec_nanos() as u64;
    let mut dl_s = now.tv_sec as u64 + timeout.as_secs().min(1 << 31) + dl_ns / 1_000_000_000;
    dl_ns %= 1_000_000_000;
    if dl_s > i64::MAX as u64 {
        dl_s = i64::MAX as u64;
    }
    let dl = libc::timespec {
        tv_sec: dl_s as libc::time_t,
        tv_nsec: dl_ns as libc::c_long,
    };
    // SAFETY: `v` is a valid array of futex_waitv structs whose addresses point to live aligned
    // 4-byte atomics (the caller holds the mappings); `dl` is a valid absolute timespec.
    let r = unsafe {
        libc::syscall(
            SYS_FUTEX_WAITV,
            v.as_ptr(),
            v.len() as libc::c_uint,
            0u32,
            &dl as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}
