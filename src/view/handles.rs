//! Open files and directories: what an open gives (a snapshot the kernel serves, a
//! handle read through the daemon, a relayed stream, a write), the first read of a file
//! rendered then, and the release.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;

use nix::poll::PollTimeout;

use super::*;
use crate::render::ids::ReaderIds;

/// An open file or directory.
pub(super) enum Handle {
    /// A file to render at its first read ([`Lazy`]).
    Lazy(Lazy),
    /// A [`Lazy`] file read through the daemon, rendered again as procfs's seq file
    /// makes its text again ([`Seq`]).
    Seq(Seq),
    /// A text fixed for the handle's life: the snapshot the kernel serves
    /// (passthrough), or what was read as the reader.
    Buffer(Vec<u8>),
    /// A file read as its reader, made anew as procfs's seq file makes it ([`Reread`]).
    Reread(Reread),
    /// An integer sysctl, whose text procfs makes at each read from offset 0 and gives
    /// to no read past it ([`View::read_sysctl_as`]): the kernel's read at 0, as its
    /// reader, each time ([`View::read_sysctl_start_as`]).
    Sysctl(Node, Reader),
    /// A file procfs lets open but whose reads fail (`stack` without `CAP_SYS_ADMIN`,
    /// another's `timerslack_ns`…: [`super::access::refused_at_read`]), with this error.
    Refused(Errno),
    /// A passed-through file: the real one, read at the reader's offsets. Shared so that
    /// a read that blocks (`/proc/kmsg`) does so outside the handle table's lock.
    File(std::sync::Arc<File>),
    /// A directory listing, taken when read from its start.
    Dir(super::listing::Listing),
    /// A directory listing taken at opendir, that the kernel may keep
    /// ([`super::listing::DirCaching`]).
    Listed(Vec<DirEntry>),
    /// The object behind a magic link (a pipe…), read where it stands, not at offsets
    /// ([`links`]).
    Stream(std::sync::Arc<File>),
    /// A file opened for writing ([`writes`]).
    Write(writes::WriteTarget),
}

/// A rewritten file, opened but not read yet. procfs makes a seq file's text at the
/// first read, not at open: a process that is gone by then gives `ESRCH` (and a reader
/// of its own `stat` is running at that read), so the view renders then too, and keeps
/// the text for the handle's later reads, as the seq file keeps its buffer.
#[derive(Clone)]
pub(super) struct Lazy {
    pub(super) node: Node,
    pub(super) reader: Reader,
    pub(super) render: Render,
    /// The reader may not ptrace-read the task: its `stat` hides what procfs hides
    /// ([`Context::hidden`]).
    pub(super) hidden: bool,
}

/// A rendered file read through the daemon, with procfs's seq-file semantics: a read
/// from offset 0 makes the text anew (`top`, `vmstat` and `free -s` keep `/proc/stat`
/// and `/proc/meminfo` open and read them again after `lseek(0)`), a read where the
/// last one ended goes on in the same text, and a read anywhere else makes the text
/// anew and starts there (seq_file's `traverse`).
pub(super) struct Seq {
    pub(super) lazy: Lazy,
    buf: SeqBuf,
}

/// A file whose text depends on the reader's cgroup namespace, read through the daemon:
/// a `mountinfo` whose cgroup mounts show their roots from it
/// ([`writes::shows_cgroup_roots`]), or a process's `cgroup` without snapshots. The
/// real file opened as the reader, read on a thread in its namespaces at its first read
/// and at each read from offset 0 (or elsewhere than where the last one ended), as
/// procfs's seq file makes its text (a `mountinfo`, as procfs's, still readable once
/// its process is gone: it holds the mount namespace; a `cgroup` then `ESRCH`); and
/// polled, which procfs wakes at a change of the mount table, so that a reader waiting
/// for one (systemd, a container runtime) reads the new table when woken.
pub(super) struct Reread {
    node: Node,
    reader: Reader,
    file: std::sync::Arc<File>,
    buf: SeqBuf,
}

/// The text of a [`Seq`] and where the last read of it ended.
struct SeqBuf {
    text: Vec<u8>,
    end: u64,
}

