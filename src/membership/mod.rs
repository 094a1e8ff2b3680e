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
mod classify;
mod follow;
mod nested;

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
    /// The process named for a pid-namespace VPS is in the daemon's own namespace.
    #[error(
        "process {0} is in vprocfs's own pid namespace: a pidns VPS needs a process of a \
         namespace below it (for its process tree, use tree={0})"
    )]
    OwnNamespace(Pid),
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
    /// That namespace, held open while the VPS is: nsfs hands a freed namespace's
    /// inode number to the next namespace made, so without it a container started
    /// after this one's end could be taken for it.
    pub ns_held: Option<std::sync::Arc<std::fs::File>>,
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
    /// Whether this task's own fork event was applied: another fork event of its number
    /// is then, for certain, of a later task ([`Tracker::on_event`]).
    announced: bool,
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
    /// Members' children gone before the daemon could read them, and their VPS: a fork
    /// event of theirs that follows (a subshell's command, run in the background) is a
    /// member's too, though no one knows them. Until their number is taken again (its
    /// fork event comes before any fork of the new task's), bounded by [`VANISHED_MAX`].
    vanished: FxHashMap<Pid, VpsId>,
    /// Tasks each VPS has had since membership met it: the members found then, and
    /// every fork of a member since (threads too, and children gone before they could
    /// be read), as the kernel's `total_forks` (`processes` in `/proc/stat`) counts.
    forks: FxHashMap<VpsId, u64>,
    /// The last number handed out in each pid namespace nested in a VPS, by the
    /// namespace's inode, with the VPS ([`nested`]).
    nested_last: FxHashMap<u64, (VpsId, Pid)>,
    /// The `pid_max` written in a nested namespace, by its inode, with the VPS
    /// ([`nested`]); a namespace not here has the kernel's default.
    nested_pid_max: FxHashMap<u64, (VpsId, Pid)>,
}

