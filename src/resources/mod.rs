//! Resource views: the *virtual global files* a VPS reads instead of the host's
//! (SPEC section 5): `meminfo`, `cpuinfo`, `stat`, `uptime`, `loadavg`, `swaps`,
//! `diskstats`, `vmstat`, `pressure/{cpu,memory,io}` and
//! `/sys/devices/system/cpu/online`, each computed from the reader's VPS's cgroup, and
//! the cgroup `vprocfs run` makes for a VPS ([`VpsCgroup`]) with limits the kernel
//! enforces.
//!
//! The layout keeps I/O apart from text: [`cgroup`] reads cgroup files into plain
//! structs (each file parsed in one place); one pure renderer per file family
//! (`meminfo`, `cpuinfo`, `stat`, `uptime`, `loadavg`, `swaps`, `diskstats`,
//! `vmstat`, `pressure`, `cpus`) turns the host's text and those structs into the
//! VPS's text, with no I/O and no clock, and keeps the kernel's exact format and line
//! order so every parser keeps working; [`VpsResources`] ties them to one VPS and
//! holds what must outlive a read: the load average and the floors that keep counters
//! monotonic.
//!
//! What each file shows, and where it differs from LXCFS, is in each renderer's
//! documentation; in short:
//!
//! - CPUs: the visible CPUs are the effective cpuset ∩ the host's online CPUs, at
//!   most ⌈quota/period⌉ of them (the first ones), renumbered from 0 (`cpus`).
//! - `meminfo`: MemTotal = min(effective limit, host); free and available from the
//!   usage and `memory.stat`, never above the host's; lines the cgroup cannot know
//!   keep the host's value clamped to MemTotal (`meminfo`).
//! - `stat` and `uptime` use one clock, the reader's `CLOCK_BOOTTIME` (host boottime +
//!   the VPS's time-namespace offset): with a time namespace it is the VPS's age,
//!   without one the host's uptime, and either way it agrees with the start times
//!   the kernel writes in `/proc/<pid>/stat` for that reader (LXCFS's #164, #189:
//!   its uptime is the container's age while the kernel's start times count from
//!   the host's boot). idle is the elapsed time × CPUs − the VPS's CPU time, so a
//!   busy process shows its real share in `top` and `ps` (LXCFS's #444).
//! - `loadavg`: the kernel's own fixed-point averages over the VPS's R + D threads,
//!   fed by the caller's sampler every 5 s ([`VpsResources::sample_load`]); the
//!   last field is the VPS's last pid, never the host's. Sampling is one small read
//!   per thread of the VPS on the caller's sampler thread, measured at 0.65 % of one
//!   CPU for 10,000 threads (LXCFS's #407: its load average thread is CPU-hungry on
//!   large hosts).
//! - `vmstat`: the cgroup's own event counters (`pgfault`, `pswpin`…) from
//!   `memory.stat`, its memory gauges in the kernel's units, `pgpgin`/`pgpgout` from its
//!   block I/O, the host-wide rest as it is (`vmstat`).
//! - cgroup v2 first (`memory.max`, `memory.stat`, `cpu.max`, `cpuset.cpus.effective`,
//!   `io.stat`, `cpu.stat`, PSI), v1 where the VPS has no v2 counterpart (a hybrid
//!   host): v1 memory, cpu, cpuacct, cpuset, blkio.
//! - Counters never go back, also across a daemon restart: [`VpsResources::floors`]
//!   and [`VpsResources::restore_floors`].

pub mod cgroup;
pub mod cpuinfo;
pub mod cpus;
pub mod diskstats;
pub mod irqs;
pub mod loadavg;
pub mod meminfo;
pub mod pressure;
mod rt_budget;
pub mod stat;
pub mod swaps;
pub mod uptime;
pub mod vmstat;
pub mod vpscgroup;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use cgroup::{CgDir, CgroupPaths, TaskCounts};
pub use cpus::CpuSet;
pub use loadavg::LoadAvg;
pub use vpscgroup::{parse_size, Limits, VpsCgroup};

use crate::host;

