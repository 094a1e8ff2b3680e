//! The VPID translation engine: which virtual pid every real number of a VPS carries.
//!
//! This is a user-space re-creation of the OpenVZ "VPID" patch posted to the kernel list
//! in February 2006 (`shared/reference/vpid-rfc-2006.txt`, "the seed"). It is pure logic:
//! no FUSE, no `/proc` reading, no clock and no global state, so every rule can be tested
//! exhaustively. The rest of vprocfs feeds it what the kernel reports (fork, exit,
//! setpgid, setsid, exec) and asks it to translate.
//!
//! | seed                          | here                                              |
//! |-------------------------------|---------------------------------------------------|
//! | `VPID_BIT`, `VPID_DIV`        | [`VpsConfig::vpid_bit`], [`Vps::vpid_div`]        |
//! | `vps_info_t {id, init_task}`  | [`Vps`] ([`Vps::id`], [`Vps::init_pid`])          |
//! | `sparse_vpid`, `set_sparse_vpid` | [`Vps::mode`], [`Mode`]                        |
//! | `get_vps_tasks_num`           | [`Vps::tasks_num`]                                |
//! | `alloc_vpid(pid, vpid)`       | [`Vps::alloc_vpid`] with [`Requested`]            |
//! | `switch_to_sparse_mapping`    | [`Vps::switch_to_sparse_mapping`]                 |
//! | `free_vpid`, `__free_vpid`    | [`Vps::free_vpid`], and [`Vps::exit`] (`detach_pid`) |
//! | `switch_exec_pids`            | [`Vps::switch_exec_pids`]                         |
//! | `pid_type_to_vpid`            | [`Vps::pid_type_to_vpid`], [`Vps::translate`]     |
//! | `vpid_to_pid`                 | [`Vps::vpid_to_pid`]                              |
//! | `comb_pid_to_vpid`, `comb_vpid_to_pid` | [`Vps::comb_pid_to_vpid`], [`Vps::comb_vpid_to_pid`] |
//! | `get_task_ppid`               | [`Vps::get_task_ppid`]                            |
//! | `vpid_hash`, `vpid_mapping`   | the sparse table inside [`Vps`]; [`Vps::mappings`] |
//! | `kmem_cache_alloc` failing    | [`VpsConfig::max_mappings`] → [`EngineError::OutOfMappings`] |
//!
//! Two deviations from the seed, both deliberate:
//! - **Strays.** The seed passes a real pid through when it has no vpid ("global pid can
//!   be used everywhere"). A VPS view must not show host pids, so the isolating answer
//!   (0, as the Linux kernel shows a pid from outside a pid namespace) is the default,
//!   and the seed's answer stays available as [`Strays::PassThrough`].
//! - **No bit tests.** The seed tells a vpid from a pid by the VPID bit; see
//!   [`Vps`] for why the engine cannot and how linear translation stays a bijection.

mod error;
mod registry;
mod vps;

pub use error::EngineError;
pub use registry::{Engine, VpsId};
pub use vps::{Mapping, Mode, Vps, KEPT_FREED};

/// A real number as the kernel gives it (pid, tid, tgid, pgid or sid) in the daemon's pid
/// namespace.
pub type Pid = i32;
/// A number in a VPS's own numbering; vpid 1 is the VPS's init.
pub type Vpid = i32;

/// The kernel's `RESERVED_PIDS`: where pid allocation wraps to after reaching `pid_max`.
pub const RESERVED_PIDS: i32 = 300;
/// The kernel's `PID_MAX_DEFAULT` (0x8000).
pub const PID_MAX_DEFAULT: i32 = 0x8000;
/// The kernel's `PID_MAX_LIMIT` on 64-bit machines (4 Mi): no real pid is above it.
pub const PID_MAX_LIMIT: i32 = 4 * 1024 * 1024;
/// The seed's default `VPID_BIT`.
pub const DEFAULT_VPID_BIT: u32 = 10;

/// The smallest `VPID_BIT` whose linear vpids can never be real pids on a host whose
/// `pid_max` is `pid_max`: the kernel hands out pids below `pid_max`, and with
/// `1 << bit >= pid_max` every linear vpid (`pid + (1 << bit)`, other than init's 1) is
/// above it. That is the seed's own invariant (its kernel never gave out a pid with the
/// VPID bit set); Linux gives out every number below `pid_max`, so without a pid
/// namespace a smaller bit lets `kill <vpid>` reach a host process. At most 22 (for
/// [`PID_MAX_LIMIT`]); a `pid_max` raised after the VPS was made can reopen the overlap.
pub fn safe_vpid_bit(pid_max: i32) -> u32 {
    let pid_max = pid_max.clamp(2, PID_MAX_LIMIT);
    (1..=24)
        .find(|b| (1i64 << b) >= i64::from(pid_max))
        .unwrap_or(24)
}

