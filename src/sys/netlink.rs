//! A `NETLINK_CONNECTOR` socket subscribed to the kernel's process-events
//! multicast group (`CN_IDX_PROC`).
//!
//! This is deliberately thin: it opens, binds, subscribes, receives raw
//! datagrams and unsubscribes on drop. Decoding the bytes is done by the safe
//! parser in [`crate::events`].

// The one module allowed to call into libc; every block has a SAFETY note.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Connector index of the process-events connector (`linux/connector.h`).
pub const CN_IDX_PROC: u32 = 0x1;
/// Connector value of the process-events connector (`linux/connector.h`).
pub const CN_VAL_PROC: u32 = 0x1;
/// `enum proc_cn_mcast_op` value that subscribes a socket (`linux/cn_proc.h`).
pub const PROC_CN_MCAST_LISTEN: u32 = 1;
/// `enum proc_cn_mcast_op` value that unsubscribes a socket (`linux/cn_proc.h`).
pub const PROC_CN_MCAST_IGNORE: u32 = 2;

/// Receive buffer we ask for. Fork storms (a `make -j`, a container start)
/// produce tens of thousands of 76-byte datagrams per second; the default
/// ~200 KiB buffer (each datagram costs a whole skb, ~1 KiB of accounting)
/// overruns quickly, and every overrun forces the caller into a /proc rescan.
pub const DEFAULT_RCVBUF: usize = 8 << 20;

/// The events vprocfs follows (`enum proc_cn_event`, `linux/cn_proc.h`): forks
/// (`0x1`), execs (`0x2`), uid and gid changes (`0x4`, `0x40`), new sessions (`0x80`)
/// and exits (`0x8000_0000`). Left out: `comm` changes (`0x200`: every exec makes one,
/// and every thread that names itself), ptrace and core dumps, which nothing reads, and
/// which would each wake the events thread; the kernel drops them before they are
/// queued where it filters (Linux 6.6 and later, [`filters_events`]).
pub const FOLLOWED_EVENTS: u32 = 0x1 | 0x2 | 0x4 | 0x40 | 0x80 | 0x8000_0000;

/// Whether a kernel of release `release` (`uname -r`) takes the events a listener
/// wants with its `LISTEN` (`struct proc_input`, Linux 6.6 and later). An older one
/// drops such a message without a word (it wants the bare `enum proc_cn_mcast_op`),
/// and the listener would hear nothing; a release that cannot be read is taken as old.
pub fn filters_events(release: &str) -> bool {
    let mut parts = release.split(['.', '-', '+']);
    let mut num = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (num(), num()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 6),
        _ => false,
    }
}

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct cn_msg)` (without the flexible `data[]`).
const CN_MSG_HDRLEN: usize = 20;
/// Total size of the largest control message: nlmsghdr + cn_msg + a `struct
/// proc_input` (the `u32` op and the `u32` events).
const CTL_MSG_MAX: usize = NLMSG_HDRLEN + CN_MSG_HDRLEN + 8;

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Full length of the datagram as queued by the sender. If this is larger
    /// than the buffer passed to [`ConnectorSocket::recv_from`], the datagram
    /// was truncated to the buffer size and the tail is lost.
    pub len: usize,
    /// Netlink port id of the sender; `0` is the kernel. Anything else is a
    /// user-space process unicasting to our port and must not be trusted.
    pub sender_port: u32,
}

impl Received {
    /// Whether the datagram did not fit in the buffer.
    pub fn truncated(&self, buf_len: usize) -> bool {
        self.len > buf_len
    }

    /// Whether the kernel sent this datagram (as opposed to a process
    /// forging events by unicasting to our port id).
    pub fn from_kernel(&self) -> bool {
        self.sender_port == 0
    }
}

/// A netlink connector socket subscribed to process events.
///
/// Dropping it sends `PROC_CN_MCAST_IGNORE` before closing: the kernel keeps
/// a global listener count that only that message decrements (closing the
/// socket does not), and while the count is non-zero every fork/exec/exit in
/// the system pays for building an event.
#[derive(Debug)]
pub struct ConnectorSocket {
    fd: OwnedFd,
    port_id: u32,
    listening: bool,
}

