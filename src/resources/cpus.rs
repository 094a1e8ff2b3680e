//! Which CPUs a VPS sees, and `/sys/devices/system/cpu/online`.
//!
//! The visible CPUs are the cgroup's effective cpuset intersected with the CPUs the
//! host has online, and no more of them than the CPU quota can keep busy
//! (⌈quota/period⌉, the first ones in ascending order): a process limited to half a
//! CPU gets one CPU, so `nproc`-style sizing in runtimes (Go's GOMAXPROCS, JVM
//! thread pools) does not oversubscribe the quota. They are shown renumbered from 0,
//! since inside the VPS "CPU 3" is meaningless when it is the only CPU.

use super::ResError;

/// A set of CPU numbers, ascending and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(Vec<u32>);

/// CPU numbers above this are refused when parsing: the kernel's NR_CPUS limit is
/// 8192, and a bound keeps a malformed "0-4000000000" from allocating gigabytes.
const MAX_CPU: u32 = 1 << 16;

impl CpuSet {
    /// Parses the kernel's range-list format ("0-3,5,7-8", possibly empty, with a
    /// trailing newline), as in `cpuset.cpus.effective` and `cpu/online`.
    pub fn parse(text: &str) -> Result<CpuSet, ResError> {
        let bad = |what: &str| ResError::Malformed {
            file: "cpu list",
            what: format!("{what} in {:?}", text.trim_end()),
        };
        let mut cpus = Vec::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let lo: u32 = lo.trim().parse().map_err(|_| bad("bad number"))?;
            let hi: u32 = hi.trim().parse().map_err(|_| bad("bad number"))?;
            if lo > hi || hi > MAX_CPU {
                return Err(bad("bad range"));
            }
            cpus.extend(lo..=hi);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuSet(cpus))
    }

    /// A set from a list of CPU numbers.
    pub fn from_cpus(cpus: impl IntoIterator<Item = u32>) -> CpuSet {
        let mut v: Vec<u32> = cpus.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        CpuSet(v)
    }

    /// The CPU numbers, ascending.
    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }

    /// The CPUs in both sets.
    pub fn intersect(&self, other: &CpuSet) -> CpuSet {
        CpuSet(
            self.0
                .iter()
                .copied()
                .filter(|&c| other.contains(c))
                .collect(),
        )
    }

    /// The kernel's range-list text, without a newline ("0-3,5"; "" when empty).
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}-{end}"));
            }
            i += 1;
        }
        out
    }
}

/// A CPU bandwidth limit: `quota` µs of CPU time every `period` µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl Quota {
    /// How many CPUs the quota can keep busy, rounded up (at least 1).
    pub fn ceil_cpus(self) -> u64 {
        if self.period_us == 0 {
            return u64::MAX;
        }
        self.quota_us.div_ceil(self.period_us).max(1)
    }

    /// The smaller of two limits (by the share of a CPU they allow), which is what a
    /// nested hierarchy enforces.
    pub fn min(self, other: Quota) -> Quota {
        // quota_a / period_a <= quota_b / period_b, without division or overflow.
        let a = u128::from(self.quota_us) * u128::from(other.period_us);
        let b = u128::from(other.quota_us) * u128::from(self.period_us);
        if a <= b {
            self
        } else {
            other
        }
    }
}

/// The CPUs a VPS sees, in host numbering: its cpuset (all of `online` when it has
/// none) intersected with `online`, cut to the first ⌈quota/period⌉. An empty
/// intersection (a cpuset naming only offline CPUs, which the kernel's effective
/// cpuset never does) falls back to `online`, because a view with no CPU breaks every
/// program that divides by the CPU count.
pub fn visible(cpuset: Option<&CpuSet>, quota: Option<Quota>, online: &CpuSet) -> CpuSet {
    let mut set = match cpuset {
        Some(c) => c.intersect(online),
        None => online.clone(),
    };
    if set.is_empty() {
        set = online.clone();
    }
    if let Some(q) = quota {
        let n = usize::try_from(q.ceil_cpus()).unwrap_or(usize::MAX);
        set.0.truncate(n.max(1));
    }
    set
}

/// `/sys/devices/system/cpu/online` of the VPS: "0-N\n" for N+1 visible CPUs, "0\n"
/// for one.
pub fn render_online(visible_count: usize) -> Vec<u8> {
    let n = visible_count.max(1);
    if n == 1 {
        b"0\n".to_vec()
    } else {
        format!("0-{}\n", n - 1).into_bytes()
    }
}

