//! The virtual global files (SPEC section 5) in the view: `meminfo`, `cpuinfo`, `stat`,
//! `uptime`, `loadavg`, `swaps`, `diskstats`, `vmstat`, `pressure/*`, and in sysfs the
//! CPU lists and each block device's `stat`, rendered for a reader of a VPS from that
//! VPS's cgroup ([`crate::resources`]). A reader outside every VPS reads the host's
//! files, passed through.
//!
//! Each VPS's resource state is made once, from its init's cgroup, or handed in by
//! `vprocfs run`, which made the cgroup ([`super::Inputs::resources`]).

use super::Errno;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::engine::{Pid, VpsId};
use crate::resources::{self, CgroupPaths, Floors, ResFile, VpsFacts, VpsResources};

use super::{lock, View};

/// The resource views of a mount's VPSes, and the counters' floors a previous daemon
/// left (by VPS name), so that no counter goes back across a restart or an upgrade.
#[derive(Default)]
pub struct Resources {
    by_vps: FxHashMap<VpsId, Arc<VpsRes>>,
    saved: HashMap<String, Floors>,
    path: Option<PathBuf>,
}

impl Resources {
    /// The resource views handed in (by `vprocfs run`, which made the VPS's cgroup).
    pub(super) fn with(given: Vec<(VpsId, VpsRes)>) -> Resources {
        Resources {
            by_vps: given.into_iter().map(|(id, r)| (id, Arc::new(r))).collect(),
            ..Resources::default()
        }
    }
}

/// A VPS's resource view, with what does not change while the VPS lives.
pub struct VpsRes {
    /// The cgroup's readings and the state kept over time (load average, floors).
    pub res: VpsResources,
    /// The VPS's time-namespace boottime offset (0 without one).
    pub boot_offset_ns: i64,
    /// The inode of its init's time namespace, where its readers are.
    pub time_ns: Option<u64>,
    /// When its init started, in the host's `CLOCK_BOOTTIME`.
    pub start_boottime_ns: u64,
}

impl VpsRes {
    /// The resource view of the VPS whose init is `init`, its cgroup read at `paths`.
    pub fn new(init: Pid, paths: CgroupPaths) -> VpsRes {
        let boot_offset_ns = resources::boot_offset_of(init).unwrap_or_else(|e| {
            log::debug!("no time-namespace offsets of process {init} ({e}): taken as 0");
            0
        });
        let start_boottime_ns = crate::host::start_time(init)
            .map(|ticks| ticks.saturating_mul(resources::stat::NS_PER_TICK))
            .unwrap_or_else(|_| resources::boottime_now_ns());
        VpsRes {
            res: VpsResources::new(paths),
            boot_offset_ns,
            time_ns: crate::host::ns_inode(init, "time").ok(),
            start_boottime_ns,
        }
    }
}

/// The virtual file shown at `rel` below the view's root, if any.
pub fn file_at(rel: &str) -> Option<ResFile> {
    ResFile::ALL.iter().copied().find(|f| view_name(*f) == rel)
}

/// Where resource file `f` is in the view, below its root. sysfs's CPU lists
/// (`/sys/devices/system/cpu/online`…, outside `/proc`) are hidden entries of the root:
/// reachable by lookup, so that they can be bound over the sysfs files, and never
/// listed (the root lists what the real `/proc` has).
pub fn view_name(f: ResFile) -> &'static str {
    match f {
        ResFile::CpuOnline => ".vprocfs-cpu-online",
        ResFile::CpuPossible => ".vprocfs-cpu-possible",
        ResFile::CpuPresent => ".vprocfs-cpu-present",
        f => f.name(),
    }
}

/// The hidden name in the view's root of sysfs's `stat` of block device `dev`
/// (`.vprocfs-block-254:0`), bound over the host's by [`crate::placement::block_stats`]
/// and, like the CPU lists, never listed.
pub fn block_stat_name((major, minor): (u32, u32)) -> String {
    format!("{BLOCK_STAT_PREFIX}{major}:{minor}")
}

const BLOCK_STAT_PREFIX: &str = ".vprocfs-block-";

