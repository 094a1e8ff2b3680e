//! Real-time bandwidth for the VPS's v1 cpu cgroup.
//!
//! With the kernel's real-time group scheduling (`CONFIG_RT_GROUP_SCHED`, the v1 files
//! `cpu.rt_runtime_us` and `cpu.rt_period_us`), a new cpu cgroup gets no real-time
//! runtime, and the kernel refuses `SCHED_FIFO` and `SCHED_RR` to its tasks (EPERM:
//! `chrt -f 5 cmd` fails) where the same command in a pid namespace of the host's
//! cgroup runs. So each cpu directory vprocfs makes (`vprocfs/` and the VPS's own)
//! takes what its parent has free: the bandwidth a group's children hold together may
//! not exceed the group's own, and none may exceed the machine's
//! (`kernel.sched_rt_runtime_us` per `kernel.sched_rt_period_us`), each compared as
//! the kernel's `to_ratio` does. A kernel without the files has nothing to share;
//! where nothing is free (another VPS took it), the VPS runs without real-time
//! scheduling and a warning says so.

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

/// Gives cpu cgroup `dir` (one vprocfs made) what its parent has free, beside the
/// parent's other children; best effort, a refusal is logged.
pub fn share(dir: &Path) {
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
    let runtime = free_runtime(theirs, &siblings, global(), own.period_us);
    if i64::try_from(runtime).ok() == Some(own.runtime_us) {
        return;
    }
    let file = dir.join("cpu.rt_runtime_us");
    if runtime == 0 {
        log::warn!(
            "no real-time CPU time is free in {} (other groups hold it): SCHED_FIFO and \
             SCHED_RR are refused in this VPS",
            parent.display()
        );
        return;
    }
    if let Err(e) = fs::write(&file, runtime.to_string()) {
        log::warn!(
            "cannot write {runtime} to {} ({e}): SCHED_FIFO and SCHED_RR are refused in \
             this VPS",
            file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{free_runtime, global, share, Bandwidth};
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

    /// `share` on a tree of plain files laid out as a v1 cpu hierarchy: the directory
    /// takes what its parent has beside its siblings (not itself), and a hierarchy
    /// without the files is left alone.
    #[test]
    fn share_counts_the_siblings_and_writes_the_directory() {
        let root = std::env::temp_dir().join(format!("vprocfs-rt-{}", std::process::id()));
        let put = |dir: &std::path::Path, runtime: &str, period: &str| {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join("cpu.rt_runtime_us"), runtime).unwrap();
            fs::write(dir.join("cpu.rt_period_us"), period).unwrap();
        };
        put(&root, "900000\n", "1000000\n");
        put(&root.join("other"), "300000\n", "1000000\n");
        put(&root.join("vps"), "100\n", "500000\n");
        fs::create_dir_all(root.join("plain")).unwrap();
        share(&root.join("vps"));
        let want = free_runtime(
            Bandwidth {
                runtime_us: 900_000,
                period_us: 1_000_000,
            },
            &[Bandwidth {
                runtime_us: 300_000,
                period_us: 1_000_000,
            }],
            global(),
            500_000,
        );
        let got = fs::read_to_string(root.join("vps/cpu.rt_runtime_us")).unwrap();
        assert_eq!(got, want.to_string());
        assert!(want > 0 && want <= 300_000, "{want}");
        share(&root.join("plain"));
        assert!(!root.join("plain/cpu.rt_runtime_us").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
