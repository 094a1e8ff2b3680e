//! What the kernel may cache of the view, and how the view takes it back.
//!
//! The kernel's dentry and attribute caches belong to a mount, not to a reader, so only
//! a mount that serves one VPS ([`super::View::single`], [`super::View::mount_of`]) lets
//! the kernel keep the names of processes (`/proc/<vpid>`, `task/<vtid>`) and of their
//! entries: until the process-events connector reports the process's exit, when the
//! view invalidates them (`FUSE_NOTIFY_INVAL_ENTRY`, which drops everything below as
//! well). A zombie's names are never kept, so a reaped process is `ENOENT` at once, as on
//! procfs.
//!
//! The exit event reaches the daemon a moment after the parent's `wait` may have
//! returned, and a request whose path walk took a cached name just before the
//! invalidation reaches the daemon after it, by as much as a reader is descheduled
//! between the two. Such a request, about a process that is gone, is answered `ESTALE`
//! once ([`Held::take_stale`]): the kernel then walks the path again with every entry
//! revalidated (`LOOKUP_REVAL`, in `open`, `stat`, `readlink`…), and the fresh walk gets
//! procfs's own answer. A request through a handle a reader holds open gets procfs's
//! answer for a descriptor (`ESRCH`, or the attributes of `fstat`); so does any request
//! once the `ESTALE` was given (a `stat(".")` in a gone process's directory: the walk
//! again comes back to the same inode).
//!
//! In a mount of one VPS the attributes of a process's directory and of its entries are
//! never kept: the walk to them goes through the process's kept name, so a `stat` of a
//! reaped process's directory or entry would be answered from the kernel's cache until
//! the exit event is applied (it must fail at once), and their owner follows the
//! process's credentials and dumpable flag (`prctl` reports no event). A shared mount
//! asks for the process's name at every walk, which fails once it is reaped; it keeps
//! the attributes for a second, and drops its entries' when a walk finds their owner
//! moved. Permission is the daemon's decision at every lookup, open, readlink and
//! access, so a cached owner never lets anyone in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::Pid;

/// How long answers may be cached by the kernel.
pub struct Caching;

impl Caching {
    /// For reader-dependent answers.
    pub const NONE: Duration = Duration::ZERO;
    /// For attributes, and for every name of a mount shared by VPSes.
    pub const STABLE: Duration = Duration::from_secs(1);
    /// For what stays while the node lives: the names of a process and of its entries
    /// in a mount of one VPS (invalidated at the process's exit), and that a process
    /// directory has no entry of a given name (its entries are the kernel's fixed table,
    /// `fs/proc/base.c`).
    pub const FIXED: Duration = Duration::from_secs(3600);
}

/// A process or thread directory: real number, thread (for `task/<tid>`), start time.
pub type DirKey = (Pid, Option<Pid>, u64);

/// The process directories whose names the kernel was given for long (until the
/// process's exit). A request about such a process, once it is gone, that does not come
/// through a handle came through such a name: however late it arrives (a reader
/// descheduled between its walk and its request, on a loaded machine, arrives long after
/// the name was invalidated), it is answered `ESTALE`, once for each reader task.
///
/// Once for each task, not once in all: several readers may walk the same stale name
/// at once (a `ps` walking `/proc/<its vpid>` through the name a dead process left, and
/// another `ps` listing every process), and the one whose request comes second needs
/// its own walk again as much as the first.
///
/// The kernel walks again after an `ESTALE` only once: a second `ESTALE` within the same
/// system call would reach the reader. The walk again is the task's next requests: a
/// lookup of every name on the path (`LOOKUP_REVAL` makes each one ask), then the
/// request of the call itself (`open`, `stat`, `readlink`…), or only that request when
/// the path ends in the gone directory (a `stat(".")` in it). Whatever process those
/// lookups find (the number may have gone to another, which may die before the call's
/// request, or be a zombie whose name is not kept), the first answer about a gone
/// process within the walk again is the plain one (`ESRCH`, as procfs answers a request
/// whose walk found the process alive). The walk again ends at the first request of the
/// task after the call's own ([`Held::step`]). A task told `ESTALE` about a process also
/// gets the plain answer about it for a while ([`WALK_AGAIN`]) after its walk again: a
/// descriptor-less path to it (a `stat(".")`) comes back to the same inode. The name
/// stays held until the kernel forgets it.
#[derive(Clone, Default)]
pub struct Held(Arc<HeldState>);

