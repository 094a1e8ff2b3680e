//! What the view tells the kernel when processes change: the process events applied to
//! membership, and the names and attributes the kernel holds of members that exited,
//! exec'd or changed credentials, dropped from its caches ([`super::cache`]).

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::cache::{Flush, FlushBatch};
use super::nodes::{Node, ROOT_INO};
use super::{lock, View};
use crate::engine::Pid;
use crate::membership::{Released, Tracker};

impl View {
    /// Connects the view to its mount's kernel connection, once the FUSE session exists
    /// (fuser makes the notifier from the session, which owns the view, so it cannot be
    /// given at construction). With `notifier` the view tells the kernel to drop stale
    /// attributes ([`View::refresh_owners`]); `flush` is the sender to a thread that
    /// tells it to drop the names of released members ([`View::flush_released`]). Only
    /// a connected mount of one VPS lets the kernel keep the names of processes.
    pub fn connect(&self, notifier: fuser::Notifier, flush: Option<Flush>) {
        let _ = self.notifier.set(notifier);
        if let Some(tx) = flush {
            if self.flush.set(tx).is_ok() {
                lock(&self.shared.tracker).keep_released();
            }
        }
    }

    /// procfs gives a process's entries the task's effective ids, or root while it is
    /// not dumpable, and recomputes that on every path walk; a shared mount lets the
    /// kernel keep those attributes for a second. Each walk there looks up the pid
    /// directory `dir` (inode `ino`) anew, so that lookup checks the owner of one of its
    /// entries (`environ`, never world-readable, so it shows the dumpable rule) and,
    /// when it changed since the last look, has the kernel drop the cached attributes of
    /// every entry below before the walk goes on to them. A mount of one VPS has them
    /// asked every time ([`View::ttls`]): nothing to do.
    pub(super) fn refresh_owners(&self, ino: u64, dir: &Node) {
        if self.caches_pids() {
            return;
        }
        let Ok(md) = fs::symlink_metadata(dir.real_path().join("environ")) else {
            return;
        };
        let owner = (md.uid(), md.gid());
        let before = lock(&self.owners).get(&ino).copied();
        if before.is_some_and(|b| b != owner) {
            if let Some(notifier) = self.notifier.get() {
                let entries = lock(&self.nodes).entries_below(dir);
                for entry in entries {
                    // Attributes only (offset -1): rewritten files keep no page cache.
                    let _ = notifier.inval_inode(fuser::INodeNo(entry), -1, 0);
                }
            }
        }
        // Recorded only once the kernel dropped the old attributes: a walk that looks at
        // the same time (the events thread after a credential change, a reader's walk)
        // then sees the change too, and invalidates as well, rather than take the owner
        // for unchanged and go on to attributes not yet dropped.
        lock(&self.owners).insert(ino, owner);
    }

    /// Whether the kernel may keep the names of processes: only in a mount of one VPS,
    /// and only when the view can take them back (a notifier and a flush thread).
    pub(super) fn caches_pids(&self) -> bool {
        self.single.is_some() && self.notifier.get().is_some() && self.flush.get().is_some()
    }

    /// Sends the names under which the kernel may cache each of the `released` members
    /// that has an inode here (its pid directory, by vpid and by real pid, and a thread's
    /// `task/` entry) to the flush thread, which invalidates them: procfs drops a
    /// process's dentries when it is reaped (`proc_flush_pid`); without this the kernel
    /// keeps a dead process's directory, and so its inode here, until memory runs short.
    /// The flush thread holds none of the view's locks: an invalidation waits for
    /// lookups in flight. A full queue drops the batch: a missed invalidation costs
    /// memory, not correctness (a lookup of a dead process's name still answers
    /// `ENOENT`, and a request through a name still held is `ESTALE` once, [`cache`]).
    /// The listings the kernel keeps of their directories are dropped at once
    /// ([`listing::DirCaching`]). The same is sent for a live member whose credentials
    /// changed or that exec'd ([`View::on_events`]): the next walk then gets the owner
    /// of now with the name.
    fn flush_released(&self, released: &[Released]) {
        let Some(tx) = self.flush.get() else {
            return;
        };
        if released.is_empty() {
            return;
        }
        let nodes = lock(&self.nodes);
        let mut batch = FlushBatch::default();
        let mut listings = Vec::new();
        for r in released {
            let mut names_in = |dir: u64| {
                if let Some(v) = r.vpid {
                    batch.names.push((dir, v.to_string()));
                }
                if r.vpid != Some(r.tid) {
                    batch.names.push((dir, r.tid.to_string()));
                }
            };
            let pid_dir = |n, tid, start, rel: &str| Node::Pid {
                n,
                tid,
                start,
                rel: rel.into(),
            };
            if nodes.find(&pid_dir(r.tid, None, r.start, "")).is_some() {
                names_in(ROOT_INO);
            }
            let mut dirs = vec![
                pid_dir(r.tid, None, r.start, ""),
                pid_dir(r.tid, None, r.start, "task"),
            ];
            if let (true, Some(leader)) = (r.tid != r.tgid, r.leader_start) {
                let task = nodes.find(&pid_dir(r.tgid, None, leader, "task"));
                let thread = nodes.find(&pid_dir(r.tgid, Some(r.tid), leader, ""));
                if let (Some(task), Some(_)) = (task, thread) {
                    names_in(task);
                }
                dirs.push(pid_dir(r.tgid, Some(r.tid), leader, ""));
                dirs.push(pid_dir(r.tgid, None, leader, "task"));
            }
            // Any the kernel holds, kept listing or not: a daemon that took over a
            // mount does not know which listings an earlier one let the kernel keep.
            listings.extend(dirs.iter().filter_map(|d| nodes.find(d)));
        }
        drop(nodes);
        // A listing the kernel keeps is served to a reader holding the directory open
        // without asking: dropped now (unlike a name, it waits for no lookup in flight),
        // so that the next read of it gets procfs's answer for a dead task from the
        // daemon.
        if let Some(notifier) = self.notifier.get() {
            for ino in listings {
                let _ = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
            }
        }
        if !batch.names.is_empty() {
            let _ = tx.try_send(batch);
        }
    }