impl SeqBuf {
    /// Whether a read at `offset` makes the text anew.
    fn renders_at(&self, offset: u64) -> bool {
        offset == 0 || offset != self.end
    }

    /// The bytes a read of `size` at `offset` gets, and where it ends.
    fn read(&mut self, offset: u64, size: u32) -> Vec<u8> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        let end = start.saturating_add(size as usize).min(self.text.len());
        self.end = offset.max(end as u64);
        self.text[start..end].to_vec()
    }
}

/// What an open gives the FUSE layer: the handle, and the whole text when it was
/// rendered at open, which the kernel may then serve itself (passthrough).
#[derive(Debug)]
pub struct Opened {
    /// The file handle.
    pub fh: u64,
    /// The text every read of this handle returns, when it is known at open.
    pub snapshot: Option<std::sync::Arc<[u8]>>,
    /// The handle reads an object where it stands (a pipe): it cannot seek, which the
    /// kernel must know (bash's `read` seeks back over what it read too far in a file
    /// that says it can).
    pub stream: bool,
}

/// Whether a read of `file` would return at once, waiting up to `timeout` for it to.
/// procfs files without a poll method (nearly all) are always ready; `/proc/kmsg` is
/// ready only with a message to give.
fn ready_to_read(file: &File, timeout: PollTimeout) -> bool {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd as _;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(0) => false,
        // Ready, or an error the read itself will report.
        _ => true,
    }
}

/// Whether procfs copies the whole text of `node` into one read ([`entries::Read`]).
pub(super) fn one_read(node: &Node) -> bool {
    matches!(node, Node::Pid { rel, .. } if entries::entry(rel).read == entries::Read::Single)
}

impl View {
    pub(super) fn new_handle(&self, ino: u64, h: Handle) -> u64 {
        *lock(&self.open_inodes).entry(ino).or_default() += 1;
        let fh = {
            let mut next = lock(&self.next_fh);
            let fh = *next;
            *next += 1;
            fh
        };
        lock(&self.handles).insert(fh, h);
        fh
    }