#[derive(Default)]
struct HeldState {
    sets: Mutex<HeldSets>,
    /// Whether some task's walk again may be under way: spares every request the lock
    /// when none is (the common case).
    walking: AtomicBool,
}

#[derive(Default)]
struct HeldSets {
    /// Names given and not yet forgotten.
    held: FxHashSet<DirKey>,
    /// The tasks answered `ESTALE` about a process, and when.
    told: FxHashMap<(Pid, DirKey), Instant>,
    /// The tasks answered `ESTALE` whose walk again is under way.
    walking_again: FxHashMap<Pid, WalkAgain>,
}

/// A task's walk again, from its `ESTALE` ([`Held`]).
#[derive(Clone, Copy)]
struct WalkAgain {
    /// When the `ESTALE` was given.
    at: Instant,
    /// The call's own request (not a lookup) has come: the walk again ends at the
    /// task's next request.
    at_call: bool,
}

/// A request of a reader task that came through a name ([`Held::step`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// A lookup of a name on the path.
    Lookup,
    /// The request of the system call itself: `open`, `stat`, `readlink`, `access`…
    Call,
}

/// How long after its `ESTALE` a reader's requests may still be its walk again, and a
/// request about the same process gets the plain answer: the kernel walks again at
/// once, but a loaded machine may hold the reader off the CPU for a while.
const WALK_AGAIN: Duration = Duration::from_secs(1);

/// At most this many readers' `ESTALE`s are remembered; past it, those older than
/// [`WALK_AGAIN`] go.
const WALKING_MAX: usize = 1024;

/// Drops the entries of `map` older than [`WALK_AGAIN`] when it is full.
fn drop_old_when_full<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, Instant>, now: Instant) {
    if map.len() >= WALKING_MAX {
        map.retain(|_, at| now.saturating_duration_since(*at) < WALK_AGAIN);
    }
}

impl Held {
    fn sets(&self) -> std::sync::MutexGuard<'_, HeldSets> {
        crate::sync::lock(&self.0.sets)
    }

    /// The kernel was given a long-lived name for `key`.
    pub fn insert(&self, key: DirKey) {
        self.sets().held.insert(key);
    }

    /// The kernel forgot `key`'s directory.
    pub fn remove(&self, key: &DirKey) {
        self.sets().held.remove(key);
    }

    /// Task `tid` makes a request through a name: a step of its walk again, if one is
    /// under way, or the first request after it, which ends it.
    pub fn step(&self, tid: Pid, step: Step) {
        if !self.0.walking.load(Ordering::Acquire) {
            return;
        }
        let mut sets = self.sets();
        match sets.walking_again.get_mut(&tid) {
            Some(walk) if !walk.at_call => walk.at_call = step == Step::Call,
            Some(_) => {
                sets.walking_again.remove(&tid);
            }
            None => {}
        }
        self.forget_old_walks(&mut sets, Instant::now());
    }

    /// Forgets the walks again older than [`WALK_AGAIN`] (a task may never make another
    /// request), and notes whether any is left.
    fn forget_old_walks(&self, sets: &mut HeldSets, now: Instant) {
        let walks = &mut sets.walking_again;
        walks.retain(|_, w| now.saturating_duration_since(w.at) < WALK_AGAIN);
        self.0.walking.store(!walks.is_empty(), Ordering::Release);
    }

    /// Whether a request of task `tid` about the gone process `key` may have come
    /// through a name the kernel held and is to be answered `ESTALE`: once for each task
    /// (see [`Held`]), and never within the task's walk again, whose first such answer
    /// ends it.
    pub fn take_stale(&self, key: &DirKey, tid: Pid) -> bool {
        let mut sets = self.sets();
        let now = Instant::now();
        let recent = |at: Instant| now.saturating_duration_since(at) < WALK_AGAIN;
        if let Some(walk) = sets.walking_again.remove(&tid) {
            self.forget_old_walks(&mut sets, now);
            if recent(walk.at) {
                return false;
            }
        }
        let told = sets.told.get(&(tid, *key)).copied();
        if !sets.held.contains(key) || told.is_some_and(recent) {
            return false;
        }
        drop_old_when_full(&mut sets.told, now);
        sets.told.insert((tid, *key), now);
        let walk = WalkAgain {
            at: now,
            at_call: false,
        };
        sets.walking_again.insert(tid, walk);
        self.forget_old_walks(&mut sets, now);
        true
    }

    /// Whether no name is held.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.sets().held.is_empty()
    }
}

