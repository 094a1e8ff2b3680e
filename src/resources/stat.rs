//! `/proc/stat` of a VPS.
//!
//! - `cpu` and `cpuN`: one line per visible CPU, renumbered from 0, in USER_HZ (100)
//!   ticks as `nsec_to_clock_t` truncates. user, nice and system come from the
//!   cgroup's CPU usage: per CPU where the hierarchy splits it (v1
//!   `cpuacct.usage_percpu_*`), time spent on CPUs the VPS does not see (a quota cut
//!   the list short, or the cpuset changed) spread evenly over the visible ones; else
//!   the totals (v2 `cpu.stat`) split evenly. idle is the rest of the elapsed time
//!   on each CPU (elapsed = the reader's uptime, as `uptime` shows it, so that
//!   `user + nice + system + idle ≈ uptime × CPUs` as on a real machine). iowait,
//!   irq, softirq, steal, guest and guest_nice are 0: a cgroup does not account them.
//!   Without CPU accounting the host's lines of the visible CPUs are shown.
//!   The `cpu` line is the sum of the `cpuN` lines.
//! - Every column is monotonic: the last values shown are floors (kept per VPS and
//!   persisted across daemon restarts by the caller), so a sum that dips (a CPU
//!   leaving the view, rounding of the even split) never makes `top` show negative
//!   deltas.
//! - `btime` is shifted by the VPS's boottime offset as the kernel's
//!   `timens_sub_boottime` does (the exact boot time less the offset, then cut to the
//!   second), so that with a time namespace it is the VPS's start, as `ps` computes
//!   start times from it.
//! - `processes` (forks since the VPS started, floored), `procs_running` and
//!   `procs_blocked` (the VPS's R and D threads) are the VPS's.
//! - `intr`, `ctxt` and `softirq` are the host's (no cgroup counts interrupts or
//!   context switches), counted from when the VPS's clock began: `vmstat` divides them
//!   by the CPU time of the `cpu` lines for its first line, and the host's counts since
//!   its boot over a new VPS's seconds read as billions of interrupts a second (LXCFS
//!   shows them so). The host's counts at the VPS's start are taken at the host's
//!   average rate since boot ([`HostCounts::base`]), fixed at the first render and kept
//!   across restarts; every later change shows in full. Without a time namespace the
//!   VPS's clock is the host's, and so are the counts.

use serde::{Deserialize, Serialize};

use super::cgroup::CpuUsage;
use super::cpus::CpuSet;
use super::ResError;

const FILE: &str = "stat";
/// USER_HZ: the unit of /proc/stat's CPU columns and of a process's start time in its
/// `stat` (100 on every architecture Linux runs on but alpha). The one place the daemon
/// states it: the start-time shift, placement's time offset and this file use it.
pub const USER_HZ: u64 = 100;
/// One USER_HZ tick in ns: the unit of those columns and of a process's start time.
pub const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;
/// The kernel's columns: user nice system idle iowait irq softirq steal guest
/// guest_nice.
pub const COLUMNS: usize = 10;

/// What `stat` needs beyond the host's text.
#[derive(Clone, Debug)]
pub struct StatInputs<'a> {
    /// The visible CPUs, in host numbering.
    pub visible: &'a CpuSet,
    /// The cgroup's CPU usage (`None`: the host's lines are used).
    pub usage: Option<&'a CpuUsage>,
    /// The reader's uptime in ns: the elapsed time each CPU line adds up to.
    pub elapsed_ns: u64,
    /// The VPS's time-namespace boottime offset.
    pub boot_offset_ns: i64,
    /// The reader's, which `btime` is shifted by ([`crate::resources::VpsFacts`]).
    pub reader_offset_ns: i64,
    /// The host's boot as a wall-clock time in ns (`CLOCK_REALTIME − CLOCK_BOOTTIME`),
    /// whose fraction of a second the host's `btime` line has lost; `None`: that line's
    /// whole seconds are used.
    pub host_boot_wall_ns: Option<i128>,
    pub running: u32,
    pub blocked: u32,
    pub processes: u64,
    /// Whether `processes` is the VPS's fork count, from the process events (else the
    /// tasks it has now, which goes up and down).
    pub forks_counted: bool,
}

