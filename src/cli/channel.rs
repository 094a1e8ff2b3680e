//! The channel between `vprocfs serve`'s supervisor and its worker ([`super::supervise`]):
//! a `SOCK_SEQPACKET` socket pair, one message a packet, a `/dev/fuse` descriptor passed
//! with the messages that hold a VPS's mount. This file is the wire: the messages, how
//! they are read and written, and the worker's side ([`Channel`]); what the supervisor
//! does with them is in `supervise.rs`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, MsgFlags, SockType};

/// The longest message: a name and a path (`PATH_MAX` is 4096 bytes) with room to spare.
pub(super) const MAX_MESSAGE: usize = 8192;

/// Descriptors a received message has room for. One is all a message may carry; the
/// room for more lets extra ones be received (and closed) rather than cut off, which
/// `nix` reports only as an error, leaving the ones that fit out of reach.
const MAX_FDS: usize = 16;

/// A message of the channel between a worker and its supervisor. Words are what they
/// are; an entry is `VERB NAME PATH`, with the path last so that it may hold spaces.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// Worker: its VPSes are set up; the supervisor may mount the shared view.
    Mount,
    /// Supervisor: the shared view is mounted (the kernel's INIT is on its way).
    Mounted,
    /// Worker: it serves.
    Ready,
    /// Supervisor, with the descriptor: a per-VPS mount held from an earlier worker.
    Held { name: String, path: PathBuf },
    /// Supervisor: no more `held`.
    End,
    /// Worker, with the descriptor: hold this per-VPS mount (unmount it at the end).
    Hold { name: String, path: PathBuf },
    /// Worker: forget the mount of this VPS (the worker unmounts it).
    Release { name: String },
}

impl Message {
    /// Whether it must come with a descriptor (and the others must not).
    pub(super) fn carries_fd(&self) -> bool {
        matches!(self, Message::Held { .. } | Message::Hold { .. })
    }
}

/// Whether `name` is a VPS name (as `--vps` takes it).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Reads one message's text.
pub(super) fn parse(text: &str) -> Result<Message, &'static str> {
    if text.contains(['\n', '\0']) {
        return Err("a newline or NUL in a message");
    }
    let entry = |rest: &str| -> Result<(String, PathBuf), &'static str> {
        let (name, path) = rest.split_once(' ').ok_or("expected NAME PATH")?;
        if !valid_name(name) {
            return Err("not a VPS name");
        }
        if !Path::new(path).is_absolute() {
            return Err("not an absolute path");
        }
        Ok((name.to_string(), PathBuf::from(path)))
    };
    Ok(match text.split_once(' ') {
        None => match text {
            "mount" => Message::Mount,
            "mounted" => Message::Mounted,
            "ready" => Message::Ready,
            "end" => Message::End,
            _ => return Err("unknown message"),
        },
        Some(("held", rest)) => {
            let (name, path) = entry(rest)?;
            Message::Held { name, path }
        }
        Some(("hold", rest)) => {
            let (name, path) = entry(rest)?;
            Message::Hold { name, path }
        }
        Some(("release", name)) if valid_name(name) => Message::Release {
            name: name.to_string(),
        },
        Some(("release", _)) => return Err("not a VPS name"),
        Some(_) => return Err("unknown message"),
    })
}

/// The text of an entry (`VERB NAME PATH`), or why `name` and `path` cannot make one.
fn entry_text(verb: &str, name: &str, path: &Path) -> io::Result<String> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    if !valid_name(name) {
        return Err(invalid(format!("{name:?} is not a VPS name")));
    }
    let text = path
        .to_str()
        .filter(|p| path.is_absolute() && !p.contains(['\n', '\0']))
        .ok_or_else(|| invalid(format!("{path:?}: not an absolute path of one line")))?;
    Ok(format!("{verb} {name} {text}"))
}

