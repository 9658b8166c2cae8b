//! `tsudp://` pushes: MPEG-TS in datagrams of 7 packets, unicast or multicast; `tsrtp://` the
//! same datagrams behind an RTP header (RFC 2250: payload type 33, MP2T, a 90 kHz timestamp of
//! when the datagram leaves).

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;

use super::PushOutError;

fn bad_iface(iface: &str, what: &'static str) -> PushOutError {
    PushOutError::Interface {
        iface: iface.to_string(),
        what,
    }
}

/// Bytes per datagram: 7 TS packets, as every TS-over-UDP sender and receiver expects.
pub const DATAGRAM: usize = 7 * 188;

/// The RTP payload type of MPEG-TS (RFC 3551, static).
pub const PT_MP2T: u8 = 33;

/// The RTP state of a `tsrtp://` push.
#[derive(Debug, Clone)]
pub struct Rtp {
    seq: u16,
    ssrc: u32,
    /// The wall clock of timestamp `ts0`.
    start: std::time::Instant,
    ts0: u32,
}

impl Rtp {
    /// A new RTP sender: random sequence start, timestamp start and SSRC (RFC 3550 §5.1).
    pub fn new() -> Rtp {
        let mut r = [0u8; 10];
        if getrandom(&mut r).is_err() {
            // Not secret, only distinct: the pid and the clock will do.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ u64::from(std::process::id()).rotate_left(32);
            r[..8].copy_from_slice(&t.to_le_bytes());
            r[8..].copy_from_slice(&(t as u16).rotate_left(7).to_le_bytes());
        }
        Rtp {
            seq: u16::from_le_bytes([r[0], r[1]]),
            ssrc: u32::from_le_bytes([r[2], r[3], r[4], r[5]]),
            start: std::time::Instant::now(),
            ts0: u32::from_le_bytes([r[6], r[7], r[8], r[9]]),
        }
    }

