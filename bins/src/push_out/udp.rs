//! `tsudp://` pushes: MPEG-TS in datagrams of 7 packets, unicast or multicast.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;

/// Bytes per datagram: 7 TS packets, as every TS-over-UDP sender and receiver expects.
pub const DATAGRAM: usize = 7 * 188;

/// A UDP socket connected to the target, sending whole datagrams.
pub struct UdpSink {
    sock: UdpSocket,
    buf: Vec<u8>,
    /// Datagrams the kernel refused for a moment (ENOBUFS): dropped, as a UDP sender must.
    pub dropped: u64,
}

/// Sets the interface multicast leaves by: an address (IPv4) or an interface name.
fn multicast_if(sock: &UdpSocket, group: IpAddr, iface: &str) -> Result<(), String> {
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
        (_, Ok(_)) => return Err(format!("{iface}: give IPv6 interfaces by name")),
        (group, Err(_)) => {
            let name = std::ffi::CString::new(iface).map_err(|_| format!("{iface}: bad name"))?;
            // SAFETY: a NUL-terminated string that lives for the call.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                return Err(format!("{iface}: no such interface"));
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
        return Err(format!(
            "multicast interface {iface}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl UdpSink {
    /// Resolves `host:port` and connects a UDP socket to it; multicast leaves by `iface` when
    /// given, and loops back to local members.
    pub fn open(host: &str, port: u16, iface: Option<&str>) -> Result<UdpSink, String> {
        let addr: SocketAddr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).map_err(|e| format!("UDP socket: {e}"))?;
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
            .map_err(|e| format!("UDP to {addr}: {e}"))?;
        mist_core::info!("sending TS over UDP to {addr}");
        Ok(UdpSink {
            sock,
            buf: Vec::with_capacity(DATAGRAM * 8),
            dropped: 0,
        })
    }

    fn send(&mut self, n: usize) -> io::Result<()> {
        let r = self.sock.send(&self.buf[..n]);
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
