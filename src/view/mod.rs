//! The view: what a reader sees under the mount, decided per request from who the reader
//! is. It joins membership (which VPS the reader is in, which tasks that VPS has), the
//! engine (their vpids) and the renderers (rewritten files) into answers for the FUSE
//! layer, which stays thin glue ([`crate::fuse`]).
//!
//! A request goes: reader's tid (from the FUSE request) → [`Reader`] (its VPS, or the
//! host view) → the node asked about ([`nodes`]) → for a vpid, the engine's real number
//! → the real `/proc` file → for files that carry pids, a renderer ([`files`]) with the
//! reader's translation.

mod access;
mod alive;
pub mod cache;
mod entries;
mod feed;
pub mod files;
mod handles;
mod invalidate;
mod kept;
pub mod links;
mod listing;
mod lookup;
mod userns;
pub use listing::DirCaching;
pub mod nodes;
pub mod resource_files;
mod seek;
mod shared;
mod sysctl_int;
mod timens;
pub mod writes;

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::engine::{Pid, Vps, VpsId};
use crate::host;
use crate::membership::Tracker;
use crate::render::{Identity, PidMap};
use access::{check_of, may_ptrace_as, Guard};
pub use cache::Flush;
use cache::{Caching, Held, Step};
use entries::Check;
use files::{Context, Render};
pub use handles::Opened;
use handles::{Handle, Lazy};
use nodes::{Node, Nodes};
use shared::Shared;

/// Errors are the errno values the reader gets, typed (never a bare `i32`, the type of
/// a pid).
pub use nix::errno::Errno;

/// The task behind a request and its file-system ids, as FUSE gives them; made into a
/// [`Reader`] only when needed (a handle a previous daemon opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The task (in the mounter's pid namespace).
    pub tid: u32,
    /// Its file-system uid.
    pub uid: u32,
    /// Its file-system gid.
    pub gid: u32,
}

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// A task in no VPS: it sees the real `/proc` (the seed's `!inside_vps()`).
    Host {
        /// Its real thread id (0 if it has none in the daemon's namespace).
        tid: Pid,
    },
    /// A member of VPS `id`.
    Vps {
        /// The VPS.
        id: VpsId,
        /// Its real thread id.
        tid: Pid,
    },
}

impl Reader {
    /// The reader's real thread id.
    pub fn tid(&self) -> Pid {
        match *self {
            Reader::Host { tid } | Reader::Vps { tid, .. } => tid,
        }
    }
}

/// What kind of directory entry a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Link,
    /// A socket: what a process's `fd/` link to one leads to (`stat -L`, `lsof -i`).
    Socket,
    /// Anything else (fifos do not occur in procfs; kept for completeness).
    Other,
}

impl Kind {
    fn of(md: &Metadata) -> Kind {
        let ft = md.file_type();
        if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Link
        } else if ft.is_file() {
            Kind::File
        } else if std::os::unix::fs::FileTypeExt::is_socket(&ft) {
            Kind::Socket
        } else {
            Kind::Other
        }
    }
}

/// A node's attributes, mirrored from the real file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number in the view.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Permission bits.
    pub perm: u16,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (0 for most procfs files).
    pub size: u64,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub mtime: (i64, i64),
    /// The preferred I/O size: procfs's 1 KiB, a page for what lies behind a magic
    /// link (a namespace, a pipe, a socket).
    pub blksize: u32,
    /// How long the kernel may keep the name → inode answer ([`Caching`]).
    pub entry_ttl: Duration,
    /// How long the kernel may keep these attributes.
    pub attr_ttl: Duration,
}

impl Attr {
    fn from_md(ino: u64, md: &Metadata) -> Attr {
        Attr {
            ino,
            kind: Kind::of(md),
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink().try_into().unwrap_or(u32::MAX),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            blksize: u32::try_from(md.blksize()).unwrap_or(1024),
            entry_ttl: Caching::NONE,
            attr_ttl: Caching::NONE,
        }
    }
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirEntry {
    /// `d_ino`.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: OsString,
}

/// How a VPS reader's numbers are translated for renderers: real → vpid, 0 when the
/// number is not the VPS's (the engine's isolating answer for strays).
struct VpsMap<'a> {
    vps: &'a Vps,
    levels: usize,
    /// Translations made, for statistics.
    lookups: std::cell::Cell<u64>,
}

