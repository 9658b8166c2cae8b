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

/// A log level, numbered as MistServer's `-g` debug levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// FAIL (1): the process cannot go on.
    Fail = 1,
    /// ERROR (2): something failed.
    Error = 2,
    /// WARN (3): something is wrong but goes on.
    Warn = 3,
    /// INFO (4, the default): what happens.
    Info = 4,
    /// MEDIUM (5): development detail.
    Medium = 5,
    /// HIGH (6).
    High = 6,
    /// VERYHIGH (7).
    VeryHigh = 7,
    /// EXTREME (8).
    Extreme = 8,
    /// INSANE (9).
    Insane = 9,
    /// DONTEVEN (10): everything.
    DontEven = 10,
}

impl Level {
    /// Every level, lowest number first.
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

    /// The level's name as printed (`INFO`).
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

    /// The level's number (1-10).
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

/// Sets the level of this process (above 10: 10).
pub fn set_level(level: u8) {
    LEVEL.store(level.min(10), Ordering::Relaxed);
}

/// The level of this process.
pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// Whether messages of level `l` are printed.
pub fn enabled(l: Level) -> bool {
    l.number() <= level()
}

/// Installs a function that also receives every printed message (the controller keeps them for
/// its `log` API command). First call wins.
pub fn set_hook(f: impl Fn(Level, &str) + Send + Sync + 'static) {
    let _ = HOOK.set(Box::new(f));
}

/// The binary name this process logs as.
pub fn binary_name() -> &'static str {
    NAME.get().map(String::as_str).unwrap_or("mist")
}

/// Formats one line (without newline).
pub fn format_line(level: Level, binary: &str, msg: &str) -> String {
    // Keep one message on one line so the controller can parse it back.
    let msg = msg.replace(['\n', '\r'], " ");
    format!("{level} {binary}: {msg}")
}

/// How lines written to stderr are decorated (decided once per process, see [`style`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `LEVEL Binary: message` (a terminal, or a pipe to the controller that parses it back).
    Plain,
    /// `<P>LEVEL Binary: message` with a syslog priority P that journald takes as the entry's
    /// priority, and no timestamp of ours (journald adds its own).
    Journal,
    /// `[YYYY-MM-DD HH:MM:SS] LEVEL Binary: message` (local time), for log files.
    Timestamped,
}

/// The syslog priority of a level, as journald reads it from a `<P>` prefix: FAIL and ERROR 3
/// (err), WARN 4 (warning), INFO 6 (info), the debug levels 7 (debug).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Fail | Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        _ => 7,
    }
}

/// Whether `journal_stream` (the `JOURNAL_STREAM` value systemd sets, `DEVICE:INODE`) names this
/// `(device, inode)`.
pub fn is_journal_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Picks the style for stderr: [`Style::Journal`] when stderr is the stream systemd named in
/// `JOURNAL_STREAM` (so children, whose stderr is a pipe to the controller, stay plain) or when
/// `MIST_LOG_SYSTEMD` is set; [`Style::Timestamped`] when stderr is a regular file
/// (`MistController -L FILE`, `2>>file`); else [`Style::Plain`].
pub fn detect_style() -> Style {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    // fstat of stderr, through a duplicate of its descriptor (the same open file).
    let stat = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| std::fs::File::from(fd).metadata().ok());
    if let (Some(st), Ok(js)) = (stat.as_ref(), std::env::var("JOURNAL_STREAM")) {
        if is_journal_stream(&js, st.dev(), st.ino()) {
            return Style::Journal;
        }
    }
    if std::env::var_os("MIST_LOG_SYSTEMD").is_some_and(|v| !v.is_empty() && v != "0") {
        return Style::Journal;
    }
    if stat.is_some_and(|st| st.file_type().is_file()) {
        return Style::Timestamped;
    }
    Style::Plain
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// This process's stderr style (detected on first use).
pub fn style() -> Style {
    *STYLE.get_or_init(detect_style)
}

