//! Membership: which real processes form each VPS, kept in step with the kernel, and fed
//! to the translation engine.
//!
//! The engine only numbers what it is told about. This module tells it: it classifies
//! every task it meets (by `(tid, start time)`, never by pid alone, since pids are
//! reused), admits members with the vpid their source asks for, and follows fork, exit,
//! setsid and exec from the kernel's process-events connector ([`crate::events`]), with
//! a lazy fallback (walking the parent chain, or comparing pid namespaces) for a task it
//! has not been told about yet and a full rescan when events were lost.
//!
//! Sources (SPEC section 3):
//! - [`Source::Tree`]: init and everything it forks, transitively; reparenting does not
//!   remove a member. Vpids are chosen by the VPS's numbering policy.
//! - [`Source::Pidns`]: the processes of the pid namespace of a given process, including
//!   nested namespaces and processes that join later with `setns`. Each member is given
//!   the vpid equal to its number in that namespace (`alloc_vpid(pid, nspid)`).
//! - [`Source::Cgroup`]: the processes of a cgroup and the cgroups below it
//!   ([`cgroup`]).

pub mod cgroup;

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::{Engine, EngineError, Pid, Requested, TaskIds, Vps, VpsConfig, VpsId};
use crate::events::ProcEvent;
use crate::host::{self, TaskInfo};

/// Where a VPS's members come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Process `init` and all it forks.
    Tree {
        /// The real pid of the VPS's init.
        init: Pid,
    },
    /// The pid namespace that process `of` is in.
    Pidns {
        /// Any process of the namespace.
        of: Pid,
    },
    /// The processes of a cgroup and below it.
    Cgroup {
        /// Which cgroup.
        spec: cgroup::CgroupSpec,
        /// The VPS's init; the oldest member when not given.
        init: Option<Pid>,
    },
}

/// Why a VPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The named process could not be read.
    #[error("cannot read process {pid}: {err} (is it running?)")]
    NoProcess {
        /// The process.
        pid: Pid,
        /// What the kernel said.
        err: io::Error,
    },
    /// The process named for a tree VPS is a thread, not a process.
    #[error("{0} is a thread of another process; name a process")]
    NotAProcess(Pid),
    /// The cgroup cannot be used.
    #[error("{0}")]
    Cgroup(String),
    /// No init (number 1) was found in the pid namespace.
    #[error("the pid namespace of process {0} has no init process left")]
    NoNamespaceInit(Pid),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What membership knows of a VPS beyond the engine.
#[derive(Clone, Debug)]
pub struct VpsMeta {
    /// Where members come from.
    pub source: Source,
    /// For a pid-namespace VPS: the namespace's inode.
    pub ns_inode: Option<u64>,
    /// How many `NSpid` levels lie above the VPS's (0 for a tree VPS): the index of a
    /// member's number in its VPS within the kernel's `NSpid` list.
    pub ns_level: usize,
    /// For a pid-namespace VPS: each member's vpid is its number in the namespace (the
    /// seed's specific-vpid path). Otherwise the numbering policy chooses.
    pub ns_numbers: bool,
    /// For a cgroup VPS: the cgroup.
    pub cgroup: Option<cgroup::Cgroup>,
    /// For a tree VPS: the process group and session its init was in, when they were
    /// made outside it (inherited): their numbers are not the VPS's, as the kernel
    /// shows 0 for a group made outside a pid namespace.
    pub inherited_groups: Vec<Pid>,
}

/// A classified task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    start: u64,
    vps: Option<VpsId>,
}

/// Parent chains longer than this are not walked (a guard against loops in racy reads).
const MAX_CHAIN: usize = 4096;

/// How often, at most, exited members are checked for having been reaped while events
/// keep coming. The connector reports exits but not reaping, so a zombie member is only
/// released when someone looks again.
const REAP_INTERVAL: Duration = Duration::from_millis(200);

/// How often, at most, every member is checked against the kernel ([`Tracker::audit`]).
const AUDIT_INTERVAL: Duration = Duration::from_secs(10);

