//! Path walks: a name in a directory resolved to a node ([`super::nodes`]) for a reader,
//! the process numbers of its VPS included, and what the kernel may cache of the answer
//! ([`super::cache`]).

use std::fs;
use std::time::Duration;

use super::cache::{Caching, Step};
use super::nodes::Node;
use super::{links, lock, Attr, Errno, Kind, Reader, View};
use crate::engine::{Pid, VpsId};
use crate::host;
use crate::membership::Tracker;

impl View {
    /// Resolves `name` in directory `parent` for `reader`, counting one lookup.
    pub fn lookup(
        &self,
        reader: Reader,
        ids: (u32, u32),
        parent: u64,
        name: &str,
    ) -> Result<Attr, Errno> {
        let parent = self.node_named(reader, parent, Step::Lookup)?;
        self.permission(reader, ids, &parent, libc::X_OK as u32)?;
        let found = self
            .resolve(reader, &parent, name)
            .and_then(|child| Ok((self.attr_of(reader, &child, 0)?, child)));
        match found {
            Ok((attr, child)) => {
                let pid_dir = matches!(&child, Node::Pid { rel, .. } if rel.is_empty());
                if let (true, Node::Pid { n, start, .. }) = (pid_dir, &child) {
                    self.renew_if_reused(*n, *start);
                }
                let ino = if links::is_namespace(&child) || attr.kind == Kind::Socket {
                    // The namespace's or socket's own inode number, which is what
                    // st_ino shows (`ps -o pidns`, `lsns`, `lsof -i` match on it).
                    lock(&self.nodes).lookup_at(child.clone(), attr.ino)
                } else {
                    lock(&self.nodes).lookup(child.clone())
                };
                if let (
                    true,
                    Node::Pid {
                        n,
                        tid: None,
                        start,
                        ..
                    },
                ) = (pid_dir, &child)
                {
                    self.keep_pidfd(*n, *start);
                }
                if pid_dir {
                    self.refresh_owners(ino, &child);
                    if attr.entry_ttl > Caching::NONE {
                        if let Some(key) = child.dir_key() {
                            self.held.insert(key);
                        }
                    }
                }
                Ok(Attr { ino, ..attr })
            }
            // Nothing is found in the directory of a process that is gone: procfs
            // refuses the walk itself (see [`View::check_alive`]).
            Err(Errno::ENOENT) if matches!(parent, Node::Pid { .. }) => {
                self.check_alive(reader, &parent)?;
                Err(Errno::ENOENT)
            }
            Err(e) => Err(e),
        }
    }

    /// How long the kernel may remember that `name` does not exist in `parent`: the
    /// entries of a pid directory, and the non-numeric ones of `/proc`, are a fixed set
    /// for a given process (procps asks for `ctty`, which this kernel lacks, for every
    /// process). Numbered names and the insides of `fd/`, `task/`, … change.
    pub fn negative_ttl(&self, parent: u64, name: &str) -> Option<Duration> {
        match self.node(parent).ok()? {
            Node::Pid { rel, .. } if rel.is_empty() => Some(Caching::FIXED),
            Node::Root if !name.bytes().all(|b| b.is_ascii_digit()) => Some(Caching::STABLE),
            _ => None,
        }
    }

    /// The child `name` of `parent` as `reader` sees it.
    fn resolve(&self, reader: Reader, parent: &Node, name: &str) -> Result<Node, Errno> {
        match parent {
            Node::Root => match name {
                "self" => Ok(Node::SelfLink),
                "thread-self" => Ok(Node::ThreadSelf),
                _ => match host::parse_pid(name) {
                    Some(v) => self.resolve_task(reader, v, None),
                    None if name.bytes().all(|b| b.is_ascii_digit()) => Err(Errno::ENOENT),
                    None => Ok(Node::Global { rel: name.into() }),
                },
            },
            Node::Pid {
                n, tid: None, rel, ..
            } if &**rel == "task" => {
                let v = host::parse_pid(name).ok_or(Errno::ENOENT)?;
                self.resolve_task(reader, v, Some(*n))
            }
            Node::Pid { .. } if links::is_object_lookup(parent, name) => {
                let child = parent.child(name).ok_or(Errno::ENOENT)?;
                self.object(reader, &child)
                    .map(|_| child)
                    .ok_or(Errno::ENOENT)
            }
            Node::Pid { .. } | Node::Global { .. } => parent.child(name).ok_or(Errno::ENOENT),
            Node::SelfLink | Node::ThreadSelf => Err(Errno::ENOTDIR),
        }
    }

