//! Real-time bandwidth for the VPS's v1 cpu cgroup.
//!
//! With the kernel's real-time group scheduling (`CONFIG_RT_GROUP_SCHED`, the v1 files
//! `cpu.rt_runtime_us` and `cpu.rt_period_us`), a new cpu cgroup gets no real-time
//! runtime, and the kernel refuses `SCHED_FIFO` and `SCHED_RR` to its tasks (EPERM:
//! `chrt -f 5 cmd` fails) where the same command in a pid namespace of the host's
//! cgroup runs. So each cpu directory vprocfs makes (`vprocfs/` and the VPS's own)
//! takes from what its parent has free: the bandwidth a group's children hold together
//! may not exceed the group's own, and none may exceed the machine's
//! (`kernel.sched_rt_runtime_us` per `kernel.sched_rt_period_us`), each compared as
//! the kernel's `to_ratio` does. `vprocfs/` takes all that is free; a VPS half of what
//! `vprocfs/` has left, so that VPSes started beside it get some too (each half the one
//! before; it all goes back as they end): a real-time task runs in every VPS, within a
//! smaller share of the CPU than on the host. A kernel without the files has nothing
//! to share; where nothing is free, the VPS runs without real-time scheduling (said at
//! log level info).

use std::fs;
use std::path::Path;

use crate::host;

/// `to_ratio`'s fixed point: 1 << 20 is the whole period.
const BW_SHIFT: u32 = 20;
const BW_UNIT: u128 = 1 << BW_SHIFT;

/// A group's real-time bandwidth: runtime (µs, negative for no limit) per period (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bandwidth {
    pub runtime_us: i64,
    pub period_us: u64,
}

impl Bandwidth {
    /// The kernel's `to_ratio(period, runtime)`: the share of the period, fixed point;
    /// no limit is the whole period.
    fn ratio(self) -> u128 {
        match u128::try_from(self.runtime_us) {
            Err(_) => BW_UNIT,
            Ok(_) if self.period_us == 0 => 0,
            Ok(r) => (r << BW_SHIFT) / u128::from(self.period_us),
        }
    }
}

/// Pure: the runtime (µs per `period_us`) a group may take, of a parent with
/// bandwidth `parent` whose other children hold `siblings`, on a machine whose
/// real-time tasks may use `global`: what the parent has free, within the machine's
/// share, rounded down so that the kernel's own sum stays within the parent's.
pub fn free_runtime(
    parent: Bandwidth,
    siblings: &[Bandwidth],
    global: Bandwidth,
    period_us: u64,
) -> u64 {
    let held: u128 = siblings.iter().map(|b| b.ratio()).sum();
    let free = parent.ratio().saturating_sub(held).min(global.ratio());
    u64::try_from((free * u128::from(period_us)) >> BW_SHIFT).unwrap_or(u64::MAX)
}

fn read_num(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The bandwidth cpu cgroup `dir` has; `None` without real-time group scheduling.
fn of_dir(dir: &Path) -> Option<Bandwidth> {
    Some(Bandwidth {
        runtime_us: read_num(&dir.join("cpu.rt_runtime_us"))?,
        period_us: u64::try_from(read_num(&dir.join("cpu.rt_period_us"))?).ok()?,
    })
}

/// The machine's limit on real-time tasks (`kernel.sched_rt_runtime_us` of
/// `kernel.sched_rt_period_us`); no limit where it cannot be read.
fn global() -> Bandwidth {
    let sysctl = |name: &str| read_num(&host::proc_path(&format!("sys/kernel/{name}")));
    match (sysctl("sched_rt_runtime_us"), sysctl("sched_rt_period_us")) {
        (Some(runtime_us), Some(p)) if p > 0 => Bandwidth {
            runtime_us,
            period_us: p as u64,
        },
        _ => Bandwidth {
            runtime_us: -1,
            period_us: 1,
        },
    }
}

/// How much of what its parent has free a directory takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// All of it: `vprocfs/`, the parent of every VPS.
    All,
    /// Half of it: a VPS, leaving the rest to those started beside it.
    Half,
}

