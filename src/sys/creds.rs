//! Doing a system call as another task would: on a thread of its own that has taken on
//! that task's credentials (ids, supplementary groups, capabilities) and its UTS, IPC,
//! network and cgroup namespaces, so that the kernel itself decides whether a write through the
//! view is allowed, and where it lands (a per-namespace sysctl).
//!
//! Linux keeps credentials and these namespaces per thread; the C library's `setuid`
//! family changes them for every thread of a process, the raw system calls used here
//! for the calling thread alone. The thread ends when its work is done, so the daemon's
//! other threads never run with anything but their own credentials.
//!
//! A task in another user namespace than the daemon's has its capabilities there, not
//! in the daemon's: the thread then takes none, which never grants more than the
//! kernel would (the namespace owner's rights, which the kernel grants by the effective
//! uid, still follow from the ids).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// What a task is allowed, as its `status` shows it from the daemon's namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Real, effective, saved and file-system user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and file-system group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective, permitted and inheritable capabilities (in the daemon's user
    /// namespace; 0 for a task in another).
    pub cap_eff: u64,
    /// Permitted capabilities.
    pub cap_prm: u64,
    /// Inheritable capabilities.
    pub cap_inh: u64,
}

impl Identity {
    /// The identity a task's `status` shows, read by the one parser of that file;
    /// `None` where a line is missing or malformed.
    pub fn parse(status: &[u8]) -> Option<Identity> {
        Identity::of_status(&crate::render::parse_status(status).ok()?)
    }

    /// The identity in a parsed `status`: `None` without its `Groups` and capability
    /// lines.
    pub fn of_status(s: &crate::render::Status) -> Option<Identity> {
        Some(Identity {
            uid: s.uid,
            gid: s.gid,
            groups: s.groups.clone()?,
            cap_eff: s.cap_eff?,
            cap_prm: s.cap_prm?,
            cap_inh: s.cap_inh?,
        })
    }

    /// The identity of task `tid`, and the namespaces (UTS, IPC, network, cgroup) it has
    /// apart from the daemon's; its capabilities count only in the daemon's user
    /// namespace.
    pub fn of_task(tid: i32) -> io::Result<(Identity, Vec<File>)> {
        let proc = |rel: &str| crate::host::proc_path(&format!("{tid}/{rel}"));
        let status = std::fs::read(proc("status"))?;
        let mut id = Identity::parse(&status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable status"))?;
        if crate::host::ns_inode(tid, "user")? != crate::host::own_ns_inode("user")? {
            id.cap_eff = 0;
            id.cap_prm = 0;
            id.cap_inh = 0;
        }
        Ok((id, namespaces_of(tid)?))
    }
}

/// The namespaces of task `tid` that decide what `/proc/sys`, `/proc/sysvipc` and a
/// process's `cgroup` show and where a write lands (UTS, IPC, network, cgroup), those
/// apart from the daemon's.
pub fn namespaces_of(tid: i32) -> io::Result<Vec<File>> {
    use crate::host::{ns_inode, own_ns_inode};
    let mut namespaces = Vec::new();
    for name in ["uts", "ipc", "net", "cgroup"] {
        if ns_inode(tid, name)? != own_ns_inode(name)? {
            namespaces.push(File::open(crate::host::proc_path(&format!(
                "{tid}/ns/{name}"
            )))?);
        }
    }
    Ok(namespaces)
}

/// Runs `f` on a thread that has entered `namespaces` and taken on `id`.
pub fn run_as<T: Send>(
    id: &Identity,
    namespaces: &[File],
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            for ns in namespaces {
                nix::sched::setns(ns, nix::sched::CloneFlags::empty()).map_err(io::Error::from)?;
            }
            take_on(id)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a credentials thread panicked")))
    })
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes the calling thread's credentials `id`'s.
fn take_on(id: &Identity) -> io::Result<()> {
    const PR_SET_KEEPCAPS: libc::c_long = 8;
    // SAFETY: each call below is a raw system call with integer arguments, except
    // setgroups, which reads `id.groups.len()` gids from a pointer to that many; none
    // keeps a pointer. Being raw calls, they change the calling thread only (the C
    // library's wrappers would change every thread of the daemon).
    unsafe {
        // Keep the permitted set across the change of uids, to set it exactly below.
        check(libc::syscall(libc::SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
        check(libc::syscall(
            libc::SYS_setgroups,
            id.groups.len(),
            id.groups.as_ptr(),
        ))?;
        check(libc::syscall(
            libc::SYS_setresgid,
            id.gid[0],
            id.gid[1],
            id.gid[2],
        ))?;
        check(libc::syscall(
            libc::SYS_setresuid,
            id.uid[0],
            id.uid[1],
            id.uid[2],
        ))?;
        // setfsuid/setfsgid return the previous value, never an error.
        libc::syscall(libc::SYS_setfsgid, id.gid[3]);
        libc::syscall(libc::SYS_setfsuid, id.uid[3]);
    }
    set_caps(id.cap_eff, id.cap_prm, id.cap_inh)
}

/// The header of `capget(2)`/`capset(2)`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// One 32-bit word of each capability set; version 3 takes two.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two [`CapData`] words.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// `capset(2)` of the calling thread (version 3: two 32-bit words per set).
fn set_caps(eff: u64, prm: u64, inh: u64) -> io::Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let word = |v: u64, i: u32| (v >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: word(eff, i),
        permitted: word(prm, i),
        inheritable: word(inh, i),
    });
    // SAFETY: capset reads one header and two data words from the pointers given,
    // both valid for the duration of the call; pid 0 is the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    check(r)
}

