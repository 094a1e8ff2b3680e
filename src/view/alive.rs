//! Whether a node's process is still the one the node was made for: every request about
//! a process asks, since a reaped process's number may have gone to another. The answer
//! comes from the pidfd the view keeps of the member ([`super::kept`]: one system call,
//! exact), else from its `stat` (its start time, and for a number taken again within the
//! same clock tick, the process events). A gone process is answered as procfs answers
//! (`ESRCH`, `ENOENT` for a thread), or `ESTALE` once for a request that may have come
//! through a name the kernel still holds ([`super::cache`]).

use std::fs;

use super::nodes::Node;
use super::{kept, lock, Errno, Reader, View};
use crate::engine::Pid;
use crate::host;
use crate::render::stat::PF_EXITING;

/// How many pidfds the view may keep ([`View::keep_pidfd`]): their share
/// ([`crate::fds`]); past it, liveness is read from `stat`.
pub(super) fn pidfd_budget() -> usize {
    crate::fds::Shares::now().pidfds
}

impl View {
    /// `e`, from the real file behind `node`, or `ESRCH` when it is `ENOENT` because the
    /// node's process is gone ([`View::check_alive`]).
    pub(super) fn gone_or(&self, node: &Node, e: Errno) -> Errno {
        match e {
            Errno::ENOENT => self.check_alive_by_handle(node).err().unwrap_or(e),
            _ => e,
        }
    }

    /// Whether `node`'s process is still the one it was made for. A node whose process is
    /// gone (reaped, or its pid reused) is reached only through a directory or file
    /// held open, or a cached entry: a fresh walk fails at `/proc/<n>` with `ENOENT`.
    /// procfs answers `ESRCH` there (`proc_pid_permission` on the held directory,
    /// `get_proc_task` in open and readlink), and so does this.
    ///
    /// A request about a gone process that may have come through a name the kernel
    /// still holds is `ESTALE` instead, once ([`super::cache`]).
    pub(super) fn check_alive(&self, reader: Reader, node: &Node) -> Result<(), Errno> {
        self.check_alive_as(node, Some(reader.tid()))
    }

    /// Process `n` started at `start` was just found alive, but the pidfd kept for a
    /// process of that number and start time says that one is gone: a newcomer took
    /// the number within the clock tick, before membership applied its fork. The old
    /// process's inodes are retired and its pidfd dropped, so that the newcomer gets
    /// inodes (and a pidfd) of its own instead of answering for the dead one.
    pub(super) fn renew_if_reused(&self, n: Pid, start: u64) {
        let gone = {
            let mut pidfds = lock(&self.shared.pidfds);
            let gone = pidfds.get(&(n, start)).and_then(kept::Kept::alive) == Some(false);
            if gone {
                pidfds.remove(&(n, start));
            }
            gone
        };
        if gone {
            lock(&self.nodes).retire(n, start);
        }
    }

    /// Keeps a pidfd of process `n` started at `start`, a member whose directory the
    /// kernel is given ([`View::check_alive`]), where events feed membership (which drops
    /// it when it releases the member). A directory a reader holds open is then always
    /// its own process's, even when the number is taken again within the clock tick
    /// before the events say so (a newcomer still in `fork` shows its parent's
    /// `cmdline`).
    pub(super) fn keep_pidfd(&self, n: Pid, start: u64) {
        {
            let pidfds = lock(&self.shared.pidfds);
            if !self.follows_events()
                || pidfds.contains_key(&(n, start))
                || pidfds.len() >= pidfd_budget()
            {
                return;
            }
        }
        // Members only (a shared mount shows a host reader everyone): asked first, so
        // that a lookup of anyone else costs no system call.
        if !lock(&self.shared.tracker).known_alive(n, start) {
            return;
        }
        // Not for a thread other than a leader (pidfd_open refuses it).
        let Ok(fd) = crate::sys::process::pidfd_open(n) else {
            return;
        };
        // The number may have passed to another process between the lookup and here:
        // one of another start time shows in its stat; one of the same clock tick by its
        // fork event, queued as it became visible, which would have released the member.
        if host::start_time(n).is_ok_and(|s| s == start) {
            self.catch_up();
            if lock(&self.shared.tracker).known_alive(n, start) {
                lock(&self.shared.pidfds).insert((n, start), kept::Kept::new(fd));
            }
        }
    }

    /// Whether process `n`, whose `stat` was just read showing start time `start`, is
    /// the node's process of that start time rather than one that took the number
    /// within the clock tick. A kept pidfd says exactly (alive after the read: the
    /// number was never free since). Else the events are the witness: the kernel
    /// queues the node's process's exit event before its number can be free again, so
    /// the events are applied first (after the read), and then a process the applied
    /// events show exited is the node's only while it still is in `do_exit` or a zombie
    /// (`PF_EXITING` in `flags`); one that took the number since is not.
    pub(super) fn same_in_tick(&self, n: Pid, start: u64, flags: u64) -> bool {
        let by_pidfd = lock(&self.shared.pidfds)
            .get(&(n, start))
            .and_then(kept::Kept::alive);
        if let Some(alive) = by_pidfd {
            return alive;
        }
        self.catch_up();
        !self.reused_in_tick(n, start, flags)
    }

