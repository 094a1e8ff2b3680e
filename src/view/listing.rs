//! Listings: `/proc` as the kernel lists it, `task/`, and any other directory of the
//! real `/proc`; taken when read from their start, or at opendir where the kernel may
//! keep them ([`DirCaching`]).

use super::Errno;
use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::fs;
use std::hash::BuildHasher;
use std::sync::Mutex;

use rustc_hash::FxHashMap;

use crate::engine::Pid;
use crate::host;

use super::nodes::{self, Node};
use super::{errno, lock, Attr, DirEntry, Handle, Kind, Reader, Requester, View};

/// What the kernel may do with a directory's listing, answered at opendir.
///
/// `ps -L`, `top -H` and htop list every process's `task/` at every refresh, two
/// readdir round trips each (the entries, then the end). The kernel can keep a
/// listing in its page cache (`FOPEN_CACHE_DIR`) and serve it again to a later open
/// that says it still holds (`FOPEN_KEEP_CACHE`). The daemon takes the listing at
/// opendir and says it still holds only when it is the very listing given with the last
/// open of that directory. A reader may also hold the directory open and list it again
/// from its start (`rewinddir`) after a thread started or ended, which no open tells
/// the daemon of: so the kernel asks for the directory's attributes before it serves a
/// kept listing from its start (`FUSE_AUTO_INVAL_DATA`), and drops the listing when
/// their modification time is not the one it kept it with; the daemon dates `task/`
/// by the threads it lists now ([`View::date_listing`]), and a process's or thread's
/// directory, whose entries never change, fails (or dates otherwise) once the task is
/// gone. So the kernel never serves a listing that differs from what the daemon would
/// list now; where nothing changed, the open and that look at the attributes are the
/// two round trips.
///
/// Only in a mount of one VPS (whose listings do not depend on the reader), and only
/// for a process's or thread's directory and its `task/`: `/proc` itself, `fd/` and the
/// like are listed when read, as procfs lists them (the reader's own descriptor of
/// `fd/` is in that listing, and the kernel serves a kept listing again on `rewinddir`
/// without asking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirCaching {
    /// Listed when read; the kernel keeps nothing.
    None,
    /// Listed at opendir; the kernel drops what it kept and keeps this listing.
    Fill,
    /// Listed at opendir, the same as the kernel's kept listing: it may serve that.
    Keep,
}

/// A fingerprint of the listing last given with an open of each directory that lets the
/// kernel keep it. A keyed hash (random keys per daemon), so that no process can make two
/// listings agree; a fingerprint rather than the listing, so that a kept listing costs
/// the daemon 16 bytes.
#[derive(Default)]
pub(super) struct Listed {
    keys: RandomState,
    by_ino: Mutex<FxHashMap<u64, u64>>,
}

impl Listed {
    /// Records `entries` as the listing of directory `ino` given with an open; whether it
    /// is the one given with the open before.
    fn same_as_before(&self, ino: u64, entries: &[DirEntry]) -> bool {
        let print = self.keys.hash_one(entries);
        lock(&self.by_ino).insert(ino, print) == Some(print)
    }

    /// The kernel forgot directory `ino`.
    pub(super) fn forget(&self, ino: u64) {
        lock(&self.by_ino).remove(&ino);
    }
}

/// A listing taken when a directory is read from its start.
#[derive(Default)]
pub(super) struct Listing {
    pub(super) entries: Vec<DirEntry>,
    /// `/proc` listed for a reader of a VPS whose members the process events keep: the
    /// VPS's count of changes to its processes before it was taken
    /// ([`crate::engine::Vps::groups_changed`]). While the count is the same, a later
    /// read goes on in this listing.
    pub(super) groups_changed: Option<u64>,
}