/// Gives cpu cgroup `dir` (one vprocfs made) its `take` of what its parent has free,
/// beside the parent's other children; best effort, a refusal is logged.
pub fn share(dir: &Path, take: Take) {
    let (Some(parent), Some(own)) = (dir.parent(), of_dir(dir)) else {
        return; // no real-time group scheduling
    };
    let Some(theirs) = of_dir(parent) else {
        return;
    };
    let siblings: Vec<Bandwidth> = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.path() != dir)
        .filter_map(|e| of_dir(&e.path()))
        .collect();
    let free = free_runtime(theirs, &siblings, global(), own.period_us);
    let runtime = match take {
        Take::All => free,
        Take::Half => free / 2,
    };
    if i64::try_from(runtime).ok() == Some(own.runtime_us) {
        return;
    }
    let file = dir.join("cpu.rt_runtime_us");
    if runtime == 0 {
        log::info!(
            "no real-time CPU time is free in {} (other groups hold it): SCHED_FIFO and \
             SCHED_RR are refused in this VPS",
            parent.display()
        );
        return;
    }
    if let Err(e) = fs::write(&file, runtime.to_string()) {
        log::info!(
            "cannot write {runtime} to {} ({e}): SCHED_FIFO and SCHED_RR are refused in \
             this VPS",
            file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{free_runtime, global, share, Bandwidth, Take};
    use std::fs;

    fn bw(runtime_us: i64, period_us: u64) -> Bandwidth {
        Bandwidth {
            runtime_us,
            period_us,
        }
    }

    const HOST: Bandwidth = Bandwidth {
        runtime_us: 950_000,
        period_us: 1_000_000,
    };

    #[test]
    fn a_child_takes_what_its_parent_has_free() {
        let none: [Bandwidth; 0] = [];
        // The kernel's fixed point loses a µs or so: never more than the parent's.
        let all = free_runtime(HOST, &none, HOST, 1_000_000);
        assert!((949_990..=950_000).contains(&all), "{all}");
        let rest = free_runtime(HOST, &[bw(500_000, 1_000_000)], HOST, 1_000_000);
        assert!((449_990..=450_000).contains(&rest), "{rest}");
        // Siblings counted in their own periods, the result in the child's.
        let rest = free_runtime(HOST, &[bw(50_000, 100_000)], HOST, 100_000);
        assert!((44_990..=45_000).contains(&rest), "{rest}");
        assert_eq!(
            free_runtime(HOST, &[bw(950_000, 1_000_000)], HOST, 1_000_000),
            0
        );
        assert_eq!(free_runtime(HOST, &[bw(-1, 1_000_000)], HOST, 1_000_000), 0);
    }

    #[test]
    fn no_more_than_the_machine_allows() {
        let unlimited = bw(-1, 1_000_000);
        let none: [Bandwidth; 0] = [];
        let got = free_runtime(unlimited, &none, HOST, 1_000_000);
        assert!((949_990..=950_000).contains(&got), "{got}");
        assert_eq!(
            free_runtime(unlimited, &none, unlimited, 1_000_000),
            1_000_000
        );
        assert_eq!(free_runtime(bw(0, 1_000_000), &none, HOST, 1_000_000), 0);
    }

    #[test]
    fn the_kernels_sum_stays_within_the_parent() {
        for (pr, pp, cp) in [
            (950_000, 1_000_000, 1_000_000),
            (333_333, 1_000_000, 70_001),
        ] {
            let parent = bw(pr, pp);
            let sib = bw(pr / 3, pp);
            let got = free_runtime(parent, &[sib], HOST, cp);
            let child = bw(got as i64, cp);
            assert!(sib.ratio() + child.ratio() <= parent.ratio());
        }
    }

    /// `share` on a tree of plain files laid out as a v1 cpu hierarchy: a directory
    /// takes its part of what its parent has beside its siblings (not itself), and a
    /// hierarchy without the files is left alone.
    #[test]
    fn share_counts_the_siblings_and_writes_the_directory() {
        let root = std::env::temp_dir().join(format!("vprocfs-rt-{}", std::process::id()));
        let put = |dir: &std::path::Path, runtime: &str, period: &str| {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join("cpu.rt_runtime_us"), runtime).unwrap();
            fs::write(dir.join("cpu.rt_period_us"), period).unwrap();
        };
        let read = |dir: &str| fs::read_to_string(root.join(dir).join("cpu.rt_runtime_us"));
        let parent = bw(900_000, 1_000_000);
        put(&root, "900000\n", "1000000\n");
        put(&root.join("other"), "300000\n", "1000000\n");
        put(&root.join("a"), "100\n", "500000\n");
        put(&root.join("b"), "0\n", "500000\n");
        fs::create_dir_all(root.join("plain")).unwrap();
        // A VPS takes half of what is free beside it (its own 100 µs not counted).
        share(&root.join("a"), Take::Half);
        let free = free_runtime(
            parent,
            &[bw(300_000, 1_000_000), bw(0, 500_000)],
            global(),
            500_000,
        );
        let a = free / 2;
        assert!(a > 0 && a <= 150_000, "{a}");
        assert_eq!(read("a").unwrap(), a.to_string());
        // The next takes half of what is left, so it gets some too.
        share(&root.join("b"), Take::Half);
        let left = free_runtime(
            parent,
            &[bw(300_000, 1_000_000), bw(a as i64, 500_000)],
            global(),
            500_000,
        );
        assert!(left / 2 > 0, "{left}");
        assert_eq!(read("b").unwrap(), (left / 2).to_string());
        // The parent of the VPSes takes all that is free.
        share(&root.join("other"), Take::All);
        let all = free_runtime(
            parent,
            &[bw(a as i64, 500_000), bw((left / 2) as i64, 500_000)],
            global(),
            1_000_000,
        );
        assert_eq!(read("other").unwrap(), all.to_string());
        share(&root.join("plain"), Take::Half);
        assert!(!root.join("plain/cpu.rt_runtime_us").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
