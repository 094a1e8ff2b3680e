//! `/proc/meminfo` of a VPS.
//!
//! The host's file is rewritten line by line, in its own order and with the kernel's
//! layout (`show_val_kb`: a 16-column label, the value right-aligned in 8 columns,
//! " kB"), so every parser keeps working. Each `kB` line is one of:
//!
//! - **From the cgroup**: MemTotal = min(effective limit, host MemTotal); MemFree =
//!   min(MemTotal − usage, host MemFree); MemAvailable = min(MemTotal − usage +
//!   reclaimable file pages and slab, host MemAvailable), so an allocation in the VPS
//!   lowers it by its size, and a host short of memory is not hidden; Cached, the
//!   LRU lines, Unevictable, Shmem, AnonPages, Mapped, Dirty, Writeback, SwapCached,
//!   AnonHugePages and (v2 only) Slab, SReclaimable, SUnreclaim, KReclaimable,
//!   KernelStack, PageTables, SecPageTables, Percpu, Zswap, Zswapped, ShmemHugePages,
//!   FileHugePages from `memory.stat`. SwapTotal = min(swap limit, host SwapTotal),
//!   SwapFree = min(SwapTotal − swap used, host SwapFree). Buffers is 0: the cgroup
//!   counts block-device pages as file pages, which are already in Cached.
//! - **Charged to the cgroup but not reported** by its version (on v1: the slab,
//!   kernel stack, page table, per-cpu and zswap lines): 0. The host's figure sums
//!   every tenant's memory; the VPS's own share is inside its usage anyway.
//! - **Host-wide state with no cgroup counterpart** (Mlocked, NFS_Unstable, Bounce,
//!   WritebackTmp, CommitLimit, Committed_AS, VmallocUsed, HardwareCorrupted, Cma*,
//!   DirectMap*, Hugetlb, …): the host's value, clamped so that it never contradicts
//!   MemTotal (Mlocked ≤ Unevictable; CommitLimit and Committed_AS ≤ MemTotal +
//!   SwapTotal; the others ≤ MemTotal). VmallocTotal and VmallocChunk are sizes of
//!   kernel address space, not memory, and stay as they are; so do the lines without
//!   " kB" (HugePages_*), which count huge pages that a cgroup does not own.
//!
//! Without a memory cgroup (a VPS in the root of every memory hierarchy) the host's
//! text is returned unchanged.

use super::cgroup::MemoryState;
use super::ResError;

const FILE: &str = "meminfo";

