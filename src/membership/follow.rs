//! Following the kernel: process events (fork, exit, setsid, exec), the reaping of
//! exited members (which no event reports), audits and rescans, and the members released
//! to the view.

use super::*;

/// At most this many exited members are looked at for a fork in a VPS of dense numbers
/// (each look reads a `stat`, ~3 µs); past it, they wait for the next look
/// ([`REAP_INTERVAL`]).
const REAP_AT_FORK_MAX: usize = 128;

impl Tracker {
    /// Whether the task membership knows as `tid` is still that process (same start
    /// time; a zombie counts).
    pub(super) fn alive(&self, tid: Pid) -> bool {
        match (self.known.get(&tid), host::start_time(tid)) {
            (Some(k), Ok(s)) => k.start == s,
            _ => false,
        }
    }

    /// Drops everything known of task `tid` (it is gone, or its pid was reused).
    pub(super) fn forget(&mut self, tid: Pid) {
        let described = self.describe(tid);
        self.exited.remove(&tid);
        if let Some(k) = self.known.remove(&tid) {
            if k.vps.is_some() {
                if let (Some(list), Some(r)) = (self.released.as_mut(), described) {
                    list.push(r);
                }
                self.release(tid);
            }
        }
    }

    /// Member `tid` as the view named it: its numbers and start times, for the names
    /// the kernel may cache of it. `None` for a task of no VPS.
    pub fn describe(&self, tid: Pid) -> Option<Released> {
        let k = self.known.get(&tid).filter(|k| k.vps.is_some())?;
        let vps = self.engine.vps_of(tid).and_then(|id| self.engine.vps(id));
        let tgid = vps.and_then(|v| v.tgid_of(tid)).unwrap_or(tid);
        Some(Released {
            tid,
            start: k.start,
            tgid,
            leader_start: if tgid == tid {
                Some(k.start)
            } else {
                self.known.get(&tgid).map(|l| l.start)
            },
            vpid: vps.and_then(|v| v.vpid_of(tid)),
        })
    }

    /// The tasks whose number and start time a new task has taken since the last call:
    /// the view must not show the new task's files under the old task's inodes.
    pub fn take_reused(&mut self) -> Vec<(Pid, u64)> {
        std::mem::take(&mut self.reused)
    }

    /// From now on, keeps a list of released members for [`Tracker::take_released`].
    pub fn keep_released(&mut self) {
        self.released.get_or_insert_with(Vec::new);
    }

