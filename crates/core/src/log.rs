//! Leveled logging to stderr, one line per message: `LEVEL Binary: message`.
//!
//! Levels use MistServer's debug numbers (`-g`): 0 none, 1 FAIL, 2 ERROR, 3 WARN, 4 INFO (default),
//! 5 MEDIUM, 6 HIGH, 7 VERYHIGH, 8 EXTREME, 9 INSANE, 10 DONTEVEN. A message is printed when its level
//! number is at most the configured one. The controller reads its children's stderr and parses these
//! lines back with [`parse_line`].

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    Fail = 1,
    Error = 2,
    Warn = 3,
    Info = 4,
    Medium = 5,
    High = 6,
    VeryHigh = 7,
    Extreme = 8,
    Insane = 9,
    DontEven = 10,
}

impl Level {
    pub const ALL: [Level; 10] = [
        Level::Fail,
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Medium,
        Level::High,
        Level::VeryHigh,
        Level::Extreme,
        Level::Insane,
        Level::DontEven,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Fail => "FAIL",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::VeryHigh => "VERYHIGH",
            Level::Extreme => "EXTREME",
            Level::Insane => "INSANE",
            Level::DontEven => "DONTEVEN",
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }

    /// Parses a level word; also accepts MistServer's `DEVEL` (= INFO), `DEBUG` (= MEDIUM) and
    /// `WARNING`/`CRIT`.
    pub fn from_word(w: &str) -> Option<Level> {
        Some(match w {
            "FAIL" | "CRIT" | "FATAL" => Level::Fail,
            "ERROR" | "ERR" => Level::Error,
            "WARN" | "WARNING" => Level::Warn,
            "INFO" | "DEVEL" => Level::Info,
            "MEDIUM" | "DEBUG" => Level::Medium,
            "HIGH" => Level::High,
            "VERYHIGH" => Level::VeryHigh,
            "EXTREME" => Level::Extreme,
            "INSANE" => Level::Insane,
            "DONTEVEN" => Level::DontEven,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default debug level (MistServer's development default).
pub const DEFAULT_LEVEL: u8 = 4;

static LEVEL: AtomicU8 = AtomicU8::new(DEFAULT_LEVEL);
static NAME: OnceLock<String> = OnceLock::new();
type Hook = Box<dyn Fn(Level, &str) + Send + Sync>;
static HOOK: OnceLock<Hook> = OnceLock::new();

/// Sets the binary name shown in every line (first call wins) and the debug level.
pub fn init(binary: &str, level: u8) {
    let _ = NAME.set(binary.to_string());
    set_level(level);
}

pub fn set_level(level: u8) {
    LEVEL.store(level.min(10), Ordering::Relaxed);
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

pub fn enabled(l: Level) -> bool {
    l.number() <= level()
}

/// Installs a function that also receives every printed message (the controller keeps them for
/// its `log` API command). First call wins.
pub fn set_hook(f: impl Fn(Level, &str) + Send + Sync + 'static) {
    let _ = HOOK.set(Box::new(f));
}

pub fn binary_name() -> &'static str {
    NAME.get().map(String::as_str).unwrap_or("mist")
}

/// Formats one line (without newline).
pub fn format_line(level: Level, binary: &str, msg: &str) -> String {
    // Keep one message on one line so the controller can parse it back.
    let msg = msg.replace(['\n', '\r'], " ");
    format!("{level} {binary}: {msg}")
}

/// Prints a message if its level is enabled.
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let msg = args.to_string();
    let line = format_line(level, binary_name(), &msg);
    let stderr = std::io::stderr();
    let mut e = stderr.lock();
    let _ = writeln!(e, "{line}");
    drop(e);
    if let Some(h) = HOOK.get() {
        h(level, &msg);
    }
}

/// A line parsed from a child's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub level: Level,
    /// The binary name the child gave, if the line had one.
    pub binary: Option<String>,
    pub message: String,
}

/// Parses `LEVEL Binary: message` (also MistServer's `LEVEL|Binary|pid|...|message` form). A line
/// in neither form is kept as an INFO message without binary name.
pub fn parse_line(line: &str) -> ParsedLine {
    let line = line.trim_end_matches(['\n', '\r']);
    // MistServer's pipe form: LEVEL|Binary|pid|file:line|stream|message
    if let Some((lvl, rest)) = line.split_once('|') {
        if let Some(level) = Level::from_word(lvl) {
            let parts: Vec<&str> = rest.splitn(5, '|').collect();
            if parts.len() == 5 {
                return ParsedLine {
                    level,
                    binary: Some(parts[0].to_string()),
                    message: parts[4].to_string(),
                };
            }
        }
    }
    if let Some((lvl, rest)) = line.split_once(' ') {
        if let Some(level) = Level::from_word(lvl) {
            if let Some((bin, msg)) = rest.split_once(": ") {
                if !bin.is_empty() && !bin.contains(char::is_whitespace) {
                    return ParsedLine {
                        level,
                        binary: Some(bin.to_string()),
                        message: msg.to_string(),
                    };
                }
            }
            return ParsedLine {
                level,
                binary: None,
                message: rest.to_string(),
            };
        }
    }
    ParsedLine {
        level: Level::Info,
        binary: None,
        message: line.to_string(),
    }
}

#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => { $crate::log::emit($lvl, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! fail { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Fail, $($arg)*) }; }
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) }; }
/// MEDIUM (5): development detail.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Medium, $($arg)*) }; }
/// HIGH (6): verbose.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::High, $($arg)*) }; }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(Level::Fail.number(), 1);
        assert_eq!(Level::Info.number(), 4);
        assert_eq!(Level::DontEven.number(), 10);
        for l in Level::ALL {
            assert_eq!(Level::from_word(l.as_str()), Some(l));
        }
        assert_eq!(Level::from_word("DEVEL"), Some(Level::Info));
        assert_eq!(Level::from_word("nope"), None);
        assert!(Level::Fail < Level::Warn);
    }

    #[test]
    fn enabled_by_number() {
        set_level(3);
        assert!(enabled(Level::Warn));
        assert!(!enabled(Level::Info));
        set_level(0);
        assert!(!enabled(Level::Fail));
        set_level(42);
        assert_eq!(level(), 10);
        set_level(DEFAULT_LEVEL);
    }

    #[test]
    fn roundtrip() {
        let l = format_line(Level::Warn, "MistOutRTMP", "peer 1.2.3.4\ngone");
        assert_eq!(l, "WARN MistOutRTMP: peer 1.2.3.4 gone");
        let p = parse_line(&l);
        assert_eq!(p.level, Level::Warn);
        assert_eq!(p.binary.as_deref(), Some("MistOutRTMP"));
        assert_eq!(p.message, "peer 1.2.3.4 gone");
    }

    #[test]
    fn parse_other_forms() {
        let p = parse_line("thread 'main' panicked at src/x.rs:1:1:\n");
        assert_eq!(p.level, Level::Info);
        assert_eq!(p.binary, None);
        assert_eq!(p.message, "thread 'main' panicked at src/x.rs:1:1:");
        let p = parse_line("ERROR something bad");
        assert_eq!(p.level, Level::Error);
        assert_eq!(p.binary, None);
        assert_eq!(p.message, "something bad");
        let p = parse_line("ERROR two words: x");
        assert_eq!(p.binary, None);
        let p = parse_line("FAIL|MistInBuffer|1234|input.cpp:12|live|Buffer died");
        assert_eq!(p.level, Level::Fail);
        assert_eq!(p.binary.as_deref(), Some("MistInBuffer"));
        assert_eq!(p.message, "Buffer died");
        assert_eq!(parse_line("").message, "");
    }
}