/// Membership of every VPS, and the engine they are numbered by.
#[derive(Debug, Default)]
pub struct Tracker {
    engine: Engine,
    meta: BTreeMap<VpsId, VpsMeta>,
    known: FxHashMap<Pid, Known>,
    /// Tasks that exited (connector) but may not be reaped yet: a zombie stays in the
    /// kernel's `/proc` until its parent waits for it, so it stays a member until then.
    /// No event says when that happens: [`Tracker::reap`] looks, at least every
    /// [`REAP_INTERVAL`] while events come ([`Tracker::on_event`]) and whenever the
    /// daemon is idle.
    exited: FxHashSet<Pid>,
    /// When [`Tracker::reap`] and [`Tracker::audit`] last ran.
    last_reap: Option<Instant>,
    last_audit: Option<Instant>,
    /// Classifications answered from the cache of known tasks, and those that read
    /// `/proc` (statistics).
    cache_hits: u64,
    cache_misses: u64,
    /// Members released since [`Tracker::take_released`] last ran, when someone asked
    /// for them ([`Tracker::keep_released`]): the view tells the kernel to forget what it
    /// caches of them.
    released: Option<Vec<Released>>,
    /// Where vpids no rule can recompute are recorded as they are handed out
    /// ([`Tracker::set_journal`]).
    journal: Option<crate::state::Journal>,
    /// Tasks (number, start time) whose number a new task took within the same clock
    /// tick ([`Tracker::take_reused`]).
    reused: Vec<(Pid, u64)>,
}

/// A member membership has let go of (reaped, or its pid found reused), with the numbers
/// under which readers may have looked it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    /// Its real task id.
    pub tid: Pid,
    /// Its start time, part of the view's node for it.
    pub start: u64,
    /// Its thread group (= `tid` for a process), and the group leader's start time when
    /// it was known.
    pub tgid: Pid,
    pub leader_start: Option<u64>,
    /// Its vpid, the name a reader in its VPS used.
    pub vpid: Option<Pid>,
}

impl Tracker {
    /// No VPS yet.
    pub fn new() -> Self {
        Tracker {
            engine: Engine::new(),
            ..Tracker::default()
        }
    }

    /// The engine, for translation.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A VPS by id.
    pub fn vps(&self, id: VpsId) -> Option<&Vps> {
        self.engine.vps(id)
    }

    /// What membership knows of VPS `id`.
    pub fn meta(&self, id: VpsId) -> Option<&VpsMeta> {
        self.meta.get(&id)
    }

    /// Adds a VPS and admits its current members. `ns_numbers` (pid-namespace sources
    /// only) gives each member its namespace number as vpid.
    pub fn add_vps(
        &mut self,
        name: &str,
        source: Source,
        config: VpsConfig,
        ns_numbers: bool,
    ) -> Result<VpsId, MembershipError> {
        self.restore_vps(name, source, config, ns_numbers, &[])
    }

