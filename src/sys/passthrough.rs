//! FUSE passthrough backing files: taking over one another worker registered, and
//! telling whether anyone else holds one.

#![allow(unsafe_code)]

use fuser::{BackingId, ReplyOpen};

/// The backing file `id` of the connection `reply` answers on, as an owned
/// [`BackingId`] (closed when dropped).
///
/// `id` is one registered with this very connection whose owner gave it up unclosed:
/// this worker, which just registered it and took its raw value to record it in the
/// mount's ledger, or a previous worker, which handed it over or was killed with it
/// registered ([`crate::backing`]). This is the only claim on it.
pub fn adopt_backing(reply: &ReplyOpen, id: u32) -> BackingId {
    // SAFETY: `wrap_backing` requires an id that is open, belongs to this FUSE session's
    // connection, and is not closed while the returned value lives. The id was opened
    // on this connection, by this worker (which gave up the `BackingId` with `into_raw`
    // just before this call) or by a previous worker (which gave up its ownership with
    // `into_raw` and exited, or was killed, without closing it). A previous worker's id
    // comes from the handover file or the ledger, each read once, and each id taken from
    // them is wrapped at most once (it is removed from the adopted set as it is
    // wrapped), so nothing else closes it.
    unsafe { reply.wrap_backing(id) }
}

/// Sets the signal a break of a lease on `file` sends to `SIGURG`, ignored by default:
/// [`held_elsewhere`] holds a lease for an instant, and an open by someone else in that
/// instant (root reading `/proc/<daemon>/fd/N`) would otherwise send the default
/// `SIGIO`, which ends the daemon. That open waits for the lease's release, which
/// follows at once.
pub fn quiet_lease_breaks(file: &std::fs::File) -> std::io::Result<()> {
    /// `fcntl.h`'s F_SETSIG (Linux, every architecture), which the libc crate lacks.
    const F_SETSIG: libc::c_int = 10;
    fcntl_int(file, F_SETSIG, libc::SIGURG)
}

/// `fcntl(file, cmd, arg)` for a command that takes an integer argument.
fn fcntl_int(file: &std::fs::File, cmd: libc::c_int, arg: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the commands used here (F_SETSIG, F_SETLEASE) take an integer argument and
    // touch no memory of ours; the descriptor is open for the duration (borrowed from
    // `file`).
    if unsafe { libc::fcntl(file.as_raw_fd(), cmd, arg) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a descriptor other than `file` holds its file open, a mapping included,
/// asked with a write lease, which the kernel grants only to the file's sole opener
/// (`check_conflicting_open`: no other reader, no other writer). A mapping holds the
/// file it was made from, so a memfd some reader mapped through a passthrough open
/// stays held for as long as the mapping lives.
///
/// `file` must be the only writable descriptor of its file, opened through a path (a
/// memfd's own descriptor does not count itself as a writer, so the kernel would never
/// grant it a lease: see `crate::backing`), with [`quiet_lease_breaks`] set.
///
/// An error means the kernel does not grant leases here (`fs.leases-enable` = 0, or a
/// file system without them): the caller then takes the file as held.
pub fn held_elsewhere(file: &std::fs::File) -> std::io::Result<bool> {
    // A lease taken is released before returning.
    match fcntl_int(file, libc::F_SETLEASE, libc::F_WRLCK) {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(true),
        r => r?,
    }
    fcntl_int(file, libc::F_SETLEASE, libc::F_UNLCK)?;
    Ok(false)
}

/// Takes a write lease on `file` and keeps it: what [`held_elsewhere`] leaves behind
/// when its thread dies between its two calls (tests only).
#[cfg(test)]
pub fn take_write_lease(file: &std::fs::File) -> std::io::Result<()> {
    fcntl_int(file, libc::F_SETLEASE, libc::F_WRLCK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsRawFd as _;

    /// What makes a backing file safe to rewrite: the kernel tells whether anyone else
    /// holds the memfd, a mapping included, which outlives the descriptor it came from.
    #[test]
    fn a_memfd_someone_else_holds_or_maps_is_told_apart() {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
        let memfd = File::from(memfd_create(c"test", MFdFlags::MFD_CLOEXEC).expect("memfd"));
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        assert!(
            held_elsewhere(&memfd).expect("lease"),
            "a memfd's own descriptor never gets one"
        );
        let f = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("reopen");
        drop(memfd);
        quiet_lease_breaks(&f).expect("F_SETSIG");
        assert!(!held_elsewhere(&f).expect("lease"), "alone");
        let reader = File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).expect("open");
        assert!(
            held_elsewhere(&f).expect("lease"),
            "another reader has it open"
        );
        let len = std::num::NonZeroUsize::new(4096).expect("len");
        // SAFETY: a fresh read-only mapping at an address the kernel picks; nothing
        // reads it, and it is unmapped below.
        let map = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                &reader,
                0,
            )
        }
        .expect("mmap");
        drop(reader);
        assert!(
            held_elsewhere(&f).expect("lease"),
            "mapped, its descriptor closed"
        );
        // SAFETY: the mapping made above, of that length, not used after.
        unsafe { munmap(map, 4096) }.expect("munmap");
        assert!(!held_elsewhere(&f).expect("lease"), "unmapped");
    }
}
