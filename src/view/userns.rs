//! A reader's user namespace: where its capabilities count (the kernel's
//! `cap_capable`, `security/commoncap.c`), and how it numbers user and group ids.
//!
//! A capability is held in a user namespace. A task has its effective set in its own
//! namespace and in every namespace below it; the owner of a namespace (by effective
//! uid) has every capability in it and below, from the namespace just above it; and a
//! task has none in a namespace above or beside its own. procfs asks for a capability
//! in the namespace of the process it shows (`ptrace_may_access`, `timerslack_ns`), in
//! the initial one (`stack`), or in the reader's own over an inode whose owner and
//! group are mapped there (`capable_wrt_inode_uidgid`, the override of mode bits). So a
//! reader in a user namespace of its own (`unshare -U`, a rootless container, a
//! sandbox) is root there and nothing outside it: its `CAP_SYS_PTRACE` opens no
//! `environ` of a process of the VPS's namespace.
//!
//! The ids procfs prints (`status`, the id maps, `loginuid`, socket tables, SysV IPC,
//! keys) are likewise the reader's namespace's ([`crate::render::ids`]);
//! [`reader_ids`] gives its maps.
//!
//! The daemon's own namespace stands for the initial one: it is the top the daemon
//! sees (`NS_GET_PARENT` goes no higher), and every process it shows lives in it or
//! below it.

use std::cell::OnceCell;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, Mutex, OnceLock};

use crate::engine::Pid;
use crate::host;
use crate::render::ids::{IdMap, ReaderIds};
use crate::sys::creds::{effective_caps, ns_parent, user_ns_owner};

/// A user namespace on the way from a process's up to the top the daemon sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    /// Its inode number (`stat -L /proc/<pid>/ns/user`).
    pub ino: u64,
    /// The uid that owns it, in the daemon's namespace.
    pub owner: u32,
}

/// `cap_capable`: whether a task in user namespace `own`, of effective uid `euid` and
/// effective capabilities `eff`, has capability `cap` in namespace `chain[0]`, whose
/// ancestors follow it in order up to the top.
pub(super) fn capable(own: u64, euid: u32, eff: u64, chain: &[Link], cap: u32) -> bool {
    for (i, ns) in chain.iter().enumerate() {
        if ns.ino == own {
            return eff & (1 << cap) != 0;
        }
        // The owner of a namespace just below the task's has every capability in it.
        if chain.get(i + 1).is_some_and(|parent| parent.ino == own) && ns.owner == euid {
            return true;
        }
    }
    false
}

/// The deepest nesting of user namespaces the kernel allows (32), and the top.
const MAX_DEPTH: usize = 33;

/// The daemon's own user namespace (0 if it cannot be read: then no reader stands
/// there, and capabilities count only in a reader's own namespace).
fn top() -> u64 {
    host::own_ns_inode("user").unwrap_or(0)
}

/// The user namespace of reader task `tid` and its maps, `None` where it is the
/// daemon's (ids are shown as the kernel has them). One look at the reader's namespace (3 µs);
/// the maps of a namespace are read once (a map is written once, and never changes
/// after), kept for the last [`MAPS_KEPT`] namespaces. A kept namespace is held open:
/// nsfs gives a freed namespace's inode number to the next one made, and a namespace
/// without maps (`unshare -U`) must not be read with the maps of one gone before it
/// (`unshare -Ur`).
pub(super) fn reader_ids(tid: Pid) -> Option<(u64, Arc<ReaderIds>)> {
    if tid <= 0 {
        return None;
    }
    let ns = host::ns_inode(tid, "user").ok()?;
    if ns == top() {
        return None;
    }
    /// A namespace's inode number, the namespace held open, and its maps.
    type Kept = lru::LruCache<u64, (File, Arc<ReaderIds>)>;
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    let kept = KEPT.get_or_init(|| Mutex::new(lru::LruCache::new(MAPS_KEPT)));
    if let Some((_, ids)) = crate::sync::lock(kept).get(&ns) {
        return Some((ns, Arc::clone(ids)));
    }
    // Held from before its maps are read to the end of its keeping.
    let held = File::open(host::proc_path(&format!("{tid}/ns/user"))).ok()?;
    if held.metadata().ok()?.ino() != ns {
        return None; // it left the namespace: its next read looks again
    }
    let map = |name: &str| {
        std::fs::read(host::proc_path(&format!("{tid}/{name}")))
            .map(|text| IdMap::parse(&text))
            .unwrap_or_default()
    };
    let (overflow_uid, overflow_gid) = overflow_ids();
    let ids = Arc::new(ReaderIds {
        uid: map("uid_map"),
        gid: map("gid_map"),
        projid: map("projid_map"),
        overflow_uid,
        overflow_gid,
    });
    // Read again from the same task: it may have left the namespace meanwhile.
    if host::ns_inode(tid, "user").ok()? != ns {
        return None;
    }
    // Not kept before its maps are written (a namespace's first moments). A project id
    // map written after both (rare: nothing but `projid_map` readers would see it) is
    // not seen by a reader whose namespace's maps are kept.
    if !ids.uid.is_empty() && !ids.gid.is_empty() {
        crate::sync::lock(kept).put(ns, (held, Arc::clone(&ids)));
    }
    Some((ns, ids))
}