/// Opens `path` for writing, and writes `data` to it when given, as the task of
/// identity `id` in user namespace `userns` (an open `/proc/<pid>/ns/user`) would: a
/// forked child takes on the task's ids and groups (the kernel's numbering, while it is
/// still in the daemon's namespace, where it keeps every capability), joins `userns`
/// (which a multi-threaded process cannot), and takes the task's capabilities, which
/// count there. Its credentials are then the task's, so the kernel decides an id map's
/// write (`uid_map`, `gid_map`, `setgroups`, `projid_map`) by the writer's own: the
/// opener's namespace (the map's own or its parent's), its capabilities in the map's
/// namespace and its parent, the owner's rule for a single id of its own, and whether
/// the creator of its own namespace could map root. Without `data`, only the open is
/// made: the checks the kernel makes at open, at the writer's open.
pub fn as_task_in_user_ns(
    id: &Identity,
    userns: &File,
    path: &std::path::Path,
    data: Option<&[u8]>,
) -> io::Result<()> {
    in_child(userns, libc::CLONE_NEWUSER, Some(id), path, data)
}

/// Writes `data` to `path` from inside the pid namespace `pidns` (an open
/// `/proc/<pid>/ns/pid`), for a sysctl the kernel answers for its writer's pid
/// namespace (`ns_last_pid`, `pid_max`, `cad_pid`: `task_active_pid_ns(current)`),
/// which no thread of the daemon can enter: joining a pid namespace moves only the
/// joiner's children into it, so a forked child joins it and forks the writer, which
/// takes a pid there for its moment.
pub fn write_in_pid_ns(pidns: &File, path: &std::path::Path, data: &[u8]) -> io::Result<()> {
    in_child(pidns, libc::CLONE_NEWPID, None, path, Some(data))
}