    /// `/proc/<v>` (`group` None) or `/proc/<n>/task/<v>` (`group` Some(n)), after
    /// catching up with the kernel's events: a task forked a moment ago is found, and a
    /// number whose task was reaped and taken again (by a process of no VPS, maybe in
    /// the same clock tick) no longer leads to the newcomer's files.
    fn resolve_task(&self, reader: Reader, v: Pid, group: Option<Pid>) -> Result<Node, Errno> {
        if matches!(reader, Reader::Vps { .. }) {
            self.catch_up();
        }
        self.resolve_known_task(reader, v, group)
    }

    fn resolve_known_task(
        &self,
        reader: Reader,
        v: Pid,
        group: Option<Pid>,
    ) -> Result<Node, Errno> {
        // The real number, and its start time when it was read on the way.
        let (real, start) = match reader {
            Reader::Host { .. } => (v, None),
            Reader::Vps { id, tid } => {
                let mut tracker = lock(&self.shared.tracker);
                let by_vpid = |tracker: &Tracker| {
                    let vps = tracker.vps(id)?;
                    vps.vpid_to_pid(v).filter(|&r| vps.has_task(r))
                };
                let real = match by_vpid(&tracker) {
                    Some(r) => r,
                    None => match own_real_number(&tracker, id, tid, v) {
                        Some(r) => r,
                        // Without the events (a daemon outside the initial pid
                        // namespace) a task forked since the last scan has no vpid
                        // yet: a scan gives it one, as a listing would.
                        None if !self.follows_events() => {
                            tracker.rescan();
                            by_vpid(&tracker).ok_or(Errno::ENOENT)?
                        }
                        None => return Err(Errno::ENOENT),
                    },
                };
                let start = tracker.verify(id, real).ok_or(Errno::ENOENT)?;
                if let Some(n) = group {
                    let vps = tracker.vps(id).ok_or(Errno::ENOENT)?;
                    if vps.tgid_of(real) != vps.tgid_of(n) {
                        return Err(Errno::ENOENT);
                    }
                }
                (real, Some(start))
            }
        };
        match group {
            None => {
                let start = match start {
                    Some(s) => s,
                    None => host::start_time(real).map_err(|_| Errno::ENOENT)?,
                };
                Ok(Node::Pid {
                    n: real,
                    tid: None,
                    start,
                    rel: "".into(),
                })
            }
            Some(n) => {
                let start = host::start_time(n).map_err(|_| Errno::ENOENT)?;
                let node = Node::Pid {
                    n,
                    tid: Some(real),
                    start,
                    rel: "".into(),
                };
                // The thread must be in this group's task/ for the host view too.
                fs::symlink_metadata(node.real_path()).map_err(|_| Errno::ENOENT)?;
                Ok(node)
            }
        }
    }
}

/// Without a kernel pid namespace, `getpid()` in a VPS returns the real pid, and tools
/// such as `ps` open `/proc/<getpid()>/status`: a reader may therefore reach its own
/// process and threads by their real numbers, which it knows already, so nothing leaks.
/// No other real number resolves, and none is listed.
fn own_real_number(tracker: &Tracker, id: VpsId, reader: Pid, v: Pid) -> Option<Pid> {
    let meta = tracker.meta(id)?;
    if meta.ns_inode.is_some() {
        return None;
    }
    let vps = tracker.vps(id)?;
    let tgid = vps.tgid_of(reader)?;
    (vps.has_task(v) && vps.tgid_of(v) == Some(tgid)).then_some(v)
}