/// Turns a `-1` return into `io::Error::last_os_error()`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An all-zero `sockaddr_nl` with the family set. `nl_pid == 0` addresses
/// the kernel; `nl_groups == 0` means no multicast groups.
fn sockaddr_nl(groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is a plain C struct of integers (and private
    // padding); the all-zero bit pattern is a valid value of it.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = 0;
    addr.nl_groups = groups;
    addr
}

/// Builds the nlmsghdr + cn_msg + `enum proc_cn_mcast_op` control message
/// in native byte order, at the offsets of `linux/netlink.h` and
/// `linux/connector.h`; with `events`, the op is followed by the events wanted
/// (`struct proc_input`).
fn control_message(port_id: u32, seq: u32, op: u32, events: Option<u32>) -> Vec<u8> {
    let data_len = if events.is_some() { 8 } else { 4 };
    let len = CTL_MSG_MAX - 8 + data_len;
    let mut m = vec![0u8; len];
    // struct nlmsghdr
    m[0..4].copy_from_slice(&(len as u32).to_ne_bytes()); // nlmsg_len
    m[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes()); // nlmsg_type
    m[6..8].copy_from_slice(&0u16.to_ne_bytes()); // nlmsg_flags
    m[8..12].copy_from_slice(&seq.to_ne_bytes()); // nlmsg_seq
    m[12..16].copy_from_slice(&port_id.to_ne_bytes()); // nlmsg_pid
                                                       // struct cn_msg
    let c = &mut m[NLMSG_HDRLEN..];
    c[0..4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes()); // id.idx
    c[4..8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes()); // id.val
    c[8..12].copy_from_slice(&seq.to_ne_bytes()); // seq
    c[12..16].copy_from_slice(&0u32.to_ne_bytes()); // ack
    c[16..18].copy_from_slice(&(data_len as u16).to_ne_bytes()); // len
    c[18..20].copy_from_slice(&0u16.to_ne_bytes()); // flags
    c[20..24].copy_from_slice(&op.to_ne_bytes()); // data: proc_cn_mcast_op
    if let Some(events) = events {
        c[24..28].copy_from_slice(&events.to_ne_bytes()); // proc_input.event_type
    }
    m
}

impl ConnectorSocket {
    /// Opens a socket, enlarges its receive buffer, joins the `CN_IDX_PROC`
    /// group and sends `PROC_CN_MCAST_LISTEN`.
    ///
    /// Errors: `ECONNREFUSED` from sending `LISTEN` outside the initial
    /// network namespace (the kernel creates its connector socket in
    /// `init_net` only, so socket and bind succeed but nobody receives);
    /// `EPROTONOSUPPORT` without `CONFIG_CONNECTOR`; `EPERM` from `bind` on
    /// kernels before 6.6 without `CAP_NET_ADMIN` (6.6+ let anyone join
    /// the proc group).
    ///
    /// Success does not prove events will arrive: the kernel *silently*
    /// ignores `LISTEN` from tasks outside the initial user and pid
    /// namespaces (see `crate::events::in_initial_namespaces`).
    pub fn open() -> io::Result<Self> {
        Self::open_with_rcvbuf(DEFAULT_RCVBUF)
    }

    /// Like [`open`](Self::open) with an explicit receive buffer size
    /// (best effort: `SO_RCVBUFFORCE` if privileged, else `SO_RCVBUF`,
    /// which the kernel caps at `net.core.rmem_max`).
    pub fn open_with_rcvbuf(rcvbuf: usize) -> io::Result<Self> {
        // SAFETY: socket(2) takes no pointers; it returns a new descriptor
        // or -1, which cvt() turns into an error.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        })?;
        // SAFETY: `raw` is a freshly created, valid descriptor that nothing
        // else owns, so transferring ownership to OwnedFd is sound; it will be
        // closed exactly once, on drop.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut sock = ConnectorSocket {
            fd,
            port_id: 0,
            listening: false,
        };
        sock.set_recv_buffer_size(rcvbuf);

        let addr = sockaddr_nl(1 << (CN_IDX_PROC - 1));
        // SAFETY: `addr` is a valid sockaddr_nl that lives across the call
        // and the length passed is exactly its size.
        cvt(unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        sock.port_id = sock.local_port_id()?;

        let events = nix::sys::utsname::uname()
            .ok()
            .filter(|u| filters_events(&u.release().to_string_lossy()))
            .map(|_| FOLLOWED_EVENTS);
        sock.send_mcast_op(PROC_CN_MCAST_LISTEN, 1, events)?;
        sock.listening = true;
        Ok(sock)
    }

    /// The netlink port id the kernel assigned at bind time.
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    fn local_port_id(&self) -> io::Result<u32> {
        let mut addr = sockaddr_nl(0);
        let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `addr` and `len` are valid for writes, and `len` holds the
        // size of `addr`, so the kernel writes at most that many bytes.
        cvt(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast::<libc::sockaddr>(),
                &mut len,
            )
        })?;
        Ok(addr.nl_pid)
    }

    fn send_mcast_op(&self, op: u32, seq: u32, events: Option<u32>) -> io::Result<()> {
        let msg = control_message(self.port_id, seq, op, events);
        let dst = sockaddr_nl(0);
        // SAFETY: `msg` is readable for `msg.len()` bytes and `dst` is a valid
        // sockaddr_nl of the given size; both outlive the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast::<libc::c_void>(),
                msg.len(),
                0,
                (&dst as *const libc::sockaddr_nl).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short send of proc connector control message",
            ));
        }
        Ok(())
    }

    fn setsockopt<T: Copy>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        val: &T,
    ) -> io::Result<()> {
        // SAFETY: `val` points to a live `T` readable for size_of::<T>()
        // bytes, which is the length we pass; the kernel only reads it.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (val as *const T).cast::<libc::c_void>(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Best-effort receive-buffer enlargement: `SO_RCVBUFFORCE` ignores
    /// `rmem_max` but needs `CAP_NET_ADMIN`; fall back to `SO_RCVBUF`.
    fn set_recv_buffer_size(&self, bytes: usize) {
        let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        if let Err(e) = self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &val) {
            log::debug!("SO_RCVBUFFORCE({bytes}) failed ({e}); trying SO_RCVBUF");
            if let Err(e) = self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &val) {
                log::warn!("SO_RCVBUF({bytes}) failed: {e}; keeping default buffer");
            }
        }
    }

    /// The receive buffer size the kernel reports (twice the requested
    /// value, since it accounts for skb overhead).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let mut val: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val`/`len` are valid for writes and `len` is the size of
        // `val`, so the kernel writes at most that many bytes.
        cvt(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut val as *mut libc::c_int).cast::<libc::c_void>(),
                &mut len,
            )
        })?;
        Ok(usize::try_from(val).unwrap_or(0))
    }

    /// Sets how long a blocking receive waits (`SO_RCVTIMEO`); `None` waits
    /// forever. A zero duration is rejected because the kernel would read it
    /// as "forever"; use [`recv_from`](Self::recv_from) with
    /// `nonblocking = true` instead.
    pub fn set_recv_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let tv = match timeout {
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "zero receive timeout would block forever",
                ))
            }
            Some(d) => {
                let mut tv = libc::timeval {
                    tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
                };
                if tv.tv_sec == 0 && tv.tv_usec == 0 {
                    tv.tv_usec = 1; // sub-microsecond: round up, never to "forever"
                }
                tv
            }
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// Receives one datagram into `buf`.
    ///
    /// `nonblocking` uses `MSG_DONTWAIT`; otherwise the call waits up to the
    /// [`set_recv_timeout`](Self::set_recv_timeout) timeout. On timeout the
    /// error kind is `WouldBlock` (EAGAIN). `ENOBUFS` (raw OS error) means the
    /// receive queue overflowed and events were dropped by the kernel.
    /// `MSG_TRUNC` is used so [`Received::len`] reports truncation.
    pub fn recv_from(&self, buf: &mut [u8], nonblocking: bool) -> io::Result<Received> {
        let mut addr = sockaddr_nl(0);
        let mut addrlen = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        let flags = libc::MSG_TRUNC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes (the kernel
        // never writes more than that, even with MSG_TRUNC, which only changes
        // the return value); `addr`/`addrlen` are valid for writes and
        // `addrlen` holds the size of `addr`.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                flags,
                (&mut addr as *mut libc::sockaddr_nl).cast::<libc::sockaddr>(),
                &mut addrlen,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Received {
            len: n as usize,
            sender_port: addr.nl_pid,
        })
    }

    /// Blocking receive of one kernel datagram; returns its length.
    ///
    /// Convenience over [`recv_from`](Self::recv_from): a datagram that did
    /// not fit, or that was not sent by the kernel, is an `InvalidData`
    /// error rather than data.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.recv_from(buf, false)?;
        if !r.from_kernel() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("datagram from user port {} ignored", r.sender_port),
            ));
        }
        if r.truncated(buf.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("datagram of {} bytes truncated to {}", r.len, buf.len()),
            ));
        }
        Ok(r.len)
    }
}