    /// [`Tracker::add_vps`], first giving each task of `saved` that is still the same
    /// process (same start time) the vpid it had (a restarted daemon's state).
    pub fn restore_vps(
        &mut self,
        name: &str,
        source: Source,
        config: VpsConfig,
        ns_numbers: bool,
        saved: &[crate::state::SavedMapping],
    ) -> Result<VpsId, MembershipError> {
        let read =
            |pid: Pid| host::read_task(pid).map_err(|err| MembershipError::NoProcess { pid, err });
        let process = |pid: Pid| -> Result<TaskInfo, MembershipError> {
            let info = read(pid)?;
            if info.tid != info.tgid {
                return Err(MembershipError::NotAProcess(pid));
            }
            Ok(info)
        };
        // Tree and cgroup VPSes have no kernel namespace of their own.
        let plain = |cgroup: Option<cgroup::Cgroup>| VpsMeta {
            source: source.clone(),
            ns_inode: None,
            ns_level: 0,
            ns_numbers: false,
            cgroup,
            inherited_groups: Vec::new(),
        };
        let (init, meta) = match source {
            Source::Tree { init } => {
                let init = process(init)?;
                let inherited = [init.pgid, init.sid]
                    .into_iter()
                    .filter(|&g| g != init.tid)
                    .collect();
                let meta = VpsMeta {
                    inherited_groups: inherited,
                    ..plain(None)
                };
                (init, meta)
            }
            Source::Cgroup { ref spec, init } => {
                let cg = cgroup::Cgroup::find(spec.clone()).map_err(MembershipError::Cgroup)?;
                let init = match init {
                    Some(p) => p,
                    None => {
                        // The oldest member.
                        let procs = cg.processes().map_err(|e| {
                            MembershipError::Cgroup(format!(
                                "cannot list {}: {e}",
                                cg.dir.display()
                            ))
                        })?;
                        procs
                            .into_iter()
                            .filter_map(|p| host::start_time(p).ok().map(|s| (s, p)))
                            .min()
                            .map(|(_, p)| p)
                            .ok_or_else(|| {
                                MembershipError::Cgroup(format!(
                                    "cgroup {} has no process",
                                    spec.path
                                ))
                            })?
                    }
                };
                (process(init)?, plain(Some(cg)))
            }
            Source::Pidns { of } => {
                let info = read(of)?;
                let ns = host::pidns_inode(of)
                    .map_err(|err| MembershipError::NoProcess { pid: of, err })?;
                let level = info.nspid.len().saturating_sub(1);
                let init = self
                    .find_ns_init(ns, level)
                    .ok_or(MembershipError::NoNamespaceInit(of))?;
                let meta = VpsMeta {
                    source: source.clone(),
                    ns_inode: Some(ns),
                    ns_level: level,
                    ns_numbers,
                    cgroup: None,
                    inherited_groups: Vec::new(),
                };
                (init, meta)
            }
        };
        let ids = TaskIds::process(init.tid, init.pgid, init.sid);
        let id = self.engine.create_vps(name, ids, config)?;
        self.remember(init.tid, init.start, Some(id));
        self.meta.insert(id, meta);
        for m in saved {
            if m.vpid == 1 || host::start_time(m.pid).ok() != Some(m.start) {
                continue;
            }
            if let Err(e) = self.engine.alloc_vpid(id, m.pid, Requested::Vpid(m.vpid)) {
                log::warn!(
                    "VPS {name}: cannot restore vpid {} of pid {}: {e}",
                    m.vpid,
                    m.pid
                );
            }
        }
        // A saved task was a member (also one that entered through `exec`): it is again,
        // before the scan, so that the scan counts its children in as well (they would
        // otherwise be taken for the host's, and see the host's view).
        for m in saved {
            let member = self.engine.vps(id).is_some_and(|v| v.has_task(m.pid));
            if member || m.vpid == 1 {
                continue;
            }
            if let Ok(info) = host::read_task(m.pid) {
                if info.start == m.start {
                    self.known.remove(&m.pid);
                    self.admit(id, &info);
                }
            }
        }
        // Tasks judged to be in no VPS may be in this one: they are judged again.
        self.known.retain(|_, k| k.vps.is_some());
        self.rescan();
        Ok(id)
    }

    /// The vpids of VPS `id` to save: in sparse mode every member task's, with its start
    /// time; in linear mode none (the rule recomputes them).
    pub fn saved_mappings(&self, id: VpsId) -> Vec<crate::state::SavedMapping> {
        let Some(vps) = self.engine.vps(id) else {
            return Vec::new();
        };
        if vps.mode() == crate::engine::Mode::Linear {
            return Vec::new();
        }
        vps.mappings()
            .into_iter()
            .filter(|m| vps.has_task(m.pid))
            .filter_map(|m| {
                self.start_of(m.pid)
                    .map(|start| crate::state::SavedMapping {
                        pid: m.pid,
                        vpid: m.vpid,
                        start,
                    })
            })
            .collect()
    }

    /// The task whose number in namespace `ns` (at `level`) is 1.
    fn find_ns_init(&self, ns: u64, level: usize) -> Option<TaskInfo> {
        let tgids = host::list_tgids().ok()?;
        tgids.into_iter().find_map(|p| {
            let info = host::read_task(p).ok()?;
            (info.nspid.get(level) == Some(&1) && host::pidns_inode(p).ok()? == ns).then_some(info)
        })
    }