impl PidMap for VpsMap<'_> {
    fn pid(&self, real: i32) -> i32 {
        if real <= 0 {
            return real;
        }
        self.lookups.set(self.lookups.get() + 1);
        self.vps.vpid_of(real).unwrap_or(0)
    }
    fn pgid(&self, real: i32) -> i32 {
        self.pid(real)
    }
    fn sid(&self, real: i32) -> i32 {
        self.pid(real)
    }
    fn kept(&self, real: i32) -> Option<i32> {
        self.vps.kept_vpid(real)
    }
    fn ns_levels_above(&self) -> usize {
        self.levels
    }
}

/// One mount's view: its inodes and open handles, what it lets the kernel cache, and
/// who it takes a reader for; over membership and resources that every mount of the
/// daemon shares ([`shared`]).
pub struct View {
    shared: Arc<Shared>,
    nodes: Mutex<Nodes>,
    handles: Mutex<FxHashMap<u64, Handle>>,
    next_fh: Mutex<u64>,
    /// A mount of one VPS only (`vprocfs run`, and each VPS's own mount in `serve`):
    /// every reader sees that VPS, as every reader of a procfs instance sees its pid
    /// namespace, so the kernel may cache what the mount shows ([`cache`]).
    single: Option<VpsId>,
    /// Where the names of released members go, for the kernel to drop
    /// ([`View::connect`]).
    flush: std::sync::OnceLock<Flush>,
    /// Tells the kernel to drop cached attributes ([`View::connect`]).
    notifier: std::sync::OnceLock<fuser::Notifier>,
    /// The owner a pid directory's entries last had, by the directory's inode
    /// ([`View::refresh_owners`]).
    owners: Mutex<FxHashMap<u64, (u32, u32)>>,
    /// Process directories the kernel may hold under long-lived names ([`cache`]).
    held: Held,
    /// How many handles are open on each inode: a request about a gone process's
    /// inode that a reader holds open is answered as procfs answers a held descriptor.
    open_inodes: Mutex<FxHashMap<u64, u32>>,
    /// The listings the kernel may keep of directories ([`listing::DirCaching`]).
    listed: listing::Listed,
    /// Whether the kernel checks a kept listing with the daemon before serving it
    /// ([`View::set_listings_checked`]).
    listings_checked: std::sync::atomic::AtomicBool,
    /// The daemon's open files of objects behind links (pipes…) that it relays, by
    /// inode, with their handles ([`links`]).
    relays: Mutex<links::Relays>,
}

/// What a view is made with besides membership: what it is wired to that exists before
/// its FUSE session does ([`View::connect`] takes what comes with the session).
#[derive(Default)]
pub struct Inputs {
    /// The kernel's process events (`daemon::open_events`), where the connector could be
    /// opened: membership follows them ([`feed`]); without them, listing `/proc` rescans.
    pub events: Option<crate::events::EventStream>,
    /// The resource views of VPSes whose cgroups the caller made (`vprocfs run`); others
    /// are made from their init's cgroup when first read ([`resource_files`]).
    pub resources: Vec<(VpsId, resource_files::VpsRes)>,
}

/// The error of a failed system call or file operation, as the reader gets it.
fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

// A panic in another request must not take the whole view down with it.
use crate::sync::lock;

impl View {
    /// The shared mount of `tracker`'s VPSes, each reader seeing its own VPS (`vprocfs
    /// serve`); [`View::mount_of`] adds a mount of one of them.
    pub fn new(tracker: Tracker, inputs: Inputs) -> Arc<View> {
        Self::mount(Arc::new(Shared::new(tracker, inputs)), None)
    }

    /// A mount of VPS `id` alone, whoever reads it (`vprocfs run`).
    pub fn single(tracker: Tracker, id: VpsId, inputs: Inputs) -> Arc<View> {
        Self::mount(Arc::new(Shared::new(tracker, inputs)), Some(id))
    }

    /// Another mount of the same daemon, of VPS `id` alone: it shares membership,
    /// events and resources with `self`, and has inodes, handles and kernel caches of
    /// its own.
    pub fn mount_of(&self, id: VpsId) -> Arc<View> {
        Self::mount(Arc::clone(&self.shared), Some(id))
    }

