//! Property tests of the VPID engine: random operation sequences on several VPSes at
//! once, driven by a small simulated kernel.
//!
//! The kernel model hands out real pids like Linux (next free number after the last one,
//! wrapping at its `pid_max` to `RESERVED_PIDS`, so numbers are reused; numbers with the
//! VPID bit set are handed out too), keeps a number alive while any process uses it as
//! pid, tgid, pgid or sid, and follows the kernel's rules for fork, threads, exit,
//! `setsid`, `setpgid` and exec by a non-leader thread (`de_thread`). Every VPS's init is
//! forked from a host "shell"; some VPSes share a shell, hence a session, so a member may
//! join a process group that belongs to another VPS.
//!
//! After every step, for every VPS: the engine's numbers are exactly the numbers that its
//! members use and that the VPS owns; translation is a bijection and round-trips; roles
//! are right; foreign numbers translate to 0; vpids of surviving numbers never change.
//! Each operation leaves every other VPS equal to its clone; a failed one leaves the whole
//! engine equal to its clone; alloc+free and fork+exit restore `mappings()`; and after
//! every member exits nothing is left.
//!
//! `PROPTEST_CASES` overrides the number of cases (default 3000).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use vprocfs::engine::{
    Engine, EngineError, Mode, Numbering, Pid, PidType, Requested, Strays, TaskIds, Vpid, Vps,
    VpsConfig, VpsId, KEPT_FREED, RESERVED_PIDS,
};

// ----- the simulated kernel -------------------------------------------------------------

#[derive(Clone, Debug)]
struct Proc {
    tgid: Pid,
    pgid: Pid,
    sid: Pid,
    leader_alive: bool,
    /// Live non-leader threads.
    threads: BTreeSet<Pid>,
    /// The parent process's tgid (1, the host's init, after reparenting).
    parent: Pid,
    /// Index of the VPS model it belongs to.
    vps: Option<usize>,
}

impl Proc {
    fn alive(&self) -> bool {
        self.leader_alive || !self.threads.is_empty()
    }

    fn tids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.leader_alive
            .then_some(self.tgid)
            .into_iter()
            .chain(self.threads.iter().copied())
    }
}

#[derive(Clone, Debug)]
struct Kernel {
    pid_max: i32,
    last: i32,
    /// Live processes by tgid.
    procs: BTreeMap<Pid, Proc>,
}

impl Kernel {
    /// Every number alive: tids, tgids of live processes, pgids and sids.
    fn live_numbers(&self) -> BTreeSet<Pid> {
        let mut s = BTreeSet::new();
        for p in self.procs.values() {
            s.insert(p.tgid);
            s.extend(p.threads.iter().copied());
            s.insert(p.pgid);
            s.insert(p.sid);
        }
        s
    }

    /// `alloc_pidmap`/`idr_alloc_cyclic`: the next free number after `after`, wrapping
    /// at `pid_max` to `RESERVED_PIDS`.
    fn next_free(&self, after: i32, extra_used: &[Pid]) -> Option<Pid> {
        let used = self.live_numbers();
        let mut p = after;
        for _ in 0..self.pid_max {
            p += 1;
            if p >= self.pid_max {
                p = RESERVED_PIDS;
            }
            if p > 1 && !used.contains(&p) && !extra_used.contains(&p) {
                return Some(p);
            }
        }
        None
    }

    fn alloc(&mut self) -> Option<Pid> {
        let p = self.next_free(self.last, &[])?;
        self.last = p;
        Some(p)
    }

    /// A process is gone: its children go to the host's init.
    fn reap(&mut self, tgid: Pid) {
        self.procs.remove(&tgid);
        for p in self.procs.values_mut() {
            if p.parent == tgid {
                p.parent = 1;
            }
        }
    }
}

// ----- the model of each VPS ------------------------------------------------------------

#[derive(Clone, Debug)]
struct MVps {
    id: VpsId,
    live: bool,
    /// The host shell its init was forked from.
    shell: Pid,
    /// The `ns` policy's cursor as the model expects it.
    ns_cursor: Vpid,
    /// Mappings after the previous step.
    prev: BTreeMap<Pid, Vpid>,
}

struct World {
    engine: Engine,
    kernel: Kernel,
    vpses: Vec<MVps>,
    /// The VPS whose member first got each live number and still uses it: a VPS owns a
    /// number from its allocation to a member until no member of it uses the number.
    origin: BTreeMap<Pid, usize>,
    names: u32,
    /// Every real number ever handed out, to count reuse.
    ever: BTreeSet<Pid>,
    /// Counters, to see that the interesting paths are taken.
    stats: Stats,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    ok_allocs: u64,
    probes: u64,
    taken: u64,
    oom: u64,
    switches: u64,
    failed_switches: u64,
    execs: u64,
    foreign_groups: u64,
    orphaned_held: u64,
    /// Groups emptied whose number keeps its vpid one way.
    kept_groups: u64,
    vpid_bit_pids: u64,
    reused_pids: u64,
}

#[derive(Clone, Copy, Debug)]
struct VpsSeed {
    numbering: u8,
    vpid_bit: u8,
    pid_max: u8,
    cap: u8,
    own_session: bool,
    share_shell: bool,
}

#[derive(Clone, Debug)]
enum Req {
    Auto,
    Small(i32),
    Any(i32),
    Taken(Index),
    Ahead,
}