    /// The members released since the last call (none unless
    /// [`Tracker::keep_released`] was called).
    pub fn take_released(&mut self) -> Vec<Released> {
        self.released
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Removes member `tid` from the engine. A process-group leader's number keeps its
    /// vpid while the group lives; if the engine does not know of another member in the
    /// group (setpgid is not reported by the kernel), the members of the leader's session
    /// are re-read first so that it does.
    pub(super) fn release(&mut self, tid: Pid) {
        let Some(id) = self.engine.vps_of(tid) else {
            return;
        };
        if let Some(vps) = self.engine.vps(id) {
            let leader = vps.tgid_of(tid) == Some(tid);
            if leader && host::process_group_exists(tid) {
                let session = vps.group_ids(tid).map(|(_, sid)| sid);
                let peers: Vec<Pid> = vps
                    .tgids()
                    .filter(|&g| g != tid && vps.group_ids(g).map(|(_, s)| s) == session)
                    .collect();
                for g in peers {
                    if let Ok(info) = host::read_task(g) {
                        self.sync_groups_of(id, &info);
                    }
                }
            }
        }
        let _ = self.engine.exit(tid);
    }

    /// Brings the engine's pgid/sid of a member up to date with what the kernel shows
    /// (the connector reports setsid but not setpgid).
    pub fn sync_groups(&mut self, info: &TaskInfo) {
        if info.tid != info.tgid {
            return;
        }
        if let Some(id) = self.engine.vps_of(info.tid) {
            self.sync_groups_of(id, info);
        }
    }

    pub(super) fn sync_groups_of(&mut self, id: VpsId, info: &TaskInfo) {
        let Some((pgid, sid)) = self.engine.vps(id).and_then(|v| v.group_ids(info.tgid)) else {
            return;
        };
        if sid != info.sid && info.sid == info.tgid {
            let _ = self.engine.setsid(info.tgid);
        }
        if pgid != info.pgid {
            if let Some(meta) = self.meta.get(&id).cloned() {
                self.hold_group_numbers(id, &meta, info);
            }
            let _ = self.engine.setpgid(info.tgid, info.pgid);
        }
    }

    /// Follows one kernel process event, then releases the exited members that have been
    /// reaped since the last look, if that was [`REAP_INTERVAL`] ago. The connector is
    /// host-wide: on a busy host events never stop, so the daemon's idle-time reaping
    /// alone may never run, and without this every member that exits while events keep
    /// coming would keep its vpid.
    pub fn on_event(&mut self, ev: &ProcEvent) {
        self.apply_event(ev);
        self.upkeep();
    }

    /// [`Tracker::reap`] (and so [`Tracker::audit`]) when it is due.
    pub(super) fn upkeep(&mut self) {
        let now = Instant::now();
        let due = |last: Option<Instant>, every: Duration| {
            last.is_none_or(|t| now.saturating_duration_since(t) >= every)
        };
        if (!self.exited.is_empty() && due(self.last_reap, REAP_INTERVAL))
            || due(self.last_audit, self.audit_interval())
        {
            self.reap();
        }
    }

    pub(super) fn apply_event(&mut self, ev: &ProcEvent) {
        match *ev {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
                ..
            } => {
                // A task inherits its VPS at fork (the seed's model): decided by the
                // parent at the time of the fork, not by whoever its parent is by the
                // time the event is read (it may have been reparented already).
                // A parent gone unread is the latest task of its number (the entry goes
                // when the number is taken again), newer than any record of it.
                // A thread is its process's: its event names the process's parent
                // (`CLONE_THREAD` keeps the real parent), which may be outside the VPS
                // (its init's threads).
                let thread = child_tgid != child_pid;
                // The process whose namespace and VPS the new task's number is taken in.
                let maker = if thread { child_tgid } else { parent_tgid };
                let vanished_parent = self.vanished.get(&parent_tgid).copied();
                self.vanished.remove(&child_pid);
                let parent_vps = if thread {
                    self.known.get(&maker).and_then(|k| k.vps)
                } else {
                    match vanished_parent {
                        Some(id) => Some(id),
                        None => self.known.get(&parent_tgid).and_then(|k| k.vps),
                    }
                };
                if let Some(n) = parent_vps.and_then(|id| self.forks.get_mut(&id)) {
                    *n += 1;
                }
                // Each fork event is a task of its own: a task of this number whose fork
                // event came before was reaped, even if its exit is not applied yet and
                // the newcomer started in the same clock tick (so no start time tells
                // them apart), and even if the newcomer is no one's, which the view
                // would otherwise show under the old task's vpid.
                if let Some(k) = self.known.get(&child_pid).copied().filter(|k| k.announced) {
                    self.reused.push((child_pid, k.start));
                    self.forget(child_pid);
                }
                let namespaces = self.meta.values().any(|m| m.ns_inode.is_some());
                if parent_vps.is_none() && !namespaces {
                    return;
                }
                // A task whose maker is no member joins a VPS only by the pid namespace
                // it was made in (a `setns` before the fork: `nsenter`, a runtime's
                // `exec`), unless a cgroup VPS may hold it: one look at that namespace,
                // not its files, for each of the host's forks.
                if parent_vps.is_none() && self.meta.values().all(|m| m.cgroup.is_none()) {
                    let ours = host::pidns_inode(child_pid)
                        .is_ok_and(|ns| self.meta.values().any(|m| m.ns_inode == Some(ns)));
                    if !ours {
                        return;
                    }
                }
                let Ok(info) = host::read_task(child_pid) else {
                    // A member's child gone already (reaped before its fork was read)
                    // took a number in the kernel all the same, unless a look numbered
                    // it here before it went: then it is known as a member, and has not
                    // exited yet as far as the events go (a record of an earlier task
                    // of its number, a host process's or an exited member's, is not it).
                    if let Some(id) = parent_vps {
                        let numbered = self
                            .known
                            .get(&child_pid)
                            .is_some_and(|k| k.vps == Some(id))
                            && !self.exited.contains(&child_pid);
                        if !numbered {
                            let kernel = self.meta.get(&id).is_some_and(|m| m.ns_numbers);
                            let _ = self.engine.pass_over_vpid(id, child_pid, kernel);
                            self.pass_over_nested(id, maker);
                            if self.vanished.len() >= VANISHED_MAX {
                                self.vanished.clear();
                            }
                            self.vanished.insert(child_pid, id);
                        }
                    }
                    return;
                };
                // A record of an earlier task of this number: that task was reaped (its
                // number is taken again), whether or not its reaping was seen yet. An
                // exited task with the same start time is one too: the number came
                // round within the clock tick start times are counted in.
                if let Some(k) = self.known.get(&info.tid).copied() {
                    let same_tick = k.start == info.start && self.exited.contains(&info.tid);
                    if k.start != info.start || same_tick {
                        if same_tick {
                            self.reused.push((info.tid, k.start));
                        }
                        self.forget(info.tid);
                    }
                }
                match parent_vps {
                    Some(id) => {
                        // The kernel frees a pid when its task is reaped, and hands it
                        // out again to the next fork that comes to it (a restore tool
                        // writes ns_last_pid and forks to get a given number). The
                        // connector does not report reaping: the members reaped before
                        // this fork are released now, not at the next look (unless
                        // zombies pile up, whose looks would slow every fork).
                        if self.numbers_densely(id) && self.exited.len() <= REAP_AT_FORK_MAX {
                            self.release_reaped();
                        }
                        // The event is the authority: a rescan that ran first may have
                        // judged the child by its new parent after a reparenting.
                        let known = self.known.get(&info.tid).copied();
                        if known.is_some_and(|k| k.start == info.start && k.vps.is_none()) {
                            self.known.remove(&info.tid);
                        }
                        if !self.known.contains_key(&info.tid) && !self.admit(id, &info) {
                            self.classify(&info, 0);
                        }
                        self.note_nested_fork(id, &info);
                    }
                    None => {
                        self.classify(&info, 0);
                    }
                }
                if let Some(k) = self.known.get_mut(&info.tid) {
                    k.announced |= k.start == info.start;
                }
            }
            ProcEvent::Exit { pid, .. } => {
                if self.known.get(&pid).is_some_and(|k| k.vps.is_some()) {
                    self.exited.insert(pid);
                } else {
                    self.known.remove(&pid);
                }
            }
            ProcEvent::Sid { tgid, .. } if self.engine.vps_of(tgid).is_some() => {
                let _ = self.engine.setsid(tgid);
            }
            ProcEvent::Exec { tgid, .. } => {
                // A thread other than the leader that execs takes the group's number
                // over (the kernel's `de_thread`) and the leader's exit is reported: the
                // process of that number lives on, with the leader's start time.
                self.exited.remove(&tgid);
                self.reconcile_threads(tgid)
            }
            _ => {}
        }
    }