/// The block device whose sysfs `stat` is at `rel` in the view ([`block_stat_name`]).
pub fn block_stat_at(rel: &str) -> Option<(u32, u32)> {
    let (major, minor) = rel.strip_prefix(BLOCK_STAT_PREFIX)?.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then_some((major.parse().ok()?, minor.parse().ok()?))
}

/// Where the host's sysfs shows block device `dev`'s `stat`.
pub fn host_block_stat((major, minor): (u32, u32)) -> PathBuf {
    PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"))
}

impl View {
    /// Keeps the counters' floors of every VPS in `path` ([`View::save_floors`]), and
    /// takes up those a previous daemon saved there.
    pub fn keep_floors(&self, path: &Path) {
        let saved = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!(
                    "{}: not a floors file ({e}); counters start afresh",
                    path.display()
                );
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        let mut r = lock(&self.shared.resources);
        r.saved = saved;
        r.path = Some(path.to_path_buf());
    }

    /// Saves the counters' floors of every VPS (see [`View::keep_floors`]).
    pub fn save_floors(&self) {
        let (path, live) = {
            let r = lock(&self.shared.resources);
            let Some(path) = r.path.clone() else {
                return;
            };
            (
                path,
                r.by_vps
                    .iter()
                    .map(|(&id, v)| (id, Arc::clone(v)))
                    .collect::<Vec<_>>(),
            )
        };
        let mut all: HashMap<String, Floors> = lock(&self.shared.resources).saved.clone();
        for (id, v) in live {
            if let Some(name) = lock(&self.shared.tracker)
                .vps(id)
                .map(|v| v.name().to_string())
            {
                all.insert(name, v.res.floors());
            }
        }
        if let Err(e) = crate::state::write_json(&path, &all) {
            log::warn!(
                "cannot save the counters' floors to {}: {e}",
                path.display()
            );
        }
    }

    /// The host CPUs VPS `id` sees, in its order (see [`crate::placement::cpu_dir`]);
    /// `None` without a cgroup to read.
    pub fn visible_host_cpus(&self, id: VpsId) -> Option<resources::cpus::CpuSet> {
        self.resources_of(id)?.res.visible_host_cpus().ok()
    }

