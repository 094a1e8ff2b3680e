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
use super::{errno, lock, DirEntry, Handle, Kind, Reader, Requester, View};

/// What the kernel may do with a directory's listing, answered at opendir.
///
/// `ps -L`, `top -H` and htop list every process's `task/` at every refresh, two
/// readdir round trips each (the entries, then the end). The kernel can keep a
/// listing in its page cache (`FOPEN_CACHE_DIR`) and serve it again to a later open
/// that says it still holds (`FOPEN_KEEP_CACHE`). The daemon takes the listing at
/// opendir and says it still holds only when it is the very listing given with the last
/// open of that directory, so the kernel never serves a listing that differs from
/// what the daemon would list now; where nothing changed, the open is the one round
/// trip.
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
        let node = self.node_named(ino)?;
        self.check_alive(&node)?;
        self.permission(reader, ids, &node, libc::R_OK as u32)?;
        let keeps = self.caches_pids()
            && matches!(&node, Node::Pid { rel, .. } if rel.is_empty() || &**rel == "task");
        if !keeps {
            return Ok((
                self.new_handle(ino, Handle::Dir(Vec::new())),
                DirCaching::None,
            ));
        }
        let entries = self.list(reader, &node)?;
        let caching = if self.listed.same_as_before(ino, &entries) {
            DirCaching::Keep
        } else {
            DirCaching::Fill
        };
        Ok((self.new_handle(ino, Handle::Listed(entries)), caching))
    }

    /// Entries of directory `ino`, open as handle `fh`, from position `offset` on, for
    /// `req`. A read from position 0 (the first, and every one after `rewinddir`) takes
    /// the listing anew, as procfs lists what is there when it is read: the reader's
    /// own descriptor of `fd/` is in it, and a process forked since the last listing
    /// too; later positions page through that listing. A handle whose listing the
    /// kernel may keep pages through the listing taken at its open, the one the kernel
    /// keeps ([`DirCaching`]).
    pub fn readdir(
        &self,
        req: Requester,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<DirEntry>, Errno> {
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
        let listed_at_open = matches!(lock(&self.handles).get(&fh), Some(Handle::Listed(_)));
        if offset == 0 && !listed_at_open {
            let entries = self.list(self.reader(req.tid), &node)?;
            match lock(&self.handles).get_mut(&fh) {
                Some(Handle::Dir(held)) => *held = entries,
                Some(_) => return Err(Errno::ENOTDIR),
                None => return Err(Errno::EBADF),
            }
        }
        match lock(&self.handles).get(&fh) {
            Some(Handle::Dir(entries) | Handle::Listed(entries)) => Ok(entries
                .iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .cloned()
                .collect()),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::EBADF),
        }
    }

    pub(super) fn list(&self, reader: Reader, node: &Node) -> Result<Vec<DirEntry>, Errno> {
        let mut out = vec![
            DirEntry {
                ino: 1,
                kind: Kind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: 1,
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
                for e in fs::read_dir(node.real_path()).map_err(|e| errno(&e))? {
                    let Ok(e) = e else { continue };
                    let name = e.file_name();
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
                    let child = node.child(&name.to_string_lossy());
                    let ino = child.as_ref().map(nodes::dirent_ino).unwrap_or(1);
                    out.push(DirEntry { ino, kind, name });
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
                    for &p in &real_tgids {
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
        for (v, _real) in pids {
            out.push(DirEntry {
                ino: nodes::dirent_ino(&Node::Global {
                    rel: v.to_string().into(),
                }),
                kind: Kind::Dir,
                name: v.to_string().into(),
            });
        }
        Ok(())
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
        let shown: Vec<Pid> = match reader {
            Reader::Host { .. } => tids,
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
                    .filter_map(|&t| vps.vpid_of(t))
                    .collect()
            }
        };
        for v in shown {
            let node = Node::Pid {
                n,
                tid: Some(v),
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
