//! Snapshots the kernel serves itself: FUSE passthrough from a memfd.
//!
//! A file whose whole text is rendered at open ([`crate::view::Opened::snapshot`]) is
//! copied into a memfd, which is handed to the kernel as the open file's backing file;
//! every `read`, `pread` and the final empty read are then served by the kernel, and the
//! reader waits for one round trip (the open) instead of four. The kernel refuses procfs
//! files (ELOOP: procfs is at the maximum stacking depth) and pipes as backing files, so
//! even unchanged text is copied.
//!
//! The kernel keeps one backing file per inode at a time, and while one is attached it
//! refuses (`EIO`) any open of the inode that is not a passthrough open of that same
//! backing file. So while a snapshot of an inode is open, every other open of it names
//! the same backing file: as a plain passthrough open if its text is the same, and
//! otherwise with `FOPEN_DIRECT_IO` too, which makes the kernel send its reads to the
//! daemon (it overrides passthrough), served from the view's own handle. Once no
//! handle uses an inode's backing file, the next open with the same text uses it again;
//! a different text gets a new memfd.
//!
//! A memfd is never rewritten once the kernel has it, because a reader may have mapped
//! it: procfs refuses `mmap` (ENODEV), but the kernel maps a passthrough file's backing
//! file, and a mapping outlives the open it came from. Rewritten in place, the memfd
//! would show that reader the text of a later open, rendered for another reader who
//! may see more (a `stat` with its code and stack addresses unmasked, an `environ`
//! after a set-uid exec). So a mapping shows the snapshot of its own open, what its
//! reader was allowed to read, and nothing else (docs/limits.md).
//!
//! Without passthrough (a kernel before 6.9, or a daemon that took over a mount without
//! seeing its INIT) every snapshot is read with `direct_io`.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};
use rustc_hash::FxHashMap;

/// The backing file of one inode.
struct Live {
    /// Holds the memfd: the kernel keeps its own reference to the file, so the
    /// daemon's descriptor is closed once it is registered.
    id: BackingId,
    text: Arc<[u8]>,
    /// Open handles that use it.
    open: usize,
}

/// Backing files no handle uses are kept for their inode's next open, up to this many;
/// past it, they are all closed.
const MAX_IDLE: usize = 1024;

/// The live backing files of a mount, by inode, and which handle uses which.
#[derive(Default)]
pub struct Backings {
    enabled: AtomicBool,
    live: Mutex<(FxHashMap<u64, Live>, FxHashMap<u64, u64>)>,
}

impl Backings {
    /// Whether the kernel agreed to passthrough (FUSE INIT).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records the kernel's answer to FUSE INIT.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Answers the open of handle `fh` of inode `ino`, whose every read returns `text`.
    pub fn reply(&self, ino: u64, fh: u64, text: &Arc<[u8]>, reply: ReplyOpen) {
        let direct = |reply: ReplyOpen| reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
        if !self.enabled() {
            return direct(reply);
        }
        let mut guard = crate::sync::lock(&self.live);
        let (live, by_fh) = &mut *guard;
        if let Some(l) = live
            .get_mut(&ino)
            .filter(|l| l.open > 0 || *l.text == **text)
        {
            let mut flags = FopenFlags::empty();
            if *l.text != **text {
                // Another snapshot holds the inode: this one is read through the
                // daemon, still naming the inode's backing file.
                flags = FopenFlags::FOPEN_DIRECT_IO;
            }
            l.open += 1;
            by_fh.insert(fh, ino);
            return reply.opened_passthrough(FileHandle(fh), flags, &l.id);
        }
        // An idle backing file of another text is replaced below, never rewritten (a
        // reader may have mapped it: see the module's doc).
        if live.len() >= MAX_IDLE {
            live.retain(|_, l| l.open > 0);
        }
        match memfd_with(text).and_then(|f| reply.open_backing(&f)) {
            Ok(id) => {
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &id);
                live.insert(
                    ino,
                    Live {
                        id,
                        text: Arc::clone(text),
                        open: 1,
                    },
                );
                by_fh.insert(fh, ino);
            }
            Err(e) => {
                log::warn!("FUSE passthrough refused ({e}); reads go through the daemon");
                self.set_enabled(false);
                direct(reply);
            }
        }
    }

    /// Answers the open of handle `fh` of inode `ino`, read through the daemon with
    /// `flags` (`FOPEN_DIRECT_IO`…): while a snapshot of the inode is open, it must name
    /// that snapshot's backing file (see the module's doc), with `FOPEN_DIRECT_IO` so
    /// that its reads still come to the daemon.
    pub fn reply_direct(&self, ino: u64, fh: u64, flags: FopenFlags, reply: ReplyOpen) {
        if self.enabled() {
            let mut guard = crate::sync::lock(&self.live);
            let (live, by_fh) = &mut *guard;
            if let Some(l) = live.get_mut(&ino).filter(|l| l.open > 0) {
                l.open += 1;
                by_fh.insert(fh, ino);
                return reply.opened_passthrough(
                    FileHandle(fh),
                    flags | FopenFlags::FOPEN_DIRECT_IO,
                    &l.id,
                );
            }
        }
        reply.opened(FileHandle(fh), flags);
    }

    /// Handle `fh` is closed: its inode's backing file goes with the last handle using
    /// it.
    pub fn release(&self, fh: u64) {
        let mut guard = crate::sync::lock(&self.live);
        let (live, by_fh) = &mut *guard;
        let Some(ino) = by_fh.remove(&fh) else {
            return;
        };
        if let Some(l) = live.get_mut(&ino) {
            l.open = l.open.saturating_sub(1);
        }
    }
}

/// A memfd holding `text`: a regular file the kernel accepts as a backing file.
fn memfd_with(text: &[u8]) -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"vprocfs", MFdFlags::MFD_CLOEXEC).map_err(std::io::Error::from)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(text)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::io::Seek as _;

    #[test]
    fn a_memfd_holds_the_text() {
        let mut f = memfd_with(b"MemTotal: 1 kB\n").expect("memfd");
        f.rewind().expect("rewind");
        let mut s = String::new();
        f.read_to_string(&mut s).expect("read");
        assert_eq!(s, "MemTotal: 1 kB\n");
        assert!(f.metadata().expect("stat").is_file());
    }
}
