//! MistUtilLog: pretty-prints log lines, or runs a command and turns its output into log lines.

use mist_core::log::{self, Level};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

/// One input line as a readable line: `[time] Binary LEVEL: message`, coloured by level when
/// `colour` (WARN yellow, ERROR/FAIL red, debug levels dim).
pub fn pretty(line: &str, time: &str, colour: bool) -> String {
    let p = log::parse_line(line);
    let who = p.binary.as_deref().unwrap_or("-");
    let text = format!("[{time}] {who} {}: {}", p.level, p.message);
    if !colour {
        return text;
    }
    let code = match p.level {
        Level::Fail | Level::Error => "31",
        Level::Warn => "33",
        Level::Info => return text,
        _ => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Reads log lines from `input` until EOF and writes them pretty to `out`.
pub fn pretty_stream(
    input: impl BufRead,
    mut out: impl Write,
    colour: bool,
) -> std::io::Result<()> {
    for line in input.split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            continue;
        }
        writeln!(out, "{}", pretty(&line, &log::timestamp(), colour))?;
    }
    out.flush()
}

/// Runs `argv`, writing each line of its stdout and stderr to our stderr as an INFO line from
/// `name` (in this process's log style). Returns its exit code (128+signal when killed; 127 when it
/// cannot be started).
pub fn run_command(argv: &[String], name: &str) -> i32 {
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            log::write_stderr(Level::Fail, name, &format!("cannot run {}: {e}", argv[0]));
            return 127;
        }
    };
    let forward = |r: Box<dyn std::io::Read + Send>, name: String| {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(r)
                .split(b'\n')
                .map_while(Result::ok)
            {
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                if !line.is_empty() {
                    log::write_stderr(Level::Info, &name, line);
                }
            }
        })
    };
    let a = forward(
        Box::new(child.stdout.take().expect("piped")),
        name.to_string(),
    );
    let b = forward(
        Box::new(child.stderr.take().expect("piped")),
        name.to_string(),
    );
    let status = child.wait();
    let _ = a.join();
    let _ = b.join();
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_lines() {
        assert_eq!(
            pretty("WARN MistOutRTMP: peer gone", "T", false),
            "[T] MistOutRTMP WARN: peer gone"
        );
        assert_eq!(
            pretty("<3>ERROR MistController: bad", "T", false),
            "[T] MistController ERROR: bad"
        );
        assert_eq!(
            pretty("FAIL|MistInBuffer|12|x.cpp:1|live|died", "T", true),
            "\x1b[31m[T] MistInBuffer FAIL: died\x1b[0m"
        );
        assert_eq!(pretty("just text", "T", false), "[T] - INFO: just text");
    }
}
