//! Reading a VPS's cgroup: the only I/O of the resource views.
//!
//! Every cgroup file is parsed here, once, into a plain struct that the pure renderers
//! take. cgroup v2 comes first; the v1 controllers are used where the VPS has no v2
//! counterpart (a hybrid host mounts v1 controllers next to a v2 hierarchy that may
//! have none, yet every v2 cgroup still has `cpu.stat` and the PSI files).
//!
//! A VPS whose cgroup in a hierarchy is that hierarchy's root is the host as far as
//! that hierarchy goes, so root directories are dropped: the view then shows the
//! host's figures for what they would have given.
//!
//! Effective limits are the minimum up the hierarchy: v1 memory gives it directly
//! (`hierarchical_memory_limit`, `hierarchical_memsw_limit` in `memory.stat`); v2
//! `memory.max`, `memory.swap.max`, `cpu.max` and v1's CFS quota are walked up to the
//! root; cpusets are read from their `effective` files, which the kernel already
//! restricts to the parent's.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::cpus::{CpuSet, Quota};
use super::ResError;
use crate::host;
use crate::membership::cgroup::hierarchy_mount;

/// The v1 controllers a view or a limit uses.
pub const V1_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"];

/// One cgroup directory: the hierarchy's mount point and the cgroup's path in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgDir {
    /// Where the hierarchy is mounted.
    pub mount: PathBuf,
    /// The cgroup's path from the hierarchy's root, starting with `/`.
    pub path: String,
}

impl CgDir {
    /// The directory.
    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// This cgroup and each ancestor, deepest first, without the hierarchy's root
    /// (whose limit files do not exist).
    fn lineage(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut p = self.path.trim_end_matches('/').to_string();
        while !p.is_empty() && p != "/" {
            out.push(self.mount.join(p.trim_start_matches('/')));
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => break,
            }
        }
        out
    }

    fn is_root(&self) -> bool {
        self.path.trim_end_matches('/').is_empty()
    }
}

/// A VPS's cgroup: its directory in the v2 hierarchy and in each v1 controller
/// hierarchy that matters. `None` where the hierarchy is not mounted or the VPS sits
/// in its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    pub v2: Option<CgDir>,
    pub memory: Option<CgDir>,
    pub cpu: Option<CgDir>,
    pub cpuacct: Option<CgDir>,
    pub cpuset: Option<CgDir>,
    pub pids: Option<CgDir>,
    pub blkio: Option<CgDir>,
}

impl CgroupPaths {
    /// The cgroup of process `pid`, from its `/proc/<pid>/cgroup` and the daemon's
    /// `mountinfo`.
    pub fn of_pid(pid: i32) -> io::Result<CgroupPaths> {
        let cgroup = fs::read_to_string(host::proc_path(&format!("{pid}/cgroup")))?;
        let mountinfo = fs::read_to_string(host::proc_path("self/mountinfo"))?;
        Ok(CgroupPaths::from_texts(&cgroup, &mountinfo, false).reachable())
    }

    /// These directories less those that cannot be reached from here: a hierarchy
    /// whose mount another covers (a file system mounted over `/sys` hides every
    /// cgroup mount below it, which `mountinfo` still lists) has nothing to read, and
    /// the files it would have fed show the host's figures.
    fn reachable(mut self) -> CgroupPaths {
        for slot in self.slots_mut() {
            if slot.as_ref().is_some_and(|d| !d.dir().is_dir()) {
                *slot = None;
            }
        }
        self
    }

    /// Pure: the directories named by a `/proc/<pid>/cgroup` text, in the hierarchies
    /// mounted as `mountinfo` says. Root directories are kept only with `keep_root`.
    pub fn from_texts(cgroup: &str, mountinfo: &str, keep_root: bool) -> CgroupPaths {
        let mut out = CgroupPaths::default();
        let mount_of = |controller: Option<&str>| {
            mountinfo
                .lines()
                .find_map(|l| hierarchy_mount(l, controller))
        };
        for line in cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                continue;
            }
            if id == "0" && controllers.is_empty() {
                if let Some(mount) = mount_of(None) {
                    out.v2 = Some(CgDir {
                        mount,
                        path: path.to_string(),
                    });
                }
                continue;
            }
            for c in controllers.split(',') {
                let Some(slot) = out.slot_mut(c) else {
                    continue;
                };
                if let Some(mount) = mount_of(Some(c)) {
                    *slot = Some(CgDir {
                        mount,
                        path: path.to_string(),
                    });
                }
            }
        }
        if !keep_root {
            for slot in out.slots_mut() {
                if slot.as_ref().is_some_and(CgDir::is_root) {
                    *slot = None;
                }
            }
        }
        out
    }

    /// The slot of a v1 controller.
    pub(crate) fn slot_mut(&mut self, controller: &str) -> Option<&mut Option<CgDir>> {
        Some(match controller {
            "memory" => &mut self.memory,
            "cpu" => &mut self.cpu,
            "cpuacct" => &mut self.cpuacct,
            "cpuset" => &mut self.cpuset,
            "pids" => &mut self.pids,
            "blkio" => &mut self.blkio,
            _ => return None,
        })
    }

    fn slots_mut(&mut self) -> [&mut Option<CgDir>; 7] {
        [
            &mut self.v2,
            &mut self.memory,
            &mut self.cpu,
            &mut self.cpuacct,
            &mut self.cpuset,
            &mut self.pids,
            &mut self.blkio,
        ]
    }

    /// Every directory, v2 first.
    pub fn dirs(&self) -> impl Iterator<Item = &CgDir> {
        [
            &self.v2,
            &self.memory,
            &self.cpu,
            &self.cpuacct,
            &self.cpuset,
            &self.pids,
            &self.blkio,
        ]
        .into_iter()
        .flatten()
    }

    /// The directory whose task list (with its descendants') is the VPS's threads,
    /// and the name of that list: v2's `cgroup.threads`, else a v1 `tasks`.
    fn task_list(&self) -> Option<(PathBuf, &'static str)> {
        if let Some(d) = &self.v2 {
            return Some((d.dir(), "cgroup.threads"));
        }
        [
            &self.pids,
            &self.cpu,
            &self.cpuacct,
            &self.memory,
            &self.cpuset,
            &self.blkio,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|d| (d.dir(), "tasks"))
    }
}

