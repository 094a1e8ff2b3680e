//! `vprocfs run`: a new VPS around one command.
//!
//! The daemon forks a relay that makes a private mount namespace (and, by default, a new
//! pid namespace), mounts the view over `/proc` there with the `/dev/fuse` descriptor
//! the daemon opened, and forks the VPS's init, which waits until the daemon answers on
//! that descriptor and then execs the command. The mount lives only in the
//! VPS's mount namespace, so it goes away with the VPS's last process: nothing is left
//! behind, whatever way the command ends.
//!
//! ```text
//! daemon ──fork──▶ relay: new mount ns [+ pid ns], ──fork──▶ init: waits for "go",
//!   │               mounts the view on /proc, waits for init,      execs CMD
//!   │               exits with init's status
//!   └─ serves FUSE, follows process events, forwards SIGTERM/SIGHUP to init
//! ```

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid as NixPid;

use super::{need_root, NumberingArg, RunArgs};
use crate::daemon;
use crate::fuse::ProcFs;
use crate::host;
use crate::membership::{Source, Tracker};
use crate::placement;
use crate::resources::cpus::CpuSet;
use crate::resources::VpsCgroup;
use crate::stats::Stats;
use crate::sys::process::{fork, Forked};
use crate::view::resource_files::VpsRes;
use crate::view::View;
use std::path::Path;

fn pipe() -> Result<(File, File), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    Ok((File::from(r), File::from(w)))
}

