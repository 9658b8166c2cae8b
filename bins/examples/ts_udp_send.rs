//! Constant-rate MPEG-TS over UDP for `scripts/bench-udp`: sends a pre-made TS file (made with
//! ffmpeg's `-muxrate`, so constant bit rate) as datagrams of 7 packets at `--mbit` Mbit/s,
//! looping it for `--duration` seconds, as an encoder or IRD would.
//!
//! Continuity counters are rewritten so that they run on across the loop (the receiver then
//! counts only real loss); the timestamps jump back at each loop, which the receiver takes as a
//! discontinuity. Pacing: every millisecond the datagrams due by then are sent.
//!
//! Prints one JSON object: datagrams and bytes sent (and sends that failed), seconds, the rate reached, and the sender's
//! own CPU seconds.

use clap::Parser;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Constant-rate MPEG-TS over UDP sender")]
struct Args {
    /// The TS file to send (188-byte packets).
    #[arg(long)]
    file: String,
    /// HOST:PORT to send to.
    #[arg(long)]
    target: String,
    /// Rate in Mbit/s (of TS bytes, as the file's mux rate).
    #[arg(long, default_value_t = 50.0)]
    mbit: f64,
    /// Seconds to send.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// TS packets per datagram.
    #[arg(long, default_value_t = 7)]
    packets: usize,
}

/// CPU seconds (user + system) this process has used so far.
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args = Args::parse();
    let data = std::fs::read(&args.file).expect("read the TS file");
    let mut packets: Vec<[u8; 188]> = data
        .chunks_exact(188)
        .filter(|p| p[0] == 0x47)
        .map(|p| p.try_into().expect("188 bytes"))
        .collect();
    assert!(!packets.is_empty(), "{}: no TS packets", args.file);
    let per = args.packets.clamp(1, 7);
    // Pad to whole datagrams with null packets.
    while !packets.len().is_multiple_of(per) {
        let mut null = [0xffu8; 188];
        null[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
        packets.push(null);
    }
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect(&args.target).expect("target");
    let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
    let dgram_bytes = (per * 188) as f64;
    let interval = Duration::from_secs_f64(dgram_bytes * 8.0 / (args.mbit * 1e6));
    // The next continuity counter per PID, carried across loops.
    let mut cc = vec![None::<u8>; 8192];
    let mut out = vec![0u8; per * 188];
    let (mut sent, mut ok, mut bytes, mut pos) = (0u64, 0u64, 0u64, 0usize);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.duration);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now.duration_since(t0).as_secs_f64() / interval.as_secs_f64()) as u64 + 1;
        while sent < due {
            for (k, p) in packets[pos..pos + per].iter().enumerate() {
                let o = &mut out[k * 188..(k + 1) * 188];
                o.copy_from_slice(p);
                let pid = ((o[1] as usize & 0x1f) << 8) | o[2] as usize;
                let has_payload = o[3] & 0x10 != 0;
                if pid != 0x1fff && has_payload {
                    let c = cc[pid].unwrap_or(o[3] & 0x0f);
                    o[3] = (o[3] & 0xf0) | c;
                    cc[pid] = Some((c + 1) & 0x0f);
                }
            }
            pos = (pos + per) % packets.len();
            if sock.send(&out).is_ok() {
                ok += 1;
                bytes += out.len() as u64;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "datagrams": ok,
            "send_failures": sent - ok,
            "bytes": bytes,
            "seconds": secs,
            "mbit_s": bytes as f64 * 8.0 / 1e6 / secs,
            "sender_cpu_s": own_cpu_seconds(),
        })
    );
}