/// [`as_task_in_user_ns`] and [`write_in_pid_ns`]: a forked child takes on identity
/// `id` if given, joins namespace `ns` of type `nstype`, opens `path` for writing and
/// writes `data` if given (a pid namespace: through a child of its own, the first task
/// there).
fn in_child(
    ns: &File,
    nstype: libc::c_int,
    id: Option<&Identity>,
    path: &std::path::Path,
    data: Option<&[u8]>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let c = c_path(path)?;
    let ns = ns.as_raw_fd();
    // The ids taken on in the daemon's namespace keep every capability (for `setns`,
    // which asks for CAP_SYS_ADMIN in the namespace joined); the task's own are taken
    // once there. Made before the fork: the child allocates nothing.
    let own = match id {
        Some(_) => effective_caps(0)?,
        None => 0,
    };
    let ids = id.map(|id| Identity {
        cap_eff: own,
        cap_prm: own,
        cap_inh: 0,
        ..id.clone()
    });
    let caps = id.map(|id| (id.cap_eff, id.cap_prm, id.cap_inh));
    // SAFETY: the child runs in a copy of a multi-threaded process, where only
    // async-signal-safe calls are safe: it makes raw system calls only (prctl,
    // setgroups, setres[ug]id, setfs[ug]id, capset, setns, fork, open, write, waitpid,
    // _exit) on memory prepared before the fork (`c`, `data`, `ids`, `caps`; an
    // `io::Error` of an errno allocates nothing), and never returns into Rust code.
    // The parent only waits for it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; each exit status carries the errno (1..255) or 0.
        unsafe {
            let errno = || *libc::__errno_location();
            let fail = |e: io::Error| -> ! { libc::_exit(e.raw_os_error().unwrap_or(libc::EIO)) };
            if let Some(ids) = &ids {
                if let Err(e) = take_on(ids) {
                    fail(e);
                }
            }
            if libc::setns(ns, nstype) != 0 {
                libc::_exit(errno());
            }
            if let Some((eff, prm, inh)) = caps {
                if let Err(e) = set_caps(eff, prm, inh) {
                    fail(e);
                }
            }
            if nstype == libc::CLONE_NEWPID {
                let writer = libc::fork();
                if writer < 0 {
                    libc::_exit(errno());
                }
                if writer > 0 {
                    let mut status = 0;
                    if libc::waitpid(writer, &mut status, 0) < 0 {
                        libc::_exit(errno());
                    }
                    libc::_exit(match libc::WIFEXITED(status) {
                        true => libc::WEXITSTATUS(status),
                        false => libc::EIO,
                    });
                }
            }
            let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                libc::_exit(errno());
            }
            if let Some(data) = data {
                if libc::write(fd, data.as_ptr().cast(), data.len()) < 0 {
                    libc::_exit(errno());
                }
            }
            libc::_exit(0);
        }
    }
    reap(pid)
}

