//! One VPS: its members' numbers, their vpids, and the seed's conversion functions.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::{
    EngineError, Numbering, Pid, PidType, Requested, Strays, TaskIds, Vpid, VpsConfig, VpsId,
    PID_MAX_LIMIT, RESERVED_PIDS,
};

/// Whether translation is the seed's "fast way" or its hash table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `vpid = pid + VPID_DIV`, init is 1: no table.
    Linear,
    /// A table maps every vpid of the VPS to its real number (`sparse_vpid(vps)`).
    Sparse,
}

/// One mapping: a real number of the VPS and its vpid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    /// The real number.
    pub pid: Pid,
    /// Its vpid.
    pub vpid: Vpid,
}

/// A real number in use by the VPS: the seed's `struct pid` with its `vnr`, and how many
/// members use it in each role (the seed's per-type `pid_list`s). The number keeps its
/// vpid while any count is non-zero, so an orphaned process group keeps its id; a number
/// with every count at zero exists only between [`Vps::alloc_vpid`] and the attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Number {
    vnr: Vpid,
    refs: [u32; 4],
}

impl Number {
    fn unused(&self) -> bool {
        self.refs == [0; 4]
    }
}

/// A thread group (process): what the seed keeps in `task->signal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Group {
    pgid: Pid,
    sid: Pid,
    /// Member threads of the group, the leader included while it is attached.
    threads: u32,
    /// Whether `pgid` / `sid` are numbers of this VPS (counted in `numbers`). A group
    /// whose group or session leader is outside the VPS (init's, typically) uses a
    /// foreign number, which translates to 0 and is not counted.
    pgid_own: bool,
    sid_own: bool,
}

/// One VPS and its translation state.
///
/// # Linear mode stays a bijection without the VPID bit
///
/// The seed tells a vpid from a real pid by `VPID_BIT`: its kernel never hands out a real
/// pid with that bit set (`alloc_pidmap` skips them), so `pid + VPID_DIV` always has it.
/// Linux hands such pids out (1500 has bit 10 set), and `1500 + 1024 = 2524` has bit 10
/// clear, so here the bit says nothing. The engine therefore never classifies a number by
/// its bits: a number a VPS reader gives is a vpid, a number the kernel gives is real,
/// and each call says which direction it goes. Linear translation is `init ↦ 1` and
/// `pid ↦ pid + VPID_DIV` for every other member number, which is injective because
/// `pid + VPID_DIV > VPID_DIV ≥ 1`. The inverse `v ↦ v − VPID_DIV` is accepted only when
/// that number is in use by the VPS and its recorded vpid is `v`, so vpids at or below
/// `VPID_DIV` (other than 1) and `init_pid + VPID_DIV` have no preimage. Each number's
/// vpid is recorded when it is allocated, in both modes, so the two directions always
/// agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vps {
    id: VpsId,
    name: String,
    init_pid: Pid,
    config: VpsConfig,
    mode: Mode,
    /// Every real number in use by a member, in any role.
    numbers: FxHashMap<Pid, Number>,
    /// Sparse mode only: vpid → real number (the seed's `vpid_hash`, keyed by
    /// `(vpid, vpsid)` there; one table per VPS here, which is the same key).
    vpid_hash: FxHashMap<Vpid, Pid>,
    /// Member tasks (threads): tid → tgid.
    tasks: FxHashMap<Pid, Pid>,
    /// Member thread groups by tgid.
    groups: FxHashMap<Pid, Group>,
    /// The last vpid handed out by any allocation (the seed keeps `last_pid`).
    last_vpid: Vpid,
    /// The `ns` policy's cursor: the last vpid it handed out automatically.
    ns_cursor: Vpid,
    /// Counts the changes to the set of thread groups (one joins, the last task of one
    /// leaves, a thread takes its group over by `execve`): a list of the VPS's
    /// processes taken at one count still holds while the count is the same.
    groups_changed: u64,
    /// The numbers freed last, with the vpid each had: what a kernel object that holds
    /// a dead task's `struct pid` still shows ([`Vps::kept_vpid`]).
    kept: Kept,
}

