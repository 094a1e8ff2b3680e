//! What every mount of one daemon shares. `vprocfs serve` serves one mount that all
//! VPSes share, and a mount of each VPS of its own; the kernel's dentry and attribute
//! caches belong to a mount, so only a mount of one VPS may let the kernel cache
//! ([`super::cache`]). The mounts differ in what they cache and in who they take a
//! reader for; they share membership (one tracker fed by one event stream), the
//! resource views, and the pidfds of members.
//!
//! Membership changes are fanned out to every mount ([`Shared::mounts`]): each one
//! retires its own inodes of a released process and tells its own kernel connection to
//! drop the process's names.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};

use rustc_hash::{FxHashMap, FxHashSet};

use super::feed::Feed;
use super::{lock, resource_files, Inputs, View};
use crate::engine::Pid;
use crate::membership::Tracker;

/// The state the mounts of one daemon share.
pub(super) struct Shared {
    /// Membership and the engine.
    pub(super) tracker: Mutex<Tracker>,
    /// The process events that feed membership, where the connector could be opened
    /// ([`super::feed`]).
    pub(super) feed: Option<Feed>,
    /// pid → vpid translations made by renderers (statistics).
    pub(super) translations: AtomicU64,
    /// Each VPS's resource view ([`resource_files`]).
    pub(super) resources: Mutex<resource_files::Resources>,
    /// A pidfd of each member process a kernel holds a name of, in a mount of one VPS
    /// fed by events: names that process itself, so its liveness costs one system call
    /// and no later process of its number (or of its start time's clock tick) passes;
    /// with the files kept open beside it ([`super::kept`]).
    pub(super) pidfds: Mutex<FxHashMap<(Pid, u64), super::kept::Kept>>,
    /// `/proc`'s own link count without processes (the kernel adds one per process).
    pub(super) root_nlink_base: u32,
    /// Member tasks that got what procfs grants by a capability
    /// ([`View::used_privilege`]).
    pub(super) superpriv: Mutex<FxHashSet<Pid>>,
    /// The time-namespace offsets of readers ([`super::timens`]).
    pub(super) clocks: super::timens::ReaderClocks,
    /// The mounts served, for fanning membership changes out.
    mounts: Mutex<Vec<Weak<View>>>,
}

impl Shared {
    pub(super) fn new(tracker: Tracker, inputs: Inputs) -> Shared {
        let feed = inputs.events.and_then(|stream| {
            Feed::new(stream)
                .inspect_err(|e| {
                    log::warn!("process events unavailable ({e}); falling back to rescans")
                })
                .ok()
        });
        Shared {
            tracker: Mutex::new(tracker),
            feed,
            translations: AtomicU64::new(0),
            resources: Mutex::new(resource_files::Resources::with(inputs.resources)),
            pidfds: Mutex::new(FxHashMap::default()),
            root_nlink_base: super::root_nlink_base(),
            superpriv: Mutex::new(FxHashSet::default()),
            clocks: super::timens::ReaderClocks::default(),
            mounts: Mutex::new(Vec::new()),
        }
    }

    /// Adds `view` to the mounts that membership changes fan out to.
    pub(super) fn register(&self, view: &Arc<View>) {
        lock(&self.mounts).push(Arc::downgrade(view));
    }

    /// The mounts still served (a mount of a removed VPS goes once its session ends).
    pub(super) fn mounts(&self) -> Vec<Arc<View>> {
        let mut mounts = lock(&self.mounts);
        mounts.retain(|m| m.strong_count() > 0);
        mounts.iter().filter_map(Weak::upgrade).collect()
    }
}
