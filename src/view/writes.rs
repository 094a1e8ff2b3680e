//! Writes through the full view, decided by the kernel itself.
//!
//! A write to a procfs file is allowed or refused by procfs's own rules, on the writer's
//! credentials: the mode bits with its file-system ids, `ptrace` access for `mem`,
//! `CAP_SYS_RESOURCE` to lower `oom_score_adj`, `CAP_SYS_ADMIN` for a sysctl… The
//! daemon, root with every capability, must grant no more than that. So it opens and
//! writes the real file on a thread that has taken on the writer's credentials and
//! namespaces ([`crate::sys::creds`]), and the kernel says yes or no; a per-namespace
//! sysctl lands in the writer's namespace.
//!
//! Three files are the writer's own business in the kernel and are answered here:
//! - `/proc/sys/kernel/ns_last_pid` of a VPS sets the VPS's last vpid, so that the next
//!   process gets the number after it (the seed's restore path; a VPS with a pid
//!   namespace gets the kernel's own, written in that namespace);
//! - `loginuid` and `comm`, which the kernel takes only from the task itself (or its
//!   thread group): the daemon cannot write them for the task, and answers a task
//!   writing its own as the kernel would accept it (so that `login` through
//!   `pam_loginuid`, and a program naming itself through `/proc/self/comm`, carry on),
//!   without changing it; another task's is refused as the kernel refuses it;
//! - `attr/*` (LSM labels) goes to the kernel as any other file, which refuses a
//!   writer that is not the task.
//!
//! A writer in a user namespace other than the daemon's writing an id map (`uid_map`,
//! `gid_map`, `setgroups`, `projid_map`: `unshare -U -r`, a rootless runtime setting up
//! a container inside its own namespace) is judged by the kernel from the opener's own
//! namespace (the map's, or its parent's), its capabilities there and whether that
//! namespace's creator could map root: the open and the write are made by a forked
//! child with the writer's credentials inside its namespace ([`WriteTarget::InUserNs`]).

use super::Errno;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::sync::Arc;

use crate::engine::{Pid, VpsId, PID_MAX_LIMIT, RESERVED_PIDS};
use crate::sys::creds::{cap, run_as, Identity};

use super::nodes::Node;
use super::{errno, lock, sysctl_int, Handle, Reader, View};

/// What a handle opened for writing writes to.
pub enum WriteTarget {
    /// The real file, opened with the writer's credentials; written at the offsets
    /// given, or where it stands for an object that cannot seek (a pipe).
    Real {
        /// The file.
        file: Arc<File>,
        /// Whether writes go at offsets.
        seekable: bool,
        /// Whether the writes are made with the writer's credentials (else with the
        /// daemon's: a task's own `timerslack_ns`, see [`View::open_for_write`]).
        as_writer: bool,
    },
    /// A sysctl of VPS `id`'s pid namespace ([`PidNsSysctl`]).
    PidNs(VpsId, PidNsSysctl),
    /// An id map (`uid_map`, `gid_map`, `setgroups`, `projid_map`) or a sysctl kept per
    /// user namespace (`/proc/sys/user/*`) written by a task in a user namespace other
    /// than the daemon's: the kernel decides that write by the opener's namespace (and
    /// a sysctl's lookup finds that namespace's table), so it is made from inside the
    /// writer's, with its credentials ([`crate::sys::creds::as_task_in_user_ns`]), as
    /// the writer itself would make it.
    InUserNs {
        /// The real file.
        path: std::path::PathBuf,
        /// The writer's user namespace.
        userns: Arc<File>,
        /// The writer's credentials at its open.
        writer: Arc<Identity>,
    },
    /// A file the kernel takes only from the task itself (`loginuid`, `comm`): the
    /// writer's own (`own`), taken without effect, or another's, refused with
    /// `refused` (the kernel's answer to a task outside: `EPERM` for `loginuid`,
    /// `EINVAL` for `comm`).
    OwnOnly {
        /// Whether the writer is the task (or, for `comm`, in its thread group).
        own: bool,
        /// The kernel's refusal for another task.
        refused: Errno,
    },
}

/// The identity of the task that asks, for a system call made as it.
fn identity(tid: Pid) -> Result<(Identity, Vec<File>), Errno> {
    if tid <= 0 {
        // A task the daemon cannot see cannot be written for.
        return Err(Errno::EACCES);
    }
    Identity::of_task(tid).map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) | Some(Errno::ESRCH) => Errno::ESRCH,
        _ => Errno::EACCES,
    })
}

/// Whether tasks `a` and `b` are threads of one process (false if either is gone).
fn same_process(a: Pid, b: Pid) -> bool {
    let tgid = |t: Pid| crate::host::read_task(t).ok().map(|i| i.tgid);
    tgid(a).is_some_and(|g| Some(g) == tgid(b))
}

/// The identity under which the daemon acts on `node` for `reader`: the reader's own,
/// plus what procfs grants a task on its own entries whatever its credentials, which a
/// thread of the daemon (not that task) gets only from the capabilities that grant the
/// same: `ptrace` access to itself (`ptrace_may_access`: the magic links of its `fd/`
/// and `ns/`, even when it is not dumpable) and its own `fd/` (`proc_fd_permission`).
fn identity_on(reader: Reader, node: &Node) -> Result<(Identity, Vec<File>), Errno> {
    let tid = reader.tid();
    let (mut id, namespaces) = identity(tid)?;
    if node.shown_task().is_some_and(|t| same_process(t, tid)) {
        let mut grant = 1u64 << cap::SYS_PTRACE;
        if matches!(node, Node::Pid { rel, .. } if &**rel == "fd") {
            grant |= 1 << cap::DAC_OVERRIDE;
        }
        id.cap_eff |= grant;
        id.cap_prm |= grant;
    }
    Ok((id, namespaces))
}