/// Renders the VPS's meminfo from the host's text and the cgroup's memory state.
pub fn render(host: &[u8], mem: Option<&MemoryState>) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| malformed("not UTF-8".into()))?;
    let Some(mem) = mem else {
        return Ok(host.to_vec());
    };
    let lines = parse(text)?;
    let host_kb = |key: &str| -> Option<u64> {
        lines
            .iter()
            .find(|l| l.key == key)
            .and_then(|l| l.kb)
            .map(|v| v.value)
    };
    let need = |key: &'static str| host_kb(key).ok_or_else(|| malformed(format!("no {key}")));
    let host_total = need("MemTotal")?.saturating_mul(1024);
    let host_free = need("MemFree")?.saturating_mul(1024);
    let host_avail = host_kb("MemAvailable").map_or(host_free, |v| v.saturating_mul(1024));
    let host_swap_total = host_kb("SwapTotal").unwrap_or(0).saturating_mul(1024);
    let host_swap_free = host_kb("SwapFree").unwrap_or(0).saturating_mul(1024);

    let s = &mem.stat;
    let total = mem_total(mem, host_total);
    let headroom = total.saturating_sub(mem.usage);
    let free = mem_free(mem, host_total, host_free);
    let reclaimable =
        s.active_file.unwrap_or(0) + s.inactive_file.unwrap_or(0) + s.slab_reclaimable.unwrap_or(0);
    let avail = headroom
        .saturating_add(reclaimable)
        .min(host_avail)
        .min(total);
    let swap_total = mem
        .swap_limit
        .map_or(host_swap_total, |l| l.min(host_swap_total));
    let swap_free = swap_total
        .saturating_sub(mem.swap_usage)
        .min(host_swap_free);
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let slab = sum(s.slab_reclaimable, s.slab_unreclaimable);
    let unevictable = s.unevictable.unwrap_or(0);

    let mut out = String::with_capacity(host.len());
    for line in &lines {
        let Some(kb) = line.kb else {
            out.push_str(line.raw);
            out.push('\n');
            continue;
        };
        let computed: Option<u64> = match line.key {
            "MemTotal" => Some(total),
            "MemFree" => Some(free),
            "MemAvailable" => Some(avail),
            "Buffers" => Some(0),
            "Cached" => Some(s.file.unwrap_or(0)),
            "SwapCached" => Some(s.swapcached.unwrap_or(0)),
            "Active" => Some(sum(s.active_anon, s.active_file).unwrap_or(0)),
            "Inactive" => Some(sum(s.inactive_anon, s.inactive_file).unwrap_or(0)),
            "Active(anon)" => Some(s.active_anon.unwrap_or(0)),
            "Inactive(anon)" => Some(s.inactive_anon.unwrap_or(0)),
            "Active(file)" => Some(s.active_file.unwrap_or(0)),
            "Inactive(file)" => Some(s.inactive_file.unwrap_or(0)),
            "Unevictable" => Some(unevictable),
            "SwapTotal" => Some(swap_total),
            "SwapFree" => Some(swap_free),
            "Dirty" => Some(s.file_dirty.unwrap_or(0)),
            "Writeback" => Some(s.file_writeback.unwrap_or(0)),
            "AnonPages" => Some(s.anon.unwrap_or(0)),
            "Mapped" => Some(s.file_mapped.unwrap_or(0)),
            "Shmem" => Some(s.shmem.unwrap_or(0)),
            "KReclaimable" | "SReclaimable" => Some(s.slab_reclaimable.unwrap_or(0)),
            "Slab" => Some(slab.unwrap_or(0)),
            "SUnreclaim" => Some(s.slab_unreclaimable.unwrap_or(0)),
            "KernelStack" => Some(s.kernel_stack.unwrap_or(0)),
            "PageTables" => Some(s.pagetables.unwrap_or(0)),
            "SecPageTables" => Some(s.sec_pagetables.unwrap_or(0)),
            "Percpu" => Some(s.percpu.unwrap_or(0)),
            "Zswap" => Some(s.zswap.unwrap_or(0)),
            "Zswapped" => Some(s.zswapped.unwrap_or(0)),
            "AnonHugePages" => Some(s.anon_thp.unwrap_or(0)),
            "ShmemHugePages" => Some(s.shmem_thp.unwrap_or(0)),
            "FileHugePages" => Some(s.file_thp.unwrap_or(0)),
            _ => None,
        };
        let bytes = match (computed, line.key) {
            (Some(v), _) => v,
            (None, "VmallocTotal" | "VmallocChunk") => {
                out.push_str(line.raw);
                out.push('\n');
                continue;
            }
            (None, "Mlocked") => kb.value.saturating_mul(1024).min(unevictable),
            (None, "CommitLimit" | "Committed_AS") => kb
                .value
                .saturating_mul(1024)
                .min(total.saturating_add(swap_total)),
            (None, _) => kb.value.saturating_mul(1024).min(total),
        };
        push_kb(&mut out, line.key, bytes / 1024);
    }
    Ok(out.into_bytes())
}

/// The VPS's MemTotal in bytes: min(effective limit, the host's MemTotal).
pub fn mem_total(mem: &MemoryState, host_total: u64) -> u64 {
    mem.limit.map_or(host_total, |l| l.min(host_total))
}

/// The VPS's MemFree in bytes: min(MemTotal − usage, the host's MemFree), so that a
/// host short of memory is not hidden. vmstat's `nr_free_pages` shows the same.
pub fn mem_free(mem: &MemoryState, host_total: u64, host_free: u64) -> u64 {
    mem_total(mem, host_total)
        .saturating_sub(mem.usage)
        .min(host_free)
}

/// `show_val_kb`'s layout: the label ("Key:") padded to 16 columns and the value in
/// 8, so that numbers end in column 24; a longer label ("HardwareCorrupted: %5lu")
/// is followed by one space and keeps the same end column.
fn push_kb(out: &mut String, key: &str, kb: u64) {
    let mut label = format!("{key}:");
    if label.len() < 16 {
        label = format!("{label:<16}");
    } else {
        label.push(' ');
    }
    let width = 24usize.saturating_sub(label.len());
    out.push_str(&format!("{label}{kb:>width$} kB\n"));
}

