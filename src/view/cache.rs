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
/// The kernel walks again after an `ESTALE` only once: a second `ESTALE` would reach the
/// reader. So a task told `ESTALE` about a process gets the plain answer about it for a
/// while ([`WALK_AGAIN`]): its walk again may come back to the same inode (a `stat(".")`
/// in the gone process's directory). The walk again looks the process's number up
/// afresh, and may find it taken by another process, which may die before the walk's
/// own request: so the first request of that reader about the process its walk again
/// was given ([`Held::walked_again`]) gets the plain answer, `ESRCH`, as procfs answers a
/// request whose walk found the process alive. The name stays held until the kernel
/// forgets it.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<HeldSets>>);

#[derive(Default)]
struct HeldSets {
    /// Names given and not yet forgotten.
    held: FxHashSet<DirKey>,
    /// The tasks answered `ESTALE` about a process, and when.
    told: FxHashMap<(Pid, DirKey), Instant>,
    /// The tasks answered `ESTALE`, and when, whose walk again is still to come.
    walking_again: FxHashMap<Pid, Instant>,
    /// The processes a task's walk again was given, and when, whose first request
    /// about them being gone is still to come.
    walked_again: FxHashMap<(Pid, DirKey), Instant>,
}

/// How long after its `ESTALE` a reader's lookup of a process, and after that its
/// request, are taken for its walk again: the kernel walks again at once, but a loaded
/// machine may hold the reader off the CPU for a while.
const WALK_AGAIN: Duration = Duration::from_secs(1);

/// At most this many readers' walks again are remembered; past it, those older than
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
        crate::sync::lock(&self.0)
    }

    /// The kernel was given a long-lived name for `key`.
    pub fn insert(&self, key: DirKey) {
        self.sets().held.insert(key);
    }

    /// The kernel forgot `key`'s directory.
    pub fn remove(&self, key: &DirKey) {
        self.sets().held.remove(key);
    }

    /// Whether a lookup of a process by task `tid` is the walk again that follows its
    /// `ESTALE` (the first such lookup since, within [`WALK_AGAIN`]).
    pub fn walks_again(&self, tid: Pid) -> bool {
        self.sets()
            .walking_again
            .remove(&tid)
            .is_some_and(|at| at.elapsed() < WALK_AGAIN)
    }

    /// Task `tid`'s walk again was given process `key`'s name ([`Held::walks_again`]).
    pub fn walked_again(&self, tid: Pid, key: DirKey) {
        let mut sets = self.sets();
        let now = Instant::now();
        drop_old_when_full(&mut sets.walked_again, now);
        sets.walked_again.insert((tid, key), now);
    }

    /// Whether a request of task `tid` about the gone process `key` may have come
    /// through a name the kernel held: true once for each task, so that the kernel's
    /// walk again (see [`Held`]) gets the plain answer, as does the request of that walk.
    pub fn take_stale(&self, key: &DirKey, tid: Pid) -> bool {
        let mut sets = self.sets();
        let now = Instant::now();
        let recent = |at: Option<Instant>| {
            at.is_some_and(|at| now.saturating_duration_since(at) < WALK_AGAIN)
        };
        if recent(sets.walked_again.remove(&(tid, *key))) {
            return false;
        }
        if !sets.held.contains(key) || recent(sets.told.get(&(tid, *key)).copied()) {
            return false;
        }
        drop_old_when_full(&mut sets.told, now);
        sets.told.insert((tid, *key), now);
        drop_old_when_full(&mut sets.walking_again, now);
        sets.walking_again.insert(tid, now);
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
    fn the_request_of_a_walk_again_gets_the_plain_answer() {
        let held = Held::default();
        held.insert((10, None, 5));
        assert!(!held.walks_again(100), "no ESTALE yet");
        assert!(held.take_stale(&(10, None, 5), 100));
        assert!(!held.walks_again(200), "another reader's lookup");
        // The walk again finds the number taken by another process, which dies
        // before the walk's own request.
        assert!(held.walks_again(100));
        assert!(
            !held.walks_again(100),
            "only the first lookup after the ESTALE"
        );
        held.insert((10, None, 9));
        held.walked_again(100, (10, None, 9));
        assert!(
            !held.take_stale(&(10, None, 9), 100),
            "a second ESTALE would reach the reader"
        );
        assert!(
            held.take_stale(&(10, None, 9), 200),
            "the name stays held for the requests after the walk's"
        );
    }
}