/// The role in which a number is used, the seed's `enum pid_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PidType {
    /// A task (thread) id: `PIDTYPE_PID`.
    Pid = 0,
    /// A thread-group (process) id: `PIDTYPE_TGID`.
    Tgid = 1,
    /// A process-group id: `PIDTYPE_PGID`.
    Pgid = 2,
    /// A session id: `PIDTYPE_SID`.
    Sid = 3,
}

/// What to answer for a number that has no vpid in the VPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strays {
    /// Answer 0, as the kernel does for a pid outside the reader's pid namespace. The
    /// view uses this: no host pid may leak into a VPS.
    #[default]
    Isolate,
    /// Answer the real number unchanged, as the seed's `pid_type_to_vpid` does.
    PassThrough,
}

/// How a VPS hands out automatic vpids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Numbering {
    /// The seed's default: init is 1, every other pid is `pid + VPID_DIV`; the VPS goes
    /// sparse only when a specific vpid is requested.
    #[default]
    Linear,
    /// The seed's hash table from the start; automatic vpids are still `pid + VPID_DIV`,
    /// probing for a free number on collision.
    Sparse,
    /// Dense numbers 1, 2, 3, … handed out like the kernel's pid namespace does: the next
    /// free number after the last one handed out, wrapping at `pid_max` back to
    /// [`RESERVED_PIDS`] (or to 1 while the cursor has not passed it). Sparse mode.
    Ns,
}

/// A vpid request for [`Vps::alloc_vpid`]: the seed's `-1` (automatic) or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Let the numbering policy choose (the seed's `virt_pid == -1`).
    Auto,
    /// This vpid exactly, or [`EngineError::VpidTaken`] (restore, pid namespaces).
    Vpid(Vpid),
}

/// The ids of a task as the kernel reports them, all real numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskIds {
    /// The task (thread) id.
    pub pid: Pid,
    /// The thread-group id; equal to `pid` for a thread-group leader.
    pub tgid: Pid,
    /// The process group (ignored for a non-leader thread: it shares its group's).
    pub pgid: Pid,
    /// The session (ignored for a non-leader thread).
    pub sid: Pid,
}

impl TaskIds {
    /// A thread-group leader.
    pub fn process(pid: Pid, pgid: Pid, sid: Pid) -> Self {
        TaskIds {
            pid,
            tgid: pid,
            pgid,
            sid,
        }
    }

    /// A non-leader thread of thread group `tgid`.
    pub fn thread(tid: Pid, tgid: Pid) -> Self {
        TaskIds {
            pid: tid,
            tgid,
            pgid: 0,
            sid: 0,
        }
    }
}

/// Per-VPS settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpsConfig {
    /// The seed's `VPID_BIT`: linear vpids are `pid + (1 << vpid_bit)`. 1 to 24.
    pub vpid_bit: u32,
    /// How automatic vpids are chosen.
    pub numbering: Numbering,
    /// Cap on sparse mapping entries of this VPS: the user-space stand-in for the seed's
    /// `-ENOMEM` from `kmem_cache_alloc`.
    pub max_mappings: usize,
    /// The kernel's `pid_max`: where probing and dense numbering wrap. 301 to
    /// [`PID_MAX_LIMIT`].
    pub pid_max: i32,
}

impl Default for VpsConfig {
    fn default() -> Self {
        VpsConfig {
            vpid_bit: DEFAULT_VPID_BIT,
            numbering: Numbering::Linear,
            max_mappings: 1 << 20,
            pid_max: PID_MAX_DEFAULT,
        }
    }
}

impl VpsConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(1..=24).contains(&self.vpid_bit) {
            return Err(EngineError::InvalidConfig(format!(
                "vpid bit {} is out of range: use 1 to 24",
                self.vpid_bit
            )));
        }
        if !(RESERVED_PIDS + 1..=PID_MAX_LIMIT).contains(&self.pid_max) {
            return Err(EngineError::InvalidConfig(format!(
                "pid_max {} is out of range: use {} to {}",
                self.pid_max,
                RESERVED_PIDS + 1,
                PID_MAX_LIMIT
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