impl View {
    /// Opens directory `ino`, and says what the kernel may keep of its listing.
    ///
    /// Where the kernel may keep it ([`DirCaching`]) the listing is taken now, once for
    /// the handle; elsewhere when it is read from its start ([`View::readdir`]).
    pub fn opendir(
        &self,
        reader: Reader,
        ids: (u32, u32),
        ino: u64,
    ) -> Result<(u64, DirCaching), Errno> {
        let node = self.node_named(reader, ino, super::cache::Step::Call)?;
        self.check_alive(reader, &node)?;
        self.permission(reader, ids, &node, libc::R_OK as u32)?;
        let keeps = self.keeps_listings()
            && matches!(&node, Node::Pid { rel, .. } if rel.is_empty() || &**rel == "task");
        if !keeps {
            return Ok((
                self.new_handle(ino, Handle::Dir(Listing::default())),
                DirCaching::None,
            ));
        }
        let entries = self.list(reader, &node)?;
        let threads = matches!(&node, Node::Pid { rel, .. } if &**rel == "task");
        if threads && !fits_one_read(&entries) {
            // Read in several calls, each of which procfs lists anew
            // ([`View::readdir`]): a listing the kernel kept would be an old one. (A
            // process's own directory lists the same entries all its life.)
            return Ok((
                self.new_handle(ino, Handle::Dir(Listing::default())),
                DirCaching::None,
            ));
        }
        let caching = if self.listed.same_as_before(ino, &entries) {
            DirCaching::Keep
        } else {
            DirCaching::Fill
        };
        Ok((self.new_handle(ino, Handle::Listed(entries)), caching))
    }

    /// The inode number of `node`: its inode's if it has one, else the one it will be
    /// given ([`nodes::dirent_ino`]).
    fn ino_of(&self, node: &Node) -> u64 {
        if *node == Node::Root {
            return nodes::ROOT_INO;
        }
        lock(&self.nodes)
            .find(node)
            .unwrap_or_else(|| nodes::dirent_ino(node))
    }

