//! The cgroup `vprocfs run` makes for its VPS, with limits the kernel enforces.
//!
//! It is `<the daemon's own cgroup>/vprocfs/<name>` in every hierarchy a limit or a
//! view needs: the v2 hierarchy always (its `cpu.stat`, PSI files and `cgroup.kill`
//! exist whatever controllers it has), and each v1 controller hierarchy that is
//! mounted (memory, cpu, cpuacct, cpuset, pids, blkio; a controller bound to v1 is
//! not available on v2, so the two never overlap), except a cpu hierarchy of its own
//! without `--cpus`, where the VPS stays in the daemon's cpu cgroup as a pid namespace
//! would (a cpu directory vprocfs does make takes real-time runtime: `rt_budget.rs`).
//! On v2, the controllers a limit
//! needs are enabled in `cgroup.subtree_control` of the daemon's cgroup and of
//! `vprocfs/`; the kernel refuses that in a non-root cgroup that has processes of its
//! own ("no internal processes"), which is then reported with what to do, and is
//! an error only when a limit needed that controller.
//!
//! Removal kills what is left (v2 `cgroup.kill`, else SIGKILL of each listed pid
//! after checking it is still in the cgroup) and removes the directories, on
//! [`VpsCgroup::remove`] or when the value is dropped, so that an early return or a
//! panic in the caller leaves no cgroup behind.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::cgroup::{CgDir, CgroupPaths, V1_CONTROLLERS};
use super::cpus::CpuSet;
use super::rt_budget;
use crate::host;

/// Limits for `vprocfs run`; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// Swap in bytes, beyond `memory` (`None`: swap is not limited; a VPS then sees
    /// the host's SwapTotal).
    pub swap: Option<u64>,
    /// CPU bandwidth in CPUs (0.5: half of one CPU).
    pub cpus: Option<f64>,
    /// CPUs allowed, as a range list ("0", "0-3,6").
    pub cpuset: Option<String>,
    /// Maximum number of tasks.
    pub pids: Option<u64>,
}

