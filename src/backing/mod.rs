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
//! A memfd is rewritten for another open only once nobody else holds it, because a
//! reader may have mapped it: procfs refuses `mmap` (ENODEV), but the kernel maps a
//! passthrough file's backing file, and a mapping outlives the open it came from.
//! Rewritten under a mapping, the memfd would show that reader the text of a later
//! open, rendered for another reader who may see more (a `stat` with its code and stack
//! addresses unmasked, an `environ` after a set-uid exec). So a backing file no handle
//! uses becomes a spare only after its inode lets it go, and a spare is rewritten only
//! if the kernel grants the daemon a write lease on it, which it does only to a file's
//! sole opener ([`crate::sys::passthrough::held_elsewhere`]: a mapping holds the file it
//! maps); one still held is closed instead, left to its holder. The rewrite truncates
//! first, so that pages a reader spliced into a pipe keep the old text rather than show
//! the new one. A mapping thus shows the snapshot of its own open, what its reader was
//! allowed to read, and nothing else (docs/limits.md). Rewriting a spare spares a new
//! memfd's making, registering and closing: at 10,000 processes, where the four files
//! `ps -ef` opens of each no longer fit among the idle ones, a sixth of the daemon's
//! work.
//!
//! A worker that takes a connection over (a `serve` upgrade, or a restart after the
//! previous worker was killed) did not see its INIT: it tries passthrough again, and
//! reads with `direct_io` if the kernel refuses it (a connection set up without it).
//! A worker that steps down hands its ids in use over in a file; one killed outright
//! cannot, and the backing files its readers held stay attached to their inodes: the
//! kernel refuses every other open of such an inode (`EIO`, whether the open names
//! another backing file or none) until those readers close it. So every registration
//! and close is recorded in a [`ledger`] that outlives the worker, and the next one
//! names those ids (with `direct_io`: their text is unknown) until the kernel forgets
//! their inodes. Without a ledger to read (a worker that could not keep one), the
//! connection reads through the daemon for good ([`Files::crashed`]): the next kill
//! then finds no file attached.

pub mod ledger;

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};
use rustc_hash::FxHashMap;

use crate::stats::Stats;
use ledger::{Entry, Ledger};

/// A backing id this worker owns: closed when dropped, and recorded in the mount's
/// ledger from its registration until just before its close.
struct Registered {
    /// `None` once handed over ([`Registered::into_raw`]).
    id: Option<BackingId>,
    /// Its raw id and the ledger it is recorded in, where the mount keeps one.
    recorded: Option<(u32, Arc<Mutex<Ledger>>)>,
}

impl Registered {
    fn id(&self) -> &BackingId {
        match &self.id {
            Some(id) => id,
            // `into_raw` takes `self`: no `Registered` is left without its id.
            None => unreachable!("a handed-over backing id is not used"),
        }
    }

    /// The backing file now serves inode `ino`: so the ledger says.
    fn rehome(&self, ino: u64) {
        if let Some((raw, l)) = &self.recorded {
            let mut l = crate::sync::lock(l);
            l.remove(*raw);
            l.insert(Entry { id: *raw, ino });
        }
    }

    /// Gives the id up without closing it, for the next worker; it stays in the ledger.
    fn into_raw(mut self) -> u32 {
        match self.id.take() {
            Some(id) => id.into_raw(),
            None => unreachable!("a backing id is handed over once"),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            if let Some((raw, l)) = &self.recorded {
                crate::sync::lock(l).remove(*raw);
            }
            drop(id);
        }
    }
}

/// The holders of a backing file a killed worker registered, which nobody knows: it
/// is kept (and named) until the kernel forgets its inode.
const UNKNOWN_HOLDERS: usize = usize::MAX / 2;

/// The backing file of one inode (`I`: its id, [`Registered`] but in unit tests).
struct Live<I = Registered> {
    /// Holds the memfd: the kernel keeps its own reference to the file.
    id: I,
    /// The memfd, opened writable through its path, for its rewrite as a spare; `None`
    /// where that open failed or the descriptors' share was spent, and for one taken
    /// over (its file is the kernel's only).
    file: Option<Writable>,
    text: Arc<[u8]>,
    /// Open handles that use it.
    open: usize,
    /// Whether an open found it idle and used it again: a file read repeatedly.
    reused: bool,
    /// Taken over from the previous worker, its text unknown: every open of the inode
    /// names it and is read through the daemon, and it is closed with its last handle,
    /// or, its holders unknown ([`UNKNOWN_HOLDERS`]), when the kernel forgets the inode.
    adopted: bool,
}

impl<I> Live<I> {
    /// A backing file of `text` that no handle uses yet.
    fn new(id: I, file: Option<Writable>, text: &Arc<[u8]>) -> Live<I> {
        Live {
            id,
            file,
            text: Arc::clone(text),
            open: 0,
            reused: false,
            adopted: false,
        }
    }

    /// The pages of memory its memfd holds.
    fn pages(&self) -> u64 {
        pages_of(self.text.len())
    }
}

fn pages_of(len: usize) -> u64 {
    len.div_ceil(PAGE) as u64
}

/// A backing file no inode uses any more, registered and open, kept to be rewritten
/// for another inode's open ([`Backings::recycle`]).
struct Spare<I = Registered> {
    id: I,
    file: Writable,
    pages: u64,
}

/// A memfd's writable descriptor, kept for its rewrite as a spare: counted against the
/// descriptors memfds may hold ([`crate::fds::Shares::memfds`]), since every idle
/// backing file keeps one (those the kernel alone holds cost the daemon none).
struct Writable(File);