/// Sends `text` as one packet, with `fd` when given: a single `sendmsg`, so that
/// messages that several threads send at once stay whole and each descriptor arrives
/// with its own message.
pub(super) fn send(sock: BorrowedFd<'_>, text: &str, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    // An empty packet would read as the end of the channel.
    if text.is_empty() || text.len() > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a message is 1 to 8192 bytes",
        ));
    }
    let iov = [IoSlice::new(text.as_bytes())];
    let rights: Vec<RawFd> = fd.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsgs: &[ControlMessage<'_>] = if rights.is_empty() {
        &[]
    } else {
        &[ControlMessage::ScmRights(&rights)]
    };
    loop {
        // MSG_NOSIGNAL: a peer that has ended is an error (EPIPE), not a signal.
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`receive`] got.
enum Received {
    /// A packet of UTF-8 text, with the descriptor that came with it.
    Text(String, Option<OwnedFd>),
    /// A packet that is no message (why): cut short, not UTF-8, several descriptors.
    Refused(&'static str),
    /// The peer closed its end (or the socket was shut down, or failed).
    End,
}

/// Receives one packet. Received descriptors are close-on-exec: the supervisor's copies
/// must reach later workers only as messages, and a worker's must not leak to commands.
fn receive(sock: BorrowedFd<'_>) -> Received {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::debug!("channel: {e}");
                return Received::End;
            }
        };
        let (bytes, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        let mut fds: Vec<OwnedFd> = Vec::new();
        let cut = match msg.cmsgs() {
            Ok(cmsgs) => {
                cmsgs.for_each(|c| fds.extend(crate::sys::process::received_fds(c)));
                false
            }
            Err(_) => true,
        };
        if bytes == 0 && fds.is_empty() && !cut {
            return Received::End;
        }
        if cut {
            return Received::Refused("more descriptors than there is room for");
        }
        if truncated {
            return Received::Refused("longer than 8192 bytes");
        }
        if fds.len() > 1 {
            return Received::Refused("more than one descriptor");
        }
        return match String::from_utf8(buf[..bytes].to_vec()) {
            Ok(text) => Received::Text(text, fds.pop()),
            Err(_) => Received::Refused("not UTF-8"),
        };
    }
}

/// The next well-formed message from `peer` (for the log), with its descriptor; `None`
/// at the end. Malformed ones are logged and skipped (their descriptor closed).
pub(super) fn next_message(sock: BorrowedFd<'_>, peer: &str) -> Option<(Message, Option<OwnedFd>)> {
    loop {
        match receive(sock) {
            Received::End => return None,
            Received::Refused(why) => log::warn!("refused a message from {peer}: {why}"),
            // A worker from before this channel (started by a downgrade) ends its
            // words with a newline.
            Received::Text(text, fd) => match parse(text.strip_suffix('\n').unwrap_or(&text)) {
                Err(why) => log::warn!("refused {text:?} from {peer}: {why}"),
                Ok(m) if m.carries_fd() != fd.is_some() => {
                    let why = if fd.is_some() {
                        "a descriptor where none belongs"
                    } else {
                        "no descriptor"
                    };
                    log::warn!("refused {text:?} from {peer}: {why}");
                }
                Ok(m) => return Some((m, fd)),
            },
        }
    }
}

/// Gives a new worker the per-VPS mounts held (`held NAME PATH` with the descriptor,
/// each), then `end`.
pub(super) fn send_held(sock: BorrowedFd<'_>, held: &[HeldMount]) -> io::Result<()> {
    for m in held {
        send(
            sock,
            &entry_text("held", &m.name, &m.path)?,
            Some(m.fd.as_fd()),
        )?;
    }
    send(sock, "end", None)
}