/// Whether what a file shows depends on its reader's namespaces or credentials, which
/// the kernel takes from the task that reads: sysctls (`/proc/sys`: UTS, IPC and
/// network ones are per namespace), System V IPC (`/proc/sysvipc`: the IPC namespace),
/// a process's cgroup paths ([`shows_cgroup_paths`]), and the files whose text
/// [`by_credentials`] decides.
pub fn read_as_reader(node: &Node) -> bool {
    by_credentials(node)
        || matches!(node, Node::Global { rel } if rel.starts_with("sys/") || rel.starts_with("sysvipc/"))
        || shows_cgroup_paths(node)
}

/// Whether `node` is a process's `cgroup` or `cpuset`, which show its cgroups' paths
/// from the root of the reader's cgroup namespace (`proc_cgroup_show`,
/// `proc_cpuset_show`: `current->nsproxy->cgroup_ns`).
pub fn shows_cgroup_paths(node: &Node) -> bool {
    matches!(node, Node::Pid { rel, .. } if matches!(&**rel, "cgroup" | "cpuset"))
}

/// Whether `node` is a process's `mountinfo`, whose cgroup mounts show their root from
/// the root of the reader's cgroup namespace (`cgroup_show_path` of the task that
/// reads), and which a reader in a cgroup namespace other than the daemon's is
/// therefore given a descriptor opened as itself, read on a thread in its namespaces at
/// each read from offset 0; the others read the daemon's open file. Either descriptor
/// polls as procfs's does, waking at a change of the mount table.
pub fn shows_cgroup_roots(node: &Node, reader: Reader) -> bool {
    let tid = reader.tid();
    matches!(node, Node::Pid { rel, .. } if &**rel == "mountinfo")
        && tid > 0
        && crate::host::ns_inode(tid, "cgroup").ok() != crate::host::own_ns_inode("cgroup").ok()
}

/// Whether a file must be opened with its reader's credentials, because the kernel
/// decides what its reads show from the opener's (`file->f_cred`) and its reads go on
/// through the daemon: `pagemap`, whose page frame numbers only an opener with
/// `CAP_SYS_ADMIN` sees (zeroes for the others), and which is too large to read whole
/// at open as [`by_credentials`]'s files are.
pub fn opens_as_reader(node: &Node) -> bool {
    matches!(node, Node::Pid { rel, .. } if &**rel == "pagemap")
}

/// Whether `node` is a sysctl the kernel keeps per user namespace (`/proc/sys/user/*`,
/// the limits of `ucounts`): the lookup finds the table of the opener's namespace, so
/// a reader or writer in a namespace of its own (`unshare -U`) reads and writes that
/// namespace's (2147483647 each in a new one) where the daemon's would be the host's.
fn per_user_ns(node: &Node) -> bool {
    matches!(node, Node::Global { rel } if rel.starts_with("sys/user/"))
}

/// The user namespace of task `tid` (open), when it is not the daemon's.
fn other_user_ns(tid: Pid) -> Option<File> {
    if tid <= 0 {
        return None;
    }
    let ns = crate::host::ns_inode(tid, "user").ok()?;
    if crate::host::own_ns_inode("user").ok() == Some(ns) {
        return None;
    }
    File::open(crate::host::proc_path(&format!("{tid}/ns/user"))).ok()
}

/// Whether a file's text depends on its reader's credentials: keys (`/proc/keys`,
/// `/proc/key-users`: those the reader may view) and kernel addresses, which procfs
/// shows only to a reader with `CAP_SYSLOG` (`kallsyms`, `modules`, and the socket
/// addresses that `net/` prints with `%pK` where `kptr_restrict` is 1) or
/// `CAP_SYS_ADMIN` (`iomem`, `ioports`), and zeroes for everyone else; a PCI
/// device's configuration space (`bus/pci/*/*`), of which a reader without
/// `CAP_SYS_ADMIN` gets the first 64 bytes; and the memory type ranges (`mtrr`), which
/// only `CAP_SYS_ADMIN` may open (`EPERM`, whatever the mode bits say). Read by the
/// daemon, which has both capabilities, they would hand any reader the kernel's layout
/// and the devices' registers.
fn by_credentials(node: &Node) -> bool {
    match node {
        Node::Global { rel } => {
            matches!(
                &**rel,
                "keys" | "key-users" | "kallsyms" | "modules" | "iomem" | "ioports" | "mtrr"
            ) || rel.starts_with("bus/pci/")
        }
        Node::Pid { rel, .. } => rel.starts_with("net/"),
        _ => false,
    }
}

impl View {
    /// The whole text of `node` as `reader` would read it: read on a thread that has
    /// taken on the reader's namespaces and credentials ([`read_as_reader`]).
    ///
    /// A sysctl or System V IPC file of a reader in the daemon's own namespaces reads the
    /// same from here, without a thread (`sysctl -a` opens a thousand); the files
    /// [`by_credentials`] names depend on the reader's credentials always.
    pub(super) fn read_as(&self, reader: Reader, node: &Node) -> Result<Vec<u8>, Errno> {
        self.read_as_with(reader, node, |path| std::fs::read(path))
    }

    /// [`View::read_as`] of a sysctl, and whether the kernel gives its text only to a
    /// read from offset 0 (an integer sysctl: `proc_dointvec` and its kin answer a read
    /// past 0 with nothing, where a string sysctl goes on in its text). Asked of the
    /// kernel itself: a read at offset 1 of a text longer than one byte. A sysctl that
    /// opens and fails its reads (`stable_secret` never set: `EIO`) gives the error of
    /// its read inside.
    pub(super) fn read_sysctl_as(
        &self,
        reader: Reader,
        node: &Node,
    ) -> Result<Result<(Vec<u8>, bool), Errno>, Errno> {
        self.read_as_with(reader, node, |path| {
            let file = File::open(path)?;
            let mut text = Vec::new();
            let read = io::Read::read_to_end(&mut &file, &mut text)
                .and_then(|_| Ok(text.len() > 1 && file.read_at(&mut [0u8], 1)? == 0));
            Ok(match read {
                Ok(from_zero_only) => Ok((text, from_zero_only)),
                Err(e) => Err(errno(&e)),
            })
        })
    }

