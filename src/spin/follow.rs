//! Serving a burst of requests on the reader's own CPU.
//!
//! Why: a reader waits for every reply. When the reader and the FUSE thread run on two
//! CPUs, each round trip wakes the other CPU, and on a VM whose idle vCPUs halt that
//! wake-up costs 30–60 µs, ten times a round trip on one CPU (docs/performance.md). Two
//! things keep a round trip on one CPU, and both are needed:
//! - the FUSE thread runs on the reader's CPU (its affinity), so that a request wakes
//!   it there, where the reader is about to block;
//! - its policy is `SCHED_IDLE`, so that when its reply wakes the reader, the
//!   scheduler counts that CPU as idle (`sched_idle_cpu`) and wakes the reader there,
//!   at once, instead of moving it to another CPU, idle and halted, where the next
//!   request would have to wake the FUSE thread across CPUs again.
//!
//! The reader's CPU is read from its `stat` (`processor`) every [`SAMPLE_EVERY`]
//! requests, when the reader changes, and after a round trip slower than [`SLOW_GAP`]
//! (the reader may have been moved), and the thread moves when it changed. While it
//! follows it does not poll: a poller runnable beside the reader would have the
//! scheduler's balancing pull the reader to an idle CPU. All of
//! it lasts a burst: when the burst ends ([`super::Spin`]'s governor) the thread gets
//! back its policy and affinity. `SCHED_IDLE` would starve the FUSE thread on a CPU
//! kept busy by another task, and with it every reader: a burst ends after a window in
//! which the thread waited for its CPU, beyond the time its reader ran, for more than
//! half the window, and a second such end within [`STARVED_AGAIN`] ends following for
//! [`HOLD_OFF`].
//!
//! Readers that take turns (two `ps` at once) are not followed: on the CPU of one, the
//! others' round trips would all cross CPUs; the thread polls for them as before.
//!
//! Only the CPUs the daemon was given are used (its main thread's affinity, see
//! `given`): a daemon given one CPU (the benchmark's pinned placement, `taskset`)
//! never follows.

use std::io;
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::stats::{Follow as StatsFollow, Stats};
use crate::sys::sched::{set_policy, Policy};

/// Requests of one reader between two looks at its CPU: a look (a `pread` of its `stat`,
/// kept open, and the daemon's affinity) costs a few µs, and a reader left on another
/// CPU costs a wake-up per request until the next look.
pub const SAMPLE_EVERY: u32 = 32;

/// Requests between two looks at least, even when the reader changes: two readers
/// taking turns must not make every request a look.
pub const MIN_GAP: u32 = 4;

/// A reader whose next request comes this long after the previous one may have been
/// moved to another CPU (a round trip across CPUs costs 30–60 µs here, one on the
/// same CPU 10–15 µs): its CPU is looked at again at once. A reader that works that
/// long between requests pays a look (a few µs) on a request it waited longer for.
pub const SLOW_GAP: Duration = Duration::from_micros(50);

/// How long following stays off once the thread was found starved twice.
pub const HOLD_OFF: Duration = Duration::from_secs(1);

/// More changes of reader than this between two looks are readers taking turns (the
/// first request of a burst, after another reader's burst, is one change).
pub const CROWD: u32 = 2;

/// How long following stays off when readers take turns; then it is tried again.
pub const CROWD_HOLD_OFF: Duration = Duration::from_millis(500);

/// Two starvations this close make a CPU kept busy (see [`Follow::stop_starved`]).
pub const STARVED_AGAIN: Duration = Duration::from_millis(100);

/// What the FUSE thread should do after a look at its reader's CPU; the pure core of
/// [`Follow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Nothing: already there, or the CPU is not one the thread may use.
    Stay,
    /// Start following: `SCHED_IDLE`, then run on this CPU only.
    Start(usize),
    /// Move to this CPU.
    To(usize),
}

/// Decides the move for a reader last seen on `reader_cpu`, with the thread on
/// `followed` (`None`: not following) and `allowed` the CPUs it was given.
pub fn decide(reader_cpu: usize, followed: Option<usize>, allowed: &[usize]) -> Move {
    if allowed.len() < 2 || !allowed.contains(&reader_cpu) {
        return Move::Stay;
    }
    match followed {
        None => Move::Start(reader_cpu),
        Some(c) if c == reader_cpu => Move::Stay,
        Some(_) => Move::To(reader_cpu),
    }
}

