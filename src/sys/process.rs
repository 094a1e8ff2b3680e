//! Process creation and mount moves that the standard library and `nix` offer only as
//! `unsafe` calls.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Which side of a [`fork`] this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child.
    Child,
}

/// `fork(2)`.
///
/// Callers must fork only while the process is single-threaded (vprocfs forks before it
/// starts any thread), because the child may then do anything, not just async-signal-safe
/// calls.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the hazard is a child of
    // a multi-threaded parent calling non-async-signal-safe functions (locks held by
    // threads that do not exist in the child). Callers fork only while single-threaded,
    // as documented above, so the child's copy of every lock is consistent.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mount at
/// `path`, which can be attached in another mount namespace with [`move_mount_to`].
pub fn open_tree_clone(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the syscall
    // takes (int dirfd, const char *path, unsigned flags) and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attaches a mount
/// made by [`open_tree_clone`] at `target` in the caller's mount namespace.
pub fn move_mount_to(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    let empty = c"";
    // SAFETY: both strings are valid and NUL-terminated for the duration of the call;
    // `tree` is an open descriptor we own; the syscall reads its arguments only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