/// `path` for a system call a forked child makes.
fn c_path(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Waits for forked child `pid`, whose exit status is 0 or the errno of what failed.
fn reap(pid: libc::pid_t) -> io::Result<()> {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => {
            Err(io::Error::from_raw_os_error(errno))
        }
        Ok(_) => Err(io::Error::other("a forked helper was killed")),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// `path` opened for reading from inside user namespace `userns` (an open
/// `/proc/<pid>/ns/user`): a forked child joins it (which a multi-threaded process
/// cannot), opens the file and hands the descriptor back over a socket pair. For the
/// sysctls the kernel keeps per user namespace (`/proc/sys/user/*`), whose lookup
/// finds the table of the opener's namespace: the file read is that namespace's.
pub fn open_in_user_ns(userns: &File, path: &std::path::Path) -> io::Result<File> {
    use nix::sys::socket::{
        recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    };
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    let c = c_path(path)?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // The message the child sends, made before the fork: one byte, and room for one
    // descriptor in the control buffer.
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty one; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` has a control buffer of CMSG_SPACE(int) bytes, aligned for a
    // cmsghdr (u64s), so its first header and its data fit.
    let data = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<libc::c_int>()
    };
    let (ns, sock) = (userns.as_raw_fd(), theirs.as_raw_fd());
    // SAFETY: the child runs in a copy of a multi-threaded process, where only
    // async-signal-safe calls are safe: it makes raw system calls only (setns, open,
    // sendmsg, _exit) on memory prepared before the fork (`c`, `msg` and the buffers it
    // points to), and never returns into Rust code. The parent waits for it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; the exit status carries the errno (1..255) or 0.
        unsafe {
            let errno = || *libc::__errno_location();
            if libc::setns(ns, libc::CLONE_NEWUSER) != 0 {
                libc::_exit(errno());
            }
            let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                libc::_exit(errno());
            }
            data.write_unaligned(fd);
            if libc::sendmsg(sock, &msg, 0) < 0 {
                libc::_exit(errno());
            }
            libc::_exit(0);
        }
    }
    drop(theirs);
    reap(pid)?;
    let mut buf = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(libc::c_int);
    let got = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in got.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the descriptor was just received and nothing else owns it.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::other("the opener child sent no descriptor"))
}

/// The parent of user or pid namespace `ns` (an open `/proc/<pid>/ns/user` or
/// `ns/pid`, or a file an earlier call gave): `None` at the top the daemon sees, where
/// the kernel refuses `NS_GET_PARENT` with `EPERM` (the initial namespace, or the
/// parent of the daemon's own).
pub fn ns_parent(ns: &File) -> io::Result<Option<File>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    const NS_GET_PARENT: libc::c_ulong = 0xb702; // _IO(0xb7, 0x2)
                                                 // SAFETY: NS_GET_PARENT takes no argument and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EPERM) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(Some(unsafe { File::from_raw_fd(fd) }))
}

/// The user id that owns user namespace `ns` (its creator's effective uid), as the
/// daemon's namespace numbers it (`NS_GET_OWNER_UID`).
pub fn user_ns_owner(ns: &File) -> io::Result<u32> {
    use std::os::fd::AsRawFd as _;
    const NS_GET_OWNER_UID: libc::c_ulong = 0xb704; // _IO(0xb7, 0x4)
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t to the pointer given, valid and
    // writable for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            ns.as_raw_fd(),
            NS_GET_OWNER_UID,
            &mut uid as *mut libc::uid_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// Capability numbers (`linux/capability.h`): bit `n` of a capability set, as
/// [`effective_caps`] and a task's `status` give it.
pub mod cap {
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const SYS_NICE: u32 = 23;
    pub const CHECKPOINT_RESTORE: u32 = 40;
}

/// The effective capabilities of task `tid` (in the caller's pid namespace), from
/// `capget(2)`: one system call, where reading the task's `status` costs ten times more.
pub fn effective_caps(tid: i32) -> io::Result<u64> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: tid,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes one header and two data words to the pointers given, both
    // valid and writable for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    check(r)?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let head = "Name:\tsh\nState:\tS (sleeping)\nTgid:\t7\nPid:\t7\nPPid:\t1\n\
                    TracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n\
                    Groups:\t4 27 \nThreads:\t1\n";
        let caps = "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                    CapEff:\t000001ffffffffff\n";
        let id = Identity::parse(format!("{head}{caps}").as_bytes()).expect("parses");
        assert_eq!(id.uid, [1000; 4]);
        assert_eq!(id.gid, [100; 4]);
        assert_eq!(id.groups, [4, 27]);
        assert_eq!((id.cap_eff, id.cap_prm), (0x1ff_ffff_ffff, 0));
        assert!(
            Identity::parse(head.as_bytes()).is_none(),
            "no capabilities"
        );
        assert!(Identity::parse(b"Uid:\t1\n").is_none());
    }

    #[test]
    fn a_thread_takes_on_an_unprivileged_identity_and_the_kernel_refuses_it() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let nobody = Identity {
            uid: [65534; 4],
            gid: [65534; 4],
            ..Identity::default()
        };
        // A file of root's, mode 0400: refused to nobody, not to root.
        let path = std::env::temp_dir().join(format!("vprocfs-creds-{}", std::process::id()));
        std::fs::write(&path, b"secret").expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .expect("chmod");
        let as_nobody = run_as(&nobody, &[], || std::fs::read(&path));
        let root_reads = std::fs::read(&path).is_ok();
        let (me, ns) = Identity::of_task(std::process::id() as i32).expect("own identity");
        let as_me = run_as(&me, &ns, || std::fs::read(&path)).is_ok();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            as_nobody.map_err(|e| e.raw_os_error()),
            Err(Some(libc::EACCES))
        );
        assert!(root_reads, "this thread is still root");
        assert!(ns.is_empty());
        assert!(as_me, "a thread with this process's own identity reads it");
    }

    #[test]
    fn effective_caps_of_this_thread_match_its_status() {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .expect("CapEff");
        assert_eq!(
            effective_caps(nix::unistd::gettid().as_raw()).expect("capget"),
            eff
        );
    }
}