/// Parses a size: a number of bytes with an optional binary suffix (k, M, G, T,
/// either case, optionally followed by "B" or "iB"): "256M", "1G", "512k",
/// "1048576". For clap's `value_parser`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size (expected e.g. 256M, 1G, 512k)"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let suffix = suffix.to_ascii_lowercase();
    let unit = suffix
        .strip_suffix("ib")
        .or_else(|| suffix.strip_suffix('b'))
        .unwrap_or(&suffix);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{s:?}: unknown unit {suffix:?} (use k, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The CFS period written with a `--cpus` limit (the kernel's default).
const PERIOD_US: u64 = 100_000;

/// A VPS's cgroup made by vprocfs.
#[derive(Debug)]
pub struct VpsCgroup {
    paths: CgroupPaths,
    /// The leaf directories made, each once (co-mounted v1 controllers share one).
    leaves: Vec<PathBuf>,
    /// The `vprocfs` parent directories, removed when empty.
    parents: Vec<PathBuf>,
    /// The v2 leaf, for `cgroup.kill`.
    v2_leaf: Option<PathBuf>,
    done: bool,
}

fn write_file(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// Writes `--cpuset` into the VPS's cgroup `dir`. The kernel refuses CPUs its parent
/// does not have with an errno alone (v1: `ERANGE`, "Numerical result out of range"):
/// the error names the CPUs there are.
fn write_cpuset(dir: &Path, cpus: &str) -> Result<(), String> {
    write_file(&dir.join("cpuset.cpus"), cpus).map_err(|e| {
        let parent = dir.parent().unwrap_or(dir);
        let has = ["cpuset.cpus.effective", "cpuset.cpus"]
            .iter()
            .find_map(|f| fs::read_to_string(parent.join(f)).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        match has {
            Some(has) => format!("--cpuset {cpus}: this VPS may have CPUs {has} only ({e})"),
            None => e,
        }
    })
}

impl VpsCgroup {
    /// Creates `<own cgroup>/vprocfs/<name>` in every hierarchy a limit or a view
    /// needs and writes the limits. Errors say which file and what to do; what was
    /// made before an error is removed.
    pub fn create(name: &str, limits: &Limits) -> Result<VpsCgroup, String> {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.len() > 200
            || name.contains(['/', '\n', '\0'])
        {
            return Err(format!("{name:?} cannot name a cgroup"));
        }
        if let Some(c) = limits.cpus {
            if !(c.is_finite() && c > 0.0 && c <= 1e6) {
                return Err(format!("--cpus {c}: expected a positive number of CPUs"));
            }
        }
        if let Some(cs) = &limits.cpuset {
            let set = CpuSet::parse(cs).map_err(|e| format!("--cpuset {cs:?}: {e}"))?;
            if set.is_empty() {
                return Err(format!("--cpuset {cs:?}: no CPU"));
            }
        }
        let cgroup = fs::read_to_string(host::proc_path("self/cgroup"))
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mountinfo = fs::read_to_string(host::proc_path("self/mountinfo"))
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = CgroupPaths::from_texts(&cgroup, &mountinfo, true);
        if own.dirs().next().is_none() {
            return Err("no cgroup hierarchy is mounted (looked in /proc/self/mountinfo)".into());
        }
        let mut cg = VpsCgroup {
            paths: CgroupPaths::default(),
            leaves: Vec::new(),
            parents: Vec::new(),
            v2_leaf: None,
            done: false,
        };
        // On error, Drop removes what was made.
        cg.build(name, limits, &own)?;
        Ok(cg)
    }

    fn build(&mut self, name: &str, limits: &Limits, own: &CgroupPaths) -> Result<(), String> {
        let rel =
            |d: &CgDir| -> String { format!("{}/vprocfs/{name}", d.path.trim_end_matches('/')) };
        // Which controllers v2 offers to the daemon's cgroup.
        let v2_controllers: Vec<String> = match &own.v2 {
            Some(d) => fs::read_to_string(d.dir().join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        let on_v2 = |c: &str| v2_controllers.iter().any(|x| x == c);
        let needed = |c: &str| match c {
            "memory" => limits.memory.is_some() || limits.swap.is_some(),
            "cpu" => limits.cpus.is_some(),
            "cpuset" => limits.cpuset.is_some(),
            "pids" => limits.pids.is_some(),
            _ => false,
        };

        if let Some(d) = &own.v2 {
            let wanted: Vec<&str> = ["memory", "cpu", "cpuset", "pids", "io"]
                .into_iter()
                .filter(|c| on_v2(c))
                .collect();
            let parent = d.dir().join("vprocfs");
            self.make_parent(&parent, None)?;
            for c in &wanted {
                for dir in [d.dir(), parent.clone()] {
                    let ctl = dir.join("cgroup.subtree_control");
                    let current = fs::read_to_string(&ctl).unwrap_or_default();
                    if current.split_whitespace().any(|x| x == *c) {
                        continue;
                    }
                    if let Err(e) = write_file(&ctl, &format!("+{c}")) {
                        let advice = format!(
                            "{e} (the kernel refuses controllers below a cgroup that has \
                             processes of its own: start vprocfs in a cgroup delegated to \
                             it, e.g. `systemd-run --scope -p Delegate=yes vprocfs …`)"
                        );
                        if needed(c) {
                            return Err(advice);
                        }
                        log::warn!("cgroup v2 controller {c} not enabled: {advice}");
                        break;
                    }
                }
            }
            let leaf = d.mount.join(rel(d).trim_start_matches('/'));
            self.make_leaf(&leaf, None)?;
            self.v2_leaf = Some(leaf);
            self.paths.v2 = Some(CgDir {
                mount: d.mount.clone(),
                path: rel(d),
            });
        }

        for c in V1_CONTROLLERS {
            let own_dir = match c {
                "memory" => &own.memory,
                "cpu" => &own.cpu,
                "cpuacct" => &own.cpuacct,
                "cpuset" => &own.cpuset,
                "pids" => &own.pids,
                _ => &own.blkio,
            };
            let Some(d) = own_dir else {
                if needed(c) && !on_v2(c) {
                    return Err(format!(
                        "the {c} controller is neither on cgroup v2 nor mounted as v1: \
                         cannot enforce the limit"
                    ));
                }
                continue;
            };
            // A v1 cpu hierarchy of its own serves only `--cpus`: without it the VPS
            // stays in the daemon's cpu cgroup, its tasks scheduled one by one as in a
            // pid namespace, and its real-time tasks run on that cgroup's budget.
            let cpu_alone = own.cpuacct.as_ref().is_none_or(|a| a.mount != d.mount);
            if c == "cpu" && !needed(c) && cpu_alone {
                self.paths.cpu = Some(d.clone());
                continue;
            }
            let parent = d.dir().join("vprocfs");
            let leaf = d.mount.join(rel(d).trim_start_matches('/'));
            let cpuset_from = (c == "cpuset").then(|| d.dir());
            if !self.leaves.contains(&leaf) {
                self.make_parent(&parent, cpuset_from.as_deref())?;
                self.make_leaf(
                    &leaf,
                    Some(&parent).filter(|_| c == "cpuset").map(|p| p.as_path()),
                )?;
                if c == "cpu" {
                    rt_budget::share(&parent, rt_budget::Take::All);
                    rt_budget::share(&leaf, rt_budget::Take::Half);
                }
            }
            if let Some(slot) = self.paths.slot_mut(c) {
                *slot = Some(CgDir {
                    mount: d.mount.clone(),
                    path: rel(d),
                });
            }
        }
        self.write_limits(limits, &on_v2)
    }

    /// Makes `vprocfs/` below the daemon's cgroup if needed; a v1 cpuset directory
    /// gets the parent's cpus and mems first, as v1 refuses tasks in a cpuset with
    /// none.
    fn make_parent(&mut self, parent: &Path, cpuset_from: Option<&Path>) -> Result<(), String> {
        sweep_stale(parent);
        match fs::create_dir(parent) {
            Ok(()) => self.parents.push(parent.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !self.parents.contains(&parent.to_path_buf()) {
                    self.parents.push(parent.to_path_buf());
                }
            }
            Err(e) => {
                return Err(format!(
                    "cannot create {}: {e} ({})",
                    parent.display(),
                    cannot_create_advice(&e)
                ))
            }
        }
        if let Some(from) = cpuset_from {
            copy_cpuset(from, parent)?;
        }
        Ok(())
    }

    fn make_leaf(&mut self, leaf: &Path, cpuset_from: Option<&Path>) -> Result<(), String> {
        let mut made = fs::create_dir(leaf);
        // Another run may have removed the shared `vprocfs/` parent, empty for a moment,
        // between its making and this: made again (a cpuset one from its own parent).
        for _ in 0..5 {
            match &made {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(parent) = leaf.parent() {
                        let from = cpuset_from.and_then(|_| parent.parent());
                        self.make_parent(parent, from)?;
                    }
                    made = fs::create_dir(leaf);
                }
                _ => break,
            }
        }
        if let Err(e) = made {
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(format!("cannot create {}: {e}", leaf.display()));
            }
            // Left over by a run that was killed: reuse it only if it is empty.
            if fs::remove_dir(leaf).is_err() || fs::create_dir(leaf).is_err() {
                return Err(format!(
                    "{} already exists and is in use: pick another VPS name",
                    leaf.display()
                ));
            }
        }
        self.leaves.push(leaf.to_path_buf());
        if let Some(from) = cpuset_from {
            copy_cpuset(from, leaf)?;
        }
        Ok(())
    }

    fn write_limits(&self, l: &Limits, on_v2: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let v2 = |c: &str| -> Option<PathBuf> {
            if on_v2(c) {
                self.paths.v2.as_ref().map(CgDir::dir)
            } else {
                None
            }
        };
        let v1 = |d: &Option<CgDir>| d.as_ref().map(CgDir::dir);
        let missing = |what: &str| format!("cannot set {what}: no cgroup controller for it");
        if let Some(m) = l.memory {
            match (v2("memory"), v1(&self.paths.memory)) {
                (Some(d), _) => write_file(&d.join("memory.max"), &m.to_string())?,
                (None, Some(d)) => write_file(&d.join("memory.limit_in_bytes"), &m.to_string())?,
                _ => return Err(missing("--memory")),
            }
        }
        if let Some(s) = l.swap {
            let no_accounting = |f: &Path| {
                format!(
                    "cannot set --swap: {} does not exist (swap accounting is off: boot \
                     with swapaccount=1, or leave out --swap)",
                    f.display()
                )
            };
            match (v2("memory"), v1(&self.paths.memory)) {
                (Some(d), _) => {
                    let f = d.join("memory.swap.max");
                    if !f.exists() {
                        return Err(no_accounting(&f));
                    }
                    write_file(&f, &s.to_string())?;
                }
                (None, Some(d)) => {
                    let Some(m) = l.memory else {
                        return Err(
                            "--swap needs --memory on cgroup v1 (it limits memory + swap)".into(),
                        );
                    };
                    let f = d.join("memory.memsw.limit_in_bytes");
                    if !f.exists() {
                        return Err(no_accounting(&f));
                    }
                    let total = m
                        .checked_add(s)
                        .ok_or_else(|| "--memory + --swap is too large".to_string())?;
                    write_file(&f, &total.to_string())?;
                }
                _ => return Err(missing("--swap")),
            }
        }
        if let Some(c) = l.cpus {
            let quota = ((c * PERIOD_US as f64).round() as u64).max(1000);
            match (v2("cpu"), v1(&self.paths.cpu)) {
                (Some(d), _) => write_file(&d.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?,
                (None, Some(d)) => {
                    write_file(&d.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write_file(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                _ => return Err(missing("--cpus")),
            }
        }
        if let Some(cs) = &l.cpuset {
            match (v2("cpuset"), v1(&self.paths.cpuset)) {
                (Some(d), _) | (None, Some(d)) => write_cpuset(&d, cs)?,
                _ => return Err(missing("--cpuset")),
            }
        }
        if let Some(p) = l.pids {
            match (v2("pids"), v1(&self.paths.pids)) {
                (Some(d), _) | (None, Some(d)) => write_file(&d.join("pids.max"), &p.to_string())?,
                _ => return Err(missing("--pids")),
            }
        }
        Ok(())
    }

    /// Moves process `pid` into every one of the VPS's directories.
    pub fn attach(&self, pid: i32) -> io::Result<()> {
        for leaf in &self.leaves {
            let f = leaf.join("cgroup.procs");
            fs::write(&f, pid.to_string()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot move {pid} into {}: {e}", f.display()),
                )
            })?;
        }
        Ok(())
    }

    /// The VPS's cgroup, for [`super::VpsResources::new`].
    pub fn paths(&self) -> CgroupPaths {
        self.paths.clone()
    }

    /// How many processes of the VPS the kernel's OOM killer has ended: `oom_kill` of
    /// v2's `memory.events` or v1's `memory.oom_control`, whichever the memory
    /// controller has; `None` when neither can be read.
    pub fn oom_kills(&self) -> Option<u64> {
        let v2 = self.v2_leaf.as_ref().map(|d| d.join("memory.events"));
        let v1 = self
            .paths
            .memory
            .as_ref()
            .map(|d| d.dir().join("memory.oom_control"));
        [v2, v1]
            .into_iter()
            .flatten()
            .filter_map(|f| fs::read_to_string(f).ok())
            .filter_map(|t| oom_kill_count(&t))
            .reduce(u64::max)
    }

    /// Kills what is left in the cgroup and removes its directories. Never fails
    /// loudly: what cannot be done is logged.
    pub fn remove(mut self) {
        self.cleanup();
    }

    fn cleanup(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(v2) = &self.v2_leaf {
            let kill = v2.join("cgroup.kill");
            if kill.exists() {
                if let Err(e) = fs::write(&kill, "1") {
                    log::warn!("cannot write 1 to {}: {e}", kill.display());
                }
            }
        }
        // SIGKILL what v1 lists (and what v2 lists where cgroup.kill is missing),
        // until the directories are empty or 2 s passed.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut left = 0;
            for leaf in &self.leaves {
                for (dir, pid) in procs_below(leaf) {
                    left += 1;
                    kill_if_member(pid, &dir);
                }
            }
            if left == 0 || Instant::now() > deadline {
                if left > 0 {
                    log::warn!("{left} processes still in the VPS's cgroup after SIGKILL");
                }
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        for leaf in &self.leaves {
            remove_tree(leaf);
        }
        for parent in &self.parents {
            // Shared by every VPS of this daemon: removed only when empty.
            let _ = fs::remove_dir(parent);
        }
    }
}

impl Drop for VpsCgroup {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// What to do when the kernel refuses to make a cgroup directory with error `e`.
fn cannot_create_advice(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EROFS) => {
            "the cgroup file system is mounted read-only here, as in many containers: \
             give vprocfs a writable cgroup, such as a container's own cgroup \
             namespace with /sys/fs/cgroup writable, or run without limits"
        }
        Some(libc::EACCES | libc::EPERM) => {
            "vprocfs needs root, or a cgroup delegated to it, to make cgroups"
        }
        _ => "vprocfs makes its VPSes' cgroups below its own",
    }
}

/// Pure: the `oom_kill` count of a `memory.events` or `memory.oom_control` text.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

fn copy_cpuset(from: &Path, to: &Path) -> Result<(), String> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = fs::read_to_string(to.join(f)).unwrap_or_default();
        if !cur.trim().is_empty() {
            continue;
        }
        let v = fs::read_to_string(from.join(f))
            .map_err(|e| format!("cannot read {}: {e}", from.join(f).display()))?;
        write_file(&to.join(f), v.trim())?;
    }
    Ok(())
}

/// The processes of `dir` and every cgroup below it, with the directory each is in.
fn procs_below(dir: &Path) -> Vec<(PathBuf, i32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(t) = fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(
                t.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .map(|p| (d.clone(), p)),
            );
        }
        if let Ok(rd) = fs::read_dir(&d) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// SIGKILLs `pid` if its `/proc/<pid>/cgroup` still places it in `dir` (pids are
/// reused: one that left and was reused must not be killed).
fn kill_if_member(pid: i32, dir: &Path) {
    if pid <= 0 {
        return;
    }
    let Ok(text) = fs::read_to_string(host::proc_path(&format!("{pid}/cgroup"))) else {
        return;
    };
    let Ok(mountinfo) = fs::read_to_string(host::proc_path("self/mountinfo")) else {
        return;
    };
    let p = CgroupPaths::from_texts(&text, &mountinfo, true);
    if !p.dirs().any(|d| d.dir() == dir) {
        return;
    }
    if let Err(e) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        if e != nix::errno::Errno::ESRCH {
            log::warn!("cannot kill {pid} in {}: {e}", dir.display());
        }
    }
}

/// Removes a cgroup directory and those below it, deepest first, retrying EBUSY (a
/// cgroup stays busy for a moment after its last task exits) for up to 1 s.
/// How old an empty `run-*` cgroup must be before a new run removes it.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Removes the `run-*` cgroups below `parent` that a `vprocfs run` killed without notice
/// (SIGKILL of the daemon) left behind: empty (no process in them or below) and made
/// more than [`STALE_AFTER`] ago, so that a run making its own at this moment, empty
/// until its init is moved in, is never taken for one.
fn sweep_stale(parent: &Path) {
    let Ok(rd) = fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let name = e.file_name();
        if e.file_type().is_ok_and(|t| t.is_dir())
            && is_stale(&name.to_string_lossy(), age, || {
                procs_below(&path).is_empty()
            })
        {
            log::info!("removing {}, left by a run that was killed", path.display());
            remove_tree(&path);
        }
    }
}

/// Whether a cgroup named `name`, made `age` ago, is one a killed run left: `run-*`,
/// older than [`STALE_AFTER`], and `empty` (asked last: it reads the cgroup).
fn is_stale(name: &str, age: Option<Duration>, empty: impl FnOnce() -> bool) -> bool {
    name.starts_with("run-") && age.is_some_and(|a| a > STALE_AFTER) && empty()
}

fn remove_tree(dir: &Path) {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = fs::read_dir(&d) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        all.push(d);
    }
    for d in all.iter().rev() {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    log::warn!("cannot remove {}: {e}", d.display());
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_cgroup_says_what_to_do() {
        use super::cannot_create_advice;
        let advice = |errno| cannot_create_advice(&std::io::Error::from_raw_os_error(errno));
        assert!(advice(libc::EROFS).contains("read-only"));
        assert!(advice(libc::EACCES).contains("root"));
        assert!(advice(libc::EPERM).contains("delegated"));
        assert!(!advice(libc::ENOSPC).contains("root"));
    }

    #[test]
    fn only_old_empty_run_cgroups_are_stale() {
        let old = Some(Duration::from_secs(120));
        let new = Some(Duration::from_secs(1));
        assert!(is_stale("run-0a1b", old, || true));
        assert!(
            !is_stale("run-0a1b", new, || true),
            "a run making its cgroup now"
        );
        assert!(!is_stale("run-0a1b", None, || true));
        assert!(!is_stale("run-0a1b", old, || false), "a live VPS");
        assert!(!is_stale("other", old, || true), "not a run's");
        assert!(!is_stale("other", old, || panic!("not read")));
    }

    use super::*;

    #[test]
    fn oom_kills_of_either_hierarchy() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(oom_kill_count(v1), Some(1));
        // Before Linux 4.13 v1 had no such line.
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1048576"), Ok(1048576));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in [
            "",
            "M",
            "1.5G",
            "12Q",
            "-1",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_requests_fail_before_touching_anything() {
        let l = Limits::default();
        for name in ["", "a/b", "..", "x\ny"] {
            assert!(VpsCgroup::create(name, &l).is_err());
        }
        let cpus = Limits {
            cpus: Some(0.0),
            ..Default::default()
        };
        assert!(VpsCgroup::create("t", &cpus)
            .unwrap_err()
            .contains("--cpus"));
        let cpuset = Limits {
            cpuset: Some("x".into()),
            ..Default::default()
        };
        assert!(VpsCgroup::create("t", &cpuset)
            .unwrap_err()
            .contains("--cpuset"));
    }
}