#[derive(Clone, Debug)]
enum Op {
    Fork(Index, Index, Req),
    Thread(Index, Index, Req),
    ExitTask(Index, Index),
    ExitProcess(Index, Index),
    /// A process exits; if that empties its group, a terminal that had it in the
    /// foreground goes on naming it (`Vps::kept_vpid`).
    ForegroundExit(Index, Index),
    Setsid(Index, Index),
    Setpgid(Index, Index, Index, bool),
    Exec(Index, Index),
    AllocFree(Index, Req),
    ForkExit(Index, Index, Req),
    Foreign(Index, Index, Index),
    Churn(u16),
    NewVps(VpsSeed),
    RemoveVps(Index),
}

impl World {
    fn new(pid_max: i32, start: i32) -> Self {
        let mut procs = BTreeMap::new();
        procs.insert(
            1,
            Proc {
                tgid: 1,
                pgid: 1,
                sid: 1,
                leader_alive: true,
                threads: BTreeSet::new(),
                parent: 0,
                vps: None,
            },
        );
        World {
            engine: Engine::new(),
            kernel: Kernel {
                pid_max,
                last: start,
                procs,
            },
            vpses: Vec::new(),
            origin: BTreeMap::new(),
            names: 0,
            ever: BTreeSet::new(),
            stats: Stats::default(),
        }
    }

    fn live_vpses(&self) -> Vec<usize> {
        (0..self.vpses.len())
            .filter(|&i| self.vpses[i].live)
            .collect()
    }

    fn pick_vps(&self, ix: &Index) -> Option<usize> {
        let live = self.live_vpses();
        (!live.is_empty()).then(|| live[ix.index(live.len())])
    }

    fn vps(&self, i: usize) -> &Vps {
        self.engine.vps(self.vpses[i].id).expect("live VPS")
    }

    /// Member processes of VPS `i` matching `f`, by tgid.
    fn procs_of(&self, i: usize, f: impl Fn(&Proc) -> bool) -> Vec<Pid> {
        self.kernel
            .procs
            .values()
            .filter(|p| p.vps == Some(i) && f(p))
            .map(|p| p.tgid)
            .collect()
    }

    fn tasks_of(&self, i: usize) -> Vec<(Pid, Pid)> {
        let mut v = vec![];
        for p in self.kernel.procs.values().filter(|p| p.vps == Some(i)) {
            for t in p.tids() {
                v.push((t, p.tgid));
            }
        }
        v
    }

    fn alloc_pid(&mut self) -> Option<Pid> {
        let p = self.kernel.alloc()?;
        if p & 1024 != 0 {
            self.stats.vpid_bit_pids += 1;
        }
        if !self.ever.insert(p) {
            self.stats.reused_pids += 1;
        }
        Some(p)
    }

    fn new_vps(&mut self, seed: VpsSeed) {
        if self.live_vpses().len() >= 5 {
            return;
        }
        let numbering =
            [Numbering::Linear, Numbering::Sparse, Numbering::Ns][seed.numbering as usize % 3];
        let vpid_bit = [10, 10, 10, 8, 9, 11, 12][seed.vpid_bit as usize % 7];
        let pid_max = [32768, 32768, 5000, 2000, 1400][seed.pid_max as usize % 5];
        let cap = match seed.cap % 4 {
            0 | 1 => 1 << 20,
            _ => 3 + (seed.cap as usize / 4) % 12,
        };
        let config = VpsConfig {
            vpid_bit,
            numbering,
            max_mappings: cap,
            pid_max,
        };
        // The shell: shared with the first live VPS, or a new one in its own session.
        let shared = self
            .live_vpses()
            .first()
            .filter(|_| seed.share_shell)
            .map(|&i| self.vpses[i].shell)
            .filter(|s| self.kernel.procs.contains_key(s));
        let shell = match shared {
            Some(s) => s,
            None => {
                let Some(s) = self.alloc_pid() else { return };
                self.kernel.procs.insert(
                    s,
                    Proc {
                        tgid: s,
                        pgid: s,
                        sid: s,
                        leader_alive: true,
                        threads: BTreeSet::new(),
                        parent: 1,
                        vps: None,
                    },
                );
                s
            }
        };
        let Some(init) = self.alloc_pid() else { return };
        let sh = self.kernel.procs[&shell].clone();
        let (pgid, sid) = if seed.own_session {
            (init, init)
        } else {
            (sh.pgid, sh.sid)
        };
        self.names += 1;
        let name = format!("vps{}", self.names);
        let id = self
            .engine
            .create_vps(&name, TaskIds::process(init, pgid, sid), config)
            .expect("create_vps");
        let i = self.vpses.len();
        self.vpses.push(MVps {
            id,
            live: true,
            shell,
            ns_cursor: 1,
            prev: BTreeMap::new(),
        });
        self.kernel.procs.insert(
            init,
            Proc {
                tgid: init,
                pgid,
                sid,
                leader_alive: true,
                threads: BTreeSet::new(),
                parent: shell,
                vps: Some(i),
            },
        );
        self.origin.insert(init, i);
        let vps = self.vps(i);
        assert_eq!(vps.vpid_of(init), Some(1));
        assert_eq!(vps.vpid_to_pid(1), Some(init));
        let expect_mode = if numbering == Numbering::Linear {
            Mode::Linear
        } else {
            Mode::Sparse
        };
        assert_eq!(vps.mode(), expect_mode);
    }