/// A resource view failed: the host's text or a cgroup file is not what the kernel
/// writes, or a cgroup file cannot be read (the VPS's cgroup was removed).
#[derive(Debug, thiserror::Error)]
pub enum ResError {
    #[error("{file}: unexpected text: {what}")]
    Malformed { file: &'static str, what: String },
    #[error("{}: {what}", path.display())]
    Cgroup { path: PathBuf, what: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Which virtual file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResFile {
    Meminfo,
    Cpuinfo,
    Stat,
    Uptime,
    Loadavg,
    Swaps,
    Diskstats,
    Vmstat,
    PressureCpu,
    PressureMemory,
    PressureIo,
    Interrupts,
    Softirqs,
    CpuOnline,
    CpuPossible,
    CpuPresent,
}

impl ResFile {
    /// Every virtual file, for the FUSE table and the placement.
    pub const ALL: &'static [ResFile] = &[
        ResFile::Meminfo,
        ResFile::Cpuinfo,
        ResFile::Stat,
        ResFile::Uptime,
        ResFile::Loadavg,
        ResFile::Swaps,
        ResFile::Diskstats,
        ResFile::Vmstat,
        ResFile::PressureCpu,
        ResFile::PressureMemory,
        ResFile::PressureIo,
        ResFile::Interrupts,
        ResFile::Softirqs,
        ResFile::CpuOnline,
        ResFile::CpuPossible,
        ResFile::CpuPresent,
    ];

    /// Whether the file is made from the host's text (the others are computed from the
    /// cgroup and the clock alone, and the host's file need not be read).
    pub fn needs_host_text(self) -> bool {
        !matches!(self, ResFile::Uptime | ResFile::Loadavg)
    }

    /// Where the host's own text is read: below `/proc`, or in sysfs for the CPU lists.
    /// It is also where the view is bind-mounted.
    pub fn host_path(self) -> &'static str {
        match self {
            ResFile::Meminfo => "/proc/meminfo",
            ResFile::Cpuinfo => "/proc/cpuinfo",
            ResFile::Stat => "/proc/stat",
            ResFile::Uptime => "/proc/uptime",
            ResFile::Loadavg => "/proc/loadavg",
            ResFile::Swaps => "/proc/swaps",
            ResFile::Diskstats => "/proc/diskstats",
            ResFile::Vmstat => "/proc/vmstat",
            ResFile::PressureCpu => "/proc/pressure/cpu",
            ResFile::PressureMemory => "/proc/pressure/memory",
            ResFile::PressureIo => "/proc/pressure/io",
            ResFile::Interrupts => "/proc/interrupts",
            ResFile::Softirqs => "/proc/softirqs",
            ResFile::CpuOnline => cgroup::HOST_ONLINE,
            ResFile::CpuPossible => "/sys/devices/system/cpu/possible",
            ResFile::CpuPresent => "/sys/devices/system/cpu/present",
        }
    }

    /// One of sysfs's CPU lists (`online`, `possible`, `present`), outside `/proc`: the
    /// VPS's CPUs, numbered from 0, in each. glibc's `get_nprocs_conf` and
    /// `sysconf(_SC_NPROCESSORS_CONF)` read `possible`, `lscpu` all three; with only
    /// `online` shown, a VPS of one CPU counted the host's CPUs as configured, the
    /// others off line.
    pub fn is_cpu_list(self) -> bool {
        matches!(
            self,
            ResFile::CpuOnline | ResFile::CpuPossible | ResFile::CpuPresent
        )
    }

    /// The file's name: its path below `/proc` ("meminfo", "pressure/cpu"), or for a
    /// CPU list "cpu_online", "cpu_possible", "cpu_present".
    pub fn name(self) -> &'static str {
        match self {
            ResFile::CpuOnline => "cpu_online",
            ResFile::CpuPossible => "cpu_possible",
            ResFile::CpuPresent => "cpu_present",
            f => f.host_path().trim_start_matches("/proc/"),
        }
    }
}

/// Up to this many threads a VPS's running and blocked threads are counted at each read
/// of `loadavg` and `stat` (a `pread` of each one's kept `stat`, ~3.3 µs: under 1 ms);
/// a larger one shows the load sampler's count, taken every 5 s.
pub const LIVE_COUNT_MAX: u32 = 256;