    /// Follows a batch of kernel process events, in every mount of the daemon.
    pub fn on_events(&self, events: &[crate::events::ProcEvent]) {
        use crate::events::ProcEvent;
        // An exec may have entered another time namespace; an exit frees the number.
        self.shared.clocks.forget(
            events
                .iter()
                .flat_map(|e| match *e {
                    ProcEvent::Exit { pid, .. } => [Some(pid), None],
                    ProcEvent::Exec { pid, tgid } => [Some(pid), Some(tgid)],
                    _ => [None, None],
                })
                .flatten(),
        );
        let exited = self.with_tracker(|tracker| {
            for ev in events {
                tracker.on_event(ev);
            }
            // The names of a process that exits go now, not when it is reaped: a
            // zombie's are never cached ([`cache`]), so its reaping needs no message.
            // So do those of a task whose credentials changed (or may have, at an
            // exec, which resets the dumpable flag): the kernel checks a file's owner
            // itself for some opens (`O_NOATIME`) and leases, from the attributes it
            // got with the name, where procfs recomputes the owner at every walk.
            events
                .iter()
                .flat_map(|e| match *e {
                    ProcEvent::Exit { pid, .. } => [Some(pid), None],
                    ProcEvent::Uid { pid, tgid }
                    | ProcEvent::Gid { pid, tgid }
                    | ProcEvent::Exec { pid, tgid } => [Some(tgid), (pid != tgid).then_some(pid)],
                    _ => [None, None],
                })
                .flatten()
                .filter_map(|pid| tracker.describe(pid))
                .collect::<Vec<_>>()
        });
        for mount in self.shared.mounts().into_iter().filter(|m| m.caches_pids()) {
            mount.flush_released(&exited);
        }
    }

    /// Runs `f` on the tracker (membership), e.g. to feed it events, then lets every
    /// mount of the daemon go of the members it released ([`View::let_go`]).
    pub fn with_tracker<T>(&self, f: impl FnOnce(&mut Tracker) -> T) -> T {
        let (out, released, reused) = {
            let mut tracker = lock(&self.shared.tracker);
            let out = f(&mut tracker);
            (out, tracker.take_released(), tracker.take_reused())
        };
        if released.is_empty() && reused.is_empty() {
            return out;
        }
        let mut gone: Vec<(Pid, u64)> = released.iter().map(|r| (r.tid, r.start)).collect();
        gone.extend(reused);
        for mount in self.shared.mounts() {
            mount.let_go(&released, &gone);
        }
        let mut pidfds = lock(&self.shared.pidfds);
        for key in &gone {
            pidfds.remove(key);
        }
        for r in released.iter().filter(|r| r.tid != r.tgid) {
            if let Some(kept) = r.leader_start.and_then(|s| pidfds.get_mut(&(r.tgid, s))) {
                kept.forget_thread(r.tid);
            }
        }
        drop(pidfds);
        let mut superpriv = lock(&self.shared.superpriv);
        for (tid, _) in &gone {
            superpriv.remove(tid);
        }
        out
    }

    /// Lets go of members membership `released`, and of the processes `gone` (those,
    /// and numbers taken again within a clock tick): their names are flushed from the
    /// kernel ([`View::connect`]) first, since they are found by node, then their
    /// nodes retired, so that a process that gets the number and start time (within the
    /// same clock tick) gets inodes of its own.
    fn let_go(&self, released: &[Released], gone: &[(Pid, u64)]) {
        self.flush_released(released);
        let mut nodes = lock(&self.nodes);
        for &(n, start) in gone {
            nodes.retire(n, start);
        }
    }
}