/// Whether to look at the reader's CPU again, `since_look` requests after the last
/// look, at a request of another reader than the last (`changed`), `gap` after the
/// previous request.
pub fn due(since_look: u32, changed: bool, gap: Option<Duration>) -> bool {
    let slow = gap.is_some_and(|g| g >= SLOW_GAP);
    since_look >= SAMPLE_EVERY || (changed && since_look >= MIN_GAP) || (slow && since_look >= 2)
}

/// The following state of the one FUSE thread.
#[derive(Debug, Default)]
pub struct Follow {
    /// The FUSE thread, learnt at its first request.
    tid: Option<i32>,
    followed: Option<usize>,
    reader: i32,
    since_look: u32,
    /// When the last request of a waiting reader came.
    last: Option<Instant>,
    hold_off_until: Option<Instant>,
    /// When the thread was last found starved.
    starved_at: Option<Instant>,
    /// The reader of the previous request, and how often the reader changed since the
    /// last look.
    previous: i32,
    turns: u32,
    /// The `stat` of the reader last looked at, kept open: a look is then one `pread`
    /// rather than an open, a read and a close (a `ps` is one reader for all its
    /// requests).
    reader_stat: Option<(i32, std::fs::File)>,
}

impl Follow {
    /// At each request of `reader` (a thread id; 0 for a request no thread waits for,
    /// such as an asynchronous release), on the FUSE thread.
    pub fn request(&mut self, reader: i32, stats: &Stats) {
        if self.tid.is_none() {
            self.tid = Some(nix::unistd::gettid().as_raw());
        }
        if reader <= 0 {
            return;
        }
        self.since_look += 1;
        if reader != self.previous {
            self.turns += 1;
            self.previous = reader;
        }
        let now = Instant::now();
        let gap = self.last.map(|t| now - t);
        self.last = Some(now);
        let first = self.reader == 0;
        if !first && !due(self.since_look, reader != self.reader, gap) {
            return;
        }
        self.since_look = 0;
        self.reader = reader;
        let crowded = std::mem::take(&mut self.turns) > CROWD;
        if crowded {
            // Readers taking turns: on the CPU of one, the thread would make every round
            // trip of the others cross CPUs and wait behind the one; polling serves
            // them all better.
            self.stop();
            self.hold_off_until = Some(now + CROWD_HOLD_OFF);
            return;
        }
        if self.hold_off_until.is_some_and(|t| now < t) {
            return;
        }
        let Some(cpu) = reader_cpu(&mut self.reader_stat, reader) else {
            return;
        };
        if let Err(e) = self.look(cpu, stats) {
            log::debug!("not following reader {reader} to CPU {cpu}: {e}");
            self.stop();
            self.hold_off_until = Some(Instant::now() + HOLD_OFF);
        }
    }

    fn look(&mut self, cpu: usize, stats: &Stats) -> io::Result<()> {
        let given = cpus(&given()?);
        match decide(cpu, self.followed, &given) {
            Move::Stay => {
                if self.followed.is_some() && given.len() < 2 {
                    // Given one CPU from outside meanwhile: nothing left to follow.
                    self.stop();
                }
                Ok(())
            }
            Move::Start(c) => {
                if !may_leave_idle() {
                    return Err(io::Error::other(
                        "SCHED_IDLE could not be left again (no CAP_SYS_NICE, RLIMIT_NICE 0)",
                    ));
                }
                set_policy(0, Policy::Idle)?;
                stats.count_follow(StatsFollow::Start);
                self.pin(c)
            }
            Move::To(c) => {
                stats.count_follow(StatsFollow::Move);
                self.pin(c)
            }
        }
    }

    fn pin(&mut self, cpu: usize) -> io::Result<()> {
        let mut one = CpuSet::new();
        one.set(cpu)?;
        sched_setaffinity(Pid::from_raw(0), &one)?;
        self.followed = Some(cpu);
        Ok(())
    }

    /// The reader last looked at.
    pub fn reader(&self) -> i32 {
        self.reader
    }

    /// Whether the thread follows a reader now.
    pub fn following(&self) -> bool {
        self.followed.is_some()
    }

