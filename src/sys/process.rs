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
    open_tree_clone_in(libc::AT_FDCWD, path)
}

/// [`open_tree_clone`] of `name` in directory `dir`: a bind of a file made in a
/// [`detached_tmpfs`].
pub fn open_tree_clone_at(dir: &OwnedFd, name: &Path) -> io::Result<OwnedFd> {
    open_tree_clone_in(dir.as_raw_fd(), name)
}

fn open_tree_clone_in(dirfd: i32, path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; `dirfd` is
    // AT_FDCWD or a descriptor the caller keeps open; the syscall takes (int dirfd,
    // const char *path, unsigned flags) and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) };
    owned(fd)
}

/// A descriptor the kernel just returned (or -1 with errno) as an owned one.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new tmpfs of at most 32 MiB, named `vprocfs` (as `df` shows its binds), mounted
/// nowhere (`fsopen`, `fsconfig`, `fsmount`): the descriptor of its root, where files
/// are made with `openat` and bound elsewhere with [`open_tree_clone_at`]. It leaves no
/// trace in any mount table and goes with its last bind.
pub fn detached_tmpfs() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const MOUNT_ATTR_NOSUID: u32 = 0x2;
    const MOUNT_ATTR_NODEV: u32 = 0x4;
    const MOUNT_ATTR_NOEXEC: u32 = 0x8;
    // SAFETY: a valid NUL-terminated name that outlives the call; returns a new fd or -1.
    let fs = owned(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    fsconfig(&fs, Some((c"source", c"vprocfs")))?;
    fsconfig(&fs, Some((c"size", c"32m")))?;
    fsconfig(&fs, None)?;
    let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: `fs` is a created fs context; the syscall takes (int, unsigned, unsigned)
    // and returns a new mount fd or -1.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// `fsconfig` of fs context `fs`: sets option `key` to `value`
/// (`FSCONFIG_SET_STRING`), or with `None` makes the file system
/// (`FSCONFIG_CMD_CREATE`).
fn fsconfig(fs: &OwnedFd, set: Option<(&std::ffi::CStr, &std::ffi::CStr)>) -> io::Result<()> {
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    let (cmd, key, value) = match set {
        Some((k, v)) => (FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr()),
        None => (FSCONFIG_CMD_CREATE, std::ptr::null(), std::ptr::null()),
    };
    // SAFETY: `fs` is an open fs-context descriptor; `key` and `value` are null (for
    // CMD_CREATE, which reads neither) or NUL-terminated strings that outlive the call,
    // which only reads them; aux is 0.
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key, value, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// `dup3(src, dst, O_CLOEXEC)`: makes descriptor number `dst`, which something else owns
/// and keeps using, refer to what `src` refers to, atomically (no moment when `dst` is
/// closed). A daemon taking over a live FUSE connection uses it to swap the connection in
/// under a session that was set up on a stand-in descriptor.
pub fn replace_fd(src: &OwnedFd, dst: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: dup3 takes two integers and a flag and touches no memory of ours. `dst` is
    // an open descriptor owned by a live object, which goes on owning it: only the open
    // file behind the number changes, so no owner is left with a dangling number.
    let r = unsafe { libc::dup3(src.as_raw_fd(), dst, libc::O_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of descriptor `fd`, inherited from the parent process (which named it
/// on the command line), and marks it close-on-exec so that it goes no further.
///
/// Call it once per inherited number, before anything else in the process could have
/// taken that number as its own.
pub fn inherited_fd(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) only reads the descriptor table: it tells whether `fd` is
    // open, and touches no memory of ours.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} was not inherited"),
        ));
    }
    // SAFETY: `fd` is open (checked above) and was inherited across exec for this
    // process to take; nothing in this process has opened or wrapped it (the caller
    // takes each inherited number once, at start-up), so this is its only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(io::Error::from)?;
    Ok(owned)
}

/// Takes ownership of the descriptors that an `SCM_RIGHTS` control message carried:
/// `recvmsg` installed each of them in this process's table as a new descriptor, known
/// only by the number in `cmsg`. Any other control message gives none.
///
/// Call it once per control message, with one that `recvmsg` has just returned (never
/// a made-up one): a second call with the same message would make a second owner.
pub fn received_fds(cmsg: nix::sys::socket::ControlMessageOwned) -> Vec<OwnedFd> {
    match cmsg {
        nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds
            .into_iter()
            .map(|fd| {
                // SAFETY: the kernel installed `fd` while receiving this message, so it
                // is open, and nothing in this process has wrapped it yet: the caller
                // passes each received message here once, straight from recvmsg, which
                // makes the OwnedFd its only owner.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Gives the calling process what a freshly started process has: every signal's default
/// disposition and an empty signal mask. `exec` keeps ignored signals ignored and the
/// mask as it is, and the Rust runtime ignores SIGPIPE, so a command started from here
/// would otherwise inherit both (`yes | head` would behave differently, and a shell
/// could not trap a signal it inherited as ignored).
///
/// Every signal is reset, real-time ones included, through the `rt_sigaction` system
/// call itself: glibc's `sigaction` refuses signals 32 and 33, which it reserves, and
/// glibc's own `posix_spawn` starts children with those two ignored (a daemon started
/// by a multi-threaded program has them so), which `exec` would pass on to CMD.
pub fn reset_signals() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    // The kernel's `struct sigaction` (handler, flags, restorer, mask in some order, at
    // most 32 bytes on every architecture): all zero is SIG_DFL with no flags and an
    // empty mask, whatever the order. Larger than needed; the kernel reads its own size.
    let dfl = [0u64; 8];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid, readable buffer larger than the kernel's sigaction,
        // the old action is not asked for (null), and the mask size is the kernel's
        // (8 bytes). Installing SIG_DFL runs no code of ours in a signal context. An
        // error (a signal number the kernel lacks) leaves that signal as it is.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// `ioctl(fd, NS_GET_NSTYPE)`: the `CLONE_NEW*` type of the namespace open at `fd`.
pub fn ns_type(fd: &impl std::os::fd::AsRawFd) -> io::Result<i32> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and touches no memory of ours; it
    // returns the type or -1 with errno, for any descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// `pidfd_open(pid, 0)`: a descriptor of process `pid` (in the caller's pid namespace)
/// that names that very process, whatever later takes its number.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and touches no memory of ours; it returns a
    // new descriptor, which is owned here alone, or -1 with errno.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd =
        std::os::fd::RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the process of `pidfd` has not been reaped yet (a zombie counts): signal 0
/// through the descriptor, which checks existence without sending anything. `None` when
/// the kernel does not say (any error but `ESRCH`).
pub fn pidfd_alive(pidfd: &OwnedFd) -> Option<bool> {
    // SAFETY: pidfd_send_signal with signal 0 and no siginfo touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match r {
        0 => Some(true),
        _ if io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) => Some(false),
        _ => None,
    }
}
