//! A daemon taking over a live FUSE connection from a daemon that died or stepped down.
//!
//! The connection outlives its daemon as long as some process holds its `/dev/fuse`
//! descriptor (the supervisor of `vprocfs serve` does): readers' requests then wait in
//! the kernel's queue instead of failing with `ENOTCONN`. A new daemon needs two things
//! the kernel gives only once per connection or not at all:
//!
//! - The `INIT` handshake, which `fuser` insists on before serving. The connection is
//!   initialised already, so the new session is set up on a stand-in socket that carries
//!   a made-up `INIT` (its reply goes nowhere), and the connection's descriptor is then
//!   put in place under the session's descriptor number ([`crate::sys::process::replace_fd`]).
//! - The requests the old daemon had read but not answered. `FUSE_NOTIFY_RESEND` (Linux
//!   6.9) puts them back in the queue, so the readers waiting on them get their answer
//!   from the new daemon.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use fuser::{Filesystem, Session, SessionACL};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// `FUSE_INIT`'s opcode.
const FUSE_INIT: u32 = 26;
/// `FUSE_NOTIFY_RESEND`'s notification code.
const FUSE_NOTIFY_RESEND: i32 = 7;

/// The bytes of an `INIT` request as the kernel sends it: a 40-byte `fuse_in_header`,
/// then a 64-byte `fuse_init_in` (protocol 7.`minor`, no capabilities offered).
pub fn init_request(minor: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(104);
    b.extend_from_slice(&104u32.to_le_bytes()); // len
    b.extend_from_slice(&FUSE_INIT.to_le_bytes()); // opcode
    b.extend_from_slice(&1u64.to_le_bytes()); // unique
    b.extend_from_slice(&0u64.to_le_bytes()); // nodeid
    b.extend_from_slice(&[0u8; 16]); // uid, gid, pid, extension length + padding
    b.extend_from_slice(&7u32.to_le_bytes()); // major
    b.extend_from_slice(&minor.to_le_bytes());
    b.extend_from_slice(&(128u32 * 1024).to_le_bytes()); // max_readahead
    b.extend_from_slice(&[0u8; 4 + 4 + 44]); // flags, flags2, unused
    b
}

/// The bytes of a `FUSE_NOTIFY_RESEND` notification: a `fuse_out_header` with unique 0
/// and the notification code in the error field.
pub fn resend_notification() -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&16u32.to_le_bytes());
    b[4..8].copy_from_slice(&FUSE_NOTIFY_RESEND.to_le_bytes());
    b
}

/// A session serving `fs` on `fuse`, a connection another daemon initialised. Requests
/// that daemon left unanswered are asked for again; on kernels without
/// `FUSE_NOTIFY_RESEND` they stay unanswered (their readers can be interrupted) and a
/// warning says so.
pub fn adopt<FS: Filesystem>(
    fs: FS,
    fuse: OwnedFd,
    config: fuser::Config,
) -> io::Result<Session<FS>> {
    let (ours, stand_in) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    nix::unistd::write(&ours, &init_request(31)).map_err(io::Error::from)?;
    let session = Session::from_fd(fs, stand_in, SessionACL::All, config)?;
    crate::sys::process::replace_fd(&fuse, session.as_fd().as_raw_fd())?;
    drop((fuse, ours));
    match nix::unistd::write(session.as_fd(), &resend_notification()) {
        Ok(_) => {}
        Err(e) => log::warn!(
            "the kernel cannot resend requests the previous daemon left ({e}): \
             their readers wait until interrupted"
        ),
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let init = init_request(31);
        assert_eq!(init.len(), 104);
        assert_eq!(u32::from_le_bytes(init[..4].try_into().unwrap()), 104);
        assert_eq!(
            u32::from_le_bytes(init[4..8].try_into().unwrap()),
            FUSE_INIT
        );
        assert_eq!(u32::from_le_bytes(init[40..44].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(init[44..48].try_into().unwrap()), 31);
        let r = resend_notification();
        assert_eq!(r[..8], [16, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(r[8..], [0; 8]);
    }
}