    /// Opens file `ino` for a reader with file-system ids `uid`/`gid`: a rendered
    /// snapshot for files that carry pids, the real file otherwise. The kernel has checked
    /// the (possibly cached) mode bits already; they are checked again here against the
    /// real file, whose owner changes when a process changes credentials.
    ///
    /// A VPS reader's virtual global file ([`resource_files`]) is rendered now, so that
    /// the kernel can serve every read of it from the snapshot ([`Opened::snapshot`]);
    /// so is, when the kernel serves snapshots (`snapshots`: FUSE passthrough), every
    /// entry of a process that the entry table reads whole ([`entries::Read`]).
    /// Without passthrough such a file is rendered at its first read, as procfs makes
    /// a seq file's text then (a process gone by that read gives `ESRCH`).
    pub fn open(
        &self,
        reader: Reader,
        ino: u64,
        (uid, gid): (u32, u32),
        flags: i32,
        snapshots: bool,
    ) -> Result<Opened, Errno> {
        let node = self.node_named(reader, ino, super::cache::Step::Call)?;
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let object = self.object(reader, &node);
        // A plain read is checked after it (below), which the read itself may be.
        if writing || object.is_some() {
            self.check_alive(reader, &node)?;
        }
        // procfs's files take no direct I/O: the open fails once it is allowed.
        let direct = flags & libc::O_DIRECT != 0 && object.is_none();
        if writing {
            let stream = object.is_some();
            let handle = self.open_for_write(reader, &node, object.as_ref(), (uid, gid), flags)?;
            if direct {
                return Err(Errno::EINVAL);
            }
            let relayed = match &handle {
                Handle::Write(writes::WriteTarget::Real { file, .. }) if stream => {
                    Some(std::sync::Arc::clone(file))
                }
                _ => None,
            };
            let fh = self.new_handle(ino, handle);
            if let Some(file) = relayed {
                self.relay_opened(ino, fh, file);
            }
            return Ok(Opened {
                fh,
                snapshot: None,
                stream,
            });
        }
        if let Some(obj) = object {
            // Following a process's fd/ or ns/ link needs ptrace-read access to it.
            if !may_ptrace_as(reader, Some((uid, gid)), &node, Guard::Read) {
                return Err(Errno::EACCES);
            }
            // Then the open of the object checks its own mode (a pipe is its maker's,
            // `0600`), as the kernel's open at the end of the link does.
            let md = fs::metadata(obj.path()).map_err(|e| errno(&e))?;
            if !self.permits(&md, (uid, gid), reader, &node, libc::R_OK as u32) {
                return Err(Errno::EACCES);
            }
            let f = links::open_object(obj.path()).map_err(|e| errno(&e))?;
            let stream = links::is_stream(&f);
            let f = std::sync::Arc::new(f);
            let handle = if stream {
                Handle::Stream(std::sync::Arc::clone(&f))
            } else {
                Handle::File(std::sync::Arc::clone(&f))
            };
            let fh = self.new_handle(ino, handle);
            self.relay_opened(ino, fh, f);
            return Ok(Opened {
                fh,
                snapshot: None,
                stream,
            });
        }
        // The process may have died, and its number gone to another, before or while
        // its file was opened or read (procfs's file is bound to its process): alive
        // after, it was its own; gone, the open fails as procfs's would, whatever the
        // attempt ran into (a reused number's owner may refuse a permission check).
        let (mut handle, text) = match self.open_to_read(reader, &node, (uid, gid), snapshots) {
            Ok((handle, text, bound)) => {
                if !bound {
                    self.check_alive(reader, &node)?;
                }
                self.retired_meanwhile(ino)?;
                (handle, text)
            }
            Err(e) => return Err(self.check_alive(reader, &node).err().unwrap_or(e)),
        };
        if direct {
            return Err(Errno::EINVAL);
        }
        let mut snapshot = None;
        if let Some(text) = text {
            snapshot = Some(std::sync::Arc::from(text.as_slice()));
            handle = Handle::Buffer(text);
        }
        Ok(Opened {
            fh: self.new_handle(ino, handle),
            snapshot,
            stream: false,
        })
    }

    /// The read-only open of `open`, before its check that the process is still the
    /// node's: the handle, its whole text where it is rendered now, and whether that
    /// text showed the process alive ([`View::read_real_bound`]).
    fn open_to_read(
        &self,
        reader: Reader,
        node: &Node,
        (uid, gid): (u32, u32),
        snapshots: bool,
    ) -> Result<(Handle, Option<Vec<u8>>, bool), Errno> {
        // The mode bits: the kernel's own where they are fixed and let anyone read
        // (`stat`, `status`, `cmdline`…), else the real file's.
        let by_all = matches!(node, Node::Pid { rel, .. } if entries::entry(rel).readable_by_all());
        if !by_all {
            let md = fs::metadata(node.real_path()).map_err(|e| errno(&e))?;
            if !self.permits(&md, (uid, gid), reader, node, libc::R_OK as u32) {
                return Err(Errno::EACCES);
            }
        }
        let whole = snapshots
            && matches!(node, Node::Pid { rel, .. } if entries::entry(rel).read.snapshot());
        let handle = match self.guarded_open(reader, node, uid, gid)? {
            Some(h) => h,
            None => match whole.then(|| self.read_kept_as_is(node)).flatten() {
                // Read through the file kept for it: bound to its process.
                Some(text) => return Ok((Handle::Buffer(text.clone()), Some(text), true)),
                None => self.handle_for(reader, node, whole)?,
            },
        };
        let (text, bound) = match &handle {
            // A virtual global file is read through the daemon, never from a snapshot:
            // its readers keep it open and read it again from offset 0 ([`Seq`]).
            Handle::Lazy(l)
                if whole && !matches!(l.render, Render::Resource(_) | Render::BlockStat(_)) =>
            {
                let (text, bound) = self.render_lazy_bound(l)?;
                (Some(text), bound)
            }
            // The real file is open already: read it whole from there.
            Handle::File(f) if whole => {
                let text = match one_read(node) {
                    true => host::read_open_single(f),
                    false => host::read_open(f),
                };
                // procfs fails this file's reads, not its open (`attr/current` where no
                // security module has it: `EINVAL`): read through the daemon, each read
                // failing as the kernel's does.
                (text.ok(), false)
            }
            Handle::Buffer(b) if whole => (Some(b.clone()), false),
            _ => (None, false),
        };
        Ok((handle, text, bound))
    }