/// How many freed numbers a VPS remembers ([`Vps::kept_vpid`]).
pub const KEPT_FREED: usize = 4096;

/// The last [`KEPT_FREED`] numbers freed, each with the vpid it had, oldest forgotten
/// first. A number handed out again is forgotten at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Kept {
    /// Real number → (its vpid, the serial of its freeing).
    vpids: FxHashMap<Pid, (Vpid, u64)>,
    /// Freeings in order; an entry whose serial is no longer its number's is stale.
    order: VecDeque<(Pid, u64)>,
    serial: u64,
}

impl Kept {
    fn remember(&mut self, pid: Pid, vpid: Vpid) {
        self.serial += 1;
        self.vpids.insert(pid, (vpid, self.serial));
        self.order.push_back((pid, self.serial));
        // Every number remembered has its entry in `order`, so this ends.
        while self.vpids.len() > KEPT_FREED {
            let Some((p, s)) = self.order.pop_front() else {
                break;
            };
            if self.vpids.get(&p).is_some_and(|&(_, at)| at == s) {
                self.vpids.remove(&p);
            }
        }
        if self.order.len() > 2 * KEPT_FREED {
            let vpids = &self.vpids;
            self.order
                .retain(|(p, s)| vpids.get(p).is_some_and(|&(_, at)| at == *s));
        }
    }

    fn forget(&mut self, pid: Pid) {
        self.vpids.remove(&pid);
    }
}

impl Vps {
    /// Creates a VPS whose init is `init` (vpid 1). The seed's VPS creation followed by
    /// `alloc_vpid(init_pid, 1)`.
    pub fn new(
        id: VpsId,
        name: impl Into<String>,
        init: TaskIds,
        config: VpsConfig,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        if init.pid != init.tgid {
            return Err(EngineError::InvalidPid(init.pid));
        }
        let mut vps = Vps {
            id,
            name: name.into(),
            init_pid: init.pid,
            config,
            mode: Mode::Linear,
            numbers: FxHashMap::default(),
            vpid_hash: FxHashMap::default(),
            tasks: FxHashMap::default(),
            groups: FxHashMap::default(),
            last_vpid: 0,
            ns_cursor: 0,
            groups_changed: 0,
            kept: Kept::default(),
        };
        if config.numbering != Numbering::Linear {
            vps.mode = Mode::Sparse;
        }
        vps.fork(init, Requested::Vpid(1))?;
        if config.numbering == Numbering::Ns {
            vps.ns_cursor = 1;
        }
        Ok(vps)
    }

    /// The VPS's id (`vps->id`).
    pub fn id(&self) -> VpsId {
        self.id
    }

    /// The VPS's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Real pid of the init task (`vps->init_task->pid`).
    pub fn init_pid(&self) -> Pid {
        self.init_pid
    }

    /// The settings the VPS was made with.
    pub fn config(&self) -> &VpsConfig {
        &self.config
    }

    /// `VPID_DIV = 1 << VPID_BIT`.
    pub fn vpid_div(&self) -> i32 {
        1 << self.config.vpid_bit
    }

    /// Linear or sparse (`sparse_vpid(vps)`).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Member tasks, threads included (`get_vps_tasks_num`).
    pub fn tasks_num(&self) -> usize {
        self.tasks.len()
    }

    /// Whether `tid` is a member task.
    pub fn has_task(&self, tid: Pid) -> bool {
        self.tasks.contains_key(&tid)
    }

    /// The thread group of member task `tid`.
    pub fn tgid_of(&self, tid: Pid) -> Option<Pid> {
        self.tasks.get(&tid).copied()
    }