/// A per-VPS mount: the VPS's name, where it is mounted, and a `/dev/fuse` descriptor of
/// its connection (the supervisor's copy, or one handed to a worker).
#[derive(Debug)]
pub struct HeldMount {
    pub name: String,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The worker's side of the socket to its supervisor, for the worker's whole life.
///
/// A `SOCK_SEQPACKET` socket: each message is one packet (a line of UTF-8 without its
/// newline), so a descriptor sent with a message arrives with that message and no
/// other, and messages sent by several threads at once (ctl threads adding and removing
/// VPSes) do not interleave. The exchange:
/// - first, from the supervisor: `held NAME PATH` (with the descriptor) for each
///   per-VPS mount held from earlier workers, then `end` ([`Channel::take_held`]);
/// - for the first worker: `mount` when its VPSes are set up, answered by `mounted`;
/// - `ready` when it serves;
/// - at any time: `hold NAME PATH` (with the descriptor) and `release NAME`.
pub struct Channel {
    sock: Option<OwnedFd>,
    /// A stream socket: the supervisor predates this channel (it was started before an
    /// upgrade that started this worker) and speaks only newline-terminated words.
    lines: bool,
}

impl Channel {
    /// The socket inherited as descriptor `fd`. Without it the channel is inert: the
    /// worker is not told of held mounts, and cannot have its own held.
    pub fn inherited(fd: i32) -> Channel {
        match crate::sys::process::inherited_fd(fd) {
            Ok(sock) => Channel::new(sock),
            Err(e) => {
                log::warn!("cannot talk to the supervisor: {e}");
                Channel {
                    sock: None,
                    lines: false,
                }
            }
        }
    }

    pub(super) fn new(sock: OwnedFd) -> Channel {
        let lines = getsockopt(&sock, sockopt::SockType) == Ok(SockType::Stream);
        if lines {
            log::warn!(
                "the supervisor predates per-VPS mounts: they will not outlive this daemon \
                 (restart `vprocfs serve` to have them kept)"
            );
        }
        Channel {
            sock: Some(sock),
            lines,
        }
    }

    /// The per-VPS mounts the supervisor holds from earlier workers, which this worker
    /// is to serve: read first thing, since the supervisor sends them before anything
    /// else (for the first worker, just `end`).
    pub fn take_held(&self) -> Vec<HeldMount> {
        let mut held = Vec::new();
        let Some(sock) = self.sock.as_ref().filter(|_| !self.lines) else {
            return held;
        };
        loop {
            match next_message(sock.as_fd(), "the supervisor") {
                Some((Message::Held { name, path }, Some(fd))) => {
                    held.push(HeldMount { name, path, fd })
                }
                Some((Message::End, _)) => return held,
                Some((m, _)) => log::warn!("refused {m:?} from the supervisor: out of place"),
                None => {
                    log::warn!("the supervisor closed the channel before it said end");
                    return held;
                }
            }
        }
    }

    /// Waits for the supervisor's next message, which it says is `word`.
    pub fn wait_for(&self, word: &str) -> bool {
        let Some(sock) = &self.sock else {
            return false;
        };
        if self.lines {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while let Ok(1) = nix::unistd::read(sock, &mut byte) {
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
            return line == word.as_bytes();
        }
        matches!(receive(sock.as_fd()), Received::Text(text, None) if text == word)
    }

    /// Says `word`.
    pub fn say(&self, word: &str) {
        let Some(sock) = &self.sock else {
            return;
        };
        let sent = if self.lines {
            nix::unistd::write(sock, format!("{word}\n").as_bytes())
                .map(drop)
                .map_err(io::Error::from)
        } else {
            send(sock.as_fd(), word, None)
        };
        if let Err(e) = sent {
            log::warn!("cannot tell the supervisor {word:?}: {e}");
        }
    }

    /// Has the supervisor hold a copy of `fd`, the `/dev/fuse` descriptor of VPS
    /// `name`'s mount at `path`, so that the mount outlives this worker: later workers
    /// are given it, and the supervisor unmounts `path` when it stops. A second `hold`
    /// of the same name replaces the first (its copy is closed).
    pub fn hold(&self, name: &str, path: &Path, fd: BorrowedFd<'_>) -> io::Result<()> {
        let text = entry_text("hold", name, path)?;
        send(self.packets()?, &text, Some(fd))
    }

    /// Has the supervisor forget VPS `name`'s mount and close its copy; the worker
    /// unmounts it itself.
    pub fn release(&self, name: &str) -> io::Result<()> {
        if !valid_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a VPS name"),
            ));
        }
        send(self.packets()?, &format!("release {name}"), None)
    }

    /// The socket, if it carries descriptors.
    fn packets(&self) -> io::Result<BorrowedFd<'_>> {
        match &self.sock {
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no channel to the supervisor",
            )),
            Some(_) if self.lines => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the supervisor predates per-VPS mounts",
            )),
            Some(sock) => Ok(sock.as_fd()),
        }
    }
}