    fn mount(shared: Arc<Shared>, single: Option<VpsId>) -> Arc<View> {
        let view = Arc::new(View {
            shared,
            nodes: Mutex::new(Nodes::default()),
            handles: Mutex::new(FxHashMap::default()),
            next_fh: Mutex::new(1),
            single,
            flush: std::sync::OnceLock::new(),
            notifier: std::sync::OnceLock::new(),
            owners: Mutex::new(FxHashMap::default()),
            held: Held::default(),
            open_inodes: Mutex::new(FxHashMap::default()),
            listed: listing::Listed::default(),
            listings_checked: std::sync::atomic::AtomicBool::new(false),
            relays: Mutex::new(FxHashMap::default()),
        });
        view.shared.register(&view);
        view
    }

    /// Who task `tid` (from a FUSE request) is.
    pub fn reader(&self, tid: u32) -> Reader {
        let tid = Pid::try_from(tid).unwrap_or(0);
        if let Some(id) = self.single {
            return Reader::Vps { id, tid };
        }
        if tid <= 0 {
            return Reader::Host { tid: 0 };
        }
        // The kernel queued the events of this reader's fork, and the exit of whatever task
        // held its pid before, before the reader could ask anything. Applying them first
        // means a reused pid is never judged by its previous owner (a host process whose
        // exit the events thread has not applied yet, on a loaded host).
        self.catch_up();
        match lock(&self.shared.tracker).vps_of(tid) {
            Some(id) => Reader::Vps { id, tid },
            None => Reader::Host { tid },
        }
    }

    /// The node behind `ino`. An inode the table does not know (only after a daemon took
    /// over a mount and its journal missed it) is `ESTALE`: the kernel then walks the
    /// path again, revalidating every entry, and gets inodes this daemon knows.
    ///
    /// A process's node is looked at after the kernel's queued events are applied: its
    /// number may have been taken again within its start time's clock tick (which no
    /// check of the start time can see), and then the node is retired
    /// ([`Nodes::retire`]): `ESRCH`.
    fn node(&self, ino: u64) -> Result<Node, Errno> {
        self.node_or_retired(ino)
            .and_then(|(node, retired)| match retired {
                true => Err(Errno::ESRCH),
                false => Ok(node),
            })
    }

    /// [`View::node`] for a request that came through a name (`open`, `opendir`,
    /// `readlink`, `access`, the parent of a `lookup`…): a retired node, whose name
    /// the kernel may still have held when the reader walked it (its invalidation is
    /// on its way), is `ESTALE` once, as in [`View::check_alive`], so that the kernel
    /// walks again and gets procfs's answer for a fresh walk (`ENOENT` at
    /// `/proc/<n>`); then, or for an inode a reader holds open, `ESRCH`.
    ///
    /// `step` says what the request is on the reader's path walk ([`cache::Held::step`]).
    fn node_named(&self, reader: Reader, ino: u64, step: Step) -> Result<Node, Errno> {
        let (node, retired) = self.node_or_retired(ino)?;
        // A `readlink` of `self` or `thread-self` is most often a step of a walk through
        // it (`/proc/self/stat`), not the call.
        let step = match node {
            Node::SelfLink | Node::ThreadSelf => Step::Lookup,
            _ => step,
        };
        self.held.step(reader.tid(), step);
        match retired {
            true if self.stale_once(reader, &node, ino) => Err(Errno::ESTALE),
            true => Err(Errno::ESRCH),
            false => Ok(node),
        }
    }

    /// Whether a request about retired `node` (inode `ino`) may have come through a name
    /// the kernel held, and is the first such since ([`cache::Held::take_stale`]): not
    /// for an inode a reader holds open, which is answered as a descriptor.
    fn stale_once(&self, reader: Reader, node: &Node, ino: u64) -> bool {
        let held_open = lock(&self.open_inodes).contains_key(&ino);
        !held_open && self.take_stale(node, reader.tid())
    }

    /// [`cache::Held::take_stale`] of the process directory of `node`, for task `tid`.
    fn take_stale(&self, node: &Node, tid: Pid) -> bool {
        node.dir_key()
            .is_some_and(|k| self.held.take_stale(&k, tid))
    }

    /// `ESRCH` if inode `ino` was retired while a request about it was served: the
    /// events applied meanwhile (by the request's own checks, or the events thread)
    /// showed its number taken again within the clock tick of its start, so what was
    /// read may be the newcomer's.
    fn retired_meanwhile(&self, ino: u64) -> Result<(), Errno> {
        match lock(&self.nodes).is_retired(ino) {
            true => Err(Errno::ESRCH),
            false => Ok(()),
        }
    }

