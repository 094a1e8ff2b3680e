//! The supervisor of `vprocfs serve`: a small process that mounts the view, holds the
//! mount's `/dev/fuse` descriptor for its whole life and runs the daemon proper (the
//! worker) as its child. When the worker dies (a crash, `kill -9`) or steps down for an
//! upgrade (SIGUSR2), the connection stays up, because the supervisor still holds it:
//! readers' requests wait in the kernel's queue, and a new worker started on the same
//! descriptor answers them ([`crate::handover`]). No reader sees `ENOTCONN`.
//!
//! The worker also makes a mount per VPS of its own (the kernel's dentry and attribute
//! caches are per mount, so only a mount that serves one VPS may cache). It gives the
//! supervisor a copy of each one's `/dev/fuse` descriptor over the [`Channel`](super::channel::Channel) (`hold`),
//! so that those mounts outlive it just as the shared one does: the supervisor hands
//! them to every new worker (`held`), which takes them over, and unmounts them when it
//! stops.
//!
//! ```text
//! supervisor: mounts the view; holds its /dev/fuse, and a copy of each per-VPS mount's
//!   │
//!   ├─spawn──▶ worker (generation 0)  ◀── "end" (nothing held yet)
//!   │            "mount" ──▶ supervisor mounts the view ──▶ "mounted"
//!   │            serves, ctl, state, inode journal; "ready"
//!   │            mounts a VPS's view: "hold NAME PATH" + fd ──▶ copy kept
//!   │            unmounts a VPS's view: "release NAME" ──▶ copy closed
//!   │  forwards SIGHUP/SIGUSR1
//!   │  on SIGTERM/SIGINT: stops the worker, unmounts the per-VPS mounts, then the view
//!   └─ worker gone? ──spawn──▶ worker (generation 1)  ◀── "held NAME PATH" + fd each, "end"
//!                                takes the connections over, restores state and inodes,
//!                                asks for lost requests again; "ready"; hold, release
//! ```
//!
//! The supervisor reads no input from a VPS and parses nothing but its own arguments and
//! its worker's one-line messages, so that it has as little as possible that could fail.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{shutdown, socketpair, AddressFamily, Shutdown, SockFlag, SockType};
use nix::unistd::Pid as NixPid;

use crate::sync::lock;

use super::channel::{next_message, send, send_held, HeldMount, Message};

/// What the supervisor tells a worker (`--worker FD:GENERATION:READY:PARENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerArg {
    /// The inherited `/dev/fuse` descriptor.
    pub fd: i32,
    /// 0 for the first worker of the mount (it does the handshake), then 1, 2, …
    pub generation: u64,
    /// The inherited socket of the [`Channel`](super::channel::Channel) to the supervisor.
    pub ready: i32,
    /// The supervisor's pid: the worker ends with it.
    pub parent: i32,
}
/// Parses `FD:GENERATION:READY:PARENT`.
pub fn parse_worker(s: &str) -> Result<WorkerArg, String> {
    let bad = || format!("{s:?}: expected FD:GENERATION:READY:PARENT");
    let mut it = s.split(':');
    let mut next = || it.next().ok_or_else(bad);
    let fd = next()?.parse().map_err(|_| bad())?;
    let generation = next()?.parse().map_err(|_| bad())?;
    let ready = next()?.parse().map_err(|_| bad())?;
    let parent = next()?.parse().map_err(|_| bad())?;
    if it.next().is_some() {
        return Err(bad());
    }
    Ok(WorkerArg {
        fd,
        generation,
        ready,
        parent,
    })
}

/// Crashes tolerated within [`CRASH_WINDOW`] before the supervisor gives up.
const MAX_CRASHES: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(30);
/// How often the supervisor looks whether its worker's main thread is gone
/// ([`main_thread_gone`]); also how long it waits for a signal at a time.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The signals the supervisor waits for: the daemon's, and its child's end.
fn signals() -> SigSet {
    let mut set = crate::daemon::stop_signals();
    set.add(Signal::SIGCHLD);
    set
}

/// The next signal the supervisor waits for ([`signals`]), or `None` after
/// [`LOOK_EVERY`] without one.
fn next_signal(fd: &SignalFd) -> Result<Option<Signal>, String> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let wait = u16::try_from(LOOK_EVERY.as_millis()).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(wait)) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot wait for signals: {e}")),
    }
    match fd.read_signal() {
        Ok(info) => Ok(info.and_then(|i| Signal::try_from(i.ssi_signo as i32).ok())),
        Err(e) => Err(format!("cannot read a signal: {e}")),
    }
}