/// The maps of the parent of reader `tid`'s user namespace `ns`, `None` where that
/// parent is the daemon's namespace (ids are shown as the kernel has them) or no task
/// of it is found. procfs shows the lower ids of an id map read from the map's own
/// namespace in its parent's numbering (`uid_m_show`); the parent's maps are read from
/// a task in it, looked for among the reader's ancestors (the namespace's creator and
/// those before it, as a runtime or `unshare` leaves them).
pub(super) fn parent_ids(tid: Pid, ns: u64) -> Option<Arc<ReaderIds>> {
    let own = File::open(host::proc_path(&format!("{tid}/ns/user"))).ok()?;
    if own.metadata().ok()?.ino() != ns {
        return None;
    }
    let parent = ns_parent(&own).ok()??.metadata().ok()?.ino();
    if parent == top() {
        return None;
    }
    let mut task = tid;
    for _ in 0..MAX_ANCESTORS {
        task = host::read_task(task).ok()?.ppid;
        if task <= 0 {
            return None;
        }
        if host::ns_inode(task, "user").ok() == Some(parent) {
            return reader_ids(task)
                .filter(|&(n, _)| n == parent)
                .map(|(_, ids)| ids);
        }
    }
    None
}

/// How far up a reader's ancestry [`parent_ids`] looks.
const MAX_ANCESTORS: usize = 64;

/// How many namespaces' maps [`reader_ids`] keeps.
const MAPS_KEPT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(64).unwrap();

/// The ids procfs shows for an id the reader's namespace does not map
/// (`kernel.overflowuid`, `kernel.overflowgid`; 65534 unless changed), read once.
fn overflow_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let read = |name: &str| {
            std::fs::read_to_string(host::proc_path(&format!("sys/kernel/{name}")))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(65534)
        };
        (read("overflowuid"), read("overflowgid"))
    })
}

/// The user namespace of task `task` and its ancestors up to the top.
fn chain_of(task: Pid) -> Option<Vec<Link>> {
    let mut ns = File::open(host::proc_path(&format!("{task}/ns/user"))).ok()?;
    let mut chain = Vec::new();
    for _ in 0..MAX_DEPTH {
        chain.push(Link {
            ino: ns.metadata().ok()?.ino(),
            owner: user_ns_owner(&ns).ok()?,
        });
        match ns_parent(&ns).ok()? {
            Some(parent) => ns = parent,
            None => return Some(chain),
        }
    }
    Some(chain)
}

/// A reader's effective capabilities and the user namespace they hold in, for one
/// request (the namespace is looked at only when a capability could count).
#[derive(Debug)]
pub(super) struct Standing {
    tid: Pid,
    eff: u64,
    ns: OnceCell<u64>,
    /// The user namespace of the task asked about, read once for the request.
    theirs: OnceCell<(Pid, Option<u64>)>,
}

impl Standing {
    /// Task `tid`'s (`capget`); a reader the daemon cannot see (tid 0) stands where the
    /// daemon does, with every capability if its uid is 0 and none otherwise.
    pub fn of(tid: Pid, uid: u32) -> Standing {
        if tid <= 0 {
            let eff = if uid == 0 { u64::MAX } else { 0 };
            return Standing {
                tid,
                eff,
                ns: OnceCell::from(top()),
                theirs: OnceCell::new(),
            };
        }
        Standing {
            tid,
            eff: effective_caps(tid).unwrap_or(0),
            ns: OnceCell::new(),
            theirs: OnceCell::new(),
        }
    }

    /// Whether `cap` is in the reader's effective set (held in its own namespace).
    pub fn has(&self, cap: u32) -> bool {
        self.eff & (1 << cap) != 0
    }

