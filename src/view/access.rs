//! procfs's permission rules, applied by the daemon: the mode bits (`may_read`), and
//! beyond them the `ptrace` access procfs asks of a reader of a process's entries
//! (`Guard`, `may_ptrace_as`), with what it shows instead (a `stat` with its addresses
//! hidden, `wchan` 0).

use super::Errno;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;

use crate::engine::Pid;
use crate::host;
use crate::sys::creds::cap;

use super::entries::{self, Check};
use super::files::Render;
use super::nodes::Node;
use super::userns::Standing;
use super::{errno, lock, Handle, Lazy, Reader, View};

/// What procfs checks, beyond the mode bits, before it shows an entry of a process
/// (`fs/proc/base.c`, `fs/proc/fd.c`, `fs/proc/namespaces.c`): whether the reader may
/// ptrace the process, with its file-system ids (`PTRACE_MODE_*_FSCREDS`). The daemon
/// reads every file as root, so it makes the same check itself ([`may_ptrace`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Guard {
    /// `mm_access` at open (`proc_mem_open`: `environ`, `auxv`, `maps`, `smaps`,
    /// `pagemap`…): refused with `EACCES` unless `PTRACE_MODE_READ` is allowed. A
    /// process without memory (a zombie, a thread group whose leader has exited) is
    /// not checked: its file opens as it does for root (empty, or `ESRCH`).
    Memory,
    /// `mem`: the same with `PTRACE_MODE_ATTACH` (which Yama restricts).
    MemoryAttach,
    /// Refused with `EACCES` at open unless `PTRACE_MODE_READ` is allowed (`timers`,
    /// `fdinfo/`).
    Read,
    /// `io`: opens, and its reads fail with `EACCES` unless `PTRACE_MODE_READ` is
    /// allowed (procfs checks in the seq file's show).
    ReadAtRead,
    /// `personality`, `syscall`: open, and their reads fail with `EPERM` (procfs's
    /// `lock_trace`) unless `PTRACE_MODE_ATTACH` is allowed.
    Trace,
    /// `stack`: opens, and its reads fail with `EACCES` without `CAP_SYS_ADMIN`, then
    /// as [`Guard::Trace`].
    Stack,
    /// `timerslack_ns`: opens, and its reads fail with `EPERM` unless the reader is the
    /// task itself or has `CAP_SYS_NICE` (`timerslack_ns_show`).
    Nice,
    /// `stat`: shown to all, the fields about memory and kernel state zeroed.
    Stat,
    /// `wchan`: `0` for a reader that may not ptrace-read the process.
    Wchan,
}

impl Guard {
    /// Whether the check is `PTRACE_MODE_ATTACH`'s rather than `PTRACE_MODE_READ`'s.
    fn attach(self) -> bool {
        matches!(self, Guard::MemoryAttach | Guard::Trace | Guard::Stack)
    }

    /// Whether the check is `mm_access`'s, which a process without memory passes.
    fn memory(self) -> bool {
        matches!(self, Guard::Memory | Guard::MemoryAttach)
    }

    /// Whether procfs checks at the read, not at the open ([`refused_at_read`]).
    fn at_read(self) -> bool {
        matches!(
            self,
            Guard::ReadAtRead | Guard::Trace | Guard::Stack | Guard::Nice
        )
    }
}

/// The entry-table rule of `node`, when it is an entry of a process directory.
pub(super) fn check_of(node: &Node) -> Option<Check> {
    match node {
        Node::Pid { rel, .. } if !rel.is_empty() => Some(entries::entry(rel).check),
        _ => None,
    }
}

/// How the kernel lets a reader do something to a file by its mode bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dac {
    /// The mode bits let it.
    Bits,
    /// A capability overrides the bits that do not (`CAP_DAC_READ_SEARCH`,
    /// `CAP_DAC_OVERRIDE`): allowed, and the kernel marks the reader as having used a
    /// superuser privilege (`PF_SUPERPRIV`, ps's `F` 4).
    Capability,
    /// Refused (`EACCES`).
    Refused,
}