    /// After an exec: a non-leader thread that exec'ed has taken over the thread group's
    /// pid and the other threads are gone (the kernel's `de_thread`).
    pub(super) fn reconcile_threads(&mut self, tgid: Pid) {
        // The leader's task stays known until the whole group is reaped (a zombie leader
        // stays listed), so the group is found by its tgid.
        let Some(id) = self.engine.vps_of(tgid) else {
            return;
        };
        // A process with no other thread recorded (the events of its threads' clones
        // came before its exec's) has none to reconcile: neither its task list nor every
        // member is looked through, at every exec of a shell's command.
        let recorded: Vec<Pid> = match self.engine.vps(id) {
            Some(v) if v.threads_of(tgid) > 1 => {
                v.tids().filter(|&t| v.tgid_of(t) == Some(tgid)).collect()
            }
            _ => return,
        };
        let Ok(alive) = host::list_tids(tgid) else {
            return;
        };
        let gone: Vec<Pid> = recorded
            .into_iter()
            .filter(|t| *t != tgid && !alive.contains(t))
            .collect();
        if let Some((&execer, rest)) = gone.split_first() {
            for &t in rest {
                self.known.remove(&t);
                let _ = self.engine.exit(t);
            }
            self.known.remove(&execer);
            let _ = self.engine.switch_exec_pids(execer);
            if let Ok(s) = host::start_time(tgid) {
                self.remember(tgid, s, Some(id));
            }
        }
    }

