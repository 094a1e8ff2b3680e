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
//! invalidation reaches the daemon after it. Such a request, about a process that is
//! gone, is answered `ESTALE` once ([`Held::take_stale`]): the kernel then walks the
//! path again with every entry revalidated (`LOOKUP_REVAL`, in `open`, `stat`,
//! `readlink`…), and the fresh walk gets procfs's own answer. Past [`GRACE`] after the
//! invalidation, a request about a gone process can only come through a descriptor a
//! reader holds, and gets procfs's answer for that (`ESRCH`, or the attributes of
//! `fstat`).
//!
//! Attributes of a process directory are never kept (a `stat` of a reaped process's
//! directory must fail at once, and its owner follows the process's credentials);
//! those of its entries are, for a second, dropped at once when an exec or a
//! credential change moves their owner. Permission is the daemon's decision at every
//! lookup, open, readlink and access, so a cached owner never lets anyone in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

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

/// How long after a name's invalidation a request may still come through it: one
/// that walked the path just before, and reached the daemon after.
pub const GRACE: Duration = Duration::from_millis(5);

/// The process directories whose names the kernel may hold for long, with when their
/// invalidation was sent (`None`: not yet). Shared with the thread that sends them.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<FxHashMap<DirKey, Option<Instant>>>>);

impl Held {
    fn set(&self) -> std::sync::MutexGuard<'_, FxHashMap<DirKey, Option<Instant>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kernel was given a long-lived name for `key`.
    pub fn insert(&self, key: DirKey) {
        self.set().insert(key, None);
    }

    /// The kernel was told to drop `key`'s names.
    pub fn flushed(&self, key: &DirKey) {
        if let Some(when) = self.set().get_mut(key) {
            *when = Some(Instant::now());
        }
    }

    /// The kernel forgot `key`'s directory.
    pub fn remove(&self, key: &DirKey) {
        self.set().remove(key);
    }

    /// Whether a request about the gone process `key` may have come through a name the
    /// kernel held: true once, so that the kernel's walk again (see the module's doc)
    /// gets the plain answer.
    pub fn take_stale(&self, key: &DirKey) -> bool {
        match self.set().remove(key) {
            Some(None) => true,
            Some(Some(when)) => when.elapsed() < GRACE,
            None => false,
        }
    }

    /// How many names are held (statistics, tests).
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch for the thread that tells the kernel to drop names: `(directory inode,
/// name)` pairs, then the directories whose names they were ([`Held::flushed`]).
#[derive(Debug, Default)]
pub struct FlushBatch {
    /// The names to invalidate.
    pub names: Vec<(u64, String)>,
    /// The directories they named.
    pub keys: Vec<DirKey>,
}

/// See [`super::View::set_flush`].
pub type Flush = std::sync::mpsc::SyncSender<FlushBatch>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_name_is_reported_once() {
        let held = Held::default();
        held.insert((10, None, 5));
        assert!(held.take_stale(&(10, None, 5)));
        assert!(
            !held.take_stale(&(10, None, 5)),
            "the walk again gets the plain answer"
        );
        assert!(!held.take_stale(&(11, None, 5)));
        held.insert((12, Some(13), 7));
        held.flushed(&(12, Some(13), 7));
        assert!(held.take_stale(&(12, Some(13), 7)), "within the grace");
        held.insert((14, None, 7));
        held.remove(&(14, None, 7));
        assert!(held.is_empty());
    }
}