/// The [`Writable`] descriptors open now, in every mount of the daemon.
static WRITABLE: crate::fds::Tally = crate::fds::Tally::new();

impl Writable {
    /// Counts `f` in, or answers `None` (and `f` is closed) once the share is spent.
    fn counted(f: File) -> Option<Writable> {
        WRITABLE
            .take(crate::fds::Shares::now().memfds)
            .then_some(Writable(f))
    }
}

impl Drop for Writable {
    fn drop(&mut self) {
        WRITABLE.give_back(1);
    }
}

/// The pages the spares may hold, one or more each: enough for the opens that come
/// between two releases. Part of [`IDLE_PAGES`].
const SPARE_PAGES: u64 = 64;

const PAGE: usize = 4096;

/// The handover file's line that says [`Files::crashed`].
const CRASHED: &str = "crashed";

/// On every open: the kernel sends no `FLUSH` at its closes. procfs has nothing to
/// flush, and a `FLUSH` is a request the reader waits for, where it can least afford
/// it: at `execve`, which closes the descriptors marked close-on-exec while it holds
/// the process's exec lock, so a process exec'ing while it held a file of the view
/// open waited for the daemon, and a daemon starting after an upgrade, which reads
/// every process's `stat` (blocked by that lock), waited for the process: both for
/// good (seen in tests/live_restart.rs). `ENOSYS` to the first `FLUSH` stops them
/// only once one has been answered.
const NO_FLUSH: FopenFlags = FopenFlags::FOPEN_NOFLUSH;

/// How many pages the backing files no handle uses may hold: the idle ones, kept for
/// their inode's next open of the same text ([`IDLE_BUDGET`]), and the spares
/// ([`SPARE_PAGES`]): 16 MiB, about the four files `ps -ef` opens of 1,000 processes.
/// Reusing one spares a memfd's making, filling and registering, and its closing later:
/// a third of the daemon's work for a repeated `ps -ef` (measured in
/// docs/performance.md). An idle one goes when the kernel forgets its inode or its next
/// open has another text, and past the budget, as [`Files::keep_idle`] says.
const IDLE_PAGES: u64 = 4096;

/// The idle ones' part of [`IDLE_PAGES`].
const IDLE_BUDGET: u64 = IDLE_PAGES - SPARE_PAGES;

/// When the idle ones fill the budget, one in this many backing files that were never
/// used again is kept all the same, at the cost of the one used longest ago.
const ADMIT_ONE_IN: u64 = 8;

/// The backing files of a mount.
struct Files<I = Registered> {
    /// By inode, those some handle uses: the kernel has them attached to their inode.
    open: FxHashMap<u64, Live<I>>,
    /// The pages `open` holds.
    open_pages: u64,
    /// By inode, those no handle uses, the one released longest ago first.
    idle: lru::LruCache<u64, Live<I>>,
    /// The pages `idle` holds.
    idle_pages: u64,
    /// Spares, the one let go longest ago first (the likeliest to be free of the
    /// kernel's last reference).
    spares: std::collections::VecDeque<Spare<I>>,
    /// The pages `spares` hold.
    spare_pages: u64,
    /// Backing files never used again that found the budget full.
    refused: u64,
    /// By inode, the backing files the previous worker handed over: their id and how
    /// many of its handles use them. Each becomes a [`Live`] at the inode's next open.
    adopted: FxHashMap<u64, Handed>,
    /// The inode each open handle is of (the previous worker's handed over too).
    by_fh: FxHashMap<u64, u64>,
    /// A worker of this connection was killed outright: no passthrough (see the
    /// module's doc), handed on to every later worker.
    crashed: bool,
    /// This worker handed its backing files over ([`step_down_everywhere`]): requests
    /// that would use them are left to the next worker ([`Backings::files_for_request`]).
    stepped_down: bool,
}

/// A backing file the previous worker registered and handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handed {
    id: u32,
    open: usize,
}

impl<I> Files<I> {
    fn new() -> Self {
        Files {
            open: FxHashMap::default(),
            open_pages: 0,
            idle: lru::LruCache::unbounded(),
            idle_pages: 0,
            spares: std::collections::VecDeque::new(),
            spare_pages: 0,
            refused: 0,
            adopted: FxHashMap::default(),
            by_fh: FxHashMap::default(),
            crashed: false,
            stepped_down: false,
        }
    }

    /// The idle backing file of `ino`, taken out for an open of `text` if it holds that
    /// very text (and marked as used again); one of another text is let go
    /// ([`Files::let_go`]), to be rewritten only once nobody holds it (see the module's
    /// doc).
    fn reuse(&mut self, ino: u64, text: &[u8]) -> Option<Live<I>> {
        let mut l = self.take_idle(ino)?;
        if *l.text != *text {
            self.let_go(l);
            return None;
        }
        l.reused = true;
        Some(l)
    }

    /// `l`, which no inode uses any more, becomes a spare if it can be rewritten and
    /// fits in [`SPARE_PAGES`]; it is closed otherwise.
    fn let_go(&mut self, l: Live<I>) {
        let Live {
            id,
            file,
            text,
            adopted,
            ..
        } = l;
        let pages = pages_of(text.len());
        let fits = self.spare_pages + pages <= SPARE_PAGES;
        let Some(file) = file.filter(|_| !adopted && fits) else {
            return;
        };
        self.spare_pages += pages;
        self.spares.push_back(Spare { id, file, pages });
    }

