//! Classification: whether a task is a member of a VPS (its parent chain, its pid
//! namespace, its cgroup), and admission with the vpid its source asks for, group and
//! session numbers included.

use super::*;

impl Tracker {
    /// The task whose number in namespace `ns` (at `level`) is 1.
    pub(super) fn find_ns_init(&self, ns: u64, level: usize) -> Option<TaskInfo> {
        let tgids = host::list_tgids().ok()?;
        tgids.into_iter().find_map(|p| {
            let info = host::read_task(p).ok()?;
            (info.nspid.get(level) == Some(&1) && host::pidns_inode(p).ok()? == ns).then_some(info)
        })
    }

    /// The VPS that task `tid` belongs to, classifying it if it is new.
    pub fn vps_of(&mut self, tid: Pid) -> Option<VpsId> {
        if let Some(k) = self.known.get(&tid) {
            self.cache_hits += 1;
            return k.vps;
        }
        self.cache_misses += 1;
        let info = host::read_task(tid).ok()?;
        self.classify(&info, 0)
    }

    /// Checks that member `tid` is still the process the engine knows (same start time);
    /// if it is gone or its pid was reused, the old member is removed. Returns `tid`'s
    /// start time when it is, now, a member of `vps` (read once, so that the caller need
    /// not read it again).
    pub fn verify(&mut self, vps: VpsId, tid: Pid) -> Option<u64> {
        let Ok(start) = host::start_time(tid) else {
            // Reaped: whatever was known of it goes now.
            if self.known.contains_key(&tid) {
                self.forget(tid);
            }
            return None;
        };
        let member = match self.known.get(&tid).copied() {
            Some(k) if k.start == start => k.vps == Some(vps),
            Some(_) => {
                self.forget(tid);
                self.vps_of(tid) == Some(vps)
            }
            None => self.vps_of(tid) == Some(vps),
        };
        member.then_some(start)
    }

    /// Decides whether a task is a member, admitting it (and the ancestors that make it
    /// one) when it is.
    pub(super) fn classify(&mut self, info: &TaskInfo, depth: usize) -> Option<VpsId> {
        if let Some(k) = self.known.get(&info.tid) {
            if k.start == info.start {
                return k.vps;
            }
            self.forget(info.tid);
        }
        let vps = if info.tid != info.tgid {
            // A thread belongs where its process does.
            match host::read_task(info.tgid) {
                Ok(leader) => self.classify(&leader, depth + 1),
                Err(_) => None,
            }
        } else {
            self.classify_process(info, depth)
        };
        // A zombie's exit event is already queued, and may have been applied before
        // this read: nothing will say when its pid is free again.
        let exited = matches!(info.state, b'Z' | b'X');
        match vps {
            Some(id) if self.admit(id, info) => {
                if exited {
                    // Released once reaped, like a member whose exit event came.
                    self.exited.insert(info.tid);
                }
                Some(id)
            }
            Some(_) => None,
            None => {
                // A host task is remembered only while it lives: a zombie's verdict
                // would outlive it, and judge the next process to get its pid (a VPS's
                // brand-new `ps`, which then read the host's view: "lookup self").
                if !exited {
                    self.remember(info.tid, info.start, None);
                }
                None
            }
        }
    }

    pub(super) fn classify_process(&mut self, info: &TaskInfo, depth: usize) -> Option<VpsId> {
        // A cgroup or a pid namespace first: their tests do not depend on ancestry.
        if let Some((&id, _)) = self
            .meta
            .iter()
            .find(|(_, m)| m.cgroup.as_ref().is_some_and(|c| c.holds(info.tid)))
        {
            return Some(id);
        }
        if let Ok(ns) = host::pidns_inode(info.tid) {
            if let Some((&id, _)) = self.meta.iter().find(|(_, m)| m.ns_inode == Some(ns)) {
                return Some(id);
            }
        }
        if depth >= MAX_CHAIN || info.ppid <= 0 {
            return None;
        }
        // A cgroup VPS's members are its cgroup's: ancestry says nothing.
        let cgroup_only =
            |t: &Tracker, id: VpsId| t.meta.get(&id).is_some_and(|m| m.cgroup.is_some());
        // The lazy fallback for a task the connector has not reported: its parent's VPS.
        // A pid-namespace VPS also holds nested namespaces, whose processes descend from
        // a member.
        let parent = self.known.get(&info.ppid).copied();
        let vps = match parent {
            Some(k) => k.vps,
            None => {
                let p = host::read_task(info.ppid).ok()?;
                if p.start > info.start {
                    return None; // the parent's pid was reused: not our parent
                }
                self.classify(&p, depth + 1)
            }
        };
        vps.filter(|&id| !cgroup_only(self, id))
    }