    /// Ends following: the thread's policy back, and the daemon's CPUs (`given`).
    /// From any thread.
    pub fn stop(&mut self) {
        let (Some(tid), Some(_)) = (self.tid, self.followed.take()) else {
            return;
        };
        give_policy_back(tid);
        if let Err(e) = given().and_then(|set| Ok(sched_setaffinity(Pid::from_raw(tid), &set)?)) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("cannot give the FUSE thread its CPUs back: {e}");
            }
        }
    }

    /// Ends following because another task kept the thread from its CPU for most of
    /// the burst's last window. Once is no proof of a busy CPU (the daemon's own
    /// threads, a short task); a second time within [`STARVED_AGAIN`] is, and the
    /// thread then follows no reader for [`HOLD_OFF`]. Returns whether it holds off.
    pub fn stop_starved(&mut self) -> bool {
        self.stop();
        let now = Instant::now();
        let again = self.starved_at.is_some_and(|t| now - t < STARVED_AGAIN);
        self.starved_at = Some(now);
        if again {
            self.hold_off_until = Some(now + HOLD_OFF);
        }
        again
    }
}

/// Gives FUSE thread `tid` its normal policy back, from any thread. A thread gone
/// (the session ended during a burst) has nothing to give back.
pub fn give_policy_back(tid: i32) {
    if let Err(e) = set_policy(tid, Policy::Normal) {
        if e.raw_os_error() != Some(libc::ESRCH) {
            log::warn!("cannot give the FUSE thread its scheduling policy back: {e}");
        }
    }
}

/// Gives every thread of process `pid` the normal policy and the caller's CPUs, so that
/// one that followed a reader (`SCHED_IDLE`, one CPU) does not crawl through its exit
/// on a busy CPU: called by the supervisor for a worker whose main thread is gone.
/// Errors (a thread that ended meanwhile) are ignored.
pub fn let_threads_go(pid: u32) {
    let Ok(tids) = crate::host::list_tids(i32::try_from(pid).unwrap_or(0)) else {
        return;
    };
    let cpus = sched_getaffinity(Pid::from_raw(0));
    for tid in tids {
        let _ = set_policy(tid, Policy::Normal);
        if let Ok(set) = &cpus {
            let _ = sched_setaffinity(Pid::from_raw(tid), set);
        }
    }
}

/// Whether the FUSE thread could go back from `SCHED_IDLE` to `SCHED_OTHER`: the
/// kernel lets a thread without `CAP_SYS_NICE` in the initial user namespace do so only
/// within its `RLIMIT_NICE` (`can_nice`), which is 0 by default, and a thread left at
/// `SCHED_IDLE` would starve on a busy CPU for good. Tried once, on a thread of its
/// own, rather than guessed from the capability sets: a daemon in a user namespace of
/// its own holds every capability there, which the scheduler does not count.
pub(super) fn may_leave_idle() -> bool {
    use crate::sys::sched::{set_policy, Policy};
    use std::sync::OnceLock;
    static MAY: OnceLock<bool> = OnceLock::new();
    *MAY.get_or_init(|| {
        std::thread::Builder::new()
            .name("vprocfs-nice".into())
            .spawn(|| set_policy(0, Policy::Idle).is_ok() && set_policy(0, Policy::Normal).is_ok())
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(false)
    })
}

/// The CPUs the daemon was given: those of its main thread, which nothing of the daemon
/// changes, and which `taskset -a -p` changes with every other thread. So an affinity
/// set from outside at any time, during a burst included, is what the FUSE thread
/// follows within and gets back.
fn given() -> io::Result<CpuSet> {
    Ok(sched_getaffinity(nix::unistd::getpid())?)
}

/// The CPUs of an affinity mask.
pub(super) fn cpus(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .collect()
}

/// What tells a FUSE thread starved on its reader's CPU apart from one waiting while its
/// reader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// The FUSE thread's total wait for a CPU (`run_delay` of its `schedstat`).
    pub fuse: Duration,
    pub reader: i32,
    /// The reader's total run time (`sum_exec_runtime`).
    pub ran: Duration,
}

/// The `schedstat` files the governor reads at every window while the thread follows,
/// kept open (a `pread` at 0 renders them anew) rather than opened by path each time:
/// the governor wakes every millisecond, and may wake on the very CPU it watches.
#[derive(Debug, Default)]
pub struct WaitFiles {
    fuse: Option<(i32, std::fs::File)>,
    reader: Option<(i32, std::fs::File)>,
}

impl WaitFiles {
    /// [`Waits`] of FUSE thread `tid` (of this process) and reader thread `reader`.
    pub fn waits(&mut self, tid: i32, reader: i32) -> Option<Waits> {
        let fuse = schedstat(&mut self.fuse, tid, &format!("self/task/{tid}/schedstat"))?.1;
        let ran = schedstat(&mut self.reader, reader, &format!("{reader}/schedstat"))?.0;
        Some(Waits { fuse, reader, ran })
    }
}