/// At most this many members gone unread are remembered ([`Tracker::vanished`]).
const VANISHED_MAX: usize = 4096;

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

    /// Whether VPS `id` keeps a `pid_max` of its own, which its readers are shown and
    /// its writers set: one with a kernel pid namespace, and, where the kernel keeps
    /// one per namespace (`per_ns`, Linux 6.14 on), one without whose vpids are dense
    /// as a namespace's (`--numbering ns`): its engine wraps there, as a namespace's
    /// numbers do at its own. Any other VPS without a namespace sees the host's.
    pub fn own_pid_max(&self, id: VpsId, per_ns: bool) -> bool {
        let own_ns = self.meta(id).is_some_and(|m| m.ns_inode.is_some());
        let dense = self
            .vps(id)
            .is_some_and(|v| v.config().numbering == crate::engine::Numbering::Ns);
        own_ns || (per_ns && dense)
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
        self.restore_vps(name, source, config, ns_numbers, &[], None)
    }

    /// [`Tracker::add_vps`], first giving each task of `saved` that is still the same
    /// process (same start time) the vpid it had, and then setting the last vpid handed
    /// out to `last_vpid`, so that the newcomers the scan finds are numbered after it (a
    /// restarted daemon's state).
    pub fn restore_vps(
        &mut self,
        name: &str,
        source: Source,
        config: VpsConfig,
        ns_numbers: bool,
        saved: &[crate::state::SavedMapping],
        last_vpid: Option<crate::engine::Vpid>,
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
            ns_held: None,
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
                let held = std::fs::File::open(host::proc_path(&format!("{of}/ns/pid")))
                    .map_err(|err| MembershipError::NoProcess { pid: of, err })?;
                let ns = std::os::unix::fs::MetadataExt::ino(
                    &held
                        .metadata()
                        .map_err(|err| MembershipError::NoProcess { pid: of, err })?,
                );
                if host::own_ns_inode("pid").is_ok_and(|own| own == ns) {
                    return Err(MembershipError::OwnNamespace(of));
                }
                let level = info.nspid.len().saturating_sub(1);
                let init = self
                    .find_ns_init(ns, level)
                    .ok_or(MembershipError::NoNamespaceInit(of))?;
                let meta = VpsMeta {
                    source: source.clone(),
                    ns_inode: Some(ns),
                    ns_held: Some(std::sync::Arc::new(held)),
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
        if let Some(last) = last_vpid {
            self.set_last_vpid(id, last);
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
        let found = self.engine.vps(id).map_or(1, |v| v.tasks_num());
        self.forks
            .insert(id, u64::try_from(found).unwrap_or(u64::MAX));
        Ok(id)
    }

    /// The tasks VPS `id` has had ([`Tracker::forks`]'s count): what `/proc/stat`'s
    /// `processes` shows, where the process events are followed.
    pub fn forks(&self, id: VpsId) -> Option<u64> {
        self.forks.get(&id).copied()
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

    /// Records how task `tid`, started at `start`, was classified.
    fn remember(&mut self, tid: Pid, start: u64, vps: Option<VpsId>) {
        self.known.insert(
            tid,
            Known {
                start,
                vps,
                announced: false,
            },
        );
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

    /// Whether task `tid`, started at `start`, is a member that the events applied so
    /// far show alive: known, and no exit seen. Not proof that it lives: the kernel
    /// sends the exit event after the parent may have reaped the task.
    pub fn known_alive(&self, tid: Pid, start: u64) -> bool {
        self.known
            .get(&tid)
            .is_some_and(|k| k.vps.is_some() && k.start == start)
            && !self.exited.contains(&tid)
    }

    /// Whether member `tid` has exited (a zombie, or reaped and not looked at since).
    pub fn has_exited(&self, tid: Pid) -> bool {
        self.exited.contains(&tid)
    }

    /// Removes VPS `id`: its members are no longer anyone's.
    pub fn remove_vps(&mut self, id: VpsId) -> Result<(), EngineError> {
        self.engine.remove_vps(id)?;
        self.meta.remove(&id);
        self.forks.remove(&id);
        self.nested_last.retain(|_, (v, _)| *v != id);
        self.nested_pid_max.retain(|_, (v, _)| *v != id);
        self.known.retain(|_, k| k.vps != Some(id));
        Ok(())
    }

    /// A write of `ns_last_pid` in VPS `id`: the last vpid handed out is `vpid`.
    pub fn set_last_vpid(&mut self, id: VpsId, vpid: crate::engine::Vpid) {
        if let Err(e) = self.engine.set_last_vpid(id, vpid) {
            log::debug!("cannot set the last vpid of VPS {id}: {e}");
        }
    }

    /// A write of `pid_max` in the pid namespace of VPS `id`.
    pub fn set_pid_max(&mut self, id: VpsId, pid_max: crate::engine::Vpid) {
        if let Err(e) = self.engine.set_pid_max(id, pid_max) {
            log::debug!("cannot set the pid_max of VPS {id}: {e}");
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

    /// A pid that names no process now: a child's, reaped.
    fn gone_pid() -> Pid {
        let mut c = Command::new("true").spawn().expect("spawn true");
        c.wait().unwrap();
        pid_of(&c)
    }

    /// A tree VPS of dense numbers (`ns`) whose init is a `sleep` of its own.
    fn dense_vps() -> (Tracker, VpsId, Child) {
        let init = sleeper();
        let mut t = Tracker::new();
        let config = VpsConfig {
            numbering: crate::engine::Numbering::Ns,
            ..VpsConfig::default()
        };
        let source = Source::Tree {
            init: pid_of(&init),
        };
        let id = t.add_vps("t", source, config, false).unwrap();
        (t, id, init)
    }

    /// The connector's event of `parent` forking `child`.
    fn fork_event(parent: Pid, child: Pid) -> ProcEvent {
        ProcEvent::Fork {
            parent_pid: parent,
            parent_tgid: parent,
            child_pid: child,
            child_tgid: child,
        }
    }

    /// A shell's subshell forks a command and exits before the daemon reads either:
    /// both took numbers in the kernel (dense numbering gives the next process the one
    /// after them), and the command's fork event names a parent no one knew.
    #[test]
    fn children_gone_before_they_were_read_take_their_numbers() {
        let (mut t, id, mut init) = dense_vps();
        let p = pid_of(&init);
        let (subshell, command) = (gone_pid(), gone_pid());
        t.on_event(&fork_event(p, subshell));
        t.on_event(&fork_event(subshell, command));
        let last = t.vps(id).unwrap().last_vpid();
        assert_eq!(last, 3, "1 init, 2 and 3 the gone ones");
        let mut member = sleeper();
        let m = pid_of(&member);
        t.on_event(&fork_event(p, m));
        assert_eq!(t.vps(id).unwrap().vpid_of(m), Some(4));
        for c in [&mut member, &mut init] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// A member's child gone unread whose number a host process had before, still on
    /// record (its exit not applied): the child took its number all the same.
    #[test]
    fn a_record_of_an_earlier_task_does_not_number_a_child_gone_unread() {
        let (mut t, id, mut init) = dense_vps();
        let mut host = sleeper();
        let h = pid_of(&host);
        t.rescan();
        let on_record = t.known.get(&h).is_some_and(|k| k.vps.is_none());
        assert!(on_record, "a host process");
        host.kill().unwrap();
        host.wait().unwrap();
        assert_eq!(t.vps(id).unwrap().last_vpid(), 1, "before: init only");
        t.on_event(&fork_event(pid_of(&init), h));
        assert_eq!(t.vps(id).unwrap().last_vpid(), 2, "the gone child's number");
        init.kill().unwrap();
        init.wait().unwrap();
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

    /// The race test's bug: a member dies, its number goes to a process of no VPS within
    /// the same clock tick (same start time), and its exit event is not applied yet. The
    /// newcomer's fork event is proof enough that the member is gone: the view must not
    /// show the newcomer under the member's vpid.
    #[test]
    fn a_second_fork_event_of_a_number_releases_its_earlier_task() {
        let (mut t, id, mut init, mut member) = vps_with_member();
        t.keep_released();
        let c = pid_of(&member);
        let start = t.start_of(c).unwrap();
        let host = Pid::try_from(std::process::id()).unwrap();
        t.on_event(&ProcEvent::Fork {
            parent_pid: host,
            parent_tgid: host,
            child_pid: c,
            child_tgid: c,
        });
        let released: Vec<Pid> = t.take_released().iter().map(|r| r.tid).collect();
        let reused = t.take_reused();
        let numbered_after = numbered(&t, id, c);
        for k in [&mut init, &mut member] {
            k.kill().unwrap();
            k.wait().unwrap();
        }
        assert!(!numbered_after, "the earlier task keeps its vpid");
        assert_eq!(released, [c]);
        assert_eq!(reused, [(c, start)]);
    }
}