    /// Closes every spare.
    fn close_spares(&mut self) {
        self.spares.clear();
        self.spare_pages = 0;
    }

    /// The spare let go longest ago.
    fn take_spare(&mut self) -> Option<Spare<I>> {
        let s = self.spares.pop_front()?;
        self.spare_pages -= s.pages;
        Some(s)
    }

    /// Handle `fh` opens `ino`, whose backing file some handle uses already: the one the
    /// kernel has attached, which the open must name.
    fn attach(&mut self, ino: u64, fh: u64) -> Option<&Live<I>> {
        let l = self.open.get_mut(&ino)?;
        l.open += 1;
        self.by_fh.insert(fh, ino);
        Some(l)
    }

    /// Takes the idle backing file of `ino` out of the idle ones.
    fn take_idle(&mut self, ino: u64) -> Option<Live<I>> {
        let l = self.idle.pop(&ino)?;
        self.idle_pages -= l.pages();
        Some(l)
    }

    /// Keeps `l`, of inode `ino`, idle, within [`IDLE_BUDGET`]; one that is not kept is
    /// let go ([`Files::let_go`]: a spare, or closed).
    ///
    /// While they fit, every one is kept. When they fill the budget, one that was used
    /// again is kept and the one used longest ago let go; one that never was is let go
    /// itself, except once in [`ADMIT_ONE_IN`] times, when it too pushes out the one
    /// used longest ago. Plain LRU would make a scan of more files than fit (`ps -ef`
    /// of 10,000 processes, or a few more than fit) evict each of its files just
    /// before its next use, and find none again; this way a scan keeps finding the
    /// files that fit, and what is no longer read (a dead process's files) still goes,
    /// oldest first, as newcomers are let in.
    fn keep_idle(&mut self, ino: u64, l: Live<I>) {
        let full = self.idle_pages + l.pages() > IDLE_BUDGET;
        if full && !l.reused {
            self.refused += 1;
            if self.refused % ADMIT_ONE_IN != 0 {
                return self.let_go(l);
            }
        }
        self.idle_pages += l.pages();
        if let Some((_, replaced)) = self.idle.push(ino, l) {
            self.idle_pages -= replaced.pages();
            self.let_go(replaced);
        }
        while self.idle_pages > IDLE_BUDGET {
            let Some((_, oldest)) = self.idle.pop_lru() else {
                break;
            };
            self.idle_pages -= oldest.pages();
            self.let_go(oldest);
        }
    }

    /// `l`, of inode `ino`, is used by a first handle.
    fn open(&mut self, ino: u64, l: Live<I>) {
        self.open_pages += l.pages();
        if let Some(replaced) = self.open.insert(ino, l) {
            self.open_pages -= replaced.pages();
        }
    }

    /// The last handle of inode `ino` is closed: its backing file becomes idle.
    fn close(&mut self, ino: u64) {
        if let Some(l) = self.open.remove(&ino) {
            self.open_pages -= l.pages();
            if !l.adopted {
                self.keep_idle(ino, l);
            }
        }
    }

    /// The lines of a handover file: per backing file some handle uses, its inode, its
    /// id and the handles (`ino id fh…`), `ids` turning a [`Live`]'s id into a raw one;
    /// and a line `crashed` once a worker was [killed](Files::crashed).
    fn handover(&mut self, mut ids: impl FnMut(I) -> u32) -> String {
        let mut handles: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
        for (&fh, &ino) in &self.by_fh {
            handles.entry(ino).or_default().push(fh);
        }
        let mut out = String::new();
        if self.crashed {
            out.push_str(CRASHED);
            out.push('\n');
        }
        let live = std::mem::take(&mut self.open)
            .into_iter()
            .map(|(ino, l)| (ino, l.open >= UNKNOWN_HOLDERS, ids(l.id)));
        let handed = self
            .adopted
            .drain()
            .filter(|(_, h)| h.open > 0)
            .map(|(ino, h)| (ino, h.open >= UNKNOWN_HOLDERS, h.id));
        for (ino, unknown, id) in live.chain(handed) {
            let mut fhs = handles.remove(&ino).unwrap_or_default();
            fhs.sort_unstable();
            let mut words: Vec<String> = fhs.iter().map(u64::to_string).collect();
            if unknown {
                words.insert(0, "?".into());
            }
            out.push_str(&format!("{ino} {id} {}\n", words.join(" ")));
        }
        out
    }

    /// Takes over what [`Files::handover`] wrote; a malformed line is skipped.
    fn take_over(&mut self, text: &str) {
        for line in text.lines() {
            if line == CRASHED {
                self.crashed = true;
                continue;
            }
            // `?` after the id: holders nobody knows (a killed worker's readers).
            let unknown = line.split_whitespace().nth(2) == Some("?");
            let nums: Option<Vec<u64>> = line
                .split_whitespace()
                .filter(|w| *w != "?")
                .map(|w| w.parse().ok())
                .collect();
            let Some([ino, id, fhs @ ..]) = nums.as_deref() else {
                log::warn!("handed-over backing files: bad line {line:?}");
                continue;
            };
            let Ok(id) = u32::try_from(*id) else {
                continue;
            };
            let base = if unknown { UNKNOWN_HOLDERS } else { 0 };
            self.adopted.insert(
                *ino,
                Handed {
                    id,
                    open: base + fhs.len(),
                },
            );
            for &fh in fhs {
                self.by_fh.insert(fh, *ino);
            }
        }
    }