/// Everything the renderers need about one VPS beyond its cgroup, supplied by the
/// caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpsFacts {
    /// The VPS's time-namespace boottime offset in ns (0 without one; see
    /// [`boot_offset_of`]), from the clock the daemon reads ("host" below): the
    /// kernel's offset less the daemon's own, where the daemon has a time namespace.
    pub boot_offset_ns: i64,
    /// The reader's time-namespace boottime offset in ns: the VPS's, unless the reader
    /// made or joined one of its own (`unshare -T`). procfs shifts by it the clock it
    /// shows (`uptime`'s first field, `stat`'s `btime`), not the CPU times, which stay
    /// the VPS's.
    pub reader_offset_ns: i64,
    /// The VPS's start (its init's start) in host `CLOCK_BOOTTIME` ns.
    pub start_boottime_ns: u64,
    /// The last pid handed out in the VPS, for loadavg's last field.
    pub last_pid: i32,
    /// The VPS's threads now, when the caller knows them (the view: its members, with
    /// the events queued before the read applied), for the totals of `loadavg` and
    /// `stat`; else the sampler's count, up to a period old. The kernel's
    /// `nr_threads` counts a fork at once, and a reader that starts ten processes and
    /// reads `loadavg` sees them there.
    pub threads: Option<u32>,
    /// Forks since the VPS started, for `processes` in stat; else the thread count.
    pub forks: Option<u64>,
    /// The reader's thread: counted among the running when the running are counted at
    /// the read, whatever state it is found in on its way to waiting for the reply.
    pub reader: Option<i32>,
}

/// The floors (last values shown) of one VPS and its load average, to persist across
/// a daemon restart and restore, so that counters never go back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floors {
    #[serde(default)]
    pub stat: stat::StatFloors,
    #[serde(default)]
    pub uptime_idle_ns: u64,
    #[serde(default)]
    pub disks: diskstats::DiskFloors,
    #[serde(default)]
    pub load: LoadAvg,
}

struct State {
    load: LoadAvg,
    /// When the load was last folded (host boottime ns); `None` before the first
    /// sample.
    last_sample_ns: Option<u64>,
    /// The load average was restored from a daemon before this one
    /// ([`VpsResources::restore_floors`]): its history goes on from the first sample.
    load_restored: bool,
    counts: Option<TaskCounts>,
    floors: Floors,
}

/// One VPS's resource state: its cgroup, the load average it keeps, and the floors
/// that keep its counters monotonic. Shared by every reader thread.
pub struct VpsResources {
    paths: CgroupPaths,
    state: Mutex<State>,
    /// The CPU limits and the host's online CPUs, read at most every [`LIMITS_TTL`]:
    /// they change rarely, and reading them walks the cgroup's ancestors (two files a
    /// level), which was most of the cost of an open of `uptime` or `stat`.
    limits: Mutex<Option<(std::time::Instant, CpuLimits)>>,
    /// The sampler's buffers, apart from `state` so that a sample (tens of ms at
    /// 10,000 threads) never blocks a reader.
    scratch: Mutex<cgroup::Scratch>,
}

/// How long the CPU limits read for a VPS are used before they are read again: a
/// change of the cpuset or the quota shows within this time.
pub const LIMITS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// What decides which CPUs a VPS sees.
#[derive(Clone, Debug)]
struct CpuLimits {
    cpuset: Option<CpuSet>,
    quota: Option<cpus::Quota>,
    host_online: CpuSet,
}

// A panic elsewhere must not take every later read down with it: the state is plain
// numbers, valid whatever the panic interrupted.
use crate::sync::lock;

impl VpsResources {
    pub fn new(paths: CgroupPaths) -> VpsResources {
        VpsResources {
            paths,
            state: Mutex::new(State {
                load: LoadAvg::default(),
                last_sample_ns: None,
                load_restored: false,
                counts: None,
                floors: Floors::default(),
            }),
            scratch: Mutex::new(cgroup::Scratch::default()),
            limits: Mutex::new(None),
        }
    }

    /// The CPU limits, read again when older than [`LIMITS_TTL`].
    fn cpu_limits(&self) -> Result<CpuLimits, ResError> {
        let now = std::time::Instant::now();
        if let Some((at, l)) = &*lock(&self.limits) {
            if now.duration_since(*at) < LIMITS_TTL {
                return Ok(l.clone());
            }
        }
        let (cpuset, quota) = cgroup::read_cpu_limits(&self.paths)?;
        let l = CpuLimits {
            cpuset,
            quota,
            host_online: cgroup::read_host_online()?,
        };
        *lock(&self.limits) = Some((now, l.clone()));
        Ok(l)
    }

    /// The host CPUs the VPS sees, ascending: the N-th is the VPS's CPU N, in every file
    /// that numbers them. Placement shows sysfs's `cpuN` directories by it.
    pub fn visible_host_cpus(&self) -> Result<CpuSet, ResError> {
        let l = self.cpu_limits()?;
        Ok(cpus::visible(l.cpuset.as_ref(), l.quota, &l.host_online))
    }