/// A batch for the thread that tells the kernel to drop names: `(directory inode,
/// name)` pairs.
#[derive(Debug, Default)]
pub struct FlushBatch {
    /// The names to invalidate.
    pub names: Vec<(u64, String)>,
}

/// See [`super::View::connect`].
pub type Flush = std::sync::mpsc::SyncSender<FlushBatch>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_name_is_reported_once_to_each_reader() {
        let held = Held::default();
        held.insert((10, None, 5));
        assert!(held.take_stale(&(10, None, 5), 100));
        assert!(
            !held.take_stale(&(10, None, 5), 100),
            "the walk again gets the plain answer"
        );
        assert!(
            held.take_stale(&(10, None, 5), 101),
            "another reader that walked the same stale name"
        );
        assert!(!held.take_stale(&(10, None, 5), 101));
        assert!(!held.take_stale(&(11, None, 5), 101), "a name never given");
        held.insert((12, Some(13), 7));
        assert!(held.take_stale(&(12, Some(13), 7), 101), "a thread's");
        held.remove(&(10, None, 5));
        held.remove(&(12, Some(13), 7));
        assert!(held.is_empty(), "held until the kernel forgets them");
    }

    #[test]
    fn no_request_of_a_walk_again_is_stale() {
        let held = Held::default();
        let (gone, newcomer) = ((10, None, 5), (10, None, 9));
        held.insert(gone);
        // Another reader was given the name of the process that took the number.
        held.insert(newcomer);
        held.step(100, Step::Call);
        assert!(held.take_stale(&gone, 100));
        // The walk again looks the number up (the newcomer, or a zombie whose name is
        // not kept), which dies before the call's own request.
        held.step(100, Step::Lookup);
        held.step(100, Step::Lookup);
        held.step(100, Step::Call);
        assert!(
            !held.take_stale(&newcomer, 100),
            "a second ESTALE would reach the reader"
        );
        assert!(
            held.take_stale(&newcomer, 200),
            "another reader's request through the name"
        );
        // The next call of the first reader.
        held.step(100, Step::Call);
        assert!(
            held.take_stale(&newcomer, 100),
            "the name stays held for the requests after the walk's"
        );
    }

    #[test]
    fn a_walk_again_ends_at_the_request_after_its_call() {
        let held = Held::default();
        let (gone, other) = ((10, None, 5), (11, None, 6));
        held.insert(gone);
        held.insert(other);
        assert!(held.take_stale(&gone, 100));
        assert!(held.0.walking.load(Ordering::Acquire));
        // The walk again finds what it looks for alive: no answer about a gone process.
        held.step(100, Step::Lookup);
        held.step(100, Step::Call);
        // The reader's next call, through another stale name.
        held.step(100, Step::Lookup);
        assert!(
            !held.0.walking.load(Ordering::Acquire),
            "no walk again left"
        );
        assert!(held.take_stale(&other, 100));
    }

    #[test]
    fn a_walk_again_may_be_its_call_alone() {
        // `stat(".")` in the gone process's directory: the walk again comes back to the
        // same inode, with no lookup.
        let held = Held::default();
        let gone = (10, None, 5);
        held.insert(gone);
        held.step(100, Step::Call);
        assert!(held.take_stale(&gone, 100));
        held.step(100, Step::Call);
        assert!(!held.take_stale(&gone, 100));
        assert!(!held.0.walking.load(Ordering::Acquire));
        held.step(100, Step::Call);
        assert!(
            !held.take_stale(&gone, 100),
            "the same reader's path to the same process, soon after"
        );
    }
}
