//! What `run` and `serve` share: following kernel events into membership, serving the
//! FUSE session, and turning signals into an orderly stop.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};

use crate::events::EventStream;
use crate::spin::Spin;
use crate::stats::Stats;
use crate::sync::lock;
use crate::view::View;

/// The kernel's process events, for a view to follow ([`crate::view::Inputs::events`]):
/// none, with a warning, where the connector cannot be opened (not root, or not in the
/// initial namespaces), and membership then falls back to rescanning `/proc` when it is
/// listed.
pub fn open_events() -> Option<EventStream> {
    EventStream::open()
        .inspect_err(|e| {
            log::warn!(
                "process events unavailable ({e}); membership falls back to rescanning /proc"
            )
        })
        .ok()
}

/// Starts the thread that applies `view`'s process events as they come, and lets
/// membership reap what it holds when none come for half a second. False where the view
/// has no events ([`open_events`]) or the thread cannot start; membership then falls
/// back to rescans.
pub fn follow_events(view: &Arc<View>) -> bool {
    if !view.follows_events() {
        return false;
    }
    let events_view = Arc::clone(view);
    let spawned = thread::Builder::new()
        .name("vprocfs-events".into())
        .spawn(move || loop {
            let Some(socket) = events_view.event_socket() else {
                return;
            };
            let mut fds = [PollFd::new(socket, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(500u16)) {
                Ok(0) => events_view.with_tracker(|t| t.reap()),
                Ok(_) => {
                    if !events_view.catch_up() {
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log::error!("process events stopped: {e}; falling back to rescans");
                    events_view.stop_events();
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => true,
        Err(e) => {
            log::warn!("cannot start the events thread ({e}); falling back to rescans");
            view.stop_events();
            false
        }
    }
}

/// Starts the thread that tells the kernel, through `notifier`, to drop the names it
/// caches of processes membership has released; the sender to it, for
/// [`View::connect`]. The thread holds no lock of the view, so a notification that waits
/// for a lookup in flight cannot wait for itself.
fn start_flush(notifier: fuser::Notifier) -> Option<crate::view::Flush> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<crate::view::cache::FlushBatch>(1024);
    let spawned = thread::Builder::new()
        .name("vprocfs-flush".into())
        .spawn(move || {
            for batch in rx {
                for (dir, name) in batch.names {
                    let _flushing = lock(&FLUSHING);
                    if STOPPING.load(Ordering::Relaxed) {
                        break;
                    }
                    // ENOENT: the kernel holds no such entry any more, nothing to do.
                    let _ = notifier.inval_entry(fuser::INodeNo(dir), std::ffi::OsStr::new(&name));
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            log::warn!("cannot start the flush thread ({e}): the kernel keeps dead processes' entries until memory runs short");
            None
        }
    }
}

/// Held by a flush thread while it tells the kernel to drop a name ([`stop_flushing`]).
static FLUSHING: Mutex<()> = Mutex::new(());

/// Set once the daemon stops: the flush threads tell the kernel nothing more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Stops the flush threads before the daemon exits, waiting (up to `limit`) for the
/// invalidation one of them may be making. The kernel makes an invalidation of a name
/// wait for a lookup in the same directory, which waits for this daemon's answer: a
/// daemon that exited with a flush thread in there could not end (that thread stays in
/// the kernel, uninterruptible), nor could the lookup's reader, and the supervisor
/// would wait for the daemon's end before starting the next one. Called while the
/// FUSE threads still serve, so that lookup is answered.
pub fn stop_flushing(limit: Duration) {
    STOPPING.store(true, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if FLUSHING.try_lock().is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
    log::warn!("an invalidation of a cached name still waits after {limit:?}");
}

/// Raises the soft limit on open descriptors to the hard one: the load sampler keeps
/// each sampled thread's `stat` open (re-reading an open file costs 3.3 µs a thread
/// against 5.5 µs for open+read+close, which keeps a 10,000-thread VPS under 1 % of a
/// CPU), and the view a pidfd and two files of each member it shows: [`crate::fds`]
/// shares the limit out.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Root may raise the hard limit too, up to the kernel's fs.nr_open: enough for VPSes
    // of tens of thousands of processes and threads (2^18 = 262,144: a quarter of
    // Linux's default nr_open).
    const WANT: u64 = 1 << 18;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(WANT);
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.max(WANT.min(nr_open));
        if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() && soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::info!("cannot raise the descriptor limit from {soft} ({e})");
            }
        }
    }
    crate::fds::limit_changed();
}

/// How often the load of each VPS is sampled: the kernel's `LOAD_FREQ`.
pub const LOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the thread that samples each VPS's load every [`LOAD_INTERVAL`], for its
/// `loadavg` ([`crate::resources`]). It holds the view weakly and ends with it.
pub fn sample_loads(view: &Arc<View>) {
    raise_fd_limit();
    let weak: Weak<View> = Arc::downgrade(view);
    let spawned = thread::Builder::new()
        .name("vprocfs-load".into())
        .spawn(move || loop {
            thread::sleep(LOAD_INTERVAL);
            match weak.upgrade() {
                Some(view) => {
                    view.sample_loads();
                    // A daemon killed without notice loses at most 5 s of floors.
                    view.save_floors();
                }
                None => return,
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the load sampler ({e}): loadavg stays at 0");
    }
}

/// The signals the daemon handles: those that stop it (SIGUSR2: a served daemon steps
/// down for an upgrade), and SIGUSR1, which prints its statistics to standard error.
pub fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the stop signals in the calling thread (and so in every thread it starts), so
/// that [`wait_signal`] receives them instead of the default action killing the daemon
/// with its mount still up.
pub fn block_stop_signals() -> io::Result<()> {
    stop_signals().thread_block().map_err(io::Error::from)
}

/// Waits for a signal that stops the daemon, printing `stats` on each SIGUSR1 meanwhile.
pub fn wait_signal(stats: &Stats) -> io::Result<Signal> {
    loop {
        match stop_signals().wait().map_err(io::Error::from)? {
            Signal::SIGUSR1 => crate::say!("vprocfs: {}", stats.line()),
            sig => return Ok(sig),
        }
    }
}

/// Starts serving `session` (of `view`) on a thread of its own, once `view` is connected
/// to it ([`View::connect`]: its notifier, and the flush thread), with `spin`'s governor
/// on its descriptor.
pub fn start_session<FS: fuser::Filesystem + Send + 'static>(
    session: fuser::Session<FS>,
    view: &View,
    spin: &Arc<Spin>,
) -> io::Result<fuser::BackgroundSession> {
    let notifier = session.notifier();
    view.connect(notifier.clone(), start_flush(notifier));
    spin.start(session.as_fd())?;
    session.spawn()
}

/// The FUSE session's settings: one thread that polls during bursts (see [`crate::spin`]),
/// or two that sleep between requests.
pub fn session_config(spin: &Spin) -> fuser::Config {
    let mut config = fuser::Config::default();
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(if spin.enabled() { 1 } else { 2 });
    config
}