    /// The node behind `ino`, and whether it is retired.
    ///
    /// Not caught up for a process the view keeps a pidfd of: the pidfd tells its own
    /// process's end whatever the events say, and every request that depends on it
    /// asks ([`View::check_alive`]); this spares a `ps` a system call a request.
    fn node_or_retired(&self, ino: u64) -> Result<(Node, bool), Errno> {
        let node = lock(&self.nodes).get(ino).cloned().ok_or(Errno::ESTALE)?;
        if let Node::Pid { n, start, .. } = node {
            if !lock(&self.shared.pidfds).contains_key(&(n, start)) {
                self.catch_up();
            }
        }
        let retired = lock(&self.nodes).is_retired(ino);
        Ok((node, retired))
    }

    /// Keeps the inode table in a journal at `path` (see [`Nodes::with_journal`]); with
    /// `restore`, starts from the journal a previous daemon of this mount left, and hands
    /// out file handles from `handle_base` on, clear of the previous daemon's.
    ///
    /// The kernel may hold names of the restored process directories for long, and of
    /// processes that exited while no daemon followed the events (whose names nobody
    /// invalidated, and whose vpids may be handed out again): each is taken as held
    /// ([`cache`]), so that a request through such a stale name gets `ESTALE` once and
    /// the kernel walks again, rather than the dead process's answer.
    pub fn keep_journal(&self, path: &Path, restore: bool, handle_base: u64) -> io::Result<()> {
        let nodes = Nodes::with_journal(path, restore)?;
        for dir in nodes.pid_dirs() {
            if let Some(key) = dir.dir_key() {
                self.held.insert(key);
            }
        }
        *lock(&self.nodes) = nodes;
        *lock(&self.next_fh) = handle_base.max(1);
        Ok(())
    }