/// `btime` for a reader whose boottime offset is `offset_ns`: the host's boot less the
/// offset, to the second. The kernel subtracts from the exact boot time, so an offset
/// with a fraction of a second needs the host's boot to the ns (`boot_wall_ns`); it is
/// used when it agrees with the host's own line, `btime` (read at another moment).
fn shifted_btime(btime: i64, boot_wall_ns: Option<i128>, offset_ns: i64) -> i64 {
    const NS: i128 = 1_000_000_000;
    match boot_wall_ns {
        Some(w) if (w.div_euclid(NS) - i128::from(btime)).abs() <= 1 => {
            i64::try_from((w - i128::from(offset_ns)).div_euclid(NS)).unwrap_or(btime)
        }
        _ => btime - offset_ns.div_euclid(1_000_000_000),
    }
}

/// The host's `/proc/stat` text `host` with its `btime` for a reader whose clock is
/// `offset_ns` from the host's (a VPS with no cgroup to read, whose other lines are the
/// host's): every other line as it is.
pub fn host_with_btime(host: &[u8], boot_wall_ns: Option<i128>, offset_ns: i64) -> Vec<u8> {
    if offset_ns == 0 {
        return host.to_vec();
    }
    let text = String::from_utf8_lossy(host);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line
            .strip_prefix("btime ")
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            Some(b) => out.push_str(&format!(
                "btime {}\n",
                shifted_btime(b, boot_wall_ns, offset_ns)
            )),
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// The last values shown, which later renders never go below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFloors {
    pub cpu: [u64; COLUMNS],
    pub cpus: Vec<[u64; COLUMNS]>,
    pub processes: u64,
    /// The fork count the last render was given, from which `processes` goes on: a
    /// daemon counts the forks it sees, from the members it found at its start, so
    /// after a restart its count starts again below the floor, and `processes` then
    /// grows by the forks it counts from there ([`StatFloors::merge`] marks it).
    #[serde(default)]
    pub forks_seen: Option<u64>,
    /// The host's counts the VPS's `intr`, `ctxt` and `softirq` start from
    /// ([`HostCounts::base`]), fixed at the first render and kept across restarts.
    #[serde(default)]
    pub base: Option<HostCounts>,
}

/// The host's `intr` (total, then each interrupt), `ctxt` and `softirq` (total, then
/// each kind) counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounts {
    pub intr: Vec<u64>,
    pub ctxt: u64,
    pub softirq: Vec<u64>,
}

impl HostCounts {
    /// Pure: the counts in the host's `stat` text (missing lines count 0).
    fn parse(text: &str) -> Result<HostCounts, ResError> {
        let nums = |line: &str, rest: &str| -> Result<Vec<u64>, ResError> {
            rest.split_whitespace()
                .map(|n| {
                    n.parse()
                        .map_err(|_| malformed(format!("bad number in {line:?}")))
                })
                .collect()
        };
        let mut c = HostCounts::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("intr", rest)) => c.intr = nums(line, rest)?,
                Some(("softirq", rest)) => c.softirq = nums(line, rest)?,
                Some(("ctxt", rest)) => c.ctxt = nums(line, rest)?.first().copied().unwrap_or(0),
                _ => {}
            }
        }
        Ok(c)
    }

    /// The counts to start the VPS's from, so that they are the host's since the VPS's
    /// clock began (`elapsed_ns` ago on the host's boottime, `host_now_ns`): `vmstat`
    /// divides them by the VPS's CPU time for its first line, and the host's counts
    /// since its boot over a VPS's minutes would be rates a thousand times too high.
    /// The host's counts at that moment are not known (the daemon may start later), so
    /// they are taken as its average rate since boot would have them; every later
    /// change shows in full.
    fn base(&self, elapsed_ns: u64, host_now_ns: u64) -> HostCounts {
        let before = u128::from(host_now_ns.saturating_sub(elapsed_ns));
        let now = u128::from(host_now_ns.max(1));
        let part = |v: u64| u64::try_from(u128::from(v) * before / now).unwrap_or(v);
        // A line's first column is its total: the sum of the others (`softirq`) or more
        // (`intr` counts interrupts it does not list). Its base is the sum of theirs plus
        // the part of the rest, so that the total shown keeps to the columns shown as
        // the kernel's does (equal to their sum where the kernel's is), whatever the
        // rounding of each column.
        let line = |v: &[u64]| -> Vec<u64> {
            let Some((&total, each)) = v.split_first() else {
                return Vec::new();
            };
            let parts: Vec<u64> = each.iter().map(|&c| part(c)).collect();
            let listed: u64 = each.iter().sum();
            let base_total = parts.iter().sum::<u64>() + part(total.saturating_sub(listed));
            std::iter::once(base_total.min(total))
                .chain(parts)
                .collect()
        };
        HostCounts {
            intr: line(&self.intr),
            ctxt: part(self.ctxt),
            softirq: line(&self.softirq),
        }
    }

    /// Keeps, column by column, the smaller of two bases: a later one (a restart
    /// without the first's) must never make a count shown go back.
    fn merge(&mut self, other: &HostCounts) {
        let min_into = |a: &mut Vec<u64>, b: &[u64]| {
            for (i, &y) in b.iter().enumerate() {
                match a.get_mut(i) {
                    Some(x) => *x = (*x).min(y),
                    None => break,
                }
            }
            a.truncate(b.len());
        };
        min_into(&mut self.intr, &other.intr);
        min_into(&mut self.softirq, &other.softirq);
        self.ctxt = self.ctxt.min(other.ctxt);
    }
}