impl Drop for ConnectorSocket {
    fn drop(&mut self) {
        if self.listening {
            if let Err(e) = self.send_mcast_op(PROC_CN_MCAST_IGNORE, 2, None) {
                log::debug!("PROC_CN_MCAST_IGNORE on close failed: {e}");
            }
        }
        // `self.fd` (OwnedFd) closes the descriptor after this.
    }
}

impl AsRawFd for ConnectorSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for ConnectorSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_message_layout() {
        let m = control_message(0x1234, 7, PROC_CN_MCAST_LISTEN, None);
        assert_eq!(m.len(), 40);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 3); // NLMSG_DONE
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(m[12..16].try_into().unwrap()), 0x1234);
        assert_eq!(
            u32::from_ne_bytes(m[16..20].try_into().unwrap()),
            CN_IDX_PROC
        );
        assert_eq!(
            u32::from_ne_bytes(m[20..24].try_into().unwrap()),
            CN_VAL_PROC
        );
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 4);
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 1);
        // With the events wanted: a `struct proc_input`, and every length says so.
        let f = control_message(0x1234, 7, PROC_CN_MCAST_LISTEN, Some(FOLLOWED_EVENTS));
        assert_eq!(f.len(), 44);
        assert_eq!(u32::from_ne_bytes(f[0..4].try_into().unwrap()), 44);
        assert_eq!(u16::from_ne_bytes(f[32..34].try_into().unwrap()), 8);
        assert_eq!(u32::from_ne_bytes(f[36..40].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_ne_bytes(f[40..44].try_into().unwrap()),
            FOLLOWED_EVENTS
        );
    }

    #[test]
    fn events_are_filtered_from_linux_6_6() {
        for (release, filters) in [
            ("6.18.44-fc-v1300", true),
            ("6.6.0", true),
            ("6.10", true),
            ("7.0.0-rc1", true),
            ("6.5.13-arch1-1", false),
            ("5.15.0-91-generic", false),
            ("4.19.0+", false),
            ("", false),
            ("six.six", false),
            ("6", false),
        ] {
            assert_eq!(filters_events(release), filters, "{release}");
        }
    }
}
