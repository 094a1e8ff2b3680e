//! What the view keeps open of a member whose directory the kernel was given (in a
//! mount fed by process events): a pidfd, its liveness in one system call
//! ([`View::check_alive`]), and its `stat`, `status` and `cmdline`, opened at their
//! first read and then re-read with one `pread` each. procfs makes each anew at every
//! read from offset 0, from the process the file was opened for (`cmdline` from the
//! memory the process has at that read, `get_task_mm`), so a kept file never shows
//! another process, nor a process before its exec, and saves the path walk, the open
//! and the close of every later read (a third of a `stat` read's cost).
//!
//! The same files of each of its threads (`task/<tid>/…`, which `ps -L` and `top -H`
//! read) are kept beside them: procfs binds a thread's files to that thread, so a kept
//! one reads `ESRCH` once it has exited (the read then goes by path, which answers for
//! whatever the number names now), and they go when membership releases the thread.
//!
//! `environ` and `mem` could not be kept: procfs binds them to the memory of the
//! process at open, which an exec replaces.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::nodes::Node;
use super::{entries, lock, View};
use crate::engine::Pid;
use crate::host;

/// The files kept, by their name in a process's directory.
const FILES: [&str; 3] = ["stat", "status", "cmdline"];

/// The files kept of one process or thread, by their place in [`FILES`].
type Files = [Option<Arc<File>>; FILES.len()];

/// The descriptors kept of one member process.
pub(super) struct Kept {
    pidfd: OwnedFd,
    files: Files,
    /// Its threads' own files, by thread id.
    threads: rustc_hash::FxHashMap<Pid, Files>,
}

/// How many of `files` are open.
fn open_count(files: &Files) -> usize {
    files.iter().flatten().count()
}

/// The files kept of all members, in every view of the daemon: bounded by their share
/// of the descriptor limit ([`crate::fds`]).
static KEPT_FILES: crate::fds::Tally = crate::fds::Tally::new();

impl Drop for Kept {
    fn drop(&mut self) {
        let threads: usize = self.threads.values().map(open_count).sum();
        KEPT_FILES.give_back(open_count(&self.files) + threads);
    }
}

impl Kept {
    pub(super) fn new(pidfd: OwnedFd) -> Kept {
        Kept {
            pidfd,
            files: Default::default(),
            threads: Default::default(),
        }
    }

    /// Closes the files kept of thread `tid`, which membership released.
    pub(super) fn forget_thread(&mut self, tid: Pid) {
        if let Some(files) = self.threads.remove(&tid) {
            KEPT_FILES.give_back(open_count(&files));
        }
    }

    /// The files of the process (`tid` None) or of its thread `tid`.
    fn files_mut(&mut self, tid: Option<Pid>) -> &mut Files {
        match tid {
            None => &mut self.files,
            Some(t) => self.threads.entry(t).or_default(),
        }
    }

    /// Whether the process is alive (a zombie counts), asked of its pidfd; `None` when
    /// the kernel would not say.
    pub(super) fn alive(&self) -> Option<bool> {
        crate::sys::process::pidfd_alive(&self.pidfd)
    }
}

/// The longest text read through a kept file; a longer one (a `status` with thousands
/// of groups) is read through its path, in as many reads as it takes.
const MAX_TEXT: usize = 4096;

impl View {
    /// The text of file `rel` of process `n` (started at `start`), or of its thread
    /// `tid`, read through the file kept open for it, opened now if it is not yet;
    /// `None` where it is not kept (not one of [`FILES`], no pidfd, over the budget,
    /// too long, a thread gone), and the caller reads it through its path.
    pub(super) fn read_kept(
        &self,
        n: Pid,
        start: u64,
        tid: Option<Pid>,
        rel: &str,
    ) -> Option<Vec<u8>> {
        let slot = FILES.iter().position(|f| *f == rel)?;
        let kept = {
            let all = lock(&self.shared.pidfds);
            let kept = all.get(&(n, start))?;
            match tid {
                None => kept.files[slot].clone(),
                Some(t) => kept.threads.get(&t).and_then(|f| f[slot].clone()),
            }
        };
        let file = match kept {
            Some(file) => file,
            None => self.keep_file(n, start, tid, slot)?,
        };
        host::pread_whole(&file, MAX_TEXT).ok().flatten()
    }

    /// [`View::read_kept`] of `node` where the view shows that file as it is (no
    /// renderer: `cmdline`).
    pub(super) fn read_kept_as_is(&self, node: &Node) -> Option<Vec<u8>> {
        match node {
            Node::Pid { n, tid, start, rel } if entries::entry(rel).render.is_none() => {
                self.read_kept(*n, *start, *tid, rel)
            }
            _ => None,
        }
    }

    /// Opens file `FILES[slot]` of process `n` (of its thread `tid`) and keeps it, if
    /// the process is still the one of the pidfd kept (alive after the open: its number
    /// cannot have passed to another process meanwhile) and the budget allows.
    fn keep_file(&self, n: Pid, start: u64, tid: Option<Pid>, slot: usize) -> Option<Arc<File>> {
        let share = crate::fds::Shares::now().kept_files;
        if !KEPT_FILES.room(share) {
            return None;
        }
        let path = match tid {
            None => format!("{n}/{}", FILES[slot]),
            Some(t) => format!("{n}/task/{t}/{}", FILES[slot]),
        };
        let file = Arc::new(File::open(host::proc_path(&path)).ok()?);
        let mut all = lock(&self.shared.pidfds);
        let kept = all
            .get_mut(&(n, start))
            .filter(|k| k.alive() == Some(true))?;
        let slot = &mut kept.files_mut(tid)[slot];
        if slot.is_none() && !KEPT_FILES.take(share) {
            // Another view took the last of the share meanwhile: read once, not kept.
            return Some(file);
        }
        Some(Arc::clone(slot.get_or_insert(file)))
    }
}