    /// What a reader who opens `node` reads: a rendered snapshot or the real file.
    /// `at_open`: the text is taken whole at the open (a snapshot the kernel serves),
    /// rather than by reads through the daemon.
    fn handle_for(&self, reader: Reader, node: &Node, at_open: bool) -> Result<Handle, Errno> {
        let path = node.real_path();
        let renderer = match node {
            Node::Pid { rel, .. } => entries::entry(rel).render,
            Node::Global { rel } => files::global_file(rel),
            _ => None,
        };
        let lazy = |render| {
            Handle::Lazy(Lazy {
                node: node.clone(),
                reader,
                render,
                hidden: false,
            })
        };
        Ok(match (renderer, reader) {
            (Some(r), Reader::Vps { .. }) => lazy(r),
            // Shown as the reader's namespaces and credentials have it: read now, as it.
            (None, _) | (_, Reader::Host { .. }) if matches!(node, Node::Global { rel } if rel.starts_with("sys/")) => {
                match self.read_sysctl_as(reader, node)? {
                    Ok((_, true)) => Handle::Sysctl(node.clone(), reader),
                    Ok((text, false)) => Handle::Buffer(text),
                    Err(e) => Handle::Refused(e),
                }
            }
            // A host reader (of `serve`'s shared mount) in a user namespace of its own
            // is shown ids in it, as a VPS's reader is.
            (Some(r), Reader::Host { tid })
                if r.shows_ids() && userns::reader_ids(tid).is_some() =>
            {
                lazy(r)
            }
            // Made at each read from offset 0 as the reader, not at open: a `mountinfo`
            // whose cgroup roots depend on the reader, and a process's `cgroup` or
            // `cpuset` where the reads come through the daemon (no snapshot at open), as
            // procfs's seq file makes its text at the read (a process reaped since gives
            // `ESRCH`).
            (None, _) | (_, Reader::Host { .. })
                if writes::shows_cgroup_roots(node, reader)
                    || (!at_open && writes::shows_cgroup_paths(node)) =>
            {
                Handle::Reread(Reread {
                    node: node.clone(),
                    reader,
                    file: std::sync::Arc::new(self.open_as(reader, node)?),
                    // Made at the first read, from offset 0 or wherever it is.
                    buf: SeqBuf {
                        text: Vec::new(),
                        end: u64::MAX,
                    },
                })
            }
            (None, _) | (_, Reader::Host { .. }) if writes::read_as_reader(node) => {
                Handle::Buffer(self.read_as(reader, node)?)
            }
            (None, _) if writes::opens_as_reader(node) => {
                Handle::File(std::sync::Arc::new(self.open_as(reader, node)?))
            }
            // The host view is the real file, but a reader of its own stat would see
            // itself asleep in this request: corrected as the kernel shows it.
            (Some(r), Reader::Host { tid }) if tid > 0 && node.shown_task() == Some(tid) => lazy(r),
            // The mapped files' paths, for a reader in a chroot.
            (Some(r @ Render::Maps), Reader::Host { .. })
                if super::links::reader_root(reader.tid()).is_some() =>
            {
                lazy(r)
            }
            _ => Handle::File(std::sync::Arc::new(
                File::open(&path).map_err(|e| errno(&e))?,
            )),
        })
    }