/// The exit code of a waited-for process: its own, or 128 + the signal that ended it.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn wait_for(pid: i32) -> i32 {
    loop {
        match waitpid(NixPid::from_raw(pid), None) {
            Ok(st) => {
                if let Some(code) = exit_code(st) {
                    return code;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

/// How the VPS's `/proc` is put in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// The kernel's procfs of the VPS's pid namespace, with the virtual global files
    /// bound over the host's figures (SPEC section 4, the default with a pid namespace).
    KernelPids,
    /// The whole `/proc` served by the daemon.
    Full,
}

pub(super) fn run(a: RunArgs) -> Result<i32, String> {
    need_root("vprocfs run")?;
    let pidns = !a.no_pidns;
    let placement = if pidns && !a.full_view {
        Placement::KernelPids
    } else {
        Placement::Full
    };
    let numbering = a.engine.numbering.unwrap_or(if pidns {
        NumberingArg::Pidns
    } else {
        NumberingArg::Linear
    });
    if numbering == NumberingArg::Pidns && !pidns {
        return Err("--numbering pidns needs a pid namespace: drop --no-pidns, or choose linear, sparse or ns".into());
    }
    if !pidns {
        crate::say!(
            "vprocfs: warning: --no-pidns: /proc is translated but system calls are not, so getpid, $$ and kill inside see real pids"
        );
    }
    if let Some(w) = a.engine.warning(numbering, pidns) {
        crate::say!("vprocfs: warning: {w}");
    }
    let mut config = a.engine.config(numbering, pidns);
    let argv: Vec<CString> = a
        .cmd
        .iter()
        .map(|s| CString::new(s.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "the command contains a NUL byte".to_string())?;
    let limits = a.limits.limits();
    let cgroup = match VpsCgroup::create(&cgroup_name(), &limits) {
        Ok(c) => Some(c),
        Err(e) if !a.limits.any() => {
            log::warn!("no cgroup for the VPS ({e}): its resource files show its init's cgroup");
            None
        }
        Err(e) => return Err(format!("cannot make the VPS's cgroup: {e}")),
    };
    // The CPUs its cgroup gives the VPS, for its CPU directory in sysfs; without a
    // cgroup of its own it shows the host's.
    let cpus = cgroup
        .as_ref()
        .and_then(|c| placement::visible_cpus(c.paths()));
    let fuse = super::open_dev_fuse()?;
    let (mut pid_r, pid_w) = pipe()?;
    let (mut st_r, st_w) = pipe()?;
    let (go_r, mut go_w) = pipe()?;

    let relay = match fork().map_err(|e| format!("cannot fork: {e}"))? {
        Forked::Child => {
            drop((pid_r, st_r, go_w));
            let code = relay_side(
                pidns,
                placement,
                cpus.as_ref(),
                &fuse,
                pid_w,
                st_w,
                go_r,
                &argv,
            );
            std::process::exit(code);
        }
        Forked::Parent(c) => c,
    };
    drop((pid_w, st_w, go_r));
    // Whatever happens from here on, the cgroup goes when the VPS has gone.
    let cleanup = CgroupCleanup(cgroup);

    let mut text = String::new();
    let _ = pid_r.read_to_string(&mut text);
    let init: i32 = match text.trim().parse() {
        Ok(p) => p,
        Err(_) => {
            // The relay says on the status pipe what stopped it before init was up.
            let mut why = String::new();
            let _ = st_r.read_to_string(&mut why);
            let code = wait_for(relay);
            return Err(match why.trim() {
                "" => format!("the VPS could not be started (status {code})"),
                why => format!("the VPS could not be started: {why}"),
            });
        }
    };
    let mut status = String::new();
    let _ = st_r.read_to_string(&mut status);
    let ns_pid_max: Option<i32> = status
        .trim()
        .strip_prefix("ok ")
        .and_then(|v| v.trim().parse().ok());
    let fail = |msg: String| {
        let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
        wait_for(relay);
        Err(msg)
    };
    if !status.starts_with("ok") {
        return fail(if status.is_empty() {
            "the VPS's init died before mounting the view".into()
        } else {
            status.trim().to_string()
        });
    }
    // Init waits for "go" before it execs, so nothing it runs escapes the cgroup.
    if let Some(c) = &cleanup.0 {
        if let Err(e) = c.attach(init) {
            return fail(format!("cannot move the VPS's init into its cgroup: {e}"));
        }
    }

    daemon::block_stop_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    if let (true, Some(p)) = (pidns, ns_pid_max) {
        config.pid_max = p.clamp(
            crate::engine::RESERVED_PIDS + 1,
            crate::engine::PID_MAX_LIMIT,
        );
    }
    let mut tracker = Tracker::new();
    let source = if pidns {
        Source::Pidns { of: init }
    } else {
        Source::Tree { init }
    };
    let vps = match tracker.add_vps("vps", source, config, numbering == NumberingArg::Pidns) {
        Ok(id) => id,
        Err(e) => return fail(format!("cannot set up the VPS: {e}")),
    };
    let inputs = crate::view::Inputs {
        events: daemon::open_events(),
        resources: cleanup
            .0
            .as_ref()
            .map(|c| (vps, VpsRes::new(init, c.paths())))
            .into_iter()
            .collect(),
    };
    let view = View::single(tracker, vps, inputs);
    daemon::follow_events(&view);
    daemon::sample_loads(&view);
    let stats = Arc::new(Stats::default());
    let spin = a.fuse.spin(&stats);
    let mut fs = ProcFs::new(Arc::clone(&view), Arc::clone(&stats), Arc::clone(&spin));
    if a.fuse.no_passthrough {
        fs = fs.without_passthrough();
    }
    let session = fuser::Session::from_fd(
        fs,
        OwnedFd::from(fuse),
        fuser::SessionACL::All,
        daemon::session_config(&spin),
    )
    .and_then(|s| daemon::start_session(s, &view, &spin));
    let session = match session {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot serve the view: {e}")),
    };
    let signal_stats = Arc::clone(&stats);
    let init_start = crate::host::start_time(init).ok();
    std::thread::Builder::new()
        .name("vprocfs-signals".into())
        .spawn(move || {
            while let Ok(sig) = daemon::wait_signal(&signal_stats) {
                // SIGINT and SIGQUIT from a terminal reach the VPS's processes directly.
                if matches!(sig, Signal::SIGTERM | Signal::SIGHUP) {
                    let _ = kill(NixPid::from_raw(init), sig);
                }
                if sig == Signal::SIGTERM {
                    stop_after_grace(init, init_start);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    if go_w.write_all(b"go").is_err() {
        log::warn!("the VPS's init is gone before it started");
    }
    drop(go_w);

    let code = wait_for(relay);
    log::info!("{}", stats.line());
    if let Some(n) = cleanup
        .0
        .as_ref()
        .and_then(VpsCgroup::oom_kills)
        .filter(|&n| n > 0)
    {
        let what = if code == 128 + Signal::SIGKILL as i32 {
            format!("{} was killed", a.cmd[0].to_string_lossy())
        } else {
            match n {
                1 => "one of its processes was killed".to_string(),
                n => format!("{n} of its processes were killed"),
            }
        };
        crate::say!(
            "vprocfs: the VPS ran out of memory and {what} by the kernel's OOM killer; \
             give it more with --memory"
        );
    }
    if !pidns {
        // The kernel ends a pid namespace with its init; a tree VPS is ended here.
        kill_members(&view, vps);
    }
    drop(cleanup);
    // The mount is in the VPS's mount namespace, gone with its last process; the
    // session's threads end with this process.
    std::mem::forget(session);
    Ok(code)
}

/// How long a VPS's init has to end after SIGTERM before it is killed, as container
/// runtimes do on `stop`: a pid namespace's init ignores every signal it has no handler
/// for, so SIGTERM alone may never end it.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Kills init (SIGKILL, which ends its whole pid namespace) if it is still running after
/// [`STOP_GRACE`]; `start` is its start time, so that a reused pid is never hit.
fn stop_after_grace(init: i32, start: Option<u64>) {
    let spawned = std::thread::Builder::new()
        .name("vprocfs-stop".into())
        .spawn(move || {
            std::thread::sleep(STOP_GRACE);
            if start.is_some() && crate::host::start_time(init).ok() == start {
                log::info!("the VPS's init did not end on SIGTERM: killing it");
                let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the stop timer ({e})");
    }
}

/// A name for the VPS's cgroup: random, not the daemon's pid, which the VPS's
/// `/proc/<pid>/cgroup` shows (a real pid, which a VPS must not see).
fn cgroup_name() -> String {
    let mut bytes = [0u8; 8];
    let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No randomness: a name from the clock, still not a pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    format!(
        "run-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Removes the VPS's cgroup when dropped: after the VPS has gone, or on an early error.
struct CgroupCleanup(Option<VpsCgroup>);

impl Drop for CgroupCleanup {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.remove();
        }
    }
}

/// `vprocfs exec`: becomes a member of a served VPS, puts the view over `/proc` in a
/// private mount namespace, joins the VPS's pid namespace where it has one (a child
/// then runs CMD, since only children enter a pid namespace), and runs CMD.
pub(super) fn exec(
    socket: std::path::PathBuf,
    vps: String,
    cmd: Vec<std::ffi::OsString>,
) -> Result<i32, String> {
    need_root("vprocfs exec")?;
    let argv: Vec<CString> = cmd
        .iter()
        .map(|s| CString::new(s.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "the command contains a NUL byte".to_string())?;
    let me = std::process::id() as i32;
    let resp = crate::ctl::call(&socket, &crate::ctl::Request::Enter { vps, pid: me })
        .map_err(|e| e.to_string())?;
    if !resp.ok {
        return Err(resp.error.unwrap_or_else(|| "refused".into()));
    }
    let view = resp
        .mount
        .ok_or("the daemon did not say where the view is")?;
    let cpus = resp
        .cpus
        .and_then(|l| crate::resources::cpus::CpuSet::parse(&l).ok());
    let pidns = match resp.pidns_of {
        Some(of) => Some(
            File::open(format!("/proc/{of}/ns/pid"))
                .map_err(|e| format!("cannot open the VPS's pid namespace: {e}"))?,
        ),
        None => None,
    };
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("cannot make a mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make mounts private: {e}"))?;
    let Some(ns) = pidns else {
        // No pid namespace: the full view over /proc.
        mount(
            Some(view.as_str()),
            "/proc",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("cannot put the view ({view}) over /proc: {e}"))?;
        placement::bind_files(Path::new("/proc"), Path::new("/proc"), false, cpus.as_ref())?;
        exec_argv(&argv)
    };
    // The kernel pid view: the VPS's own procfs, mounted by a child in its pid
    // namespace, with the virtual global files bound over it.
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("cannot join the VPS's pid namespace: {e}"))?;
    match fork().map_err(|e| format!("cannot fork: {e}"))? {
        Forked::Child => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let placed = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
                .map_err(|e| format!("cannot mount the VPS's procfs on /proc: {e}"))
                .and_then(|()| {
                    placement::bind_files(Path::new(&view), Path::new("/proc"), true, cpus.as_ref())
                });
            if let Err(e) = placed {
                crate::say!("vprocfs: {e}");
                std::process::exit(126);
            }
            exec_argv(&argv)
        }
        Forked::Parent(child) => Ok(wait_for(child)),
    }
}

fn exec_argv(argv: &[CString]) -> ! {
    let err = match argv.first() {
        Some(prog) => nix::unistd::execvp(prog, argv).err(),
        None => None,
    };
    let name = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::say!(
        "vprocfs: cannot run {name}: {}",
        err.map(|e| e.desc()).unwrap_or("no command")
    );
    std::process::exit(if err == Some(nix::errno::Errno::ENOENT) {
        127
    } else {
        126
    });
}

/// Kills every remaining member of a tree VPS, each checked by start time first, so that
/// a reused pid is never hit.
fn kill_members(view: &View, vps: crate::engine::VpsId) {
    for _ in 0..100 {
        // Events first: a rescan alone would judge an orphan by its new parent.
        view.catch_up();
        view.with_tracker(|t| t.rescan());
        let members: Vec<(i32, Option<u64>)> = view.with_tracker(|t| {
            t.members(vps)
                .into_iter()
                .map(|m| (m, t.start_of(m)))
                .collect()
        });
        let mut left = 0;
        for (tid, start) in members {
            if start.is_some() && host::start_time(tid).ok() == start {
                let _ = kill(NixPid::from_raw(tid), Signal::SIGKILL);
                left += 1;
            }
        }
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    log::warn!("some processes of the VPS did not die");
}

/// The relay: in the new namespaces, forks init, puts the view in place, and passes on
/// init's exit status.
///
/// With [`Placement::KernelPids`] init mounts the kernel's procfs of the new pid
/// namespace on `/proc`; the relay mounts the daemon's view on a private directory and,
/// once the daemon serves it, binds the virtual global files from it over `/proc`'s
/// (and the VPS's CPU directory, of the host CPUs `cpus`, over sysfs's), then detaches
/// the view's own mount: the bound files keep it alive. With [`Placement::Full`] the
/// view itself goes on `/proc`.
#[allow(clippy::too_many_arguments)]
fn relay_side(
    pidns: bool,
    placement: Placement,
    cpus: Option<&CpuSet>,
    fuse: &File,
    mut pid_w: File,
    mut st_w: File,
    go_r: File,
    argv: &[CString],
) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut flags = CloneFlags::CLONE_NEWNS;
    if pidns {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if let Err(e) = unshare(flags) {
        let _ = writeln!(st_w, "cannot make the VPS's namespaces: {e}");
        return 1;
    }
    placement::time_namespace();
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        let _ = writeln!(st_w, "cannot make the VPS's mounts private: {e}");
        return 1;
    }
    // Init reads what the kernel keeps per pid namespace before the view covers /proc.
    let (mut from_init, to_relay) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(st_w, "{e}");
            return 1;
        }
    };
    let (start_r, start_w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(st_w, "{e}");
            return 1;
        }
    };
    let init = match fork() {
        Ok(Forked::Child) => {
            drop((pid_w, st_w, from_init, go_r, start_w));
            init_side(placement, pidns, to_relay, start_r, argv)
        }
        Ok(Forked::Parent(p)) => p,
        Err(e) => {
            let _ = writeln!(st_w, "cannot fork the VPS's init: {e}");
            return 1;
        }
    };
    drop((to_relay, start_r));
    let mut report = String::new();
    let _ = from_init.read_to_string(&mut report);
    let Some(pid_max) = report.strip_prefix("ok ") else {
        let _ = write!(st_w, "{}", report.trim());
        let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
        return 1;
    };
    // The relay mounts, not init: FUSE reports each request's pid in the pid namespace
    // of the task that mounted, and the daemon's numbers are the relay's.
    let staging = match placement {
        Placement::Full => None,
        Placement::KernelPids => match placement::Staging::new() {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = writeln!(st_w, "{e}");
                let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
                return 1;
            }
        },
    };
    let at = staging
        .as_ref()
        .map_or(Path::new("/proc"), |s| s.dir.as_path());
    if let Err(e) = super::mount_view(fuse, at, placement == Placement::Full) {
        let _ = writeln!(st_w, "cannot mount the view on {}: {e}", at.display());
        let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
        return 1;
    }
    let _ = write!(st_w, "ok {}", pid_max.trim());
    drop(st_w);
    let _ = write!(pid_w, "{init}");
    drop(pid_w);
    // The daemon serves the view once it has read the above; it says "go" then.
    let mut go = [0u8; 2];
    if (&go_r).read_exact(&mut go).is_err() {
        let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
        return 1;
    }
    drop(go_r);
    if let Err(e) = placement::bind_files(at, Path::new("/proc"), staging.is_some(), cpus) {
        crate::say!("vprocfs: {e}");
        let _ = kill(NixPid::from_raw(init), Signal::SIGKILL);
        return 1;
    }
    drop(staging);
    if (&start_w).write_all(b"go").is_err() {
        log::warn!("the VPS's init is gone before it started");
    }
    drop(start_w);
    // A Ctrl-C reaches init itself; the relay must outlive it to pass its status on.
    let mut quiet = nix::sys::signal::SigSet::empty();
    quiet.add(Signal::SIGINT);
    quiet.add(Signal::SIGQUIT);
    let _ = quiet.thread_block();
    wait_for(init)
}

/// The VPS's init: mounts its pid namespace's procfs (kernel pid view), reports the
/// namespace's `pid_max`, waits for the relay, and becomes CMD as a fresh process.
fn init_side(
    placement: Placement,
    pidns: bool,
    mut to_relay: File,
    mut go_r: File,
    argv: &[CString],
) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if placement == Placement::KernelPids {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
            let _ = write!(to_relay, "cannot mount the VPS's procfs on /proc: {e}");
            std::process::exit(1);
        }
    }
    // The kernel answers this sysctl for the reader's own pid namespace.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap_or_default();
    let _ = write!(to_relay, "ok {}", pid_max.trim());
    drop(to_relay);
    let mut go = [0u8; 2];
    if go_r.read_exact(&mut go).is_err() {
        std::process::exit(1);
    }
    drop(go_r);
    if !pidns {
        // Orphans come to init, as they do to a pid namespace's init. In a pid
        // namespace the kernel brings them there itself, and init is no subreaper
        // (`PR_GET_CHILD_SUBREAPER` answers 0, as in `unshare --pid --fork`).
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    crate::sys::process::reset_signals();
    exec_argv(argv)
}