/// The kernel's permission check over the real file's current owner and mode, for a
/// reader with file-system ids `uid`/`gid` asking for `mask` (`R_OK`, `W_OK`, `X_OK`
/// bits) on `node`: the owner by the owner bits, a member of the file's group by the
/// group bits, anyone else (root too) by the others. Where the bits refuse,
/// `generic_permission` lets a reader with `CAP_DAC_READ_SEARCH` read and search
/// (directories), and one with `CAP_DAC_OVERRIDE` do anything but execute a file no one
/// may execute, each held in the reader's own user namespace, where the file's owner
/// and group must be mapped ([`Standing::has_over_inode`]). A sysctl
/// (`proc_sys_permission`) has no such override, and root is judged by the owner bits.
pub(super) fn dac(
    md: &Metadata,
    uid: u32,
    gid: u32,
    reader: Reader,
    node: &Node,
    mask: u32,
) -> Dac {
    let mask = mask & 0o7;
    let mode = md.mode();
    let tid = reader.tid();
    if matches!(node, Node::Global { rel } if rel.starts_with("sys/")) {
        let bits = if uid == 0 {
            mode >> 6
        } else if gid == 0 || host::in_group(tid, 0) {
            mode >> 3
        } else {
            mode
        };
        return if bits & mask == mask {
            Dac::Bits
        } else {
            Dac::Refused
        };
    }
    let bits = if md.uid() == uid {
        mode >> 6
    } else if md.gid() == gid || host::in_group(tid, md.gid()) {
        mode >> 3
    } else {
        mode
    };
    if bits & mask == mask {
        return Dac::Bits;
    }
    let standing = Standing::of(tid, uid);
    let has = |cap: u32| standing.has_over_inode(cap, md.uid(), md.gid());
    let read_search = mask & 0o2 == 0 && (md.is_dir() || mask == 0o4);
    if read_search && has(cap::DAC_READ_SEARCH) {
        return Dac::Capability;
    }
    let may_override = md.is_dir() || mask & 0o1 == 0 || mode & 0o111 != 0;
    if may_override && has(cap::DAC_OVERRIDE) {
        return Dac::Capability;
    }
    Dac::Refused
}

/// A task's credentials, from its `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Creds {
    tgid: Pid,
    ppid: Pid,
    /// Real, effective, saved and file-system ids.
    uid: [u32; 4],
    gid: [u32; 4],
    cap_prm: u64,
    cap_eff: u64,
    /// A zombie (or dead) task has no memory: procfs skips its dumpable check.
    zombie: bool,
}

impl Creds {
    fn of(task: Pid) -> Option<Creds> {
        if task <= 0 {
            return None;
        }
        let raw = host::read_single(&host::proc_path(&format!("{task}/status"))).ok()?;
        Creds::parse(&raw)
    }

    /// The process's ids and capabilities ([`crate::sys::creds::Identity`]), its state
    /// and its parent, from the one parser of `status`.
    fn parse(raw: &[u8]) -> Option<Creds> {
        let status = crate::render::parse_status(raw).ok()?;
        let id = crate::sys::creds::Identity::of_status(&status)?;
        Some(Creds {
            tgid: status.tgid,
            ppid: status.ppid,
            uid: id.uid,
            gid: id.gid,
            cap_prm: id.cap_prm,
            cap_eff: id.cap_eff,
            zombie: matches!(status.state, b'Z' | b'X'),
        })
    }
}