    /// The text of a [`Lazy`] handle, made now (its first read).
    /// With whether the read of the real file showed the process alive
    /// ([`View::read_real_bound`]).
    fn render_lazy_bound(&self, l: &Lazy) -> Result<(Vec<u8>, bool), Errno> {
        if l.render.shows_forks() {
            self.catch_up();
        }
        if let (Render::Resource(file), Reader::Vps { id, tid }) = (l.render, l.reader) {
            return Ok((self.render_virtual(id, tid, &l.node, file)?, false));
        }
        if let (Render::BlockStat(dev), Reader::Vps { id, .. }) = (l.render, l.reader) {
            return Ok((self.render_block_stat(id, &l.node, dev)?, false));
        }
        let (raw, bound) = match l.render {
            Render::NsLastPid => (Vec::new(), false),
            _ if writes::read_as_reader(&l.node) => (self.read_as(l.reader, &l.node)?, false),
            _ => self.read_real_bound(&l.node)?,
        };
        let text = match l.reader {
            Reader::Vps { id, tid } => {
                self.render_for(id, tid, &l.node, l.render, &raw, l.hidden)?
            }
            Reader::Host { tid } => {
                let ids = self.ids_for(tid, &l.node, l.render);
                let root = reader_root_for(tid, l.render);
                let cx = Context {
                    running: tid > 0 && l.node.shown_task() == Some(tid),
                    hidden: l.hidden,
                    root: root.as_deref(),
                    ids: ids.as_deref(),
                    ..Context::default()
                };
                match files::render(l.render, &raw, &Identity, cx) {
                    Ok(text) => text,
                    // Not a line the renderer knows: shown as the kernel wrote it, but
                    // never with what a reader who may not see it would see.
                    Err(_) if !l.hidden => raw,
                    Err(e) => {
                        log::warn!("cannot render {}: {e}", l.node.real_path().display());
                        return Err(Errno::EIO);
                    }
                }
            }
        };
        Ok((text, bound))
    }