    /// The requested vpid for a fork of `pid` into VPS `i`.
    fn resolve(&self, i: usize, pid: Pid, req: &Req) -> Requested {
        let vps = self.vps(i);
        match req {
            Req::Auto => Requested::Auto,
            Req::Small(v) | Req::Any(v) => Requested::Vpid(*v),
            Req::Taken(ix) => {
                let m = vps.mappings();
                if m.is_empty() {
                    Requested::Auto
                } else {
                    Requested::Vpid(m[ix.index(m.len())].vpid)
                }
            }
            Req::Ahead => match self.kernel.next_free(pid, &[pid]) {
                // The linear vpid of the pid the next fork will probably get.
                Some(next) => Requested::Vpid(next + vps.vpid_div()),
                None => Requested::Auto,
            },
        }
    }

    /// What `alloc_vpid(pid, req)` must answer, from the seed's rules.
    fn predict(&self, i: usize, pid: Pid, req: Requested) -> Result<Vpid, EngineError> {
        let vps = self.vps(i);
        let cfg = *vps.config();
        let cap = cfg.max_mappings;
        let div = vps.vpid_div();
        let taken: BTreeSet<Vpid> = vps.mappings().iter().map(|m| m.vpid).collect();
        let linear = pid + div;
        let oom = Err(EngineError::OutOfMappings { cap });
        if vps.mode() == Mode::Linear {
            return match req {
                Requested::Auto => Ok(linear),
                Requested::Vpid(1) if pid == vps.init_pid() => Ok(1),
                Requested::Vpid(v) if v == linear => Ok(v),
                Requested::Vpid(_) if vps.numbers_in_use() >= cap => oom,
                Requested::Vpid(v) if taken.contains(&v) => Err(EngineError::VpidTaken(v)),
                Requested::Vpid(v) => Ok(v),
            };
        }
        if vps.sparse_entries() >= cap {
            return oom;
        }
        match req {
            Requested::Vpid(v) if taken.contains(&v) => Err(EngineError::VpidTaken(v)),
            Requested::Vpid(v) => Ok(v),
            Requested::Auto if cfg.numbering == Numbering::Ns => {
                dense_next(self.vpses[i].ns_cursor, cfg.pid_max, &taken)
            }
            Requested::Auto if !taken.contains(&linear) => Ok(linear),
            Requested::Auto => seed_probe(linear, div, cfg.pid_max, &taken),
        }
    }

    fn note_alloc(&mut self, i: usize, pid: Pid, req: Requested, got: &Result<Vpid, EngineError>) {
        match got {
            Ok(v) => {
                self.stats.ok_allocs += 1;
                if req == Requested::Auto && self.vps(i).config().numbering == Numbering::Ns {
                    self.vpses[i].ns_cursor = *v;
                }
                assert_eq!(self.vps(i).last_vpid(), *v);
                if req == Requested::Auto
                    && self.vps(i).mode() == Mode::Sparse
                    && self.vps(i).config().numbering != Numbering::Ns
                    && *v != pid + self.vps(i).vpid_div()
                {
                    self.stats.probes += 1;
                }
            }
            Err(EngineError::VpidTaken(_)) => self.stats.taken += 1,
            Err(EngineError::OutOfMappings { .. }) => {
                self.stats.oom += 1;
                if self.vps(i).mode() == Mode::Linear {
                    self.stats.failed_switches += 1;
                }
            }
            Err(_) => {}
        }
    }