// ---------------------------------------------------------------------------------
// Parsers (pure), one per cgroup file format.

/// "key value" lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`); lines that do not
/// parse are skipped, so a kernel adding a key or a non-numeric value breaks nothing.
pub fn parse_flat_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let (k, v) = l.split_once(' ')?;
        Some((k, v.trim().parse().ok()?))
    })
}

/// v1 writes "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB
/// pages, other values on other page sizes); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

fn v1_limit(v: u64) -> Option<u64> {
    (v < V1_UNLIMITED).then_some(v)
}

/// `memory.max`-style files: "max" or a number of bytes.
pub fn parse_max(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|_| format!("expected \"max\" or a number, got {t:?}")),
    }
}

/// v2 `cpu.max`: "max 100000" or "50000 100000".
pub fn parse_cpu_max(text: &str) -> Result<Option<Quota>, String> {
    let mut it = text.split_whitespace();
    let (Some(q), p) = (it.next(), it.next()) else {
        return Err("empty".into());
    };
    let period_us = match p {
        Some(p) => p.parse().map_err(|_| format!("bad period {p:?}"))?,
        None => 100_000,
    };
    if q == "max" {
        return Ok(None);
    }
    let quota_us = q.parse().map_err(|_| format!("bad quota {q:?}"))?;
    Ok(Some(Quota {
        quota_us,
        period_us,
    }))
}

/// What `memory.stat` says, with v1's `total_*` (hierarchical) keys and v2's keys
/// brought to the same names. All sizes in bytes; `None` when the file lacks the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStat {
    pub anon: Option<u64>,
    pub file: Option<u64>,
    pub kernel_stack: Option<u64>,
    pub pagetables: Option<u64>,
    pub sec_pagetables: Option<u64>,
    pub percpu: Option<u64>,
    pub shmem: Option<u64>,
    pub zswap: Option<u64>,
    pub zswapped: Option<u64>,
    pub file_mapped: Option<u64>,
    pub file_dirty: Option<u64>,
    pub file_writeback: Option<u64>,
    pub swapcached: Option<u64>,
    pub anon_thp: Option<u64>,
    pub file_thp: Option<u64>,
    pub shmem_thp: Option<u64>,
    pub inactive_anon: Option<u64>,
    pub active_anon: Option<u64>,
    pub inactive_file: Option<u64>,
    pub active_file: Option<u64>,
    pub unevictable: Option<u64>,
    pub slab_reclaimable: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
    /// The counters (not sizes) by name, for `/proc/vmstat`, whose lines of the same
    /// name count the same events host-wide (`pgfault`, `pgmajfault`, `pgscan_kswapd`,
    /// `workingset_refault_file`, `thp_fault_alloc`, `pswpin`, …: whatever this kernel
    /// writes). v1's hierarchical `total_<key>` is kept under `<key>`, over the
    /// cgroup's own; v1's `pgpgin`/`pgpgout` are left out: they count pages charged
    /// and uncharged, where vmstat's count KiB read from and written to block devices.
    pub events: BTreeMap<String, u64>,
}

/// `memory.stat` keys that are sizes in bytes (v2's `memory_stats[]` entries printed
/// with a page or byte unit), never counters: left out of [`MemStat::events`].
/// `workingset_nodes` is not in `memory.stat` today; the kernel keeps it in pages, so
/// `memory.stat` would print it in bytes, as it does every other page-unit gauge.
const V2_SIZES: &[&str] = &[
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "hugetlb",
    "workingset_nodes",
];

/// v1 `memory.stat` keys that are sizes in bytes (and their `total_` forms).
const V1_SIZES: &[&str] = &[
    "cache",
    "rss",
    "rss_huge",
    "shmem",
    "mapped_file",
    "dirty",
    "writeback",
    "swap",
    "swapcached",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
];

/// The counters of a parsed `memory.stat` (see [`MemStat::events`]).
fn memory_events(map: &BTreeMap<&str, u64>, v1: bool) -> BTreeMap<String, u64> {
    let sizes = if v1 { V1_SIZES } else { V2_SIZES };
    let counter = |k: &str| {
        !sizes.contains(&k)
            && !(v1 && (k == "pgpgin" || k == "pgpgout" || k.starts_with("hierarchical_")))
    };
    let mut out = BTreeMap::new();
    // The cgroup's own keys first, then v1's hierarchical totals over them.
    for (&k, &v) in map {
        if !(v1 && k.starts_with("total_")) && counter(k) {
            out.insert(k.to_string(), v);
        }
    }
    if v1 {
        for (&k, &v) in map {
            if let Some(k) = k.strip_prefix("total_").filter(|k| counter(k)) {
                out.insert(k.to_string(), v);
            }
        }
    }
    out
}

/// `memory.stat` parsed: the common stat plus v1's hierarchical limits and swap use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedMemoryStat {
    pub stat: MemStat,
    /// v1: the memory limit, minimum up the hierarchy (`None`: unlimited or absent).
    pub hierarchical_memory_limit: Option<u64>,
    /// v1: the memory + swap limit, minimum up the hierarchy.
    pub hierarchical_memsw_limit: Option<u64>,
    /// v1: swap in use by the cgroup and below (`total_swap`).
    pub swap: Option<u64>,
}

