//! Putting a view in place over a VPS's `/proc` (SPEC section 4): the virtual global
//! files bound over the kernel's own procfs of the VPS's pid namespace (the kernel pid
//! view, as LXCFS does it), or the whole view over `/proc` (the full view); the VPS's
//! CPU directory and its block devices' I/O counters in sysfs ([`cpu_dir`],
//! [`block_stats`]); the time namespace that starts a VPS's clock
//! at 0.

pub mod block_stats;
pub mod cpu_dir;
pub mod cpu_topology;

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::resources::cpus::CpuSet;
use crate::resources::ResFile;
use crate::view::resource_files;

/// Where resource file `f` goes for a VPS whose procfs is at `proc_dir`: below it, or,
/// for the CPU list, in the sysfs beside it (`<proc_dir>/../sys/…`).
pub fn target_of(f: ResFile, proc_dir: &Path) -> PathBuf {
    let rel = f.host_path().trim_start_matches('/');
    match rel.strip_prefix("proc/") {
        Some(below) => proc_dir.join(below),
        None => proc_dir.parent().unwrap_or(Path::new("/")).join(rel),
    }
}

/// Whether `proc_dir` is a procfs of another pid namespace than the caller's: its
/// `self` names no process for the caller (a procfs shows only its own namespace's
/// numbers, and the caller has none in a child namespace's). A container's `/proc` that
/// is still the host's procfs resolves `self` to the caller, and needs the full view.
pub fn is_foreign_procfs(proc_dir: &Path) -> bool {
    let is_procfs = nix::sys::statfs::statfs(proc_dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
    is_procfs && std::fs::read_link(proc_dir.join("self")).is_err()
}

/// The files the view puts over the kernel's own procfs in the kernel pid view: every
/// resource file below `/proc` (the CPU lists go to sysfs, by [`cpu_dir`]).
pub fn proc_files() -> impl Iterator<Item = ResFile> {
    ResFile::ALL.iter().copied().filter(|f| !f.is_cpu_list())
}

/// sysfs's CPU directory beside a procfs at `proc_dir`:
/// `<proc_dir>/../sys/devices/system/cpu`.
pub fn sys_cpu_dir(proc_dir: &Path) -> PathBuf {
    let online = target_of(ResFile::CpuOnline, proc_dir);
    online.parent().map_or(online.clone(), Path::to_path_buf)
}

/// Binds the view's virtual global files, mounted at `view`, where the readers of a
/// procfs at `proc_dir` look for them: over the kernel's own files in `/proc` when
/// `over_proc` (the kernel pid view), and, in every placement, the VPS's CPU directory
/// over sysfs's ([`cpu_dir::place`], for a VPS that sees the host CPUs `cpus`) and its
/// block devices' I/O counters ([`block_stats`]). A file
/// the kernel lacks here (`/proc/pressure/*` without PSI) is left out.
pub fn bind_files(
    view: &Path,
    proc_dir: &Path,
    over_proc: bool,
    cpus: Option<&CpuSet>,
) -> Result<(), String> {
    for f in proc_files().filter(|_| over_proc) {
        let target = target_of(f, proc_dir);
        if !target.exists() {
            log::info!("{} does not exist here: not virtualized", target.display());
            continue;
        }
        let source = view.join(resource_files::view_name(f));
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            format!(
                "cannot bind {} over {}: {e}",
                source.display(),
                target.display()
            )
        })?;
    }
    cpu_dir::place(&sys_cpu_dir(proc_dir), cpu_dir::take_lists(view)?, cpus)?;
    block_stats::place(&sys_dir(proc_dir), block_stats::take(view));
    Ok(())
}

/// The sysfs beside a procfs at `proc_dir`: `<proc_dir>/../sys`.
pub fn sys_dir(proc_dir: &Path) -> PathBuf {
    proc_dir.parent().unwrap_or(Path::new("/")).join("sys")
}

/// The host CPUs that the VPS whose cgroup is `paths` sees, in its order (see
/// [`cpu_dir`]); `None` when its limits cannot be read (the host's directory stays).
pub fn visible_cpus(paths: crate::resources::cgroup::CgroupPaths) -> Option<CpuSet> {
    crate::resources::VpsResources::new(paths)
        .visible_host_cpus()
        .map_err(|e| log::warn!("cannot read the VPS's CPU limits: {e}"))
        .ok()
}

/// A private directory where the view is mounted until its files are bound; detached
/// and removed on drop (the bound files keep the view alive).
pub struct Staging {
    /// The directory.
    pub dir: std::path::PathBuf,
}

