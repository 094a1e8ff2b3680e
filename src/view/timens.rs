//! A reader's time namespace: procfs shows its reader the clock of the reader's own time
//! namespace (`timens_add_boottime`): `/proc/uptime`'s first field, `btime` in
//! `/proc/stat`, and each process's start time in its `stat` (field 22). So a reader in
//! a time namespace other than its VPS's (`unshare -T`, `nsenter -T`, a restored
//! checkpoint) sees one clock everywhere, and `ps` its true elapsed times.
//!
//! A task enters another time namespace only at an `exec` (into the one `unshare -T`
//! made for its children) or by `setns`: its offset is kept from its first read until its
//! next exec or its exit, as the process events report them ([`View::on_events`]; looked
//! up at every read where the events are not followed); a `setns` without an exec is
//! not seen (docs/limits.md).

use std::sync::{Mutex, OnceLock};

use super::{lock, View};
use crate::engine::Pid;
use crate::host;

/// How many readers' offsets are kept.
const KEPT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(1024).unwrap();

/// The boottime offsets of readers' time namespaces, by reader task.
pub(super) struct ReaderClocks(Mutex<lru::LruCache<Pid, i64>>);

impl Default for ReaderClocks {
    fn default() -> Self {
        ReaderClocks(Mutex::new(lru::LruCache::new(KEPT)))
    }
}

impl ReaderClocks {
    /// Forgets the offsets of tasks `tids` (an exec or an exit).
    pub(super) fn forget(&self, tids: impl IntoIterator<Item = Pid>) {
        let mut kept = lock(&self.0);
        for tid in tids {
            kept.pop(&tid);
        }
    }
}

/// The daemon's own boottime offset, read once (0 in the initial time namespace).
pub(super) fn own_offset() -> i64 {
    static OWN: OnceLock<i64> = OnceLock::new();
    *OWN.get_or_init(|| crate::resources::boot_offset_of(std::process::id() as Pid).unwrap_or(0))
}

impl View {
    /// The boottime offset of reader task `tid`'s time namespace, in ns, as
    /// `timens_offsets` gives it: the daemon's where the reader is in the daemon's
    /// namespace or cannot be looked at (one look at its namespace, 3 µs, at its first
    /// read after an exec).
    pub(super) fn reader_boot_offset(&self, tid: Pid) -> i64 {
        self.reader_boot_offset_near(tid, None)
    }

    /// How far reader `tid`'s clock is from the daemon's, in ns: what procfs adds to a
    /// clock the daemon reads (the host's `uptime`, `btime`, a task's start time) for
    /// that reader.
    pub(super) fn reader_clock_shift(&self, tid: Pid) -> i64 {
        self.reader_boot_offset(tid).saturating_sub(own_offset())
    }

    /// [`View::reader_boot_offset`], where a reader in time namespace `near.0` (its
    /// VPS's) has offset `near.1` without a look at its offsets.
    pub(super) fn reader_boot_offset_near(&self, tid: Pid, near: Option<(u64, i64)>) -> i64 {
        if tid <= 0 {
            return own_offset();
        }
        let clocks = &self.shared.clocks;
        if let Some(&offset) = lock(&clocks.0).get(&tid) {
            return offset;
        }
        let offset = match (host::ns_inode(tid, "time"), near) {
            (Ok(ns), Some((vps_ns, vps_offset))) if ns == vps_ns => vps_offset,
            (Ok(ns), _) if host::own_ns_inode("time").ok() != Some(ns) => {
                crate::resources::boot_offset_of(tid).unwrap_or_else(|_| own_offset())
            }
            _ => own_offset(),
        };
        // Kept only where the events that end its keeping are followed.
        if self.follows_events() {
            lock(&clocks.0).put(tid, offset);
        }
        offset
    }
}
