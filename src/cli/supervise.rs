//! The supervisor of `vprocfs serve`: a small process that mounts the view, holds the
//! mount's `/dev/fuse` descriptor for its whole life and runs the daemon proper (the
//! worker) as its child. When the worker dies (a crash, `kill -9`) or steps down for an
//! upgrade (SIGUSR2), the connection stays up, because the supervisor still holds it:
//! readers' requests wait in the kernel's queue, and a new worker started on the same
//! descriptor answers them ([`crate::handover`]). No reader sees `ENOTCONN`.
//!
//! ```text
//! supervisor: mounts, holds /dev/fuse ──spawn──▶ worker (generation 0): handshake,
//!   │  forwards SIGHUP/SIGUSR1                   serves, ctl, state, inode journal
//!   │  on SIGTERM/SIGINT: stops the worker, unmounts
//!   └─ worker gone? ──spawn──▶ worker (generation 1): takes the connection over,
//!                              restores state and inodes, asks for lost requests again
//! ```
//!
//! The supervisor reads no input from a VPS and parses nothing but its own arguments, so
//! that it has as little as possible that could fail.

use std::fs::File;
use std::io::{BufRead as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid as NixPid;

/// What the supervisor tells a worker (`--worker FD:GENERATION:READY:PARENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerArg {
    /// The inherited `/dev/fuse` descriptor.
    pub fd: i32,
    /// 0 for the first worker of the mount (it does the handshake), then 1, 2, …
    pub generation: u64,
    /// The inherited socket on which the worker and the supervisor agree on the mount.
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

/// The signals the supervisor waits for: the daemon's, and its child's end.
fn signals() -> SigSet {
    let mut set = crate::daemon::stop_signals();
    set.add(Signal::SIGCHLD);
    set
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
        mount(
            Some("vprocfs"),
            mountpoint,
            Some("fuse.vprocfs"),
            flags,
            Some(opts.as_str()),
        )
        .map_err(|e| format!("cannot mount {}: {e}", mountpoint.display()))
    };
    let mounted = std::cell::Cell::new(false);
    let unmount = || {
        if !mounted.get() {
            return;
        }
        if umount2(mountpoint, MntFlags::empty()).is_err() {
            // Busy (a reader has a file open): detach it; it goes when the last is closed.
            let _ = umount2(mountpoint, MntFlags::MNT_DETACH);
        }
    };

    // The first worker sets its VPSes up (a bad --vps is reported before anything is
    // mounted), says "mount", and does the handshake once the kernel, on the mount,
    // sends INIT; later workers take the live connection over.
    let spawn = |generation: u64| -> Result<(Child, bool), String> {
        let (ready_r, ready_w) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        )
        .map_err(|e| format!("cannot make a socket pair: {e}"))?;
        nix::fcntl::fcntl(
            &ready_r,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| format!("cannot set up a socket pair: {e}"))?;
        let worker = format!(
            "{}:{generation}:{}:{}",
            fuse.as_raw_fd(),
            ready_w.as_raw_fd(),
            std::process::id()
        );
        let child = Command::new(&exe)
            .args(&args)
            .arg("--worker")
            .arg(worker)
            .arg("--worker-dir")
            .arg(&dir.0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        drop(ready_w);
        let talk = File::from(ready_r);
        let mut lines = std::io::BufReader::new(&talk).lines();
        let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
        let mut said = next();
        if said == "mount" && generation == 0 {
            if let Err(e) = do_mount() {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            mounted.set(true);
            // The worker reads INIT only now: a read before the mount fails (EPERM).
            let _ = (&talk).write_all(b"mounted\n");
            said = next();
        }
        Ok((child, said == "ready"))
    };

    let started = Instant::now();
    let (mut worker, ready) = match spawn(0) {
        Ok(w) => w,
        Err(e) => {
            unmount();
            return Err(e);
        }
    };
    if !ready {
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
    loop {
        let sig = signals()
            .wait()
            .map_err(|e| format!("cannot wait for signals: {e}"))?;
        let pid = NixPid::from_raw(i32::try_from(worker.id()).unwrap_or(0));
        match sig {
            Signal::SIGCHLD => {
                let Ok(Some(status)) = worker.try_wait() else {
                    continue;
                };
                if stepping_down {
                    stepping_down = false;
                } else {
                    log::error!("the daemon (pid {pid}) ended: {status}; starting another");
                    let now = Instant::now();
                    crashes.retain(|t| now.duration_since(*t) < CRASH_WINDOW);
                    crashes.push(now);
                    if crashes.len() > MAX_CRASHES {
                        eprintln!(
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
                    Ok((w, ready)) => {
                        worker = w;
                        if ready {
                            log::info!(
                                "daemon pid {} took over {} in {:?}",
                                worker.id(),
                                mountpoint.display(),
                                t.elapsed()
                            );
                        }
                        // A worker that died before it was ready is another SIGCHLD.
                    }
                    Err(e) => {
                        eprintln!("vprocfs: {e}; unmounting {}", mountpoint.display());
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
                        let _ = worker.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                log::info!("{sig}: unmounting {}", mountpoint.display());
                unmount();
                drop(fuse);
                return Ok(0);
            }
        }
    }
}

/// The worker's side of the socket to its supervisor: "mount" when its VPSes are set up,
/// "ready" when it serves.
pub struct Progress(Option<OwnedFd>);

impl Progress {
    /// The socket inherited as descriptor `fd`.
    pub fn inherited(fd: i32) -> Progress {
        match crate::sys::process::inherited_fd(fd) {
            Ok(pipe) => Progress(Some(pipe)),
            Err(e) => {
                log::warn!("cannot talk to the supervisor: {e}");
                Progress(None)
            }
        }
    }

    /// Waits for the supervisor's answer (a line), which it says is `word`.
    pub fn wait_for(&self, word: &str) -> bool {
        let Some(sock) = &self.0 else {
            return false;
        };
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = nix::unistd::read(sock, &mut byte) {
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        line == word.as_bytes()
    }

    /// Says `word` on its own line.
    pub fn say(&self, word: &str) {
        if let Some(pipe) = &self.0 {
            let _ = nix::unistd::write(pipe.as_fd(), format!("{word}\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
