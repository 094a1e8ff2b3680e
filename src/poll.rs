//! `poll(2)` on the view's files, as procfs answers it.
//!
//! Most procfs files have no poll method: the kernel answers them "ready" at once
//! (`DEFAULT_POLLMASK`). A few do, and tools wait on them: `mountinfo`, `mounts` and
//! `mountstats` report a change of the mount table with `POLLERR | POLLPRI`
//! (`findmnt --poll`), `/proc/kmsg` a message, a pipe behind an `fd/` link its data. For
//! those the daemon polls its own descriptor of the real file, which the kernel keeps
//! the same state for (a mount table's change is measured from the open); when nothing
//! is ready, the kernel is told later, once it is ([`Watcher`]: FUSE's poll
//! notification), and asks again.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{PollEvents, PollNotifier};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// What the kernel's `DEFAULT_POLLMASK` says of a file without a poll method.
pub const DEFAULT_MASK: u32 =
    (libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM) as u32;

/// What a poll of a real descriptor reports now, of `events` (and the conditions
/// always reported: error, hang-up).
pub fn ready_now(file: &File, events: u32) -> u32 {
    let wanted = PollFlags::from_bits_truncate(events as i16);
    let mut fds = [PollFd::new(file.as_fd(), wanted)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0].revents().map_or(0, |r| r.bits() as u16 as u32),
        _ => 0,
    }
}

struct Waiting {
    fh: u64,
    file: Arc<File>,
    events: u32,
    notifier: PollNotifier,
}

/// The polls waited on, and what the watcher saw of those it notified: a poll reports
/// a mount table's change once (procfs's `mounts_poll` moves its mark when it reports
/// it), so what the watcher's poll saw is kept for the kernel's next poll of that
/// handle.
#[derive(Default)]
struct Table {
    waiting: Vec<Waiting>,
    fired: rustc_hash::FxHashMap<u64, u32>,
}

/// The polls the kernel waits to be told about: a thread polls their real descriptors
/// and notifies the kernel of each that becomes ready (at most every 100 ms a new one
/// is taken up).
pub struct Watcher {
    table: Arc<Mutex<Table>>,
    started: std::sync::Once,
}

impl Default for Watcher {
    fn default() -> Self {
        Watcher {
            table: Arc::default(),
            started: std::sync::Once::new(),
        }
    }
}

impl Watcher {
    /// Tells the kernel through `notifier` once `file`, open as handle `fh`, has any
    /// of `events`.
    pub fn watch(&self, fh: u64, file: Arc<File>, events: u32, notifier: PollNotifier) {
        let mut t = crate::sync::lock(&self.table);
        // The kernel asks again after each notification: one entry per handle.
        t.waiting.retain(|x| x.fh != fh);
        t.waiting.push(Waiting {
            fh,
            file,
            events,
            notifier,
        });
        drop(t);
        self.started.call_once(|| {
            let table = Arc::clone(&self.table);
            let spawned = std::thread::Builder::new()
                .name("vprocfs-poll".into())
                .spawn(move || watch_loop(&table));
            if let Err(e) = spawned {
                log::warn!("cannot start the poll thread ({e}): poll waits are not woken");
            }
        });
    }

    /// What handle `fh` has now: a poll of its real descriptor, and what the watcher saw
    /// since the kernel last asked.
    pub fn ready(&self, fh: u64, file: &File, events: u32) -> u32 {
        let fired = crate::sync::lock(&self.table)
            .fired
            .remove(&fh)
            .unwrap_or(0);
        fired | ready_now(file, events)
    }

    /// Forgets handle `fh` (it is closed).
    pub fn forget(&self, fh: u64) {
        let mut t = crate::sync::lock(&self.table);
        t.waiting.retain(|x| x.fh != fh);
        t.fired.remove(&fh);
    }
}

fn watch_loop(table: &Mutex<Table>) {
    loop {
        let batch: Vec<(u64, Arc<File>, u32)> = crate::sync::lock(table)
            .waiting
            .iter()
            .map(|w| (w.fh, Arc::clone(&w.file), w.events))
            .collect();
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut fds: Vec<PollFd> = batch
            .iter()
            .map(|(_, f, ev)| PollFd::new(f.as_fd(), PollFlags::from_bits_truncate(*ev as i16)))
            .collect();
        let seen: Vec<u32> = match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(n) if n > 0 => fds
                .iter()
                .map(|f| f.revents().map_or(0, |r| r.bits() as u16 as u32))
                .collect(),
            _ => continue,
        };
        drop(fds);
        let mut t = crate::sync::lock(table);
        for ((fh, _, _), revents) in batch.iter().zip(seen) {
            if revents == 0 {
                continue;
            }
            if let Some(pos) = t.waiting.iter().position(|x| x.fh == *fh) {
                let done = t.waiting.swap_remove(pos);
                *t.fired.entry(*fh).or_insert(0) |= revents;
                // ENOENT: the kernel no longer waits on it (the reader closed it).
                let _ = done.notifier.notify();
            }
        }
    }
}

/// The events the view answers with: the given mask as FUSE's type.
pub fn events(mask: u32) -> PollEvents {
    PollEvents::from_bits_truncate(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_ready_once_written() {
        use std::io::Write as _;
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let r = File::from(r);
        assert_eq!(ready_now(&r, libc::POLLIN as u32) & libc::POLLIN as u32, 0);
        File::from(w).write_all(b"x").expect("write");
        assert_ne!(ready_now(&r, libc::POLLIN as u32) & libc::POLLIN as u32, 0);
    }
}