    /// A handle the table does not have, opened by a previous daemon of this mount, is
    /// opened again under the same number: the reader goes on reading (the open was
    /// allowed then; a snapshot is taken anew).
    pub(super) fn adopt_handle(&self, req: Requester, ino: u64, fh: u64) -> Result<(), Errno> {
        let node = self.node(ino)?;
        let reader = self.reader(req.tid);
        let is_dir =
            matches!(node, Node::Root) || fs::metadata(node.real_path()).is_ok_and(|m| m.is_dir());
        // The checks of open and opendir hold for a handle opened again.
        let handle = if is_dir {
            self.permission(reader, (req.uid, req.gid), &node, libc::R_OK as u32)?;
            Handle::Dir(super::listing::Listing {
                entries: self.list(reader, &node)?,
                groups_changed: None,
            })
        } else {
            match self.guarded_open(reader, &node, req.uid, req.gid)? {
                Some(h) => h,
                // Its reads come through the daemon (a snapshot taken at the first
                // open would be the kernel's to serve).
                None => self.handle_for(reader, &node, false)?,
            }
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = lock(&self.handles).entry(fh) {
            slot.insert(handle);
            *lock(&self.open_inodes).entry(ino).or_default() += 1;
        }
        Ok(())
    }

    pub(super) fn render_for(
        &self,
        id: VpsId,
        reader_tid: Pid,
        node: &Node,
        r: Render,
        raw: &[u8],
        hidden: bool,
    ) -> Result<Vec<u8>, Errno> {
        if matches!(r, Render::Stat) && node.rel() == "stat" {
            self.sync_groups(id, node, raw);
        }
        // Looked up before the tracker is locked: a look at the reader's namespaces.
        let ids = self.ids_for(reader_tid, node, r);
        let root = reader_root_for(reader_tid, r);
        let clock_shift_ns = match r {
            Render::Stat => self.reader_clock_shift(reader_tid),
            _ => 0,
        };
        // Only a name that could be an io_uring worker's costs a look at its flags; a
        // task gone meanwhile is taken for one, so that no pid in its name leaks.
        let io_worker = matches!(r, Render::Comm | Render::Status | Render::Sched)
            && raw.windows(4).any(|w| w == b"iou-")
            && node
                .shown_task()
                .is_some_and(|t| host::is_io_worker(t).unwrap_or(true));
        let mut tracker = lock(&self.shared.tracker);
        // `loadavg`'s total: the threads of now, those reaped released first.
        let threads = match r {
            Render::Loadavg => tracker.threads_now(id),
            _ => None,
        };
        let vps = tracker.vps(id).ok_or(Errno::ENOENT)?;
        // Reaped and released between the read and now: the text shows a process the
        // VPS no longer has (its own number would read 0), as procfs answers a read of
        // a reaped process, ESRCH.
        if node.shown_task().is_some_and(|t| vps.vpid_of(t).is_none()) {
            return Err(Errno::ESRCH);
        }
        // A reader in a pid namespace nested in the VPS's is told its own's last pid,
        // and its own's `pid_max` where the kernel keeps one per namespace.
        let last_pid = match r {
            Render::NsLastPid | Render::Loadavg => tracker.nested_last_pid(id, reader_tid),
            _ => None,
        }
        .unwrap_or_else(|| vps.last_vpid());
        let nested_pid_max = match r {
            Render::PidMax if host::pid_max_per_namespace() => tracker
                .nested_ns_of(id, reader_tid)
                .map(|ns| tracker.nested_pid_max(ns)),
            _ => None,
        };
        let meta = tracker.meta(id);
        let levels = meta.map(|m| m.ns_level).unwrap_or(0);
        let own_pid_max =
            matches!(r, Render::PidMax) && tracker.own_pid_max(id, host::pid_max_per_namespace());
        let map = VpsMap {
            vps,
            levels,
            lookups: std::cell::Cell::new(0),
        };
        let cx = Context {
            clock_shift_ns,
            io_worker,
            running: node.shown_task() == Some(reader_tid),
            superpriv: matches!(r, Render::Stat)
                && node.shown_task().is_some_and(|t| self.used_a_privilege(t)),
            hidden,
            last_pid,
            pid_max: nested_pid_max.or(own_pid_max.then_some(vps.config().pid_max)),
            tasks: threads.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            root: root.as_deref(),
            ids: ids.as_deref(),
        };
        let rendered = files::render(r, raw, &map, cx);
        self.shared
            .translations
            .fetch_add(map.lookups.get(), std::sync::atomic::Ordering::Relaxed);
        rendered.map_err(|e| {
            log::warn!("cannot render {}: {e}", node.real_path().display());
            Errno::EIO
        })
    }

    /// The maps of `reader_tid`'s user namespace, for a file whose ids procfs shows in
    /// it (`status`, the id maps, `loginuid`, `sysvipc/*`, `keys`, the socket tables
    /// of `net/`), when it is not the daemon's. An id map read from the namespace it
    /// shows gives its lower ids in the parent namespace (`uid_m_show`): as read where
    /// that is the daemon's, else in the parent's maps ([`userns::parent_ids`]).
    fn ids_for(&self, reader_tid: Pid, node: &Node, r: Render) -> Option<Arc<ReaderIds>> {
        if !r.shows_ids() {
            return None;
        }
        let (reader_ns, ids) = userns::reader_ids(reader_tid)?;
        if let (Render::IdMap(_), Some(target)) = (r, node.shown_task()) {
            if host::ns_inode(target, "user").ok() == Some(reader_ns) {
                return userns::parent_ids(reader_tid, reader_ns);
            }
        }
        Some(ids)
    }

    /// The connector does not report setpgid: when a member's stat shows another group
    /// than the engine has, the engine is brought up to date before translating.
    fn sync_groups(&self, id: VpsId, node: &Node, raw: &[u8]) {
        let Ok(st) = crate::render::stat::parse_stat(raw) else {
            return;
        };
        let Some(task) = node.shown_task() else {
            return;
        };
        let stale = {
            let tracker = lock(&self.shared.tracker);
            tracker.vps(id).is_some_and(|vps| {
                vps.tgid_of(task) == Some(task)
                    && vps.group_ids(task) != Some((st.pgrp, st.session))
            })
        };
        if stale {
            if let Ok(info) = host::read_task(task) {
                lock(&self.shared.tracker).sync_groups(&info);
            }
        }
    }

    /// Reads up to `size` bytes at `offset` from handle `fh` of inode `ino`, for `req`.
    /// With `wait` false, a passed-through file that has nothing to read yet (`/proc/kmsg`
    /// with no message: a read would block) answers `EAGAIN` instead of waiting, so that
    /// the caller can wait elsewhere than on the thread that serves everyone.
    pub fn read(
        &self,
        req: Requester,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        wait: bool,
    ) -> Result<Vec<u8>, Errno> {
        if !lock(&self.handles).contains_key(&fh) {
            self.adopt_handle(req, ino, fh)?;
        }
        let from_zero_only = match lock(&self.handles).get(&fh) {
            Some(Handle::Sysctl(node, reader)) => Some(Some((node.clone(), *reader))),
            Some(Handle::Seq(seq)) if seq.lazy.render.int_sysctl() => Some(None),
            Some(Handle::Lazy(l)) if l.render.int_sysctl() => Some(None),
            _ => None,
        };
        match from_zero_only {
            // An integer sysctl: nothing past offset 0 ([`Handle::Sysctl`]).
            Some(_) if offset > 0 => return Ok(Vec::new()),
            Some(Some((node, reader))) => return self.read_sysctl_start_as(reader, &node, size),
            _ => {}
        }
        self.render_for_read(ino, fh, offset)?;
        self.reread_for_read(fh, offset)?;
        let file = {
            let mut handles = lock(&self.handles);
            match handles.get_mut(&fh) {
                Some(Handle::Lazy(_)) => return Err(Errno::EIO),
                Some(Handle::Seq(seq)) => return Ok(seq.buf.read(offset, size)),
                Some(Handle::Reread(r)) => return Ok(r.buf.read(offset, size)),
                Some(Handle::Buffer(b)) => {
                    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                    let end = start.saturating_add(size as usize).min(b.len());
                    return Ok(b[start..end].to_vec());
                }
                Some(&mut Handle::Refused(e)) => {
                    drop(handles);
                    // procfs finds the process before it checks: gone, it says so.
                    let (node, retired) = self.node_or_retired(ino)?;
                    return match retired || self.check_alive_by_handle(&node).is_err() {
                        true => Err(Errno::ESRCH),
                        false => Err(e),
                    };
                }
                Some(Handle::File(f)) => (std::sync::Arc::clone(f), true),
                Some(Handle::Stream(f)) => (std::sync::Arc::clone(f), false),
                Some(Handle::Write(writes::WriteTarget::Real { file, seekable, .. })) => {
                    (std::sync::Arc::clone(file), *seekable)
                }
                Some(Handle::Write(_)) => return Err(Errno::EBADF),
                Some(Handle::Sysctl(..)) => return Err(Errno::EIO),
                Some(Handle::Dir(_) | Handle::Listed(_)) => return Err(Errno::EISDIR),
                None => return Err(Errno::EBADF),
            }
        };
        let (file, seekable) = file;
        if !wait && !ready_to_read(&file, PollTimeout::ZERO) {
            return Err(Errno::EAGAIN);
        }
        // Waiting: checked in steps, so that a reader that gets a signal meanwhile is
        // answered EINTR (procfs's kmsg wait is interruptible; the FUSE wait is not).
        while wait && !ready_to_read(&file, PollTimeout::from(100u8)) {
            // A reader outside the mounter's pid namespace (tid 0) cannot be checked.
            let tid = Pid::try_from(req.tid).unwrap_or(0);
            if tid > 0 && host::signal_pending(tid) {
                return Err(Errno::EINTR);
            }
        }
        let mut buf = vec![0u8; size as usize];
        let n = if seekable {
            file.read_at(&mut buf, offset)
        } else {
            std::io::Read::read(&mut &*file, &mut buf)
        };
        match n {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            // A pipe emptied by another reader between the poll and the read.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !wait => Err(Errno::EAGAIN),
            Err(e) => Err(errno(&e)),
        }
    }

    /// What a `poll` of handle `fh` needs: the real descriptor to poll (a file with a
    /// poll method of its own, `mountinfo`, a pipe…), or `None` for a text the view
    /// holds, always ready as a procfs file without a poll method is.
    pub fn pollable(&self, fh: u64) -> Result<Option<std::sync::Arc<File>>, Errno> {
        match lock(&self.handles).get(&fh) {
            Some(Handle::File(f) | Handle::Stream(f)) => Ok(Some(std::sync::Arc::clone(f))),
            Some(Handle::Reread(r)) => Ok(Some(std::sync::Arc::clone(&r.file))),
            Some(_) => Ok(None),
            None => Err(Errno::EBADF),
        }
    }

    /// Reads handle `fh`'s file again as its reader for a read at `offset`, where a
    /// [`Reread`] one makes its text anew; outside the table's lock.
    fn reread_for_read(&self, fh: u64, offset: u64) -> Result<(), Errno> {
        let (node, reader, file) = match lock(&self.handles).get(&fh) {
            Some(Handle::Reread(r)) if r.buf.renders_at(offset) => {
                (r.node.clone(), r.reader, std::sync::Arc::clone(&r.file))
            }
            _ => return Ok(()),
        };
        let text = self.read_as_with(reader, &node, |_| host::pread_all(&file))?;
        if let Some(Handle::Reread(r)) = lock(&self.handles).get_mut(&fh) {
            r.buf = SeqBuf { text, end: offset };
        }
        Ok(())
    }

    /// Renders handle `fh` for a read at `offset` if it needs it: a [`Lazy`] one at its
    /// first read, a [`Seq`] one where procfs would make the text anew. Rendered
    /// outside the table's lock; of two reads at once, the last text stored is the one
    /// both serve, as two readers of one seq file share its buffer.
    fn render_for_read(&self, ino: u64, fh: u64, offset: u64) -> Result<(), Errno> {
        let lazy = match lock(&self.handles).get(&fh) {
            Some(Handle::Lazy(l)) => l.clone(),
            Some(Handle::Seq(seq)) if seq.buf.renders_at(offset) => seq.lazy.clone(),
            _ => return Ok(()),
        };
        let made = self.render_lazy_bound(&lazy).and_then(|(text, bound)| {
            // Made later than the open: the number may have been given to another
            // process since, whose file was read (procfs's file is its own process's).
            if !bound {
                self.check_alive_by_handle(&lazy.node)?;
            }
            self.retired_meanwhile(ino)?;
            Ok(text)
        });
        let text = match made {
            // Gone: as procfs's read of a file opened before the reap.
            Err(Errno::ESRCH) => lazy.render.read_once_reaped()?,
            made => made?,
        };
        if let Some(h) = lock(&self.handles).get_mut(&fh) {
            if matches!(h, Handle::Lazy(_) | Handle::Seq(_)) {
                *h = Handle::Seq(Seq {
                    lazy,
                    buf: SeqBuf { text, end: offset },
                });
            }
        }
        Ok(())
    }

    /// Closes handle `fh` of inode `ino`.
    pub fn release(&self, ino: u64, fh: u64) {
        self.relay_released(ino, fh);
        if lock(&self.handles).remove(&fh).is_some() {
            let mut open = lock(&self.open_inodes);
            if let Some(n) = open.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ino);
                }
            }
        }
    }
}

/// The root of the reader `tid`, for a renderer that writes paths from it
/// ([`Render::Maps`]), when it is not the daemon's.
fn reader_root_for(tid: Pid, r: Render) -> Option<Vec<u8>> {
    match r {
        Render::Maps => super::links::reader_root(tid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::SeqBuf;

    #[test]
    fn a_seq_text_is_made_anew_where_procfs_makes_it_anew() {
        let mut b = SeqBuf {
            text: b"0123456789\n".to_vec(),
            end: 0,
        };
        // From the start: anew, also right after the last read ended at 0.
        assert!(b.renders_at(0));
        assert_eq!(b.read(0, 4), b"0123");
        // Where the last read ended: the same text goes on.
        assert!(!b.renders_at(4));
        assert_eq!(b.read(4, 100), b"456789\n");
        // At its end: still the same text, which has nothing more.
        assert!(!b.renders_at(11));
        assert_eq!(b.read(11, 100), b"");
        // Anywhere else (a seek back or forward): anew, as seq_file's traverse.
        assert!(b.renders_at(2) && b.renders_at(20));
        assert_eq!(b.read(20, 5), b"");
        assert!(!b.renders_at(20), "a read past the end ends there");
    }
}
