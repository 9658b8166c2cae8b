//! RTSP helpers of the rtsp_* tests: a controller with an RTSP listener, ffprobe and ffmpeg over
//! RTSP, and hand-written requests with their answers.

use super::{free_port, wait_port, Controller};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A controller with an RTSP protocol entry on a free port (on 127.0.0.1) and `streams`, with
/// `edit` applied to its config JSON too (triggers …); returns it and the RTSP port.
pub fn controller_edited(
    streams: serde_json::Value,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (Controller, u16) {
    let rtsp = free_port();
    let ctl = Controller::start_edited(streams, |c| {
        c["config"]["protocols"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"connector": "RTSP", "port": rtsp, "interface": "127.0.0.1"}));
        edit(c);
    });
    assert!(
        wait_port(rtsp, Duration::from_secs(10)),
        "RTSP port never opened (is MistOutRTSP started by the controller?)"
    );
    (ctl, rtsp)
}

/// [`controller_edited`] without edits.
pub fn controller(streams: serde_json::Value) -> (Controller, u16) {
    controller_edited(streams, |_| {})
}

/// `rtsp://127.0.0.1:PORT/STREAM`.
pub fn url(port: u16, stream: &str) -> String {
    format!("rtsp://127.0.0.1:{port}/{stream}")
}

/// ffprobe of `url` over `transport` (tcp, udp): (success, streams, stderr).
pub fn ffprobe(url: &str, transport: &str) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new("timeout")
        .args(["30", "ffprobe", "-v", "error", "-rtsp_transport", transport])
        .args(["-show_streams", "-of", "json", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        v["streams"].as_array().cloned().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Frames of `map` (`0:v:0`, `0:a:0`) ffmpeg decodes from `seconds` s of `url` over `transport`.
pub fn decode(url: &str, transport: &str, map: &str, seconds: u32) -> usize {
    let out = Command::new("timeout")
        .args(["40", "ffmpeg", "-hide_banner", "-loglevel", "error"])
        .args(["-rtsp_transport", transport, "-i", url])
        .args(["-t", &seconds.to_string()])
        .args(["-map", map, "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    framemd5_lines(&out.stdout)
}

/// The frames a framemd5 output lists.
pub fn framemd5_lines(framemd5: &[u8]) -> usize {
    String::from_utf8_lossy(framemd5)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// A TCP connection to the RTSP port, reads timing out after 30 s.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One RTSP answer.
pub struct Reply {
    /// The status code (0 when the status line did not parse).
    pub status: u16,
    /// The head as text (status line and headers).
    pub head: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The session id of the `Session` header (without `;timeout=`).
    pub fn session(&self) -> String {
        let s = self.header("Session").unwrap_or("");
        s.split(';').next().unwrap_or("").to_string()
    }
}

/// Reads one answer off `s`, skipping interleaved frames before it.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("an RTSP answer");
        if head.is_empty() && b[0] == b'$' {
            let mut h = [0u8; 3];
            s.read_exact(&mut h).unwrap();
            let mut skip = vec![0u8; u16::from_be_bytes([h[1], h[2]]) as usize];
            s.read_exact(&mut skip).unwrap();
            continue;
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Reply {
        status,
        head: text,
        headers,
        body,
    }
}

/// Sends the request `raw` (whole, with its blank line) and reads the answer.
pub fn exchange(s: &mut TcpStream, raw: &str) -> Reply {
    s.write_all(raw.as_bytes()).unwrap();
    read_reply(s)
}

/// Sends `METHOD URI` with `CSeq: cseq` and the header lines `extra` (each ending in CRLF), and
/// reads the answer.
pub fn request(s: &mut TcpStream, method: &str, uri: &str, cseq: u32, extra: &str) -> Reply {
    exchange(
        s,
        &format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n"),
    )
}
