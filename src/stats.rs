//! Daemon statistics: FUSE requests served, by kind — the figure the design is judged
//! by (round trips per process shown).

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of FUSE request the daemon counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `lookup`
    Lookup,
    /// `forget` (each entry of a batch counts)
    Forget,
    /// `getattr`
    Getattr,
    /// `readlink`
    Readlink,
    /// `open`
    Open,
    /// `read`
    Read,
    /// `release`
    Release,
    /// `flush`
    Flush,
    /// `opendir`
    Opendir,
    /// `readdir`
    Readdir,
    /// `releasedir`
    Releasedir,
    /// `getxattr` and `listxattr`
    Xattr,
    /// `ioctl`
    Ioctl,
    /// `lseek` (`SEEK_DATA`, `SEEK_HOLE`)
    Lseek,
    /// `poll`
    Poll,
    /// `write`
    Write,
    /// `setattr`
    Setattr,
    /// `access` (and `chdir`)
    Access,
    /// what would make or remove a name (`create`, `mkdir`, `unlink`, …)
    Namespace,
    /// `statfs`
    Statfs,
    /// `fsync`, `fdatasync` and `fsyncdir`
    Fsync,
}

impl Op {
    /// Every kind, in the order statistics print them.
    pub const ALL: [Op; 21] = [
        Op::Lookup,
        Op::Forget,
        Op::Getattr,
        Op::Readlink,
        Op::Open,
        Op::Read,
        Op::Release,
        Op::Flush,
        Op::Opendir,
        Op::Readdir,
        Op::Releasedir,
        Op::Xattr,
        Op::Ioctl,
        Op::Lseek,
        Op::Poll,
        Op::Write,
        Op::Setattr,
        Op::Access,
        Op::Namespace,
        Op::Statfs,
        Op::Fsync,
    ];

    /// The request's name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Forget => "forget",
            Op::Getattr => "getattr",
            Op::Readlink => "readlink",
            Op::Open => "open",
            Op::Read => "read",
            Op::Release => "release",
            Op::Flush => "flush",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Releasedir => "releasedir",
            Op::Xattr => "xattr",
            Op::Ioctl => "ioctl",
            Op::Lseek => "lseek",
            Op::Poll => "poll",
            Op::Write => "write",
            Op::Setattr => "setattr",
            Op::Access => "access",
            Op::Namespace => "names",
            Op::Statfs => "statfs",
            Op::Fsync => "fsync",
        }
    }
}

/// What [`Stats::count_follow`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Start,
    Move,
    Starved,
}

/// Requests served, by kind.
#[derive(Debug, Default)]
pub struct Stats {
    counts: [AtomicU64; Op::ALL.len()],
    /// The memory of the memfds behind passthrough files, in kB ([`crate::backing`]):
    /// not in the daemon's RSS, since the daemon does not map them.
    memfd_kb: AtomicU64,
    /// Memfds made for passthrough files, and spares rewritten instead.
    memfds_made: AtomicU64,
    memfds_rewritten: AtomicU64,
    /// Bursts the FUSE thread followed on its reader's CPU, its moves to another CPU,
    /// and followings ended because the thread was starved there ([`crate::spin`]).
    follow_starts: AtomicU64,
    follow_moves: AtomicU64,
    follow_starved: AtomicU64,
}

impl Stats {
    /// Counts one request of kind `op`.
    pub fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of kind `op` so far.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// Records the memory the memfds hold now.
    pub fn set_memfd_kb(&self, kb: u64) {
        self.memfd_kb.store(kb, Ordering::Relaxed);
    }

    /// Counts a memfd made for a passthrough file (`rewritten`: a spare used again).
    pub fn count_memfd(&self, rewritten: bool) {
        let c = match rewritten {
            true => &self.memfds_rewritten,
            false => &self.memfds_made,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event of following a reader's CPU.
    pub fn count_follow(&self, event: Follow) {
        let c = match event {
            Follow::Start => &self.follow_starts,
            Follow::Move => &self.follow_moves,
            Follow::Starved => &self.follow_starved,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `requests lookup=N … total=N rss_kb=N memfd_kb=N cpu_ms=N memfds_made=N
    /// memfds_rewritten=N follow_starts=N follow_moves=N follow_starved=N tasks_read=N
    /// task_lists=N`: one line for logs and the benchmark (`tasks_read`: a task's `stat`
    /// and `status` read to know it, [`crate::host::read_task`]; `task_lists`: a
    /// process's `task/` listed, [`crate::host::list_tids`]).
    pub fn line(&self) -> String {
        let total: u64 = Op::ALL.iter().map(|&o| self.get(o)).sum();
        let mut s = String::from("requests");
        for op in Op::ALL {
            s.push_str(&format!(" {}={}", op.name(), self.get(op)));
        }
        s.push_str(&format!(
            " total={total} rss_kb={} memfd_kb={} cpu_ms={} memfds_made={} memfds_rewritten={} \
             follow_starts={} follow_moves={} follow_starved={} tasks_read={} task_lists={}",
            rss_kb().unwrap_or(0),
            self.memfd_kb.load(Ordering::Relaxed),
            cpu_ms().unwrap_or(0),
            self.memfds_made.load(Ordering::Relaxed),
            self.memfds_rewritten.load(Ordering::Relaxed),
            self.follow_starts.load(Ordering::Relaxed),
            self.follow_moves.load(Ordering::Relaxed),
            self.follow_starved.load(Ordering::Relaxed),
            crate::host::task_reads(),
            crate::host::task_lists(),
        ));
        s
    }
}

/// The CPU time the daemon has used, user and system, in milliseconds: what serving
/// costs, polling included (`crate::spin`).
pub fn cpu_ms() -> Option<u64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let ms = |t: nix::sys::time::TimeVal| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1000
            + u64::try_from(t.tv_usec()).unwrap_or(0) / 1000
    };
    Some(ms(usage.user_time()) + ms(usage.system_time()))
}

/// The daemon's resident set size, from its own `status`.
pub fn rss_kb() -> Option<u64> {
    let status = std::fs::read("/proc/self/status").ok()?;
    crate::render::parse_status(&status).ok()?.vm_rss_kb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_prints() {
        let s = Stats::default();
        s.count(Op::Lookup);
        s.count(Op::Lookup);
        s.count(Op::Ioctl);
        assert_eq!(s.get(Op::Lookup), 2);
        let line = s.line();
        assert!(line.starts_with("requests lookup=2 forget=0 "), "{line}");
        assert!(
            line.contains(
                " ioctl=1 lseek=0 poll=0 write=0 setattr=0 access=0 names=0 statfs=0 fsync=0 total=3 \
                 rss_kb="
            ),
            "{line}"
        );
        assert!(rss_kb().is_some_and(|k| k > 0));
    }
}
