//! Adaptive polling of `/dev/fuse`: while requests keep coming, the FUSE thread asks for
//! the next one without going to sleep, so that the kernel need not wake it for each.
//!
//! Why: a reader of the view waits for every reply. A daemon thread asleep in
//! `read(/dev/fuse)` must first be woken, on the other CPU (the reader's is busy sending
//! the request), and on a VM whose idle vCPUs halt that wake-up alone costs about a third
//! of a round trip (docs/performance.md). A `ps -ef` sends ~9 requests per process back
//! to back, so during such a burst the descriptor is made non-blocking and fuser's loop
//! retries `EAGAIN` at once. A governor thread makes it blocking again after a window
//! in which requests came less often than one per [`WORTH_POLLING`] on average: an idle
//! daemon sleeps and costs no CPU, and a slow trickle of requests (a monitor reading one
//! file every millisecond) does not keep a CPU busy for little gain.
//!
//! It takes a single FUSE thread: two polling threads would take both CPUs of a small
//! machine from the reader, and a second thread asleep on the same queue would be woken by
//! every request, the very cost polling removes (measured: most of the gain is lost).
//!
//! Once it knows its reader's CPU, the thread serves the rest of the burst there
//! ([`follow`]): no round trip then wakes another CPU, which polling alone cannot spare
//! the reader's side of.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

pub mod follow;

use crate::stats::Stats;
use follow::Follow;

/// Polling goes on while requests come at least this often on average: about what the
/// wake-up it saves costs (20–40 µs on the 2-vCPU VM of docs/performance.md), so the CPU
/// time polling spends stays of the order of the waiting time it saves.
pub const WORTH_POLLING: Duration = Duration::from_micros(50);

/// How often the governor, waiting for the `follow` lock, gives the FUSE thread its
/// policy back ([`Spin::lock_follow`]): the lock is held for a look at the reader's CPU,
/// a few µs, unless the thread is starved.
const LOCK_RETRY: Duration = Duration::from_micros(200);

/// The polling state of one FUSE session. [`Spin::request`] is called at every request;
/// [`Spin::start`] attaches the session's descriptor once the session exists.
#[derive(Debug)]
pub struct Spin {
    window: Duration,
    /// Where following is counted ([`follow`]).
    stats: Arc<Stats>,
    /// A duplicate of the session's descriptor: the same open file, whose flags the FUSE
    /// thread's reads obey.
    fd: OnceLock<OwnedFd>,
    governor: OnceLock<Thread>,
    requests: AtomicU64,
    hot: AtomicBool,
    /// Held to change `hot` and the descriptor's flag together.
    switch: Mutex<()>,
    /// The FUSE thread on its reader's CPU during a burst; held while `hot` turns off,
    /// so that following never outlives a burst.
    follow: Mutex<Follow>,
    /// Whether `follow` follows, and the FUSE thread's id: read by the governor
    /// without the lock, which a starved FUSE thread may hold.
    following: AtomicBool,
    fuse_tid: AtomicI32,
    /// The reader it follows.
    reader: AtomicI32,
}

impl Spin {
    /// Polling that ends after a `window` with fewer requests than one per
    /// [`WORTH_POLLING`] (so one to two windows after the last request). A zero window
    /// never polls.
    pub fn new(window: Duration, stats: Arc<Stats>) -> Arc<Spin> {
        Arc::new(Spin {
            window,
            stats,
            fd: OnceLock::new(),
            governor: OnceLock::new(),
            requests: AtomicU64::new(0),
            hot: AtomicBool::new(false),
            switch: Mutex::new(()),
            follow: Mutex::new(Follow::default()),
            following: AtomicBool::new(false),
            fuse_tid: AtomicI32::new(0),
            reader: AtomicI32::new(0),
        })
    }

    /// Whether this polls at all (the session then needs a single FUSE thread).
    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// Attaches the session's descriptor and starts the governor. The descriptor is made
    /// blocking first: a previous daemon that served the same connection may have died
    /// while polling.
    pub fn start(self: &Arc<Self>, session_fd: BorrowedFd<'_>) -> io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let fd = session_fd.try_clone_to_owned()?;
        set_nonblocking(fd.as_fd(), false)?;
        if self.fd.set(fd).is_err() {
            return Err(io::Error::other("polling was already started"));
        }
        let spin = Arc::clone(self);
        let handle = thread::Builder::new()
            .name("vprocfs-spin".into())
            .spawn(move || spin.govern())?;
        let _ = self.governor.set(handle.thread().clone());
        Ok(())
    }