    /// The backing files a killed worker had registered, as its ledger recorded them:
    /// named at their inode's next open, kept until the kernel forgets the inode.
    fn adopt_unknown(&mut self, entries: &[Entry]) {
        for e in entries {
            if !self.open.contains_key(&e.ino) {
                self.adopted.entry(e.ino).or_insert(Handed {
                    id: e.id,
                    open: UNKNOWN_HOLDERS,
                });
            }
        }
    }

    /// The kernel forgot inode `ino`: no file of it is open, so its idle backing file
    /// and one taken over from a previous worker go.
    fn forget(&mut self, ino: u64) -> bool {
        let idle = self.take_idle(ino).map(|l| self.let_go(l)).is_some();
        let adopted = self.open.get(&ino).is_some_and(|l| l.adopted);
        if adopted {
            if let Some(l) = self.open.remove(&ino) {
                self.open_pages -= l.pages();
            }
        }
        idle || adopted
    }

    /// Closes every idle backing file.
    fn close_idle(&mut self) {
        self.idle.clear();
        self.idle_pages = 0;
        self.close_spares();
    }

    /// The memory all the backing files hold, in kB.
    fn kb(&self) -> u64 {
        (self.open_pages + self.idle_pages + self.spare_pages) * PAGE as u64 / 1024
    }
}

/// The live backing files of a mount, by inode, and which handle uses which.
pub struct Backings {
    enabled: AtomicBool,
    /// Whether spares are rewritten: false once the kernel refused a lease.
    recycling: AtomicBool,
    files: Mutex<Files>,
    /// Where the memory they hold is reported.
    stats: Arc<Stats>,
    /// Where a worker stepping down writes the backing files it hands over, and the
    /// next one reads them ([`Backings::hand_over_at`]).
    handover: Mutex<Option<PathBuf>>,
    /// The mount's [`ledger`], where a worker keeps one (`serve`).
    ledger: std::sync::OnceLock<Arc<Mutex<Ledger>>>,
}

/// Every mount's backing files in this process, for [`step_down_everywhere`].
static MOUNTS: Mutex<Vec<Weak<Backings>>> = Mutex::new(Vec::new());

/// What a worker that steps down for another (a `serve` upgrade) does last with the
/// backing files of each of its mounts. The kernel keeps a backing file registered with
/// its FUSE connection until it is closed or the connection ends, and the connection
/// outlives the worker (the supervisor holds it for the next one):
///
/// - the idle ones are closed: left open, up to [`IDLE_PAGES`] of memory a mount would
///   stay with the connection at each upgrade (measured: 16 MiB of `Shmem` per
///   upgrade after a read of every file of 120 processes);
/// - those some reader's file uses stay attached to their inode, and the kernel refuses
///   (`EIO`) any other open of that inode that does not name the same backing file: they
///   are handed over (their ids and handles, in the file [`Backings::hand_over_at`]
///   names), so that the next worker names them (measured: a `cat` of a file another
///   reader held open across an upgrade failed with `EIO`).
///
/// From then on, this worker answers no request that would use them
/// ([`Backings::files_for_request`]).
///
/// A worker killed outright hands nothing over (docs/limits.md).
pub fn step_down_everywhere() {
    let mounts: Vec<Arc<Backings>> = crate::sync::lock(&MOUNTS)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for b in mounts {
        let mut files = crate::sync::lock(&b.files);
        files.close_idle();
        if let Some(path) = crate::sync::lock(&b.handover).clone() {
            let text = files.handover(Registered::into_raw);
            let tmp = path.with_extension("new");
            if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
                log::warn!("cannot hand over backing files in {}: {e}", path.display());
            }
        }
        files.stepped_down = b.enabled();
    }
}

impl Backings {
    /// No backing files yet; their memory is reported to `stats`.
    pub fn new(stats: Arc<Stats>) -> Arc<Self> {
        let b = Arc::new(Backings {
            enabled: AtomicBool::new(false),
            recycling: AtomicBool::new(true),
            files: Mutex::new(Files::new()),
            stats,
            handover: Mutex::new(None),
            ledger: std::sync::OnceLock::new(),
        });
        let mut mounts = crate::sync::lock(&MOUNTS);
        mounts.retain(|m| m.strong_count() > 0);
        mounts.push(Arc::downgrade(&b));
        b
    }