    /// Runs one operation; returns the VPS it was meant for (every other must be
    /// unchanged), or `None` when it touches none or several.
    fn apply(&mut self, op: &Op) -> Option<VpsId> {
        match op {
            Op::Fork(v, p, req) | Op::ForkExit(v, p, req) => {
                let i = self.pick_vps(v)?;
                let parents = self.procs_of(i, |p| p.leader_alive);
                if parents.is_empty() {
                    return None;
                }
                let parent = self.kernel.procs[&parents[p.index(parents.len())]].clone();
                let pid = self.alloc_pid()?;
                let requested = self.resolve(i, pid, req);
                let expect = self.predict(i, pid, requested);
                let before = self.engine.clone();
                let was_linear = self.vps(i).mode() == Mode::Linear;
                let ids = TaskIds::process(pid, parent.pgid, parent.sid);
                let got = self.engine.fork(self.vpses[i].id, ids, requested);
                assert_eq!(got, expect, "fork {ids:?} {requested:?}");
                self.note_alloc(i, pid, requested, &got);
                let Ok(vpid) = got else {
                    assert_eq!(self.engine, before, "a failed fork changes nothing");
                    return Some(self.vpses[i].id);
                };
                if was_linear && self.vps(i).mode() == Mode::Sparse {
                    self.stats.switches += 1;
                }
                assert_eq!(self.vps(i).vpid_to_pid(vpid), Some(pid));
                if matches!(op, Op::ForkExit(..)) {
                    // A fresh childless process in its parent's group: fork + exit
                    // gives back the mappings as they were.
                    self.engine.exit(pid).expect("exit of a fresh process");
                    assert_eq!(
                        self.vps(i).mappings(),
                        before.vps(self.vpses[i].id).unwrap().mappings(),
                        "fork then exit restores the mappings"
                    );
                    return Some(self.vpses[i].id);
                }
                if self.kernel.live_numbers().contains(&pid) {
                    unreachable!("allocator handed out a live number");
                }
                self.kernel.procs.insert(
                    pid,
                    Proc {
                        tgid: pid,
                        pgid: parent.pgid,
                        sid: parent.sid,
                        leader_alive: true,
                        threads: BTreeSet::new(),
                        parent: parent.tgid,
                        vps: Some(i),
                    },
                );
                self.origin.insert(pid, i);
                Some(self.vpses[i].id)
            }
            Op::Thread(v, p, req) => {
                let i = self.pick_vps(v)?;
                let procs = self.procs_of(i, |_| true);
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[p.index(procs.len())];
                let tid = self.alloc_pid()?;
                let requested = self.resolve(i, tid, req);
                let expect = self.predict(i, tid, requested);
                let before = self.engine.clone();
                let got = self
                    .engine
                    .fork(self.vpses[i].id, TaskIds::thread(tid, tgid), requested);
                assert_eq!(got, expect, "thread {tid} of {tgid} {requested:?}");
                self.note_alloc(i, tid, requested, &got);
                if got.is_err() {
                    assert_eq!(
                        self.engine, before,
                        "a failed thread creation changes nothing"
                    );
                } else {
                    self.kernel
                        .procs
                        .get_mut(&tgid)
                        .unwrap()
                        .threads
                        .insert(tid);
                    self.origin.insert(tid, i);
                }
                Some(self.vpses[i].id)
            }
            Op::ExitTask(v, t) => {
                let i = self.pick_vps(v)?;
                let tasks = self.tasks_of(i);
                if tasks.is_empty() {
                    return None;
                }
                let (tid, tgid) = tasks[t.index(tasks.len())];
                self.exit_task(tid, tgid);
                Some(self.vpses[i].id)
            }
            Op::ExitProcess(v, p) => {
                let i = self.pick_vps(v)?;
                let procs = self.procs_of(i, |_| true);
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[p.index(procs.len())];
                let pr = self.kernel.procs[&tgid].clone();
                for t in pr.threads.iter().copied() {
                    self.exit_task(t, tgid);
                }
                if pr.leader_alive {
                    self.exit_task(tgid, tgid);
                }
                assert!(!self.kernel.procs.contains_key(&tgid));
                Some(self.vpses[i].id)
            }
            Op::ForegroundExit(v, p) => {
                let i = self.pick_vps(v)?;
                // A job: a process leading its own group inside another's session, the
                // usual foreground group; any process where there is none.
                let jobs = self.procs_of(i, |q| q.pgid == q.tgid && q.sid != q.tgid);
                let procs = if jobs.is_empty() {
                    self.procs_of(i, |_| true)
                } else {
                    jobs
                };
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[p.index(procs.len())];
                let pr = self.kernel.procs[&tgid].clone();
                let had = self.vps(i).vpid_of(pr.pgid);
                for t in pr.threads.iter().copied() {
                    self.exit_task(t, tgid);
                }
                if pr.leader_alive {
                    self.exit_task(tgid, tgid);
                }
                if let (Some(vpid), None) = (had, self.vps(i).vpid_of(pr.pgid)) {
                    // A terminal with the emptied group in the foreground goes on naming it.
                    self.stats.kept_groups += 1;
                    assert_eq!(self.vps(i).kept_vpid(pr.pgid), Some(vpid));
                    // One way only: the vpid leads to no number.
                    assert_eq!(self.vps(i).vpid_to_pid(vpid), None);
                }
                Some(self.vpses[i].id)
            }
            Op::Setsid(v, p) => {
                let i = self.pick_vps(v)?;
                let procs = self.procs_of(i, |p| p.leader_alive);
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[p.index(procs.len())];
                // EPERM when a process group numbered tgid exists.
                if self.kernel.procs.values().any(|q| q.pgid == tgid) {
                    return None;
                }
                self.engine.setsid(tgid).expect("setsid");
                let pr = self.kernel.procs.get_mut(&tgid).unwrap();
                pr.pgid = tgid;
                pr.sid = tgid;
                assert_eq!(self.vps(i).group_ids(tgid), Some((tgid, tgid)));
                Some(self.vpses[i].id)
            }
            Op::Setpgid(v, p, target, own) => {
                let i = self.pick_vps(v)?;
                let procs = self.procs_of(i, |p| p.leader_alive && p.sid != p.tgid);
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[p.index(procs.len())];
                let sid = self.kernel.procs[&tgid].sid;
                let pgid = if *own {
                    tgid
                } else {
                    // An existing group of the same session, whoever's it is.
                    let groups: BTreeSet<Pid> = self
                        .kernel
                        .procs
                        .values()
                        .filter(|q| q.sid == sid)
                        .map(|q| q.pgid)
                        .collect();
                    let groups: Vec<Pid> = groups.into_iter().collect();
                    groups[target.index(groups.len())]
                };
                if self.origin.get(&pgid) != Some(&i) {
                    self.stats.foreign_groups += 1;
                }
                self.engine.setpgid(tgid, pgid).expect("setpgid");
                self.kernel.procs.get_mut(&tgid).unwrap().pgid = pgid;
                Some(self.vpses[i].id)
            }
            Op::Exec(v, t) => {
                let i = self.pick_vps(v)?;
                let procs = self.procs_of(i, |p| !p.threads.is_empty());
                if procs.is_empty() {
                    return None;
                }
                let tgid = procs[t.index(procs.len())];
                let pr = self.kernel.procs[&tgid].clone();
                let threads: Vec<Pid> = pr.threads.iter().copied().collect();
                let tid = threads[t.index(threads.len())];
                let vg = self.vps(i).vpid_of(tgid).expect("group has a vpid");
                let vt = self.vps(i).vpid_of(tid).expect("thread has a vpid");
                // de_thread: every other thread goes first (the leader is released by
                // switch_exec_pids itself).
                for o in threads.iter().copied().filter(|&o| o != tid) {
                    self.exit_task(o, tgid);
                }
                self.engine.switch_exec_pids(tid).expect("switch_exec_pids");
                let pr = self.kernel.procs.get_mut(&tgid).unwrap();
                pr.threads.clear();
                pr.leader_alive = true;
                self.stats.execs += 1;
                let vps = self.vps(i);
                assert_eq!(vps.vpid_of(tgid), Some(vg), "exec keeps the group's vpid");
                assert_eq!(vps.pid_type_to_vpid(PidType::Pid, tgid), Some(vg));
                assert_eq!(vps.vpid_of(tid), None, "the thread loses its own number");
                assert_eq!(vps.vpid_to_pid(vt), None);
                assert!(!vps.has_task(tid));
                assert_eq!(self.engine.vps_of(tid), None);
                assert_eq!(self.engine.vps_of(tgid), Some(self.vpses[i].id));
                Some(self.vpses[i].id)
            }
            Op::AllocFree(v, req) => {
                let i = self.pick_vps(v)?;
                let pid = self.kernel.next_free(self.kernel.last, &[])?;
                let requested = self.resolve(i, pid, req);
                let expect = self.predict(i, pid, requested);
                let orig = self.vps(i).clone();
                let mut vps = orig.clone();
                let got = vps.alloc_vpid(pid, requested);
                assert_eq!(got, expect, "alloc_vpid({pid}, {requested:?})");
                match got {
                    Ok(vpid) => {
                        assert_eq!(vps.vpid_of(pid), Some(vpid));
                        assert_eq!(vps.vpid_to_pid(vpid), Some(pid));
                        assert_eq!(vps.free_vpid(vpid), Ok(()));
                        assert_eq!(vps.mappings(), orig.mappings(), "alloc then free");
                        assert_eq!(vps.vpid_of(pid), None);
                        assert_eq!(vps.vpid_to_pid(vpid), None);
                    }
                    Err(_) => assert_eq!(vps, orig, "a failed alloc changes nothing"),
                }
                Some(self.vpses[i].id)
            }
            Op::Foreign(v, t, w) => {
                let i = self.pick_vps(v)?;
                let live = self.live_vpses();
                let others: Vec<usize> = live.into_iter().filter(|&j| j != i).collect();
                let tasks = self.tasks_of(i);
                if others.is_empty() || tasks.is_empty() {
                    return None;
                }
                let j = others[w.index(others.len())];
                let (tid, tgid) = tasks[t.index(tasks.len())];
                let before = self.engine.clone();
                let (a, b) = (self.vpses[i].id, self.vpses[j].id);
                assert_eq!(
                    self.engine
                        .fork(b, TaskIds::process(tid, tid, tid), Requested::Auto),
                    Err(EngineError::TaskInOtherVps { pid: tid, vps: a })
                );
                if let Some(fresh) = self.kernel.next_free(self.kernel.last, &[]) {
                    assert_eq!(
                        self.engine
                            .fork(b, TaskIds::thread(fresh, tgid), Requested::Auto),
                        Err(EngineError::NoSuchGroup(tgid))
                    );
                }
                assert_eq!(self.engine, before);
                None
            }
            Op::Churn(n) => {
                // Host processes that come and go: the allocator moves on and wraps.
                for _ in 0..*n {
                    self.kernel.alloc();
                }
                None
            }
            Op::NewVps(seed) => {
                self.new_vps(*seed);
                None
            }
            Op::RemoveVps(v) => {
                let i = self.pick_vps(v)?;
                let id = self.vpses[i].id;
                let before = self.vps(i).clone();
                let removed = self.engine.remove_vps(id).expect("remove_vps");
                assert_eq!(removed, before);
                assert!(self.engine.vps(id).is_none());
                self.vpses[i].live = false;
                // Its members are host processes now.
                for p in self.kernel.procs.values_mut() {
                    if p.vps == Some(i) {
                        p.vps = None;
                    }
                }
                self.origin.retain(|_, o| *o != i);
                None
            }
        }
    }