/// The kernel's `ptrace_may_access(target, mode | PTRACE_MODE_FSCREDS)` for a reader
/// with credentials `r`, capabilities `standing` and file-system ids `fsuid`/`fsgid`
/// (`__ptrace_may_access`, then the commoncap and Yama checks), in the mode `guard`
/// asks: the same thread group may; so may a reader with `CAP_SYS_PTRACE` in the
/// target's user namespace ([`Standing::has_over_task`]); otherwise every uid and gid
/// of the target must be the reader's, the target must be dumpable (procfs owns a
/// non-dumpable process's files as root, which is how it is told here; a zombie's flag
/// is `zombie_dumped`'s to tell), and it must be in the reader's own user namespace
/// with its permitted capabilities among the reader's effective ones. An attach is
/// also subject to Yama's `ptrace_scope`. `mm_access` ([`Guard::memory`]) checks
/// nothing of a process without memory (a zombie).
pub(super) fn may_ptrace(
    r: &Creds,
    standing: &Standing,
    (fsuid, fsgid): (u32, u32),
    target: Pid,
    guard: Guard,
    zombie_dumped: impl FnOnce() -> bool,
) -> bool {
    let attach = guard.attach();
    if !attach && standing.has_at_top(cap::SYS_PTRACE) {
        return true; // without reading the target: the common case of a root reader
    }
    let Some(t) = Creds::of(target) else {
        return false;
    };
    if t.tgid == r.tgid || guard.memory() && t.zombie {
        return true;
    }
    let tracer = standing.has_over_task(cap::SYS_PTRACE, target, || Some(r.uid[1]));
    if !tracer {
        let ids = t.uid[..3].iter().all(|&u| u == fsuid) && t.gid[..3].iter().all(|&g| g == fsgid);
        if !ids || t.cap_prm & !r.cap_eff != 0 || !standing.shares_ns_with(target) {
            return false;
        }
    }
    if t.zombie {
        if !tracer && !zombie_dumped() {
            return false;
        }
    } else if !(tracer && standing.has_at_top(cap::SYS_PTRACE)) {
        // Not the directory: procfs keeps the process's owner on its world-readable
        // directories, whatever its dumpable flag.
        let Ok(md) = fs::metadata(host::proc_path(&format!("{target}/environ"))) else {
            return false;
        };
        let dumpable = (md.uid(), md.gid()) == (t.uid[1], t.gid[1]);
        // A process that is not dumpable is open to a reader with CAP_SYS_PTRACE in the
        // user namespace of its memory (`mm->user_ns`, where it last exec'ed), whose
        // root procfs makes the owner of its files: the reader's capability in the
        // process's own namespace counts if that is the one.
        if !(dumpable || tracer && root_of(target) == Some(md.uid())) {
            return false;
        }
    }
    !attach || yama_allows(r, target, tracer)
}

/// The uid that is root in the user namespace of task `task`, in the daemon's
/// namespace's numbers (its `uid_map`).
fn root_of(task: Pid) -> Option<u32> {
    let map = fs::read(host::proc_path(&format!("{task}/uid_map"))).ok()?;
    crate::render::ids::IdMap::parse(&map).to_kernel(0)
}

/// Yama's `ptrace_scope` for an attach: 1 lets a reader attach to its descendants only,
/// 2 only with `CAP_SYS_PTRACE`, 3 never (`security/yama/yama_lsm.c`; the exceptions a
/// process grants with `PR_SET_PTRACER` are not visible here, and not granted).
pub(super) fn yama_allows(r: &Creds, target: Pid, cap: bool) -> bool {
    let scope = fs::read_to_string(host::proc_path("sys/kernel/yama/ptrace_scope"))
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    match scope {
        None | Some(0) => true,
        Some(1) => cap || descends_from(target, r.tgid),
        Some(2) => cap,
        Some(_) => false,
    }
}

/// Whether `task`'s process is `ancestor` or one of its descendants.
pub(super) fn descends_from(task: Pid, ancestor: Pid) -> bool {
    let mut p = task;
    for _ in 0..4096 {
        let Some(c) = Creds::of(p) else {
            return false;
        };
        if c.tgid == ancestor {
            return true;
        }
        if c.ppid <= 0 {
            return false;
        }
        p = c.ppid;
    }
    false
}

/// Whether `reader` may ptrace the task `node` shows, as procfs's `guard` asks; `ids`
/// are the reader's file-system ids from the request (else read from its `status`). A
/// reader the daemon cannot see (tid 0) may if its uid is 0.
pub(super) fn may_ptrace_as(
    reader: Reader,
    ids: Option<(u32, u32)>,
    node: &Node,
    guard: Guard,
) -> bool {
    may_ptrace_standing(reader, ids, node, guard, || Standing::of(reader.tid(), 0))
}