    /// Hands the backing files readers use over through `path` when this worker steps
    /// down ([`step_down_everywhere`]), and keeps the mount's [`ledger`] beside it. A
    /// worker that took the connection over (`takeover`) takes over what its
    /// predecessor handed over there, or, if it wrote nothing (it was killed), what the
    /// ledger recorded. Answers whether passthrough may be tried: not after a killed
    /// worker whose ledger cannot be read, or after one that followed such a worker.
    pub fn hand_over_at(&self, path: PathBuf, takeover: bool) -> bool {
        let ledger_path = path.with_extension("ledger");
        let mut files = crate::sync::lock(&self.files);
        if takeover {
            let recorded = Ledger::read(&ledger_path);
            match std::fs::read_to_string(&path) {
                Ok(text) => files.take_over(&text),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        log::warn!("cannot read {}: {e}", path.display());
                    }
                    match &recorded {
                        Ok(Some(_)) => {}
                        Ok(None) => files.crashed = true,
                        Err(e) => {
                            log::warn!("{e}: reads go through the daemon from now on");
                            files.crashed = true;
                        }
                    }
                }
            }
            // A killed worker's registrations; after a step-down, none is left unhanded
            // (the worker answers no open after it: `files_for_request`).
            if let Ok(Some(entries)) = &recorded {
                files.adopt_unknown(entries);
            }
        }
        let entries: Vec<Entry> = files
            .adopted
            .iter()
            .map(|(&ino, h)| Entry { id: h.id, ino })
            .collect();
        match Ledger::create(&ledger_path, &entries) {
            Ok(l) => {
                let _ = self.ledger.set(Arc::new(Mutex::new(l)));
            }
            Err(e) => {
                // A stale ledger would name ids closed since: better none.
                let _ = std::fs::remove_file(&ledger_path);
                log::warn!("cannot keep {}: {e}", ledger_path.display());
            }
        }
        let may = !files.crashed;
        drop(files);
        // Read once: a worker that dies before it hands over leaves no stale ids.
        let _ = std::fs::remove_file(&path);
        *crate::sync::lock(&self.handover) = Some(path);
        may
    }

    /// `id`, just registered for inode `ino`, as this worker's: recorded in the ledger
    /// before the kernel is told to use it.
    /// Without a ledger (`run`) the id is kept as the kernel gave it.
    fn register(&self, reply: &ReplyOpen, id: BackingId, ino: u64) -> Registered {
        let Some(l) = self.ledger.get() else {
            return Registered {
                id: Some(id),
                recorded: None,
            };
        };
        let raw = id.into_raw();
        crate::sync::lock(l).insert(Entry { id: raw, ino });
        Registered {
            id: Some(crate::sys::passthrough::adopt_backing(reply, raw)),
            recorded: Some((raw, Arc::clone(l))),
        }
    }

    /// Whether the kernel agreed to passthrough (FUSE INIT).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records the kernel's answer to FUSE INIT.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The mount's backing files, for an open or a release. Once this worker has
    /// handed them over ([`step_down_everywhere`]) it never answers such a request: a
    /// passthrough open answered then would attach a backing file the handover does not
    /// name (the next worker's opens of that inode then fail with `EIO` while its
    /// reader holds it: `ps` failed during back-to-back upgrades with "Error, do this:
    /// mount -t proc proc /proc"), and a release would count a handle
    /// the next worker still expects. The request's thread waits for the worker's end
    /// instead, and the next worker has the kernel send the request again
    /// (`FUSE_NOTIFY_RESEND`, [`crate::handover::adopt`]; every kernel with passthrough
    /// has it), answering it with the handover in hand. Without passthrough there is
    /// nothing to get wrong, and requests are answered to the end.
    fn files_for_request(&self) -> std::sync::MutexGuard<'_, Files> {
        let files = crate::sync::lock(&self.files);
        if files.stepped_down {
            drop(files);
            loop {
                std::thread::park();
            }
        }
        files
    }

    /// Answers the open of handle `fh` of inode `ino`, whose every read returns `text`.
    pub fn reply(&self, ino: u64, fh: u64, text: &Arc<[u8]>, reply: ReplyOpen) {
        let mut guard = self.files_for_request();
        let files = &mut *guard;
        self.claim_handed(files, ino, &reply);
        if let Some(l) = files.attach(ino, fh) {
            let mut flags = NO_FLUSH;
            if l.adopted || *l.text != **text {
                // Another snapshot holds the inode: this one is read through the
                // daemon, still naming the inode's backing file.
                flags |= FopenFlags::FOPEN_DIRECT_IO;
            }
            return reply.opened_passthrough(FileHandle(fh), flags, l.id.id());
        }
        let direct =
            |reply: ReplyOpen| reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO | NO_FLUSH);
        if !self.enabled() {
            return direct(reply);
        }
        let made = match files.reuse(ino, text) {
            Some(l) => Ok(l),
            None => match self.recycle(files, ino, text) {
                Some(l) => Ok(l),
                None => memfd_with(text).and_then(|memfd| {
                    let id = reply.open_backing(memfd.file())?;
                    self.stats.count_memfd(false);
                    Ok(Live::new(
                        self.register(&reply, id, ino),
                        memfd.into_kept(),
                        text,
                    ))
                }),
            },
        };
        match made {
            Ok(mut l) => {
                reply.opened_passthrough(FileHandle(fh), NO_FLUSH, l.id.id());
                l.open = 1;
                files.open(ino, l);
                files.by_fh.insert(fh, ino);
            }
            Err(e) => {
                log::warn!("FUSE passthrough refused ({e}); reads go through the daemon");
                self.set_enabled(false);
                direct(reply);
            }
        }
        self.stats.set_memfd_kb(files.kb());
    }

    /// Answers the open of handle `fh` of inode `ino`, read through the daemon with
    /// `flags` (`FOPEN_DIRECT_IO`…): while a snapshot of the inode is open, it must name
    /// that snapshot's backing file (see the module's doc), with `FOPEN_DIRECT_IO` so
    /// that its reads still come to the daemon.
    pub fn reply_direct(&self, ino: u64, fh: u64, flags: FopenFlags, reply: ReplyOpen) {
        let mut guard = self.files_for_request();
        let files = &mut *guard;
        self.claim_handed(files, ino, &reply);
        if let Some(l) = files.attach(ino, fh) {
            let flags = flags | FopenFlags::FOPEN_DIRECT_IO | NO_FLUSH;
            return reply.opened_passthrough(FileHandle(fh), flags, l.id.id());
        }
        reply.opened(FileHandle(fh), flags | NO_FLUSH);
    }

    /// Handle `fh` is closed: the last handle of an inode leaves its backing file idle
    /// ([`IDLE_PAGES`]).
    pub fn release(&self, fh: u64) {
        let mut guard = self.files_for_request();
        let files = &mut *guard;
        let Some(ino) = files.by_fh.remove(&fh) else {
            return;
        };
        if let Some(h) = files.adopted.get_mut(&ino) {
            // A handle of the previous worker's: the inode's next open closes its
            // backing file once no handle uses it.
            h.open = h.open.saturating_sub(1);
            return;
        }
        let Some(l) = files.open.get_mut(&ino) else {
            return;
        };
        l.open = l.open.saturating_sub(1);
        if l.open == 0 {
            files.close(ino);
        }
        self.stats.set_memfd_kb(files.kb());
    }

    /// The kernel forgot inode `ino`: its idle backing file, if any, is closed.
    pub fn forget(&self, ino: u64) {
        let mut files = crate::sync::lock(&self.files);
        if files.forget(ino) {
            self.stats.set_memfd_kb(files.kb());
        }
    }
}