    /// The CPUs the VPS sees, of those in `online` (the host's, as its file lists them).
    fn visible(&self, online: &CpuSet) -> Result<CpuSet, ResError> {
        let l = self.cpu_limits()?;
        Ok(cpus::visible(l.cpuset.as_ref(), l.quota, online))
    }

    /// (running, blocked, total) to show. The total is the caller's where it has one
    /// (the threads of now). Running and blocked threads are counted at the read in a
    /// VPS of at most [`LIVE_COUNT_MAX`] threads, as the kernel's are of the moment
    /// (`vmstat 1`'s `r` column, `loadavg`'s running), the reader among the running
    /// (it waits for this reply asleep; procfs's reader is running); above that, and
    /// without a total, they are the sampler's, up to a period old. Never more than
    /// the total, and at least 1 running: the reader.
    fn counts(&self, facts: &VpsFacts) -> TaskCounts {
        let Some(now) = facts.threads else {
            let sampled = self.sampled_counts();
            let running = sampled.running.max(1);
            return TaskCounts {
                running,
                blocked: sampled.blocked,
                total: sampled.total.max(running + sampled.blocked),
            };
        };
        let (running, blocked) = if now <= LIVE_COUNT_MAX {
            let live = cgroup::count_tasks(&self.paths, &mut lock(&self.scratch), facts.reader);
            (live.running + 1, live.blocked)
        } else {
            let sampled = self.sampled_counts();
            (sampled.running.max(1), sampled.blocked)
        };
        let total = now.max(1);
        let running = running.min(total);
        TaskCounts {
            running,
            blocked: blocked.min(total - running),
            total,
        }
    }

    /// sysfs's `stat` of block device `dev` ("major:minor") as the VPS sees it, from
    /// the host's text `host` ([`diskstats::render_sysfs_stat`]), with the floors of
    /// the device's line in `diskstats`, so that the two agree.
    pub fn render_block_stat(&self, host: &[u8], dev: (u32, u32)) -> Result<Vec<u8>, ResError> {
        self.check_cgroup()?;
        let io = cgroup::read_io(&self.paths)?;
        diskstats::render_sysfs_stat(host, io.as_ref(), dev, &mut lock(&self.state).floors.disks)
    }

    /// An error when the VPS's cgroup is gone. A missing file in a live cgroup means
    /// "controller off, show the host's"; in a removed one it would silently show the
    /// host's figures to a VPS.
    fn check_cgroup(&self) -> Result<(), ResError> {
        match self.paths.dirs().next().map(|d| d.dir()) {
            Some(dir) if !dir.exists() => Err(ResError::Io {
                path: dir,
                source: io::Error::new(io::ErrorKind::NotFound, "the VPS's cgroup is gone"),
            }),
            _ => Ok(()),
        }
    }