/// Parses `memory.stat` of either version. On v1 the hierarchical `total_*` keys are
/// taken (the cgroup and its descendants, like v2's figures), falling back to the
/// cgroup's own keys on kernels without them.
pub fn parse_memory_stat(text: &str, v1: bool) -> ParsedMemoryStat {
    let map: BTreeMap<&str, u64> = parse_flat_keyed(text).collect();
    let mut out = ParsedMemoryStat::default();
    let s = &mut out.stat;
    s.events = memory_events(&map, v1);
    if v1 {
        let get = |k: &str| {
            map.get(format!("total_{k}").as_str())
                .or_else(|| map.get(k))
                .copied()
        };
        s.anon = get("rss");
        s.file = get("cache");
        s.shmem = get("shmem");
        s.file_mapped = get("mapped_file");
        s.file_dirty = get("dirty");
        s.file_writeback = get("writeback");
        s.swapcached = get("swapcached");
        s.anon_thp = get("rss_huge");
        s.inactive_anon = get("inactive_anon");
        s.active_anon = get("active_anon");
        s.inactive_file = get("inactive_file");
        s.active_file = get("active_file");
        s.unevictable = get("unevictable");
        out.swap = get("swap");
        out.hierarchical_memory_limit = map
            .get("hierarchical_memory_limit")
            .copied()
            .and_then(v1_limit);
        out.hierarchical_memsw_limit = map
            .get("hierarchical_memsw_limit")
            .copied()
            .and_then(v1_limit);
    } else {
        let get = |k: &str| map.get(k).copied();
        s.anon = get("anon");
        s.file = get("file");
        s.kernel_stack = get("kernel_stack");
        s.pagetables = get("pagetables");
        s.sec_pagetables = get("sec_pagetables");
        s.percpu = get("percpu");
        s.shmem = get("shmem");
        s.zswap = get("zswap");
        s.zswapped = get("zswapped");
        s.file_mapped = get("file_mapped");
        s.file_dirty = get("file_dirty");
        s.file_writeback = get("file_writeback");
        s.swapcached = get("swapcached");
        s.anon_thp = get("anon_thp");
        s.file_thp = get("file_thp");
        s.shmem_thp = get("shmem_thp");
        s.inactive_anon = get("inactive_anon");
        s.active_anon = get("active_anon");
        s.inactive_file = get("inactive_file");
        s.active_file = get("active_file");
        s.unevictable = get("unevictable");
        s.slab_reclaimable = get("slab_reclaimable");
        s.slab_unreclaimable = get("slab_unreclaimable");
    }
    out
}

/// CPU time used by the cgroup and below, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// User time, nice time excluded.
    pub user_ns: u64,
    pub nice_ns: u64,
    pub system_ns: u64,
    /// (user, system) per host CPU number, when the hierarchy splits it (v1 cpuacct).
    pub per_cpu: Option<Vec<(u64, u64)>>,
}

impl CpuUsage {
    pub fn total_ns(&self) -> u64 {
        self.user_ns + self.nice_ns + self.system_ns
    }
}

/// v2 `cpu.stat` (µs). `user_usec` includes nice time, which 6.6+ also reports alone.
pub fn parse_cpu_stat_v2(text: &str) -> Result<CpuUsage, String> {
    let map: BTreeMap<&str, u64> = parse_flat_keyed(text).collect();
    let get = |k: &str| {
        map.get(k)
            .copied()
            .ok_or_else(|| format!("no {k} in cpu.stat"))
    };
    let user = get("user_usec")?;
    let system = get("system_usec")?;
    let nice = map.get("nice_usec").copied().unwrap_or(0).min(user);
    Ok(CpuUsage {
        user_ns: (user - nice).saturating_mul(1000),
        nice_ns: nice.saturating_mul(1000),
        system_ns: system.saturating_mul(1000),
        per_cpu: None,
    })
}

/// v1 `cpuacct.usage_percpu_user` + `_sys`: nanoseconds per possible CPU; with
/// `cpuacct.usage_percpu` (`total`), each CPU's time is that precise total, split in
/// the ratio of the other two.
///
/// The kernel fills `_user` and `_sys` from its tick samples (`cpustat`: a whole tick
/// to whatever runs when it fires) and `usage_percpu` from the scheduler's exact
/// runtime. Under load the samples stray far from the runtime: a busy loop held to
/// half a CPU beside two fork loops was sampled 137 ticks for 100 run, and the VPS's
/// `stat` showed more CPU time than its quota allows. The kernel's own `cpuacct.stat`
/// and a task's `utime`/`stime` scale the samples to the runtime the same way
/// (`cputime_adjust`).
pub fn parse_percpu(user: &str, sys: &str, total: Option<&str>) -> Result<CpuUsage, String> {
    let nums = |t: &str| -> Result<Vec<u64>, String> {
        t.split_whitespace()
            .map(|n| n.parse().map_err(|_| format!("bad number {n:?}")))
            .collect()
    };
    let (u, s) = (nums(user)?, nums(sys)?);
    if u.len() != s.len() {
        return Err("usage_percpu_user and _sys disagree on the CPU count".into());
    }
    let mut per_cpu: Vec<(u64, u64)> = u.into_iter().zip(s).collect();
    if let Some(total) = total {
        let t = nums(total)?;
        if t.len() != per_cpu.len() {
            return Err("usage_percpu and usage_percpu_user disagree on the CPU count".into());
        }
        for (split, runtime) in per_cpu.iter_mut().zip(t) {
            *split = adjust(*split, runtime);
        }
    }
    Ok(CpuUsage {
        user_ns: per_cpu.iter().map(|c| c.0).sum(),
        nice_ns: 0,
        system_ns: per_cpu.iter().map(|c| c.1).sum(),
        per_cpu: Some(per_cpu),
    })
}

/// Sampled (user, system) scaled to `runtime`, as the kernel's `cputime_adjust`: all
/// of it to the one side when the other has no sample (to user when neither has).
fn adjust((user, system): (u64, u64), runtime: u64) -> (u64, u64) {
    if system == 0 {
        return (runtime, 0);
    }
    if user == 0 {
        return (0, runtime);
    }
    let sys = u128::from(system) * u128::from(runtime) / (u128::from(user) + u128::from(system));
    let sys = u64::try_from(sys).unwrap_or(runtime).min(runtime);
    (runtime - sys, sys)
}