    fn exit_task(&mut self, tid: Pid, tgid: Pid) {
        self.engine.exit(tid).expect("exit of a member");
        assert_eq!(self.engine.vps_of(tid), None);
        let pr = self.kernel.procs.get_mut(&tgid).unwrap();
        if tid == tgid {
            pr.leader_alive = false;
        } else {
            pr.threads.remove(&tid);
        }
        if !pr.alive() {
            self.kernel.reap(tgid);
        }
    }

    /// Numbers used by members of VPS `i`, per role.
    fn uses(&self, i: usize) -> [BTreeSet<Pid>; 4] {
        let mut r: [BTreeSet<Pid>; 4] = Default::default();
        for p in self.kernel.procs.values().filter(|p| p.vps == Some(i)) {
            r[PidType::Pid as usize].extend(p.tids());
            r[PidType::Tgid as usize].insert(p.tgid);
            r[PidType::Pgid as usize].insert(p.pgid);
            r[PidType::Sid as usize].insert(p.sid);
        }
        r
    }

    /// A VPS no longer owns a number that none of its members uses.
    fn settle_origin(&mut self) {
        let uses: Vec<BTreeSet<Pid>> = (0..self.vpses.len())
            .map(|i| self.uses(i).into_iter().flatten().collect())
            .collect();
        self.origin.retain(|n, i| uses[*i].contains(n));
    }

