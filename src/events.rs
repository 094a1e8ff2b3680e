//! Decoding of process-connector datagrams, and a batching event stream.
//!
//! The parser is pure safe code: it reads every field with explicit
//! native-endian byte reads at the offsets of the kernel UAPI headers
//! (`linux/netlink.h`, `linux/connector.h`, `linux/cn_proc.h`) instead of
//! casting the buffer to a `#[repr(C)]` struct, so arbitrary (truncated,
//! misaligned, hostile) bytes can never cause undefined behaviour or a
//! panic — they produce an [`EventError`].
//!
//! # Namespaces and pids
//!
//! * The kernel creates its connector socket only in the initial network
//!   namespace. In any other network namespace `socket` and `bind` still
//!   succeed but sending `LISTEN` fails with `ECONNREFUSED` (observed on
//!   6.18).
//! * `PROC_CN_MCAST_LISTEN` is *silently ignored* (no ack, no events) when
//!   the sender is not in the initial user **and** initial pid namespace;
//!   [`EventStream::open`] checks this up front with
//!   [`in_initial_namespaces`] and fails instead of hanging.
//!   Observed on 6.18 under `unshare --pid --fork` and
//!   `unshare --user --map-root-user`: open succeeds, then zero datagrams.
//! * Since Linux 6.6 a listener names the events it wants, and the kernel
//!   drops the others before queueing them
//!   (`crate::sys::netlink::FOLLOWED_EVENTS`); its own ack
//!   (`PROC_EVENT_NONE`, no bit) is dropped with them (observed on 6.18).
//! * Since Linux 6.6 unprivileged processes may listen (observed: uid 65534
//!   with no capabilities gets `Ack { err: 0 }` and all events); older
//!   kernels answer a non-`CAP_NET_ADMIN` listener with an
//!   [`ProcEvent::Ack`] whose `err` is `EPERM`. Root still matters for
//!   `SO_RCVBUFFORCE` (a buffer above `net.core.rmem_max`).
//! * Every pid/tgid in an event is the task's number in the **initial** pid
//!   namespace (the kernel fills them from `task->pid`/`task->tgid`),
//!   regardless of the pid namespace the task lives in. vprocfs must map
//!   them to a container's numbering itself (e.g. via `NSpid:` in
//!   `/proc/<pid>/status`).
//! * `pid` fields are thread ids, `tgid` fields are process ids: a new
//!   thread is a [`ProcEvent::Fork`] with `child_pid != child_tgid`.