    /// Removes exited members that have been reaped, and every [`AUDIT_INTERVAL`] checks
    /// all members ([`Tracker::audit`]).
    pub fn reap(&mut self) {
        let now = Instant::now();
        self.last_reap = Some(now);
        self.release_reaped();
        if self
            .last_audit
            .is_none_or(|t| now.saturating_duration_since(t) >= self.audit_interval())
        {
            self.audit();
        }
    }

    /// The threads of VPS `id` now, as the kernel's `nr_threads` counts them (zombies
    /// included, reaped ones not): its members, less those reaped since the last look,
    /// released now (unless more than [`REAP_AT_FORK_MAX`] zombies wait, whose looks
    /// would slow the read: then up to [`REAP_INTERVAL`] late).
    pub fn threads_now(&mut self, id: VpsId) -> Option<usize> {
        self.release_reaped_now();
        self.engine.vps(id).map(|v| v.tasks_num())
    }

    /// The processes of VPS `id` now, as the kernel's `nr_processes` counts them (the
    /// link count of `/proc`): [`Tracker::threads_now`]'s, of thread groups.
    pub fn processes_now(&mut self, id: VpsId) -> Option<usize> {
        self.release_reaped_now();
        self.engine.vps(id).map(|v| v.tgids().count())
    }

    /// [`Tracker::release_reaped`] for a count of now, unless more than
    /// [`REAP_AT_FORK_MAX`] zombies wait.
    fn release_reaped_now(&mut self) {
        if self.exited.len() <= REAP_AT_FORK_MAX {
            self.release_reaped();
        }
    }

    /// Releases the exited members that have been reaped (their numbers are free in the
    /// kernel).
    fn release_reaped(&mut self) {
        let exited: Vec<Pid> = self.exited.iter().copied().collect();
        for tid in exited {
            if !self.alive(tid) {
                self.forget(tid);
            }
        }
    }

    /// Whether VPS `id` hands out dense numbers, the next free one after the last
    /// (`ns`), which a number freed a moment ago may be.
    fn numbers_densely(&self, id: VpsId) -> bool {
        self.engine
            .vps(id)
            .is_some_and(|v| v.config().numbering == crate::engine::Numbering::Ns)
    }

    /// How often every member is checked: [`AUDIT_INTERVAL`], and no more often than
    /// every 2 ms per member, so that a large VPS's safety net costs at most ~0.15 % of
    /// a CPU (a check reads a `stat`, ~3 µs).
    pub(super) fn audit_interval(&self) -> Duration {
        let members: usize = self
            .meta
            .keys()
            .filter_map(|&id| self.engine.vps(id))
            .map(|v| v.tasks_num())
            .sum();
        AUDIT_INTERVAL.max(Duration::from_millis(2) * u32::try_from(members).unwrap_or(u32::MAX))
    }

    /// The safety net: every task the engine numbers is checked against the kernel, and
    /// one that is gone, or whose pid now names another process (another start time),
    /// loses its vpid, however its end was missed. A zombie is still there, as in the
    /// kernel's `/proc`. Numbers held without a task (a group whose leader has exited, a
    /// vpid allocated ahead of its process) are the engine's to keep.
    pub fn audit(&mut self) {
        self.last_audit = Some(Instant::now());
        let tasks: Vec<(VpsId, Pid)> = self
            .meta
            .keys()
            .filter_map(|&id| self.engine.vps(id).map(|v| (id, v)))
            .flat_map(|(id, v)| v.tids().map(move |t| (id, t)))
            .collect();
        for (id, tid) in tasks {
            let start = host::start_time(tid).ok();
            match self.known.get(&tid).copied() {
                Some(k) if k.vps == Some(id) && Some(k.start) == start => {}
                Some(k) if k.vps == Some(id) => {
                    log::debug!("VPS {id}: member {tid} is gone; releasing its vpid");
                    self.forget(tid);
                }
                // A task numbered without a record of ours: released once it is gone.
                _ if start.is_none() => {
                    log::debug!("VPS {id}: untracked member {tid} is gone; releasing it");
                    self.exited.remove(&tid);
                    self.release(tid);
                }
                _ => {}
            }
        }
    }