    /// Gives `info` its vpid in VPS `id`. For a pid-namespace VPS the vpid is the task's
    /// number there; a stale member holding that number or pid (gone without our
    /// noticing) is removed first.
    pub(super) fn admit(&mut self, id: VpsId, info: &TaskInfo) -> bool {
        let Some(meta) = self.meta.get(&id).cloned() else {
            return false;
        };
        if info.tid != info.tgid && self.engine.vps(id).is_some_and(|v| !v.has_task(info.tgid)) {
            // The leader first (it may have been classified through its parent only).
            match host::read_task(info.tgid) {
                Ok(leader) if leader.tgid == info.tgid && !self.admit(id, &leader) => {
                    return false;
                }
                _ => {}
            }
        }
        let requested = if meta.ns_numbers {
            match info.nspid.get(meta.ns_level) {
                Some(&v) => Requested::Vpid(v),
                None => return false,
            }
        } else {
            Requested::Auto
        };
        if info.tid == info.tgid {
            self.hold_group_numbers(id, &meta, info);
        }
        let ids = TaskIds {
            pid: info.tid,
            tgid: info.tgid,
            pgid: info.pgid,
            sid: info.sid,
        };
        for _ in 0..3 {
            match self.engine.fork(id, ids, requested) {
                Ok(v) => {
                    log::debug!("VPS {id}: task {} is vpid {v}", info.tid);
                    self.admitted(id, info);
                    return true;
                }
                Err(EngineError::TaskExists(_)) | Err(EngineError::TaskInOtherVps { .. }) => {
                    // A member with this pid is known: if it is a different process now,
                    // the old one is gone.
                    if self.known.get(&info.tid).map(|k| k.start) == Some(info.start) {
                        return true;
                    }
                    self.forget(info.tid);
                }
                Err(EngineError::VpidTaken(v)) => {
                    let holder = self.engine.vps(id).and_then(|vps| vps.vpid_to_pid(v));
                    match holder {
                        Some(h) if h != info.tid && !self.alive(h) => self.forget(h),
                        _ => return false,
                    }
                }
                Err(EngineError::PidInUse(p)) => {
                    // The number is held as a group or session id with no task: this
                    // task is that group's leader, whose record was lost, so it takes
                    // the held number.
                    let held = self
                        .engine
                        .vps(id)
                        .is_some_and(|v| v.vpid_of(p).is_some() && !v.has_task(p));
                    if held && self.engine.attach(id, ids).is_ok() {
                        self.admitted(id, info);
                        return true;
                    }
                    return false;
                }
                Err(e) => {
                    log::debug!("cannot admit task {} to VPS {id}: {e}", info.tid);
                    return false;
                }
            }
        }
        false
    }

    /// Records that task `info` joined VPS `id`: it is remembered, and its vpid, when no
    /// rule can recompute it (sparse mode), is journaled before any reader can see it
    /// ([`Tracker::set_journal`]).
    pub(super) fn admitted(&mut self, id: VpsId, info: &TaskInfo) {
        self.remember(info.tid, info.start, Some(id));
        let (Some(journal), Some(vps)) = (self.journal.as_mut(), self.engine.vps(id)) else {
            return;
        };
        if vps.mode() == crate::engine::Mode::Linear {
            return;
        }
        let Some(vpid) = vps.vpid_of(info.tid) else {
            return;
        };
        let m = crate::state::SavedMapping {
            pid: info.tid,
            vpid,
            start: info.start,
        };
        if let Err(e) = journal.record(vps.name(), m) {
            log::warn!("cannot journal vpid {vpid} of task {}: {e}", info.tid);
        }
    }