    /// A read of `size` bytes at offset 0 of sysctl `node` as `reader`: what the kernel
    /// gives to that read (an integer sysctl's handler writes nothing into a buffer too
    /// small for its text, `rps_default_mask`'s, or cuts it short, `pid_max`'s).
    pub(super) fn read_sysctl_start_as(
        &self,
        reader: Reader,
        node: &Node,
        size: u32,
    ) -> Result<Vec<u8>, Errno> {
        self.read_as_with(reader, node, |path| {
            let mut buf = vec![0u8; size as usize];
            let n = File::open(path)?.read_at(&mut buf, 0)?;
            buf.truncate(n);
            Ok(buf)
        })
    }

    /// `read` of `node`'s real file on a thread with `reader`'s namespaces and
    /// credentials (by the daemon itself where those are the daemon's).
    pub(super) fn read_as_with<T: Send>(
        &self,
        reader: Reader,
        node: &Node,
        read: impl FnOnce(&std::path::Path) -> io::Result<T> + Send,
    ) -> Result<T, Errno> {
        let tid = reader.tid();
        let path = node.real_path();
        if let Some(userns) = per_user_ns(node).then(|| other_user_ns(tid)).flatten() {
            // Opened in the reader's user namespace, whose table it finds, and read
            // (opened again) through the descriptor's magic link. A namespace the
            // daemon may not join (one above its own) leaves the daemon's table.
            match crate::sys::creds::open_in_user_ns(&userns, &path) {
                Ok(file) => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
                    let link = std::path::PathBuf::from(format!("/proc/self/fd/{fd}"));
                    return read(&link).map_err(|e| errno(&e));
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                Err(e) => return Err(errno(&e)),
            }
        }
        if !by_credentials(node)
            && tid > 0
            && crate::sys::creds::namespaces_of(tid).is_ok_and(|ns| ns.is_empty())
        {
            return read(&path).map_err(|e| errno(&e));
        }
        let (id, namespaces) = identity(tid)?;
        run_as(&id, &namespaces, move || read(&path)).map_err(|e| errno(&e))
    }

    /// `node` opened for reading on a thread with `reader`'s credentials (and what
    /// procfs grants a task on its own entries), for a file whose reads show what its
    /// opener may see ([`opens_as_reader`]).
    pub(super) fn open_as(&self, reader: Reader, node: &Node) -> Result<File, Errno> {
        let (id, namespaces) = identity_on(reader, node)?;
        let path = node.real_path();
        run_as(&id, &namespaces, || File::open(&path)).map_err(|e| self.gone_or(node, errno(&e)))
    }

    /// Opens `node` for writing (and reading too unless `flags` say write-only), for
    /// `reader` with file-system ids `ids`, as described in the module's doc. `object`
    /// is the object behind `node` when it is one ([`View::object`], which the caller
    /// has looked for already).
    pub(super) fn open_for_write(
        &self,
        reader: Reader,
        node: &Node,
        object: Option<&super::links::Object>,
        ids: (u32, u32),
        flags: i32,
    ) -> Result<Handle, Errno> {
        let tid = reader.tid();
        // Files the daemon answers itself, not opened as the writer: their mode bits,
        // which procfs checks first, are checked here.
        let answered = match (node, reader) {
            (Node::Global { rel }, Reader::Vps { id, .. }) => {
                let (own_ns, own_pid_max) = {
                    let tracker = lock(&self.shared.tracker);
                    let per_ns = crate::host::pid_max_per_namespace();
                    let own_ns = tracker.meta(id).is_some_and(|m| m.ns_inode.is_some());
                    (own_ns, tracker.own_pid_max(id, per_ns))
                };
                // A writer in a namespace nested in the VPS's writes its own's.
                let nested = self.nested_pid_max_writer(id, tid);
                PidNsSysctl::of(rel, own_ns || nested, own_pid_max || nested)
                    .map(|which| WriteTarget::PidNs(id, which))
            }
            (Node::Pid { rel, .. }, _) if matches!(&**rel, "loginuid" | "comm") => {
                let own = node.shown_task().is_some_and(|t| same_process(t, tid));
                let refused = if &**rel == "comm" {
                    Errno::EINVAL
                } else {
                    Errno::EPERM
                };
                Some(WriteTarget::OwnOnly { own, refused })
            }
            _ => None,
        };
        if let Some(target) = answered {
            let md = std::fs::metadata(node.real_path()).map_err(|e| errno(&e))?;
            if !self.permits(&md, ids, reader, node, libc::W_OK as u32) {
                return Err(Errno::EACCES);
            }
            return Ok(Handle::Write(target));
        }
        if let Some(target) = self.write_in_user_ns(node, tid) {
            return target.map(Handle::Write);
        }
        let seekable = object.is_none();
        let path = super::links::real_target(object, node);
        let (id, namespaces) = identity(tid)?;
        let read = flags & libc::O_ACCMODE == libc::O_RDWR;
        let mut extra = 0;
        if !seekable {
            // A full pipe must not hold up the thread that serves every reader.
            extra |= libc::O_NONBLOCK;
        }
        let file = run_as(&id, &namespaces, || {
            OpenOptions::new()
                .read(read)
                .write(true)
                .custom_flags(extra)
                .open(&path)
        })
        .map_err(|e| self.gone_or(node, errno(&e)))?;
        // procfs lets a task set its own `timerslack_ns` (the check is of `current`,
        // which the daemon's thread is not); anyone else needs `CAP_SYS_NICE`, which
        // the kernel checks on the writer's credentials.
        let own_slack = tid > 0
            && node.shown_task() == Some(tid)
            && matches!(node, Node::Pid { rel, .. } if &**rel == "timerslack_ns");
        Ok(Handle::Write(WriteTarget::Real {
            file: Arc::new(file),
            seekable,
            as_writer: !own_slack,
        }))
    }