    /// The 12-byte header of the next datagram, at `elapsed` since the first.
    pub fn header(&mut self, elapsed: std::time::Duration) -> [u8; 12] {
        let ts = self
            .ts0
            .wrapping_add((elapsed.as_micros() * 9 / 100) as u32);
        let mut h = [0u8; 12];
        h[0] = 0x80; // version 2, no padding, no extension, no CSRC
        h[1] = PT_MP2T; // marker 0
        h[2..4].copy_from_slice(&self.seq.to_be_bytes());
        h[4..8].copy_from_slice(&ts.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        h
    }
}

impl Default for Rtp {
    fn default() -> Rtp {
        Rtp::new()
    }
}

/// Random bytes from the kernel.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: the kernel writes at most buf.len() bytes into our live buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket connected to the target, sending whole datagrams.
pub struct UdpSink {
    sock: UdpSocket,
    buf: Vec<u8>,
    /// Datagrams the kernel refused for a moment (ENOBUFS): dropped, as a UDP sender must.
    pub dropped: u64,
    /// `tsrtp://`: each datagram gets an RTP header.
    rtp: Option<Rtp>,
    /// Header and payload of an RTP datagram.
    packet: Vec<u8>,
}

/// Sets the interface multicast leaves by: an address (IPv4) or an interface name.
fn multicast_if(sock: &UdpSocket, group: IpAddr, iface: &str) -> Result<(), PushOutError> {
    let fd = sock.as_raw_fd();
    let r = match (group, iface.parse::<IpAddr>()) {
        (IpAddr::V4(_), Ok(IpAddr::V4(a))) => {
            let addr = libc::in_addr {
                s_addr: u32::from(a).to_be(),
            };
            // SAFETY: IP_MULTICAST_IF with a live in_addr of the size passed, on our own socket.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    (&addr as *const libc::in_addr).cast(),
                    std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
                )
            }
        }
        (_, Ok(_)) => return Err(bad_iface(iface, "give IPv6 interfaces by name")),
        (group, Err(_)) => {
            let name = std::ffi::CString::new(iface).map_err(|_| bad_iface(iface, "bad name"))?;
            // SAFETY: a NUL-terminated string that lives for the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                return Err(bad_iface(iface, "no such interface"));
            }
            if group.is_ipv4() {
                let m = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: index as libc::c_int,
                };
                // SAFETY: IP_MULTICAST_IF accepts an ip_mreqn; it lives for the call.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        libc::IP_MULTICAST_IF,
                        (&m as *const libc::ip_mreqn).cast(),
                        std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
                    )
                }
            } else {
                let i = index as libc::c_int;
                // SAFETY: IPV6_MULTICAST_IF takes an int interface index; it lives for the call.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IPV6,
                        libc::IPV6_MULTICAST_IF,
                        (&i as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                }
            }
        }
    };
    if r != 0 {
        return Err(PushOutError::MulticastInterface {
            iface: iface.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl UdpSink {
    /// Resolves `host:port` and connects a UDP socket to it; multicast leaves by `iface` when
    /// given, and loops back to local members.
    pub fn open(host: &str, port: u16, iface: Option<&str>) -> Result<UdpSink, PushOutError> {
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()
            .map_err(|source| PushOutError::Resolve {
                host: host.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| PushOutError::NoAddress(host.to_string()))?;
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).map_err(PushOutError::UdpSocket)?;
        if addr.ip().is_multicast() {
            if let Some(i) = iface {
                multicast_if(&sock, addr.ip(), i)?;
            }
            let _ = match addr {
                SocketAddr::V4(_) => sock.set_multicast_loop_v4(true),
                SocketAddr::V6(_) => sock.set_multicast_loop_v6(true),
            };
        }
        sock.connect(addr)
            .map_err(|source| PushOutError::UdpConnect { addr, source })?;
        mist_core::info!("sending TS over UDP to {addr}");
        Ok(UdpSink {
            sock,
            buf: Vec::with_capacity(DATAGRAM * 8),
            dropped: 0,
            rtp: None,
            packet: Vec::new(),
        })
    }

    /// Like [`UdpSink::open`], each datagram in an RTP packet (`tsrtp://`).
    pub fn open_rtp(host: &str, port: u16, iface: Option<&str>) -> Result<UdpSink, PushOutError> {
        let mut s = UdpSink::open(host, port, iface)?;
        s.rtp = Some(Rtp::new());
        s.packet = Vec::with_capacity(12 + DATAGRAM);
        Ok(s)
    }

    fn send(&mut self, n: usize) -> io::Result<()> {
        let r = match self.rtp.as_mut() {
            Some(rtp) => {
                let elapsed = rtp.start.elapsed();
                let h = rtp.header(elapsed);
                self.packet.clear();
                self.packet.extend_from_slice(&h);
                self.packet.extend_from_slice(&self.buf[..n]);
                self.sock.send(&self.packet)
            }
            None => self.sock.send(&self.buf[..n]),
        };
        self.buf.drain(..n);
        match r {
            Ok(_) => Ok(()),
            // Nobody listening (yet): an ICMP answer to an earlier datagram. Not an error for
            // a UDP push; a receiver may come later.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.dropped += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Write for UdpSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        while self.buf.len() >= DATAGRAM {
            self.send(DATAGRAM)?;
        }
        Ok(b.len())
    }

    /// Sends what is buffered, whole packets only (a partial one waits for its rest).
    fn flush(&mut self) -> io::Result<()> {
        let whole = self.buf.len() / 188 * 188;
        if whole > 0 {
            self.send(whole)?;
        }
        Ok(())
    }
}

impl super::Sink for UdpSink {
    fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.send(n)?;
        }
        if self.dropped > 0 {
            mist_core::warn!(
                "{} datagrams dropped (the kernel's send buffer was full)",
                self.dropped
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_headers() {
        let mut r = Rtp::new();
        let (seq, ts0, ssrc) = (r.seq, r.ts0, r.ssrc);
        let a = r.header(std::time::Duration::ZERO);
        let b = r.header(std::time::Duration::from_millis(100));
        assert_eq!(a[0], 0x80);
        assert_eq!(a[1], 33);
        assert_eq!(u16::from_be_bytes([a[2], a[3]]), seq);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), seq.wrapping_add(1));
        assert_eq!(u32::from_be_bytes([a[4], a[5], a[6], a[7]]), ts0);
        // 100 ms at 90 kHz.
        assert_eq!(
            u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ts0.wrapping_add(9000)
        );
        assert_eq!(u32::from_be_bytes([b[8], b[9], b[10], b[11]]), ssrc);
    }
}
