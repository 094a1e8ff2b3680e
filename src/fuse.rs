//! Thin glue between `fuser` and the [`View`]: every request names its reader, asks the
//! view, and replies. No decisions are made here.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, IoctlFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::backing::Backings;
use crate::poll::Watcher;
use crate::spin::Spin;
use crate::stats::{Op, Stats};
use crate::view::writes::Change;
use crate::view::{Attr, DirCaching, Kind, Requester, View};

/// The filesystem served to the kernel.
pub struct ProcFs {
    view: Arc<View>,
    stats: Arc<Stats>,
    spin: Arc<Spin>,
    backings: Arc<Backings>,
    polls: Watcher,
    /// Whether to ask the kernel for passthrough at INIT.
    passthrough: bool,
    /// Whether the connection was taken over from a previous worker: the INIT this
    /// worker answers is a stand-in ([`crate::handover::adopt`]), not the kernel's.
    taken_over: bool,
}

impl ProcFs {
    /// Serves `view`, counting requests into `stats` and telling `spin` of each.
    pub fn new(view: Arc<View>, stats: Arc<Stats>, spin: Arc<Spin>) -> Self {
        ProcFs {
            view,
            backings: Backings::new(Arc::clone(&stats)),
            stats,
            spin,
            polls: Watcher::default(),
            passthrough: true,
            taken_over: false,
        }
    }

    /// Never asks for FUSE passthrough: every read goes through the daemon
    /// (`--no-passthrough`, and the tests of that path).
    pub fn without_passthrough(mut self) -> Self {
        self.passthrough = false;
        self.backings.set_enabled(false);
        self
    }

    /// Hands the backing files in use over to the next worker through `path`, and, on
    /// a connection taken over from a previous worker (`takeover`), takes over those it
    /// handed over, or its ledger recorded ([`Backings::hand_over_at`]), and tries
    /// passthrough, which the kernel agreed to at an INIT this worker did not see, or
    /// refuses at the first open (not after a killed worker whose ledger is lost).
    pub fn hand_over_backings(mut self, path: std::path::PathBuf, takeover: bool) -> Self {
        let may = self.backings.hand_over_at(path, takeover);
        self.taken_over = takeover;
        if takeover && self.passthrough && may {
            self.backings.set_enabled(true);
        }
        self
    }

    /// `setxattr` (`value` with its flags) and `removexattr` (`None`).
    fn change_xattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: Option<(&[u8], i32)>,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Xattr);
        let reader = self.view.reader(req.pid());
        match self.view.setxattr(reader, req.uid(), ino.0, name, value) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    /// What every request does first.
    fn begin(&self, req: &Request, op: Op) {
        self.spin.request(req.pid());
        self.stats.count(op);
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    let mtime = UNIX_EPOCH
        + Duration::new(
            u64::try_from(a.mtime.0).unwrap_or(0),
            u32::try_from(a.mtime.1).unwrap_or(0),
        );
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: 0,
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Link => FileType::Symlink,
        // The kernel makes it a special inode: an open is ENXIO, as procfs's is.
        Kind::Socket => FileType::Socket,
        Kind::Other => FileType::RegularFile,
    }
}