    /// Writes `data` at `offset` through handle `fh`, as task `tid` (the writer the
    /// request names). `EAGAIN` when a pipe is full and `wait` is false: the caller
    /// then waits elsewhere than on the thread that serves everyone.
    pub fn write(
        &self,
        tid: u32,
        fh: u64,
        offset: u64,
        data: &[u8],
        wait: bool,
    ) -> Result<u32, Errno> {
        let tid = Pid::try_from(tid).unwrap_or(0);
        let target = match lock(&self.handles).get(&fh) {
            Some(Handle::Write(WriteTarget::Real {
                file,
                seekable,
                as_writer,
            })) => WriteTarget::Real {
                file: Arc::clone(file),
                seekable: *seekable,
                as_writer: *as_writer,
            },
            Some(Handle::Write(WriteTarget::PidNs(id, which))) => WriteTarget::PidNs(*id, *which),
            Some(Handle::Write(WriteTarget::OwnOnly { own, refused })) => WriteTarget::OwnOnly {
                own: *own,
                refused: *refused,
            },
            Some(Handle::Write(WriteTarget::InUserNs {
                path,
                userns,
                writer,
            })) => WriteTarget::InUserNs {
                path: path.clone(),
                userns: Arc::clone(userns),
                writer: Arc::clone(writer),
            },
            Some(_) => return Err(Errno::EBADF),
            None => return Err(Errno::EBADF),
        };
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        match target {
            WriteTarget::OwnOnly { own: true, .. } => Ok(len),
            WriteTarget::OwnOnly {
                own: false,
                refused,
            } => Err(refused),
            WriteTarget::PidNs(id, which) => self.write_pid_ns_sysctl(id, tid, which, offset, data),
            WriteTarget::InUserNs {
                path,
                userns,
                writer,
            } => crate::sys::creds::as_task_in_user_ns(&writer, &userns, &path, Some(data))
                .map(|()| len)
                .map_err(|e| errno(&e)),
            WriteTarget::Real {
                file,
                seekable,
                as_writer,
            } => {
                let (id, namespaces) = identity(tid)?;
                let write = || {
                    if !seekable {
                        return io::Write::write(&mut &*file, data);
                    }
                    match file.write_at(data, offset) {
                        // A seq file (uid_map, timerslack_ns…) takes no pwrite: it
                        // is written where it stands, after a seek.
                        Err(e) if e.raw_os_error() == Some(Errno::ESPIPE as i32) => {
                            io::Seek::seek(&mut &*file, io::SeekFrom::Start(offset))?;
                            io::Write::write(&mut &*file, data)
                        }
                        r => r,
                    }
                };
                loop {
                    let r = match as_writer {
                        true => run_as(&id, &namespaces, write),
                        false => write(),
                    };
                    match r {
                        Ok(n) => return Ok(u32::try_from(n).unwrap_or(u32::MAX)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if !wait {
                                return Err(Errno::EAGAIN);
                            }
                            if !self.wait_writable(&file, tid) {
                                return Err(Errno::EINTR);
                            }
                        }
                        Err(e) => return Err(errno(&e)),
                    }
                }
            }
        }
    }