/// [`may_ptrace_as`] with the reader's [`Standing`] from `standing`, for a caller that
/// has asked it something already (its capabilities and namespace read once).
fn may_ptrace_standing<S: std::borrow::Borrow<Standing>>(
    reader: Reader,
    ids: Option<(u32, u32)>,
    node: &Node,
    guard: Guard,
    standing: impl FnOnce() -> S,
) -> bool {
    let tid = reader.tid();
    let Some(target) = node.shown_task() else {
        return true;
    };
    if tid <= 0 {
        return ids.is_some_and(|(uid, _)| uid == 0);
    }
    // The common case, a reader with CAP_SYS_PTRACE in the daemon's user namespace
    // reading: allowed without its status (the read of which would cost most of the
    // request).
    let standing = standing();
    let standing = standing.borrow();
    if !guard.attach() && standing.has_at_top(cap::SYS_PTRACE) {
        return true;
    }
    let Some(r) = Creds::of(tid) else {
        return false;
    };
    let ids = ids.unwrap_or((r.uid[3], r.gid[3]));
    may_ptrace(&r, standing, ids, target, guard, || dumped(tid, target))
}

/// Whether zombie `target` was dumpable when it let its memory go, as procfs's
/// `ptrace_may_access` for a reader of task `tid` says it: the kernel keeps that flag
/// past the exit (an undumpable process's zombie stays closed to its own uid), and
/// nothing the daemon can read shows it (a zombie's files are root's either way). So
/// the reader's own access is tried, on a thread with its credentials: the link to the
/// zombie's `cwd` fails `EACCES` where ptrace access is refused, and `ENOENT` where it
/// is allowed (an exited task has no working directory).
fn dumped(tid: Pid, target: Pid) -> bool {
    let Ok((id, namespaces)) = crate::sys::creds::Identity::of_task(tid) else {
        return false;
    };
    let link = host::proc_path(&format!("{target}/cwd"));
    let tried = crate::sys::creds::run_as(&id, &namespaces, || fs::read_link(&link));
    !matches!(tried, Err(e) if e.raw_os_error() == Some(libc::EACCES))
}

/// What procfs answers the reads of a file [`Guard`] `guard` lets open but not read:
/// `None` where the reads are allowed. `own` is whether the reader is the task shown.
pub(super) fn refused_at_read(
    reader: Reader,
    ids: (u32, u32),
    node: &Node,
    guard: Guard,
    own: bool,
) -> Option<Errno> {
    // Read once, for `stack`, which asks both.
    let once = std::cell::OnceCell::new();
    let standing = || once.get_or_init(|| Standing::of(reader.tid(), ids.0));
    let may = || may_ptrace_standing(reader, Some(ids), node, guard, standing);
    match guard {
        Guard::ReadAtRead => (!may()).then_some(Errno::EACCES),
        Guard::Trace => (!may()).then_some(Errno::EPERM),
        // `file_ns_capable(file, &init_user_ns, CAP_SYS_ADMIN)`.
        Guard::Stack if !standing().has_at_top(cap::SYS_ADMIN) => Some(Errno::EACCES),
        Guard::Stack => (!may()).then_some(Errno::EPERM),
        // `ns_capable(the task's user namespace, CAP_SYS_NICE)`.
        Guard::Nice if own => None,
        Guard::Nice => {
            let target = node.shown_task().unwrap_or(0);
            let euid = || Creds::of(reader.tid()).map(|r| r.uid[1]);
            (!standing().has_over_task(cap::SYS_NICE, target, euid)).then_some(Errno::EPERM)
        }
        _ => None,
    }
}

