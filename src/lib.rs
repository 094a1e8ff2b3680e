//! vprocfs: a FUSE filesystem that gives each container (VPS) its own `/proc`.
//!
//! The parts, each in its own module, in the order a request meets them:
//! - [`fuse`]: thin glue between the kernel's FUSE requests and the view; [`backing`]:
//!   snapshots the kernel serves itself (FUSE passthrough from a memfd).
//! - [`view`]: what a reader sees: the node tree, who is asking, which files are
//!   rewritten.
//! - [`membership`]: which real processes form each VPS, kept in step with the kernel
//!   through [`events`] (the netlink process-events connector) and [`host`] (the real
//!   `/proc`).
//! - [`engine`]: the pure VPID translation engine (OpenVZ's 2006 VPID design).
//! - [`render`]: pure renderers that rewrite kernel text with a VPS's numbers.
//! - [`resources`]: the virtual global files (`meminfo`, `cpuinfo`, `stat`, `uptime`,
//!   `loadavg`, …) computed from a VPS's cgroup, and the cgroup `run` makes for it.
//! - [`cli`] and [`daemon`]: the `run`, `serve` and `attach` commands; [`stats`]: what
//!   the daemon counts.
//! - [`poll`]: `poll(2)` on the view's files, as procfs answers it.
//! - [`placement`]: putting a view over a VPS's `/proc` (kernel pid view or full view).
//! - [`spin`]: polling `/dev/fuse` during bursts of requests.
//! - [`ctl`]: the control socket (JSON lines) of a running daemon.
//! - [`sys`]: the one module with `unsafe` code.

// `unsafe` is confined to `sys`, whose files opt back in explicitly.
#![deny(unsafe_code)]

/// A line on standard error that never panics: `eprintln!` panics when stderr is gone
/// (a closed pipe, a supervisor's log that went away), which would end the daemon and
/// its VPS over a message nobody can read; here the message is dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// A line on standard output that never panics: output for a reader that has gone
/// (`vprocfs ctl list | head -1`) is dropped, where `println!` would panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod backing;
pub mod cli;
pub mod ctl;
pub mod daemon;
pub mod engine;
pub mod events;
pub mod fds;
pub mod fuse;
pub mod handover;
pub mod host;
pub mod membership;
pub mod placement;
pub mod poll;
pub mod render;
pub mod resources;
pub mod spin;
pub mod state;
pub mod stats;
pub mod sync;
pub mod sys;
pub mod view;