    /// A new process's group and session may be numbers of the VPS whose leaders have
    /// exited (an orphaned process group): they still need their vpids. For a
    /// pid-namespace VPS the kernel tells them (`NSpgid`, `NSsid`); for a tree VPS a group
    /// inside one of the VPS's own sessions can only have been made by a member.
    pub(super) fn hold_group_numbers(&mut self, id: VpsId, meta: &VpsMeta, info: &TaskInfo) {
        for (number, ns_numbers) in [(info.sid, &info.nssid), (info.pgid, &info.nspgid)] {
            if number <= 0 || number == info.tid {
                continue;
            }
            let Some(vps) = self.engine.vps(id) else {
                return;
            };
            if vps.vpid_of(number).is_some() {
                continue;
            }
            // What the group's number alone tells, before its leader is read (a fork in
            // a VPS whose session began outside it would otherwise read the outside
            // leaders' files at every fork): in a pid namespace, a group the namespace
            // numbers 0 is outside it, as is, in a tree VPS, a group init brought in.
            let in_ns = ns_numbers.get(meta.ns_level).is_some_and(|&v| v > 0);
            let outside = if meta.ns_inode.is_some() {
                !in_ns
            } else {
                matches!(meta.source, Source::Tree { .. })
                    && meta.inherited_groups.contains(&number)
            };
            if outside {
                continue;
            }
            // A live leader: admit it (and so its number) the usual way.
            if let Ok(leader) = host::read_task(number) {
                if leader.start <= info.start {
                    let _ = self.classify(&leader, 1);
                    continue;
                }
            }
            // In a pid namespace, a number the namespace has (non-zero) is taken from a
            // pair that a racing setpgid can tear: read it again first.
            if meta.ns_inode.is_some() && !pair_confirmed(info, number, meta.ns_level) {
                continue;
            }
            let requested = if meta.ns_numbers {
                match ns_numbers.get(meta.ns_level) {
                    Some(&v) if v > 0 => Requested::Vpid(v),
                    _ => continue,
                }
            } else if meta.ns_inode.is_some() || matches!(meta.source, Source::Tree { .. }) {
                // In a pid namespace the kernel said the group is the namespace's. Every
                // process of a tree VPS descends from its init, so a group or session
                // whose leader is gone was made by a member, unless init brought it from
                // outside (left out above); a member could join another outside group
                // only of init's inherited session, by setpgid: not covered.
                Requested::Auto
            } else {
                // A cgroup VPS's members may have come from anywhere: a dead leader's
                // group counts only inside a session of the VPS's own.
                if number == info.sid || vps.vpid_of(info.sid).is_none() {
                    continue;
                }
                Requested::Auto
            };
            if let Err(e) = self.engine.alloc_vpid(id, number, requested) {
                log::debug!("cannot hold group number {number} in VPS {id}: {e}");
            }
        }
    }
}

/// Whether a second read of task `info`'s status gives the same group or session number
/// `number` with the same number in the namespace at `level` as the first. procfs prints
/// each level of `NSpgid` and `NSsid` with its own look at the task's group, without the
/// lock `setpgid` takes, so a read that races a `setpgid` can pair the old group's host
/// number with the new group's number in the namespace (seen: a farm whose master
/// moves each new child into a group of its own gave `NSpgid: 13361 539`, 539 being the
/// child's own number). Such a pair would give the outside group the child's vpid; a
/// second read that agrees cannot be torn that way, as the group only moves forward.
pub(super) fn pair_confirmed(info: &TaskInfo, number: Pid, level: usize) -> bool {
    let pair = |t: &TaskInfo| -> Option<(Pid, Pid)> {
        if number == t.pgid && number == info.pgid {
            Some((t.pgid, t.nspgid.get(level).copied().unwrap_or(0)))
        } else if number == t.sid && number == info.sid {
            Some((t.sid, t.nssid.get(level).copied().unwrap_or(0)))
        } else {
            None
        }
    };
    match host::read_task(info.tid) {
        Ok(again) if again.start == info.start => {
            let confirmed = pair(&again);
            confirmed.is_some() && confirmed == pair(info)
        }
        _ => false,
    }
}