    /// Called by the FUSE thread at each request of thread `reader`: counts it, starts
    /// polling if the thread was sleeping between requests, and during a burst keeps
    /// the thread on the reader's CPU ([`follow`]).
    pub fn request(&self, reader: u32) {
        self.requests.fetch_add(1, SeqCst);
        // Known before the thread first follows: the governor may have to give it its
        // policy back while it is still starting to ([`Spin::lock_follow`]).
        if self.fuse_tid.load(SeqCst) == 0 {
            self.fuse_tid.store(nix::unistd::gettid().as_raw(), SeqCst);
        }
        if !self.hot.load(SeqCst) {
            self.heat();
        }
        // Outside a burst, and not following: nothing to follow (a daemon given one
        // CPU, which never polls, stays here at every request, without the lock).
        if !self.hot.load(SeqCst) && !self.following.load(SeqCst) {
            return;
        }
        let mut follow = crate::sync::lock(&self.follow);
        let was = follow.following();
        // Following starts only in a burst, which the governor ends (and with it the
        // following): `hot` is read under the lock the governor holds to end both.
        if was || self.hot.load(SeqCst) {
            follow.request(i32::try_from(reader).unwrap_or(0), &self.stats);
        }
        let now = follow.following();
        self.following.store(now, SeqCst);
        if now {
            self.reader.store(follow.reader(), SeqCst);
        }
        if now && !was {
            self.set_polling(false);
        } else if was && !now && self.hot.load(SeqCst) && !one_cpu_now() {
            // Stopped within the burst (readers taking turns): poll for them again.
            self.set_polling(true);
        }
    }

    /// Blocking reads again for the rest of a burst followed on the reader's CPU (a
    /// poller there would be runnable beside the reader, and the scheduler's balancing
    /// would move the reader to an idle CPU, away from it), or polling again when
    /// following stops within the burst.
    fn set_polling(&self, on: bool) {
        if let Some(fd) = self.fd.get() {
            let _switch = crate::sync::lock(&self.switch);
            if let Err(e) = set_nonblocking(fd.as_fd(), on) {
                log::warn!("cannot switch polling of /dev/fuse ({e})");
            }
        }
    }

    /// Whether a burst is on: the descriptor is non-blocking, unless the FUSE thread
    /// follows its reader ([`follow`]).
    pub fn polling(&self) -> bool {
        self.hot.load(SeqCst)
    }

    fn heat(&self) {
        let (Some(fd), Some(governor)) = (self.fd.get(), self.governor.get()) else {
            return;
        };
        // A thread allowed one CPU only polls in the place of the reader it waits
        // for: the reader cannot send the next request until the scheduler takes the
        // CPU from the poller (measured, reader and daemon pinned to one CPU: 1–2 ms
        // per round trip instead of 25 µs).
        if on_one_cpu() {
            return;
        }
        let _switch = crate::sync::lock(&self.switch);
        if self.hot.load(SeqCst) {
            return;
        }
        match set_nonblocking(fd.as_fd(), true) {
            Ok(()) => {
                self.hot.store(true, SeqCst);
                governor.unpark();
            }
            Err(e) => log::warn!("cannot poll /dev/fuse ({e}); the FUSE thread sleeps"),
        }
    }