impl View {
    /// procfs's checks beyond the mode bits ([`Guard`]) on opening `node`, for `reader`
    /// with file-system ids `uid`/`gid`: a refusal, the handle of a file shown otherwise
    /// than the real one (`stat`, `wchan`), or `None` for the real file.
    pub(super) fn guarded_open(
        &self,
        reader: Reader,
        node: &Node,
        uid: u32,
        gid: u32,
    ) -> Result<Option<Handle>, Errno> {
        let Some(Check::File(guard)) = check_of(node) else {
            return Ok(None);
        };
        let tid = reader.tid();
        let own = tid > 0 && node.shown_task() == Some(tid);
        if guard.at_read() {
            let refused = refused_at_read(reader, (uid, gid), node, guard, own);
            if guard == Guard::Nice && !own && refused.is_none() {
                // Allowed by `CAP_SYS_NICE` (`timerslack_ns_show`).
                self.used_privilege(reader);
            }
            return Ok(refused.map(Handle::Refused));
        }
        let allowed = may_ptrace_as(reader, Some((uid, gid)), node, guard);
        match guard {
            _ if allowed && guard != Guard::Wchan => Ok(None),
            Guard::Wchan if allowed && !own => Ok(None),
            Guard::Wchan => Ok(Some(Handle::Buffer(b"0".to_vec()))),
            // Shown with what procfs hides from a reader who may not ptrace-read it.
            Guard::Stat => Ok(Some(Handle::Lazy(Lazy {
                node: node.clone(),
                reader,
                render: Render::Stat,
                hidden: true,
            }))),
            _ => Err(Errno::EACCES),
        }
    }
}

impl View {
    /// Whether the mode bits of the real file (`md`) of `node` let `reader`, with
    /// file-system ids `ids`, do `mask` ([`dac`]); a capability that overrides them, or
    /// that a sysctl's own permission hook asks for ([`View::mark_sysctl_privilege`]),
    /// is recorded as a privilege the reader used ([`View::used_privilege`]).
    pub(super) fn permits(
        &self,
        md: &Metadata,
        ids: (u32, u32),
        reader: Reader,
        node: &Node,
        mask: u32,
    ) -> bool {
        self.mark_sysctl_privilege(reader, ids, node);
        match dac(md, ids.0, ids.1, reader, node, mask) {
            Dac::Bits => true,
            Dac::Capability => {
                self.used_privilege(reader);
                true
            }
            Dac::Refused => false,
        }
    }

    /// Records that `reader`'s task got what procfs grants by a capability, which the
    /// kernel marks in the task's flags (`PF_SUPERPRIV`, shown in `stat` and as ps's
    /// `F` 4): the daemon decides for it, so the kernel never does. Only a member's
    /// (released with it, [`View::with_tracker`]).
    pub(super) fn used_privilege(&self, reader: Reader) {
        if let Reader::Vps { tid, .. } = reader {
            if tid > 0 {
                lock(&self.shared.superpriv).insert(tid);
            }
        }
    }

    /// Whether task `tid` used a privilege that procfs would have marked
    /// ([`View::used_privilege`]).
    pub(super) fn used_a_privilege(&self, tid: Pid) -> bool {
        lock(&self.shared.superpriv).contains(&tid)
    }

    /// The sysctls whose permission procfs decides with a capability of the reader's
    /// (a `permissions` hook of their table) and so marks a reader that has it: what
    /// lies below `/proc/sys/net/<dir>` (`CAP_NET_ADMIN`, `net_ctl_permissions`),
    /// `kernel/pid_max` (`CAP_SYS_ADMIN`, `pid_table_root_permissions`) and the SysV
    /// IPC `*_next_id` (`checkpoint_restore_ns_capable`). Asked at open, opendir,
    /// lookup (of a name in the directory) and `access`, as procfs asks.
    fn mark_sysctl_privilege(&self, reader: Reader, ids: (u32, u32), node: &Node) {
        let Node::Global { rel } = node else {
            return;
        };
        // Only a member is marked, once (`sysctl -a` opens a thousand of these).
        let tid = reader.tid();
        if !matches!(reader, Reader::Vps { .. }) || tid <= 0 || self.used_a_privilege(tid) {
            return;
        }
        let caps: &[u32] = match rel.strip_prefix("sys/") {
            Some(r) if r.strip_prefix("net/").is_some_and(|r| !r.is_empty()) => &[cap::NET_ADMIN],
            Some("kernel/pid_max") => &[cap::SYS_ADMIN],
            Some("kernel/msg_next_id" | "kernel/sem_next_id" | "kernel/shm_next_id") => {
                &[cap::SYS_ADMIN, cap::CHECKPOINT_RESTORE]
            }
            _ => return,
        };
        let standing = Standing::of(tid, ids.0);
        if caps.iter().any(|&c| standing.has(c)) {
            self.used_privilege(reader);
        }
    }
}