/// The CPUs of `of` (host numbers, as a NUMA node's `cpulist`) as a VPS that sees the
/// host CPUs `visible` numbers them: the position in `visible` of each it sees.
pub fn renumbered(of: &CpuSet, visible: &CpuSet) -> CpuSet {
    CpuSet::from_cpus(
        visible
            .cpus()
            .iter()
            .enumerate()
            .filter(|(_, c)| of.contains(**c))
            .filter_map(|(i, _)| u32::try_from(i).ok()),
    )
}

/// The kernel's text of a CPU mask (`%*pb`, as in a NUMA node's `cpumap`) of `set` on a
/// machine of `nbits` CPUs: lowercase hex, high CPUs first, a comma between 32-bit
/// words, the top word as many digits wide as its bits need, the others eight.
pub fn render_mask(set: &CpuSet, nbits: usize) -> String {
    let nbits = nbits.max(1);
    let mut words = Vec::new();
    let mut low = 0usize;
    while low < nbits {
        let bits = (nbits - low).min(32);
        let mut word: u32 = 0;
        for c in set.cpus() {
            let c = *c as usize;
            if (low..low + bits).contains(&c) {
                word |= 1 << (c - low);
            }
        }
        words.push((word, bits));
        low += 32;
    }
    words
        .iter()
        .rev()
        .map(|&(w, bits)| format!("{w:0width$x}", width = bits.div_ceil(4)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_range_lists() {
        assert_eq!(set("0-3,5,7-8\n").cpus(), &[0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(set("0-3,5,7-8").to_list(), "0-3,5,7-8");
        assert_eq!(set("\n").cpus(), &[] as &[u32]);
        assert_eq!(set("3,1,1,2").to_list(), "1-3");
        assert_eq!(set("4").to_list(), "4");
        for bad in ["a", "3-1", "0-", "1-99999999", "-1"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_rounds_up_and_takes_the_minimum() {
        let half = Quota {
            quota_us: 50_000,
            period_us: 100_000,
        };
        let two_and_a_bit = Quota {
            quota_us: 210_000,
            period_us: 100_000,
        };
        assert_eq!(half.ceil_cpus(), 1);
        assert_eq!(two_and_a_bit.ceil_cpus(), 3);
        assert_eq!(half.min(two_and_a_bit), half);
        assert_eq!(two_and_a_bit.min(half), half);
        let tiny = Quota {
            quota_us: 0,
            period_us: 100_000,
        };
        assert_eq!(tiny.ceil_cpus(), 1);
    }

    #[test]
    fn visible_cpus() {
        let online = set("0-7");
        assert_eq!(visible(None, None, &online), online);
        assert_eq!(
            visible(Some(&set("2,4-5")), None, &online).cpus(),
            &[2, 4, 5]
        );
        let half = Quota {
            quota_us: 50_000,
            period_us: 100_000,
        };
        assert_eq!(
            visible(Some(&set("2,4-5")), Some(half), &online).cpus(),
            &[2]
        );
        assert_eq!(visible(None, Some(half), &online).cpus(), &[0]);
        // Only offline CPUs in the cpuset: the host's online ones rather than none.
        assert_eq!(visible(Some(&set("9")), None, &online), online);
    }

    #[test]
    fn a_nodes_cpus_are_renumbered_as_the_vps_sees_them() {
        let visible = set("2,4-5");
        assert_eq!(renumbered(&set("0-3"), &visible).to_list(), "0");
        assert_eq!(renumbered(&set("4-7"), &visible).to_list(), "1-2");
        assert!(renumbered(&set("8-9"), &visible).is_empty());
    }

    #[test]
    fn masks_are_printed_as_the_kernel_prints_them() {
        // As this machine's node0/cpumap ("3" on two CPUs) and bitmap_string's chunks.
        assert_eq!(render_mask(&set("0-1"), 2), "3");
        assert_eq!(render_mask(&set("0"), 1), "1");
        assert_eq!(render_mask(&set(""), 4), "0");
        assert_eq!(render_mask(&set("0-3"), 8), "0f");
        assert_eq!(render_mask(&set("0-35"), 36), "f,ffffffff");
        assert_eq!(render_mask(&set("32"), 40), "01,00000000");
        assert_eq!(render_mask(&set("0,63"), 64), "80000000,00000001");
    }

    #[test]
    fn online_file() {
        assert_eq!(render_online(1), b"0\n");
        assert_eq!(render_online(4), b"0-3\n");
        assert_eq!(render_online(0), b"0\n");
    }
}
