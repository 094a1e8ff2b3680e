//! `vprocfs serve` (one mount, many VPSes) and `vprocfs attach` (put a served mount over
//! a running container's `/proc`).

use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use nix::sched::{setns, CloneFlags};

use super::{need_root, AttachArgs, NumberingArg, ServeArgs, VpsSpec};
use crate::daemon;
use crate::engine::VpsConfig;
use crate::fuse::ProcFs;
use crate::membership::{Source, Tracker};
use crate::placement;
use crate::stats::Stats;
use crate::sys::process::{fork, move_mount_to, open_tree_clone, Forked};
use crate::view::{resource_files, View};

pub(super) fn serve(mut a: ServeArgs) -> Result<i32, String> {
    need_root("vprocfs serve")?;
    let (Some(worker), Some(dir)) = (a.worker, a.worker_dir.clone()) else {
        return super::supervise::supervise(&a.mountpoint);
    };
    // The worker ends with its supervisor: without it nobody could unmount.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() != worker.parent {
        return Err("the supervisor is gone".into());
    }
    let fuse = crate::sys::process::inherited_fd(worker.fd)
        .map_err(|e| format!("no FUSE connection from the supervisor: {e}"))?;
    // Kept for the worker's whole life: the mounts of single VPSes are held through it.
    let channel = Arc::new(super::channel::Channel::inherited(worker.ready));
    // The supervisor first sends the mounts of VPSes it holds from earlier workers.
    let held_mounts = channel.take_held();
    // Without a state file of the user's, the supervisor's keeps vpids across restarts.
    if a.state.is_none() {
        a.state = Some(dir.join("state"));
    }
    if a.vps.is_empty() && worker.generation == 0 {
        log::warn!("no --vps given: every reader sees the host view");
    }
    daemon::block_stop_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    let mut tracker = Tracker::new();
    let mut journaled_vpids = Vec::new();
    let numbering = a.engine.numbering;
    let engine = a.engine;
    let settings = move |spec: &VpsSpec| -> Result<(VpsConfig, bool), String> {
        let pidns = matches!(spec.source, Source::Pidns { .. });
        let numbering = numbering.unwrap_or(if pidns {
            NumberingArg::Pidns
        } else {
            NumberingArg::Linear
        });
        if numbering == NumberingArg::Pidns && !pidns {
            return Err(format!(
                "--vps {}: --numbering pidns needs a pidns= VPS",
                spec.name
            ));
        }
        if let Some(w) = engine.warning(numbering, pidns) {
            log::warn!("--vps {}: {w}", spec.name);
        }
        Ok((
            engine.config(numbering, pidns),
            numbering == NumberingArg::Pidns,
        ))
    };
    let from_file = match &a.config {
        Some(path) => read_config(path)?,
        None => Vec::new(),
    };
    let saved = match &a.state {
        Some(path) => crate::state::load(path)?
            .map(|s| s.vpses)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    // Vpids handed out after the last save, by a daemon that did not live to save them.
    if let Some(path) = &a.state {
        let (journaled, next) = crate::state::load_journals(path)?;
        let journal = crate::state::Journal::create(path, next).map_err(|e| {
            format!(
                "cannot start a vpid journal next to {}: {e}",
                path.display()
            )
        })?;
        tracker.set_journal(journal);
        journaled_vpids = journaled;
    }
    let saved_name =
        |v: &crate::state::SavedVps| v.spec.split(':').next().unwrap_or_default().to_string();
    let mut specs: Vec<VpsSpec> = a.vps.iter().chain(&from_file).cloned().collect();
    // VPSes added at run time (ctl) come back from the state.
    for v in &saved {
        if !specs.iter().any(|s| s.name == saved_name(v)) {
            specs.push(super::parse_vps(&v.spec).map_err(|e| format!("state: {e}"))?);
        }
    }
    // Process events are followed from before the scans of `restore_vps`: a process
    // forked between a scan and the subscription would be in neither, and be judged
    // only when first met, by its parent of then (after a reparenting, the wrong one).
    // A fork both a scan and an event report is applied once.
    let event_stream = daemon::open_events();
    for spec in &specs {
        let (config, ns_numbers) = settings(spec)?;
        let saved_vps = saved.iter().find(|v| saved_name(v) == spec.name);
        let saved_mappings = saved_vps.map(|v| v.tasks()).unwrap_or_default();
        let later: Vec<_> = journaled_vpids
            .iter()
            .filter(|(name, _)| *name == spec.name)
            .map(|&(_, m)| m)
            .collect();
        let last_vpid = crate::state::last_vpid(saved_vps.and_then(|v| v.last_vpid()), &later);
        let mappings = crate::state::merge(&saved_mappings, later);
        tracker
            .restore_vps(
                &spec.name,
                spec.source.clone(),
                config,
                ns_numbers,
                &mappings,
                last_vpid,
            )
            .map_err(|e| format!("--vps {}: {e}", spec.name))?;
    }
    let view = View::new(
        tracker,
        crate::view::Inputs {
            events: event_stream,
            ..Default::default()
        },
    );
    // Inode numbers and file handles the kernel holds survive this worker.
    let takeover = worker.generation > 0;
    view.keep_journal(&dir.join("nodes"), takeover, worker.generation << 48)
        .map_err(|e| format!("cannot keep the inode journal in {}: {e}", dir.display()))?;
    // The counters of the virtual files never go back, across restarts and upgrades.
    view.keep_floors(&dir.join("floors"));
    let events = daemon::follow_events(&view);
    daemon::sample_loads(&view);
    let stats = Arc::new(Stats::default());
    let spin = a.fuse.spin(&stats);
    let config = daemon::session_config(&spin);
    let mut fs = ProcFs::new(Arc::clone(&view), Arc::clone(&stats), Arc::clone(&spin))
        .hand_over_backings(dir.join("backings"), takeover);
    if a.fuse.no_passthrough {
        fs = fs.without_passthrough();
    }
    let session = if takeover {
        crate::handover::adopt(fs, fuse, config)
    } else {
        // The kernel sends INIT once the supervisor has mounted.
        channel.say("mount");
        if !channel.wait_for("mounted") {
            return Err(format!(
                "the supervisor did not mount {}",
                a.mountpoint.display()
            ));
        }
        fuser::Session::from_fd(fs, fuse, fuser::SessionACL::All, config)
    };
    // Dropped only by exiting: joining its threads would wait for a connection that the
    // supervisor keeps open.
    let _session = session
        .and_then(|s| daemon::start_session(s, &view, &spin))
        .map_err(|e| format!("cannot serve {}: {e}", a.mountpoint.display()))?;
    // A mount of each VPS's own lets the kernel cache; without events the view could
    // not take back what the kernel caches, so there are none.
    let vps_mounts = match (a.no_vps_mounts, events) {
        (true, _) => None,
        (false, false) => {
            log::warn!("no process events: every VPS is served by the shared mount only");
            None
        }
        (false, true) => {
            let settings = super::vps_mounts::Settings {
                dir: a
                    .vps_mounts
                    .clone()
                    .unwrap_or_else(|| a.ctl.parent().unwrap_or(Path::new("/")).join("vps")),
                worker_dir: dir.clone(),
                generation: worker.generation,
                fuse: a.fuse.clone(),
            };
            let mounts = super::vps_mounts::VpsMounts::new(
                settings,
                Arc::clone(&view),
                Arc::clone(&stats),
                Arc::clone(&channel),
            )?;
            Some(Arc::new(mounts))
        }
    };
    let daemon = Arc::new(crate::ctl::Daemon {
        view: Arc::clone(&view),
        stats: Arc::clone(&stats),
        parse_spec: Box::new(move |text: &str| {
            let spec = super::parse_vps(text)?;
            let (config, ns_numbers) = settings(&spec)?;
            Ok((spec.name, spec.source, config, ns_numbers))
        }),
        mount: std::fs::canonicalize(&a.mountpoint).unwrap_or_else(|_| a.mountpoint.clone()),
        specs: std::sync::Mutex::new(
            specs
                .iter()
                .map(|s| (s.name.clone(), s.text.clone()))
                .collect(),
        ),
        state: a.state.clone(),
        vps_mounts: vps_mounts
            .clone()
            .map(|m| m as Arc<dyn crate::ctl::VpsMounts>),
        saving: std::sync::Mutex::new(()),
    });
    if a.state.is_some() {
        // Vpids handed out as processes come and go are journaled at once, and saved
        // every quarter of a second when they changed (which empties the journal);
        // requests through ctl are saved at once.
        let saver = Arc::clone(&daemon);
        std::thread::Builder::new()
            .name("vprocfs-state".into())
            .spawn(move || {
                let mut last = None;
                loop {
                    let now = saver.snapshot();
                    if last.as_ref() != Some(&now) || saver.journal_pending() {
                        saver.persist();
                        last = Some(now);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
            })
            .map_err(|e| format!("cannot start the state thread: {e}"))?;
    }
    crate::ctl::listen(&a.ctl, Arc::clone(&daemon))
        .map_err(|e| format!("cannot listen on {}: {e}", a.ctl.display()))?;
    log::info!(
        "serving {} VPS(es) on {}, control socket {} (generation {})",
        a.vps.len(),
        a.mountpoint.display(),
        a.ctl.display(),
        worker.generation
    );
    channel.say("ready");
    // The mounts of single VPSes: those an earlier worker left are taken over (requests
    // on them wait in the kernel's queue until then), the others made.
    if let Some(mounts) = &vps_mounts {
        let id_of =
            |name: &str| view.with_tracker(|t| t.engine().vps_by_name(name).map(|v| v.id()));
        mounts.take_over(held_mounts, id_of);
        for spec in &specs {
            if let Some(id) = id_of(&spec.name) {
                if let Err(e) = mounts.add(&spec.name, id) {
                    log::warn!("VPS {} is served by the shared mount only: {e}", spec.name);
                }
            }
        }
    } else {
        drop(held_mounts);
    }
    let sig = loop {
        let sig = daemon::wait_signal(&stats).map_err(|e| e.to_string())?;
        match (&a.config, sig) {
            (Some(path), nix::sys::signal::Signal::SIGHUP) => reload(path, &a.vps, &daemon),
            _ => break sig,
        }
    };
    log::info!("{sig}: stopping; {}", stats.line());
    daemon::stop_flushing(std::time::Duration::from_secs(2));
    daemon.persist();
    view.save_floors();
    if sig != nix::sys::signal::Signal::SIGUSR2 {
        // Stepping down for an upgrade keeps the socket's path for the next worker.
        let _ = std::fs::remove_file(&a.ctl);
    }
    // The connections outlive this worker: what it registered with them goes now or
    // is handed to the next worker (the supervisor unmounts, or hands them over).
    crate::backing::step_down_everywhere();
    std::process::exit(0)
}

/// Reads a file of VPSes: one `NAME:SOURCE` (as `--vps`) a line; `#` starts a comment.
fn read_config(path: &Path) -> Result<Vec<VpsSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut specs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let spec =
            super::parse_vps(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if specs.iter().any(|s: &VpsSpec| s.name == spec.name) {
            return Err(format!(
                "{}:{}: VPS {} is named twice",
                path.display(),
                n + 1,
                spec.name
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// SIGHUP: makes the served VPSes those of the command line and the file again. A VPS
/// still listed is kept as it is (its vpids do not change); one no longer listed is
/// removed; a new one is added. A file that does not parse changes nothing.
fn reload(path: &Path, fixed: &[VpsSpec], daemon: &crate::ctl::Daemon) {
    let wanted = match read_config(path) {
        Ok(w) => w,
        Err(e) => {
            log::error!("reload refused, nothing changed: {e}");
            return;
        }
    };
    let keep: Vec<&str> = fixed
        .iter()
        .chain(&wanted)
        .map(|s| s.name.as_str())
        .collect();
    let have: Vec<String> = daemon
        .view
        .with_tracker(|t| t.engine().vpses().map(|v| v.name().to_string()).collect());
    for name in have.iter().filter(|n| !keep.contains(&n.as_str())) {
        let r = crate::ctl::handle(daemon, crate::ctl::Request::Remove { vps: name.clone() });
        log::info!("reload: removed {name}: {}", r.ok);
    }
    for spec in wanted.iter().filter(|s| !have.contains(&s.name)) {
        let text = spec.text.clone();
        let r = crate::ctl::handle(daemon, crate::ctl::Request::Add { vps: text });
        match r.error {
            None => log::info!("reload: added {}", spec.name),
            Some(e) => log::error!("reload: cannot add {}: {e}", spec.name),
        }
    }
}

pub(super) fn attach(a: AttachArgs) -> Result<i32, String> {
    need_root("vprocfs attach")?;
    place_view(a.pid, &a.mountpoint, &a.target, a.full_view)?;
    Ok(0)
}

/// Whether process `pid` is in a pid namespace other than the caller's.
fn has_own_pidns(pid: i32) -> bool {
    match (
        crate::host::ns_inode("self", "pid"),
        crate::host::ns_inode(pid, "pid"),
    ) {
        (Ok(a), Ok(b)) => a != b,
        _ => false,
    }
}

/// Puts the served mount at `mountpoint` in place for the container of process `pid`,
/// whose `/proc` is at `target` in its mount namespace (SPEC section 4):
/// - where that is the kernel's procfs of the container's own pid namespace, the
///   virtual global files go over it, as LXCFS's hooks do: the kernel pid view;
/// - otherwise (no pid namespace of its own, or `/proc` still the host's), or with
///   `full_view`, the whole view goes over `target`;
/// - either way, the container's CPU directory over the sysfs beside it
///   ([`placement::cpu_dir`]), for the CPUs of its init's cgroup, and its block
///   devices' I/O counters ([`placement::block_stats`]).
///
/// Detached copies of the mount and of its files (`open_tree`) are taken here, where
/// the mount is visible, and moved there (`move_mount`) by a child that has entered the
/// container's mount namespace.
fn place_view(pid: i32, mountpoint: &Path, target: &Path, full_view: bool) -> Result<(), String> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("there is no process {pid}"));
    }
    let marker = resource_files::view_name(crate::resources::ResFile::CpuOnline);
    if !mountpoint.join(marker).exists() {
        return Err(format!(
            "{} is not a vprocfs mount: give the mount point of `vprocfs serve`, or a VPS's own mount (`vprocfs ctl list`)",
            mountpoint.display()
        ));
    }
    let whole = open_tree_clone(mountpoint)
        .map_err(|e| format!("cannot take the mount at {}: {e}", mountpoint.display()))?;
    let mut files = Vec::new();
    if !full_view && has_own_pidns(pid) {
        for f in placement::proc_files() {
            let source = mountpoint.join(resource_files::view_name(f));
            let tree = open_tree_clone(&source)
                .map_err(|e| format!("cannot take {}: {e}", source.display()))?;
            files.push((placement::target_of(f, target), tree));
        }
    }
    let lists = placement::cpu_dir::take_lists(mountpoint)?;
    let block_stats = placement::block_stats::take(mountpoint);
    // The view's resource files follow the cgroup of the container's init: so do its CPUs.
    let cpus = crate::resources::cgroup::CgroupPaths::of_pid(pid)
        .ok()
        .and_then(placement::visible_cpus);
    in_mount_ns(pid, || {
        if files.is_empty() || !placement::is_foreign_procfs(target) {
            move_mount_to(&whole, target)
                .map_err(|e| format!("cannot mount on {}: {e}", target.display()))?;
        } else {
            for (to, tree) in &files {
                if to.exists() {
                    move_mount_to(tree, to)
                        .map_err(|e| format!("cannot mount on {}: {e}", to.display()))?;
                }
            }
        }
        placement::cpu_dir::place(&placement::sys_cpu_dir(target), lists, cpus.as_ref())?;
        placement::block_stats::place(&placement::sys_dir(target), block_stats);
        Ok(())
    })
}

/// Runs `f` in a child that has entered the mount namespace of process `pid` (setns
/// into a mount namespace needs a single-threaded caller).
fn in_mount_ns(pid: i32, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let ns = File::open(format!("/proc/{pid}/ns/mnt"))
        .map_err(|e| format!("cannot open the mount namespace of process {pid}: {e}"))?;
    match fork().map_err(|e| format!("cannot fork: {e}"))? {
        Forked::Child => {
            let r = setns(&ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot enter the mount namespace: {e}"))
                .and_then(|()| f());
            match r {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    crate::say!("vprocfs: {e}");
                    std::process::exit(1)
                }
            }
        }
        Forked::Parent(child) => {
            let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None)
                .map_err(|e| e.to_string())?;
            match st {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                _ => Err(format!("attaching to process {pid} failed")),
            }
        }
    }
}

/// The part of an OCI runtime's state (read by hooks on standard input) a hook needs.
#[derive(Debug, serde::Deserialize)]
struct OciState {
    id: String,
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    bundle: Option<String>,
}

/// Where the container's `/proc` is when a `createContainer` (or `prestart`) hook runs:
/// the runtime has made the container's mounts but not yet pivoted into its root, so
/// it is `<root>/proc` with the root from the bundle's `config.json`. `None` when the
/// bundle cannot be read (a container made otherwise): then `/proc` itself.
fn bundle_proc(bundle: &str) -> Option<std::path::PathBuf> {
    let config = std::fs::read_to_string(Path::new(bundle).join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&config).ok()?;
    let root = Path::new(config.get("root")?.get("path")?.as_str()?);
    Some(Path::new(bundle).join(root).join("proc"))
}

/// `vprocfs oci-hook create|delete`: an OCI runtime hook. `create` (for
/// `createContainer` or `prestart`) registers the container with the daemon — its pid
/// namespace when it has one, else its process tree — and puts the view in place: the
/// virtual global files over its own procfs when it has a pid namespace (unless
/// `full_view`), else the whole view over its `/proc`; `delete` (for `poststop`) removes
/// it.
pub(super) fn oci_hook(
    socket: &Path,
    target: Option<&Path>,
    phase: &str,
    full_view: bool,
) -> Result<i32, String> {
    need_root("vprocfs oci-hook")?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().take(1 << 20), &mut text)
        .map_err(|e| format!("cannot read the container state: {e}"))?;
    let state: OciState = serde_json::from_str(&text)
        .map_err(|e| format!("the container state on standard input is not OCI state JSON: {e}"))?;
    let name: String = state
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match phase {
        "create" => {
            let pid = state.pid.ok_or("the container state has no pid")?;
            let pidns = has_own_pidns(pid);
            let kind = if pidns { "pidns" } else { "tree" };
            let resp = crate::ctl::call(
                socket,
                &crate::ctl::Request::Add {
                    vps: format!("{name}:{kind}={pid}"),
                },
            )
            .map_err(|e| e.to_string())?;
            if !resp.ok {
                return Err(resp.error.unwrap_or_else(|| "refused".into()));
            }
            let target = match target {
                Some(t) => t.to_path_buf(),
                None => state
                    .bundle
                    .as_deref()
                    .and_then(bundle_proc)
                    .unwrap_or_else(|| "/proc".into()),
            };
            let placed = resp
                .mount
                .ok_or_else(|| "the daemon did not say where the view is".to_string())
                .and_then(|mount| place_view(pid, Path::new(&mount), &target, full_view));
            if let Err(e) = placed {
                // The runtime fails the container: it is not left registered either.
                let _ = crate::ctl::call(socket, &crate::ctl::Request::Remove { vps: name });
                return Err(e);
            }
            Ok(0)
        }
        "delete" => {
            let resp = crate::ctl::call(socket, &crate::ctl::Request::Remove { vps: name })
                .map_err(|e| e.to_string())?;
            // Already gone is fine for a poststop hook.
            if resp.ok || resp.errno == Some(libc::ESRCH) {
                Ok(0)
            } else {
                Err(resp.error.unwrap_or_else(|| "refused".into()))
            }
        }
        other => Err(format!(
            "unknown hook phase {other:?}: use create or delete"
        )),
    }
}