    /// Records how task `tid`, started at `start`, was classified.
    fn remember(&mut self, tid: Pid, start: u64, vps: Option<VpsId>) {
        self.known.insert(tid, Known { start, vps });
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
    fn classify(&mut self, info: &TaskInfo, depth: usize) -> Option<VpsId> {
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

    fn classify_process(&mut self, info: &TaskInfo, depth: usize) -> Option<VpsId> {
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
    fn admit(&mut self, id: VpsId, info: &TaskInfo) -> bool {
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
    fn admitted(&mut self, id: VpsId, info: &TaskInfo) {
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

    /// Journals, from now on, every vpid handed out that no rule can recompute, so that
    /// a daemon killed before its next save loses none ([`crate::state`]).
    pub fn set_journal(&mut self, journal: crate::state::Journal) {
        self.journal = Some(journal);
    }

    /// Whether vpids were journaled since the journal was last rotated.
    pub fn journal_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.is_empty())
    }

    /// Seals the journal for a save of the state taken now, and starts the next; returns
    /// the sealed journal's number, to remove once the state is saved.
    pub fn rotate_journal(&mut self) -> Option<u64> {
        match self.journal.as_mut()?.rotate() {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                log::warn!("cannot start a new vpid journal: {e}; keeping the current one");
                None
            }
        }
    }

    /// A new process's group and session may be numbers of the VPS whose leaders have
    /// exited (an orphaned process group): they still need their vpids. For a
    /// pid-namespace VPS the kernel tells them (`NSpgid`, `NSsid`); for a tree VPS a group
    /// inside one of the VPS's own sessions can only have been made by a member.
    fn hold_group_numbers(&mut self, id: VpsId, meta: &VpsMeta, info: &TaskInfo) {
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
            // A live leader: admit it (and so its number) the usual way.
            if let Ok(leader) = host::read_task(number) {
                if leader.start <= info.start {
                    let _ = self.classify(&leader, 1);
                    continue;
                }
            }
            // In a pid namespace, a number the namespace has (non-zero) is taken from a
            // pair that a racing setpgid can tear: read it again first.
            let in_ns = ns_numbers.get(meta.ns_level).is_some_and(|&v| v > 0);
            if meta.ns_inode.is_some() && in_ns && !pair_confirmed(info, number, meta.ns_level) {
                continue;
            }
            let requested = if meta.ns_numbers {
                match ns_numbers.get(meta.ns_level) {
                    Some(&v) if v > 0 => Requested::Vpid(v),
                    _ => continue,
                }
            } else if meta.ns_inode.is_some() {
                // The kernel says whether the group is the namespace's (non-zero).
                match ns_numbers.get(meta.ns_level) {
                    Some(&v) if v > 0 => Requested::Auto,
                    _ => continue,
                }
            } else if matches!(meta.source, Source::Tree { .. }) {
                // Every process of a tree VPS descends from its init, so a group or
                // session whose leader is gone was made by a member, unless init brought
                // it from outside; a member could join another outside group only of
                // init's inherited session, by setpgid: not covered.
                if meta.inherited_groups.contains(&number) {
                    continue;
                }
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

    fn alive(&self, tid: Pid) -> bool {
        match (self.known.get(&tid), host::start_time(tid)) {
            (Some(k), Ok(s)) => k.start == s,
            _ => false,
        }
    }

    /// Drops everything known of task `tid` (it is gone, or its pid was reused).
    fn forget(&mut self, tid: Pid) {
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

    /// Whether task `tid`, started at `start` (any start if `None`), is a member that
    /// the events applied so far show alive: known, and no exit seen. The kernel queues
    /// a task's exit event before the task can be reaped, so once the queued events are
    /// applied this is the truth without reading `/proc`.
    pub fn known_alive(&self, tid: Pid, start: Option<u64>) -> bool {
        self.known
            .get(&tid)
            .is_some_and(|k| k.vps.is_some() && start.is_none_or(|s| s == k.start))
            && !self.exited.contains(&tid)
    }

    /// Whether member `tid` has exited (a zombie, or reaped and not looked at since).
    pub fn has_exited(&self, tid: Pid) -> bool {
        self.exited.contains(&tid)
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
    fn release(&mut self, tid: Pid) {
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

    fn sync_groups_of(&mut self, id: VpsId, info: &TaskInfo) {
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
    fn upkeep(&mut self) {
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

    fn apply_event(&mut self, ev: &ProcEvent) {
        match *ev {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                ..
            } => {
                // A task inherits its VPS at fork (the seed's model): decided by the
                // parent at the time of the fork, not by whoever its parent is by the
                // time the event is read (it may have been reparented already).
                let parent_vps = self.known.get(&parent_tgid).and_then(|k| k.vps);
                let namespaces = self.meta.values().any(|m| m.ns_inode.is_some());
                if parent_vps.is_none() && !namespaces {
                    return;
                }
                let Ok(info) = host::read_task(child_pid) else {
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
                        // The event is the authority: a rescan that ran first may have
                        // judged the child by its new parent after a reparenting.
                        let known = self.known.get(&info.tid).copied();
                        if known.is_some_and(|k| k.start == info.start && k.vps.is_none()) {
                            self.known.remove(&info.tid);
                        }
                        if !self.known.contains_key(&info.tid) && !self.admit(id, &info) {
                            self.classify(&info, 0);
                        }
                    }
                    None => {
                        self.classify(&info, 0);
                    }
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
            ProcEvent::Exec { tgid, .. } => self.reconcile_threads(tgid),
            _ => {}
        }
    }

    /// After an exec: a non-leader thread that exec'ed has taken over the thread group's
    /// pid and the other threads are gone (the kernel's `de_thread`).
    fn reconcile_threads(&mut self, tgid: Pid) {
        // The leader's task stays known until the whole group is reaped (a zombie leader
        // stays listed), so the group is found by its tgid.
        let Some(id) = self.engine.vps_of(tgid) else {
            return;
        };
        let Ok(alive) = host::list_tids(tgid) else {
            return;
        };
        let recorded: Vec<Pid> = match self.engine.vps(id) {
            Some(v) => v.tids().filter(|&t| v.tgid_of(t) == Some(tgid)).collect(),
            None => return,
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
        let exited: Vec<Pid> = self.exited.iter().copied().collect();
        for tid in exited {
            if !self.alive(tid) {
                self.forget(tid);
            }
        }
        if self
            .last_audit
            .is_none_or(|t| now.saturating_duration_since(t) >= self.audit_interval())
        {
            self.audit();
        }
    }

    /// How often every member is checked: [`AUDIT_INTERVAL`], and no more often than
    /// every 2 ms per member, so that a large VPS's safety net costs at most ~0.15 % of
    /// a CPU (a check reads a `stat`, ~3 µs).
    fn audit_interval(&self) -> Duration {
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

    /// Removes VPS `id`: its members are no longer anyone's.
    pub fn remove_vps(&mut self, id: VpsId) -> Result<(), EngineError> {
        self.engine.remove_vps(id)?;
        self.meta.remove(&id);
        self.known.retain(|_, k| k.vps != Some(id));
        Ok(())
    }

    /// A write of `ns_last_pid` in VPS `id`: the last vpid handed out is `vpid`.
    pub fn set_last_vpid(&mut self, id: VpsId, vpid: crate::engine::Vpid) {
        if let Err(e) = self.engine.set_last_vpid(id, vpid) {
            log::debug!("cannot set the last vpid of VPS {id}: {e}");
        }
    }

    /// The restore path (`alloc_vpid(pid, vpid)`): real number `pid`, which no member
    /// uses yet, is given `vpid` in VPS `id`; the process that gets that pid joins the
    /// VPS with it. Refused with `PidInUse` when the number has a vpid already and with
    /// `VpidTaken` when the vpid is taken.
    pub fn alloc(
        &mut self,
        id: VpsId,
        pid: Pid,
        vpid: crate::engine::Vpid,
    ) -> Result<(), EngineError> {
        self.engine.alloc_vpid(id, pid, Requested::Vpid(vpid))?;
        // A classification made before the request no longer holds.
        if self.known.get(&pid).is_some_and(|k| k.vps.is_none()) {
            self.known.remove(&pid);
        }
        Ok(())
    }

    /// `vprocfs exec`: process `pid` enters VPS `id` (as a task entered a VE in the
    /// seed's world). A tree VPS admits it, and so its later descendants; a cgroup VPS
    /// moves it into the cgroup; a pid-namespace VPS cannot take a process in from
    /// outside, so the answer names a member whose namespace the caller joins (its
    /// children are then members). Returns that member for a pid-namespace VPS.
    pub fn enter(&mut self, id: VpsId, pid: Pid) -> Result<Option<Pid>, String> {
        let meta = self.meta.get(&id).cloned().ok_or("no such VPS")?;
        match self.engine.vps_of(pid) {
            Some(v) if v != id => return Err(format!("process {pid} belongs to another VPS")),
            Some(_) if !matches!(meta.source, Source::Pidns { .. }) => return Ok(None),
            _ => {}
        }
        match meta.source {
            Source::Pidns { .. } => {
                let init = self
                    .engine
                    .vps(id)
                    .map(|v| v.init_pid())
                    .ok_or("no such VPS")?;
                Ok(Some(init))
            }
            Source::Cgroup { .. } => {
                let cg = meta.cgroup.ok_or("the VPS has no cgroup")?;
                std::fs::write(cg.dir.join("cgroup.procs"), pid.to_string())
                    .map_err(|e| format!("cannot move {pid} into {}: {e}", cg.dir.display()))?;
                self.forget(pid);
                self.refresh_cgroups();
                Ok(None)
            }
            Source::Tree { .. } => {
                let info =
                    host::read_task(pid).map_err(|e| format!("cannot read process {pid}: {e}"))?;
                if info.tid != info.tgid {
                    return Err(format!("{pid} is a thread"));
                }
                self.forget(pid);
                if self.admit(id, &info) {
                    Ok(None)
                } else {
                    Err(format!("process {pid} cannot join the VPS"))
                }
            }
        }
    }

    /// `classify_hits=N classify_misses=N known=N numbers=N`: how often the cache of known
    /// tasks answered, how many tasks it holds, and how many real numbers the VPSes hold
    /// (tasks, groups and sessions): what a soak watches for leaks.
    pub fn counters(&self) -> String {
        let numbers: usize = self
            .meta
            .keys()
            .filter_map(|&id| self.engine.vps(id))
            .map(|v| v.numbers_in_use())
            .sum();
        format!(
            "classify_hits={} classify_misses={} known={} numbers={numbers}",
            self.cache_hits,
            self.cache_misses,
            self.known.len()
        )
    }

    /// Real task ids of every member of VPS `id`.
    pub fn members(&self, id: VpsId) -> Vec<Pid> {
        self.engine
            .vps(id)
            .map(|v| v.tids().collect())
            .unwrap_or_default()
    }

    /// The recorded start time of a classified task.
    pub fn start_of(&self, tid: Pid) -> Option<u64> {
        self.known.get(&tid).map(|k| k.start)
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
fn pair_confirmed(info: &TaskInfo, number: Pid, level: usize) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid as NixPid;
    use std::process::{Child, Command};
    use std::time::Duration;

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep")
    }

    fn pid_of(c: &Child) -> Pid {
        c.id() as Pid
    }

    /// Polls `f` every 5 ms until it holds or `limit` passes.
    fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    /// Kills `c` and waits until it is a zombie: exited, not reaped.
    fn make_zombie(c: &mut Child) {
        c.kill().unwrap();
        let pid = pid_of(c);
        assert!(
            within(Duration::from_secs(5), || {
                host::start_and_state(pid).is_ok_and(|(_, s)| s == b'Z')
            }),
            "{pid} did not become a zombie"
        );
    }

    /// A tree VPS of a `sleep` (its init), and a second `sleep` admitted to it as the
    /// connector would (a fork event naming the init as parent).
    fn vps_with_member() -> (Tracker, VpsId, Child, Child) {
        let init = sleeper();
        let member = sleeper();
        let mut t = Tracker::new();
        let id = t
            .add_vps(
                "t",
                Source::Tree {
                    init: pid_of(&init),
                },
                VpsConfig::default(),
                false,
            )
            .unwrap();
        let (p, c) = (pid_of(&init), pid_of(&member));
        t.on_event(&ProcEvent::Fork {
            parent_pid: p,
            parent_tgid: p,
            child_pid: c,
            child_tgid: c,
        });
        assert!(t.members(id).contains(&c), "the member was admitted");
        assert!(t.vps(id).unwrap().vpid_of(c).is_some());
        (t, id, init, member)
    }

    fn numbered(t: &Tracker, id: VpsId, pid: Pid) -> bool {
        t.members(id).contains(&pid) || t.vps(id).unwrap().vpid_of(pid).is_some()
    }

    fn exit_event(pid: Pid) -> ProcEvent {
        ProcEvent::Exit {
            pid,
            tgid: pid,
            exit_code: 9,
            exit_signal: 17,
            parent_pid: 0,
            parent_tgid: 0,
        }
    }

    /// The soak's bug: a member exits (its event comes while it is a zombie) and is
    /// reaped, and events keep coming, as they do on a busy host since the connector
    /// reports every process of the machine. The daemon reaped only when no event had
    /// come for 500 ms, so the member kept its vpid for as long as the host was busy.
    #[test]
    fn a_reaped_member_is_released_while_events_keep_coming() {
        let (mut t, id, mut init, mut member) = vps_with_member();
        let pid = pid_of(&member);
        make_zombie(&mut member);
        t.on_event(&exit_event(pid));
        assert!(numbered(&t, id, pid), "a zombie is still a member");
        member.wait().unwrap();
        // Unrelated events, never a pause: no idle-time reap can run.
        let released = within(Duration::from_secs(3), || {
            t.on_event(&ProcEvent::Other { what: 0x1234 });
            !numbered(&t, id, pid)
        });
        init.kill().unwrap();
        init.wait().unwrap();
        assert!(released, "the reaped member {pid} keeps its vpid");
    }

    /// A reaped member is reported once, with the numbers readers knew it by, so that
    /// the view can have the kernel drop its entries; nothing is kept unless asked for.
    #[test]
    fn released_members_are_reported_once_when_asked_for() {
        let (mut t, id, mut init, mut member) = vps_with_member();
        let pid = pid_of(&member);
        let vpid = t.vps(id).unwrap().vpid_of(pid);
        let start = t.start_of(pid).unwrap();
        t.keep_released();
        make_zombie(&mut member);
        t.on_event(&exit_event(pid));
        assert_eq!(t.take_released(), vec![], "a zombie is not released");
        member.wait().unwrap();
        t.reap();
        let released = t.take_released();
        let second = t.take_released();
        init.kill().unwrap();
        init.wait().unwrap();
        assert_eq!(
            released,
            vec![Released {
                tid: pid,
                start,
                tgid: pid,
                leader_start: Some(start),
                vpid,
            }]
        );
        assert_eq!(second, vec![]);
        let (mut t, _, mut init, mut member) = vps_with_member();
        let pid = pid_of(&member);
        member.kill().unwrap();
        member.wait().unwrap();
        t.on_event(&exit_event(pid));
        t.reap();
        init.kill().unwrap();
        init.wait().unwrap();
        assert_eq!(t.take_released(), vec![], "kept only when asked for");
    }

    /// A host zombie's exit event may already have been applied when it is first read:
    /// remembering its verdict would judge the next process to get its pid, so it is not
    /// remembered (a VPS's brand-new `ps` with a reused pid then read the host's view).
    #[test]
    fn a_host_zombie_is_not_remembered() {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = pid_of(&child);
        // Not reaped yet: a zombie once it has exited.
        assert!(within(Duration::from_secs(5), || host::read_task(pid)
            .map(|i| i.state == b'Z')
            .unwrap_or(false)));
        let mut t = Tracker::new();
        assert_eq!(t.vps_of(pid), None, "a host task");
        let remembered = t.known.contains_key(&pid);
        child.wait().unwrap();
        assert!(!remembered, "the zombie {pid} was not remembered");
        // A live host task is remembered.
        let me = std::process::id() as Pid;
        assert_eq!(t.vps_of(me), None);
        assert!(t.known.contains_key(&me), "a live host task is remembered");
    }

    /// When events are lost, a host task's exit and the fork of a VPS process that got its
    /// pid may both be among them: the rescan must judge the new process, not keep the
    /// old one's verdict (a brand-new `ps` in the VPS then read the host's view).
    #[test]
    fn a_rescan_judges_a_reused_host_pid_again() {
        // The VPS's init, with a child: a member by ancestry.
        let mut init = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("spawn sh");
        let init_pid = pid_of(&init);
        let children = format!("/proc/{init_pid}/task/{init_pid}/children");
        let mut child = None;
        assert!(within(Duration::from_secs(5), || {
            child = std::fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse::<Pid>().ok());
            child.is_some()
        }));
        let child = child.unwrap();
        let mut t = Tracker::new();
        let id = t
            .add_vps(
                "t",
                Source::Tree { init: init_pid },
                VpsConfig::default(),
                false,
            )
            .unwrap();
        assert_eq!(t.vps_of(child), Some(id), "the child is a member");
        // What lost events leave behind: the pid known as a host task, started earlier.
        t.forget(child);
        let start = host::start_time(child).unwrap();
        t.remember(child, start - 1, None);
        assert_eq!(
            t.vps_of(child),
            None,
            "the stale verdict, before the rescan"
        );
        t.rescan();
        let judged = t.vps_of(child);
        let _ = kill(NixPid::from_raw(child), Signal::SIGKILL);
        init.kill().unwrap();
        init.wait().unwrap();
        assert_eq!(judged, Some(id), "the rescan judged pid {child} again");
    }

    /// When events are lost, the rescan may find a member as a zombie whose exit event
    /// was among them: it is exited, and released once it is reaped.
    #[test]
    fn a_zombie_found_by_a_rescan_is_released_once_reaped() {
        let (mut t, id, mut init, mut member) = vps_with_member();
        let pid = pid_of(&member);
        make_zombie(&mut member);
        t.rescan(); // the exit event was lost
        assert!(numbered(&t, id, pid), "a zombie is still a member");
        member.wait().unwrap();
        t.reap();
        let released = !numbered(&t, id, pid);
        init.kill().unwrap();
        init.wait().unwrap();
        assert!(released, "the reaped member {pid} keeps its vpid");
    }

    /// The audit releases a member that is gone however its end was missed, and a member
    /// whose pid names another process now; a live member and a zombie stay.
    #[test]
    fn the_audit_releases_members_that_are_gone() {
        let (mut t, id, mut init, mut member) = vps_with_member();
        let pid = pid_of(&member);
        let mut other = sleeper();
        let other_pid = pid_of(&other);
        t.on_event(&ProcEvent::Fork {
            parent_pid: pid_of(&init),
            parent_tgid: pid_of(&init),
            child_pid: other_pid,
            child_tgid: other_pid,
        });
        assert!(numbered(&t, id, other_pid));
        make_zombie(&mut member);
        t.audit();
        assert!(numbered(&t, id, pid), "a zombie is still a member");
        // Its record is lost (no exit event, no entry), then it is reaped.
        t.known.remove(&pid);
        member.wait().unwrap();
        // The other member's pid now seems to name a different process.
        t.known.get_mut(&other_pid).unwrap().start += 1;
        t.audit();
        let (gone, reused) = (!numbered(&t, id, pid), !numbered(&t, id, other_pid));
        let init_stays = numbered(&t, id, pid_of(&init));
        for c in [&mut init, &mut other] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert!(gone, "the untracked, reaped member {pid} keeps its vpid");
        assert!(
            reused,
            "member {other_pid} of another start time keeps its vpid"
        );
        assert!(init_stays, "the live init stays");
    }
}