    /// Waits until `file` takes a write, in steps, so that a writer that gets a signal
    /// meanwhile is answered `EINTR` (false).
    fn wait_writable(&self, file: &File, tid: Pid) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd as _;
        loop {
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
            if let Ok(n) = poll(&mut fds, PollTimeout::from(100u8)) {
                if n > 0 {
                    return true;
                }
            }
            if tid > 0 && crate::host::signal_pending(tid) {
                return false;
            }
        }
    }

    /// [`WriteTarget::InUserNs`] when `node` is an id map or a sysctl kept per user
    /// namespace and writer `tid` is in a user namespace other than the daemon's,
    /// opened as the writer would open it there (an error is the open's); `None` for a
    /// writer in the daemon's namespace, which writes as itself from there like any
    /// other file.
    fn write_in_user_ns(&self, node: &Node, tid: Pid) -> Option<Result<WriteTarget, Errno>> {
        let id_map = matches!(node, Node::Pid { rel, .. }
            if matches!(&**rel, "uid_map" | "gid_map" | "setgroups" | "projid_map"));
        if !id_map && !per_user_ns(node) {
            return None;
        }
        other_user_ns(tid)?;
        Some(self.open_in_user_ns_as(node, tid))
    }

    /// The open of [`View::write_in_user_ns`]: the writer's credentials as its
    /// `status` shows them (its capabilities are those of its own namespace, where the
    /// child that writes for it takes them on) and its namespace, held for the writes.
    fn open_in_user_ns_as(&self, node: &Node, tid: Pid) -> Result<WriteTarget, Errno> {
        let proc = |rel: &str| crate::host::proc_path(&format!("{tid}/{rel}"));
        let status = std::fs::read(proc("status")).map_err(|_| Errno::ESRCH)?;
        let writer = Identity::parse(&status).ok_or(Errno::ESRCH)?;
        let userns = File::open(proc("ns/user")).map_err(|_| Errno::ESRCH)?;
        let path = node.real_path();
        crate::sys::creds::as_task_in_user_ns(&writer, &userns, &path, None)
            .map_err(|e| self.gone_or(node, errno(&e)))?;
        Ok(WriteTarget::InUserNs {
            path,
            userns: Arc::new(userns),
            writer: Arc::new(writer),
        })
    }

    /// Sysctl `which` of VPS `id` written by task `tid` at `offset`, as procfs takes
    /// it: one number ([`sysctl_int`]) in the sysctl's range, past offset 0 taken
    /// whole and ignored (strict sysctl writes); `ns_last_pid` from a task with
    /// `CAP_SYS_ADMIN` or `CAP_CHECKPOINT_RESTORE` (whichever grants it marks the task,
    /// `PF_SUPERPRIV`). In a VPS with a pid namespace the kernel's own, written from
    /// inside it; `ns_last_pid` of one without, and `pid_max` of one without whose
    /// numbers are dense, the engine's. The bytes taken, which is what the write
    /// returns.
    fn write_pid_ns_sysctl(
        &self,
        id: VpsId,
        tid: Pid,
        which: PidNsSysctl,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, Errno> {
        let all = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if which == PidNsSysctl::NsLastPid {
            let (who, _) = identity(tid)?;
            let granted = [cap::SYS_ADMIN, cap::CHECKPOINT_RESTORE]
                .iter()
                .any(|&c| who.cap_eff & (1 << c) != 0);
            if !granted {
                return Err(Errno::EPERM);
            }
            self.used_privilege(Reader::Vps { id, tid });
        }
        if offset > 0 {
            return Ok(all);
        }
        let (min, max) = which.range();
        let (n, taken) = sysctl_int::parse(data, min, max)?;
        let n = i32::try_from(n).map_err(|_| Errno::EINVAL)?;
        // A writer in a pid namespace nested in the VPS's sets its own namespace's last
        // pid, as procfs does (`task_active_pid_ns(current)`), which membership keeps
        // for that namespace's readers (src/membership/nested.rs).
        let nested = match which {
            PidNsSysctl::NsLastPid => lock(&self.shared.tracker).nested_ns_of(id, tid),
            PidNsSysctl::PidMax if crate::host::pid_max_per_namespace() => {
                lock(&self.shared.tracker).nested_ns_of(id, tid)
            }
            _ => None,
        };
        if let Some(ns) = nested {
            self.write_nested(id, tid, ns, which, n)?;
            return Ok(u32::try_from(taken).unwrap_or(all));
        }
        let ns_init = {
            let tracker = lock(&self.shared.tracker);
            let meta = tracker.meta(id).ok_or(Errno::ESRCH)?;
            meta.ns_inode.map(|_| tracker.vps(id).map(|v| v.init_pid()))
        };
        match ns_init {
            Some(init) => {
                let init = init.ok_or(Errno::ESRCH)?;
                let pidns = File::open(crate::host::proc_path(&format!("{init}/ns/pid")))
                    .map_err(|_| Errno::ESRCH)?;
                let path = crate::host::proc_path(which.rel());
                // The namespace's last pid before the writer takes one.
                self.catch_up();
                let last = self.with_tracker(|t| t.vps(id).map(|v| v.last_vpid()));
                crate::sys::creds::write_in_pid_ns(&pidns, &path, n.to_string().as_bytes())
                    .map_err(|e| errno(&e))?;
                // The writer took a pid there before the write: its fork is applied
                // first, so that what the view shows after is the value written.
                self.catch_up();
                if which == PidNsSysctl::NsLastPid {
                    self.with_tracker(|t| t.set_last_vpid(id, n));
                } else if let Some(last) = last {
                    // procfs's write takes no pid: the namespace's last pid is given
                    // back, so that its next fork gets the number it would have.
                    self.give_back_last_pid(id, &pidns, last, which, n);
                }
                if which == PidNsSysctl::PidMax {
                    self.with_tracker(|t| t.set_pid_max(id, n));
                }
            }
            None if which == PidNsSysctl::NsLastPid => {
                self.with_tracker(|t| t.set_last_vpid(id, n))
            }
            // Dense numbers without a namespace: the engine's, where they wrap.
            None if which == PidNsSysctl::PidMax => self.with_tracker(|t| t.set_pid_max(id, n)),
            // `cad_pid` is the host's in a VPS without a pid namespace, written as any
            // sysctl: never this target ([`PidNsSysctl::of`]).
            None => return Err(Errno::EIO),
        }
        Ok(u32::try_from(taken).unwrap_or(all))
    }

    /// Writes `last` back as the last pid of VPS `id`'s namespace `pidns`, after a
    /// write of sysctl `which` (set to `n`) whose writer took a number there, through a
    /// writer that takes one too ([`after_pid_max`] for a `pid_max`).
    fn give_back_last_pid(&self, id: VpsId, pidns: &File, last: Pid, which: PidNsSysctl, n: Pid) {
        let last = match which {
            PidNsSysctl::PidMax => after_pid_max(last, n),
            _ => last,
        };
        let path = crate::host::proc_path(PidNsSysctl::NsLastPid.rel());
        match crate::sys::creds::write_in_pid_ns(pidns, &path, last.to_string().as_bytes()) {
            Ok(()) => {
                self.catch_up();
                self.with_tracker(|t| t.set_last_vpid(id, last));
            }
            Err(e) => log::warn!("VPS {id}: cannot write its last pid {last} back: {e}"),
        }
    }

    /// Whether task `tid` of VPS `id` is in a pid namespace nested in the VPS's, whose
    /// own `pid_max` the kernel keeps.
    fn nested_pid_max_writer(&self, id: VpsId, tid: Pid) -> bool {
        crate::host::pid_max_per_namespace()
            && lock(&self.shared.tracker).nested_ns_of(id, tid).is_some()
    }

    /// Sysctl `which` (`ns_last_pid` or `pid_max`) set to `n` by task `tid` in `ns`, a
    /// pid namespace nested in VPS `id`'s, from inside that namespace (a helper forked
    /// into it, as procfs takes the writer's own namespace), and kept for its readers.
    fn write_nested(
        &self,
        id: VpsId,
        tid: Pid,
        ns: u64,
        which: PidNsSysctl,
        n: Pid,
    ) -> Result<(), Errno> {
        let last_pid = crate::host::proc_path(PidNsSysctl::NsLastPid.rel());
        let open_ns = |task: Pid| {
            File::open(crate::host::proc_path(&format!("{task}/ns/pid"))).map_err(|_| Errno::ESRCH)
        };
        // The helper takes a number in every namespace from its own up: each has its
        // last pid written back after (innermost first, each write-back's helper taking
        // one above it), but the writer's own when the write set it, so that their
        // numbering goes on as the kernel's.
        self.catch_up();
        let level = lock(&self.shared.tracker)
            .meta(id)
            .map_or(0, |m| m.ns_level);
        let depth = crate::host::read_task(tid)
            .map_err(|_| Errno::ESRCH)?
            .nspid
            .len()
            .saturating_sub(level + 1);
        let chain = crate::host::pid_ns_chain(tid, depth);
        let (vps_last, between) = {
            let tracker = lock(&self.shared.tracker);
            let own_ns = tracker.meta(id).is_some_and(|m| m.ns_inode.is_some());
            let vps_last = tracker
                .vps(id)
                .filter(|_| own_ns)
                .map(|v| (v.init_pid(), v.last_vpid()));
            let skip = usize::from(which == PidNsSysctl::NsLastPid);
            let between: Vec<(&File, u64, Pid)> = chain
                .iter()
                .enumerate()
                .skip(skip)
                .filter_map(|(i, (f, ino))| {
                    let last = tracker.nested_last(*ino)?;
                    // The writer's own, under a `pid_max` set there.
                    let own = i == 0 && which == PidNsSysctl::PidMax;
                    Some((f, *ino, if own { after_pid_max(last, n) } else { last }))
                })
                .collect();
            (vps_last, between)
        };
        // The writer's own namespace is the chain's first.
        let (writer_ns, _) = chain.first().ok_or(Errno::ESRCH)?;
        let path = crate::host::proc_path(which.rel());
        crate::sys::creds::write_in_pid_ns(writer_ns, &path, n.to_string().as_bytes())
            .map_err(|e| errno(&e))?;
        // The writers were numbered as they forked: once their numbers are applied, each
        // namespace's last pid is the one written back, for the next write's too.
        let mut given_back = Vec::new();
        for (ns, ino, last) in between {
            match crate::sys::creds::write_in_pid_ns(ns, &last_pid, last.to_string().as_bytes()) {
                Ok(()) => given_back.push((ino, last)),
                Err(e) => log::warn!(
                    "VPS {id}: cannot write a nested namespace's last pid {last} back: {e}"
                ),
            }
        }
        let mut vps_given_back = None;
        if let Some((init, last)) = vps_last {
            let back = last.to_string();
            match crate::sys::creds::write_in_pid_ns(&open_ns(init)?, &last_pid, back.as_bytes()) {
                Ok(()) => vps_given_back = Some(last),
                Err(e) => log::warn!("VPS {id}: cannot write its last pid {last} back: {e}"),
            }
        }
        self.catch_up();
        self.with_tracker(|t| {
            for (ino, last) in given_back {
                t.set_nested_last(ino, last);
            }
            if let Some(last) = vps_given_back {
                t.set_last_vpid(id, last);
            }
        });
        match which {
            PidNsSysctl::PidMax => self.with_tracker(|t| t.set_nested_pid_max(id, ns, n)),
            _ => self.with_tracker(|t| t.set_nested_last(ns, n)),
        }
        Ok(())
    }
}