impl Staging {
    /// Makes the directory.
    pub fn new() -> Result<Staging, String> {
        let base = std::env::temp_dir().join(format!("vprocfs-{}", std::process::id()));
        std::fs::create_dir(&base).map_err(|e| format!("cannot make {}: {e}", base.display()))?;
        Ok(Staging { dir: base })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The `timens_offsets` line that takes the boottime `now` (seconds, ns), cut to a whole
/// clock tick, back to 0. Whole ticks: a start time in `stat` is whole ticks too, so the
/// full view (which shifts the host's start times by the offset, src/render/stat.rs)
/// shows exactly what procfs computes in ns; an offset with a fraction of a tick would
/// put a process started in the namespace's first tick (its init) a tick before 0,
/// which procfs's unsigned arithmetic shows as 1844674407370. The VPS starts at most a
/// tick old. The kernel wants the ns in [0, 1 s), so −12.3 s is written as −13 s + 0.7 s.
fn boottime_offset((secs, nsecs): (i64, i64)) -> String {
    // A clock tick of `USER_HZ`, the unit of a process's start time in `stat`.
    const TICK_NS: i64 = crate::resources::stat::NS_PER_TICK as i64;
    let nsecs = nsecs - nsecs % TICK_NS;
    if nsecs == 0 {
        format!("boottime {} 0", -secs)
    } else {
        format!("boottime {} {}", -secs - 1, 1_000_000_000 - nsecs)
    }
}

/// Pure: the host's boottime (seconds, ns) when a namespace with boottime offset
/// `offset_ns` reads `now`.
fn host_clock((secs, nsecs): (i64, i64), offset_ns: i64) -> (i64, i64) {
    let host = (secs as i128) * 1_000_000_000 + nsecs as i128 - offset_ns as i128;
    let secs = host.div_euclid(1_000_000_000);
    let nsecs = host.rem_euclid(1_000_000_000);
    (
        i64::try_from(secs).unwrap_or(i64::MAX),
        i64::try_from(nsecs).unwrap_or(0),
    )
}

/// Puts the relay's future children in a new time namespace whose `CLOCK_BOOTTIME`
/// starts now (0 at the last clock tick before the offset is written), so that the VPS's
/// `uptime`, `btime` and every process start time, as the kernel or the full view shows
/// them, agree with its age (SPEC section 5). The offsets
/// must be written before the first process enters the namespace. A kernel without time
/// namespaces leaves the VPS on the host's clock, which stays coherent too.
///
/// Offsets are from the host's clock, not from the clock of the namespace the relay is
/// in: inside another time namespace (a VPS in a VPS, a restored container) the host's
/// boottime is the relay's minus its namespace's offset, read before the new namespace
/// hides it (`timens_offsets` shows the namespace of the children to come).
pub fn time_namespace() {
    let own = crate::resources::boot_offset_of(std::process::id() as i32).unwrap_or(0);
    if let Err(e) = unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)) {
        log::warn!("no time namespace ({e}): the VPS keeps the host's uptime");
        return;
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| host_clock((t.tv_sec(), t.tv_nsec()), own))
        .unwrap_or((0, 0));
    if let Err(e) = std::fs::write("/proc/self/timens_offsets", boottime_offset(now)) {
        log::warn!("cannot set the VPS's boot time ({e}): it keeps the host's uptime");
    }
}

#[cfg(test)]
mod tests {
    use super::{boottime_offset, host_clock};

    #[test]
    fn the_hosts_clock_is_the_namespaces_less_its_offset() {
        assert_eq!(host_clock((12, 5), 0), (12, 5));
        // A namespace that started its clock 100.5 s after the host's boot.
        assert_eq!(host_clock((2, 0), -100_500_000_000), (102, 500_000_000));
        assert_eq!(
            host_clock((2, 700_000_000), 1_000_000_000),
            (1, 700_000_000)
        );
        assert_eq!(host_clock((0, 100), 200), (-1, 999_999_900));
    }

    #[test]
    fn the_offset_takes_boottime_back_to_zero() {
        assert_eq!(boottime_offset((12, 0)), "boottime -12 0");
        assert_eq!(boottime_offset((12, 300_000_000)), "boottime -13 700000000");
        assert_eq!(boottime_offset((12, 305_000_001)), "boottime -13 700000000");
        assert_eq!(boottime_offset((0, 9_999_999)), "boottime 0 0");
        assert_eq!(boottime_offset((0, 10_000_001)), "boottime -1 990000000");
    }
}