impl View {
    /// procfs's permission for `reader`, with file-system ids `ids`, to do `mask`
    /// (`R_OK`, `W_OK`, `X_OK` bits) on directory or file `node`: the mode bits of the
    /// real one, and for the directories the entry table guards ([`Check`]) the
    /// process's own rule. The daemon decides this, not the kernel (the mount has no
    /// `default_permissions`), so that the kernel may cache entries and attributes
    /// whose owner a process's credentials change: a cached owner never lets anyone in.
    /// Asked at lookup (search, `X_OK`, in the parent), opendir, open and access.
    pub(super) fn permission(
        &self,
        reader: Reader,
        ids: (u32, u32),
        node: &Node,
        mask: u32,
    ) -> Result<(), Errno> {
        let (uid, _) = ids;
        let writing = mask & libc::W_OK as u32 != 0;
        // `/proc` is `dr-xr-xr-x` for everyone; the process directories too, and
        // immutable (`EPERM` to a write, whoever asks).
        match node {
            Node::Root if writing && uid != 0 => return Err(Errno::EACCES),
            Node::Root => return Ok(()),
            Node::Pid { rel, .. } if rel.is_empty() && writing => return Err(Errno::EPERM),
            Node::Pid { rel, .. } if rel.is_empty() => return Ok(()),
            Node::SelfLink | Node::ThreadSelf => return Ok(()),
            _ => {}
        }
        // The object behind a magic link (`ns/pid` → `pid:[…]`, a pipe): its own mode,
        // and a namespace is immutable, as nsfs makes it.
        if let Some(obj) = self.object(reader, node) {
            if writing && super::links::is_namespace(node) {
                return Err(Errno::EPERM);
            }
            let md = fs::metadata(obj.path()).map_err(|e| self.gone_or(node, errno(&e)))?;
            return match self.permits(&md, ids, reader, node, mask) {
                true => Ok(()),
                false => Err(Errno::EACCES),
            };
        }
        let md =
            fs::symlink_metadata(node.real_path()).map_err(|e| self.gone_or(node, errno(&e)))?;
        let by_mode = self.permits(&md, ids, reader, node, mask);
        match check_of(node) {
            Some(Check::Dir) if by_mode => {
                if may_ptrace_as(reader, Some(ids), node, Guard::Read) {
                    Ok(())
                } else {
                    Err(Errno::EACCES)
                }
            }
            // `proc_fd_permission`: a process may always look at its own descriptors.
            Some(Check::FdDir) if !by_mode => {
                let tid = reader.tid();
                let own = tid > 0
                    && host::read_task(tid).is_ok_and(|t| Some(t.tgid) == node.shown_task());
                if own {
                    Ok(())
                } else {
                    Err(Errno::EACCES)
                }
            }
            _ if by_mode => Ok(()),
            _ => Err(Errno::EACCES),
        }
    }

    /// `access(2)` and `chdir(2)` of inode `ino` by `reader` with file-system ids
    /// `ids` (FUSE_ACCESS): procfs answers them from the mode bits and its directory
    /// rules ([`View::permission`]), not the ptrace checks of open.
    pub fn access(
        &self,
        reader: Reader,
        ids: (u32, u32),
        ino: u64,
        mask: u32,
    ) -> Result<(), Errno> {
        let node = self.node_named(reader, ino, super::cache::Step::Call)?;
        self.check_alive(reader, &node)?;
        if mask == libc::F_OK as u32 {
            return Ok(());
        }
        self.permission(reader, ids, &node, mask)
    }
}
