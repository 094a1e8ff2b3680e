//! The last number handed out in each pid namespace nested in a VPS (a member that
//! ran `unshare --pid --fork`, a container in the container), for the readers inside
//! it.
//!
//! procfs answers `ns_last_pid` and the last field of `loadavg` for the reader's own
//! pid namespace (`task_active_pid_ns(current)`), so a process in a nested namespace
//! reading the VPS's `/proc` (it has no `/proc` of its own) is told its namespace's
//! last number, not the VPS's. The daemon cannot ask the kernel for it (only a task of
//! that namespace can read it, and making one would take a number there), so it keeps
//! it from the process events: the number in each namespace below the VPS's of every
//! member forked there (a fork two levels down takes a number in both), in the order
//! the forks happened; a member's child gone before it could be read took the next one
//! in each of its parent's.
//!
//! A write of `ns_last_pid` from inside such a namespace sets its number there
//! ([`crate::view::writes`]). So does a write of `pid_max`, which each pid namespace
//! has of its own (Linux 6.14 on: a new one starts at the kernel's limit, whatever
//! its parent's): kept here for the namespace's readers.

use super::Tracker;
use crate::engine::{Pid, VpsId};
use crate::host::{self, TaskInfo};

/// At most this many nested namespaces are remembered; past it all are forgotten at
/// once, as the members gone unread are (their readers are then answered the VPS's
/// last pid until a fork in their namespace is seen again).
const NESTED_MAX: usize = 1024;

impl Tracker {
    /// Notes the numbers in the pid namespaces below its VPS's of `info`, a member of
    /// VPS `id` just made by a fork.
    pub(super) fn note_nested_fork(&mut self, id: VpsId, info: &TaskInfo) {
        let level = self.meta.get(&id).map_or(0, |m| m.ns_level);
        if info.nspid.len() <= level + 1 {
            return;
        }
        for (ns, number) in nested_levels(info.tid, Some(info.ppid), &info.nspid, level) {
            if self.nested_last.len() >= NESTED_MAX && !self.nested_last.contains_key(&ns) {
                self.nested_last.clear();
                self.nested_pid_max.clear();
            }
            // A namespace's first task: a new namespace (nsfs may have given it the
            // inode number of one gone), with the kernel's `pid_max`.
            if number == 1 {
                self.nested_pid_max.remove(&ns);
            }
            self.nested_last.insert(ns, (id, number));
        }
    }

    /// A child of member `parent` was gone before it could be read: when the parent
    /// is in a nested namespace, the child took the next number in it and in each
    /// namespace between it and the VPS's.
    pub(super) fn pass_over_nested(&mut self, id: VpsId, parent: Pid) {
        if !self.nested_last.values().any(|&(v, _)| v == id) {
            return; // no nested namespace known in this VPS: no look at the parent
        }
        let level = self.meta.get(&id).map_or(0, |m| m.ns_level);
        let Ok(info) = host::read_task(parent) else {
            return;
        };
        for (ns, _) in nested_levels(parent, None, &info.nspid, level) {
            if let Some((_, last)) = self.nested_last.get_mut(&ns) {
                *last += 1;
            }
        }
    }

    /// The last number handed out in the pid namespace of `reader`, when that is a
    /// namespace nested in VPS `id`'s whose forks membership saw; `None` otherwise
    /// (the VPS's own last vpid is the answer then).
    pub fn nested_last_pid(&self, id: VpsId, reader: Pid) -> Option<Pid> {
        self.nested_last(self.nested_ns_of(id, reader)?)
    }

    /// The inode of the pid namespace of task `task`, when that is a namespace nested
    /// in VPS `id`'s whose last number membership keeps.
    pub fn nested_ns_of(&self, id: VpsId, task: Pid) -> Option<u64> {
        if task <= 0 || !self.nested_last.values().any(|&(v, _)| v == id) {
            return None;
        }
        let ns = host::pidns_inode(task).ok()?;
        self.nested_last
            .get(&ns)
            .is_some_and(|&(v, _)| v == id)
            .then_some(ns)
    }

    /// The last number handed out in nested namespace `ns`, where membership keeps it.
    pub fn nested_last(&self, ns: u64) -> Option<Pid> {
        self.nested_last.get(&ns).map(|&(_, last)| last)
    }

    /// The `pid_max` of nested namespace `ns`: the one written there, else the kernel's
    /// default for a new namespace.
    pub fn nested_pid_max(&self, ns: u64) -> Pid {
        self.nested_pid_max
            .get(&ns)
            .map_or(crate::engine::PID_MAX_LIMIT, |&(_, n)| n)
    }

    /// Sets the `pid_max` of nested namespace `ns` of VPS `id`: a write from inside it.
    pub fn set_nested_pid_max(&mut self, id: VpsId, ns: u64, n: Pid) {
        self.nested_pid_max.insert(ns, (id, n));
    }

    /// Sets the last number of nested namespace `ns`: a write of its `ns_last_pid`.
    pub fn set_nested_last(&mut self, ns: u64, n: Pid) {
        if let Some((_, last)) = self.nested_last.get_mut(&ns) {
            *last = n;
        }
    }
}

/// The pid namespaces of task `task` below the VPS's (whose number is at index
/// `level` of its `NSpid` list `nspid`), innermost first, each with the task's number
/// there. A task that has exited has no namespaces to look at (a zombie's `ns/` links
/// fail): a child just made is then in the namespace its `parent` makes children in
/// (`ns/pid_for_children`). Fewer where none can be read (both gone meanwhile).
fn nested_levels(task: Pid, parent: Option<Pid>, nspid: &[Pid], level: usize) -> Vec<(u64, Pid)> {
    let depth = nspid.len().saturating_sub(level + 1);
    let own = std::fs::File::open(host::proc_path(&format!("{task}/ns/pid")));
    let ns = own.or_else(|e| match parent {
        Some(p) if p > 0 => {
            std::fs::File::open(host::proc_path(&format!("{p}/ns/pid_for_children")))
        }
        _ => Err(e),
    });
    let Ok(ns) = ns else {
        return Vec::new();
    };
    host::pid_ns_chain_from(ns, depth)
        .into_iter()
        .zip(nspid.iter().rev())
        .map(|((_, ino), &number)| (ino, number))
        .collect()
}