    /// The reader's user namespace (0 if gone: a namespace no process has).
    fn ns(&self) -> u64 {
        *self
            .ns
            .get_or_init(|| host::ns_inode(self.tid, "user").unwrap_or(0))
    }

    /// Whether the reader stands in the daemon's namespace, where its capabilities
    /// count over every process and inode the view shows.
    fn at_top(&self) -> bool {
        self.ns() == top()
    }

    /// `capable(cap)`: `cap` in the initial namespace.
    pub fn has_at_top(&self, cap: u32) -> bool {
        self.has(cap) && self.at_top()
    }

    /// `capable_wrt_inode_uidgid`: `cap` in the reader's own namespace, over an inode
    /// of owner `uid` and group `gid`, which must both be mapped there.
    pub fn has_over_inode(&self, cap: u32, uid: u32, gid: u32) -> bool {
        self.has(cap)
            && (self.at_top()
                || reader_ids(self.tid).is_some_and(|(_, ids)| {
                    ids.uid.from_kernel(uid).is_some() && ids.gid.from_kernel(gid).is_some()
                }))
    }

    /// `ns_capable(user namespace of task target, cap)`; `euid` gives the reader's
    /// effective uid, asked only where a namespace's owner could have it.
    pub fn has_over_task(&self, cap: u32, target: Pid, euid: impl FnOnce() -> Option<u32>) -> bool {
        if self.has_at_top(cap) {
            return true;
        }
        let Some(theirs) = self.ns_of(target) else {
            return false;
        };
        if theirs == self.ns() {
            return self.has(cap);
        }
        if theirs == top() {
            return false; // above the reader's namespace (or beside it)
        }
        let (Some(chain), Some(euid)) = (chain_of(target), euid()) else {
            return false;
        };
        capable(self.ns(), euid, self.eff, &chain, cap)
    }

    /// Whether task `target` is in the reader's own user namespace, where the kernel
    /// compares capability sets (`cap_ptrace_access_check`).
    pub fn shares_ns_with(&self, target: Pid) -> bool {
        self.ns_of(target) == Some(self.ns())
    }

    /// The user namespace of task `target`: read once for the task a request asks
    /// about ([`Standing::has_over_task`], then [`Standing::shares_ns_with`]).
    fn ns_of(&self, target: Pid) -> Option<u64> {
        let read = || host::ns_inode(target, "user").ok();
        match self.theirs.get_or_init(|| (target, read())) {
            &(t, ns) if t == target => ns,
            _ => read(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{capable, Link};

    const PTRACE: u32 = 19;
    const ALL: u64 = u64::MAX;

    fn l(ino: u64, owner: u32) -> Link {
        Link { ino, owner }
    }

    #[test]
    fn capabilities_count_in_the_own_namespace_and_below() {
        // init (1) ⊃ a (2, owned by 1000) ⊃ b (3, owned by 0)
        let b = [l(3, 0), l(2, 1000), l(1, 0)];
        assert!(
            capable(1, 0, ALL, &b, PTRACE),
            "init root over a grandchild"
        );
        assert!(capable(2, 5, ALL, &b, PTRACE), "root of a over its child");
        assert!(capable(3, 5, ALL, &b, PTRACE), "root of b in b");
        assert!(!capable(1, 0, 0, &b, PTRACE), "no capability, no ownership");
        assert!(
            !capable(3, 0, ALL, &[l(1, 0)], PTRACE),
            "none above its own"
        );
        assert!(!capable(4, 0, ALL, &b, PTRACE), "none beside its own");
    }

    #[test]
    fn the_owner_of_a_namespace_has_every_capability_in_it() {
        let a = [l(2, 1000), l(1, 0)];
        assert!(capable(1, 1000, 0, &a, PTRACE), "uid 1000 made a");
        assert!(!capable(1, 1001, 0, &a, PTRACE), "uid 1001 did not");
        // Ownership counts from the namespace just above only.
        let b = [l(3, 1000), l(2, 0), l(1, 0)];
        assert!(
            !capable(1, 1000, 0, &b, PTRACE),
            "b's owner is judged in a, not init"
        );
        assert!(
            capable(1, 0, 0, &b, PTRACE),
            "a's owner (0) has all in a and b"
        );
        // Inside its own namespace the owner has only what its set says.
        assert!(!capable(2, 1000, 0, &a, PTRACE));
    }
}