// Pure parsing: no unsafe here, ever.
#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use crate::sys::netlink::{CN_IDX_PROC, CN_VAL_PROC};
use crate::sys::ConnectorSocket;

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_NOOP`: padding message, ignored.
const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: payload starts with a negative errno (`0` = ack).
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the connector sends *every* message with this type, so it
/// carries a `cn_msg` here rather than meaning "end of dump".
const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data lost.
const NLMSG_OVERRUN: u16 = 4;
/// `sizeof(struct cn_msg)` without `data[]`.
const CN_MSG_HDRLEN: usize = 20;
/// Offset of `event_data` in `struct proc_event` (what, cpu, aligned u64).
const PROC_EVENT_DATA_OFFSET: usize = 16;

/// `enum what` values from `linux/cn_proc.h`.
mod what {
    pub const NONE: u32 = 0x0000_0000;
    pub const FORK: u32 = 0x0000_0001;
    pub const EXEC: u32 = 0x0000_0002;
    pub const UID: u32 = 0x0000_0004;
    pub const GID: u32 = 0x0000_0040;
    pub const SID: u32 = 0x0000_0080;
    pub const PTRACE: u32 = 0x0000_0100;
    pub const COMM: u32 = 0x0000_0200;
    pub const COREDUMP: u32 = 0x4000_0000;
    pub const EXIT: u32 = 0x8000_0000;
}

/// One decoded `struct proc_event`.
///
/// `pid` is the thread id and `tgid` the process id, both in the initial pid
/// namespace (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcEvent {
    /// Reply to our `LISTEN`/`IGNORE` (`PROC_EVENT_NONE`); `err` is a
    /// positive errno, `0` on success. Multicast, so other listeners' acks
    /// show up too.
    Ack { err: u32 },
    /// A task was created: a process (`child_pid == child_tgid`) or a
    /// thread (`child_pid != child_tgid`). `parent_*` is the new task's
    /// `real_parent`: the forking thread for a process, but for a thread
    /// (and for `CLONE_PARENT`) the *parent of the creating process*, not
    /// the creator (observed). Group threads by `child_tgid`.
    Fork {
        parent_pid: i32,
        parent_tgid: i32,
        child_pid: i32,
        child_tgid: i32,
    },
    /// `execve` succeeded; cmdline/exe/comm of the process changed.
    Exec { pid: i32, tgid: i32 },
    /// Real/effective uid changed.
    Uid { pid: i32, tgid: i32 },
    /// Real/effective gid changed.
    Gid { pid: i32, tgid: i32 },
    /// `setsid` made a new session.
    Sid { pid: i32, tgid: i32 },
    /// Ptrace attach (`tracer_*` non-zero) or detach (`tracer_*` zero).
    Ptrace {
        pid: i32,
        tgid: i32,
        tracer_pid: i32,
        tracer_tgid: i32,
    },
    /// `comm` changed (`prctl(PR_SET_NAME)`, writes to `/proc/*/comm`).
    Comm { pid: i32, tgid: i32 },
    /// The task started dumping core.
    Coredump { pid: i32, tgid: i32 },
    /// A task exited; for a thread `pid != tgid`. In a multi-threaded
    /// process the leader's event (`pid == tgid`) may come before the other
    /// threads' events, so a process is gone only when all its tasks are.
    /// `exit_code` is the wait status (`code << 8 | signal`). For a
    /// non-leader thread `exit_signal` is `u32::MAX` (-1) and `parent_*` are
    /// 0 (observed).
    Exit {
        pid: i32,
        tgid: i32,
        exit_code: u32,
        exit_signal: u32,
        parent_pid: i32,
        parent_tgid: i32,
    },
    /// An event type this crate does not know (a newer kernel).
    Other { what: u32 },
}

/// Why a netlink/connector message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The socket or a netlink message reported lost events (`ENOBUFS` on
    /// `recv`, or `NLMSG_OVERRUN`). Process state must be rebuilt from
    /// `/proc`.
    #[error("process events were lost (receive queue overrun); rescan /proc")]
    Overrun,
    /// Fewer bytes remain than a `struct nlmsghdr` needs.
    #[error("truncated netlink header: {available} bytes left, 16 needed")]
    TruncatedNetlinkHeader { available: usize },
    /// `nlmsg_len` is smaller than the header or runs past the buffer.
    #[error("bad nlmsg_len {len} with {available} bytes available")]
    BadNetlinkLength { len: u32, available: usize },
    /// An `NLMSG_ERROR` message with a non-zero error (positive errno).
    #[error("netlink error message: errno {errno}")]
    Netlink { errno: i32 },
    /// An `NLMSG_ERROR` message too short to hold its errno.
    #[error("truncated NLMSG_ERROR payload ({available} bytes)")]
    TruncatedNetlinkError { available: usize },
    /// A netlink message type the connector never sends.
    #[error("unexpected netlink message type {ty}")]
    UnexpectedNetlinkType { ty: u16 },
    /// The payload is shorter than a `struct cn_msg`.
    #[error("truncated cn_msg header: {available} bytes, 20 needed")]
    TruncatedConnectorHeader { available: usize },
    /// A connector message for some other connector user.
    #[error("connector message for idx {idx} val {val}, not the proc connector")]
    WrongConnectorId { idx: u32, val: u32 },
    /// `cn_msg.len` runs past the netlink message.
    #[error("cn_msg len {len} exceeds the {available} bytes available")]
    BadConnectorLength { len: u16, available: usize },
    /// The `struct proc_event` is too short for its header or its `what`.
    #[error("truncated proc_event (what {what:#x}): {available} bytes, {needed} needed")]
    TruncatedEvent {
        what: u32,
        needed: usize,
        available: usize,
    },
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let bytes = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([bytes[0], bytes[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn i32_at(b: &[u8], off: usize) -> Option<i32> {
    u32_at(b, off).map(|v| v as i32)
}

/// Iterator over the messages of one datagram; see [`iter_messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

/// Lazily decodes every netlink message in `buf` (one `recv` worth).
///
/// Yields one item per event-bearing message; `NLMSG_NOOP`, empty
/// `NLMSG_DONE` and `NLMSG_ERROR` acks (errno 0) yield nothing. A framing
/// error (bad `nlmsg_len`) ends the iteration after its `Err`, because the
/// next header cannot be located; per-message errors do not.
pub fn iter_messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Decodes every message in `buf`; see [`iter_messages`].
pub fn parse_messages(buf: &[u8]) -> Vec<Result<ProcEvent, EventError>> {
    iter_messages(buf).collect()
}

impl Iterator for Messages<'_> {
    type Item = Result<ProcEvent, EventError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let available = self.rest.len();
            let Some(len) = u32_at(self.rest, 0) else {
                self.rest = &[];
                return Some(Err(EventError::TruncatedNetlinkHeader { available }));
            };
            let len_usize = len as usize;
            if len_usize < NLMSG_HDRLEN || len_usize > available {
                self.rest = &[];
                if available < NLMSG_HDRLEN {
                    return Some(Err(EventError::TruncatedNetlinkHeader { available }));
                }
                return Some(Err(EventError::BadNetlinkLength { len, available }));
            }
            let msg = &self.rest[..len_usize];
            // NLMSG_ALIGN: messages start on 4-byte boundaries; the last one
            // may omit its padding.
            let advance = len_usize.saturating_add(3) & !3;
            self.rest = self.rest.get(advance..).unwrap_or(&[]);

            let ty = u16_at(msg, 4).unwrap_or(0);
            let payload = &msg[NLMSG_HDRLEN..];
            match ty {
                NLMSG_NOOP => continue,
                NLMSG_ERROR => match i32_at(payload, 0) {
                    None => {
                        return Some(Err(EventError::TruncatedNetlinkError {
                            available: payload.len(),
                        }))
                    }
                    Some(0) => continue,
                    Some(e) => {
                        return Some(Err(EventError::Netlink {
                            errno: e.wrapping_neg(),
                        }))
                    }
                },
                NLMSG_OVERRUN => return Some(Err(EventError::Overrun)),
                NLMSG_DONE if payload.is_empty() => continue,
                NLMSG_DONE => return Some(parse_connector(payload)),
                ty => return Some(Err(EventError::UnexpectedNetlinkType { ty })),
            }
        }
    }
}

/// Decodes a `struct cn_msg` carrying one `struct proc_event`.
fn parse_connector(payload: &[u8]) -> Result<ProcEvent, EventError> {
    let trunc = EventError::TruncatedConnectorHeader {
        available: payload.len(),
    };
    let (Some(idx), Some(val), Some(len)) =
        (u32_at(payload, 0), u32_at(payload, 4), u16_at(payload, 16))
    else {
        return Err(trunc);
    };
    if payload.len() < CN_MSG_HDRLEN {
        return Err(trunc);
    }
    if idx != CN_IDX_PROC || val != CN_VAL_PROC {
        return Err(EventError::WrongConnectorId { idx, val });
    }
    let data = &payload[CN_MSG_HDRLEN..];
    let data = data
        .get(..usize::from(len))
        .ok_or(EventError::BadConnectorLength {
            len,
            available: data.len(),
        })?;
    parse_proc_event(data)
}

/// Decodes a `struct proc_event`: `what` @0, `cpu` @4, `timestamp_ns` @8,
/// `event_data` @16. Only the bytes of the fields actually read are
/// required, so a kernel that grows the union stays compatible.
fn parse_proc_event(ev: &[u8]) -> Result<ProcEvent, EventError> {
    let available = ev.len();
    let Some(what) = u32_at(ev, 0).filter(|_| available >= PROC_EVENT_DATA_OFFSET) else {
        return Err(EventError::TruncatedEvent {
            what: u32_at(ev, 0).unwrap_or(0),
            needed: PROC_EVENT_DATA_OFFSET,
            available,
        });
    };
    let d = &ev[PROC_EVENT_DATA_OFFSET..];
    // Number of `event_data` bytes each variant reads.
    let needed = match what {
        what::NONE => 4,
        what::FORK | what::PTRACE => 16,
        what::EXIT => 24,
        what::EXEC | what::UID | what::GID | what::SID | what::COMM | what::COREDUMP => 8,
        _ => 0,
    };
    if d.len() < needed {
        return Err(EventError::TruncatedEvent {
            what,
            needed: PROC_EVENT_DATA_OFFSET + needed,
            available,
        });
    }
    // In bounds: checked against `needed` above.
    let i = |off: usize| i32_at(d, off).unwrap_or(0);
    let u = |off: usize| u32_at(d, off).unwrap_or(0);
    let (pid, tgid) = (i(0), i(4));
    Ok(match what {
        what::NONE => ProcEvent::Ack { err: u(0) },
        what::FORK => ProcEvent::Fork {
            parent_pid: i(0),
            parent_tgid: i(4),
            child_pid: i(8),
            child_tgid: i(12),
        },
        what::EXEC => ProcEvent::Exec { pid, tgid },
        what::UID => ProcEvent::Uid { pid, tgid },
        what::GID => ProcEvent::Gid { pid, tgid },
        what::SID => ProcEvent::Sid { pid, tgid },
        what::PTRACE => ProcEvent::Ptrace {
            pid,
            tgid,
            tracer_pid: i(8),
            tracer_tgid: i(12),
        },
        what::COMM => ProcEvent::Comm { pid, tgid },
        what::COREDUMP => ProcEvent::Coredump { pid, tgid },
        what::EXIT => ProcEvent::Exit {
            pid,
            tgid,
            exit_code: u(8),
            exit_signal: u(12),
            parent_pid: i(16),
            parent_tgid: i(20),
        },
        what => ProcEvent::Other { what },
    })
}

/// Inode numbers the kernel gives the initial namespaces
/// (`PROC_USER_INIT_INO`, `PROC_PID_INIT_INO` in `linux/proc_ns.h`); they are
/// fixed constants, while other namespaces get dynamically allocated
/// numbers from `0xF0000000` up.
const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Whether this process is in the initial user and pid namespaces — the
/// only place the kernel accepts `PROC_CN_MCAST_LISTEN` from (elsewhere it
/// drops the request without any reply). Reads `/proc/self/ns/{user,pid}`.
pub fn in_initial_namespaces() -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let user = std::fs::metadata("/proc/self/ns/user")?.ino();
    let pid = std::fs::metadata("/proc/self/ns/pid")?.ino();
    Ok(user == PROC_USER_INIT_INO && pid == PROC_PID_INIT_INO)
}

/// Result of one [`EventStream::next_batch`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Batch {
    /// Events in kernel delivery order (possibly empty, e.g. if only
    /// foreign datagrams arrived). Includes [`ProcEvent::Ack`]s.
    Events(Vec<ProcEvent>),
    /// The kernel dropped events (`ENOBUFS`/`NLMSG_OVERRUN`) or a message
    /// could not be decoded. The queued backlog has been discarded; the
    /// caller must rebuild its process table from `/proc` and then resume
    /// calling `next_batch` (events seen after a rescan are idempotent
    /// fork/exit updates of state the rescan may already show).
    Overrun,
    /// Nothing arrived before the timeout, or a signal interrupted the wait.
    Idle,
}

/// Receive buffer: `CONNECTOR_MAX_MSG_SIZE` (16 KiB) plus both headers.
/// Proc events are 76-byte datagrams; the margin is for safety only.
const RECV_BUF_LEN: usize = 16384 + NLMSG_HDRLEN + CN_MSG_HDRLEN;
/// Datagrams read per batch after the first, so one call stays bounded
/// during a fork storm.
const MAX_DATAGRAMS_PER_BATCH: usize = 4096;
/// Datagrams discarded after an overrun before giving up draining.
const MAX_DRAIN_DATAGRAMS: usize = 1 << 20;

/// Batching reader of process events over a [`ConnectorSocket`].
///
/// Reuses one receive buffer; each batch allocates only its `Vec`.
#[derive(Debug)]
pub struct EventStream {
    sock: ConnectorSocket,
    buf: Box<[u8]>,
    /// `SO_RCVTIMEO` currently set, to avoid a syscall per batch.
    timeout: Option<Duration>,
}

enum Outcome {
    Got,
    Empty,
    Lost,
}

impl EventStream {
    /// Opens a subscribed connector socket.
    ///
    /// Fails with `ErrorKind::Unsupported` outside the initial user/pid
    /// namespaces, where the kernel would silently never deliver anything.
    pub fn open() -> io::Result<Self> {
        match in_initial_namespaces() {
            Ok(true) => {}
            Ok(false) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "proc connector only serves listeners in the initial user and pid namespaces",
                ))
            }
            Err(e) => log::warn!("cannot check namespaces via /proc/self/ns: {e}"),
        }
        Ok(Self::from_socket(ConnectorSocket::open()?))
    }

    /// Wraps an already subscribed socket.
    pub fn from_socket(sock: ConnectorSocket) -> Self {
        EventStream {
            sock,
            buf: vec![0u8; RECV_BUF_LEN].into_boxed_slice(),
            timeout: None,
        }
    }

    /// The underlying socket, e.g. to register its fd with epoll.
    pub fn socket(&self) -> &ConnectorSocket {
        &self.sock
    }

    /// Waits up to `timeout` (`None`: forever, zero: don't wait) for a
    /// datagram, then drains whatever else is already queued (bounded).
    ///
    /// Errors are only unexpected socket failures; timeouts, `EINTR` and
    /// kernel drops are [`Batch`] variants.
    pub fn next_batch(&mut self, timeout: Option<Duration>) -> io::Result<Batch> {
        let mut events = Vec::new();
        let nonblocking = timeout.is_some_and(|d| d.is_zero());
        if !nonblocking && self.timeout != timeout {
            self.sock.set_recv_timeout(timeout)?;
            self.timeout = timeout;
        }
        let mut lost = match self.recv_one(nonblocking, &mut events) {
            Ok(Outcome::Empty) => return Ok(Batch::Idle),
            Ok(Outcome::Got) => false,
            Ok(Outcome::Lost) => true,
            Err(e) => return Err(e),
        };
        for _ in 0..MAX_DATAGRAMS_PER_BATCH {
            if lost {
                break;
            }
            match self.recv_one(true, &mut events)? {
                Outcome::Got => {}
                Outcome::Empty => break,
                Outcome::Lost => lost = true,
            }
        }
        if lost {
            self.drain();
            return Ok(Batch::Overrun);
        }
        Ok(Batch::Events(events))
    }

    /// Receives and decodes one datagram into `out`.
    fn recv_one(&mut self, nonblocking: bool, out: &mut Vec<ProcEvent>) -> io::Result<Outcome> {
        let r = match self.sock.recv_from(&mut self.buf, nonblocking) {
            Ok(r) => r,
            Err(e) => {
                return match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => Ok(Outcome::Empty),
                    _ if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        log::warn!("proc connector receive queue overrun: events lost");
                        Ok(Outcome::Lost)
                    }
                    _ => Err(e),
                }
            }
        };
        if !r.from_kernel() {
            log::warn!("ignoring datagram from user port {}", r.sender_port);
            return Ok(Outcome::Got);
        }
        if r.truncated(self.buf.len()) {
            log::warn!("proc connector datagram of {} bytes truncated", r.len);
            return Ok(Outcome::Lost);
        }
        let mut lost = false;
        for item in iter_messages(&self.buf[..r.len]) {
            match item {
                Ok(ev) => out.push(ev),
                Err(EventError::Overrun) => lost = true,
                Err(e) => {
                    log::warn!("undecodable proc connector message: {e}");
                    lost = true;
                }
            }
        }
        Ok(if lost { Outcome::Lost } else { Outcome::Got })
    }

    /// Discards the queued backlog after an overrun, so that stale events
    /// are not applied on top of the caller's fresh /proc rescan.
    fn drain(&mut self) {
        for _ in 0..MAX_DRAIN_DATAGRAMS {
            match self.sock.recv_from(&mut self.buf, true) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of type `ty`, padded to 4 bytes like the kernel.
    fn nl(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&9u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn cn(idx: u32, val: u32, data: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&idx.to_ne_bytes());
        m.extend_from_slice(&val.to_ne_bytes());
        m.extend_from_slice(&5u32.to_ne_bytes()); // seq
        m.extend_from_slice(&0u32.to_ne_bytes()); // ack
        m.extend_from_slice(&(data.len() as u16).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(data);
        m
    }

    /// A kernel-sized (40-byte) `struct proc_event` with `words` in the union.
    fn ev(what: u32, words: &[u32]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&3u32.to_ne_bytes()); // cpu
        m.extend_from_slice(&123_456_789u64.to_ne_bytes()); // timestamp_ns
        for w in words {
            m.extend_from_slice(&w.to_ne_bytes());
        }
        m.resize(40, 0);
        m
    }

    fn msg(what: u32, words: &[u32]) -> Vec<u8> {
        nl(NLMSG_DONE, &cn(CN_IDX_PROC, CN_VAL_PROC, &ev(what, words)))
    }

    fn one(buf: &[u8]) -> Result<ProcEvent, EventError> {
        let mut v = parse_messages(buf);
        assert_eq!(v.len(), 1, "{v:?}");
        v.pop().unwrap()
    }

    #[test]
    fn message_has_kernel_size() {
        // NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_event)) = 16 + 20 + 40.
        assert_eq!(msg(what::FORK, &[1, 2, 3, 4]).len(), 76);
    }

    #[test]
    fn ack() {
        assert_eq!(one(&msg(what::NONE, &[0])), Ok(ProcEvent::Ack { err: 0 }));
        assert_eq!(one(&msg(what::NONE, &[1])), Ok(ProcEvent::Ack { err: 1 }));
    }

    #[test]
    fn fork() {
        assert_eq!(
            one(&msg(what::FORK, &[10, 11, 12, 13])),
            Ok(ProcEvent::Fork {
                parent_pid: 10,
                parent_tgid: 11,
                child_pid: 12,
                child_tgid: 13
            })
        );
    }

    #[test]
    fn simple_pid_tgid_kinds() {
        type Make = fn(i32, i32) -> ProcEvent;
        let cases: [(u32, Make); 6] = [
            (what::EXEC, |pid, tgid| ProcEvent::Exec { pid, tgid }),
            (what::UID, |pid, tgid| ProcEvent::Uid { pid, tgid }),
            (what::GID, |pid, tgid| ProcEvent::Gid { pid, tgid }),
            (what::SID, |pid, tgid| ProcEvent::Sid { pid, tgid }),
            (what::COMM, |pid, tgid| ProcEvent::Comm { pid, tgid }),
            (what::COREDUMP, |pid, tgid| ProcEvent::Coredump {
                pid,
                tgid,
            }),
        ];
        for (w, make) in cases {
            // Trailing words (ruid/euid, comm bytes, coredump parent) are ignored.
            let got = one(&msg(w, &[77, 78, 0x6161_6161, 5]));
            assert_eq!(got, Ok(make(77, 78)), "what {w:#x}");
        }
    }

    #[test]
    fn ptrace() {
        assert_eq!(
            one(&msg(what::PTRACE, &[5, 6, 7, 8])),
            Ok(ProcEvent::Ptrace {
                pid: 5,
                tgid: 6,
                tracer_pid: 7,
                tracer_tgid: 8
            })
        );
    }

    #[test]
    fn exit() {
        assert_eq!(
            one(&msg(what::EXIT, &[20, 21, 0x100, 17, 1, 2])),
            Ok(ProcEvent::Exit {
                pid: 20,
                tgid: 21,
                exit_code: 0x100,
                exit_signal: 17,
                parent_pid: 1,
                parent_tgid: 2
            })
        );
    }

    #[test]
    fn negative_and_unknown() {
        assert_eq!(
            one(&msg(what::EXEC, &[u32::MAX, 0x8000_0000])),
            Ok(ProcEvent::Exec {
                pid: -1,
                tgid: i32::MIN
            })
        );
        assert_eq!(one(&msg(0x400, &[])), Ok(ProcEvent::Other { what: 0x400 }));
        // PROC_EVENT_NONZERO_EXIT (6.6+) is a filter bit, never sent; still Other.
        assert_eq!(
            one(&msg(0x2000_0000, &[])),
            Ok(ProcEvent::Other { what: 0x2000_0000 })
        );
    }

    #[test]
    fn multi_message_buffer() {
        let mut buf = msg(what::FORK, &[1, 1, 2, 2]);
        buf.extend(nl(NLMSG_NOOP, &[]));
        buf.extend(msg(what::EXEC, &[2, 2]));
        buf.extend(nl(NLMSG_ERROR, &0i32.to_ne_bytes())); // an ack: skipped
        buf.extend(nl(NLMSG_DONE, &[])); // end marker: skipped
        buf.extend(msg(what::EXIT, &[2, 2, 0, 17, 1, 1]));
        let got = parse_messages(&buf);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(got[0], Ok(ProcEvent::Fork { child_pid: 2, .. })));
        assert_eq!(got[1], Ok(ProcEvent::Exec { pid: 2, tgid: 2 }));
        assert!(matches!(got[2], Ok(ProcEvent::Exit { pid: 2, .. })));
    }

    #[test]
    fn unpadded_last_message() {
        // A final message whose length is not a multiple of 4 and has no pad.
        let mut buf = msg(what::EXEC, &[4, 4]);
        let mut last = nl(NLMSG_DONE, &cn(1, 1, &ev(what::EXEC, &[5, 5])[..24]));
        let unpadded = u32_at(&last, 0).unwrap() as usize;
        last.truncate(unpadded);
        buf.extend(last);
        let got = parse_messages(&buf);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Ok(ProcEvent::Exec { pid: 5, tgid: 5 }));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = msg(what::EXIT, &[20, 21, 0, 17, 1, 2]);
        assert!(parse_messages(&[]).is_empty());
        for cut in 1..full.len() {
            let got = parse_messages(&full[..cut]);
            assert_eq!(got.len(), 1, "cut {cut}: {got:?}");
            assert!(got[0].is_err(), "cut {cut}: {got:?}");
        }
        assert!(one(&full).is_ok());
    }

    #[test]
    fn truncated_inner_lengths() {
        // nlmsg_len consistent, but the cn_msg / proc_event inside are short.
        assert_eq!(
            one(&nl(NLMSG_DONE, &[0; 10])),
            Err(EventError::TruncatedConnectorHeader { available: 10 })
        );
        assert_eq!(
            one(&nl(NLMSG_DONE, &cn(1, 1, &ev(what::EXIT, &[])[..20]))),
            Err(EventError::TruncatedEvent {
                what: what::EXIT,
                needed: 40,
                available: 20
            })
        );
        assert_eq!(
            one(&nl(NLMSG_DONE, &cn(1, 1, &[1, 0, 0]))),
            Err(EventError::TruncatedEvent {
                what: 0,
                needed: 16,
                available: 3
            })
        );
        // cn_msg.len larger than what follows it.
        let mut c = cn(1, 1, &ev(what::FORK, &[1, 2, 3, 4]));
        c[16..18].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(
            one(&nl(NLMSG_DONE, &c)),
            Err(EventError::BadConnectorLength {
                len: 200,
                available: 40
            })
        );
    }

    #[test]
    fn wrong_connector_id() {
        let buf = nl(NLMSG_DONE, &cn(3, 1, &ev(what::FORK, &[1, 2, 3, 4])));
        assert_eq!(
            one(&buf),
            Err(EventError::WrongConnectorId { idx: 3, val: 1 })
        );
        let buf = nl(NLMSG_DONE, &cn(1, 2, &ev(what::FORK, &[1, 2, 3, 4])));
        assert_eq!(
            one(&buf),
            Err(EventError::WrongConnectorId { idx: 1, val: 2 })
        );
    }

    #[test]
    fn netlink_error_and_overrun() {
        let mut payload = (-libc::ENOBUFS).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]); // the echoed request header
        assert_eq!(
            one(&nl(NLMSG_ERROR, &payload)),
            Err(EventError::Netlink {
                errno: libc::ENOBUFS
            })
        );
        assert_eq!(
            one(&nl(NLMSG_ERROR, &[1, 2])),
            Err(EventError::TruncatedNetlinkError { available: 2 })
        );
        assert_eq!(
            one(&nl(NLMSG_ERROR, &i32::MIN.to_ne_bytes())),
            Err(EventError::Netlink { errno: i32::MIN })
        );
        assert_eq!(one(&nl(NLMSG_OVERRUN, &[])), Err(EventError::Overrun));
        assert_eq!(
            one(&nl(16, &[])),
            Err(EventError::UnexpectedNetlinkType { ty: 16 })
        );
        // A per-message error does not stop the walk.
        let mut buf = nl(NLMSG_OVERRUN, &[]);
        buf.extend(msg(what::EXEC, &[1, 1]));
        assert_eq!(
            parse_messages(&buf),
            vec![
                Err(EventError::Overrun),
                Ok(ProcEvent::Exec { pid: 1, tgid: 1 })
            ]
        );
    }

    #[test]
    fn bad_nlmsg_len_stops_the_walk() {
        for bad in [0u32, 1, 15, 77, u32::MAX] {
            let mut buf = msg(what::EXEC, &[1, 1]);
            buf[0..4].copy_from_slice(&bad.to_ne_bytes());
            buf.extend(msg(what::EXEC, &[2, 2]));
            let got = parse_messages(&buf);
            if bad == 77 {
                // Still inside the buffer: the first message decodes (its
                // length is 1 longer), then the second header is misaligned.
                assert!(got.iter().any(Result::is_err), "{bad}: {got:?}");
            } else {
                assert_eq!(
                    got,
                    vec![Err(EventError::BadNetlinkLength {
                        len: bad,
                        available: 152
                    })],
                    "{bad}"
                );
            }
        }
    }

    /// xorshift64*: deterministic, dependency-free randomness.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut buf = Vec::new();
        for _ in 0..200_000 {
            buf.clear();
            let len = rng.below(300);
            buf.extend((0..len).map(|_| rng.next() as u8));
            // Sometimes make the header plausible so deeper code is reached.
            if len >= 8 && rng.below(2) == 0 {
                let l = (rng.below(len + 1) as u32).max(16).min(len as u32);
                buf[0..4].copy_from_slice(&l.to_ne_bytes());
                buf[4..6].copy_from_slice(&(rng.below(6) as u16).to_ne_bytes());
            }
            let n = parse_messages(&buf).len();
            assert!(n <= len / NLMSG_HDRLEN + 1);
        }
    }

    #[test]
    fn mutated_valid_buffers_never_panic() {
        let mut rng = Rng(42);
        let mut base = Vec::new();
        for w in [what::FORK, what::EXEC, what::EXIT, what::NONE, what::PTRACE] {
            base.extend(msg(w, &[1, 2, 3, 4, 5, 6]));
        }
        for _ in 0..100_000 {
            let mut buf = base.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(buf.len());
                buf[i] = rng.next() as u8;
            }
            buf.truncate(rng.below(buf.len() + 1).max(buf.len() - rng.below(8)));
            for item in iter_messages(&buf) {
                let _ = item;
            }
        }
    }
}