/// Task `tid`'s `schedstat` (a file procfs writes in one go), through the file `kept`
/// holds open for it ([`read_kept`]): time run, time waited for a CPU. `None` once the
/// task is gone.
fn schedstat(
    kept: &mut Option<(i32, std::fs::File)>,
    tid: i32,
    rel: &str,
) -> Option<(Duration, Duration)> {
    let raw = read_kept(kept, tid, rel, 256)?;
    let text = std::str::from_utf8(&raw).ok()?;
    let mut f = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    let ran = f.next()??;
    let waited = f.next()??;
    Some((Duration::from_nanos(ran), Duration::from_nanos(waited)))
}

/// The CPU thread `tid` last ran on, from its `stat` kept open in `kept`; `None` if it
/// is gone or unreadable.
fn reader_cpu(kept: &mut Option<(i32, std::fs::File)>, tid: i32) -> Option<usize> {
    let raw = read_kept(kept, tid, &format!("{tid}/stat"), 1024)?;
    let cpu = crate::render::stat::processor(&raw).ok()?;
    usize::try_from(cpu).ok()
}

/// The text (at most `cap` bytes) of a file procfs writes in one go and renders anew at
/// each read from offset 0, of task `tid`, through the file `kept` holds open for it:
/// opened at `rel` below `/proc` when it holds another task's or none. A task's file
/// reads `ESRCH` once the task is gone, even when its number was taken again: then it
/// is opened anew, once.
fn read_kept(
    kept: &mut Option<(i32, std::fs::File)>,
    tid: i32,
    rel: &str,
    cap: usize,
) -> Option<Vec<u8>> {
    for fresh in [false, true] {
        if fresh || kept.as_ref().is_none_or(|(t, _)| *t != tid) {
            *kept = None;
            let file = std::fs::File::open(crate::host::proc_path(rel)).ok()?;
            *kept = Some((tid, file));
        }
        let raw = kept
            .as_ref()
            .and_then(|(_, f)| crate::host::pread_whole(f, cap).ok().flatten());
        if raw.is_some() {
            return raw;
        }
    }
    *kept = None;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_only_within_two_or_more_given_cpus() {
        assert_eq!(decide(1, None, &[0, 1]), Move::Start(1));
        assert_eq!(decide(1, Some(1), &[0, 1]), Move::Stay);
        assert_eq!(decide(0, Some(1), &[0, 1]), Move::To(0));
        // Pinned from outside to one CPU, or a reader on a CPU not given.
        assert_eq!(decide(0, None, &[0]), Move::Stay);
        assert_eq!(decide(3, None, &[0, 1]), Move::Stay);
        assert_eq!(decide(3, Some(1), &[0, 1]), Move::Stay);
    }

    /// A reader's `stat` is opened at the first look and read again through the same
    /// descriptor; once the reader is gone the look finds nothing and keeps nothing.
    #[test]
    fn a_look_reads_the_kept_stat_until_the_reader_is_gone() {
        use std::os::fd::AsRawFd as _;
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        let tid = i32::try_from(child.id()).expect("pid");
        let mut kept = None;
        assert!(reader_cpu(&mut kept, tid).is_some());
        let fd = kept
            .as_ref()
            .map(|(_, f): &(i32, std::fs::File)| f.as_raw_fd());
        assert!(reader_cpu(&mut kept, tid).is_some());
        assert_eq!(
            kept.as_ref().map(|(_, f)| f.as_raw_fd()),
            fd,
            "not opened again"
        );
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert_eq!(reader_cpu(&mut kept, tid), None);
        assert!(kept.is_none());
    }

    #[test]
    fn looks_again_periodically_when_the_reader_changes_or_slows() {
        let fast = Some(Duration::from_micros(10));
        let slow = Some(SLOW_GAP);
        assert!(!due(1, false, fast));
        assert!(due(SAMPLE_EVERY, false, fast));
        // Another reader, but not at every request when two take turns.
        assert!(!due(MIN_GAP - 1, true, fast));
        assert!(due(MIN_GAP, true, fast));
        // A slow round trip: the reader may be on another CPU now.
        assert!(!due(1, false, slow));
        assert!(due(2, false, slow));
        assert!(!due(2, false, None));
    }
}