    /// Renders `file` for a reader of this VPS: reads the cgroup now (the renderers
    /// stay pure); `host` is the host's text of that file, `now_boottime_ns` the host's
    /// `CLOCK_BOOTTIME`.
    pub fn render(
        &self,
        file: ResFile,
        host: &[u8],
        facts: &VpsFacts,
        now_boottime_ns: u64,
    ) -> Result<Vec<u8>, ResError> {
        let p = &self.paths;
        self.check_cgroup()?;
        match file {
            ResFile::Meminfo => meminfo::render(host, cgroup::read_memory(p)?.as_ref()),
            ResFile::Cpuinfo => {
                let vis = self.visible(&cpuinfo::processors(host)?)?;
                cpuinfo::render(host, &vis)
            }
            ResFile::Interrupts | ResFile::Softirqs => {
                let online = self.cpu_limits()?.host_online;
                irqs::render(host, &self.visible(&online)?)
            }
            ResFile::CpuOnline | ResFile::CpuPossible | ResFile::CpuPresent => {
                let vis = self.visible(&CpuSet::parse(&String::from_utf8_lossy(host))?)?;
                Ok(cpus::render_online(vis.len()))
            }
            ResFile::Stat => {
                let vis = self.visible(&stat::online(host)?)?;
                let usage = cgroup::read_cpu_usage(p)?;
                let counts = self.counts(facts);
                let inp = stat::StatInputs {
                    visible: &vis,
                    usage: usage.as_ref(),
                    elapsed_ns: uptime::reader_boottime(now_boottime_ns, facts.boot_offset_ns),
                    boot_offset_ns: facts.boot_offset_ns,
                    reader_offset_ns: facts.reader_offset_ns,
                    host_boot_wall_ns: host_boot_wall_ns(),
                    running: counts.running,
                    blocked: counts.blocked,
                    processes: facts.forks.unwrap_or(u64::from(counts.total)),
                    forks_counted: facts.forks.is_some(),
                };
                stat::render(host, &inp, &mut lock(&self.state).floors.stat)
            }
            ResFile::Uptime => {
                let online = self.cpu_limits()?.host_online;
                let vis = self.visible(&online)?;
                let usage = cgroup::read_cpu_usage(p)?;
                // The VPS's age counts its idle time; the reader is shown its own clock.
                let age = uptime::reader_boottime(now_boottime_ns, facts.boot_offset_ns);
                let up = uptime::reader_boottime(now_boottime_ns, facts.reader_offset_ns);
                let used = usage.as_ref().map_or(0, cgroup::CpuUsage::total_ns);
                let idle = uptime::idle_ns(age, vis.len(), used);
                let mut st = lock(&self.state);
                let idle = idle.max(st.floors.uptime_idle_ns);
                st.floors.uptime_idle_ns = idle;
                Ok(uptime::render(up, idle))
            }
            ResFile::Loadavg => {
                let counts = self.counts(facts);
                let load = lock(&self.state).load;
                Ok(load.render(counts.running, counts.total, facts.last_pid))
            }
            ResFile::Swaps => {
                let (host_total, _) = swaps::host_totals(host)?;
                let (total, used) = match cgroup::read_memory(p)? {
                    Some(m) => {
                        let t = m.swap_limit.map_or(host_total, |l| l.min(host_total));
                        (t, m.swap_usage.min(t))
                    }
                    None => return Ok(host.to_vec()),
                };
                swaps::render(host, total, used)
            }
            ResFile::Diskstats => {
                let io = cgroup::read_io(p)?;
                diskstats::render(host, io.as_ref(), &mut lock(&self.state).floors.disks)
            }
            ResFile::Vmstat => {
                let mem = cgroup::read_memory(p)?;
                // Without a memory cgroup the host's text: its I/O is not read.
                let io = match mem {
                    Some(_) => cgroup::read_io(p)?,
                    None => None,
                };
                let (page_size, thp_size) = page_sizes();
                let inputs = vmstat::VmstatInputs {
                    mem: mem.as_ref(),
                    io: io.as_ref(),
                    host_mem_total: host_mem_total(),
                    page_size,
                    thp_size,
                };
                vmstat::render(host, &inputs)
            }
            ResFile::PressureCpu => Ok(pressure::render(
                host,
                cgroup::read_pressure(p, "cpu").as_deref(),
            )),
            ResFile::PressureMemory => Ok(pressure::render(
                host,
                cgroup::read_pressure(p, "memory").as_deref(),
            )),
            ResFile::PressureIo => Ok(pressure::render(
                host,
                cgroup::read_pressure(p, "io").as_deref(),
            )),
        }
    }

    /// The sampler's last counts, or, before its first sample (a VPS younger than one
    /// period), counts taken now and kept for the sampler to replace: the kernel's
    /// `loadavg` shows a new task in its total at once, not 1/1 for the first 5 s.
    fn sampled_counts(&self) -> TaskCounts {
        if let Some(c) = lock(&self.state).counts {
            return c;
        }
        let now = cgroup::count_tasks(&self.paths, &mut lock(&self.scratch), None);
        *lock(&self.state).counts.get_or_insert(now)
    }

    /// Called by the caller's sampler thread every 5 s: counts the VPS's R and D
    /// threads and folds them into the load average. The kernel folds every period
    /// from boot on, the first one period after boot: so the first call folds the
    /// periods since the VPS started at `vps_start_ns` (its init's start; none when it
    /// started less than half a period ago), with the threads counted now, unless the
    /// load was restored from the daemon before, whose history goes on from this call.
    /// A late call folds the periods it missed (`calc_load_n`), an early one (under
    /// half a period) only refreshes the counts.
    pub fn sample_load(&self, now_boottime_ns: u64, vps_start_ns: u64) {
        let counts = cgroup::count_tasks(&self.paths, &mut lock(&self.scratch), None);
        let mut st = lock(&self.state);
        st.counts = Some(counts);
        let last = match st.last_sample_ns {
            Some(last) => last,
            None if st.load_restored => {
                st.last_sample_ns = Some(now_boottime_ns);
                return;
            }
            None => vps_start_ns.min(now_boottime_ns),
        };
        let n = loadavg::periods_since(now_boottime_ns.saturating_sub(last));
        if n > 0 {
            let active = u64::from(counts.running) + u64::from(counts.blocked);
            st.load.fold(active, n);
            st.last_sample_ns = Some(now_boottime_ns);
        } else {
            st.last_sample_ns.get_or_insert(last);
        }
    }