/// v1 `cpuacct.stat` (USER_HZ ticks) with `cpuacct.usage` (ns): the total split in the
/// ratio of the ticks, for kernels without the per-CPU split files.
pub fn parse_cpuacct_stat(stat: &str, usage: &str) -> Result<CpuUsage, String> {
    let map: BTreeMap<&str, u64> = parse_flat_keyed(stat).collect();
    let (Some(&user), Some(&system)) = (map.get("user"), map.get("system")) else {
        return Err("cpuacct.stat without user/system".into());
    };
    let total: u64 = usage
        .trim()
        .parse()
        .map_err(|_| format!("bad cpuacct.usage {:?}", usage.trim()))?;
    let ticks = user + system;
    let user_ns = if ticks == 0 {
        0
    } else {
        (u128::from(total) * u128::from(user) / u128::from(ticks)) as u64
    };
    Ok(CpuUsage {
        user_ns,
        nice_ns: 0,
        system_ns: total - user_ns,
        per_cpu: None,
    })
}

/// I/O done by the cgroup and below on one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: u64,
    pub dios: u64,
}

/// Per device (major, minor).
pub type IoState = BTreeMap<(u32, u32), IoCounters>;

/// A device number as the kernel writes it: "major:minor".
pub fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// v2 `io.stat`: "MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…".
pub fn parse_io_stat(text: &str) -> IoState {
    let mut out = IoState::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(dev) = it.next().and_then(parse_dev) else {
            continue;
        };
        let c = out.entry(dev).or_default();
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => c.rbytes = v,
                "wbytes" => c.wbytes = v,
                "rios" => c.rios = v,
                "wios" => c.wios = v,
                "dbytes" => c.dbytes = v,
                "dios" => c.dios = v,
                _ => {}
            }
        }
    }
    out
}