    fn check(&mut self) {
        self.settle_origin();
        let live_numbers = self.kernel.live_numbers();
        assert_eq!(self.engine.vpses().count(), self.live_vpses().len());
        for p in self.kernel.procs.values() {
            for t in p.tids() {
                let want = p.vps.map(|i| self.vpses[i].id);
                assert_eq!(self.engine.vps_of(t), want, "owner of task {t}");
            }
        }
        for i in self.live_vpses() {
            self.check_vps(i, &live_numbers);
        }
    }

    fn check_vps(&mut self, i: usize, live_numbers: &BTreeSet<Pid>) {
        let vps = self.vps(i).clone();
        let uses = self.uses(i);
        let owned = |n: &Pid| self.origin.get(n) == Some(&i);
        // Roles as the engine must count them: pgid/sid only when the VPS owns them.
        let mut roles = uses.clone();
        roles[PidType::Pgid as usize].retain(owned);
        roles[PidType::Sid as usize].retain(owned);
        let expect: BTreeSet<Pid> = roles.iter().flatten().copied().collect();
        for n in &expect {
            assert!(owned(n), "member's own number {n} is owned by its VPS");
        }
        let mappings = vps.mappings();
        let held: BTreeSet<Pid> = mappings.iter().map(|m| m.pid).collect();
        assert_eq!(held, expect, "VPS {i}: the numbers held");
        assert_eq!(vps.numbers_in_use(), held.len());
        for n in &held {
            assert!(live_numbers.contains(n), "held number {n} is alive");
        }

        // Bijection and round trips.
        let vpids: BTreeSet<Vpid> = mappings.iter().map(|m| m.vpid).collect();
        assert_eq!(vpids.len(), mappings.len(), "distinct vpids");
        for m in &mappings {
            assert!(m.vpid > 0);
            assert_eq!(vps.vpid_of(m.pid), Some(m.vpid));
            assert_eq!(vps.vpid_to_pid(m.vpid), Some(m.pid), "{m:?}");
            assert_eq!(vps.comb_vpid_to_pid(m.vpid), Some(m.pid));
            assert_eq!(vps.comb_vpid_to_pid(-m.vpid), Some(-m.pid));
        }
        let div = vps.vpid_div();
        let mut probes: BTreeSet<Vpid> = (-2..=8).collect();
        probes.extend([
            div - 1,
            div,
            div + 1,
            vps.init_pid() + div,
            i32::MAX,
            i32::MIN,
        ]);
        for m in &mappings {
            probes.extend([m.vpid - 1, m.vpid + 1, m.pid, m.pid + div]);
        }
        for v in probes {
            let got = vps.vpid_to_pid(v);
            if vpids.contains(&v) {
                assert!(got.is_some());
            } else {
                assert_eq!(got, None, "vpid {v} is not in use");
            }
        }

        // Mode.
        match vps.mode() {
            Mode::Sparse => assert_eq!(vps.sparse_entries(), vps.numbers_in_use()),
            Mode::Linear => {
                assert_eq!(vps.config().numbering, Numbering::Linear);
                assert_eq!(vps.sparse_entries(), 0);
                for m in &mappings {
                    assert!(
                        m.vpid == m.pid + div || (m.pid == vps.init_pid() && m.vpid == 1),
                        "linear mapping {m:?}"
                    );
                }
            }
        }
        assert!(vps.sparse_entries() <= vps.config().max_mappings);
        // A number in use translates the same way as a held one.
        for m in &mappings {
            assert_eq!(vps.kept_vpid(m.pid), Some(m.vpid));
        }

        // Tasks and groups.
        let tasks: BTreeSet<(Pid, Pid)> = self.tasks_of(i).into_iter().collect();
        let etasks: BTreeSet<(Pid, Pid)> =
            vps.tids().map(|t| (t, vps.tgid_of(t).unwrap())).collect();
        assert_eq!(etasks, tasks, "VPS {i}: tasks");
        assert_eq!(vps.tasks_num(), tasks.len());
        let procs: Vec<Proc> = self
            .kernel
            .procs
            .values()
            .filter(|p| p.vps == Some(i))
            .cloned()
            .collect();
        let tgids: BTreeSet<Pid> = vps.tgids().collect();
        assert_eq!(tgids, procs.iter().map(|p| p.tgid).collect());
        for p in &procs {
            assert_eq!(vps.group_ids(p.tgid), Some((p.pgid, p.sid)));
        }

        // Roles.
        let types = [PidType::Pid, PidType::Tgid, PidType::Pgid, PidType::Sid];
        for n in &held {
            for ty in types {
                let got = vps.pid_type_to_vpid(ty, *n);
                let want = roles[ty as usize]
                    .contains(n)
                    .then(|| vps.vpid_of(*n).unwrap());
                assert_eq!(got, want, "VPS {i}: {ty:?} {n}");
                assert_eq!(
                    vps.translate(ty, *n, Strays::Isolate),
                    want.unwrap_or(0),
                    "translate {ty:?} {n}"
                );
                assert_eq!(
                    vps.translate(ty, *n, Strays::PassThrough),
                    want.unwrap_or(*n)
                );
            }
        }
        for p in &procs {
            let vg = vps.vpid_of(p.tgid).expect("tgid held");
            let want = if p.leader_alive { vg } else { 0 };
            assert_eq!(vps.comb_pid_to_vpid(p.tgid, Strays::Isolate), want);
            if owned(&p.pgid) {
                let v = vps.vpid_of(p.pgid).expect("owned pgid held");
                assert_eq!(vps.comb_pid_to_vpid(-p.pgid, Strays::Isolate), -v);
                if !vps.has_task(p.pgid) {
                    self.stats.orphaned_held += 1;
                }
            } else {
                assert_eq!(vps.vpid_of(p.pgid), None, "foreign pgid {}", p.pgid);
                assert_eq!(vps.translate(PidType::Pgid, p.pgid, Strays::Isolate), 0);
                assert_eq!(
                    vps.translate(PidType::Pgid, p.pgid, Strays::PassThrough),
                    p.pgid
                );
                assert_eq!(vps.comb_pid_to_vpid(-p.pgid, Strays::Isolate), 0);
            }
            if !owned(&p.sid) {
                assert_eq!(vps.vpid_of(p.sid), None, "foreign sid {}", p.sid);
                assert_eq!(vps.translate(PidType::Sid, p.sid, Strays::Isolate), 0);
            }
            // ppid: 0 for init, the parent's vpid inside, 0 for a parent outside.
            let parent_in = self
                .kernel
                .procs
                .get(&p.parent)
                .is_some_and(|q| q.vps == Some(i));
            for t in p.tids() {
                let vt = vps.vpid_of(t).unwrap();
                let want = if vt > 1 && parent_in {
                    vps.vpid_of(p.parent).unwrap()
                } else {
                    0
                };
                assert_eq!(vps.get_task_ppid(t, p.parent), want, "ppid of {t}");
            }
        }
        // Everything else alive is a stray here.
        for n in live_numbers.difference(&held) {
            assert_eq!(vps.vpid_of(*n), None);
            for ty in types {
                assert_eq!(vps.translate(ty, *n, Strays::Isolate), 0, "stray {n}");
            }
            assert_eq!(vps.comb_pid_to_vpid(*n, Strays::Isolate), 0);
            assert_eq!(vps.comb_pid_to_vpid(-*n, Strays::Isolate), 0);
        }

        // Stability: a number that stays keeps its vpid.
        let now: BTreeMap<Pid, Vpid> = mappings.iter().map(|m| (m.pid, m.vpid)).collect();
        for (p, v) in &self.vpses[i].prev {
            if let Some(w) = now.get(p) {
                assert_eq!(w, v, "VPS {i}: the vpid of {p} changed");
            }
        }
        self.vpses[i].prev = now;
    }