    /// A full pass over the real `/proc`: admits members the connector did not report,
    /// removes members that are gone, and marks exited the members that are zombies (their
    /// exit events may be among those lost). Run at start, when events were lost, and when
    /// a reader lists `/proc` without the connector.
    pub fn rescan(&mut self) {
        self.reap();
        self.refresh_cgroups();
        let Ok(tgids) = host::list_tgids() else {
            return;
        };
        let mut seen: FxHashSet<Pid> = FxHashSet::default();
        for tgid in tgids {
            let tids = host::list_tids(tgid).unwrap_or_else(|_| vec![tgid]);
            for tid in tids {
                match self.known.get(&tid).copied() {
                    // A host task: if its pid names another process now (the old one's
                    // exit and the new one's fork were among the events lost), the new
                    // one is judged, or a VPS's brand-new process would read the host's
                    // view (seen on a loaded host: `ps` failing with "lookup self").
                    Some(k) if k.vps.is_none() => match host::start_time(tid) {
                        Ok(start) if start == k.start => {}
                        Ok(_) => {
                            self.known.remove(&tid);
                            if let Ok(info) = host::read_task(tid) {
                                self.classify(&info, 0);
                            }
                        }
                        Err(_) => continue,
                    },
                    // A member: its exit may be among the events that were lost. If it is
                    // a zombie now, it is exited, and is released once reaped (no event
                    // will say so); if its pid names another process, that one is judged.
                    Some(k) => match host::start_and_state(tid) {
                        Ok((start, state)) if start == k.start => {
                            if matches!(state, b'Z' | b'X') {
                                self.exited.insert(tid);
                            }
                        }
                        Ok(_) => {
                            self.forget(tid);
                            if let Ok(info) = host::read_task(tid) {
                                self.classify(&info, 0);
                            }
                        }
                        Err(_) => continue, // gone since the listing: not seen
                    },
                    None => {
                        if let Ok(info) = host::read_task(tid) {
                            self.classify(&info, 0);
                        }
                    }
                }
                seen.insert(tid);
            }
        }
        let gone: Vec<Pid> = self
            .known
            .keys()
            .copied()
            .filter(|t| !seen.contains(t))
            .collect();
        for tid in gone {
            self.forget(tid);
        }
        self.audit();
    }

    /// Re-reads the members of every cgroup VPS: processes moved in are admitted,
    /// processes moved out leave (the kernel reports no cgroup moves).
    pub fn refresh_cgroups(&mut self) {
        let cgroups: Vec<(VpsId, cgroup::Cgroup)> = self
            .meta
            .iter()
            .filter_map(|(&id, m)| m.cgroup.clone().map(|c| (id, c)))
            .collect();
        for (id, cg) in cgroups {
            let Ok(procs) = cg.processes() else {
                continue;
            };
            let inside: FxHashSet<Pid> = procs.iter().copied().collect();
            let left: Vec<Pid> = match self.engine.vps(id) {
                Some(v) => v
                    .tids()
                    .filter(|&t| v.tgid_of(t).is_some_and(|g| !inside.contains(&g)))
                    .collect(),
                None => continue,
            };
            for tid in left {
                self.forget(tid);
            }
            for tgid in procs {
                if self.known.get(&tgid).is_some_and(|k| k.vps == Some(id)) {
                    continue;
                }
                self.known.remove(&tgid);
                for tid in host::list_tids(tgid).unwrap_or_else(|_| vec![tgid]) {
                    if tid != tgid {
                        self.known.remove(&tid);
                    }
                    if let Ok(info) = host::read_task(tid) {
                        self.classify(&info, 0);
                    }
                }
            }
        }
    }
}
