//! Scheduling policy of a thread, which `nix` does not wrap.

#![allow(unsafe_code)]

use std::io;

/// The two policies the FUSE thread moves between (see `crate::spin::follow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`, nice unchanged.
    Normal,
    /// `SCHED_IDLE`: runs only when nothing else on its CPU wants to.
    Idle,
}

/// Sets the policy of thread `tid` (0: the caller).
pub fn set_policy(tid: i32, policy: Policy) -> io::Result<()> {
    let which = match policy {
        Policy::Normal => libc::SCHED_OTHER,
        Policy::Idle => libc::SCHED_IDLE,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the `sched_param` it is given, which lives on our
    // stack for the duration of the call, and touches no other memory of ours.
    if unsafe { libc::sched_setscheduler(tid, which, &param) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
