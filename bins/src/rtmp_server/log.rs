//! Leveled logging to stderr in MistServer's style: `LEVEL MistOutRTMP: message`.

use std::sync::atomic::{AtomicU8, Ordering};

pub const FAIL: u8 = 1;
pub const ERROR: u8 = 2;
pub const WARN: u8 = 3;
pub const INFO: u8 = 4;
pub const MEDIUM: u8 = 5;
pub const HIGH: u8 = 6;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);

pub fn set_level(l: u8) {
    LEVEL.store(l.min(10), Ordering::Relaxed);
}

pub fn enabled(l: u8) -> bool {
    l <= LEVEL.load(Ordering::Relaxed)
}

pub fn name(l: u8) -> &'static str {
    match l {
        0 | 1 => "FAIL",
        2 => "ERROR",
        3 => "WARN",
        4 => "INFO",
        5 => "MEDIUM",
        6 => "HIGH",
        7 => "VERYHIGH",
        8 => "EXTREME",
        9 => "INSANE",
        _ => "DONTEVEN",
    }
}

macro_rules! log {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::rtmp_server::log::enabled($lvl) {
            eprintln!("{} MistOutRTMP: {}", $crate::rtmp_server::log::name($lvl), format_args!($($arg)*));
        }
    };
}