/// The last pid to write back in a namespace whose last pid was `last` when its
/// `pid_max` was set to `pid_max`: `last`, or, where `pid_max` went to `last` or
/// below, the one before [`RESERVED_PIDS`], so that the next fork comes round to the
/// bottom as the kernel's does (`alloc_pid`: the cursor is past the top, so
/// `idr_alloc_cyclic` starts again at `RESERVED_PIDS`).
fn after_pid_max(last: Pid, pid_max: Pid) -> Pid {
    if last >= pid_max - 1 {
        RESERVED_PIDS - 1
    } else {
        last
    }
}

/// A sysctl the kernel answers for its writer's pid namespace
/// (`task_active_pid_ns(current)`), which no thread of the daemon can enter: written
/// from inside the VPS's namespace ([`crate::sys::creds::write_in_pid_ns`]), never the
/// host's. Without a namespace of its own, a VPS's `pid_max` and `cad_pid` are the
/// host's, written as any sysctl; its `ns_last_pid` is the engine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidNsSysctl {
    /// `kernel/ns_last_pid`: the namespace's last pid.
    NsLastPid,
    /// `kernel/pid_max`: the namespace's own (Linux 6.14 on).
    PidMax,
    /// `kernel/cad_pid`: the process told of Ctrl-Alt-Del, a number of the writer's
    /// namespace.
    CadPid,
}

impl PidNsSysctl {
    /// The sysctl at `rel` (below `/proc`), if it is one, for a VPS with a pid
    /// namespace of its own (`own_ns`) or a `pid_max` of its own (`own_pid_max`,
    /// [`crate::membership::Tracker::own_pid_max`]).
    fn of(rel: &str, own_ns: bool, own_pid_max: bool) -> Option<PidNsSysctl> {
        match rel {
            "sys/kernel/ns_last_pid" => Some(PidNsSysctl::NsLastPid),
            "sys/kernel/pid_max" if own_pid_max => Some(PidNsSysctl::PidMax),
            "sys/kernel/cad_pid" if own_ns => Some(PidNsSysctl::CadPid),
            _ => None,
        }
    }