    /// The kernel forgot `n` lookups of `ino`: true when they were the last, and the
    /// view dropped the inode.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        let gone = {
            let mut nodes = lock(&self.nodes);
            let node = nodes.get(ino).cloned();
            nodes.forget(ino, n);
            node.filter(|_| nodes.get(ino).is_none())
        };
        if let Some(node) = gone {
            lock(&self.owners).remove(&ino);
            self.listed.forget(ino);
            if let (Some(key), true) = (node.dir_key(), node.rel().is_empty()) {
                self.held.remove(&key);
            }
            return true;
        }
        false
    }

    /// Changes the attributes of inode `ino` for `reader` (file-system uid `fsuid`) as
    /// procfs would ([`writes::Change`]), and answers its attributes after.
    pub fn setattr(
        &self,
        reader: Reader,
        ino: u64,
        fsuid: u32,
        change: &writes::Change,
    ) -> Result<Attr, Errno> {
        let node = self.node_named(reader, ino, Step::Call)?;
        self.check_alive(reader, &node)?;
        self.change(reader, &node, fsuid, change)?;
        self.attributes(reader, ino)
    }

    /// Sets (`value` with its `XATTR_*` flags) or removes (`None`) extended attribute
    /// `name` of inode `ino` for `reader`, as procfs answers.
    pub fn setxattr(
        &self,
        reader: Reader,
        fsuid: u32,
        ino: u64,
        name: &std::ffi::OsStr,
        value: Option<(&[u8], i32)>,
    ) -> Result<(), Errno> {
        let node = self.node_named(reader, ino, Step::Call)?;
        self.check_alive(reader, &node)?;
        self.change_xattr(reader, fsuid, &node, name, value)
    }

    /// Attributes of inode `ino`.
    ///
    /// FUSE does not say whether a `stat` names a path or a descriptor. An inode a
    /// reader holds open is answered as a descriptor (`fstat` of a gone process's file
    /// works on procfs); any other through its path, which a cached name may have
    /// resolved just before the name was invalidated ([`cache`]).
    pub fn getattr(&self, reader: Reader, ino: u64) -> Result<Attr, Errno> {
        self.held.step(reader.tid(), Step::Call);
        self.attributes(reader, ino)
    }

    /// [`View::getattr`] within a request that made its step already (a `setattr`
    /// answers with the attributes after the change).
    fn attributes(&self, reader: Reader, ino: u64) -> Result<Attr, Errno> {
        let (node, retired) = self.node_or_retired(ino)?;
        let gone = |e: Errno| {
            let mut attr = self.gone_attr(&node, ino).ok_or(e)?;
            self.date_listing(&node, true, &mut attr);
            Ok(attr)
        };
        if retired {
            // Reaped (or its number taken again): as in `node_named`.
            if self.stale_once(reader, &node, ino) {
                return Err(Errno::ESTALE);
            }
            return gone(Errno::ESRCH);
        }
        let held_open = lock(&self.open_inodes).contains_key(&ino);
        let alive = match self.check_alive_as(&node, (!held_open).then_some(reader.tid())) {
            Err(Errno::ESTALE) if held_open => Err(Errno::ESRCH),
            r => r,
        };
        match alive {
            Ok(()) => {
                if matches!(&node, Node::Pid { rel, .. } if rel.is_empty()) {
                    self.refresh_owners(ino, &node);
                }
                let mut attr = self.attr_of(reader, &node, ino)?;
                self.date_listing(&node, false, &mut attr);
                Ok(attr)
            }
            Err(Errno::ESTALE) => Err(Errno::ESTALE),
            Err(e) => gone(e),
        }
    }

    /// Attributes of `node` once its process is gone, as procfs keeps them for an inode a
    /// reader still holds (`fstat` on an open file or directory of a dead process
    /// works): the mode of the entry, the same for every process (so taken from the
    /// daemon's own), owned by root (`pid_getattr` without a task). `None` for an entry
    /// the daemon does not have (`fd/<n>`…).
    fn gone_attr(&self, node: &Node, ino: u64) -> Option<Attr> {
        let Node::Pid { tid, rel, .. } = node else {
            return None;
        };
        let own = if tid.is_some() { "thread-self" } else { "self" };
        let path = match &**rel {
            "" => host::proc_path(own),
            rel => host::proc_path(&format!("{own}/{rel}")),
        };
        // The directory through the `self` link; an entry as it is (a link stays one).
        let md = match &**rel {
            "" => fs::metadata(&path),
            _ => fs::symlink_metadata(&path),
        }
        .ok()?;
        Some(Attr {
            uid: 0,
            gid: 0,
            attr_ttl: Caching::STABLE,
            ..Attr::from_md(ino, &md)
        })
    }

    /// The real file behind `node`, whole. A process's `stat` is checked to be the
    /// node's process (its start time), which stands for [`View::check_alive`]: a pid
    /// reused since the node was made is `ESRCH`, as the old process's file would be.
    ///
    /// It is read after the request's own check (an open's, or by a handle), so a gone
    /// process is never `ESTALE` here.
    fn read_real(&self, node: &Node) -> Result<Vec<u8>, Errno> {
        self.read_real_bound(node).map(|(raw, _)| raw)
    }

    /// [`View::read_real`], and whether the read itself showed the node's process
    /// alive then (a zombie counts): read through a file kept open for it, which procfs
    /// binds to its process (a reaped one reads `ESRCH`, never another's), or a `stat`
    /// that shows its start time (read by path, and not of a process that took the
    /// number within the clock tick: [`View::same_in_tick`]). Such a text needs no
    /// [`View::check_alive`] after it, only a look at whether the events applied
    /// meanwhile retired the inode ([`View::retired_meanwhile`]).
    fn read_real_bound(&self, node: &Node) -> Result<(Vec<u8>, bool), Errno> {
        let gone = || self.check_alive_by_handle(node).err();
        let kept = match node {
            Node::Pid { n, tid, start, rel } => self.read_kept(*n, *start, *tid, rel),
            _ => None,
        };
        let (raw, mut bound) = match kept {
            Some(raw) => (raw, true),
            None => {
                let path = node.real_path();
                let read = match handles::one_read(node) {
                    true => host::read_single(&path),
                    false => host::read_proc_file(&path),
                };
                let raw = read.map_err(|e| match errno(&e) {
                    Errno::ENOENT => gone().unwrap_or(Errno::ENOENT),
                    e => e,
                })?;
                (raw, false)
            }
        };
        if let (Some(start), Node::Pid { n, .. }) = (node.start_in_content(), node) {
            match crate::render::stat::parse_stat(&raw) {
                Ok(st) if st.starttime == start => {
                    // Read by path, the number may have gone to another process within
                    // the clock tick, whose stat shows the same start time.
                    if !bound && !self.same_in_tick(*n, start, st.flags) {
                        return Err(Errno::ESRCH);
                    }
                    bound = true;
                }
                // Another process of the number: the answer for a gone one.
                _ => return Err(gone().unwrap_or(Errno::ESRCH)),
            }
        }
        Ok((raw, bound))
    }

    fn attr_of(&self, reader: Reader, node: &Node, ino: u64) -> Result<Attr, Errno> {
        if let Some(obj) = self.object(reader, node) {
            return self.object_attr(node, obj.path(), ino);
        }
        let md = fs::symlink_metadata(node.real_path()).map_err(|e| errno(&e))?;
        let mut attr = Attr::from_md(ino, &md);
        let (entry, attr_ttl) = self.ttls(node);
        attr.entry_ttl = entry;
        attr.attr_ttl = attr_ttl;
        if *node == Node::Root {
            let processes = match reader {
                // The reader's own forks count (read-your-own-forks), the reaped not.
                Reader::Vps { id, .. } => {
                    self.catch_up();
                    lock(&self.shared.tracker).processes_now(id).unwrap_or(0)
                }
                Reader::Host { .. } => host::list_tgids().map(|t| t.len()).unwrap_or(0),
            };
            attr.nlink = self
                .shared
                .root_nlink_base
                .saturating_add(processes.try_into().unwrap_or(u32::MAX));
        }
        Ok(attr)
    }

    /// How long the kernel may keep `node`'s name and its attributes ([`cache`]).
    fn ttls(&self, node: &Node) -> (Duration, Duration) {
        let single = self.caches_pids();
        let names = if single {
            Caching::FIXED
        } else {
            Caching::STABLE
        };
        match node {
            // The names are the same for every reader (procfs's `self` exists for a
            // reader outside the namespace too, and fails only when followed); their
            // targets are asked for at every walk (the kernel keeps no link text of
            // a FUSE mount without `FUSE_CACHE_SYMLINKS`), and their attributes are
            // the daemon's procfs's fixed ones.
            Node::SelfLink | Node::ThreadSelf => (names, Caching::STABLE),
            // Its link count counts the VPS's processes, which a fork changes at once
            // and a reaping with no event to tell: asked for every time (only a `stat`
            // of `/proc` itself asks: a walk through it, a listing, `ps` and `top` do
            // not, measured).
            Node::Root => (Caching::NONE, Caching::NONE),
            // `/proc/<n>`, `task/<tid>`: a mount of one VPS keeps the name of a live
            // process until its exit, never a zombie's; a shared mount asks every time
            // (the name depends on the reader). In a mount of one VPS the attributes
            // are asked for every time, a zombie's too: a `stat` of a zombie may come
            // through the name kept while it lived (its invalidation is on its way),
            // and attributes kept from it would answer a `stat` after the reap, through
            // that name, where procfs fails the walk. A shared mount, which asks for
            // the name at every walk, may keep them.
            Node::Pid { n, tid, rel, .. } if rel.is_empty() => {
                let task = tid.unwrap_or(*n);
                match single {
                    true if lock(&self.shared.tracker).has_exited(task) => {
                        (Caching::NONE, Caching::NONE)
                    }
                    true => (Caching::FIXED, Caching::NONE),
                    false => (Caching::NONE, Caching::STABLE),
                }
            }
            // Its link count is 2 + the number of threads, which change at any time.
            Node::Pid { rel, .. } if &**rel == "task" => (names, Caching::NONE),
            Node::Pid { rel, .. } => match rel.rsplit_once('/') {
                // The insides of `fd/`, `fdinfo/`, `map_files/` come and go.
                Some((d, _)) if entries::entry(d).children == entries::Children::Changing => {
                    (Caching::NONE, Caching::STABLE)
                }
                // Reached through the process's name, which a mount of one VPS keeps
                // until the exit event is applied, a moment after the parent's `wait`
                // may return: attributes kept then would answer a `stat` of a reaped
                // process's entry from the kernel's cache, where procfs fails the walk
                // (`ENOENT`). Asked every time, the daemon sees the process gone. A
                // shared mount asks for the process's name at every walk instead.
                _ if single => (names, Caching::NONE),
                _ => (names, Caching::STABLE),
            },
            // The files and directories of `/proc` itself are procfs's fixed table
            // (`proc_root_init`): a mount of one VPS keeps their names. Deeper names
            // come and go (`sys/net/ipv4/conf/<interface>`, per network namespace).
            Node::Global { rel } if single && !rel.contains('/') => {
                (Caching::FIXED, Caching::STABLE)
            }
            Node::Global { .. } => (Caching::STABLE, Caching::STABLE),
        }
    }

    /// The target of link `ino`.
    pub fn readlink(&self, reader: Reader, ino: u64) -> Result<Vec<u8>, Errno> {
        let node = self.node_named(reader, ino, Step::Call)?;
        let own = |thread: bool| -> Result<Vec<u8>, Errno> {
            let (tgid, tid) = self.reader_numbers(reader)?;
            Ok(if thread {
                format!("{tgid}/task/{tid}")
            } else {
                tgid.to_string()
            }
            .into_bytes())
        };
        match node {
            Node::SelfLink => own(false),
            Node::ThreadSelf => own(true),
            _ => {
                self.check_alive(reader, &node)?;
                if check_of(&node) == Some(Check::Link)
                    && !may_ptrace_as(reader, None, &node, Guard::Read)
                {
                    return Err(Errno::EACCES);
                }
                let target = fs::read_link(node.real_path()).map_err(|e| errno(&e))?;
                let target = target.into_os_string().into_vec();
                if let Some(name) = self.relayed_link_text(&node, &target) {
                    return Ok(name);
                }
                Ok(links::from_reader_root(target, reader))
            }
        }
    }

    /// The reader's own (tgid, tid) in its view; `ENOENT` if it has none, as the kernel
    /// answers for a reader outside the namespace.
    fn reader_numbers(&self, reader: Reader) -> Result<(Pid, Pid), Errno> {
        match reader {
            Reader::Host { tid: 0 } => Err(Errno::ENOENT),
            Reader::Host { tid } => {
                let info = host::read_task(tid).map_err(|e| errno(&e))?;
                Ok((info.tgid, tid))
            }
            Reader::Vps { id, tid } => {
                let numbers = || {
                    let tracker = lock(&self.shared.tracker);
                    let vps = tracker.vps(id)?;
                    let tgid = vps.tgid_of(tid)?;
                    Some((vps.vpid_of(tgid)?, vps.vpid_of(tid)?))
                };
                // A reader forked a moment ago, or one whose tid a task that has since
                // exited held, may be in events not applied yet.
                self.catch_up();
                if let Some(n) = numbers() {
                    return Ok(n);
                }
                // Without the events (a daemon outside the initial pid namespace) a
                // reader forked since the last scan is not known: classified now by
                // its parent chain or namespace, as a scan would.
                let found =
                    !self.follows_events() && lock(&self.shared.tracker).vps_of(tid) == Some(id);
                found.then(numbers).flatten().ok_or(Errno::ENOENT)
            }
        }
    }

    /// `translations=N classify_hits=N classify_misses=N inodes=N`: what the view has
    /// done, for statistics.
    pub fn counters(&self) -> String {
        let t = self
            .shared
            .translations
            .load(std::sync::atomic::Ordering::Relaxed);
        let classify = lock(&self.shared.tracker).counters();
        format!("translations={t} {classify} inodes={}", self.inode_count())
    }

    /// Number of live inodes in every mount of the daemon, for statistics.
    pub fn inode_count(&self) -> usize {
        self.shared
            .mounts()
            .iter()
            .map(|m| lock(&m.nodes).len())
            .sum()
    }

    /// A real path for diagnostics.
    pub fn path_of(&self, ino: u64) -> Option<PathBuf> {
        lock(&self.nodes).get(ino).map(Node::real_path)
    }
}

/// `/proc`'s link count less one per process, measured as the kernel counts it
/// (`proc_root.nlink + nr_processes()`); retried until two reads around the listing
/// agree, so that a fork in between does not skew it.
fn root_nlink_base() -> u32 {
    for _ in 0..10 {
        let before = fs::metadata(host::PROC).map(|m| m.nlink()).unwrap_or(0);
        let count = host::list_tgids().map(|t| t.len() as u64).unwrap_or(0);
        let after = fs::metadata(host::PROC).map(|m| m.nlink()).unwrap_or(0);
        if before == after && before >= count {
            return u32::try_from(before - count).unwrap_or(0);
        }
    }
    0
}