impl Backings {
    /// A spare rewritten with `text` for inode `ino`, if one is free: nobody else holds
    /// it (see the module's doc). One still held is closed, left to its holder; at most
    /// two are tried.
    fn recycle(&self, files: &mut Files, ino: u64, text: &Arc<[u8]>) -> Option<Live> {
        if !self.recycling.load(Ordering::Relaxed) {
            return None;
        }
        for _ in 0..2 {
            let spare = files.take_spare()?;
            match crate::sys::passthrough::held_elsewhere(&spare.file.0) {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    log::info!("no write lease on a backing file ({e}): none is rewritten");
                    self.recycling.store(false, Ordering::Relaxed);
                    files.close_spares();
                    return None;
                }
            }
            // Truncated first: a page a reader spliced keeps the old text.
            let rewritten = spare
                .file
                .0
                .set_len(0)
                .and_then(|()| spare.file.0.write_all_at(text, 0));
            if rewritten.is_err() {
                continue;
            }
            spare.id.rehome(ino);
            self.stats.count_memfd(true);
            return Some(Live::new(spare.id, Some(spare.file), text));
        }
        None
    }

    /// At the first open of inode `ino` since a takeover, the backing file the previous
    /// worker handed over (or its ledger recorded) becomes this worker's: kept while
    /// handles may use it (the kernel has it attached to the inode), closed otherwise.
    fn claim_handed(&self, files: &mut Files, ino: u64, reply: &ReplyOpen) {
        let Some(h) = files.adopted.remove(&ino) else {
            return;
        };
        let id = Registered {
            id: Some(crate::sys::passthrough::adopt_backing(reply, h.id)),
            recorded: self.ledger.get().map(|l| (h.id, Arc::clone(l))),
        };
        if h.open > 0 {
            files.open(
                ino,
                Live {
                    id,
                    file: None,
                    text: Arc::from(&b""[..]),
                    open: h.open,
                    reused: false,
                    adopted: true,
                },
            );
        }
    }
}

/// A memfd holding `text`, a regular file the kernel accepts as a backing file: kept
/// open writable, for its rewrite as a spare, where the descriptors' share allows it and
/// it can be opened through its path; a memfd's own descriptor does not count as its
/// file's writer, so the kernel would never grant it the lease that tells nobody else
/// holds the file ([`crate::sys::passthrough::held_elsewhere`]).
fn memfd_with(text: &[u8]) -> std::io::Result<Memfd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use std::os::fd::AsRawFd as _;
    let fd = memfd_create(c"vprocfs", MFdFlags::MFD_CLOEXEC).map_err(std::io::Error::from)?;
    let memfd = File::from(fd);
    memfd.write_all_at(text, 0)?;
    if !WRITABLE.room(crate::fds::Shares::now().memfds) {
        return Ok(Memfd {
            backing: memfd,
            writable: None,
        });
    }
    let path = crate::host::proc_path(&format!("self/fd/{}", memfd.as_raw_fd()));
    let writable = File::options()
        .read(true)
        .write(true)
        .open(path)
        .and_then(|f| crate::sys::passthrough::quiet_lease_breaks(&f).map(|()| f));
    Ok(Memfd {
        backing: memfd,
        writable: writable.ok().and_then(Writable::counted),
    })
}

/// A new memfd: its own descriptor, the one registered with the kernel, and where the
/// share allows, a second one opened writable through its path and kept for its rewrite
/// as a spare (otherwise the kernel holds it alone, and it is never rewritten).
///
/// The lease that tells whether anyone else holds the memfd ([`Backings::recycle`]) is
/// taken on the second, never on the registered one: a lease goes only with the last
/// reference to its file, and the kernel keeps a registered file referenced after the
/// worker is gone. A worker that ended while it held one (an upgrade's exit, or a
/// kill, between the two `F_SETLEASE` calls) left it on the registered file, and every
/// later open of that backing file waited in `break_lease` for the kernel's
/// `lease-break-time` (45 s); on the daemon's own descriptor it goes with the worker.
struct Memfd {
    backing: File,
    writable: Option<Writable>,
}

impl Memfd {
    /// The file to register as the backing file.
    fn file(&self) -> &File {
        &self.backing
    }