    /// [`View::same_in_tick`] after the events are applied: whether process `n`, alive
    /// now with start time `start` and flags `flags`, is another process than the
    /// node's of the same start time, a number taken again within the clock tick before
    /// its fork event was applied. Where events feed membership, a member the applied
    /// events show exited is gone unless it is what is there, exiting; in a mount of one
    /// VPS, which shows members only, one they do not know was forgotten (reaped). (A
    /// shared mount shows a host reader non-members, which membership does not
    /// follow.)
    fn reused_in_tick(&self, n: Pid, start: u64, flags: u64) -> bool {
        if !self.follows_events() {
            return false;
        }
        let tracker = lock(&self.shared.tracker);
        let seen = Seen {
            alive: tracker.known_alive(n, start),
            exited: tracker.has_exited(n) && tracker.start_of(n) == Some(start),
            members_only: self.single.is_some(),
            exiting: flags & PF_EXITING != 0,
        };
        seen.newcomer()
    }

    /// [`View::check_alive`] for a request through a handle, which cannot have come
    /// through a stale name (a read, a readdir): never `ESTALE`.
    pub(super) fn check_alive_by_handle(&self, node: &Node) -> Result<(), Errno> {
        self.check_alive_as(node, None)
    }

    /// [`View::check_alive`] for a request of task `named_by` that may have come through
    /// a stale name; `None` for one that cannot have (never `ESTALE`).
    pub(super) fn check_alive_as(&self, node: &Node, named_by: Option<Pid>) -> Result<(), Errno> {
        let Node::Pid { n, tid, start, .. } = node else {
            return Ok(());
        };
        let by_pidfd = lock(&self.shared.pidfds)
            .get(&(*n, *start))
            .and_then(kept::Kept::alive);
        let gone = match by_pidfd {
            Some(true) => None,
            Some(false) => Some(Errno::ESRCH),
            None => {
                let stat = host::read_single(&host::proc_path(&format!("{n}/stat")));
                let now = stat
                    .as_deref()
                    .ok()
                    .and_then(|raw| crate::render::stat::parse_stat(raw).ok())
                    .map(|st| (st.starttime, st.flags));
                match now {
                    Some((s, flags)) if s == *start && self.same_in_tick(*n, s, flags) => None,
                    _ => Some(Errno::ESRCH),
                }
            }
        };
        // A thread of a live group: gone once it is no longer in the group's task/
        // (procfs then answers ENOENT in its held directory, not ESRCH).
        let gone = gone.or_else(|| {
            let t = tid.filter(|t| t != n)?;
            fs::symlink_metadata(host::proc_path(&format!("{n}/task/{t}")))
                .err()
                .map(|_| Errno::ENOENT)
        });
        match gone {
            None => Ok(()),
            Some(e) => {
                let stale = named_by.is_some_and(|tid| self.take_stale(node, tid));
                if stale {
                    // Its exit is still queued: apply it, so that its names go.
                    self.catch_up();
                    Err(Errno::ESTALE)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// What the applied events say of the process found under a node's number with the
/// node's start time, and what it shows of itself.
struct Seen {
    /// A member of that number and start time is alive.
    alive: bool,
    /// The member of that number and start time has exited.
    exited: bool,
    /// The mount shows members only (a mount of one VPS).
    members_only: bool,
    /// The process found is in `do_exit` or a zombie.
    exiting: bool,
}

impl Seen {
    /// Whether the process found took the number after the node's process was reaped.
    fn newcomer(&self) -> bool {
        if self.alive {
            return false;
        }
        if !self.members_only && !self.exited {
            // Not a member: a shared mount shows a host reader everyone, unfollowed.
            return false;
        }
        // The exited member is what is there only while it still exits; one no event
        // speaks of was forgotten (reaped), and the number is someone else's.
        !(self.exited && self.exiting)
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    fn seen(alive: bool, exited: bool, members_only: bool, exiting: bool) -> bool {
        Seen {
            alive,
            exited,
            members_only,
            exiting,
        }
        .newcomer()
    }

    #[test]
    fn a_process_of_the_nodes_number_and_start_time_is_judged_by_the_events() {
        for members_only in [true, false] {
            assert!(!seen(true, false, members_only, false), "the member alive");
            assert!(
                !seen(false, true, members_only, true),
                "its zombie, or in do_exit"
            );
            assert!(
                seen(false, true, members_only, false),
                "exited, and what is there runs: the number went to a newcomer in the tick"
            );
        }
        assert!(
            seen(false, false, true, false),
            "a mount of one VPS: a member no event speaks of was reaped"
        );
        assert!(
            !seen(false, false, false, false),
            "a shared mount: a host process membership does not follow"
        );
    }
}
