//! The virtual global files (SPEC section 5) in the view: `meminfo`, `cpuinfo`, `stat`,
//! `uptime`, `loadavg`, `swaps`, `diskstats`, `pressure/*` and the CPU `online` list,
//! rendered for a reader of a VPS from that VPS's cgroup ([`crate::resources`]). A reader
//! outside every VPS reads the host's files, passed through.
//!
//! Each VPS's resource state is made once, from its init's cgroup, or handed in by
//! `vprocfs run`, which made the cgroup ([`View::set_resources`]).

use std::sync::Arc;

use crate::engine::{Pid, VpsId};
use crate::resources::{self, CgroupPaths, ResFile, VpsFacts, VpsResources};

use super::{lock, View};

/// A VPS's resource view, with what does not change while the VPS lives.
pub struct VpsRes {
    /// The cgroup's readings and the state kept over time (load average, floors).
    pub res: VpsResources,
    /// The VPS's time-namespace boottime offset (0 without one).
    pub boot_offset_ns: i64,
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
            .map(|ticks| ticks.saturating_mul(1_000_000_000 / crate::host::clock_ticks()))
            .unwrap_or_else(|_| resources::boottime_now_ns());
        VpsRes {
            res: VpsResources::new(paths),
            boot_offset_ns,
            start_boottime_ns,
        }
    }
}

/// The name of the hidden entry of the view's root that serves the CPU `online` list
/// (`/sys/devices/system/cpu/online`, outside `/proc`): reachable by lookup, so that it
/// can be bound over the sysfs file, and never listed.
pub const CPU_ONLINE: &str = ".vprocfs-cpu-online";

/// The virtual file shown at `rel` below the view's root, if any.
pub fn file_at(rel: &str) -> Option<ResFile> {
    ResFile::ALL.iter().copied().find(|f| view_name(*f) == rel)
}

/// Where resource file `f` is in the view, below its root.
pub fn view_name(f: ResFile) -> &'static str {
    match f {
        ResFile::CpuOnline => CPU_ONLINE,
        f => f.name(),
    }
}

impl View {
    /// Installs the resource view of VPS `id` (for `vprocfs run`, which made its cgroup).
    pub fn set_resources(&self, id: VpsId, res: VpsRes) {
        lock(&self.resources).insert(id, Arc::new(res));
    }

    /// The resource view of VPS `id`, made from its init's cgroup on first use.
    fn resources_of(&self, id: VpsId) -> Option<Arc<VpsRes>> {
        if let Some(r) = lock(&self.resources).get(&id) {
            return Some(Arc::clone(r));
        }
        let init = lock(&self.tracker).vps(id)?.init_pid();
        let paths = match CgroupPaths::of_pid(init) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot find the cgroup of VPS {id}'s init {init}: {e}");
                return None;
            }
        };
        let made = Arc::new(VpsRes::new(init, paths));
        Some(Arc::clone(lock(&self.resources).entry(id).or_insert(made)))
    }

    /// `file` as a reader of VPS `id` sees it; `host` is the host's text of it. `None`
    /// when the VPS has no cgroup to read (the caller then shows the host's figures, as
    /// LXCFS does for a process it cannot place).
    pub(super) fn render_resource(
        &self,
        id: VpsId,
        file: ResFile,
        host: &[u8],
    ) -> Result<Option<Vec<u8>>, i32> {
        let Some(r) = self.resources_of(id) else {
            return Ok(None);
        };
        let last_pid = lock(&self.tracker).vps(id).ok_or(libc::ENOENT)?.last_vpid();
        let facts = VpsFacts {
            boot_offset_ns: r.boot_offset_ns,
            start_boottime_ns: r.start_boottime_ns,
            last_pid,
            // Running and total threads: the sampler's count, from the cgroup.
            tasks: None,
            forks: None,
        };
        r.res
            .render(file, host, &facts, resources::boottime_now_ns())
            .map(Some)
            .map_err(|e| {
                log::warn!("cannot render {} for VPS {id}: {e}", file.name());
                libc::EIO
            })
    }

    /// Samples the load of every VPS that has a resource view (every 5 s, from the
    /// daemon's sampler thread).
    pub fn sample_loads(&self) {
        let all: Vec<Arc<VpsRes>> = lock(&self.resources).values().cloned().collect();
        let now = resources::boottime_now_ns();
        for r in all {
            r.res.sample_load(now);
        }
    }

    /// Forgets the resource view of a VPS that is gone.
    pub fn drop_resources(&self, id: VpsId) {
        lock(&self.resources).remove(&id);
    }
}
