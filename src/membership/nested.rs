//! The last number handed out in each pid namespace nested in a VPS (a member that
//! ran `unshare --pid --fork`, a container in the container), for the readers inside
//! it.
//!
//! procfs answers `ns_last_pid` and the last field of `loadavg` for the reader's own
//! pid namespace (`task_active_pid_ns(current)`), so a process in a nested namespace
//! reading the VPS's `/proc` (it has no `/proc` of its own) is told its namespace's
//! last number, not the VPS's. The daemon cannot ask the kernel for it (only a task of
//! that namespace can read it, and making one would take a number there), so it keeps
//! it from the process events: the innermost number of every member forked into a
//! nested namespace, in the order the forks happened; a member's child gone before it
//! could be read took the next one of its parent's namespace.
//!
//! A write of `ns_last_pid` from inside such a namespace sets its number there
//! ([`crate::view::writes`]). Kept for the innermost namespace of each such member
//! only: a reader in a namespace between the VPS's and a deeper one is answered the
//! VPS's number (docs/limits.md).

use super::Tracker;
use crate::engine::{Pid, VpsId};
use crate::host::{self, TaskInfo};

/// At most this many nested namespaces are remembered; past it all are forgotten at
/// once, as the members gone unread are (their readers are then answered the VPS's
/// last pid until a fork in their namespace is seen again).
const NESTED_MAX: usize = 1024;

impl Tracker {
    /// Notes the number in its own pid namespace of `info`, a member of VPS `id` just
    /// made by a fork, when that namespace lies below the VPS's.
    pub(super) fn note_nested_fork(&mut self, id: VpsId, info: &TaskInfo) {
        let level = self.meta.get(&id).map_or(0, |m| m.ns_level);
        if info.nspid.len() <= level + 1 {
            return;
        }
        let (Some(&number), Ok(ns)) = (info.nspid.last(), host::pidns_inode(info.tid)) else {
            return;
        };
        if self.nested_last.len() >= NESTED_MAX && !self.nested_last.contains_key(&ns) {
            self.nested_last.clear();
        }
        self.nested_last.insert(ns, (id, number));
    }

    /// A child of member `parent` was gone before it could be read: when the parent
    /// is in a nested namespace, the child took that namespace's next number.
    pub(super) fn pass_over_nested(&mut self, id: VpsId, parent: Pid) {
        if !self.nested_last.values().any(|&(v, _)| v == id) {
            return; // no nested namespace known in this VPS: no look at the parent
        }
        if let Ok(ns) = host::pidns_inode(parent) {
            if let Some((_, last)) = self.nested_last.get_mut(&ns) {
                *last += 1;
            }
        }
    }

    /// The last number handed out in the pid namespace of `reader`, when that is a
    /// namespace nested in VPS `id`'s whose forks membership saw; `None` otherwise
    /// (the VPS's own last vpid is the answer then).
    pub fn nested_last_pid(&self, id: VpsId, reader: Pid) -> Option<Pid> {
        let ns = self.nested_ns_of(id, reader)?;
        self.nested_last.get(&ns).map(|&(_, last)| last)
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

    /// Sets the last number of nested namespace `ns`: a write of its `ns_last_pid`.
    pub fn set_nested_last(&mut self, ns: u64, n: Pid) {
        if let Some((_, last)) = self.nested_last.get_mut(&ns) {
            *last = n;
        }
    }
}