    /// The writable descriptor kept once the memfd is registered (the kernel holds its
    /// own reference to the registered file, so this one may be closed).
    fn into_kept(self) -> Option<Writable> {
        self.writable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::io::Seek as _;

    fn live(len: usize) -> Live<u32> {
        Live {
            id: 0,
            file: None,
            text: vec![b'x'; len].into(),
            open: 1,
            reused: false,
            adopted: false,
        }
    }

    /// One open and close of inode `ino` (a text of 100 bytes): found idle and used
    /// again, or new.
    fn read(f: &mut Files<u32>, ino: u64) -> bool {
        let found = f.reuse(ino, &[b'x'; 100]);
        let hit = found.is_some();
        f.open(ino, found.unwrap_or_else(|| live(100)));
        f.close(ino);
        hit
    }

    #[test]
    fn backing_files_in_use_are_handed_over_with_their_handles() {
        let mut f = Files::<u32>::new();
        let mut l = live(10);
        l.id = 7;
        l.open = 2;
        f.open(100, l);
        f.by_fh.extend([(5, 100), (9, 100)]);
        one_idle(&mut f, 200);
        let text = f.handover(|id| id);
        assert_eq!(text, "100 7 5 9\n", "in use: handed over; idle: not");
        assert!(f.open.is_empty());

        let mut next = Files::<u32>::new();
        next.take_over(&format!("{text}bad line\n300 8\n"));
        assert_eq!(next.adopted[&100], Handed { id: 7, open: 2 });
        assert_eq!(next.adopted[&300], Handed { id: 8, open: 0 });
        assert_eq!((next.by_fh[&5], next.by_fh[&9]), (100, 100));
        // A handed-over file still in use is handed over again by the next worker.
        assert_eq!(next.handover(|id| id), "100 7 5 9\n");
    }

    #[test]
    fn a_crash_is_handed_on_to_every_later_worker() {
        let mut f = Files::<u32>::new();
        assert_eq!(f.handover(|id| id), "");
        f.crashed = true;
        let mut l = live(10);
        l.id = 3;
        l.open = 1;
        f.open(600, l);
        f.by_fh.insert(4, 600);
        let text = f.handover(|id| id);
        assert_eq!(text, "crashed\n600 3 4\n");
        let mut next = Files::<u32>::new();
        next.take_over(&text);
        assert!(next.crashed);
        assert_eq!(next.adopted[&600], Handed { id: 3, open: 1 });
        assert_eq!(next.handover(|id| id), text);
    }

    #[test]
    fn a_killed_workers_backing_files_are_named_until_their_inode_is_forgotten() {
        let mut f = Files::<u32>::new();
        f.adopt_unknown(&[Entry { id: 5, ino: 50 }, Entry { id: 6, ino: 60 }]);
        assert_eq!(
            f.adopted[&50],
            Handed {
                id: 5,
                open: UNKNOWN_HOLDERS
            }
        );
        // Handed on as holders unknown, with this worker's own handles after the `?`.
        let mut l = live(0);
        l.id = 6;
        l.open = UNKNOWN_HOLDERS + 1;
        l.adopted = true;
        f.adopted.remove(&60);
        f.open(60, l);
        f.by_fh.insert(9, 60);
        let text = f.handover(|id| id);
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["50 5 ?", "60 6 ? 9"]);
        let mut next = Files::<u32>::new();
        next.take_over(&text);
        assert_eq!(next.adopted[&50].open, UNKNOWN_HOLDERS);
        assert_eq!(next.adopted[&60].open, UNKNOWN_HOLDERS + 1);
        // Once claimed, a release of every known handle leaves it named; the kernel
        // forgetting the inode lets it go.
        let mut l = live(0);
        l.adopted = true;
        l.open = UNKNOWN_HOLDERS;
        next.open(50, l);
        next.close(70); // another inode: nothing
        assert!(next.open.contains_key(&50));
        assert!(next.forget(50));
        assert!(!next.open.contains_key(&50));
        assert!(!next.forget(50));
    }

    fn one_idle(f: &mut Files<u32>, ino: u64) {
        f.open(ino, live(100));
        f.close(ino);
    }

    #[test]
    fn a_scan_of_more_files_than_fit_finds_those_that_fit() {
        let mut f = Files::<u32>::new();
        let n = IDLE_BUDGET + IDLE_BUDGET / 4;
        let scan = |f: &mut Files<u32>| (0..n).filter(|&ino| read(f, ino)).count() as u64;
        assert_eq!(scan(&mut f), 0, "the first scan finds nothing");
        for _ in 0..5 {
            let hits = scan(&mut f);
            // Plain LRU would find none (each evicted before its next use).
            assert!(hits > IDLE_BUDGET * 9 / 10, "{hits} of {n} found again");
            assert!(f.idle_pages <= IDLE_BUDGET);
        }
    }

    #[test]
    fn files_no_longer_read_give_way_to_those_read_now() {
        let mut f = Files::<u32>::new();
        // A set that fills the budget, read twice (found again), then never again:
        // a dead process's files.
        for _ in 0..2 {
            for ino in 0..IDLE_BUDGET {
                read(&mut f, ino);
            }
        }
        // Another set, read over and over, takes their place.
        let fresh = 1_000_000..1_000_000 + IDLE_BUDGET / 2;
        let mut hits = 0;
        for _ in 0..100 {
            hits = fresh.clone().filter(|&ino| read(&mut f, ino)).count() as u64;
        }
        assert_eq!(hits, IDLE_BUDGET / 2, "all found again in the end");
        assert!(f.idle_pages <= IDLE_BUDGET);
    }