/// The host's counts line `line` with each column less its `base` column (0 past it).
/// Most columns of `intr` are interrupts that never came, 0 in the base too: those are
/// copied as they are, not parsed and printed again (the line has hundreds).
fn since(out: &mut String, line: &str, base: &[u64]) -> Result<(), ResError> {
    let mut words = line.split(' ');
    out.push_str(words.next().unwrap_or(""));
    for (i, word) in words.filter(|w| !w.is_empty()).enumerate() {
        out.push(' ');
        match base.get(i) {
            Some(&b) if b > 0 => {
                let v: u64 = word
                    .parse()
                    .map_err(|_| malformed(format!("bad number in {line:?}")))?;
                out.push_str(&v.saturating_sub(b).to_string());
            }
            _ => out.push_str(word),
        }
    }
    out.push('\n');
    Ok(())
}

impl StatFloors {
    /// Raises every floor to at least `other`'s.
    pub fn merge(&mut self, other: &StatFloors) {
        max_into(&mut self.cpu, &other.cpu);
        if self.cpus.len() < other.cpus.len() {
            self.cpus.resize(other.cpus.len(), [0; COLUMNS]);
        }
        for (a, b) in self.cpus.iter_mut().zip(&other.cpus) {
            max_into(a, b);
        }
        self.processes = self.processes.max(other.processes);
        // This daemon's fork count did not start where the other's ended.
        self.forks_seen = Some(u64::MAX);
        match (&mut self.base, &other.base) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.base = Some(b.clone()),
            _ => {}
        }
    }
}

fn max_into(a: &mut [u64; COLUMNS], b: &[u64; COLUMNS]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = (*x).max(*y);
    }
}

/// The CPU columns of each visible CPU, before floors.
pub fn cpu_columns(inp: &StatInputs, host_cpus: &[(u32, Vec<u64>)]) -> Vec<[u64; COLUMNS]> {
    let n = inp.visible.len().max(1) as u64;
    let elapsed = inp.elapsed_ns / NS_PER_TICK;
    let Some(usage) = inp.usage else {
        // No accounting: the host's own lines of those CPUs.
        return inp
            .visible
            .cpus()
            .iter()
            .map(|c| {
                let mut cols = [0; COLUMNS];
                if let Some((_, v)) = host_cpus.iter().find(|(id, _)| id == c) {
                    for (d, s) in cols.iter_mut().zip(v) {
                        *d = *s;
                    }
                }
                cols
            })
            .collect();
    };
    // An even share of `total` for the k-th of n CPUs, the remainder to the first.
    let share = |total: u64, k: u64| total / n + u64::from(k < total % n);
    let mut out = Vec::with_capacity(n as usize);
    let cpus: Vec<u32> = if inp.visible.is_empty() {
        vec![0]
    } else {
        inp.visible.cpus().to_vec()
    };
    let (seen_u, seen_s) = match &usage.per_cpu {
        Some(v) => cpus.iter().fold((0u64, 0u64), |(u, s), &c| {
            let (cu, cs) = v.get(c as usize).copied().unwrap_or((0, 0));
            (u + cu, s + cs)
        }),
        None => (0, 0),
    };
    let hidden_u = usage.user_ns.saturating_sub(seen_u);
    let hidden_s = usage.system_ns.saturating_sub(seen_s);
    for (k, &c) in cpus.iter().enumerate() {
        let k = k as u64;
        let (u, s) = match &usage.per_cpu {
            Some(v) => {
                let (cu, cs) = v.get(c as usize).copied().unwrap_or((0, 0));
                (cu + share(hidden_u, k), cs + share(hidden_s, k))
            }
            None => (share(usage.user_ns, k), share(usage.system_ns, k)),
        };
        let nice = share(usage.nice_ns, k);
        let (u, nice, s) = (u / NS_PER_TICK, nice / NS_PER_TICK, s / NS_PER_TICK);
        let mut cols = [0; COLUMNS];
        cols[0] = u;
        cols[1] = nice;
        cols[2] = s;
        cols[3] = elapsed.saturating_sub(u + nice + s);
        out.push(cols);
    }
    out
}