    /// Every member exits, threads first; then nothing may be left.
    fn teardown(&mut self) {
        for i in self.live_vpses() {
            loop {
                let tasks = self.tasks_of(i);
                let Some(&(tid, tgid)) = tasks.iter().find(|(t, g)| t != g).or(tasks.first())
                else {
                    break;
                };
                let before = self.engine.clone();
                self.exit_task(tid, tgid);
                for j in self.live_vpses().into_iter().filter(|&j| j != i) {
                    let id = self.vpses[j].id;
                    assert_eq!(self.engine.vps(id), before.vps(id));
                }
                self.check();
            }
            let vps = self.vps(i);
            assert_eq!(vps.tasks_num(), 0);
            assert_eq!(vps.numbers_in_use(), 0, "nothing leaked");
            assert_eq!(vps.sparse_entries(), 0, "no sparse entry leaked");
            assert!(
                vps.kept_numbers() <= KEPT_FREED,
                "freed numbers kept: bounded"
            );
            assert!(vps.mappings().is_empty());
        }
    }
}

/// The seed's probe after a collision on `start`. Where `VPID_DIV >= pid_max` (the
/// safe layout, every linear vpid above `pid_max`) it wraps at the top of the linear
/// range, `pid_max + VPID_DIV`, instead of `pid_max`.
fn seed_probe(
    start: Vpid,
    div: i32,
    pid_max: i32,
    taken: &BTreeSet<Vpid>,
) -> Result<Vpid, EngineError> {
    let top = if div >= pid_max {
        pid_max + div
    } else {
        pid_max
    };
    let mut r = start;
    for _ in 0..pid_max {
        r += 1;
        if r & div == 0 {
            r += div;
        }
        if r >= top {
            r = RESERVED_PIDS + div;
        }
        if !taken.contains(&r) {
            return Ok(r);
        }
    }
    Err(EngineError::NoFreeVpid(pid_max))
}