    /// The `follow` lock, for the governor. The FUSE thread holds it while it starts to
    /// follow a reader, and takes `SCHED_IDLE` before it moves to the reader's CPU and
    /// says it follows: on a CPU kept busy by another task it is starved right there,
    /// lock in hand, and the governor, seeing no following to end, waited on the lock
    /// for as long (seconds, with every reader waiting: seen in tests/live_restart.rs
    /// under two busy loops on each CPU, the FUSE thread runnable at `SCHED_IDLE`, the
    /// governor in `futex_wait`). While the lock is held the thread is given its normal
    /// policy back, every [`LOCK_RETRY`], so that it runs on to release it; a burst
    /// being over, following ends right after anyway.
    fn lock_follow(&self) -> std::sync::MutexGuard<'_, Follow> {
        loop {
            match self.follow.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    let tid = self.fuse_tid.load(SeqCst);
                    if tid > 0 {
                        follow::give_policy_back(tid);
                    }
                    thread::sleep(LOCK_RETRY);
                }
            }
        }
    }

    /// While the FUSE thread follows a reader: its total wait for a CPU, and its
    /// reader's total run time.
    fn waits(&self, files: &mut follow::WaitFiles) -> Option<follow::Waits> {
        let tid = self.fuse_tid.load(SeqCst);
        if !self.following.load(SeqCst) || tid <= 0 {
            return None;
        }
        files.waits(tid, self.reader.load(SeqCst))
    }

    /// Requests a window must see for polling to go on.
    fn enough(&self) -> u64 {
        (self.window.as_nanos() / WORTH_POLLING.as_nanos()).max(1) as u64
    }

    /// The governor: while polling, counts the requests of each window; ends polling
    /// after a window with too few.
    fn govern(&self) {
        let Some(fd) = self.fd.get() else { return };
        let enough = self.enough();
        let mut files = follow::WaitFiles::default();
        loop {
            while !self.hot.load(SeqCst) {
                thread::park();
            }
            let mut seen = self.requests.load(SeqCst);
            // How long the FUSE thread, while it follows, waited for its CPU in the
            // last window beyond the time its reader ran (a reader that runs keeps the
            // thread waiting, and that is no reason to stop following it).
            let mut before = self.waits(&mut files);
            let mut waited;
            loop {
                thread::sleep(self.window);
                let after = self.waits(&mut files);
                waited = match (before, after) {
                    (Some(a), Some(b)) if a.reader == b.reader => {
                        let fuse = b.fuse.saturating_sub(a.fuse);
                        fuse.saturating_sub(b.ran.saturating_sub(a.ran))
                    }
                    _ => Duration::ZERO,
                };
                before = after;
                let now = self.requests.load(SeqCst);
                if now - seen < enough {
                    seen = now;
                    break;
                }
                seen = now;
            }
            // The burst is over. A FUSE thread that followed its reader gets its policy
            // back first, without the lock it may hold: on a CPU kept busy by another
            // task, `SCHED_IDLE` would not let it run to release the lock. It was
            // starved if another task than its reader held its CPU most of the window.
            let followed = self.following.load(SeqCst);
            let starved = followed && waited >= self.window / 2;
            let tid = self.fuse_tid.load(SeqCst);
            if followed && tid > 0 {
                follow::give_policy_back(tid);
            }
            let mut follow = self.lock_follow();
            if starved {
                self.stats.count_follow(crate::stats::Follow::Starved);
                if follow.stop_starved() {
                    log::info!(
                        "the FUSE thread waited {waited:?} for its CPU beyond its reader's \
                         run time in a {:?} window, twice: not following readers for {:?}",
                        self.window,
                        follow::HOLD_OFF
                    );
                }
            } else {
                follow.stop();
            }
            self.following.store(false, SeqCst);
            // `follow` stays locked until `hot` is off: a request in between would
            // otherwise start following again in a burst about to end, and nothing
            // would end it.
            let _switch = crate::sync::lock(&self.switch);
            // A burst that began since the last look keeps it polling for another window
            // (following starts again at the FUSE thread's next look).
            if self.requests.load(SeqCst) - seen >= enough {
                continue;
            }
            if let Err(e) = set_nonblocking(fd.as_fd(), false) {
                // Left polling, the thread would keep a CPU busy: say so loudly.
                log::error!("cannot stop polling /dev/fuse ({e}); the FUSE thread spins");
                return;
            }
            self.hot.store(false, SeqCst);
        }
    }
}

/// Whether the calling thread may run on one CPU only; looked at again at most every
/// [`AFFINITY_CHECK`] (the look costs more than a request's own work).
fn on_one_cpu() -> bool {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static LAST: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
    }
    if let Some((when, one)) = LAST.get() {
        if when.elapsed() < AFFINITY_CHECK {
            return one;
        }
    }
    let one = one_cpu_now();
    LAST.set(Some((Instant::now(), one)));
    one
}

/// Whether the calling thread may run on one CPU only, asked of the kernel.
fn one_cpu_now() -> bool {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .is_ok_and(|set| follow::cpus(&set).len() <= 1)
}