    /// Member thread-group ids, in no particular order.
    pub fn tgids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.groups.keys().copied()
    }

    /// How many times the set of thread groups has changed ([`Vps::tgids`]): equal
    /// counts, the same groups.
    pub fn groups_changed(&self) -> u64 {
        self.groups_changed
    }

    /// Member task ids, in no particular order.
    pub fn tids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.tasks.keys().copied()
    }

    /// How many member threads thread group `tgid` has recorded, its leader included
    /// while attached (0 for no such group).
    pub fn threads_of(&self, tgid: Pid) -> usize {
        self.groups.get(&tgid).map_or(0, |g| g.threads as usize)
    }

    /// The recorded (pgid, sid) of member thread group `tgid`.
    pub fn group_ids(&self, tgid: Pid) -> Option<(Pid, Pid)> {
        self.groups.get(&tgid).map(|g| (g.pgid, g.sid))
    }

    /// Number of sparse mapping entries (0 in linear mode).
    pub fn sparse_entries(&self) -> usize {
        self.vpid_hash.len()
    }

    /// Number of real numbers that carry a vpid.
    pub fn numbers_in_use(&self) -> usize {
        self.numbers.len()
    }

    /// Number of freed numbers remembered ([`Vps::kept_vpid`]), at most [`KEPT_FREED`].
    pub fn kept_numbers(&self) -> usize {
        self.kept.vpids.len()
    }

    /// The last vpid handed out. The seed stores it into the kernel's `last_pid` to steer
    /// the next real allocation away from collisions; a user-space daemon cannot steer
    /// the kernel, so the view shows it where the kernel shows the namespace's last pid
    /// (`ns_last_pid`, the last field of `loadavg`).
    pub fn last_vpid(&self) -> Vpid {
        self.last_vpid
    }

    /// Sets the last vpid handed out, as a write of the kernel's `ns_last_pid` sets the
    /// last pid: the `ns` policy hands out the next free number after it (the seed's
    /// restore path steers `last_pid` so); the other policies number from the real pid
    /// and only show it.
    pub fn set_last_vpid(&mut self, vpid: Vpid) {
        self.last_vpid = vpid;
        self.ns_cursor = vpid;
    }

    /// Sets `pid_max`, as a write of the kernel's sets it in a pid namespace: where dense
    /// numbering wraps, and what the view shows. Refused out of its range
    /// ([`VpsConfig::validate`]), leaving it as it was.
    pub fn set_pid_max(&mut self, pid_max: Vpid) -> Result<(), EngineError> {
        let config = VpsConfig {
            pid_max,
            ..self.config
        };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Passes over the next number of the `ns` policy, for task `pid` that took it in
    /// the kernel and was gone before it could be numbered here (reaped before its fork
    /// was reported): the numbers after it then stay those of a kernel pid namespace,
    /// which handed that one out. With `kernel_numbers` (each vpid is the task's number
    /// in its pid namespace) the namespace gave that task the next free number after
    /// the last, which becomes the last vpid shown. The other policies number from the
    /// real pid. Either way the vpid the task had is kept for the objects that may still
    /// name it ([`Vps::kept_vpid`]: a thread that set a timer and ended).
    pub fn pass_over_vpid(&mut self, pid: Pid, kernel_numbers: bool) {
        let had = if kernel_numbers {
            let v = self.next_free_after(self.last_vpid).ok();
            if let Some(v) = v {
                self.last_vpid = v;
            }
            v
        } else if self.config.numbering == Numbering::Ns {
            let v = self.dense_next().ok();
            if let Some(v) = v {
                self.ns_cursor = v;
                self.last_vpid = v;
            }
            v
        } else {
            let linear = pid.checked_add(self.vpid_div());
            linear.filter(|v| !self.vpid_hash.contains_key(v))
        };
        if let Some(v) = had.filter(|_| !self.numbers.contains_key(&pid)) {
            self.kept.remember(pid, v);
        }
    }

    /// Every (real number, vpid) pair, sorted by real number.
    pub fn mappings(&self) -> Vec<Mapping> {
        let mut all: Vec<Mapping> = self
            .numbers
            .iter()
            .map(|(&pid, n)| Mapping { pid, vpid: n.vnr })
            .collect();
        all.sort_unstable();
        all
    }

    // ----- translation ------------------------------------------------------------

    /// The vpid of real number `pid`, whatever role it is used in: `pid->vnr`, which is
    /// what the kernel's `pid_nr_ns` answers for any `struct pid`.
    #[inline]
    pub fn vpid_of(&self, pid: Pid) -> Option<Vpid> {
        self.numbers.get(&pid).map(|n| n.vnr)
    }

    /// The vpid that a kernel object holding the `struct pid` of number `pid` shows:
    /// the number's own while a member uses it, else the one it had when it was last
    /// freed. The kernel frees a number with its last user, but an object that took a
    /// reference to its `struct pid` goes on naming it (`pid_nr_ns` answers from the
    /// struct): a terminal's foreground group that lost its last member (`tpgid`), the
    /// creator and last users of a System V shared memory segment or message queue.
    /// One way only: a freed number's vpid is no mapping (no vpid lookup finds it, a new
    /// task may take it), and a number handed out again is forgotten; the last
    /// [`KEPT_FREED`] freed numbers are remembered.
    #[inline]
    pub fn kept_vpid(&self, pid: Pid) -> Option<Vpid> {
        self.vpid_of(pid)
            .or_else(|| self.kept.vpids.get(&pid).map(|&(v, _)| v))
    }

    /// The seed's `__pid_type_to_vpid`: the vpid of `pid` if a member uses it in role
    /// `ty`, else `None` (the seed's -1).
    #[inline]
    pub fn pid_type_to_vpid(&self, ty: PidType, pid: Pid) -> Option<Vpid> {
        match self.numbers.get(&pid) {
            Some(n) if n.refs[ty as usize] > 0 => Some(n.vnr),
            _ => None,
        }
    }

    /// The seed's `pid_type_to_vpid`: numbers ≤ 0 are returned as they are; a number with
    /// no vpid in role `ty` is 0 ([`Strays::Isolate`]) or itself ([`Strays::PassThrough`]).
    #[inline]
    pub fn translate(&self, ty: PidType, pid: Pid, strays: Strays) -> Pid {
        if pid <= 0 {
            return pid;
        }
        match self.pid_type_to_vpid(ty, pid) {
            Some(v) => v,
            None => match strays {
                Strays::Isolate => 0,
                Strays::PassThrough => pid,
            },
        }
    }

    /// The seed's `__vpid_to_pid`: the real number of `vpid`, `None` (the seed's -1) when
    /// the VPS has no such vpid. Linear: 1 → init, `v → v − VPID_DIV`; sparse: the table.
    #[inline]
    pub fn vpid_to_pid(&self, vpid: Vpid) -> Option<Pid> {
        if vpid <= 0 {
            return None;
        }
        match self.mode {
            Mode::Sparse => self.vpid_hash.get(&vpid).copied(),
            Mode::Linear => {
                let pid = if vpid == 1 {
                    self.init_pid
                } else {
                    vpid.checked_sub(self.vpid_div())?
                };
                match self.numbers.get(&pid) {
                    Some(n) if n.vnr == vpid => Some(pid),
                    _ => None,
                }
            }
        }
    }

    /// The seed's `comb_pid_to_vpid`: a positive number is a task, a negative one a
    /// process group (as in `kill(-pgrp)`), 0 stays 0. With [`Strays::Isolate`] an
    /// unmapped number gives 0, as in the seed when the lookup fails.
    pub fn comb_pid_to_vpid(&self, pid: i32, strays: Strays) -> i32 {
        if pid > 0 {
            self.translate(PidType::Pid, pid, strays)
        } else if pid < 0 {
            match pid.checked_neg() {
                Some(p) => -self.translate(PidType::Pgid, p, strays),
                None => 0,
            }
        } else {
            0
        }
    }

    /// The seed's `comb_vpid_to_pid`: a positive vpid is a task, a negative one a process
    /// group. Where the seed answers 0 for an unknown vpid (which `kill` would read as
    /// "my own group"), this answers `None`; `Some(0)` only for 0.
    pub fn comb_vpid_to_pid(&self, vpid: i32) -> Option<i32> {
        if vpid > 0 {
            self.vpid_to_pid(vpid)
        } else if vpid < 0 {
            self.vpid_to_pid(vpid.checked_neg()?).map(|p| -p)
        } else {
            Some(0)
        }
    }

    /// The seed's `get_task_ppid`: 0 for init (and any task whose vpid is not above 1),
    /// else the vpid of its parent `parent_tgid`, 0 when the parent is outside the VPS.
    pub fn get_task_ppid(&self, pid: Pid, parent_tgid: Pid) -> Vpid {
        match self.vpid_of(pid) {
            Some(v) if v > 1 => self.translate(PidType::Tgid, parent_tgid, Strays::Isolate),
            _ => 0,
        }
    }

    // ----- allocation -------------------------------------------------------------

    /// The seed's `alloc_vpid(pid, vpid)`: gives real number `pid` a vpid.
    ///
    /// - [`Requested::Auto`] in linear mode is `pid + VPID_DIV`.
    /// - A request of 1 for init, or of `pid + VPID_DIV`, stays linear.
    /// - Any other request first switches the VPS to sparse mode
    ///   ([`Vps::switch_to_sparse_mapping`]); if that fails, or the request itself is
    ///   then refused (taken, or no room left for its own entry), the VPS stays linear
    ///   and unchanged. (The seed switches first and stays sparse after such a refusal;
    ///   here a failed call changes nothing, as every engine operation.)
    /// - In sparse mode a requested vpid that is taken fails with
    ///   [`EngineError::VpidTaken`] (`-EEXIST`); an automatic one that collides is found
    ///   by the seed's linear probe ([`Numbering::Ns`] uses dense numbers instead).
    ///
    /// The number holds its vpid, with no member using it yet, until a task is attached
    /// ([`Vps::attach`]) or [`Vps::free_vpid`] releases it. [`Vps::fork`] does both steps.
    pub fn alloc_vpid(&mut self, pid: Pid, requested: Requested) -> Result<Vpid, EngineError> {
        if !(1..=PID_MAX_LIMIT).contains(&pid) {
            return Err(EngineError::InvalidPid(pid));
        }
        if let Requested::Vpid(v) = requested {
            if v <= 0 {
                return Err(EngineError::InvalidVpid(v));
            }
        }
        if self.numbers.contains_key(&pid) {
            return Err(EngineError::PidInUse(pid));
        }
        let linear = pid + self.vpid_div();
        if self.mode == Mode::Linear {
            match requested {
                Requested::Auto => return Ok(self.insert_number(pid, linear)),
                Requested::Vpid(1) if pid == self.init_pid => return Ok(self.insert_number(pid, 1)),
                Requested::Vpid(v) if v == linear => return Ok(self.insert_number(pid, v)),
                Requested::Vpid(v) => {
                    // Switch only once this allocation is sure to succeed, so that a
                    // refused request (EEXIST, or no room for its own entry) leaves
                    // the VPS linear and unchanged.
                    let table = self.sparse_table()?;
                    if table.len() >= self.config.max_mappings {
                        return Err(EngineError::OutOfMappings {
                            cap: self.config.max_mappings,
                        });
                    }
                    if table.contains_key(&v) {
                        return Err(EngineError::VpidTaken(v));
                    }
                    self.vpid_hash = table;
                    self.mode = Mode::Sparse;
                }
            }
        }
        if self.vpid_hash.len() >= self.config.max_mappings {
            return Err(EngineError::OutOfMappings {
                cap: self.config.max_mappings,
            });
        }
        let vpid = match requested {
            Requested::Vpid(v) if self.vpid_hash.contains_key(&v) => {
                return Err(EngineError::VpidTaken(v))
            }
            Requested::Vpid(v) => v,
            Requested::Auto if self.config.numbering == Numbering::Ns => {
                let v = self.dense_next()?;
                self.ns_cursor = v;
                v
            }
            Requested::Auto if !self.vpid_hash.contains_key(&linear) => linear,
            Requested::Auto => self.probe_from(linear)?,
        };
        self.vpid_hash.insert(vpid, pid);
        Ok(self.insert_number(pid, vpid))
    }

    /// Records `pid ↦ vpid` (and, in sparse mode, the caller has filled the table).
    fn insert_number(&mut self, pid: Pid, vpid: Vpid) -> Vpid {
        // The kernel gave the number to a new task: the old one it named can no longer
        // be told from it.
        self.kept.forget(pid);
        self.numbers.insert(
            pid,
            Number {
                vnr: vpid,
                refs: [0; 4],
            },
        );
        self.last_vpid = vpid;
        vpid
    }

    /// The seed's search "for some not-existing vpid" after a collision: step up, skip
    /// numbers without the VPID bit (`result += VPID_DIV`), wrap at `pid_max` to
    /// `RESERVED_PIDS + VPID_DIV`. Bounded: after `pid_max` steps every candidate has been
    /// seen, and the answer is [`EngineError::NoFreeVpid`] rather than the seed's hang.
    ///
    /// With `VPID_DIV >= pid_max` (the safe layout, [`super::safe_vpid_bit`]) every linear
    /// vpid is above `pid_max`, so the probe wraps at `pid_max + VPID_DIV` instead, the
    /// top of the linear range: wrapping at `pid_max` would only ever try one number.
    fn probe_from(&self, start: Vpid) -> Result<Vpid, EngineError> {
        let div = self.vpid_div();
        let pid_max = self.config.pid_max;
        let top = if div >= pid_max {
            pid_max.saturating_add(div)
        } else {
            pid_max
        };
        let mut result = start;
        for _ in 0..pid_max {
            result += 1;
            if result & div == 0 {
                result += div;
            }
            if result >= top {
                result = RESERVED_PIDS + div;
            }
            if !self.vpid_hash.contains_key(&result) {
                return Ok(result);
            }
        }
        Err(EngineError::NoFreeVpid(pid_max))
    }

    /// The kernel's `alloc_pid` in a pid namespace (`idr_alloc_cyclic`): the first free
    /// number after the cursor, below `pid_max`, wrapping to `RESERVED_PIDS` once the
    /// cursor has passed it (to 1 before).
    fn dense_next(&self) -> Result<Vpid, EngineError> {
        self.next_free_after(self.ns_cursor)
    }

    /// [`Vps::dense_next`] from cursor `cursor`.
    fn next_free_after(&self, cursor: Vpid) -> Result<Vpid, EngineError> {
        let pid_max = self.config.pid_max;
        let min = if cursor >= RESERVED_PIDS {
            RESERVED_PIDS
        } else {
            1
        };
        let start = (cursor + 1).max(min);
        let free = |v: &Vpid| !self.vpid_hash.contains_key(v);
        (start..pid_max)
            .find(free)
            .or_else(|| (min..start.min(pid_max)).find(free))
            .ok_or(EngineError::NoFreeVpid(pid_max))
    }

    /// The seed's `switch_to_sparse_mapping`: builds the vpid table for every number the
    /// members use (pid, tgid, pgid and sid alike), preallocating room for
    /// `get_vps_tasks_num()` entries first. If the cap on mappings is hit, or memory
    /// cannot be had, nothing is changed: the seed rolls back the entries it added; here
    /// the table is built aside and only installed once complete, which leaves the state
    /// exactly as before by construction.
    pub fn switch_to_sparse_mapping(&mut self) -> Result<(), EngineError> {
        if self.mode == Mode::Sparse {
            return Ok(());
        }
        self.vpid_hash = self.sparse_table()?;
        self.mode = Mode::Sparse;
        Ok(())
    }

    /// The table [`Vps::switch_to_sparse_mapping`] installs, built aside.
    fn sparse_table(&self) -> Result<FxHashMap<Vpid, Pid>, EngineError> {
        let cap = self.config.max_mappings;
        let oom = EngineError::OutOfMappings { cap };
        let tasks_num = self.tasks_num();
        if tasks_num > cap {
            return Err(oom);
        }
        let mut table: FxHashMap<Vpid, Pid> = FxHashMap::default();
        table.try_reserve(tasks_num).map_err(|_| oom.clone())?;
        for (&pid, n) in &self.numbers {
            if table.len() >= cap {
                return Err(oom);
            }
            if table.len() == table.capacity() {
                table.try_reserve(1).map_err(|_| oom.clone())?;
            }
            table.insert(n.vnr, pid);
        }
        Ok(table)
    }

    /// The seed's `free_vpid`: releases the vpid of a number that no member uses (one
    /// allocated with [`Vps::alloc_vpid`] and never attached). A number still in use
    /// keeps its vpid: it is freed when its last user goes ([`Vps::exit`]).
    pub fn free_vpid(&mut self, vpid: Vpid) -> Result<(), EngineError> {
        let pid = self
            .vpid_to_pid(vpid)
            .ok_or(EngineError::InvalidVpid(vpid))?;
        match self.numbers.get(&pid) {
            Some(n) if n.unused() => {
                self.drop_number(pid);
                Ok(())
            }
            Some(_) => Err(EngineError::PidInUse(pid)),
            None => Err(EngineError::InvalidVpid(vpid)),
        }
    }

    fn drop_number(&mut self, pid: Pid) {
        if let Some(n) = self.numbers.remove(&pid) {
            if self.mode == Mode::Sparse {
                self.vpid_hash.remove(&n.vnr);
            }
            self.kept.remember(pid, n.vnr);
        }
    }

    fn add_ref(&mut self, pid: Pid, ty: PidType) {
        if let Some(n) = self.numbers.get_mut(&pid) {
            n.refs[ty as usize] += 1;
        }
    }

    /// Drops one use; the seed's `detach_pid` → `__free_vpid` when it was the last.
    fn drop_ref(&mut self, pid: Pid, ty: PidType) {
        if let Some(n) = self.numbers.get_mut(&pid) {
            let r = &mut n.refs[ty as usize];
            *r = r.saturating_sub(1);
            if n.unused() {
                self.drop_number(pid);
            }
        }
    }

    // ----- task life ----------------------------------------------------------------

    /// A new member task: `alloc_vpid` for its pid, then attach (the seed's
    /// `copy_process`). A non-leader thread joins its group and shares its pgid/sid.
    /// On any error nothing is changed.
    pub fn fork(&mut self, ids: TaskIds, requested: Requested) -> Result<Vpid, EngineError> {
        self.check_attach(ids)?;
        let vpid = self.alloc_vpid(ids.pid, requested)?;
        self.attach(ids)?;
        Ok(vpid)
    }

    fn check_attach(&self, ids: TaskIds) -> Result<(), EngineError> {
        if self.tasks.contains_key(&ids.pid) {
            return Err(EngineError::TaskExists(ids.pid));
        }
        if ids.pid != ids.tgid && !self.groups.contains_key(&ids.tgid) {
            return Err(EngineError::NoSuchGroup(ids.tgid));
        }
        if ids.pid == ids.tgid && self.groups.contains_key(&ids.tgid) {
            // A leader whose number still names a live group: only the kernel's
            // exec-by-thread does that, through `switch_exec_pids`.
            return Err(EngineError::PidInUse(ids.pid));
        }
        Ok(())
    }

    /// Attaches a task whose pid number already has its vpid ([`Vps::alloc_vpid`]).
    /// Fails, changing nothing, when the number has no vpid or the task cannot join.
    pub fn attach(&mut self, ids: TaskIds) -> Result<(), EngineError> {
        self.check_attach(ids)?;
        if !self.numbers.contains_key(&ids.pid) {
            return Err(EngineError::NotAllocated(ids.pid));
        }
        self.tasks.insert(ids.pid, ids.tgid);
        self.add_ref(ids.pid, PidType::Pid);
        self.add_ref(ids.tgid, PidType::Tgid);
        if ids.pid == ids.tgid {
            let pgid_own = self.numbers.contains_key(&ids.pgid);
            let sid_own = self.numbers.contains_key(&ids.sid);
            if pgid_own {
                self.add_ref(ids.pgid, PidType::Pgid);
            }
            if sid_own {
                self.add_ref(ids.sid, PidType::Sid);
            }
            self.groups.insert(
                ids.tgid,
                Group {
                    pgid: ids.pgid,
                    sid: ids.sid,
                    threads: 1,
                    pgid_own,
                    sid_own,
                },
            );
            self.groups_changed += 1;
        } else if let Some(g) = self.groups.get_mut(&ids.tgid) {
            g.threads += 1;
        }
        Ok(())
    }

    /// A member task is gone (reaped). Every number it alone used loses its vpid, as the
    /// seed's `detach_pid` frees the vpid with the last user of a `struct pid`; a number
    /// still used as another member's pgid or sid keeps it.
    pub fn exit(&mut self, tid: Pid) -> Result<(), EngineError> {
        let tgid = self
            .tasks
            .remove(&tid)
            .ok_or(EngineError::NoSuchTask(tid))?;
        self.drop_ref(tid, PidType::Pid);
        self.drop_ref(tgid, PidType::Tgid);
        let last = match self.groups.get_mut(&tgid) {
            Some(g) => {
                g.threads = g.threads.saturating_sub(1);
                g.threads == 0
            }
            None => false,
        };
        if last {
            self.groups_changed += 1;
            if let Some(g) = self.groups.remove(&tgid) {
                if g.pgid_own {
                    self.drop_ref(g.pgid, PidType::Pgid);
                }
                if g.sid_own {
                    self.drop_ref(g.sid, PidType::Sid);
                }
            }
        }
        Ok(())
    }

    /// `setpgid`: thread group `tgid` moves to process group `pgid`. A number outside
    /// the VPS is recorded but translates to 0.
    pub fn setpgid(&mut self, tgid: Pid, pgid: Pid) -> Result<(), EngineError> {
        let g = *self
            .groups
            .get(&tgid)
            .ok_or(EngineError::NoSuchGroup(tgid))?;
        if g.pgid == pgid {
            return Ok(());
        }
        let own = self.numbers.contains_key(&pgid);
        if own {
            self.add_ref(pgid, PidType::Pgid);
        }
        if g.pgid_own {
            self.drop_ref(g.pgid, PidType::Pgid);
        }
        if let Some(g) = self.groups.get_mut(&tgid) {
            g.pgid = pgid;
            g.pgid_own = own;
        }
        Ok(())
    }

    /// `setsid`: thread group `tgid` leads a new session and a new process group, both
    /// numbered `tgid`.
    pub fn setsid(&mut self, tgid: Pid) -> Result<(), EngineError> {
        self.setpgid(tgid, tgid)?;
        let g = *self
            .groups
            .get(&tgid)
            .ok_or(EngineError::NoSuchGroup(tgid))?;
        if g.sid == tgid {
            return Ok(());
        }
        self.add_ref(tgid, PidType::Sid);
        if g.sid_own {
            self.drop_ref(g.sid, PidType::Sid);
        }
        if let Some(g) = self.groups.get_mut(&tgid) {
            g.sid = tgid;
            g.sid_own = true;
        }
        Ok(())
    }

    /// The seed's `switch_exec_pids`: non-leader thread `tid` has called `execve`, so it
    /// takes over its thread group's pid and vpid (the kernel's `de_thread`), the old
    /// leader is gone, and the thread's own number loses its vpid. A no-op for a leader.
    pub fn switch_exec_pids(&mut self, tid: Pid) -> Result<(), EngineError> {
        let tgid = *self.tasks.get(&tid).ok_or(EngineError::NoSuchTask(tid))?;
        if tid == tgid {
            return Ok(());
        }
        if self.tasks.contains_key(&tgid) {
            // The old leader is released; the group lives on in `tid`.
            self.tasks.remove(&tgid);
            self.drop_ref(tgid, PidType::Pid);
            self.drop_ref(tgid, PidType::Tgid);
            if let Some(g) = self.groups.get_mut(&tgid) {
                g.threads = g.threads.saturating_sub(1);
            }
        }
        self.tasks.remove(&tid);
        self.tasks.insert(tgid, tgid);
        self.add_ref(tgid, PidType::Pid);
        self.drop_ref(tid, PidType::Pid);
        self.groups_changed += 1;
        Ok(())
    }
}