    fn rel(self) -> &'static str {
        match self {
            PidNsSysctl::NsLastPid => "sys/kernel/ns_last_pid",
            PidNsSysctl::PidMax => "sys/kernel/pid_max",
            PidNsSysctl::CadPid => "sys/kernel/cad_pid",
        }
    }

    /// The values procfs takes (`extra1`, `extra2` of its table).
    fn range(self) -> (i64, i64) {
        match self {
            PidNsSysctl::NsLastPid => (0, i64::from(PID_MAX_LIMIT)),
            PidNsSysctl::PidMax => (i64::from(RESERVED_PIDS) + 1, i64::from(PID_MAX_LIMIT)),
            PidNsSysctl::CadPid => (i64::from(i32::MIN), i64::from(i32::MAX)),
        }
    }
}

/// What a `setattr` asks to change: `chmod`, `chown`, `truncate` and `utimensat` (a
/// time of `Some(None)` is "now").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// New mode bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<Option<std::time::SystemTime>>,
    /// New modification time.
    pub mtime: Option<Option<std::time::SystemTime>>,
}

/// Where a change of attributes is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeRule {
    /// Refused (`EPERM`), whoever asks: the directories of a process and of a thread,
    /// and a namespace behind an `ns/` link, which the kernel marks immutable.
    Immutable,
    /// By the kernel, made to the real entry as the reader: a process's other entries
    /// (procfs refuses a change of mode and takes the rest without keeping it,
    /// `proc_setattr`), the object behind a magic link (a pipe's own mode and times
    /// change, as through procfs) and sysctls (`proc_sys_setattr`). None of that
    /// outlives the process, or changes what another reader sees.
    Real,
    /// `/proc` and its global entries: procfs keeps a change root makes to them in the
    /// entry all of the host's procfs mounts share, which a VPS must not reach. The
    /// kernel refuses it to others, the view takes it from root without keeping it.
    Shared,
}

fn change_rule(node: &Node) -> ChangeRule {
    match node {
        Node::Pid { rel, .. } if rel.is_empty() || super::links::is_namespace(node) => {
            ChangeRule::Immutable
        }
        Node::Pid { .. } | Node::SelfLink | Node::ThreadSelf => ChangeRule::Real,
        Node::Global { rel } if &**rel == "sys" || rel.starts_with("sys/") => ChangeRule::Real,
        Node::Root | Node::Global { .. } => ChangeRule::Shared,
    }
}

