//! How the daemon shares out its descriptors.
//!
//! Three caches keep descriptors open to spare system calls on the hot path, and all
//! draw on one soft `RLIMIT_NOFILE` (the daemon raises it to the hard limit, and root
//! raises that too where it may: [`crate::daemon::raise_fd_limit`]). Where the limit
//! is low (measured: a container without `CAP_SYS_RESOURCE` stays at 20,000), a VPS of
//! 10,000 processes and 12,000 threads wants more than there is, so each cache gets a
//! share, in the order of what a descriptor saves:
//!
//! 1. a reserve for the requests themselves ([`FUSE_RESERVE`]): an open handle holds
//!    its real file while it is open, and the backing files of passthrough opens are
//!    memfds the daemon keeps open to rewrite them;
//! 2. a pidfd of each member whose directory the kernel was given: every request
//!    about the process checks it is alive, which a pidfd answers in one system call
//!    and a read of its `stat` otherwise in three, with a path walk (a `ps -ef` checks
//!    each process three times);
//! 3. the kept `stat`, `status` and `cmdline` of members, re-read with one `pread`
//!    each instead of open, read and close ([`crate::view`]'s `kept`);
//! 4. the load sampler's open `stat` of each thread, re-read every 5 s
//!    ([`crate::resources::cgroup`]): 3.3 µs a thread instead of 5.5, a background cost.
//!
//! The last two split what the first two leave.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors left for open handles and the memfds of backing files: those in use,
/// the idle ones (one page each at least, `IDLE_PAGES` in all) and the spares
/// ([`crate::backing`]).
const FUSE_RESERVE: usize = 4096 + 1024;

/// The part of the reserve that open handles (a real file each while open) and the
/// daemon's own files keep; the rest may hold memfds. At a limit of 20,000 the rest
/// (4,488) holds every idle backing file and spare, so none is made anew for a repeated
/// `ps -ef` of 10,000 processes (with 1,024 kept here, 0.09 a process were).
const FOR_HANDLES: usize = 512;

/// The soft `RLIMIT_NOFILE` as last read; 0 before the first read.
static SOFT: AtomicUsize = AtomicUsize::new(0);

/// The soft `RLIMIT_NOFILE`, read once (the caches ask at every member they keep
/// something of) and again after [`limit_changed`].
pub fn soft_limit() -> usize {
    match SOFT.load(Ordering::Relaxed) {
        0 => limit_changed(),
        soft => soft,
    }
}

/// Reads the soft `RLIMIT_NOFILE` again, after the daemon changed it, and answers it.
pub fn limit_changed() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX).max(1);
    SOFT.store(soft, Ordering::Relaxed);
    soft
}

/// How many descriptors one cache holds now, in every part of the daemon, counted
/// against its share ([`Shares`]).
#[derive(Debug, Default)]
pub struct Tally(AtomicUsize);

impl Tally {
    /// None held yet (a `const fn`, for the statics that hold a tally).
    pub const fn new() -> Tally {
        Tally(AtomicUsize::new(0))
    }

    /// Whether fewer than `share` are held: room for one more.
    pub fn room(&self, share: usize) -> bool {
        self.0.load(Ordering::Relaxed) < share
    }

    /// Counts one more if fewer than `share` are held; answers whether it did.
    pub fn take(&self, share: usize) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < share).then_some(n + 1)
            })
            .is_ok()
    }

    /// `n` of those counted were closed.
    pub fn give_back(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The shares of a soft limit of `soft` descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    /// Memfds of backing files the daemon keeps open to rewrite them (part of the
    /// reserve).
    pub memfds: usize,
    /// Pidfds of members.
    pub pidfds: usize,
    /// Kept `stat`, `status` and `cmdline` files of members, counted one by one.
    pub kept_files: usize,
    /// The load sampler's open `stat` files.
    pub sampler: usize,
}

/// The descriptors the daemon holds whatever its VPSes hold (the FUSE device, the
/// event socket, pipes, cgroup control files, the standard streams: about 30 with one
/// VPS), with room for the requests of one reader: the reserve is never smaller.
const OWN_FLOOR: usize = 64;

/// What of `soft` descriptors the caches leave for requests and the daemon's own
/// files.
fn reserve(soft: usize) -> usize {
    FUSE_RESERVE.min(soft / 4).max(OWN_FLOOR.min(soft))
}

impl Shares {
    /// The shares of `soft` descriptors: the reserve first (a quarter of a small limit,
    /// but never less than [`OWN_FLOOR`]), then pidfds (at most half the limit), then
    /// the rest split evenly.
    pub fn of(soft: usize) -> Shares {
        let reserve = reserve(soft);
        let usable = soft.saturating_sub(reserve);
        let pidfds = usable.min(soft / 2);
        let rest = usable - pidfds;
        Shares {
            memfds: reserve.saturating_sub(FOR_HANDLES),
            pidfds,
            kept_files: rest / 2,
            sampler: rest - rest / 2,
        }
    }

    /// The shares of this process's soft limit now.
    pub fn now() -> Shares {
        Shares::of(soft_limit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_never_exceed_the_limit_and_keep_the_reserve() {
        for soft in [0, 1, 64, 100, 1024, 4096, 20_000, 65_536, 262_144, 1 << 20] {
            let s = Shares::of(soft);
            let used = s.pidfds + s.kept_files + s.sampler;
            assert!(used <= soft, "{soft}: {s:?}");
            assert_eq!(soft - used, reserve(soft), "{soft}: {s:?}");
            assert!(s.pidfds <= soft / 2, "{soft}: {s:?}");
        }
    }

    /// Under a small limit the caches take nothing from what the daemon needs to
    /// answer at all (at 64 descriptors they took 48, and readers got `EMFILE`).
    #[test]
    fn a_small_limit_leaves_the_daemon_its_own_descriptors() {
        for soft in [16, 64] {
            let s = Shares::of(soft);
            assert_eq!(s.pidfds + s.kept_files + s.sampler, 0, "{soft}: {s:?}");
        }
        let s = Shares::of(128);
        assert_eq!(128 - s.pidfds - s.kept_files - s.sampler, OWN_FLOOR);
    }

    #[test]
    fn a_tally_keeps_to_its_share() {
        let t = Tally::new();
        assert!(t.take(2) && t.take(2));
        assert!(!t.room(2) && !t.take(2), "the share is spent");
        t.give_back(1);
        assert!(t.room(2) && t.take(2));
        assert!(!t.take(0), "a share of none takes none");
    }

    #[test]
    fn a_20000_limit_gives_a_pidfd_to_each_of_10000_processes() {
        let s = Shares::of(20_000);
        assert_eq!(s.pidfds, 10_000);
        assert_eq!(
            s.memfds,
            5000 - FOR_HANDLES,
            "the idle memfds nearly all fit"
        );
        assert_eq!(
            s.kept_files + s.sampler,
            20_000 - FUSE_RESERVE.min(5000) - 10_000
        );
    }

    #[test]
    fn the_default_limit_of_1024_still_reserves_for_requests() {
        let s = Shares::of(1024);
        assert_eq!(s.pidfds, 512);
        assert_eq!(1024 - s.pidfds - s.kept_files - s.sampler, 256);
        assert_eq!(s.memfds, 0, "no memfd is kept open: none is rewritten");
    }
}