/// Raises one CPU's columns `c` (user, nice and system from the cgroup, idle the rest
/// of `elapsed` ticks) to at least `floor`, the last shown, as the kernel's tick
/// accounting moves them: each tick goes to one column, so a CPU's columns add up to
/// the ticks elapsed. The cgroup counts its usage in ns and the clock is cut to the
/// tick apart from it, so usage may cross a tick before the clock does; shown then,
/// with idle held at its floor, the CPU's sum would run ahead of the clock (`top`
/// started in an idle VPS read the tick as 100 % system). So the busy columns grow by
/// no more than the ticks elapsed since the last shown, and what is held back shows at
/// the next ticks.
fn settle(c: &mut [u64; COLUMNS], floor: &[u64; COLUMNS], elapsed: u64) {
    const IDLE: usize = 3;
    let mut room = elapsed.saturating_sub(floor.iter().sum());
    let mut busy = 0;
    for i in (0..COLUMNS).filter(|&i| i != IDLE) {
        let grow = c[i].saturating_sub(floor[i]).min(room);
        room -= grow;
        c[i] = floor[i] + grow;
        busy += c[i];
    }
    c[IDLE] = floor[IDLE].max(elapsed.saturating_sub(busy));
}

/// The host CPUs that have a `cpuN` line (the online ones when it was read).
pub fn online(host: &[u8]) -> Result<CpuSet, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| malformed("not UTF-8".into()))?;
    let mut cpus = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let id = rest.split(' ').next().unwrap_or("");
        if !id.is_empty() {
            cpus.push(
                id.parse()
                    .map_err(|_| malformed(format!("bad cpu line {line:?}")))?,
            );
        }
    }
    Ok(CpuSet::from_cpus(cpus))
}

/// Renders the VPS's stat, raising `floors` to what it shows.
pub fn render(host: &[u8], inp: &StatInputs, floors: &mut StatFloors) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| malformed("not UTF-8".into()))?;
    let mut host_cpus: Vec<(u32, Vec<u64>)> = Vec::new();
    let mut ncols = COLUMNS;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let (id, nums) = rest.split_once(' ').unwrap_or((rest, ""));
        let nums: Vec<u64> = nums
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .map_err(|_| malformed(format!("bad number in {line:?}")))
            })
            .collect::<Result<_, _>>()?;
        if id.is_empty() {
            ncols = nums.len().clamp(4, COLUMNS);
        } else {
            let id = id
                .parse()
                .map_err(|_| malformed(format!("bad cpu line {line:?}")))?;
            host_cpus.push((id, nums));
        }
    }
    let mut cols = cpu_columns(inp, &host_cpus);
    floors
        .cpus
        .resize(cols.len().max(floors.cpus.len()), [0; COLUMNS]);
    let elapsed = inp.elapsed_ns / NS_PER_TICK;
    for (c, f) in cols.iter_mut().zip(floors.cpus.iter_mut()) {
        match inp.usage {
            Some(_) => settle(c, f, elapsed),
            None => max_into(c, f),
        }
        *f = *c;
    }
    let mut total = [0u64; COLUMNS];
    for c in &cols {
        for (t, v) in total.iter_mut().zip(c) {
            *t += v;
        }
    }
    max_into(&mut total, &floors.cpu);
    floors.cpu = total;
    floors.processes = match (inp.forks_counted, floors.forks_seen) {
        (true, Some(seen)) if inp.processes >= seen => {
            floors.processes.saturating_add(inp.processes - seen)
        }
        // Counted anew since a restart: from the floor on.
        (true, Some(_)) => floors.processes,
        _ => floors.processes.max(inp.processes),
    };
    floors.forks_seen = inp.forks_counted.then_some(inp.processes);
    let base: &HostCounts = match floors.base {
        Some(ref b) => b,
        None => {
            let host_now = inp.elapsed_ns.saturating_add_signed(-inp.boot_offset_ns);
            floors
                .base
                .insert(HostCounts::parse(text)?.base(inp.elapsed_ns, host_now))
        }
    };

    let push_cols = |out: &mut String, label: &str, cols: &[u64; COLUMNS]| {
        out.push_str(label);
        for v in &cols[..ncols] {
            out.push(' ');
            out.push_str(&v.to_string());
        }
        out.push('\n');
    };
    let mut out = String::with_capacity(text.len());
    let mut saw_cpu = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu") {
            if rest.starts_with(' ') {
                saw_cpu = true;
                // "cpu  %llu": the label is followed by two spaces.
                push_cols(&mut out, "cpu ", &total);
                for (k, c) in cols.iter().enumerate() {
                    push_cols(&mut out, &format!("cpu{k}"), c);
                }
            }
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "btime" => {
                let b: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| malformed(format!("bad btime {value:?}")))?;
                let shifted = shifted_btime(b, inp.host_boot_wall_ns, inp.reader_offset_ns);
                out.push_str(&format!("btime {shifted}\n"));
            }
            "intr" => since(&mut out, line, &base.intr)?,
            "softirq" => since(&mut out, line, &base.softirq)?,
            "ctxt" => since(&mut out, line, &[base.ctxt])?,
            "processes" => out.push_str(&format!("processes {}\n", floors.processes)),
            "procs_running" => out.push_str(&format!("procs_running {}\n", inp.running)),
            "procs_blocked" => out.push_str(&format!("procs_blocked {}\n", inp.blocked)),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !saw_cpu {
        return Err(malformed("no cpu line".into()));
    }
    Ok(out.into_bytes())
}