/// `change` made to `path` by the calling thread, one system call per attribute, in
/// the order the kernel checks them (`setattr_prepare`).
fn apply(path: &std::path::Path, change: &Change) -> io::Result<()> {
    use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use nix::unistd::{chown, truncate, Gid, Uid};
    if change.uid.is_some() || change.gid.is_some() {
        chown(
            path,
            change.uid.map(Uid::from_raw),
            change.gid.map(Gid::from_raw),
        )?;
    }
    if let Some(mode) = change.mode {
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::from_bits_truncate(mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    if let Some(size) = change.size {
        truncate(path, size as libc::off_t)?;
    }
    if change.atime.is_some() || change.mtime.is_some() {
        let spec = |t: Option<Option<std::time::SystemTime>>| match t {
            None => TimeSpec::UTIME_OMIT,
            Some(None) => TimeSpec::UTIME_NOW,
            Some(Some(t)) => {
                let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                TimeSpec::from_duration(d)
            }
        };
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &spec(change.atime),
            &spec(change.mtime),
            UtimensatFlags::FollowSymlink,
        )?;
    }
    Ok(())
}

impl View {
    /// Changes the attributes of `node` for `reader` (with file-system uid `fsuid`), as
    /// procfs would: see [`ChangeRule`]. Nothing is kept by the view: the attributes
    /// shown after are the real entry's, as always.
    pub(super) fn change(
        &self,
        reader: Reader,
        node: &Node,
        fsuid: u32,
        change: &Change,
    ) -> Result<(), Errno> {
        match change_rule(node) {
            ChangeRule::Immutable => Err(Errno::EPERM),
            // The truncation of `open(O_TRUNC)` (`echo 5 > max_user_namespaces`) of a
            // sysctl kept per user namespace, by a writer in one of its own: the kernel
            // takes it where that namespace lets the writer write the sysctl, and it
            // changes nothing.
            ChangeRule::Real
                if per_user_ns(node)
                    && change.size.is_some()
                    && (change.mode, change.uid, change.gid) == (None, None, None)
                    && other_user_ns(reader.tid()).is_some() =>
            {
                self.open_in_user_ns_as(node, reader.tid()).map(drop)
            }
            ChangeRule::Real => {
                let object = self.object(reader, node);
                let mut change = change.clone();
                if object.as_ref().is_some_and(|o| !o.path().is_file()) {
                    // The view shows a FIFO or socket behind `fd/N` as a regular file,
                    // so the kernel asks to truncate it for an `open(O_TRUNC)`
                    // (`> /dev/fd/63`), which it ignores for a FIFO.
                    change.size = None;
                }
                let path = super::links::real_target(object.as_ref(), node);
                self.as_caller(reader, node, || apply(&path, &change))
            }
            ChangeRule::Shared => shared_change(fsuid, change),
        }
    }

    /// Sets or removes (`value` `None`) extended attribute `name` of `node`, as procfs
    /// answers `reader`: it keeps none, and refuses each call its own way (`EPERM` on
    /// its immutable directories, `EACCES` on a sysctl directory, `EOPNOTSUPP`
    /// elsewhere), so the call is made to the real entry as the reader where
    /// [`ChangeRule::Real`] applies.
    pub(super) fn change_xattr(
        &self,
        reader: Reader,
        fsuid: u32,
        node: &Node,
        name: &std::ffi::OsStr,
        value: Option<(&[u8], i32)>,
    ) -> Result<(), Errno> {
        match change_rule(node) {
            ChangeRule::Immutable => return Err(Errno::EPERM),
            ChangeRule::Shared => return Err(shared_xattr_change(fsuid, name)),
            ChangeRule::Real => {}
        }
        let object = self.object(reader, node);
        let path = super::links::real_target(object.as_ref(), node);
        self.as_caller(reader, node, || {
            match value {
                Some((v, flags)) => {
                    let flags = rustix::fs::XattrFlags::from_bits_truncate(flags as u32);
                    rustix::fs::setxattr(&path, name, v, flags)
                }
                None => rustix::fs::removexattr(&path, name),
            }
            .map_err(io::Error::from)
        })
    }

    /// Runs `f` on a thread that has taken on the identity under which the daemon acts
    /// on `node` for `reader` ([`identity_on`]).
    fn as_caller(
        &self,
        reader: Reader,
        node: &Node,
        f: impl FnOnce() -> io::Result<()> + Send,
    ) -> Result<(), Errno> {
        let (id, namespaces) = identity_on(reader, node)?;
        run_as(&id, &namespaces, f).map_err(|e| self.gone_or(node, errno(&e)))
    }
}

/// A change of `/proc`'s own or a global entry's attributes by a reader of fsuid
/// `fsuid`: taken (not kept) from root, refused to others as the kernel refuses a
/// non-owner (the owner is root) of an entry no one else may write.
fn shared_change(fsuid: u32, change: &Change) -> Result<(), Errno> {
    if fsuid == 0 {
        return Ok(());
    }
    let explicit = |t: &Option<Option<std::time::SystemTime>>| matches!(t, Some(Some(_)));
    if change.uid.is_some()
        || change.gid.is_some()
        || change.mode.is_some()
        || explicit(&change.atime)
        || explicit(&change.mtime)
    {
        return Err(Errno::EPERM);
    }
    // Touching or truncating needs write permission, which procfs gives only to root.
    Err(Errno::EACCES)
}

/// Why an extended attribute `name` set or removed on `/proc` or a global entry by a
/// reader of fsuid `fsuid` is refused: procfs keeps none (`EOPNOTSUPP`), after the
/// VFS's checks (`xattr_permission`): `trusted.` needs `CAP_SYS_ADMIN`, `user.` write
/// permission, both of which procfs gives to root only there.
fn shared_xattr_change(fsuid: u32, name: &std::ffi::OsStr) -> Errno {
    use std::os::unix::ffi::OsStrExt as _;
    let name = name.as_bytes();
    match fsuid {
        0 => Errno::EOPNOTSUPP,
        _ if name.starts_with(b"trusted.") => Errno::EPERM,
        _ if name.starts_with(b"user.") => Errno::EACCES,
        _ => Errno::EOPNOTSUPP,
    }
}

#[cfg(test)]
mod change_tests {
    use super::*;

    #[test]
    fn an_extended_attribute_of_a_global_entry_is_refused_as_procfs_refuses_it() {
        let refused = |uid, name: &str| shared_xattr_change(uid, std::ffi::OsStr::new(name));
        assert_eq!(refused(0, "user.x"), Errno::EOPNOTSUPP);
        assert_eq!(refused(0, "trusted.x"), Errno::EOPNOTSUPP);
        assert_eq!(refused(65534, "user.x"), Errno::EACCES);
        assert_eq!(refused(65534, "trusted.x"), Errno::EPERM);
        assert_eq!(refused(65534, "security.x"), Errno::EOPNOTSUPP);
    }

    #[test]
    fn what_decides_a_change_of_attributes() {
        let pid = |rel: &str| Node::Pid {
            n: 1,
            tid: None,
            start: 0,
            rel: rel.into(),
        };
        let global = |rel: &str| Node::Global { rel: rel.into() };
        assert_eq!(change_rule(&pid("")), ChangeRule::Immutable);
        assert_eq!(
            change_rule(&pid("ns/pid:[4026531836]")),
            ChangeRule::Immutable
        );
        assert_eq!(change_rule(&pid("ns")), ChangeRule::Real);
        assert_eq!(change_rule(&pid("fd/pipe:[12]")), ChangeRule::Real);
        assert_eq!(change_rule(&pid("stat")), ChangeRule::Real);
        assert_eq!(change_rule(&global("sys/kernel/pid_max")), ChangeRule::Real);
        assert_eq!(change_rule(&global("sys")), ChangeRule::Real);
        assert_eq!(change_rule(&global("sysrq-trigger")), ChangeRule::Shared);
        assert_eq!(change_rule(&global("uptime")), ChangeRule::Shared);
        assert_eq!(change_rule(&global("sysvipc/shm")), ChangeRule::Shared);
        assert_eq!(change_rule(&Node::Root), ChangeRule::Shared);
    }

    #[test]
    fn a_shared_entry_is_changed_by_root_only() {
        let now = Some(None);
        let at = Some(Some(std::time::UNIX_EPOCH));
        let touch = Change {
            atime: now,
            mtime: now,
            ..Change::default()
        };
        let set = Change {
            atime: at,
            mtime: at,
            ..Change::default()
        };
        let chown = Change {
            uid: Some(1),
            ..Change::default()
        };
        for c in [&touch, &set, &chown] {
            assert_eq!(shared_change(0, c), Ok(()));
        }
        assert_eq!(shared_change(1000, &touch), Err(Errno::EACCES));
        assert_eq!(shared_change(1000, &set), Err(Errno::EPERM));
        assert_eq!(shared_change(1000, &chown), Err(Errno::EPERM));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_max_at_or_below_the_last_pid_comes_round_to_the_bottom() {
        assert_eq!(after_pid_max(354, 5000), 354);
        assert_eq!(after_pid_max(354, 356), 354);
        assert_eq!(after_pid_max(354, 355), RESERVED_PIDS - 1);
        assert_eq!(after_pid_max(600, 550), RESERVED_PIDS - 1);
    }
}