    /// The floors and load average to persist.
    pub fn floors(&self) -> Floors {
        let st = lock(&self.state);
        let mut f = st.floors.clone();
        f.load = st.load;
        f
    }

    /// Restores persisted floors (never lowering the current ones) and, before the
    /// first fold of this daemon, the load average, so that a restart neither moves
    /// a counter back nor drops the load to 0.
    pub fn restore_floors(&self, f: Floors) {
        let mut st = lock(&self.state);
        st.floors.stat.merge(&f.stat);
        st.floors.uptime_idle_ns = st.floors.uptime_idle_ns.max(f.uptime_idle_ns);
        for (dev, v) in f.disks {
            let cur = st.floors.disks.entry(dev).or_default();
            for (a, b) in cur.iter_mut().zip(v) {
                *a = (*a).max(b);
            }
        }
        if st.load == LoadAvg::default() && f.load != LoadAvg::default() {
            st.load = f.load;
            st.load_restored = true;
        }
    }
}

/// The boottime offset of process `pid`'s time namespace, in ns, from
/// `/proc/<pid>/timens_offsets` ("boottime <secs> <nsecs>"); 0 when the kernel has
/// no time namespaces.
pub fn boot_offset_of(pid: i32) -> io::Result<i64> {
    match fs::read_to_string(host::proc_path(&format!("{pid}/timens_offsets"))) {
        Ok(text) => {
            parse_timens_offsets(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Pure: the boottime offset in a `timens_offsets` text (clock named "boottime", or
/// by its id 7 as older kernels print it).
pub fn parse_timens_offsets(text: &str) -> Result<i64, String> {
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(clock), Some(secs), Some(nsecs)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if clock != "boottime" && clock != "7" {
            continue;
        }
        let secs: i64 = secs
            .parse()
            .map_err(|_| format!("bad seconds in {line:?}"))?;
        let nsecs: i64 = nsecs
            .parse()
            .map_err(|_| format!("bad nanoseconds in {line:?}"))?;
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(nsecs))
            .ok_or_else(|| format!("offset out of range in {line:?}"));
    }
    Ok(0)
}

/// The host's boot as a wall-clock time in ns, as the kernel's `getboottime64` keeps it:
/// `CLOCK_REALTIME − CLOCK_BOOTTIME`, read back to back.
pub fn host_boot_wall_ns() -> Option<i128> {
    use nix::time::{clock_gettime, ClockId};
    let ns = |t: nix::sys::time::TimeSpec| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    };
    let real = clock_gettime(ClockId::CLOCK_REALTIME).ok()?;
    let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
    Some(ns(real) - ns(boot))
}

/// The host's MemTotal in bytes: `sysinfo(2)`'s total RAM, the figure `/proc/meminfo`
/// prints (both are `totalram_pages()`); no limit when the call fails.
fn host_mem_total() -> u64 {
    nix::sys::sysinfo::sysinfo().map_or(u64::MAX, |i| i.ram_total())
}

/// The kernel's page size and its PMD-sized transparent huge page (HPAGE_PMD_SIZE) in
/// bytes, asked once: `sysconf(_SC_PAGESIZE)` and
/// `/sys/kernel/mm/transparent_hugepage/hpage_pmd_size`. Without THP in the kernel
/// (no such file) a PMD maps page size / 8 pages (one page of 8-byte entries: 2 MiB
/// with 4 KiB pages), and the THP counters are 0 anyway.
fn page_sizes() -> (u64, u64) {
    static SIZES: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *SIZES.get_or_init(|| {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(4096);
        let thp = fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(page * (page / 8));
        (page, thp)
    })
}

/// The host's `CLOCK_BOOTTIME` in ns.
pub fn boottime_now_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => {
            let ns = i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec());
            u64::try_from(ns).unwrap_or(0)
        }
        // CLOCK_BOOTTIME exists since Linux 2.6.39; this cannot fail there.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests;