struct Line<'a> {
    raw: &'a str,
    key: &'a str,
    kb: Option<Kb>,
}

#[derive(Clone, Copy)]
struct Kb {
    value: u64,
}

/// The host's lines: "Key:   value kB" (a `kb` line) or anything else (kept as is).
fn parse(text: &str) -> Result<Vec<Line<'_>>, ResError> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let Some((key, rest)) = raw.split_once(':') else {
            return Err(malformed(format!("line without a key: {raw:?}")));
        };
        let kb = match rest.trim().strip_suffix(" kB") {
            Some(v) => Some(Kb {
                value: v
                    .trim()
                    .parse()
                    .map_err(|_| malformed(format!("bad value in {raw:?}")))?,
            }),
            None => None,
        };
        lines.push(Line { raw, key, kb });
    }
    Ok(lines)
}

fn malformed(what: String) -> ResError {
    ResError::Malformed { file: FILE, what }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::cgroup::{parse_memory_stat, MemStat};

    const HOST: &[u8] = include_bytes!("testdata/meminfo.host");
    const MIB: u64 = 1 << 20;

    fn value(text: &[u8], key: &str) -> u64 {
        let text = std::str::from_utf8(text).unwrap();
        let line = text
            .lines()
            .find(|l| l.split(':').next() == Some(key))
            .unwrap_or_else(|| panic!("no {key}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn v1_state(limit: u64, usage: u64) -> MemoryState {
        let parsed = parse_memory_stat(include_str!("testdata/memory.stat.v1"), true);
        MemoryState {
            limit: Some(limit),
            swap_limit: None,
            usage,
            swap_usage: 0,
            stat: parsed.stat,
        }
    }

    #[test]
    fn layout_is_the_kernels_byte_for_byte() {
        // Rewriting every kB line with its own value gives back the host's file.
        let text = std::str::from_utf8(HOST).unwrap();
        let mut out = String::new();
        for line in parse(text).unwrap() {
            match line.kb {
                Some(kb) => push_kb(&mut out, line.key, kb.value),
                None => {
                    out.push_str(line.raw);
                    out.push('\n');
                }
            }
        }
        assert_eq!(out.as_bytes(), HOST);
        // A label longer than 16 columns keeps the value's end column (%5lu).
        let mut long = String::new();
        push_kb(&mut long, "HardwareCorrupted", 0);
        assert_eq!(long, "HardwareCorrupted:     0 kB\n");
    }

    #[test]
    fn no_cgroup_is_the_host() {
        assert_eq!(render(HOST, None).unwrap(), HOST);
    }

    #[test]
    fn limit_sets_total_and_keeps_line_order() {
        let out = render(HOST, Some(&v1_state(256 * MIB, 20 * MIB))).unwrap();
        assert_eq!(value(&out, "MemTotal"), 262144);
        assert_eq!(value(&out, "MemFree"), 262144 - 20 * 1024);
        let keys = |t: &[u8]| -> Vec<String> {
            std::str::from_utf8(t)
                .unwrap()
                .lines()
                .map(|l| l.split(':').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(keys(&out), keys(HOST));
        // Same label/value columns as the kernel.
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("MemTotal:         262144 kB\n"), "{text}");
        // Host-wide values are clamped to MemTotal; address space sizes are kept.
        assert!(value(&out, "DirectMap1G") <= 262144);
        assert_eq!(value(&out, "VmallocTotal"), value(HOST, "VmallocTotal"));
        assert_eq!(value(&out, "HugePages_Total"), 0);
        // Cached and the LRU lines come from memory.stat (total_* keys on v1).
        assert_eq!(value(&out, "Cached"), 2936832 / 1024);
        assert_eq!(value(&out, "Inactive(file)"), 405504 / 1024);
        assert_eq!(value(&out, "Buffers"), 0);
        // v1 does not report slab: 0, not the host's.
        assert_eq!(value(&out, "Slab"), 0);
        assert!(value(&out, "Mlocked") <= value(&out, "Unevictable"));
        // No limit on swap and no swap on the host.
        assert_eq!(value(&out, "SwapTotal"), 0);
    }

    #[test]
    fn an_allocation_moves_used_and_available() {
        let before = render(HOST, Some(&v1_state(256 * MIB, 20 * MIB))).unwrap();
        let mut after_state = v1_state(256 * MIB, 120 * MIB);
        after_state.stat.anon = Some(after_state.stat.anon.unwrap() + 100 * MIB);
        let after = render(HOST, Some(&after_state)).unwrap();
        // procps 4: used = MemTotal - MemAvailable.
        let used = |t: &[u8]| value(t, "MemTotal") - value(t, "MemAvailable");
        assert!(used(&after) - used(&before) >= 95 * 1024);
        assert!(value(&before, "MemAvailable") - value(&after, "MemAvailable") >= 95 * 1024);
    }

    #[test]
    fn no_limit_is_the_host_total_and_host_pressure_shows() {
        let mut st = v1_state(0, 20 * MIB);
        st.limit = None;
        let out = render(HOST, Some(&st)).unwrap();
        assert_eq!(value(&out, "MemTotal"), value(HOST, "MemTotal"));
        // MemFree/MemAvailable never exceed the host's.
        assert!(value(&out, "MemFree") <= value(HOST, "MemFree"));
        assert!(value(&out, "MemAvailable") <= value(HOST, "MemAvailable"));
        // A limit above the host's RAM is the host's RAM.
        let big = v1_state(1 << 50, 20 * MIB);
        let out = render(HOST, Some(&big)).unwrap();
        assert_eq!(value(&out, "MemTotal"), value(HOST, "MemTotal"));
    }

    #[test]
    fn usage_above_limit_does_not_underflow() {
        let out = render(HOST, Some(&v1_state(10 * MIB, 20 * MIB))).unwrap();
        assert_eq!(value(&out, "MemTotal"), 10240);
        assert_eq!(value(&out, "MemFree"), 0);
        assert!(value(&out, "MemAvailable") <= 10240);
    }

    #[test]
    fn swap_follows_the_limit_and_usage() {
        let host = String::from_utf8(HOST.to_vec())
            .unwrap()
            .replace("SwapTotal:             0 kB", "SwapTotal:       4194300 kB")
            .replace("SwapFree:              0 kB", "SwapFree:        4000000 kB");
        let mut st = v1_state(256 * MIB, 20 * MIB);
        st.swap_limit = Some(512 * MIB);
        st.swap_usage = 12 * MIB;
        let out = render(host.as_bytes(), Some(&st)).unwrap();
        assert_eq!(value(&out, "SwapTotal"), 524288);
        assert_eq!(value(&out, "SwapFree"), 524288 - 12 * 1024);
        st.swap_limit = Some(0);
        let out = render(host.as_bytes(), Some(&st)).unwrap();
        assert_eq!(value(&out, "SwapTotal"), 0);
        assert_eq!(value(&out, "SwapFree"), 0);
    }

    #[test]
    fn v2_stat_fills_the_slab_lines() {
        let parsed = parse_memory_stat(include_str!("testdata/memory.stat.v2"), false);
        let st = MemoryState {
            limit: Some(512 * MIB),
            swap_limit: Some(0),
            usage: 64 * MIB,
            swap_usage: 0,
            stat: parsed.stat,
        };
        let out = render(HOST, Some(&st)).unwrap();
        let s = &st.stat;
        assert_eq!(
            value(&out, "Slab"),
            (s.slab_reclaimable.unwrap() + s.slab_unreclaimable.unwrap()) / 1024
        );
        assert_eq!(
            value(&out, "SReclaimable"),
            s.slab_reclaimable.unwrap() / 1024
        );
        assert_eq!(value(&out, "KernelStack"), s.kernel_stack.unwrap() / 1024);
        assert_eq!(value(&out, "Cached"), s.file.unwrap() / 1024);
        assert_eq!(value(&out, "AnonPages"), s.anon.unwrap() / 1024);
        let _ = MemStat::default();
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let st = v1_state(MIB, 0);
        assert!(render(b"garbage\n", Some(&st)).is_err());
        assert!(render(b"MemTotal: x kB\n", Some(&st)).is_err());
        assert!(render(b"MemFree: 1 kB\n", Some(&st)).is_err());
        assert!(render(&[0xff, 0xfe], Some(&st)).is_err());
    }
}