fn requester(req: &Request) -> Requester {
    Requester {
        tid: req.pid(),
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// Runs `answer`, a request that waits (a read or write of a pipe, `/proc/kmsg`), on a
/// thread of its own, so that it does not hold up the FUSE thread that serves everyone.
fn wait_elsewhere(answer: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new()
        .name("vprocfs-wait".into())
        .spawn(answer)
    {
        log::warn!("cannot start a thread for a request that waits ({e})");
    }
}

fn err(e: crate::view::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

impl Filesystem for ProcFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // The stand-in INIT of a takeover says nothing of what the kernel agreed to.
        if self.taken_over {
            return Ok(());
        }
        // Passthrough needs the kernel's capability (6.9+) and a stacking depth of 1:
        // the backing files are memfds, not files of a stacked filesystem.
        let on = self.passthrough
            && config
                .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
                .is_ok()
            && config.set_max_stack_depth(1).is_ok();
        if self.passthrough && !on {
            log::info!("the kernel offers no FUSE passthrough: reads go through the daemon");
        }
        self.backings.set_enabled(on);
        // The kernel may keep listings only if it asks for a directory's attributes
        // before it serves one again (src/view/listing.rs).
        let checked = config
            .add_capabilities(fuser::InitFlags::FUSE_AUTO_INVAL_DATA)
            .is_ok();
        self.view.set_listings_checked(checked);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.begin(req, Op::Lookup);
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let reader = self.view.reader(req.pid());
        log::trace!("lookup {name:?} in {} for {reader:?}", parent.0);
        match self
            .view
            .lookup(reader, (req.uid(), req.gid()), parent.0, name)
        {
            Ok(a) => {
                reply.entry_with_ttls(&a.attr_ttl, &a.entry_ttl, &file_attr(&a), Generation(0))
            }
            Err(crate::view::Errno::ENOENT) => match self.view.negative_ttl(parent.0, name) {
                // Node id 0 with a lifetime: the kernel caches "no such entry".
                Some(ttl) => {
                    let none = Attr {
                        ino: 0,
                        kind: Kind::File,
                        perm: 0,
                        nlink: 0,
                        uid: 0,
                        gid: 0,
                        size: 0,
                        mtime: (0, 0),
                        blksize: 1024,
                        entry_ttl: ttl,
                        attr_ttl: Duration::ZERO,
                    };
                    reply.entry_with_ttls(&Duration::ZERO, &ttl, &file_attr(&none), Generation(0))
                }
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(err(e)),
        }
    }

    fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64) {
        self.begin(req, Op::Forget);
        if self.view.forget(ino.0, nlookup) {
            self.backings.forget(ino.0);
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.begin(req, Op::Getattr);
        let reader = self.view.reader(req.pid());
        // Naming an open file, FUSE asks its size for an `lseek(SEEK_END)`, which
        // procfs's seq files refuse (src/view/seek.rs).
        let answer = match fh {
            Some(_) => self.view.takes_seek_to_end(ino.0),
            None => Ok(()),
        }
        .and_then(|()| self.view.getattr(reader, ino.0));
        log::trace!(
            "getattr {}: {:?}",
            ino.0,
            answer.as_ref().map(|a| a.attr_ttl)
        );
        match answer {
            Ok(a) => reply.attr(&a.attr_ttl, &file_attr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.begin(req, Op::Readlink);
        let reader = self.view.reader(req.pid());
        match self.view.readlink(reader, ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.begin(req, Op::Open);
        let reader = self.view.reader(req.pid());
        let snapshots = self.backings.enabled();
        match self
            .view
            .open(reader, ino.0, (req.uid(), req.gid()), flags.0, snapshots)
        {
            Ok(o) => match o.snapshot {
                Some(text) => self.backings.reply(ino.0, o.fh, &text, reply),
                // procfs files report size 0: only direct I/O reads them whole.
                None => {
                    let mut flags = FopenFlags::FOPEN_DIRECT_IO;
                    if o.stream {
                        flags |= FopenFlags::FOPEN_NONSEEKABLE;
                    }
                    self.backings.reply_direct(ino.0, o.fh, flags, reply)
                }
            },
            Err(e) => {
                log::trace!("open {} for {reader:?}: errno {e}", ino.0);
                reply.error(err(e))
            }
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.begin(req, Op::Read);
        let who = requester(req);
        match self.view.read(who, ino.0, fh.0, offset, size, false) {
            Ok(d) => reply.data(&d),
            // A passed-through file with nothing to read yet (`/proc/kmsg`): a reader that
            // opened it non-blocking gets EAGAIN, as from procfs; the read of any other
            // waits on a thread of its own, not on the one FUSE thread that serves all.
            Err(crate::view::Errno::EAGAIN) if flags.0 & libc::O_NONBLOCK == 0 => {
                let view = Arc::clone(&self.view);
                wait_elsewhere(
                    move || match view.read(who, ino.0, fh.0, offset, size, true) {
                        Ok(d) => reply.data(&d),
                        Err(e) => reply.error(err(e)),
                    },
                );
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        self.begin(req, Op::Write);
        let tid = req.pid();
        match self.view.write(tid, fh.0, offset, data, false) {
            Ok(n) => reply.written(n),
            // A full pipe: the write waits on a thread of its own (see `read`).
            Err(crate::view::Errno::EAGAIN) if flags.0 & libc::O_NONBLOCK == 0 => {
                let view = Arc::clone(&self.view);
                let data = data.to_vec();
                wait_elsewhere(move || match view.write(tid, fh.0, offset, &data, true) {
                    Ok(n) => reply.written(n),
                    Err(e) => reply.error(err(e)),
                });
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.begin(req, Op::Setattr);
        let time = |t: fuser::TimeOrNow| match t {
            fuser::TimeOrNow::SpecificTime(t) => Some(t),
            fuser::TimeOrNow::Now => None,
        };
        let change = Change {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
        };
        let reader = self.view.reader(req.pid());
        match self.view.setattr(reader, ino.0, req.uid(), &change) {
            Ok(a) => reply.attr(&a.attr_ttl, &file_attr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.change_xattr(req, ino, name, Some((value, flags)), reply);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.change_xattr(req, ino, name, None, reply);
    }

    // procfs makes no names: what would make one fails with ENOENT (the lookup of the
    // new name fails first), and removing one with EPERM, as on the kernel's /proc.

    fn mknod(
        &self,
        req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn mkdir(
        &self,
        req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn create(
        &self,
        req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn symlink(
        &self,
        req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn link(
        &self,
        req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn rename(
        &self,
        req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::ENOENT);
    }

    fn unlink(&self, req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::EPERM);
    }

    fn rmdir(&self, req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.begin(req, Op::Namespace);
        reply.error(Errno::EPERM);
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Release);
        self.backings.release(fh.0);
        self.polls.forget(fh.0);
        self.view.release(ino.0, fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Flush);
        // Every open says FOPEN_NOFLUSH (src/backing/), so none should come; should
        // one, ENOSYS tells the kernel never to send flush again.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Fsync);
        // procfs has no fsync: vfs_fsync_range answers EINVAL, for a file or a
        // directory alike. (ENOSYS would make the kernel answer 0 from now on.)
        reply.error(Errno::EINVAL);
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fsync(req, ino, fh, datasync, reply);
    }

    fn getxattr(&self, req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        self.begin(req, Op::Xattr);
        // procfs has no extended attributes; ENOSYS makes the kernel answer
        // EOPNOTSUPP itself from now on.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.begin(req, Op::Xattr);
        // procfs lists no attributes (an empty list, not EOPNOTSUPP as ENOSYS would make
        // the kernel answer): `cp -a`, `rsync -X` and `tar --xattrs` take the difference
        // for an error. A call with size 0 asks for the list's length.
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.begin(req, Op::Statfs);
        // procfs's (simple_statfs): no blocks, no files, a page as the block size and
        // NAME_MAX. The magic number is FUSE's, whatever the daemon says (docs/limits.md).
        const PAGE_SIZE: u32 = 4096;
        reply.statfs(0, 0, 0, 0, 0, PAGE_SIZE, 255, PAGE_SIZE);
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        self.begin(req, Op::Ioctl);
        match self.view.ioctl(ino.0, fh.0, cmd) {
            Ok(result) => reply.ioctl(result, &[]),
            Err(e) => reply.error(err(e)),
        }
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        self.begin(req, Op::Lseek);
        match self.view.lseek(ino.0, offset, whence) {
            Ok(at) => reply.offset(at),
            Err(e) => reply.error(err(e)),
        }
    }

    fn poll(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: fuser::PollNotifier,
        events: fuser::PollEvents,
        flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        self.begin(req, Op::Poll);
        match self.view.pollable(fh.0) {
            Ok(None) => reply.poll(crate::poll::events(crate::poll::DEFAULT_MASK)),
            Ok(Some(file)) => {
                let now = self.polls.ready(fh.0, &file, events.bits());
                if now == 0 && flags.contains(fuser::PollFlags::FUSE_POLL_SCHEDULE_NOTIFY) {
                    self.polls.watch(fh.0, file, events.bits(), ph);
                }
                reply.poll(crate::poll::events(now));
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.begin(req, Op::Access);
        let reader = self.view.reader(req.pid());
        match self
            .view
            .access(reader, (req.uid(), req.gid()), ino.0, mask.bits() as u32)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.begin(req, Op::Opendir);
        let reader = self.view.reader(req.pid());
        match self.view.opendir(reader, (req.uid(), req.gid()), ino.0) {
            Ok((fh, caching)) => {
                let flags = match caching {
                    DirCaching::None => FopenFlags::empty(),
                    DirCaching::Fill => FopenFlags::FOPEN_CACHE_DIR,
                    DirCaching::Keep => FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
                };
                reply.opened(FileHandle(fh), flags)
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.begin(req, Op::Readdir);
        match self.view.readdir(requester(req), ino.0, fh.0, offset) {
            Ok(entries) => {
                for (next, e) in &entries {
                    if reply.add(INodeNo(e.ino), *next, kind(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.begin(req, Op::Releasedir);
        self.view.release(ino.0, fh.0);
        reply.ok();
    }
}
