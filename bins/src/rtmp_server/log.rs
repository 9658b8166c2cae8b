//! Logging goes through `mist_core::log` (`LEVEL MistOutRTMP: message` on stderr); these names keep
//! the call sites short.

pub use mist_core::log::Level;

pub const FAIL: Level = Level::Fail;
pub const WARN: Level = Level::Warn;
pub const INFO: Level = Level::Info;
pub const MEDIUM: Level = Level::Medium;
pub const HIGH: Level = Level::High;

pub fn set_level(level: u8) {
    mist_core::log::init("MistOutRTMP", level);
}

macro_rules! log {
    ($lvl:expr, $($arg:tt)*) => {
        mist_core::log::emit($lvl, format_args!($($arg)*))
    };
}