fn malformed(what: String) -> ResError {
    ResError::Malformed { file: FILE, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[u8] = include_bytes!("testdata/stat.host");
    const SEC: u64 = 1_000_000_000;

    fn lines(out: &[u8]) -> Vec<String> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn cols(out: &[u8], label: &str) -> Vec<u64> {
        let l = lines(out)
            .into_iter()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no {label}"));
        l.split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect()
    }

    fn inputs<'a>(visible: &'a CpuSet, usage: Option<&'a CpuUsage>, secs: u64) -> StatInputs<'a> {
        StatInputs {
            visible,
            usage,
            elapsed_ns: secs * SEC,
            boot_offset_ns: 0,
            reader_offset_ns: 0,
            host_boot_wall_ns: None,
            running: 2,
            blocked: 1,
            processes: 7,
            forks_counted: true,
        }
    }

    #[test]
    fn one_cpu_from_v2_totals() {
        let one = CpuSet::from_cpus([1]);
        let usage = CpuUsage {
            user_ns: 3 * SEC,
            nice_ns: 0,
            system_ns: SEC,
            per_cpu: None,
        };
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&one, Some(&usage), 10), &mut f).unwrap();
        let l = lines(&out);
        assert_eq!(l[0], "cpu  300 0 100 600 0 0 0 0 0 0");
        assert_eq!(l[1], "cpu0 300 0 100 600 0 0 0 0 0 0");
        assert!(l[2].starts_with("intr "));
        assert!(!l.iter().any(|x| x.starts_with("cpu1")));
        assert_eq!(cols(&out, "processes"), vec![7]);
        assert_eq!(cols(&out, "procs_running"), vec![2]);
        assert_eq!(cols(&out, "procs_blocked"), vec![1]);
        assert_eq!(cols(&out, "btime"), vec![1796468071]);
        // Same line order and count as the host's for a 1-CPU host.
        assert_eq!(l.len(), lines(HOST).len() - 1);
    }

    #[test]
    fn per_cpu_split_and_hidden_cpus() {
        let usage = CpuUsage {
            user_ns: 5 * SEC,
            nice_ns: 0,
            system_ns: 2 * SEC,
            per_cpu: Some(vec![(SEC, SEC), (4 * SEC, SEC)]),
        };
        let both = CpuSet::from_cpus([0, 1]);
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&both, Some(&usage), 10), &mut f).unwrap();
        assert_eq!(cols(&out, "cpu0")[..4], [100, 0, 100, 800]);
        assert_eq!(cols(&out, "cpu1")[..4], [400, 0, 100, 500]);
        assert_eq!(cols(&out, "cpu")[..4], [500, 0, 200, 1300]);
        // A quota shows only CPU 0: CPU 1's time is folded into it.
        let first = CpuSet::from_cpus([0]);
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&first, Some(&usage), 10), &mut f).unwrap();
        assert_eq!(cols(&out, "cpu0")[..4], [500, 0, 200, 300]);
    }

    #[test]
    fn half_a_cpu_busy_for_two_seconds() {
        // The issue's check: under --cpus 0.5 a 2 s busy loop moves the cpu line by
        // 50 % of one CPU and idle makes up the rest.
        let one = CpuSet::from_cpus([0]);
        let mut f = StatFloors::default();
        let u0 = CpuUsage {
            user_ns: SEC,
            ..Default::default()
        };
        let a = render(HOST, &inputs(&one, Some(&u0), 100), &mut f).unwrap();
        let u1 = CpuUsage {
            user_ns: 2 * SEC,
            ..Default::default()
        };
        let b = render(HOST, &inputs(&one, Some(&u1), 102), &mut f).unwrap();
        let (a, b) = (cols(&a, "cpu"), cols(&b, "cpu"));
        assert_eq!(b[0] - a[0], 100);
        assert_eq!(b[3] - a[3], 100);
    }

    #[test]
    fn a_cpu_adds_up_to_the_ticks_elapsed() {
        let one = CpuSet::from_cpus([0]);
        let mut f = StatFloors::default();
        let at = |system_ms: u64, elapsed_ms: u64, f: &mut StatFloors| {
            let usage = CpuUsage {
                system_ns: system_ms * 1_000_000,
                ..Default::default()
            };
            let mut inp = inputs(&one, Some(&usage), 0);
            inp.elapsed_ns = elapsed_ms * 1_000_000;
            cols(&render(HOST, &inp, f).unwrap(), "cpu0")[..4].to_vec()
        };
        assert_eq!(at(1000, 10_000, &mut f), [0, 0, 100, 900]);
        // Usage crosses a tick, the clock does not yet: nothing moves, where the
        // system column alone moving would read as a CPU 100 % busy.
        assert_eq!(at(1010, 10_005, &mut f), [0, 0, 100, 900]);
        // The clock's tick comes: it goes to the usage held back.
        assert_eq!(at(1010, 10_010, &mut f), [0, 0, 101, 900]);
        // An idle tick goes to idle.
        assert_eq!(at(1010, 10_020, &mut f), [0, 0, 101, 901]);
        // More usage than ticks since: the ticks there are, the rest later.
        assert_eq!(at(1050, 10_030, &mut f), [0, 0, 102, 901]);
        assert_eq!(at(1050, 10_100, &mut f), [0, 0, 105, 905]);
    }

    #[test]
    fn counters_never_go_back() {
        let two = CpuSet::from_cpus([0, 1]);
        let one = CpuSet::from_cpus([0]);
        let usage = CpuUsage {
            user_ns: 10 * SEC,
            nice_ns: SEC,
            system_ns: 4 * SEC,
            per_cpu: None,
        };
        let mut f = StatFloors::default();
        let a = render(HOST, &inputs(&two, Some(&usage), 50), &mut f).unwrap();
        // The cpuset shrinks, the clock is read a bit earlier by another reader,
        // processes is reported lower: nothing shown goes down.
        let mut inp = inputs(&one, Some(&usage), 49);
        inp.processes = 3;
        let b = render(HOST, &inp, &mut f).unwrap();
        for (x, y) in cols(&a, "cpu").iter().zip(cols(&b, "cpu")) {
            assert!(y >= *x);
        }
        for (x, y) in cols(&a, "cpu0").iter().zip(cols(&b, "cpu0")) {
            assert!(y >= *x);
        }
        assert_eq!(cols(&b, "processes"), vec![7]);
        // Floors survive a restart through serde.
        let json = serde_json::to_string(&f).unwrap();
        let g: StatFloors = serde_json::from_str(&json).unwrap();
        assert_eq!(f, g);
        let mut h = StatFloors::default();
        h.merge(&g);
        // The restored floors, and the mark that this daemon's fork count starts anew.
        assert_eq!(h.forks_seen, Some(u64::MAX));
        assert_eq!(
            StatFloors {
                forks_seen: g.forks_seen,
                ..h
            },
            g
        );
    }

    /// `processes` counts every fork since the VPS began: a restarted daemon counts its
    /// forks from the members it found, below the count shown before, and `processes`
    /// goes on from the floor by the forks counted since (it stood still before).
    #[test]
    fn processes_goes_on_across_a_restart() {
        let one = CpuSet::from_cpus([0]);
        let shown = |f: &mut StatFloors, forks: u64, counted: bool| {
            let mut inp = inputs(&one, None, 10);
            inp.processes = forks;
            inp.forks_counted = counted;
            cols(&render(HOST, &inp, f).unwrap(), "processes")[0]
        };
        let mut f = StatFloors::default();
        assert_eq!(shown(&mut f, 10, true), 10);
        assert_eq!(shown(&mut f, 15, true), 15);
        // A new daemon: the floors restored, its count begun at the 3 members it found.
        let mut g = StatFloors::default();
        g.merge(&f);
        assert_eq!(shown(&mut g, 3, true), 15);
        assert_eq!(shown(&mut g, 5, true), 17);
        assert_eq!(shown(&mut g, 9, true), 21);
        // Without the process events, the tasks of now: a floor, never a sum.
        let mut h = StatFloors::default();
        assert_eq!(shown(&mut h, 4, false), 4);
        assert_eq!(shown(&mut h, 2, false), 4);
        assert_eq!(shown(&mut h, 6, false), 6);
    }

    #[test]
    fn nice_and_no_accounting() {
        let two = CpuSet::from_cpus([0, 1]);
        let usage = CpuUsage {
            user_ns: 2 * SEC,
            nice_ns: 2 * SEC,
            system_ns: 0,
            per_cpu: None,
        };
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&two, Some(&usage), 10), &mut f).unwrap();
        assert_eq!(cols(&out, "cpu1")[..4], [100, 100, 0, 800]);
        // No usage: the host's lines, renumbered.
        let second = CpuSet::from_cpus([1]);
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&second, None, 10), &mut f).unwrap();
        assert_eq!(
            cols(&out, "cpu0"),
            vec![11303, 0, 1347, 19716, 110, 0, 12, 7, 0, 0]
        );
        assert_eq!(cols(&out, "cpu"), cols(&out, "cpu0"));
    }

    #[test]
    fn online_cpus() {
        assert_eq!(online(HOST).unwrap().cpus(), &[0, 1]);
        assert!(online(b"cpuX 1\n").is_err());
        // The total line has no number; CPUs off line leave gaps.
        let gapped = b"cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 5 0 2 50 0 0 0 0 0 0\n\
                       cpu3 5 0 3 50 0 0 0 0 0 0\nintr 1 2\nctxt 7\n";
        assert_eq!(online(gapped).unwrap().cpus(), &[0, 3]);
        assert!(online(b"intr 1\n").unwrap().is_empty());
    }

    #[test]
    fn host_counts_start_with_the_vps_clock() {
        let one = CpuSet::from_cpus([0]);
        // No time namespace: the VPS's clock is the host's, and so are the counts.
        let mut f = StatFloors::default();
        let out = render(HOST, &inputs(&one, None, 100), &mut f).unwrap();
        assert_eq!(cols(&out, "ctxt"), vec![208317]);
        assert_eq!(cols(&out, "softirq")[..3], [64168, 0, 11354]);
        assert_eq!(cols(&out, "intr").len(), cols(HOST, "intr").len());

        // A VPS 10 s old on a host up 100 s: its counts start from 90 % of the host's
        // (the host's average rate since boot over the VPS's 10 s).
        let mut f = StatFloors::default();
        let mut inp = inputs(&one, None, 10);
        inp.boot_offset_ns = -90 * SEC as i64;
        let out = render(HOST, &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "ctxt"), vec![208317 - 208317 * 9 / 10]);
        // Each column less 90 % of it, rounded down; the totals keep to the columns.
        let softirq = cols(&out, "softirq");
        assert_eq!(softirq[1..3], [0, 11354 - 10218]);
        assert_eq!(softirq[0], softirq[1..].iter().sum::<u64>());
        let host_softirq = cols(HOST, "softirq");
        assert_eq!(host_softirq[0], host_softirq[1..].iter().sum::<u64>());
        let (intr, host_intr) = (cols(&out, "intr"), cols(HOST, "intr"));
        let unlisted = host_intr[0] - host_intr[1..].iter().sum::<u64>();
        assert_eq!(
            intr[0] - intr[1..].iter().sum::<u64>(),
            unlisted - unlisted * 9 / 10
        );
        let base = f.base.clone().expect("the base is kept");

        // Later, every change of the host's counts shows in full: the base is fixed.
        let later = String::from_utf8(HOST.to_vec())
            .unwrap()
            .replace("ctxt 208317", "ctxt 208417")
            .replace("softirq 64168 0 11354", "softirq 64178 0 11364");
        let mut inp = inputs(&one, None, 20);
        inp.boot_offset_ns = -90 * SEC as i64;
        let out = render(later.as_bytes(), &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "ctxt"), vec![208417 - base.ctxt]);
        let softirq = cols(&out, "softirq");
        assert_eq!(softirq[1..3], [0, 11364 - 10218]);
        assert_eq!(softirq[0], softirq[1..].iter().sum::<u64>());
        assert_eq!(f.base.as_ref(), Some(&base));
    }

    #[test]
    fn a_restored_base_never_makes_a_count_go_back() {
        let mut now = StatFloors {
            base: Some(HostCounts {
                intr: vec![10, 5, 7],
                ctxt: 30,
                softirq: vec![4, 4],
            }),
            ..StatFloors::default()
        };
        let saved = StatFloors {
            base: Some(HostCounts {
                intr: vec![12, 3],
                ctxt: 20,
                softirq: vec![5, 1, 9],
            }),
            ..StatFloors::default()
        };
        now.merge(&saved);
        let base = now.base.unwrap();
        assert_eq!(base.intr, vec![10, 3]);
        assert_eq!(base.ctxt, 20);
        assert_eq!(base.softirq, vec![4, 1]);
        // Floors saved before there was a base read back without one.
        let old: StatFloors =
            serde_json::from_str(r#"{"cpu":[0,0,0,0,0,0,0,0,0,0],"cpus":[],"processes":3}"#)
                .unwrap();
        assert_eq!(old.base, None);
        let mut none = StatFloors::default();
        none.merge(&saved);
        assert_eq!(none.base, saved.base);
    }

    #[test]
    fn btime_follows_the_time_namespace() {
        let one = CpuSet::from_cpus([0]);
        let mut f = StatFloors::default();
        let mut inp = inputs(&one, None, 1);
        // The VPS started 1000.5 s after the host booted: offset −1000.5 s, its
        // readers' too.
        inp.boot_offset_ns = -1_000_500_000_000;
        inp.reader_offset_ns = inp.boot_offset_ns;
        let out = render(HOST, &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "btime"), vec![1796468071 + 1001]);
        // The kernel subtracts from the exact boot: booted at …071.4 s, the VPS's boot
        // is …071.4 + 1000.5 = …1071.9 s, cut to 1796469071.
        inp.host_boot_wall_ns = Some(1_796_468_071_400_000_000);
        let out = render(HOST, &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "btime"), vec![1796468071 + 1000]);
        // A boot time that is not the host line's (a clock set in between) is not used.
        inp.host_boot_wall_ns = Some(1_796_468_091_400_000_000);
        let out = render(HOST, &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "btime"), vec![1796468071 + 1001]);
        // A reader in a time namespace of its own (`unshare -T --boottime 100000`) is
        // told its own boot, 100000 s before the host's; the CPU lines stay the VPS's.
        let vps_cpu = cols(&out, "cpu");
        inp.reader_offset_ns = 100_000 * SEC as i64;
        inp.host_boot_wall_ns = None;
        let out = render(HOST, &inp, &mut f).unwrap();
        assert_eq!(cols(&out, "btime"), vec![1796468071 - 100_000]);
        assert_eq!(cols(&out, "cpu"), vps_cpu);
    }

    #[test]
    fn a_host_btime_is_shifted_alone() {
        let out = host_with_btime(HOST, None, 100 * SEC as i64);
        assert_eq!(cols(&out, "btime"), vec![1796468071 - 100]);
        let host = String::from_utf8_lossy(HOST);
        let out = String::from_utf8(out).unwrap();
        let others = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("btime"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(others(&out), others(&host));
        assert_eq!(host_with_btime(HOST, None, 0), HOST);
    }

    #[test]
    fn odd_input() {
        let one = CpuSet::from_cpus([0]);
        let mut f = StatFloors::default();
        for bad in [
            &b"intr 1\n"[..],
            b"cpu  x\n",
            b"cpu  1 2 3 4\nbtime z\n",
            &[0xff],
        ] {
            assert!(render(bad, &inputs(&one, None, 1), &mut f).is_err());
        }
        let mut f = StatFloors::default();
        let out = render(b"cpu  1 2 3 4\n", &inputs(&one, None, 1), &mut f).unwrap();
        assert_eq!(out, b"cpu  0 0 0 0\ncpu0 0 0 0 0\n");
    }
}