/// The kernel's `alloc_pid` in a pid namespace.
fn dense_next(cursor: Vpid, pid_max: i32, taken: &BTreeSet<Vpid>) -> Result<Vpid, EngineError> {
    let min = if cursor + 1 > RESERVED_PIDS {
        RESERVED_PIDS
    } else {
        1
    };
    let start = (cursor + 1).max(min);
    (start..pid_max)
        .chain(min..start.min(pid_max))
        .find(|v| !taken.contains(v))
        .ok_or(EngineError::NoFreeVpid(pid_max))
}

// ----- strategies -----------------------------------------------------------------------

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        10 => Just(Req::Auto),
        2 => (1..=12i32).prop_map(Req::Small),
        2 => (1..=70_000i32).prop_map(Req::Any),
        3 => any::<Index>().prop_map(Req::Taken),
        3 => Just(Req::Ahead),
    ]
}

fn seed() -> impl Strategy<Value = VpsSeed> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(n, b, m, c, own, share)| VpsSeed {
            numbering: n,
            vpid_bit: b,
            pid_max: m,
            cap: c,
            own_session: own,
            share_shell: share,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let ix = any::<Index>;
    prop_oneof![
        20 => (ix(), ix(), req()).prop_map(|(a, b, r)| Op::Fork(a, b, r)),
        8 => (ix(), ix(), req()).prop_map(|(a, b, r)| Op::Thread(a, b, r)),
        8 => (ix(), ix()).prop_map(|(a, b)| Op::ExitTask(a, b)),
        7 => (ix(), ix()).prop_map(|(a, b)| Op::ExitProcess(a, b)),
        3 => (ix(), ix()).prop_map(|(a, b)| Op::ForegroundExit(a, b)),
        5 => (ix(), ix()).prop_map(|(a, b)| Op::Setsid(a, b)),
        8 => (ix(), ix(), ix(), any::<bool>()).prop_map(|(a, b, c, o)| Op::Setpgid(a, b, c, o)),
        5 => (ix(), ix()).prop_map(|(a, b)| Op::Exec(a, b)),
        6 => (ix(), req()).prop_map(|(a, r)| Op::AllocFree(a, r)),
        5 => (ix(), ix(), req()).prop_map(|(a, b, r)| Op::ForkExit(a, b, r)),
        3 => (ix(), ix(), ix()).prop_map(|(a, b, c)| Op::Foreign(a, b, c)),
        5 => (1..300u16).prop_map(Op::Churn),
        2 => seed().prop_map(Op::NewVps),
        1 => ix().prop_map(Op::RemoveVps),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
}

fn run(pid_max: i32, start: i32, seeds: &[VpsSeed], ops: &[Op]) -> Stats {
    let mut w = World::new(pid_max, start);
    for s in seeds {
        w.new_vps(*s);
    }
    w.check();
    for op in ops {
        let before = w.engine.clone();
        let touched = w.apply(op);
        if let Some(id) = touched {
            for other in before.vpses().filter(|v| v.id() != id) {
                assert_eq!(
                    w.engine.vps(other.id()),
                    Some(other),
                    "{op:?} on VPS {id} changed VPS {}",
                    other.id()
                );
            }
        }
        w.check();
    }
    w.teardown();
    w.stats
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_keep_every_invariant(
        pid_max in prop::sample::select(vec![400, 400, 700, 2048, 4096]),
        start in 1..4096i32,
        seeds in prop::collection::vec(seed(), 2..=4),
        ops in prop::collection::vec(op(), 1..=60),
    ) {
        run(pid_max, start % pid_max, &seeds, &ops);
    }
}

/// The generator reaches the interesting paths: run a fixed batch and count them.
#[test]
fn the_interesting_paths_are_reached() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let strategy = (
        prop::sample::select(vec![400, 400, 700, 2048, 4096]),
        1..4096i32,
        prop::collection::vec(seed(), 2..=4),
        prop::collection::vec(op(), 1..=60),
    );
    let mut runner = TestRunner::deterministic();
    let mut total = Stats::default();
    for _ in 0..300 {
        let (pid_max, start, seeds, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let s = run(pid_max, start % pid_max, &seeds, &ops);
        total.ok_allocs += s.ok_allocs;
        total.probes += s.probes;
        total.taken += s.taken;
        total.oom += s.oom;
        total.switches += s.switches;
        total.failed_switches += s.failed_switches;
        total.execs += s.execs;
        total.foreign_groups += s.foreign_groups;
        total.orphaned_held += s.orphaned_held;
        total.kept_groups += s.kept_groups;
        total.vpid_bit_pids += s.vpid_bit_pids;
        total.reused_pids += s.reused_pids;
    }
    println!("{total:#?}");
    assert!(total.probes > 0, "{total:?}");
    assert!(total.taken > 0, "{total:?}");
    assert!(total.oom > 0, "{total:?}");
    assert!(total.switches > 0, "{total:?}");
    assert!(total.failed_switches > 0, "{total:?}");
    assert!(total.execs > 0, "{total:?}");
    assert!(total.foreign_groups > 0, "{total:?}");
    assert!(total.orphaned_held > 0, "{total:?}");
    assert!(total.kept_groups > 0, "{total:?}");
    assert!(total.vpid_bit_pids > 0, "{total:?}");
    assert!(total.reused_pids > 0, "{total:?}");
}