    /// Whether the kernel may keep listings of process and thread directories and
    /// their `task/` ([`DirCaching`]): in a mount of one VPS, where the kernel asks for
    /// a directory's attributes before it serves a kept listing from its start
    /// (`FUSE_AUTO_INVAL_DATA`, [`View::set_listings_checked`]).
    pub(super) fn keeps_listings(&self) -> bool {
        self.caches_pids()
            && self
                .listings_checked
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records whether the kernel agreed, at FUSE INIT, to ask for a directory's
    /// attributes (its modification time) before it serves a listing it kept from its
    /// start (`FUSE_AUTO_INVAL_DATA`): at `opendir` and at each `rewinddir`. Only then
    /// may it keep listings: a reader holding `task/` open lists it again after a
    /// thread started or ended (procfs lists what is there at each read), and the
    /// events that would have the kernel drop the kept listing come a moment later.
    pub fn set_listings_checked(&self, on: bool) {
        self.listings_checked
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Gives `attr`, the attributes of directory `node` that the kernel asks for before
    /// it serves a listing it kept, a modification time that tells that listing apart
    /// from the one there is now (the kernel drops what it kept when the time differs
    /// from the one it kept it with): its nanoseconds are a fingerprint of the threads
    /// `task/` lists now, or of the process or thread a live directory is (whose entries
    /// never change), and never that fingerprint once the task is `gone` (procfs lists
    /// nothing then). Any other node is left as it is.
    pub(super) fn date_listing(&self, node: &Node, gone: bool, attr: &mut Attr) {
        let Node::Pid { n, tid, start, rel } = node else {
            return;
        };
        if !self.keeps_listings() || !(rel.is_empty() || &**rel == "task") {
            return;
        }
        let whose = self.listed.keys.hash_one((n, tid, start, rel));
        // `task/` lists the group's threads there are (each a member: one the events
        // have not brought yet is judged as it is listed), so its real thread ids
        // date it, without the listing's making.
        let print = match (gone, rel.is_empty()) {
            (true, _) => whose.wrapping_add(1),
            (false, true) => whose,
            (false, false) => match host::list_tids(*n) {
                Ok(tids) => self.listed.keys.hash_one((whose, tids)),
                Err(_) => whose.wrapping_add(1),
            },
        };
        attr.mtime.1 = i64::try_from(print % 1_000_000_000).unwrap_or(0);
    }

    /// Entries of directory `ino`, open as handle `fh`, from position `offset` on, for
    /// `req`, each with the position of the entry after it (where a later read goes
    /// on). A read from position 0 (the first, and every one after `rewinddir`) takes
    /// the listing anew, as procfs lists what is there when it is read: the reader's
    /// own descriptor of `fd/` is in it, and a process forked since the last listing
    /// too; later positions page through that listing, but in `/proc` itself, whose
    /// processes are placed by number ([`RootPositions`]): there a later read lists
    /// the processes there are now from that number on, as procfs does, so that one
    /// reaped meanwhile is not listed and one forked meanwhile is; `fd/` and `fdinfo/`
    /// likewise go on from a descriptor number in the real directory. A handle whose
    /// listing the kernel may keep pages through the listing taken at its open, the
    /// one the kernel keeps ([`DirCaching`]).
    pub fn readdir(
        &self,
        req: Requester,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<(u64, DirEntry)>, Errno> {
        if !lock(&self.handles).contains_key(&fh) {
            self.adopt_handle(req, ino, fh)?;
        }
        // procfs lists nothing of a process that is gone (`ENOENT`, which readdir(3)
        // takes for the end), whatever was listed before.
        let (node, retired) = self.node_or_retired(ino)?;
        if retired || matches!(node, Node::Pid { .. }) && self.check_alive_by_handle(&node).is_err()
        {
            return Err(Errno::ENOENT);
        }
        let reader = self.reader(req.tid);
        if offset == 0 {
            // Counted before the listing: a change while it is taken shows at the next
            // read, which then lists the processes again.
            let groups_changed = match node {
                Node::Root => self.groups_changed(reader),
                _ => None,
            };
            let entries = self.list(reader, &node)?;
            match lock(&self.handles).get_mut(&fh) {
                Some(Handle::Dir(held)) => {
                    *held = Listing {
                        entries,
                        groups_changed,
                    }
                }
                // The kernel reads a listing it may keep from its start when it keeps
                // none, or dropped the one it kept (a rewind after a change): what it
                // keeps from now on is this one, of now, not the one taken at open.
                Some(Handle::Listed(held)) => {
                    self.listed.same_as_before(ino, &entries);
                    *held = entries;
                }
                Some(_) => return Err(Errno::ENOTDIR),
                None => return Err(Errno::EBADF),
            }
        } else if offset > 0 && node == Node::Root {
            let seen = match lock(&self.handles).get(&fh) {
                Some(Handle::Dir(l)) => l.groups_changed,
                _ => None,
            };
            if let Some((now, count)) = self.processes_now(reader, seen) {
                if let Some(Handle::Dir(l)) = lock(&self.handles).get_mut(&fh) {
                    let fixed = RootPositions::of(&l.entries).fixed;
                    l.entries.truncate(fixed);
                    l.entries.extend(now);
                    l.groups_changed = count;
                }
            }
        }
        if offset >= 2 && matches!(&node, Node::Pid { rel, .. } if &**rel == "task") {
            // procfs lists `task/` anew at each call, going on from the thread it could
            // not return last, or by count where that thread is gone.
            let now = self.list(reader, &node)?;
            let mut handles = lock(&self.handles);
            let listing = match handles.get_mut(&fh) {
                Some(Handle::Dir(Listing { entries, .. }) | Handle::Listed(entries)) => entries,
                Some(_) => return Err(Errno::ENOTDIR),
                None => return Err(Errno::EBADF),
            };
            let from = usize::try_from(offset).unwrap_or(usize::MAX);
            let next = tasks_from(listing, &now, from);
            if listing.get(from..) != Some(&next[..]) {
                listing.truncate(from);
                listing.extend(next);
                // The kernel keeps what it was given: no longer the listing recorded at
                // the open, which a later open must not take for the kept one.
                self.listed.forget(ino);
            }
        }
        if offset > 0 && numbered(&node) {
            // procfs goes on from the descriptor where the last call ended, with the
            // descriptors of now: so does the real directory, read from there.
            let from = real_entries_from(&node, offset).map_err(|e| errno(&e))?;
            return Ok(from
                .into_iter()
                .map(|e| (number_position(&e).unwrap_or(offset) + 1, e))
                .collect());
        }
        let handles = lock(&self.handles);
        match handles.get(&fh) {
            Some(Handle::Dir(Listing { entries, .. }) | Handle::Listed(entries)) => {
                Ok(page(&node, entries, offset))
            }
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::EBADF),
        }
    }

    /// The VPS of `reader` when the process events keep its members; `None` for a
    /// reader outside every VPS, or where no events are followed.
    fn followed_vps(&self, reader: Reader) -> Option<crate::engine::VpsId> {
        match reader {
            Reader::Vps { id, .. } if self.follows_events() => Some(id),
            _ => None,
        }
    }

    /// The VPS's count of changes to its processes ([`crate::engine::Vps::groups_changed`])
    /// for a reader of a VPS whose members the process events keep; `None` elsewhere.
    fn groups_changed(&self, reader: Reader) -> Option<u64> {
        let id = self.followed_vps(reader)?;
        lock(&self.shared.tracker)
            .vps(id)
            .map(|v| v.groups_changed())
    }

    /// The process entries of `/proc` for `reader` now, for a read that goes on from a
    /// number. For a reader of a VPS whose members the process events keep, with the
    /// VPS's count of changes: the members now, without the look at the real `/proc`
    /// that a listing from its start makes ([`View::list_root`]), and `None` where they
    /// have not changed since count `seen`. For any other reader (outside every VPS, or
    /// where no events are followed), as a listing from the start takes them, with no
    /// count.
    fn processes_now(
        &self,
        reader: Reader,
        seen: Option<u64>,
    ) -> Option<(Vec<DirEntry>, Option<u64>)> {
        let Some(id) = self.followed_vps(reader) else {
            let real_tgids = host::list_tgids().ok()?;
            return Some((self.process_entries(reader, &real_tgids).ok()?, None));
        };
        self.catch_up();
        let mut tracker = lock(&self.shared.tracker);
        tracker.reap();
        let vps = tracker.vps(id)?;
        let count = vps.groups_changed();
        if seen == Some(count) {
            return None;
        }
        let mut vpids: Vec<(Pid, Pid)> = vps
            .tgids()
            .filter(|&p| vps.tgid_of(p) == Some(p))
            .filter_map(|p| vps.vpid_of(p).map(|v| (v, p)))
            .collect();
        drop(tracker);
        vpids.sort_unstable();
        let entries = vpids
            .into_iter()
            .map(|(v, real)| process_entry(v, real))
            .collect();
        Some((entries, Some(count)))
    }

    pub(super) fn list(&self, reader: Reader, node: &Node) -> Result<Vec<DirEntry>, Errno> {
        // `.` and `..` show the directory's and its parent's inode numbers, as procfs's
        // (`/proc`'s parent is itself: the root of its file system).
        let mut out = vec![
            DirEntry {
                ino: self.ino_of(node),
                kind: Kind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: node.parent().map_or(nodes::ROOT_INO, |p| self.ino_of(&p)),
                kind: Kind::Dir,
                name: "..".into(),
            },
        ];
        match node {
            Node::Root => self.list_root(reader, &mut out)?,
            Node::Pid {
                n,
                tid: None,
                rel,
                start,
            } if &**rel == "task" => self.list_tasks(reader, *n, *start, &mut out)?,
            _ => {
                // A failed read of the real directory is procfs's answer (`net/` of a
                // process without a network namespace left: `EINVAL`).
                for e in fs::read_dir(node.real_path()).map_err(|e| errno(&e))? {
                    let e = e.map_err(|e| errno(&e))?;
                    let kind = e
                        .file_type()
                        .map(|t| {
                            if t.is_dir() {
                                Kind::Dir
                            } else if t.is_symlink() {
                                Kind::Link
                            } else {
                                Kind::File
                            }
                        })
                        .unwrap_or(Kind::File);
                    out.push(real_entry(node, e.file_name(), kind));
                }
            }
        }
        Ok(out)
    }

    /// `/proc` as the kernel lists it: its own entries, `self`, `thread-self`, then one
    /// directory per thread-group leader in ascending number.
    fn list_root(&self, reader: Reader, out: &mut Vec<DirEntry>) -> Result<(), Errno> {
        let mut fixed: Vec<OsString> = Vec::new();
        let mut real_tgids: Vec<Pid> = Vec::new();
        for e in fs::read_dir(host::PROC).map_err(|e| errno(&e))? {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            match name.to_str().and_then(host::parse_pid) {
                Some(p) => real_tgids.push(p),
                None if name == "self" || name == "thread-self" => {}
                None => fixed.push(name),
            }
        }
        for name in fixed {
            let kind = match fs::symlink_metadata(host::proc_path(&name.to_string_lossy())) {
                Ok(md) => Kind::of(&md),
                Err(_) => continue,
            };
            let ino = nodes::dirent_ino(&Node::Global {
                rel: name.to_string_lossy().into(),
            });
            out.push(DirEntry { ino, kind, name });
        }
        for name in ["self", "thread-self"] {
            out.push(DirEntry {
                ino: nodes::dirent_ino(&Node::Global { rel: name.into() }),
                kind: Kind::Link,
                name: name.into(),
            });
        }
        out.extend(self.process_entries(reader, &real_tgids)?);
        Ok(())
    }

    /// The entries of `/proc`'s processes for `reader`, in order, of the processes
    /// `real_tgids` the real `/proc` lists now.
    fn process_entries(&self, reader: Reader, real_tgids: &[Pid]) -> Result<Vec<DirEntry>, Errno> {
        let mut pids: Vec<(Pid, Pid)> = match reader {
            Reader::Host { .. } => real_tgids.iter().map(|&p| (p, p)).collect(),
            Reader::Vps { id, .. } => {
                self.catch_up();
                let mut tracker = lock(&self.shared.tracker);
                tracker.refresh_cgroups();
                if !self.follows_events() {
                    tracker.rescan();
                } else {
                    tracker.reap();
                    // Tasks the connector has not reported yet are classified now.
                    for &p in real_tgids {
                        if tracker.start_of(p).is_none() {
                            tracker.vps_of(p);
                        }
                    }
                }
                let Some(vps) = tracker.vps(id) else {
                    return Err(Errno::ENOENT);
                };
                real_tgids
                    .iter()
                    .filter(|&&p| vps.tgid_of(p) == Some(p))
                    .filter_map(|&p| vps.vpid_of(p).map(|v| (v, p)))
                    .collect()
            }
        };
        pids.sort_unstable();
        Ok(pids
            .into_iter()
            .map(|(v, real)| process_entry(v, real))
            .collect())
    }

    /// `/proc/<n>/task`: the group's threads, leader first, as vtids.
    fn list_tasks(
        &self,
        reader: Reader,
        n: Pid,
        start: u64,
        out: &mut Vec<DirEntry>,
    ) -> Result<(), Errno> {
        let tids = host::list_tids(n).map_err(|e| errno(&e))?;
        let shown: Vec<(Pid, Pid)> = match reader {
            Reader::Host { .. } => tids.into_iter().map(|t| (t, t)).collect(),
            Reader::Vps { id, .. } => {
                let mut tracker = lock(&self.shared.tracker);
                for &t in &tids {
                    if tracker.start_of(t).is_none() {
                        tracker.vps_of(t);
                    }
                }
                let Some(vps) = tracker.vps(id) else {
                    return Err(Errno::ENOENT);
                };
                tids.iter()
                    .filter(|&&t| vps.has_task(t))
                    .filter_map(|&t| vps.vpid_of(t).map(|v| (v, t)))
                    .collect()
            }
        };
        for (v, real) in shown {
            let node = Node::Pid {
                n,
                tid: Some(real),
                start,
                rel: "".into(),
            };
            out.push(DirEntry {
                ino: nodes::dirent_ino(&node),
                kind: Kind::Dir,
                name: v.to_string().into(),
            });
        }
        Ok(())
    }
}

/// The smallest buffer a C library reads a directory with (musl's `readdir`, 2 KiB;
/// glibc's is 32 KiB, Go's 8 KiB).
const SMALLEST_READ: usize = 2048;

/// Whether a reader gets all of `entries` in one `getdents64` of [`SMALLEST_READ`]
/// bytes (a record takes 19 bytes and the name with its NUL, aligned to 8). Only such
/// a listing may the kernel keep: procfs lists `task/` anew at each call, so a
/// listing read in several calls must reach the daemon at each, not a kept one (which
/// another open may have filled).
fn fits_one_read(entries: &[DirEntry]) -> bool {
    let bytes: usize = entries
        .iter()
        .map(|e| (19 + e.name.len() + 1).next_multiple_of(8))
        .sum();
    bytes <= SMALLEST_READ
}

/// Where procfs's `task/` goes on at position `from` (`first_tid`): from the thread at
/// that position of the listing `before` (the one the last call could not return) if
/// it is still in the process's listing `now`, else from the thread `from - 2` places
/// past the leader in `now`, or nowhere past its end. Both listings start with `.` and
/// `..`; what this returns goes at position `from`.
fn tasks_from(before: &[DirEntry], now: &[DirEntry], from: usize) -> Vec<DirEntry> {
    let threads = now.get(2..).unwrap_or_default();
    let again = before
        .get(from)
        .and_then(|saved| threads.iter().position(|e| e.name == saved.name));
    match again {
        Some(i) => threads[i..].to_vec(),
        None => threads.get(from - 2..).unwrap_or_default().to_vec(),
    }
}

/// The entries of listing `entries` of directory `node` from position `offset` on (at
/// most [`MOST_A_READ`]), each with the position of the entry after it: procfs's
/// positions, by index but in `/proc` ([`RootPositions`]) and in `fd/`, `fdinfo/`
/// ([`numbered`]), which place their entries by number.
fn page(node: &Node, entries: &[DirEntry], offset: u64) -> Vec<(u64, DirEntry)> {
    let from_with = |from: usize, at: &dyn Fn(usize) -> u64| {
        entries[from.min(entries.len())..]
            .iter()
            .take(MOST_A_READ)
            .enumerate()
            .map(|(i, e)| (at(from + i) + 1, e.clone()))
            .collect()
    };
    let by_index = |i: usize| i as u64;
    let (root, by_number);
    let at: &dyn Fn(usize) -> u64 = match node {
        Node::Root => {
            root = RootPositions::of(entries);
            &|i| root.at(i, entries)
        }
        _ if numbered(node) => {
            by_number = |i: usize| match i {
                0 | 1 => i as u64,
                i => number_position(&entries[i]).unwrap_or(i as u64),
            };
            &by_number
        }
        _ => return from_with(usize::try_from(offset).unwrap_or(usize::MAX), &by_index),
    };
    // Positions rise along the listing: the first at or past `offset`.
    let (mut lo, mut hi) = (0, entries.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at(mid) < offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    from_with(lo, at)
}

/// The entry `name` of a real directory, as node `node`'s listing shows it.
fn real_entry(node: &Node, name: OsString, kind: Kind) -> DirEntry {
    let child = node.child(&name.to_string_lossy());
    let ino = child.as_ref().map(nodes::dirent_ino).unwrap_or(1);
    DirEntry { ino, kind, name }
}

/// Whether procfs lists directory `node` by number (`fd/`, `fdinfo/`,
/// `proc_readfd_common`): `.` and `..` at positions 0 and 1, descriptor `n` at `n + 2`.
fn numbered(node: &Node) -> bool {
    matches!(node, Node::Pid { rel, .. } if matches!(&**rel, "fd" | "fdinfo"))
}

/// The position of a descriptor's entry in a [`numbered`] directory.
fn number_position(e: &DirEntry) -> Option<u64> {
    let n: u64 = e.name.to_str()?.parse().ok()?;
    Some(n + 2)
}

/// The entries of the real directory of `node`, one procfs lists by number
/// ([`numbered`]), from position `offset` on: the directory is read from there, as
/// procfs reads it (at most [`MOST_A_READ`]).
fn real_entries_from(node: &Node, offset: u64) -> std::io::Result<Vec<DirEntry>> {
    use std::io::Seek;
    use std::os::unix::ffi::OsStrExt;
    let mut f = fs::File::open(node.real_path())?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut dir = nix::dir::Dir::from_fd(f.into())?;
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match e.file_type() {
            Some(nix::dir::Type::Directory) => Kind::Dir,
            Some(nix::dir::Type::Symlink) => Kind::Link,
            _ => Kind::File,
        };
        out.push(real_entry(node, name.to_owned(), kind));
        if out.len() == MOST_A_READ {
            break;
        }
    }
    Ok(out)
}

/// The entry of process `v` in `/proc`, real number `real`: its inode number is the
/// one a lookup gives the process's directory ([`nodes::dirent_ino`] of its real path).
fn process_entry(v: Pid, real: Pid) -> DirEntry {
    DirEntry {
        ino: nodes::dirent_ino(&Node::Global {
            rel: real.to_string().into(),
        }),
        kind: Kind::Dir,
        name: v.to_string().into(),
    }
}

/// Whether a `/proc` entry is a process's (a number; procfs's own entries never are).
fn names_a_process(e: &DirEntry) -> bool {
    e.name
        .to_str()
        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// Where procfs puts the first of its process entries (`FIRST_PROCESS_ENTRY`,
/// `fs/proc/base.c`): its own entries come before, by index.
const FIRST_PROCESS_ENTRY: u64 = 256;

/// The most entries one `readdir` answers (a reply holds a page, and an entry takes 24
/// bytes at least): the kernel asks again from where the reply ended.
const MOST_A_READ: usize = 512;

/// The positions of `/proc`'s listing, as procfs has them: `.`, `..` and its own
/// entries by index, then `self` and `thread-self` at [`FIRST_PROCESS_ENTRY`], then each
/// process at its number past them (`TGID_OFFSET`), so that a listing read in several
/// calls goes on from a number, not from an index into a list that has changed.
struct RootPositions {
    /// Entries before the processes, the last two of them `self` and `thread-self`.
    fixed: usize,
    /// The position of `self`.
    first: u64,
}

impl RootPositions {
    fn of(entries: &[DirEntry]) -> RootPositions {
        let fixed = entries.iter().take_while(|e| !names_a_process(e)).count();
        RootPositions {
            fixed,
            // More entries of its own than procfs has room for would overlap the
            // processes'.
            first: FIRST_PROCESS_ENTRY.max(fixed as u64),
        }
    }

    /// The position of entry `i` of `entries`.
    fn at(&self, i: usize, entries: &[DirEntry]) -> u64 {
        let links = self.fixed.saturating_sub(2);
        match i {
            i if i < links => i as u64,
            i if i < self.fixed => self.first + (i - links) as u64,
            i => {
                let n = entries[i].name.to_str().and_then(|n| n.parse::<u64>().ok());
                self.first + 2 + n.unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> DirEntry {
        DirEntry {
            ino: 1,
            kind: Kind::Dir,
            name: name.into(),
        }
    }

    fn positions(names: &[&str]) -> Vec<(u64, String)> {
        let list: Vec<DirEntry> = names.iter().map(|n| named(n)).collect();
        let p = RootPositions::of(&list);
        (0..list.len())
            .map(|i| (p.at(i, &list), list[i].name.to_string_lossy().into_owned()))
            .collect()
    }

    fn listing(names: &[&str]) -> Vec<DirEntry> {
        [".", ".."].iter().chain(names).map(|n| named(n)).collect()
    }

    fn names(entries: &[DirEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_listing_is_kept_only_when_any_reader_reads_it_in_one_call() {
        let tids =
            |n: usize| -> Vec<String> { (0..n).map(|i| (100_000 + i).to_string()).collect() };
        // A record of a 6-digit name: 19 + 7 bytes, aligned to 32.
        let of = |n: usize| listing(&tids(n).iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(
            fits_one_read(&of(62)),
            "62 of 32 bytes, `.` and `..` of 24: 2,032"
        );
        assert!(!fits_one_read(&of(63)));
    }

    #[test]
    fn task_goes_on_as_procfs_first_tid_does() {
        let before = listing(&["10", "11", "12", "13", "14"]);
        // Nothing changed: from the thread at that position on.
        assert_eq!(names(&tasks_from(&before, &before, 4)), ["12", "13", "14"]);
        // The thread the last call could not return lives: from it, with the threads
        // started since (at the list's end); those gone before it do not shift it.
        let now = listing(&["10", "12", "13", "14", "20"]);
        assert_eq!(
            names(&tasks_from(&before, &now, 4)),
            ["12", "13", "14", "20"]
        );
        // It is gone: by count from the leader (two were returned: 10 and 11).
        let now = listing(&["10", "11", "14", "20"]);
        assert_eq!(names(&tasks_from(&before, &now, 4)), ["14", "20"]);
        // ... which skips a thread that moved up past the count when one before went.
        let now = listing(&["10", "13", "14", "20"]);
        assert_eq!(names(&tasks_from(&before, &now, 4)), ["14", "20"]);
        // Past the end of the listing before: the threads started since, by count.
        let now = listing(&["10", "11", "12", "13", "14", "20"]);
        assert_eq!(names(&tasks_from(&before, &now, 7)), ["20"]);
        // Fewer threads than the position: nothing more.
        assert!(tasks_from(&before, &listing(&["10"]), 4).is_empty());
    }

    #[test]
    fn proc_places_its_processes_by_number_as_procfs_does() {
        let got = positions(&[
            ".",
            "..",
            "fs",
            "bus",
            "self",
            "thread-self",
            "1",
            "7",
            "40",
        ]);
        let want = [
            (0, "."),
            (1, ".."),
            (2, "fs"),
            (3, "bus"),
            (256, "self"),
            (257, "thread-self"),
            (259, "1"),
            (265, "7"),
            (298, "40"),
        ];
        let want: Vec<(u64, String)> = want.iter().map(|&(p, n)| (p, n.into())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_later_read_goes_on_from_the_position_asked() {
        let fd = Node::Pid {
            n: 1,
            tid: None,
            start: 0,
            rel: "fd".into(),
        };
        let list: Vec<DirEntry> = [".", "..", "0", "1", "7"].into_iter().map(named).collect();
        let page = |node: &Node, offset| -> Vec<(u64, String)> {
            page(node, &list, offset)
                .into_iter()
                .map(|(next, e)| (next, e.name.to_string_lossy().into_owned()))
                .collect()
        };
        let want = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
            v.iter().map(|&(p, n)| (p, n.into())).collect()
        };
        // Descriptor n at n + 2: the read after `1` (next 4) goes on at 7.
        assert_eq!(page(&fd, 4), want(&[(10, "7")]));
        assert_eq!(page(&fd, 9), want(&[(10, "7")]));
        assert_eq!(page(&fd, 10), want(&[]));
        // Elsewhere by index.
        let attr = Node::Pid {
            n: 1,
            tid: None,
            start: 0,
            rel: "attr".into(),
        };
        assert_eq!(page(&attr, 3), want(&[(4, "1"), (5, "7")]));
    }

    #[test]
    fn more_entries_than_procfs_has_room_for_never_overlap_the_processes() {
        let mut names: Vec<String> = (0..300).map(|i| format!("e{i}")).collect();
        names.extend(["self", "thread-self", "1"].map(String::from));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let pos: Vec<u64> = positions(&names).into_iter().map(|(p, _)| p).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    }
}