/// v1 `blkio.throttle.io_service_bytes_recursive` and `io_serviced_recursive`:
/// "MAJ:MIN Read|Write|Discard|Sync|Async|Total N" lines and a final "Total N".
pub fn parse_blkio(bytes: &str, serviced: &str) -> IoState {
    let mut out = IoState::new();
    for (text, is_bytes) in [(bytes, true), (serviced, false)] {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(dev), Some(op), Some(v)) = (
                it.next().and_then(parse_dev),
                it.next(),
                it.next().and_then(|v| v.parse::<u64>().ok()),
            ) else {
                continue;
            };
            let c = out.entry(dev).or_default();
            match (op, is_bytes) {
                ("Read", true) => c.rbytes = v,
                ("Write", true) => c.wbytes = v,
                ("Discard", true) => c.dbytes = v,
                ("Read", false) => c.rios = v,
                ("Write", false) => c.wios = v,
                ("Discard", false) => c.dios = v,
                _ => {}
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Reading (I/O).

fn read(path: &Path) -> Result<String, ResError> {
    read_control(path).map_err(|source| ResError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A file that may legitimately be missing (a controller or an accounting option
/// that is off): `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, ResError> {
    match read_control(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ResError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// How many cgroup control files stay open between reads: the few that the resource
/// views of a VPS read at every render (`cpuacct.usage_percpu_*`, `memory.*`,
/// `cpu.stat`…), for a few VPSes at a time; drawn from the descriptors the reserve
/// leaves for the daemon's own files ([`crate::fds`]).
const KEPT_CONTROL_FILES: usize = 64;

/// Control files kept open by path, least recently read out first.
static KEPT_CONTROL: std::sync::LazyLock<std::sync::Mutex<lru::LruCache<PathBuf, Arc<fs::File>>>> =
    std::sync::LazyLock::new(|| {
        let cap = std::num::NonZeroUsize::new(KEPT_CONTROL_FILES).expect("not zero");
        std::sync::Mutex::new(lru::LruCache::new(cap))
    });

/// The text of cgroup control file `path`, read whole from offset 0 of a descriptor
/// kept open from an earlier read: cgroupfs makes the text anew at each read from
/// offset 0 (a seq file), so a kept file saves the path walk, the open and the close
/// of every later read (a third of an `uptime`'s render on a v1 host). Only files on
/// cgroupfs are kept: there a file is never replaced under its name, only removed with
/// its cgroup, and a kept one then fails (`ENODEV`), which sends the read back to the
/// path (where it is `ENOENT`, or a new cgroup's file of the same name).
pub(super) fn read_control(path: &Path) -> io::Result<String> {
    let kept = crate::sync::lock(&KEPT_CONTROL).get(path).cloned();
    if let Some(f) = kept {
        if let Ok(text) = read_whole_at(&f) {
            return Ok(text);
        }
        crate::sync::lock(&KEPT_CONTROL).pop(path);
    }
    let f = fs::File::open(path)?;
    let text = read_whole_at(&f)?;
    if on_cgroupfs(&f) {
        crate::sync::lock(&KEPT_CONTROL).put(path.to_path_buf(), Arc::new(f));
    }
    Ok(text)
}

/// Whether a descriptor of `path` is kept ([`read_control`]).
#[cfg(test)]
pub(super) fn is_kept(path: &Path) -> bool {
    crate::sync::lock(&KEPT_CONTROL).contains(path)
}

/// Whether `f` is a file of a cgroup (v1 or v2) file system.
fn on_cgroupfs(f: &fs::File) -> bool {
    use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    fstatfs(f).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// The whole text of `f`, read from offset 0 on.
fn read_whole_at(f: &fs::File) -> io::Result<String> {
    String::from_utf8(host::pread_all(f)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn bad(path: &Path, what: String) -> ResError {
    ResError::Cgroup {
        path: path.to_path_buf(),
        what,
    }
}

fn parse_num(path: &Path, text: &str) -> Result<u64, ResError> {
    text.trim()
        .parse()
        .map_err(|_| bad(path, format!("expected a number, got {:?}", text.trim())))
}

/// The memory a VPS may use and uses, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    /// Effective memory limit (`None`: unlimited).
    pub limit: Option<u64>,
    /// Effective limit on swap alone (`None`: unlimited).
    pub swap_limit: Option<u64>,
    /// Memory charged to the cgroup and below (page cache and kernel memory included).
    pub usage: u64,
    /// Swap in use.
    pub swap_usage: u64,
    pub stat: MemStat,
}

/// Reads the VPS's memory state: v2 where the memory controller is enabled for its
/// cgroup, else v1; `None` when neither is there.
pub fn read_memory(paths: &CgroupPaths) -> Result<Option<MemoryState>, ResError> {
    if let Some(d) = &paths.v2 {
        if let Some(current) = read_optional(&d.file("memory.current"))? {
            return read_memory_v2(d, &current).map(Some);
        }
    }
    match &paths.memory {
        Some(d) => read_memory_v1(d).map(Some),
        None => Ok(None),
    }
}

/// The minimum of a `max`-style limit file over a lineage.
fn min_up(dirs: &[PathBuf], name: &str) -> Result<Option<u64>, ResError> {
    let mut min: Option<u64> = None;
    for dir in dirs {
        let path = dir.join(name);
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        if let Some(v) = parse_max(&text).map_err(|e| bad(&path, e))? {
            min = Some(min.map_or(v, |m| m.min(v)));
        }
    }
    Ok(min)
}

fn read_memory_v2(d: &CgDir, current: &str) -> Result<MemoryState, ResError> {
    let lineage = d.lineage();
    let limit = min_up(&lineage, "memory.max")?;
    // memory.swap.max is missing when swap accounting is off: no swap limit.
    let swap_limit = min_up(&lineage, "memory.swap.max")?;
    let usage = parse_num(&d.file("memory.current"), current)?;
    let swap_path = d.file("memory.swap.current");
    let swap_usage = match read_optional(&swap_path)? {
        Some(t) => parse_num(&swap_path, &t)?,
        None => 0,
    };
    let stat = parse_memory_stat(&read(&d.file("memory.stat"))?, false).stat;
    Ok(MemoryState {
        limit,
        swap_limit,
        usage,
        swap_usage,
        stat,
    })
}

fn read_memory_v1(d: &CgDir) -> Result<MemoryState, ResError> {
    let parsed = parse_memory_stat(&read(&d.file("memory.stat"))?, true);
    let usage_path = d.file("memory.usage_in_bytes");
    let usage = parse_num(&usage_path, &read(&usage_path)?)?;
    let limit = parsed.hierarchical_memory_limit;
    // memsw bounds memory + swap; swap alone can reach memsw − memory.
    let swap_limit = parsed
        .hierarchical_memsw_limit
        .map(|ms| limit.map_or(ms, |l| ms.saturating_sub(l)));
    let swap_usage = match parsed.swap {
        Some(s) => s,
        None => {
            let p = d.file("memory.memsw.usage_in_bytes");
            match read_optional(&p)? {
                Some(t) => parse_num(&p, &t)?.saturating_sub(usage),
                None => 0,
            }
        }
    };
    Ok(MemoryState {
        limit,
        swap_limit,
        usage,
        swap_usage,
        stat: parsed.stat,
    })
}

/// What decides a VPS's CPUs and what it used of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// Effective cpuset (`None`: all the host's).
    pub cpuset: Option<CpuSet>,
    /// Effective bandwidth limit (`None`: unlimited).
    pub quota: Option<Quota>,
    /// CPU time used (`None`: no CPU accounting for the VPS's cgroup).
    pub usage: Option<CpuUsage>,
}

/// Reads the VPS's cpuset, quota and usage.
pub fn read_cpu(paths: &CgroupPaths) -> Result<CpuState, ResError> {
    let (cpuset, quota) = read_cpu_limits(paths)?;
    Ok(CpuState {
        cpuset,
        quota,
        usage: read_cpu_usage(paths)?,
    })
}

/// The VPS's effective cpuset and CPU quota: what decides which CPUs it sees.
pub fn read_cpu_limits(paths: &CgroupPaths) -> Result<(Option<CpuSet>, Option<Quota>), ResError> {
    Ok((read_cpuset(paths)?, read_quota(paths)?))
}

fn read_cpuset(paths: &CgroupPaths) -> Result<Option<CpuSet>, ResError> {
    let mut candidates = Vec::new();
    if let Some(d) = &paths.v2 {
        candidates.push(d.file("cpuset.cpus.effective"));
    }
    if let Some(d) = &paths.cpuset {
        candidates.push(d.file("cpuset.effective_cpus"));
        candidates.push(d.file("cpuset.cpus"));
    }
    for path in candidates {
        if let Some(t) = read_optional(&path)? {
            let set = CpuSet::parse(&t).map_err(|e| bad(&path, e.to_string()))?;
            return Ok(Some(set));
        }
    }
    Ok(None)
}

fn read_quota(paths: &CgroupPaths) -> Result<Option<Quota>, ResError> {
    if let Some(d) = &paths.v2 {
        if d.file("cpu.max").exists() {
            let mut min: Option<Quota> = None;
            for dir in d.lineage() {
                let path = dir.join("cpu.max");
                let Some(t) = read_optional(&path)? else {
                    continue;
                };
                if let Some(q) = parse_cpu_max(&t).map_err(|e| bad(&path, e))? {
                    min = Some(min.map_or(q, |m| m.min(q)));
                }
            }
            return Ok(min);
        }
    }
    let Some(d) = &paths.cpu else {
        return Ok(None);
    };
    let mut min: Option<Quota> = None;
    for dir in d.lineage() {
        let qp = dir.join("cpu.cfs_quota_us");
        let Some(q) = read_optional(&qp)? else {
            continue;
        };
        let q: i64 = q
            .trim()
            .parse()
            .map_err(|_| bad(&qp, format!("expected a number, got {:?}", q.trim())))?;
        let Ok(quota_us) = u64::try_from(q) else {
            continue; // -1: no quota at this level
        };
        let pp = dir.join("cpu.cfs_period_us");
        let period_us = parse_num(&pp, &read(&pp)?)?;
        let quota = Quota {
            quota_us,
            period_us,
        };
        min = Some(min.map_or(quota, |m| m.min(quota)));
    }
    Ok(min)
}

pub fn read_cpu_usage(paths: &CgroupPaths) -> Result<Option<CpuUsage>, ResError> {
    if let Some(d) = &paths.cpuacct {
        let (u, s) = (
            d.file("cpuacct.usage_percpu_user"),
            d.file("cpuacct.usage_percpu_sys"),
        );
        if let (Some(ut), Some(st)) = (read_optional(&u)?, read_optional(&s)?) {
            let total = read_optional(&d.file("cpuacct.usage_percpu"))?;
            return parse_percpu(&ut, &st, total.as_deref())
                .map(Some)
                .map_err(|e| bad(&u, e));
        }
        let (sp, up) = (d.file("cpuacct.stat"), d.file("cpuacct.usage"));
        if let (Some(st), Some(ut)) = (read_optional(&sp)?, read_optional(&up)?) {
            return parse_cpuacct_stat(&st, &ut)
                .map(Some)
                .map_err(|e| bad(&sp, e));
        }
    }
    if let Some(d) = &paths.v2 {
        let p = d.file("cpu.stat");
        if let Some(t) = read_optional(&p)? {
            return parse_cpu_stat_v2(&t).map(Some).map_err(|e| bad(&p, e));
        }
    }
    Ok(None)
}

/// Reads the VPS's I/O per device: v2 `io.stat` where the io controller is enabled,
/// else v1 blkio's throttle statistics; `None` when neither is there.
pub fn read_io(paths: &CgroupPaths) -> Result<Option<IoState>, ResError> {
    if let Some(d) = &paths.v2 {
        if let Some(t) = read_optional(&d.file("io.stat"))? {
            return Ok(Some(parse_io_stat(&t)));
        }
    }
    if let Some(d) = &paths.blkio {
        let b = read_optional(&d.file("blkio.throttle.io_service_bytes_recursive"))?;
        let s = read_optional(&d.file("blkio.throttle.io_serviced_recursive"))?;
        if let (Some(b), Some(s)) = (b, s) {
            return Ok(Some(parse_blkio(&b, &s)));
        }
    }
    Ok(None)
}

/// The VPS's PSI file (`cpu`, `memory` or `io`), or `None` without a v2 cgroup or
/// with PSI off.
pub fn read_pressure(paths: &CgroupPaths, kind: &str) -> Option<Vec<u8>> {
    let d = paths.v2.as_ref()?;
    fs::read(d.file(&format!("{kind}.pressure"))).ok()
}

/// Where the host's online CPU list is.
pub const HOST_ONLINE: &str = "/sys/devices/system/cpu/online";

/// The host's online CPUs: sysfs's list, or where no sysfs is mounted the `cpuN`
/// lines of the host's `/proc/stat`, one per online CPU, as glibc's `get_nprocs`
/// falls back to them.
pub fn read_host_online() -> Result<CpuSet, ResError> {
    let p = Path::new(HOST_ONLINE);
    match read_optional(p)? {
        Some(text) => CpuSet::parse(&text).map_err(|e| bad(p, e.to_string())),
        None => super::stat::online(read(&host::proc_path("stat"))?.as_bytes()),
    }
}

/// The VPS's threads by state, as the load average and `procs_*` count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// In state R.
    pub running: u32,
    /// In state D.
    pub blocked: u32,
    /// All threads.
    pub total: u32,
}

/// Buffers that `count_tasks` reuses from one sample to the next, so that a sample of
/// 10,000 threads allocates nothing per thread, and the open `stat` file of each
/// thread seen (see [`count_tasks`]).
#[derive(Default)]
pub struct Scratch {
    list: String,
    path: String,
    tids: Vec<u32>,
    /// Open `/proc/<tid>/task/<tid>/stat` per tid, with the sample that last used it.
    files: FxHashMap<u32, (fs::File, u64)>,
    generation: u64,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        CACHED_FILES.give_back(self.files.len());
    }
}

/// Open `stat` files held by every sampler of the daemon, bounded by a share of its
/// descriptor limit so that the cache never starves the FUSE side of descriptors.
static CACHED_FILES: crate::fds::Tally = crate::fds::Tally::new();

/// How many descriptors the samplers may keep open: their share ([`crate::fds`]).
fn cache_budget() -> usize {
    crate::fds::Shares::now().sampler
}

/// Cgroup trees deeper than this are not walked.
const MAX_DEPTH: usize = 32;

/// Counts the threads of the VPS's cgroup and its descendants by state, from each
/// thread's `/proc/<tid>/task/<tid>/stat` (the state follows the last `)`, within the
/// first 128 bytes since a comm is at most 64 bytes); a thread gone meanwhile is not
/// counted.
///
/// Cost, measured on a 2-vCPU VM at 10,000 threads: open + read + close is ~5.5 µs a
/// thread (~1.1 % of one CPU at one sample every 5 s); so the file is kept open
/// between samples and re-read with `pread` at offset 0 (a seq_file regenerates its
/// text then): 3.3 µs a thread, 0.65 % of one CPU (`tests::sampler_cost`). A cached file of a thread that has exited reads
/// ESRCH (it holds the thread's `struct pid`, never a reused number) and is
/// replaced; files of threads no longer listed are closed after each sample. Thread
/// `skip` (a reader, which the caller counts itself) is left out.
pub fn count_tasks(paths: &CgroupPaths, scratch: &mut Scratch, skip: Option<i32>) -> TaskCounts {
    let mut counts = TaskCounts::default();
    let Some((dir, list_name)) = paths.task_list() else {
        return counts;
    };
    scratch.tids.clear();
    collect_tids(&dir, list_name, scratch, 0);
    scratch.generation += 1;
    let generation = scratch.generation;
    let budget = cache_budget();
    let mut buf = [0u8; 128];
    let tids = std::mem::take(&mut scratch.tids);
    for &tid in &tids {
        if skip.is_some_and(|s| i64::from(s) == i64::from(tid)) {
            continue;
        }
        let mut n = None;
        if let Some((f, used)) = scratch.files.get_mut(&tid) {
            match f.read_at(&mut buf, 0) {
                Ok(len) => {
                    *used = generation;
                    n = Some(len);
                }
                Err(_) => {
                    scratch.files.remove(&tid);
                    CACHED_FILES.give_back(1);
                }
            }
        }
        if n.is_none() {
            use std::fmt::Write;
            scratch.path.clear();
            // The thread's own stat: `/proc/<tid>/stat` of a non-leader thread is its
            // group's, which sums the times of every thread (O(threads) per read,
            // O(n²) per sample: 1 ms a read at 10,000 threads).
            let _ = write!(scratch.path, "{}/{tid}/task/{tid}/stat", host::PROC);
            let Ok(f) = fs::File::open(&scratch.path) else {
                continue;
            };
            let Ok(len) = f.read_at(&mut buf, 0) else {
                continue;
            };
            n = Some(len);
            if CACHED_FILES.take(budget) {
                scratch.files.insert(tid, (f, generation));
            }
        }
        let Some(state) = n.and_then(|len| stat_state(&buf[..len])) else {
            continue;
        };
        counts.total += 1;
        match state {
            b'R' => counts.running += 1,
            b'D' => counts.blocked += 1,
            _ => {}
        }
    }
    let before = scratch.files.len();
    scratch.files.retain(|_, (_, used)| *used == generation);
    CACHED_FILES.give_back(before - scratch.files.len());
    scratch.tids = tids;
    counts
}

/// The state letter of a `/proc/<tid>/stat` prefix: the byte two after the last `)`.
pub fn stat_state(head: &[u8]) -> Option<u8> {
    let close = head.iter().rposition(|&c| c == b')')?;
    head.get(close + 2).copied()
}

fn collect_tids(dir: &Path, list_name: &str, scratch: &mut Scratch, depth: usize) {
    scratch.list.clear();
    let Ok(mut f) = fs::File::open(dir.join(list_name)) else {
        return;
    };
    if f.read_to_string(&mut scratch.list).is_err() {
        return;
    }
    scratch.tids.extend(
        scratch
            .list
            .split_ascii_whitespace()
            .filter_map(|t| t.parse::<u32>().ok()),
    );
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_tids(&e.path(), list_name, scratch, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn paths_from_a_hybrid_host() {
        let cg = "9:name=systemd:/\n8:pids:/box\n4:memory:/box/a\n3:cpuset:/\n\
                  2:cpu,cpuacct:/box\n0::/box/a\n";
        let p = CgroupPaths::from_texts(cg, MOUNTINFO, false);
        let d = |m: &str, path: &str| {
            Some(CgDir {
                mount: PathBuf::from(m),
                path: path.into(),
            })
        };
        assert_eq!(p.v2, d("/sys/fs/cgroup/unified", "/box/a"));
        assert_eq!(p.memory, d("/sys/fs/cgroup/memory", "/box/a"));
        assert_eq!(p.cpu, d("/sys/fs/cgroup/cpu,cpuacct", "/box"));
        assert_eq!(p.cpuacct, d("/sys/fs/cgroup/cpu,cpuacct", "/box"));
        assert_eq!(p.pids, d("/sys/fs/cgroup/pids", "/box"));
        // Root: the host's, dropped unless asked for; blkio is not mounted.
        assert_eq!(p.cpuset, None);
        assert_eq!(p.blkio, None);
        let with_root = CgroupPaths::from_texts(cg, MOUNTINFO, true);
        assert_eq!(with_root.cpuset, d("/sys/fs/cgroup/cpuset", "/"));
        assert_eq!(
            p.memory.as_ref().unwrap().dir(),
            PathBuf::from("/sys/fs/cgroup/memory/box/a")
        );
        assert_eq!(
            p.memory.as_ref().unwrap().lineage(),
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/box/a"),
                PathBuf::from("/sys/fs/cgroup/memory/box")
            ]
        );
        // Garbage lines and paths are ignored.
        let p = CgroupPaths::from_texts("junk\n0::relative\n4:memory:/../x\n", MOUNTINFO, true);
        assert_eq!(p, CgroupPaths::default());
    }

    #[test]
    fn max_files() {
        assert_eq!(parse_max("max\n"), Ok(None));
        assert_eq!(parse_max("268435456\n"), Ok(Some(268435456)));
        assert!(parse_max("lots").is_err());
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Ok(Some(Quota {
                quota_us: 50000,
                period_us: 100000
            }))
        );
        assert!(parse_cpu_max("").is_err());
        assert!(parse_cpu_max("x 100000").is_err());
    }

    #[test]
    fn memory_stat_v1_uses_hierarchical_keys() {
        let p = parse_memory_stat(include_str!("testdata/memory.stat.v1"), true);
        assert_eq!(p.stat.file, Some(2936832));
        assert_eq!(p.stat.anon, Some(1830912));
        assert_eq!(p.stat.inactive_file, Some(405504));
        assert_eq!(p.stat.slab_reclaimable, None);
        assert_eq!(p.hierarchical_memory_limit, None);
        assert_eq!(p.swap, Some(0));
        let limited = "cache 1\nhierarchical_memory_limit 268435456\n\
                       hierarchical_memsw_limit 9223372036854771712\n";
        let p = parse_memory_stat(limited, true);
        assert_eq!(p.hierarchical_memory_limit, Some(268435456));
        assert_eq!(p.hierarchical_memsw_limit, None);
        // Without total_* keys, the cgroup's own.
        assert_eq!(p.stat.file, Some(1));
    }

    #[test]
    fn memory_stat_events() {
        let ev = |text: &str, v1: bool| parse_memory_stat(text, v1).stat.events;
        // v1: the hierarchical total over the cgroup's own; no sizes, limits or pgpgin.
        let e = ev(
            "pgfault 5\npgpgin 7\npgmajfault 1\ncache 4096\nhierarchical_memory_limit 1\n\
             total_pgfault 9\ntotal_pgpgin 70\ntotal_cache 8192\ntotal_workingset_refault_file 3\n",
            true,
        );
        let want: BTreeMap<String, u64> = [
            ("pgfault", 9),
            ("pgmajfault", 1),
            ("workingset_refault_file", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(e, want);
        let e = ev(include_str!("testdata/memory.stat.v1"), true);
        assert_eq!(e.get("pgfault"), Some(&57000));
        assert!(!e.contains_key("pgpgin") && !e.contains_key("cache"));
        // v2: every counter, no size.
        let e = ev(include_str!("testdata/memory.stat.v2"), false);
        assert_eq!(e.get("pgfault"), Some(&27895));
        assert_eq!(e.get("thp_fault_alloc"), Some(&0));
        assert_eq!(e.get("workingset_nodereclaim"), Some(&0));
        for size in [
            "anon",
            "file",
            "kernel_stack",
            "slab",
            "anon_thp",
            "file_mapped",
        ] {
            assert!(!e.contains_key(size), "{size}");
        }
    }

    #[test]
    fn memory_stat_v2() {
        let p = parse_memory_stat(include_str!("testdata/memory.stat.v2"), false);
        assert_eq!(p.stat.anon, Some(104_857_600));
        assert_eq!(p.stat.slab_reclaimable, Some(788_072));
        assert_eq!(p.stat.file_mapped, Some(3_514_368));
        assert_eq!(p.hierarchical_memory_limit, None);
    }

    #[test]
    fn cpu_usage_files() {
        let u = parse_cpu_stat_v2(include_str!("testdata/cpu.stat.v2")).unwrap();
        assert_eq!(u.user_ns, 222004554 * 1000);
        assert_eq!(u.system_ns, 25157398 * 1000);
        assert_eq!(u.per_cpu, None);
        let with_nice = "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnice_usec 5\n";
        let u = parse_cpu_stat_v2(with_nice).unwrap();
        assert_eq!((u.user_ns, u.nice_ns, u.system_ns), (15_000, 5_000, 10_000));
        assert!(parse_cpu_stat_v2("usage_usec 3\n").is_err());

        let user = include_str!("testdata/cpuacct.usage_percpu_user.v1");
        let u = parse_percpu(user, "5 6 \n", None).unwrap();
        assert_eq!(u.per_cpu, Some(vec![(108962693579, 5), (113041860925, 6)]));
        assert_eq!(u.system_ns, 11);
        assert!(parse_percpu("1 2", "1", None).is_err());
        assert!(parse_percpu("1 x", "1 2", None).is_err());
        assert!(parse_percpu("1 2", "1 2", Some("3")).is_err());
        // Tick samples scaled to the exact runtime, CPU by CPU: 1.37 s sampled for 1.0 s
        // run becomes 1.0 s, in the samples' ratio; a side without samples gets none.
        let u = parse_percpu(
            "4000000 1340000000",
            "0 20000000",
            Some("3000000 980000000"),
        )
        .unwrap();
        assert_eq!(u.per_cpu, Some(vec![(3000000, 0), (965588236, 14411764)]));
        assert_eq!(u.total_ns(), 983000000);
        assert_eq!(adjust((0, 0), 7), (7, 0));
        assert_eq!(adjust((0, 5), 7), (0, 7));

        let u = parse_cpuacct_stat(include_str!("testdata/cpuacct.stat.v1"), "1000\n").unwrap();
        assert_eq!(u.user_ns + u.system_ns, 1000);
        assert_eq!(u.user_ns, 1000 * 22375 / (22375 + 2535));
        assert!(parse_cpuacct_stat("user 1\n", "5").is_err());
    }

    #[test]
    fn io_files() {
        let v2 = "254:0 rbytes=1379178 wbytes=4096 rios=5267 wios=1 dbytes=0 dios=0\n\
                  8:16 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\nbad line\n";
        let s = parse_io_stat(v2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[&(254, 0)].rios, 5267);
        assert_eq!(s[&(254, 0)].wbytes, 4096);
        let bytes = "254:0 Read 1024\n254:0 Write 2048\n254:0 Sync 0\n254:0 Async 3072\n\
                     254:0 Discard 0\n254:0 Total 3072\nTotal 3072\n";
        let serviced = "254:0 Read 2\n254:0 Write 3\n254:0 Total 5\nTotal 5\n";
        let s = parse_blkio(bytes, serviced);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[&(254, 0)],
            IoCounters {
                rbytes: 1024,
                wbytes: 2048,
                rios: 2,
                wios: 3,
                dbytes: 0,
                dios: 0
            }
        );
        assert!(parse_blkio("Total 0\n", "Total 0\n").is_empty());
    }

    #[test]
    fn state_of_a_stat_head() {
        assert_eq!(stat_state(b"12 (bash) S 1 12"), Some(b'S'));
        assert_eq!(stat_state(b"12 (a) b) R 1"), Some(b'R'));
        assert_eq!(stat_state(b"12 (x"), None);
        assert_eq!(stat_state(b"12 (x)"), None);
    }

    #[test]
    fn counts_this_process_threads() {
        // Our own cgroup in some hierarchy, root kept: at least this thread, running.
        let cg = fs::read_to_string("/proc/self/cgroup").unwrap();
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let paths = CgroupPaths::from_texts(&cg, &mi, true);
        if paths.dirs().next().is_none() {
            return; // no cgroup hierarchy mounted here
        }
        let mut scratch = Scratch::default();
        let c = count_tasks(&paths, &mut scratch, None);
        assert!(c.total >= 1 && c.running >= 1, "{c:?}");
    }
}