/// How often [`on_one_cpu`] looks at the thread's affinity again.
const AFFINITY_CHECK: Duration = Duration::from_millis(100);

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let wanted = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if wanted != flags {
        fcntl(fd, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn nonblocking(fd: BorrowedFd<'_>) -> bool {
        OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).unwrap()).contains(OFlag::O_NONBLOCK)
    }

    /// Waits (up to a generous bound, never asserting a time) for `cond`.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        cond()
    }

    /// Thread `tid`'s scheduling policy (`stat` field 41).
    fn policy_of(tid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(38)?
            .parse()
            .ok()
    }

    /// The governor waiting for the `follow` lock gives the thread that holds it its
    /// normal policy back: a FUSE thread starved at `SCHED_IDLE` while it starts to
    /// follow would otherwise keep the lock, and every reader waiting, for as long as
    /// it is starved. The holder here waits (with a generous bound) to be given it back
    /// before it lets the lock go; with a plain lock it never is.
    #[test]
    fn the_governor_gives_a_lock_holder_at_sched_idle_its_policy_back() {
        if !follow::may_leave_idle() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "leaving SCHED_IDLE needs CAP_SYS_NICE, and CI=true says this must run"
            );
            return;
        }
        let spin = Spin::new(Duration::from_millis(5), Arc::default());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        thread::scope(|s| {
            let holder = s.spawn(|| {
                let tid = nix::unistd::gettid().as_raw();
                spin.fuse_tid.store(tid, SeqCst);
                let _lock = crate::sync::lock(&spin.follow);
                crate::sys::sched::set_policy(0, crate::sys::sched::Policy::Idle).unwrap();
                held_tx.send(()).unwrap();
                let given_back = eventually(|| policy_of(tid) == Some(libc::SCHED_OTHER));
                let _ = crate::sys::sched::set_policy(0, crate::sys::sched::Policy::Normal);
                given_back
            });
            held_rx.recv().unwrap();
            drop(spin.lock_follow());
            assert!(
                holder.join().unwrap(),
                "the holder of the lock was given SCHED_OTHER back while the governor waited"
            );
        });
    }

    #[test]
    fn a_thread_allowed_one_cpu_never_polls() {
        use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
        let (r, _w) = nix::unistd::pipe().unwrap();
        let spin = Spin::new(Duration::from_millis(5), Arc::default());
        spin.start(r.as_fd()).unwrap();
        let me = nix::unistd::Pid::from_raw(0);
        thread::scope(|s| {
            s.spawn(|| {
                let all = sched_getaffinity(me).unwrap();
                let first = (0..CpuSet::count())
                    .find(|&i| all.is_set(i).unwrap_or(false))
                    .unwrap();
                let mut one = CpuSet::new();
                one.set(first).unwrap();
                sched_setaffinity(me, &one).unwrap();
                spin.request(0);
                assert!(!spin.polling());
                assert!(!nonblocking(r.as_fd()));
            });
        });
    }

    #[test]
    fn a_request_starts_polling_and_a_quiet_window_ends_it() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        // As a daemon that died while polling would leave it.
        set_nonblocking(r.as_fd(), true).unwrap();
        let spin = Spin::new(Duration::from_millis(5), Arc::default());
        spin.start(r.as_fd()).unwrap();
        assert!(
            !nonblocking(r.as_fd()),
            "start makes the descriptor blocking"
        );
        assert!(!spin.polling());

        spin.request(0);
        assert!(spin.polling());
        assert!(nonblocking(r.as_fd()), "a request makes it non-blocking");

        assert!(eventually(|| !spin.polling()), "polling never ended");
        assert!(
            !nonblocking(r.as_fd()),
            "a quiet window makes it blocking again"
        );

        // And again: the governor goes back to waiting, not away.
        spin.request(0);
        assert!(nonblocking(r.as_fd()));
        assert!(eventually(|| !spin.polling()));
        assert!(!nonblocking(r.as_fd()));
    }

    #[test]
    fn requests_keep_it_polling() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        // A window far longer than the gaps, so that a descheduled test cannot end it.
        let spin = Spin::new(Duration::from_secs(1), Arc::default());
        spin.start(r.as_fd()).unwrap();
        for _ in 0..20 {
            spin.request(0);
            assert!(nonblocking(r.as_fd()), "polling ended while requests came");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(eventually(|| !spin.polling()));
    }

    #[test]
    fn a_trickle_of_requests_does_not_keep_it_polling() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        // 5 ms windows need 100 requests each; this sends about 5.
        let spin = Spin::new(Duration::from_millis(5), Arc::default());
        spin.start(r.as_fd()).unwrap();
        let mut stopped = false;
        for _ in 0..2000 {
            spin.request(0);
            thread::sleep(Duration::from_millis(1));
            if !spin.polling() {
                stopped = true;
                break;
            }
        }
        assert!(stopped, "requests every millisecond kept it polling");
    }

    #[test]
    fn a_zero_window_never_polls() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let spin = Spin::new(Duration::ZERO, Arc::default());
        assert!(!spin.enabled());
        spin.start(r.as_fd()).unwrap();
        spin.request(0);
        assert!(!spin.polling());
        assert!(!nonblocking(r.as_fd()));
    }

    #[test]
    fn requests_before_start_do_nothing() {
        let spin = Spin::new(Duration::from_millis(5), Arc::default());
        spin.request(0);
        assert!(!spin.polling());
    }
}