    #[test]
    fn idle_backing_files_are_kept_within_the_budget_oldest_out_first() {
        let mut f = Files::<u32>::new();
        f.open(1, live(10));
        f.open(2, live(PAGE + 1));
        assert_eq!(f.kb(), 12, "one page, then two");
        f.close(1);
        f.close(2);
        assert_eq!((f.open_pages, f.idle_pages), (0, 3));
        // Fill the budget with one-page files: nothing goes while it holds them all.
        for ino in 3..3 + IDLE_BUDGET - 3 {
            one_idle(&mut f, ino);
        }
        assert_eq!(f.idle_pages, IDLE_BUDGET);
        assert!(f.idle.contains(&1) && f.idle.contains(&2));
        // Past it, a file never used again is not kept, but one in ADMIT_ONE_IN,
        // which pushes out the oldest: 1 (one page for one).
        for i in 1..ADMIT_ONE_IN {
            one_idle(&mut f, 10_000_000 + i);
            assert!(!f.idle.contains(&(10_000_000 + i)));
        }
        assert!(f.idle.contains(&1));
        one_idle(&mut f, 10_000_000);
        assert!(f.idle.contains(&10_000_000));
        assert_eq!(f.idle_pages, IDLE_BUDGET);
        assert!(!f.idle.contains(&1) && f.idle.contains(&2));
        // A file used again is kept: 2 goes (two pages out for one in).
        assert!(read(&mut f, 3) && read(&mut f, 3));
        let mut again = live(100);
        again.reused = true;
        f.open(20_000_000, again);
        f.close(20_000_000);
        assert!(f.idle.contains(&20_000_000) && !f.idle.contains(&2));
        assert_eq!(f.idle_pages, IDLE_BUDGET - 1);
        // Taking one out for an open, and forgetting one, count their pages out.
        let before = f.idle_pages;
        assert!(f.take_idle(3).is_some() && f.take_idle(3).is_none());
        assert_eq!(f.idle_pages, before - 1);
        assert_eq!(f.kb(), f.idle_pages * 4);
        // A worker stepping down closes the idle ones, not those in use.
        f.open(42, live(100));
        f.close_idle();
        assert_eq!((f.idle.len(), f.idle_pages, f.open_pages), (0, 0, 1));
    }

    #[test]
    fn a_memfd_holds_the_text() {
        let memfd = memfd_with(b"MemTotal: 1 kB\n").expect("memfd");
        assert!(
            memfd.writable.is_some(),
            "a memfd opens writable through /proc/self/fd"
        );
        let mut f = memfd.file();
        f.rewind().expect("rewind");
        let mut s = String::new();
        f.read_to_string(&mut s).expect("read");
        assert_eq!(s, "MemTotal: 1 kB\n");
        assert!(f.metadata().expect("stat").is_file());
    }

    /// A lease left behind (a worker that died between the two `F_SETLEASE` calls of
    /// its check) goes with the worker's descriptors: it is taken on the kept writable
    /// descriptor, never on the file registered with the kernel, which the kernel keeps
    /// referenced (a duplicate stands for that reference here). An open of the memfd,
    /// as the kernel's `backing_file_open` makes for every passthrough open, then does
    /// not wait for the lease's break; it did when the registered file was the leased
    /// one (the contrast below), for the kernel's `lease-break-time` of 45 s.
    #[test]
    fn a_lease_left_behind_goes_with_the_workers_descriptors() {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let open_nonblocking = |f: &File| {
            File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
        };
        let memfd = memfd_with(b"x").expect("memfd");
        let registered = memfd.file().try_clone().expect("the kernel's reference");
        let writable = memfd.into_kept().expect("kept writable");
        crate::sys::passthrough::take_write_lease(&writable.0).expect("lease");
        drop(writable);
        open_nonblocking(&registered).expect("no lease left: the open goes through");

        // The contrast: the leased descriptor is the one the kernel keeps.
        let memfd = memfd_with(b"x").expect("memfd");
        let writable = memfd.into_kept().expect("kept writable");
        let kept_by_kernel = writable.0.try_clone().expect("the kernel's reference");
        crate::sys::passthrough::take_write_lease(&writable.0).expect("lease");
        drop(writable);
        let e = open_nonblocking(&kept_by_kernel).expect_err("the lease outlives it");
        assert_eq!(e.raw_os_error(), Some(libc::EWOULDBLOCK), "{e}");
    }

    #[test]
    fn backing_files_let_go_become_spares_oldest_first_and_bounded() {
        let mut f = Files::<u32>::new();
        let with_file = |id: u32| {
            let file = memfd_with(b"x").expect("memfd").into_kept();
            assert!(file.is_some(), "kept writable");
            Live {
                id,
                file,
                ..live(5000)
            }
        };
        f.let_go(live(10));
        assert!(f.spares.is_empty(), "no file to rewrite: closed");
        let mut adopted = with_file(1);
        adopted.adopted = true;
        f.let_go(adopted);
        assert!(f.spares.is_empty(), "taken over: closed");
        let fit = SPARE_PAGES as u32 / 2;
        for id in 0..fit + 3 {
            f.let_go(with_file(id));
        }
        assert_eq!(f.spares.len(), fit as usize, "two pages each");
        assert_eq!(f.spare_pages, SPARE_PAGES);
        assert_eq!(f.kb(), f.spare_pages * 4);
        assert_eq!(f.take_spare().map(|s| s.id), Some(0));
        assert_eq!(f.spare_pages, SPARE_PAGES - 2);
        // An idle file whose inode's next open has another text is let go too.
        f.keep_idle(9, with_file(99));
        assert!(f.reuse(9, b"other").is_none());
        assert_eq!(f.spares.back().map(|s| s.id), Some(99));
        f.close_idle();
        assert_eq!((f.spares.len(), f.spare_pages), (0, 0));
    }
}