    /// The resource view of VPS `id`, made from its init's cgroup on first use.
    fn resources_of(&self, id: VpsId) -> Option<Arc<VpsRes>> {
        if let Some(r) = lock(&self.shared.resources).by_vps.get(&id) {
            return Some(Arc::clone(r));
        }
        let (init, name) = {
            let tracker = lock(&self.shared.tracker);
            let vps = tracker.vps(id)?;
            (vps.init_pid(), vps.name().to_string())
        };
        let paths = match CgroupPaths::of_pid(init) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot find the cgroup of VPS {id}'s init {init}: {e}");
                return None;
            }
        };
        let made = VpsRes::new(init, paths);
        let mut r = lock(&self.shared.resources);
        if let Some(f) = r.saved.remove(&name) {
            made.res.restore_floors(f);
        }
        Some(Arc::clone(r.by_vps.entry(id).or_insert(Arc::new(made))))
    }

    /// `file` as reader `tid` of VPS `id` sees it, at `node` of the view. The host's
    /// text is read only where the file is made from it; without a cgroup to read, the
    /// host's figures are shown, with loadavg's pids translated.
    pub(super) fn render_virtual(
        &self,
        id: VpsId,
        tid: Pid,
        node: &super::nodes::Node,
        file: ResFile,
    ) -> Result<Vec<u8>, Errno> {
        let host = if file.needs_host_text() {
            self.read_real(node)?
        } else {
            Vec::new()
        };
        if let Some(text) = self.render_resource(id, tid, file, &host)? {
            return Ok(text);
        }
        let host = match host.is_empty() {
            true => self.read_real(node)?,
            false => host,
        };
        // The host's clock, on the reader's, as the start times in `stat` are shown.
        match file {
            ResFile::Loadavg => {
                self.render_for(id, tid, node, super::files::Render::Loadavg, &host, false)
            }
            ResFile::Uptime if tid > 0 => Ok(resources::uptime::host_shifted(
                &host,
                self.reader_clock_shift(tid),
            )),
            ResFile::Stat if tid > 0 => Ok(resources::stat::host_with_btime(
                &host,
                resources::host_boot_wall_ns(),
                self.reader_clock_shift(tid),
            )),
            _ => Ok(host),
        }
    }

    /// sysfs's `stat` of block device `dev` as a reader of VPS `id` sees it, at `node`;
    /// the host's without a cgroup to read.
    pub(super) fn render_block_stat(
        &self,
        id: VpsId,
        node: &super::nodes::Node,
        dev: (u32, u32),
    ) -> Result<Vec<u8>, Errno> {
        let host = self.read_real(node)?;
        let Some(r) = self.resources_of(id) else {
            return Ok(host);
        };
        r.res.render_block_stat(&host, dev).map_err(|e| {
            log::warn!("cannot render the stat of block device {dev:?} for VPS {id}: {e}");
            Errno::EIO
        })
    }

    /// `file` as reader `reader` of VPS `id` sees it; `host` is the host's text of it. `None`
    /// when the VPS has no cgroup to read (the caller then shows the host's figures, as
    /// LXCFS does for a process it cannot place).
    fn render_resource(
        &self,
        id: VpsId,
        reader: Pid,
        file: ResFile,
        host: &[u8],
    ) -> Result<Option<Vec<u8>>, Errno> {
        let Some(r) = self.resources_of(id) else {
            return Ok(None);
        };
        // Only `loadavg` and `stat` count the VPS's tasks: the members reaped since the
        // last look are released (a look at each) for them alone.
        let counts_tasks = matches!(file, ResFile::Loadavg | ResFile::Stat);
        let follows = self.follows_events();
        let (last_pid, threads, forks) = {
            let mut tracker = lock(&self.shared.tracker);
            let threads = match counts_tasks {
                true => Some(tracker.threads_now(id).ok_or(Errno::ENOENT)?),
                false => None,
            };
            let vps = tracker.vps(id).ok_or(Errno::ENOENT)?;
            // Forks are counted from the events; rescans would miss the short-lived.
            let forks = tracker.forks(id).filter(|_| follows && counts_tasks);
            // A reader in a pid namespace nested in the VPS's is told its own's.
            let last = match file {
                ResFile::Loadavg => tracker.nested_last_pid(id, reader),
                _ => None,
            }
            .unwrap_or_else(|| vps.last_vpid());
            (last, threads, forks)
        };
        // The clock the reader is shown is its own time namespace's ([`super::timens`]).
        let reader_offset_ns = match file {
            ResFile::Uptime | ResFile::Stat if reader > 0 => {
                let vps = r.time_ns.map(|ns| (ns, r.boot_offset_ns));
                self.reader_boot_offset_near(reader, vps)
            }
            _ => r.boot_offset_ns,
        };
        // The renderers count from the daemon's clock: offsets are the kernel's, from
        // the host's, so a daemon in a time namespace of its own (a VPS in a VPS)
        // shifts them by its own.
        let own = super::timens::own_offset();
        let facts = VpsFacts {
            boot_offset_ns: r.boot_offset_ns.saturating_sub(own),
            reader_offset_ns: reader_offset_ns.saturating_sub(own),
            start_boottime_ns: r.start_boottime_ns,
            last_pid,
            // All threads: the members of now (running and blocked: counts()).
            threads: threads.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            forks,
            reader: (reader > 0).then_some(reader),
        };
        r.res
            .render(file, host, &facts, resources::boottime_now_ns())
            .map(Some)
            .map_err(|e| {
                log::warn!("cannot render {} for VPS {id}: {e}", file.name());
                Errno::EIO
            })
    }

    /// Samples the load of every VPS that has a resource view (every 5 s, from the
    /// daemon's sampler thread).
    pub fn sample_loads(&self) {
        let all: Vec<Arc<VpsRes>> = lock(&self.shared.resources)
            .by_vps
            .values()
            .cloned()
            .collect();
        let now = resources::boottime_now_ns();
        for r in all {
            r.res.sample_load(now, r.start_boottime_ns);
        }
    }

    /// Forgets the resource view of a VPS that is gone.
    pub fn drop_resources(&self, id: VpsId) {
        lock(&self.shared.resources).by_vps.remove(&id);
    }
}