/// Whether process `pid`'s main thread has ended: procfs shows it a zombie. A worker
/// killed while one of its threads waits in the kernel on its own mount (an
/// invalidation of a name waits for a lookup in that directory, which waits for an
/// answer) cannot end, so no SIGCHLD comes, until a worker answers that lookup: the
/// next one, which is started once the main thread is gone rather than the whole
/// process. A process that has ended, not yet reaped, is a zombie too.
fn main_thread_gone(pid: u32) -> bool {
    std::fs::read(crate::host::proc_path(&format!("{pid}/stat")))
        .ok()
        .and_then(|raw| crate::render::stat::parse_stat(&raw).ok().map(|s| s.state))
        .is_some_and(|state| state == b'Z' || state == b'X')
}

/// How process `pid`, a child, ended, if it has: looked at without reaping it
/// (`WNOWAIT`). The supervisor reaps an ended worker only once the next one is up:
/// reaping runs the kernel's release of the process in the reaper's own call
/// (`release_task`), which drops the process's procfs names and waits there for any
/// of them another task is dropping. The worker's last thread drops its own at its very
/// end, after it told the parent of the exit; when that thread crawls (its FUSE
/// thread, at `SCHED_IDLE` on a CPU kept busy, [`crate::spin`]), the reap waited for
/// it for seconds, with no worker at all to answer readers (seen in
/// tests/live_restart.rs under a busy loop on each CPU: the supervisor in
/// `shrink_dcache_parent` under `wait4`, two `ps` waiting 3 s and more).
fn ended(pid: u32) -> Option<String> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let pid = NixPid::from_raw(i32::try_from(pid).ok()?);
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status: {code}")),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("signal: {sig}")),
        _ => None,
    }
}

/// Reaps the workers of `lingering` that have ended.
fn reap(lingering: &mut Vec<Child>) {
    lingering.retain_mut(|w| matches!(w.try_wait(), Ok(None)));
}

/// A directory of the supervisor's own (the inode journal, and the state when `serve`
/// was given none), removed when it ends.
struct RuntimeDir(PathBuf);

impl RuntimeDir {
    fn new() -> Result<RuntimeDir, String> {
        let base = if Path::new("/run").is_dir() {
            PathBuf::from("/run/vprocfs")
        } else {
            std::env::temp_dir().join("vprocfs")
        };
        // Those of supervisors that were killed (SIGKILL leaves no time to clean up).
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("serve-"));
            if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(format!("serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
        Ok(RuntimeDir(dir))
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `vprocfs serve` as a supervisor; `args` are its own arguments (to pass on).
pub(super) fn supervise(mountpoint: &Path) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own program: {e}"))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    SigSet::thread_block(&signals()).map_err(|e| format!("cannot block signals: {e}"))?;
    let dir = RuntimeDir::new()?;
    let fuse = super::open_dev_fuse()?;
    // Workers inherit the descriptor.
    nix::fcntl::fcntl(
        &fuse,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(|e| format!("cannot pass /dev/fuse on: {e}"))?;
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        fuse.as_raw_fd()
    );
    // Read-write: procfs takes writes, which the daemon carries out with the writer's
    // credentials (src/view/writes.rs).
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let do_mount = || {
        // A mount a supervisor killed outright left there: nothing serves it
        // (`ENOTCONN`), and the new one would go on top of it and leave it behind.
        if std::fs::metadata(mountpoint).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN)) {
            log::info!("detaching the dead mount left at {}", mountpoint.display());
            let _ = umount2(mountpoint, MntFlags::MNT_DETACH);
        }
        mount(
            Some("vprocfs"),
            mountpoint,
            Some("fuse.vprocfs"),
            flags,
            Some(opts.as_str()),
        )
        .map_err(|e| format!("cannot mount {}: {e}", mountpoint.display()))
    };
    // The per-VPS mounts that workers made and asked the supervisor to hold.
    let held: Arc<Mutex<Vec<HeldMount>>> = Arc::default();
    let mounted = std::cell::Cell::new(false);
    // Called only once the worker has ended (and its listener finished), so that no
    // `hold` comes after the per-VPS mounts are gone.
    let unmount = || {
        unmount_held(&held);
        if mounted.get() {
            unmount_path(mountpoint);
        }
    };