/// Local time now as `YYYY-MM-DD HH:MM:SS`.
pub fn timestamp() -> String {
    let t = crate::push::LocalTime::now();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A line as written in `style` (without newline).
pub fn decorate(style: Style, level: Level, binary: &str, msg: &str) -> String {
    let line = format_line(level, binary, msg);
    match style {
        Style::Plain => line,
        Style::Journal => format!("<{}>{line}", priority(level)),
        Style::Timestamped => format!("[{}] {line}", timestamp()),
    }
}

/// Writes one line to stderr in this process's [`style`] (the controller uses it for its
/// children's lines too).
pub fn write_stderr(level: Level, binary: &str, msg: &str) {
    let line = decorate(style(), level, binary, msg);
    let stderr = std::io::stderr();
    let mut e = stderr.lock();
    let _ = writeln!(e, "{line}");
}

/// Prints a message if its level is enabled.
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let msg = args.to_string();
    write_stderr(level, binary_name(), &msg);
    if let Some(h) = HOOK.get() {
        h(level, &msg);
    }
}

/// Strips what [`decorate`] adds: a `<P>` priority or a `[YYYY-MM-DD HH:MM:SS] ` timestamp.
pub fn strip_decoration(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() >= 3 && b[0] == b'<' && b[1].is_ascii_digit() && b[2] == b'>' {
        return &line[3..];
    }
    if b.len() >= 22 && b[0] == b'[' && b[20] == b']' && b[21] == b' ' {
        let ts = &b[1..20];
        let shape = ts.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
        if shape {
            return &line[22..];
        }
    }
    line
}

/// A line parsed from a child's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// The line's level.
    pub level: Level,
    /// The binary name the child gave, if the line had one.
    pub binary: Option<String>,
    /// The message without level and binary name.
    pub message: String,
}

/// Parses `LEVEL Binary: message` (also MistServer's `LEVEL|Binary|pid|...|message` form, and
/// either after a `<P>` priority or `[timestamp] `, see [`decorate`]). A line in neither form is kept as an INFO message without binary name.
pub fn parse_line(line: &str) -> ParsedLine {
    let line = strip_decoration(line.trim_end_matches(['\n', '\r']));
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

/// Logs a message at a [`Level`](crate::log::Level), with `format!` arguments.
#[macro_export]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => { $crate::log::emit($lvl, format_args!($($arg)*)) };
}
/// FAIL (1): the process cannot go on.
#[macro_export]
macro_rules! fail { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Fail, $($arg)*) }; }
/// ERROR (2): something failed.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) }; }
/// WARN (3): something is wrong but goes on.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) }; }
/// INFO (4): what happens.
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
    fn journal_and_timestamps() {
        assert_eq!(
            decorate(Style::Journal, Level::Error, "MistController", "x"),
            "<3>ERROR MistController: x"
        );
        assert_eq!(
            decorate(Style::Journal, Level::Warn, "B", "x"),
            "<4>WARN B: x"
        );
        assert_eq!(
            decorate(Style::Journal, Level::Info, "B", "x"),
            "<6>INFO B: x"
        );
        assert_eq!(
            decorate(Style::Journal, Level::High, "B", "x"),
            "<7>HIGH B: x"
        );
        let t = decorate(Style::Timestamped, Level::Info, "B", "x");
        assert!(t.starts_with('[') && t.ends_with("] INFO B: x"), "{t}");
        for l in [t.as_str(), "<3>ERROR B: x"] {
            let p = parse_line(l);
            assert_eq!(p.binary.as_deref(), Some("B"), "{l}");
            assert_eq!(p.message, "x");
        }
        assert!(is_journal_stream("8:1234", 8, 1234));
        assert!(!is_journal_stream("8:1234", 8, 1235));
        assert!(!is_journal_stream("garbage", 8, 1234));
        assert_eq!(strip_decoration("[not a time] x"), "[not a time] x");
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
