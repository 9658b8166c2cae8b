//! The UDP socket of a `tsudp://` source: unicast or multicast (IGMP join on the named
//! interfaces, or on every interface), with a receive buffer big enough for bursts.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::FromRawFd;

/// Receive buffer asked for: 8 MiB holds ~0.6 s of a 100 Mbit/s feed.
pub const RCVBUF: usize = 8 << 20;

fn setsockopt<T>(fd: i32, level: i32, name: i32, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the size passed; fd is a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn rcvbuf(fd: i32) -> usize {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are live and sized for SO_RCVBUF's int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        v.max(0) as usize
    } else {
        0
    }
}

/// Names of the system's network interfaces.
fn all_interfaces() -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array terminated by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            out.push(
                std::ffi::CStr::from_ptr((*p).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

/// Binds `host:port` (host empty: every address). A multicast group is joined on `ifaces` (empty:
/// on every interface). The socket is non-blocking.
pub fn bind(host: &str, port: u16, ifaces: &[String]) -> io::Result<UdpSocket> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address")))?;
    let SocketAddr::V4(v4) = addr else {
        // IPv6: unicast only, without the buffer tuning.
        let s = UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        return Ok(s);
    };
    // SAFETY: plain socket(2); the fd is owned by the UdpSocket made from it below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
    let want = RCVBUF as libc::c_int;
    // SO_RCVBUFFORCE passes net.core.rmem_max when privileged; else the plain option.
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &want).is_err() {
        let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &want);
    }
    let got = rcvbuf(fd);
    // Linux reports twice what it grants (bookkeeping overhead).
    if got < RCVBUF {
        mist_core::warn!(
            "UDP receive buffer is {} KiB, not the {} KiB asked for (raise net.core.rmem_max): bursts may be lost",
            got / 2 / 1024,
            RCVBUF / 1024
        );
    }
    let ip = *v4.ip();
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if ip.is_multicast() {
        join(fd, ip, ifaces)?;
    }
    Ok(sock)
}

/// Joins `group` on the named interfaces (or all); an error only when no join worked.
fn join(fd: i32, group: Ipv4Addr, ifaces: &[String]) -> io::Result<()> {
    let names = if ifaces.is_empty() {
        all_interfaces()
    } else {
        ifaces.to_vec()
    };
    let mut joined = Vec::new();
    let mut last_err = None;
    for name in &names {
        let Ok(c) = CString::new(name.as_str()) else {
            continue;
        };
        // SAFETY: c is a NUL-terminated interface name.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            last_err = Some(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {name}"),
            ));
            continue;
        }
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(group).to_be(),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: index as libc::c_int,
        };
        match setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq) {
            Ok(()) => joined.push(name.clone()),
            Err(e) => {
                mist_core::debug!("cannot join {group} on {name}: {e}");
                last_err = Some(e);
            }
        }
    }
    if joined.is_empty() {
        return Err(last_err.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no interface to join on")
        }));
    }
    mist_core::info!("joined multicast group {group} on {}", joined.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_bind_and_receive() {
        let s = bind("127.0.0.1", 0, &[]).unwrap();
        let port = s.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", ("127.0.0.1", port)).unwrap();
        s.set_nonblocking(false).unwrap();
        let mut b = [0u8; 4];
        assert_eq!(s.recv(&mut b).unwrap(), 1);
        assert!(!all_interfaces().is_empty());
    }
}