    // The first worker sets its VPSes up (a bad --vps is reported before anything is
    // mounted), says "mount", and does the handshake once the kernel, on the mount,
    // sends INIT; later workers take the live connection over. Every worker is first
    // given the per-VPS mounts held from earlier ones (none for the first).
    let spawn = |generation: u64| -> Result<(Child, Option<Listener>), String> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("cannot make a socket pair: {e}"))?;
        // The worker inherits its end.
        nix::fcntl::fcntl(
            &theirs,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| format!("cannot set up a socket pair: {e}"))?;
        let worker = format!(
            "{}:{generation}:{}:{}",
            fuse.as_raw_fd(),
            theirs.as_raw_fd(),
            std::process::id()
        );
        let mut child = Command::new(&exe)
            .args(&args)
            .arg("--worker")
            .arg(worker)
            .arg("--worker-dir")
            .arg(&dir.0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        drop(theirs);
        let stop = |child: &mut Child| {
            let _ = child.kill();
            let _ = child.wait();
        };
        if let Err(e) = send_held(ours.as_fd(), &lock(&held)) {
            // It ended before it read them: its SIGCHLD follows.
            log::warn!("cannot hand the held mounts to the daemon: {e}");
        }
        let mut ready = false;
        while let Some((message, fd)) = next_message(ours.as_fd(), "the daemon") {
            match message {
                Message::Mount if generation == 0 && !mounted.get() => {
                    if let Err(e) = do_mount() {
                        stop(&mut child);
                        return Err(e);
                    }
                    mounted.set(true);
                    // The worker reads INIT only now: a read before the mount fails (EPERM).
                    let _ = send(ours.as_fd(), "mounted", None);
                }
                Message::Ready => {
                    ready = true;
                    break;
                }
                // The worker may make its per-VPS mounts before it is ready.
                message => apply(&held, message, fd),
            }
        }
        if !ready {
            // It ended (and said why on standard error).
            return Ok((child, None));
        }
        match Listener::start(ours, Arc::clone(&held)) {
            Ok(listener) => Ok((child, Some(listener))),
            Err(e) => {
                stop(&mut child);
                Err(format!("cannot start a thread: {e}"))
            }
        }
    };

    let started = Instant::now();
    let (mut worker, mut listener) = match spawn(0) {
        Ok(w) => w,
        Err(e) => {
            unmount();
            return Err(e);
        }
    };
    if listener.is_none() {
        // It said why on standard error.
        let code = worker.wait().ok().and_then(|s| s.code()).unwrap_or(1);
        unmount();
        return Ok(if code == 0 { 1 } else { code });
    }
    log::info!(
        "daemon pid {} serving {} ({:?} to start)",
        worker.id(),
        mountpoint.display(),
        started.elapsed()
    );
    let mut generation = 0;
    let mut crashes: Vec<Instant> = Vec::new();
    let mut stepping_down = false;
    let signal_fd = SignalFd::with_flags(&signals(), SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("cannot wait for signals: {e}"))?;
    // Replaced workers not reaped yet: one that ended, reaped once the next is up
    // ([`ended`]), or one whose main thread is gone while another thread of it is not,
    // reaped when it ends ([`main_thread_gone`]).
    let mut lingering: Vec<Child> = Vec::new();
    let mut looked = Instant::now();
    loop {
        // Is the worker gone but for a thread stuck in the kernel (it cannot end, so no
        // SIGCHLD comes)? Looked at every [`LOOK_EVERY`], signals or not: a stream of
        // them (an upgrade asked for every 250 ms) put the look off for good when it
        // waited for a quiet moment. A signal waiting meanwhile stays queued.
        let gone = looked.elapsed() >= LOOK_EVERY && {
            looked = Instant::now();
            main_thread_gone(worker.id())
        };
        let sig = if gone {
            Signal::SIGCHLD
        } else {
            match next_signal(&signal_fd)? {
                Some(sig) => sig,
                None => continue,
            }
        };
        let pid = NixPid::from_raw(i32::try_from(worker.id()).unwrap_or(0));
        match sig {
            Signal::SIGCHLD => {
                // Ended, but not reaped before the next worker is up ([`ended`]).
                let status = match ended(worker.id()) {
                    Some(status) => status,
                    None if main_thread_gone(worker.id()) => {
                        // A thread left at `SCHED_IDLE` on one busy CPU would crawl
                        // through its exit (seen in tests/live_restart.rs with a busy
                        // loop on each CPU, in `exit_mmap` after the next worker had
                        // taken over).
                        crate::spin::follow::let_threads_go(worker.id());
                        "its main thread is gone, another of its threads is stuck in \
                         the kernel"
                            .to_string()
                    }
                    // Another child: a replaced worker that lingered, ended now.
                    None => {
                        reap(&mut lingering);
                        continue;
                    }
                };
                // What it held last is what the next worker is given.
                if let Some(l) = listener.take() {
                    l.finish();
                }
                if stepping_down {
                    stepping_down = false;
                } else {
                    log::error!("the daemon (pid {pid}) ended: {status}; starting another");
                    let now = Instant::now();
                    crashes.retain(|t| now.duration_since(*t) < CRASH_WINDOW);
                    crashes.push(now);
                    if crashes.len() > MAX_CRASHES {
                        crate::say!(
                            "vprocfs: the daemon ended {} times in {:?}: giving up and unmounting {}",
                            crashes.len(),
                            CRASH_WINDOW,
                            mountpoint.display()
                        );
                        unmount();
                        return Ok(1);
                    }
                }
                generation += 1;
                let t = Instant::now();
                match spawn(generation) {
                    Ok((w, l)) => {
                        let old = std::mem::replace(&mut worker, w);
                        // Reaped now that the next worker serves, or, not ended yet (a
                        // thread of it lingers), at its SIGCHLD: never left a zombie
                        // child for good.
                        lingering.push(old);
                        reap(&mut lingering);
                        if l.is_some() {
                            log::info!(
                                "daemon pid {} took over {} in {:?}",
                                worker.id(),
                                mountpoint.display(),
                                t.elapsed()
                            );
                        }
                        // A worker that died before it was ready is another SIGCHLD.
                        listener = l;
                    }
                    Err(e) => {
                        crate::say!("vprocfs: {e}; unmounting {}", mountpoint.display());
                        unmount();
                        return Ok(1);
                    }
                }
            }
            Signal::SIGHUP | Signal::SIGUSR1 => {
                let _ = kill(pid, sig);
            }
            Signal::SIGUSR2 => {
                // An upgrade: the worker saves its state and ends; a new one (from the
                // program file as it is now) takes over.
                stepping_down = true;
                let _ = kill(pid, Signal::SIGUSR2);
            }
            _ => {
                let _ = kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                while worker.try_wait().ok().flatten().is_none() {
                    if Instant::now() > deadline {
                        let _ = worker.kill();
                        // Not `wait`: a worker with a thread stuck in the kernel never
                        // ends while its mounts are up ([`main_thread_gone`]).
                        let give_up = Instant::now() + Duration::from_secs(5);
                        while worker.try_wait().ok().flatten().is_none() && Instant::now() < give_up
                        {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if let Some(l) = listener.take() {
                    l.finish();
                }
                log::info!("{sig}: unmounting {}", mountpoint.display());
                unmount();
                drop(fuse);
                return Ok(0);
            }
        }
    }
}

/// Unmounts `path`, or detaches it when busy (a reader has a file open there): it goes
/// when the last is closed.
fn unmount_path(path: &Path) {
    if umount2(path, MntFlags::empty()).is_err() {
        let _ = umount2(path, MntFlags::MNT_DETACH);
    }
}

/// Unmounts the per-VPS mounts held, removes their (then empty) directories and closes
/// the descriptors, once no worker is left to serve them. `remove_dir`, never
/// `remove_dir_all`: a path still mounted (or not ours to empty) is left as it is.
fn unmount_held(held: &Mutex<Vec<HeldMount>>) {
    for m in std::mem::take(&mut *lock(held)) {
        log::info!("unmounting {} (VPS {})", m.path.display(), m.name);
        unmount_path(&m.path);
        if let Err(e) = std::fs::remove_dir(&m.path) {
            log::debug!("cannot remove {}: {e}", m.path.display());
        }
        drop(m.fd);
    }
}

/// Carries out a worker's `hold` or `release` on the supervisor's list.
fn apply(held: &Mutex<Vec<HeldMount>>, message: Message, fd: Option<OwnedFd>) {
    match (message, fd) {
        (Message::Hold { name, path }, Some(fd)) => {
            log::debug!("holding the mount of VPS {name} at {}", path.display());
            let entry = HeldMount { name, path, fd };
            let mut held = lock(held);
            // A new mount for the same VPS: the old copy is closed.
            match held.iter_mut().find(|h| h.name == entry.name) {
                Some(old) => *old = entry,
                None => held.push(entry),
            }
        }
        (Message::Release { name }, None) => {
            let mut held = lock(held);
            let before = held.len();
            held.retain(|h| h.name != name);
            if held.len() == before {
                log::warn!("the daemon released VPS {name}'s mount, which was not held");
            } else {
                log::debug!("released the mount of VPS {name}");
            }
        }
        (message, _) => log::warn!("refused {message:?} from the daemon: out of place"),
    }
}

/// The thread that carries out a ready worker's `hold` and `release` until it ends.
struct Listener {
    sock: Arc<OwnedFd>,
    thread: JoinHandle<()>,
}

impl Listener {
    fn start(sock: OwnedFd, held: Arc<Mutex<Vec<HeldMount>>>) -> io::Result<Listener> {
        let sock = Arc::new(sock);
        let theirs = Arc::clone(&sock);
        let thread = std::thread::Builder::new()
            .name("vprocfs-held".into())
            .spawn(move || {
                while let Some((message, fd)) = next_message(theirs.as_fd(), "the daemon") {
                    apply(&held, message, fd);
                }
            })?;
        Ok(Listener { sock, thread })
    }

    /// Once its worker has ended: lets the thread carry out what the worker said last
    /// (still queued in the socket), and waits for it, so that the list is final before
    /// the next worker is given it or the mounts are unmounted. Shutting the socket's
    /// reading side down ends the thread once the queue is empty even if a descendant
    /// of the worker still had the worker's end open.
    fn finish(self) {
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Read);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::super::channel::{parse, Channel, MAX_MESSAGE};
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::io::IoSlice;
    use std::os::fd::RawFd;

    /// A process whose main thread has ended while another thread runs on (what a
    /// worker with a thread stuck in the kernel looks like) is told from a live one.
    #[test]
    fn a_main_thread_gone_is_seen() {
        let script = "import ctypes, threading, time\n\
                      threading.Thread(target=time.sleep, args=(30,)).start()\n\
                      ctypes.CDLL(None).pthread_exit(None)\n";
        let mut lingering = Command::new("python3")
            .args(["-c", script])
            .spawn()
            .unwrap();
        let mut live = Command::new("sleep").arg("30").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !main_thread_gone(lingering.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let seen = main_thread_gone(lingering.id());
        let still_running = matches!(lingering.try_wait(), Ok(None));
        let live_seen = main_thread_gone(live.id());
        for c in [&mut lingering, &mut live] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(
            seen && still_running,
            "the main thread's end is seen before the process's"
        );
        assert!(!live_seen, "a live process is not taken for gone");
    }

    #[test]
    fn worker_argument() {
        assert_eq!(
            parse_worker("4:2:5:100"),
            Ok(WorkerArg {
                fd: 4,
                generation: 2,
                ready: 5,
                parent: 100
            })
        );
        for bad in ["", "4", "4:2:5", "4:2:5:100:1", "a:2:5:100", "4:-1:5:100"] {
            assert!(parse_worker(bad).is_err(), "{bad}");
        }
    }

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    /// A pipe (read end, write end), close-on-exec so that no command another test
    /// starts meanwhile keeps an end open.
    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    /// Whether every write end of the pipe of `r` is closed (nothing left to read).
    fn closed(r: &OwnedFd) -> bool {
        nix::unistd::read(r, &mut [0u8; 16]) == Ok(0)
    }

    fn read_all(r: &OwnedFd) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let n = nix::unistd::read(r, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// Sends raw bytes with the given descriptors, as a misbehaving peer would.
    fn send_raw(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) {
        let iov = [IoSlice::new(bytes)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
        sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).unwrap();
    }

    #[test]
    fn a_channel_is_shared_by_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Channel>();
        send_sync::<Arc<Channel>>();
    }

    #[test]
    fn messages() {
        let hold = |name: &str, path: &str| Message::Hold {
            name: name.into(),
            path: path.into(),
        };
        assert_eq!(parse("mount"), Ok(Message::Mount));
        assert_eq!(parse("mounted"), Ok(Message::Mounted));
        assert_eq!(parse("ready"), Ok(Message::Ready));
        assert_eq!(parse("end"), Ok(Message::End));
        assert_eq!(parse("hold v1 /run/v/v1"), Ok(hold("v1", "/run/v/v1")));
        // The path is the rest of the line, spaces and all.
        assert_eq!(
            parse("hold web-2.x_y /srv/my vps/proc "),
            Ok(hold("web-2.x_y", "/srv/my vps/proc "))
        );
        assert_eq!(
            parse("held v1 /a b"),
            Ok(Message::Held {
                name: "v1".into(),
                path: "/a b".into()
            })
        );
        assert_eq!(
            parse("release v1"),
            Ok(Message::Release { name: "v1".into() })
        );
        for bad in [
            "",
            " ",
            "hello",
            "mount now",
            "ready\n",
            "end x",
            "hold",
            "hold v1",
            "hold v1 ",
            "hold v1 relative/path",
            "hold  /p",
            "hold bad/name /p",
            "hold bad:name /p",
            "hold v1 /p\nrelease v2",
            "hold v1 /p\0",
            "held v1",
            "release",
            "release ",
            "release a b",
            "release a/b",
            "HOLD v1 /p",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(Message::Hold {
            name: String::new(),
            path: PathBuf::new()
        }
        .carries_fd());
        assert!(!Message::Release {
            name: String::new()
        }
        .carries_fd());
    }

    #[test]
    fn entries_are_checked_before_they_are_sent() {
        let (a, _b) = pair();
        let ch = Channel::new(a);
        let (_r, w) = pipe();
        for (name, path) in [
            ("a/b", "/p"),
            ("", "/p"),
            ("v1", "relative"),
            ("v1", "/p\nrelease v2"),
        ] {
            let e = ch.hold(name, Path::new(path), w.as_fd()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?} {path:?}");
        }
        assert_eq!(
            ch.release("a b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(send(_b.as_fd(), "", None).is_err());
        assert!(send(_b.as_fd(), &"x".repeat(MAX_MESSAGE + 1), None).is_err());
    }

    #[test]
    fn a_held_descriptor_works_on_the_other_side() {
        let (worker, supervisor) = pair();
        let ch = Channel::new(worker);
        let (r, w) = pipe();
        let path = Path::new("/run/vprocfs/mounts/my vps");
        ch.hold("v1", path, w.as_fd()).unwrap();
        drop(w);
        let held = Mutex::new(Vec::new());
        let (m, fd) = next_message(supervisor.as_fd(), "test").unwrap();
        apply(&held, m, fd);
        let held = held.into_inner().unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].name, "v1");
        assert_eq!(held[0].path, path);
        nix::unistd::write(&held[0].fd, b"through").unwrap();
        assert_eq!(read_all(&r), b"through");
        // Received close-on-exec.
        let flags = nix::fcntl::fcntl(&held[0].fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        drop(held);
        assert!(closed(&r));
    }

    #[test]
    fn hold_replaces_and_release_forgets() {
        let (worker, supervisor) = pair();
        let ch = Channel::new(worker);
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();
        ch.hold("v1", Path::new("/m/1"), w1.as_fd()).unwrap();
        ch.hold("v1", Path::new("/m/1 again"), w2.as_fd()).unwrap();
        ch.release("v0").unwrap();
        drop((w1, w2));
        let held = Mutex::new(Vec::new());
        let next = || {
            let (m, fd) = next_message(supervisor.as_fd(), "test").unwrap();
            apply(&held, m, fd);
        };
        next();
        next();
        // The first copy is closed, the second kept.
        assert!(closed(&r1));
        next(); // not held: nothing happens
        assert_eq!(lock(&held).len(), 1);
        assert_eq!(lock(&held)[0].path, Path::new("/m/1 again"));
        ch.release("v1").unwrap();
        next();
        assert!(lock(&held).is_empty());
        assert!(closed(&r2));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let (worker, supervisor) = pair();
        let (r, w) = pipe();
        let wfd = w.as_raw_fd();
        // An entry without its descriptor, a word with one, two descriptors, bytes that
        // are not UTF-8, a packet too long, unknown words and bad entries.
        send_raw(&worker, b"hold v1 /p", &[]);
        send_raw(&worker, b"release v1", &[wfd]);
        send_raw(&worker, b"ready", &[wfd]);
        send_raw(&worker, b"hold v1 /p", &[wfd, wfd]);
        send_raw(&worker, b"hold v1 /\xff\xfe", &[wfd]);
        send_raw(&worker, &[b'x'; MAX_MESSAGE + 100], &[wfd]);
        send_raw(&worker, b"hold v1 relative", &[wfd]);
        send_raw(&worker, b"unhold v1 /p", &[wfd]);
        send_raw(&worker, b"release v1 /p", &[]);
        // Well-formed but the supervisor's to say: refused by `apply`.
        send_raw(&worker, b"held v2 /p", &[wfd]);
        send_raw(&worker, b"end", &[]);
        send_raw(&worker, b"hold v3 /p q", &[wfd]);
        drop(w);
        let held = Mutex::new(Vec::new());
        for _ in 0..3 {
            let (m, fd) = next_message(supervisor.as_fd(), "test").unwrap();
            apply(&held, m, fd);
        }
        let held = held.into_inner().unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(
            (held[0].name.as_str(), held[0].path.as_path()),
            ("v3", Path::new("/p q"))
        );
        drop(held);
        // Every descriptor that came with a refused message was closed.
        assert!(closed(&r));
        drop(worker);
        assert!(next_message(supervisor.as_fd(), "test").is_none());
    }

    #[test]
    fn a_new_worker_takes_the_held_mounts() {
        let (worker, supervisor) = pair();
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();
        let held = vec![
            HeldMount {
                name: "v1".into(),
                path: "/m/v 1".into(),
                fd: w1,
            },
            HeldMount {
                name: "v2".into(),
                path: "/m/v2".into(),
                fd: w2,
            },
        ];
        // A stray message first: skipped.
        send_raw(&supervisor, b"held v0", &[]);
        send_held(supervisor.as_fd(), &held).unwrap();
        send(supervisor.as_fd(), "mounted", None).unwrap();
        let ch = Channel::new(worker);
        let taken = ch.take_held();
        let names: Vec<_> = taken
            .iter()
            .map(|m| (m.name.as_str(), m.path.as_path()))
            .collect();
        assert_eq!(
            names,
            [("v1", Path::new("/m/v 1")), ("v2", Path::new("/m/v2"))]
        );
        nix::unistd::write(&taken[0].fd, b"one").unwrap();
        nix::unistd::write(&taken[1].fd, b"two").unwrap();
        assert_eq!(read_all(&r1), b"one");
        assert_eq!(read_all(&r2), b"two");
        // Nothing after `end` was read.
        assert!(ch.wait_for("mounted"));
        // The supervisor keeps its copies.
        drop(taken);
        assert!(!closed_nonblocking(&r1));
    }

    /// Whether the pipe of `r` (empty) has no write end left, without waiting.
    fn closed_nonblocking(r: &OwnedFd) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            r.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap();
        fds[0]
            .revents()
            .is_some_and(|e| e.contains(nix::poll::PollFlags::POLLHUP))
    }

    #[test]
    fn the_first_worker_takes_nothing() {
        let (worker, supervisor) = pair();
        send_held(supervisor.as_fd(), &[]).unwrap();
        let ch = Channel::new(worker);
        assert!(ch.take_held().is_empty());
        // A supervisor that ends before `end` does not leave the worker waiting.
        drop(supervisor);
        assert!(ch.take_held().is_empty());
        assert!(!ch.wait_for("mounted"));
    }

    #[test]
    fn the_handshake() {
        let (worker, supervisor) = pair();
        let ch = Channel::new(worker);
        ch.say("mount");
        assert!(matches!(
            next_message(supervisor.as_fd(), "test"),
            Some((Message::Mount, None))
        ));
        send(supervisor.as_fd(), "mounted", None).unwrap();
        assert!(ch.wait_for("mounted"));
        ch.say("ready");
        assert!(matches!(
            next_message(supervisor.as_fd(), "test"),
            Some((Message::Ready, None))
        ));
        send(supervisor.as_fd(), "other", None).unwrap();
        assert!(!ch.wait_for("mounted"));
    }

    #[test]
    fn a_worker_from_before_the_channel_is_understood() {
        let (worker, supervisor) = pair();
        // It writes its words with a newline (each write one packet).
        nix::unistd::write(&worker, b"ready\n").unwrap();
        assert!(matches!(
            next_message(supervisor.as_fd(), "test"),
            Some((Message::Ready, None))
        ));
    }

    #[test]
    fn an_inert_channel() {
        let ch = Channel::inherited(1);
        assert!(ch.take_held().is_empty());
        assert!(!ch.wait_for("mounted"));
        ch.say("ready");
        let (_r, w) = pipe();
        let e = ch.hold("v1", Path::new("/p"), w.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        assert_eq!(
            ch.release("v1").unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }

    #[test]
    fn a_supervisor_from_before_the_channel() {
        let (worker, supervisor) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let ch = Channel::new(worker);
        // It sends no `end`: nothing to wait for.
        assert!(ch.take_held().is_empty());
        ch.say("mount");
        let mut said = [0u8; 6];
        nix::unistd::read(&supervisor, &mut said).unwrap();
        assert_eq!(&said, b"mount\n");
        nix::unistd::write(&supervisor, b"mounted\n").unwrap();
        assert!(ch.wait_for("mounted"));
        let (_r, w) = pipe();
        let e = ch.hold("v1", Path::new("/p"), w.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn threads_sending_at_once_do_not_mix_messages() {
        const THREADS: usize = 4;
        const EACH: usize = 50;
        let (worker, supervisor) = pair();
        let ch = Arc::new(Channel::new(worker));
        let (_r, w) = pipe();
        let w = Arc::new(w);
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (ch, w) = (Arc::clone(&ch), Arc::clone(&w));
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let path = format!("/m/{} {t} {i}", "long ".repeat(300));
                        ch.hold(&format!("t{t}-{i}"), Path::new(&path), w.as_fd())
                            .unwrap();
                    }
                })
            })
            .collect();
        let held = Mutex::new(Vec::new());
        for _ in 0..THREADS * EACH {
            let (m, fd) = next_message(supervisor.as_fd(), "test").unwrap();
            let Message::Hold { name, path } = &m else {
                panic!("{m:?}");
            };
            assert!(path
                .to_str()
                .unwrap()
                .ends_with(&name[1..].replace('-', " ")));
            apply(&held, m, fd);
        }
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(lock(&held).len(), THREADS * EACH);
    }

    #[test]
    fn a_listener_applies_what_its_worker_said_last() {
        let (worker, supervisor) = pair();
        let held: Arc<Mutex<Vec<HeldMount>>> = Arc::default();
        let listener = Listener::start(supervisor, Arc::clone(&held)).unwrap();
        let ch = Channel::new(worker);
        let (r, w) = pipe();
        ch.hold("v1", Path::new("/m/v1"), w.as_fd()).unwrap();
        ch.hold("v2", Path::new("/m/v2"), w.as_fd()).unwrap();
        ch.release("v1").unwrap();
        drop((ch, w));
        listener.finish();
        assert_eq!(lock(&held).len(), 1);
        assert_eq!(lock(&held)[0].name, "v2");
        drop(std::mem::take(&mut *lock(&held)));
        assert!(closed(&r));
    }

    #[test]
    fn finishing_a_listener_does_not_wait_for_an_open_end() {
        // The worker's end still open (as a descendant of the worker could keep it).
        let (worker, supervisor) = pair();
        let listener = Listener::start(supervisor, Arc::default()).unwrap();
        listener.finish();
        drop(worker);
    }

    #[test]
    fn held_mounts_are_let_go_at_the_end() {
        // Not mounted: the unmount fails harmlessly, and the empty directory goes.
        let dir = std::env::temp_dir().join(format!(
            "vprocfs-held-{}-{:?} x",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir(&dir).unwrap();
        let (r, w) = pipe();
        let held = Mutex::new(vec![HeldMount {
            name: "v1".into(),
            path: dir.clone(),
            fd: w,
        }]);
        unmount_held(&held);
        assert!(lock(&held).is_empty());
        assert!(!dir.exists());
        assert!(closed(&r));
    }
}
