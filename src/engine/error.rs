//! The engine's errors: typed, each with the errno the seed would have returned.

use super::{Pid, Vpid, VpsId};

/// Why an engine operation was refused. No operation that fails changes any state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A specific vpid was requested but is taken in this VPS (the seed's `-EEXIST`).
    #[error("vpid {0} is already in use in this VPS")]
    VpidTaken(Vpid),
    /// The VPS has as many sparse mappings as its cap allows (the seed's `-ENOMEM`).
    #[error(
        "out of vpid mappings: this VPS's cap of {cap} entries is reached (raise max_mappings)"
    )]
    OutOfMappings {
        /// The cap that was hit.
        cap: usize,
    },
    /// Every vpid below `pid_max` is taken.
    #[error("no free vpid is left below pid_max {0}")]
    NoFreeVpid(i32),
    /// A real number outside 1..=PID_MAX_LIMIT.
    #[error("{0} is not a valid pid (expected 1 to 4194304)")]
    InvalidPid(i32),
    /// A requested vpid that is not positive.
    #[error("{0} is not a valid vpid (expected a positive number)")]
    InvalidVpid(i32),
    /// The real number already has a vpid in this VPS.
    #[error("pid {0} already has a vpid in this VPS")]
    PidInUse(Pid),
    /// A task was attached before its number got a vpid.
    #[error("pid {0} has no vpid yet: allocate one before attaching the task")]
    NotAllocated(Pid),
    /// The task is already a member.
    #[error("task {0} is already a member of this VPS")]
    TaskExists(Pid),
    /// The task is not a member.
    #[error("task {0} is not a member of this VPS")]
    NoSuchTask(Pid),
    /// A thread joined, or a group was changed, for a thread group that is not a member.
    #[error("thread group {0} is not a member of this VPS")]
    NoSuchGroup(Pid),
    /// No VPS with this id.
    #[error("there is no VPS with id {0}")]
    NoSuchVps(VpsId),
    /// A VPS with this name exists already.
    #[error("a VPS named {0:?} exists already")]
    VpsExists(String),
    /// A process belongs to at most one VPS.
    #[error("task {pid} already belongs to VPS {vps}")]
    TaskInOtherVps {
        /// The task.
        pid: Pid,
        /// The VPS it belongs to.
        vps: VpsId,
    },
    /// A setting out of range.
    #[error("invalid VPS configuration: {0}")]
    InvalidConfig(String),
}

impl EngineError {
    /// The errno the seed (or the kernel) would return for this error.
    pub fn errno(&self) -> i32 {
        match self {
            EngineError::VpidTaken(_) | EngineError::PidInUse(_) | EngineError::TaskExists(_) => {
                libc::EEXIST
            }
            EngineError::VpsExists(_) | EngineError::TaskInOtherVps { .. } => libc::EEXIST,
            EngineError::OutOfMappings { .. } => libc::ENOMEM,
            EngineError::NoFreeVpid(_) => libc::EAGAIN,
            EngineError::InvalidPid(_)
            | EngineError::InvalidVpid(_)
            | EngineError::InvalidConfig(_)
            | EngineError::NotAllocated(_) => libc::EINVAL,
            EngineError::NoSuchTask(_)
            | EngineError::NoSuchGroup(_)
            | EngineError::NoSuchVps(_) => libc::ESRCH,
        }
    }
}
