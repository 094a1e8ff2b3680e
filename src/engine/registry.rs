//! Several VPSes side by side: the seed's global `vpid_hash` keyed by `(vpid, vpsid)`,
//! and the rule that a task belongs to at most one VPS.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::{EngineError, Pid, Requested, TaskIds, Vpid, Vps, VpsConfig};

/// A VPS's id (the seed's `vps->id`), a small integer.
pub type VpsId = u32;

/// Every VPS the daemon knows, and which VPS each member task belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Engine {
    vpses: BTreeMap<VpsId, Vps>,
    owner: FxHashMap<Pid, VpsId>,
    next_id: VpsId,
}

impl Engine {
    /// An engine with no VPS.
    pub fn new() -> Self {
        Engine {
            next_id: 1,
            ..Engine::default()
        }
    }

    /// Creates a VPS with `init` as its vpid 1; returns its id.
    pub fn create_vps(
        &mut self,
        name: &str,
        init: TaskIds,
        config: VpsConfig,
    ) -> Result<VpsId, EngineError> {
        if self.vpses.values().any(|v| v.name() == name) {
            return Err(EngineError::VpsExists(name.to_string()));
        }
        if let Some(&vps) = self.owner.get(&init.pid) {
            return Err(EngineError::TaskInOtherVps { pid: init.pid, vps });
        }
        let id = self.next_id.max(1);
        let vps = Vps::new(id, name, init, config)?;
        self.next_id = id + 1;
        self.owner.insert(init.pid, id);
        self.vpses.insert(id, vps);
        Ok(id)
    }

    /// Removes a VPS and forgets its members.
    pub fn remove_vps(&mut self, id: VpsId) -> Result<Vps, EngineError> {
        let vps = self.vpses.remove(&id).ok_or(EngineError::NoSuchVps(id))?;
        self.owner.retain(|_, v| *v != id);
        Ok(vps)
    }

    /// The VPS with this id.
    pub fn vps(&self, id: VpsId) -> Option<&Vps> {
        self.vpses.get(&id)
    }

    /// The VPS named `name`.
    pub fn vps_by_name(&self, name: &str) -> Option<&Vps> {
        self.vpses.values().find(|v| v.name() == name)
    }

    /// Every VPS, by id.
    pub fn vpses(&self) -> impl Iterator<Item = &Vps> {
        self.vpses.values()
    }

    /// The VPS that task `tid` belongs to (the seed's `task_vps`).
    pub fn vps_of(&self, tid: Pid) -> Option<VpsId> {
        self.owner.get(&tid).copied()
    }

    /// A new member task of VPS `id` ([`Vps::fork`]).
    pub fn fork(
        &mut self,
        id: VpsId,
        ids: TaskIds,
        requested: Requested,
    ) -> Result<Vpid, EngineError> {
        if let Some(&vps) = self.owner.get(&ids.pid) {
            return Err(EngineError::TaskInOtherVps { pid: ids.pid, vps });
        }
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        let vpid = vps.fork(ids, requested)?;
        self.owner.insert(ids.pid, id);
        Ok(vpid)
    }

    /// Gives real number `pid` a vpid in VPS `id` without attaching a task
    /// ([`Vps::alloc_vpid`]): a process group or session whose leader is gone.
    pub fn alloc_vpid(
        &mut self,
        id: VpsId,
        pid: Pid,
        requested: Requested,
    ) -> Result<Vpid, EngineError> {
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        vps.alloc_vpid(pid, requested)
    }

    /// Sets the last vpid handed out in VPS `id` ([`Vps::set_last_vpid`]).
    pub fn set_last_vpid(&mut self, id: VpsId, vpid: Vpid) -> Result<(), EngineError> {
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        vps.set_last_vpid(vpid);
        Ok(())
    }

    /// Sets the `pid_max` of VPS `id` ([`Vps::set_pid_max`]).
    pub fn set_pid_max(&mut self, id: VpsId, pid_max: Vpid) -> Result<(), EngineError> {
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        vps.set_pid_max(pid_max)
    }

    /// Passes over the vpid task `pid` of VPS `id` had ([`Vps::pass_over_vpid`]).
    pub fn pass_over_vpid(
        &mut self,
        id: VpsId,
        pid: Pid,
        kernel_numbers: bool,
    ) -> Result<(), EngineError> {
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        vps.pass_over_vpid(pid, kernel_numbers);
        Ok(())
    }

    /// Attaches a task to a number already allocated in VPS `id` ([`Vps::attach`]).
    pub fn attach(&mut self, id: VpsId, ids: TaskIds) -> Result<(), EngineError> {
        if let Some(&vps) = self.owner.get(&ids.pid) {
            return Err(EngineError::TaskInOtherVps { pid: ids.pid, vps });
        }
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        vps.attach(ids)?;
        self.owner.insert(ids.pid, id);
        Ok(())
    }

    fn owner_of(&mut self, tid: Pid) -> Result<&mut Vps, EngineError> {
        let id = *self.owner.get(&tid).ok_or(EngineError::NoSuchTask(tid))?;
        self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))
    }

    /// Task `tid` is gone ([`Vps::exit`]).
    pub fn exit(&mut self, tid: Pid) -> Result<(), EngineError> {
        self.owner_of(tid)?.exit(tid)?;
        self.owner.remove(&tid);
        Ok(())
    }

    /// Thread group `tgid` moved to process group `pgid` ([`Vps::setpgid`]).
    pub fn setpgid(&mut self, tgid: Pid, pgid: Pid) -> Result<(), EngineError> {
        self.owner_of(tgid)?.setpgid(tgid, pgid)
    }

    /// Thread group `tgid` made a new session ([`Vps::setsid`]).
    pub fn setsid(&mut self, tgid: Pid) -> Result<(), EngineError> {
        self.owner_of(tgid)?.setsid(tgid)
    }

    /// Non-leader thread `tid` exec'ed ([`Vps::switch_exec_pids`]).
    pub fn switch_exec_pids(&mut self, tid: Pid) -> Result<(), EngineError> {
        let id = *self.owner.get(&tid).ok_or(EngineError::NoSuchTask(tid))?;
        let vps = self.vpses.get_mut(&id).ok_or(EngineError::NoSuchVps(id))?;
        let tgid = vps.tgid_of(tid).ok_or(EngineError::NoSuchTask(tid))?;
        vps.switch_exec_pids(tid)?;
        if tid != tgid {
            self.owner.remove(&tid);
            self.owner.insert(tgid, id);
        }
        Ok(())
    }
}
