//! `/proc/vmstat` of a VPS.
//!
//! `vmstat(8)` reads its si/so columns from `pswpin`/`pswpout` and bi/bo from
//! `pgpgin`/`pgpgout`, and divides the first row by the elapsed time of the (virtual)
//! `/proc/stat`: the host's counters since its boot over a VPS's few seconds of age
//! made bi/bo read in the tens of millions. The host's file is rewritten line by line,
//! in its own order and with the kernel's layout (`vmstat_show`: "name value\n"), so
//! every parser keeps working. Each line is one of:
//!
//! - **Counters of the cgroup's own events**: a line whose name `memory.stat` also has
//!   and that is a counter there, not a size (`pgfault`, `pgmajfault`, `pgrefill`,
//!   `pgscan_*`, `pgsteal_*`, `pgactivate`, `pgdeactivate`, `pglazyfree(d)`,
//!   `workingset_*`, `thp_fault_alloc`, `thp_collapse_alloc`, `thp_swpout*`, `zswp*`,
//!   `pswpin`/`pswpout`, `numa_pte_updates`…: whatever this kernel's `memory.stat` has;
//!   on v1 the hierarchical `total_*` keys, e.g. `total_pgfault`): the cgroup's value.
//!   The kernel counts both with the same event calls, in the same unit.
//! - **`pswpin`/`pswpout` without a cgroup counterpart** (cgroup v1, and v2 before the
//!   kernel put them in `memory.stat`): 0, as `pgpgin` without I/O accounting, since
//!   `vmstat` turns them into si/so rates over the VPS's age.
//! - **`pgpgin`/`pgpgout`**: KiB the VPS read from and wrote to block devices, the
//!   cgroup's `io.stat` rbytes/wbytes (v1: `blkio.throttle.io_service_bytes_recursive`)
//!   summed over its devices, / 1024, as the kernel counts them (`submit_bio` adds
//!   sectors / 2); 0 without I/O accounting, where the host's figure sums every
//!   tenant's I/O. v1's own `pgpgin`/`pgpgout` in `memory.stat` count pages charged and
//!   uncharged, not block I/O, and are never used.
//! - **Gauges from `memory.stat`**, converted from its bytes to the kernel's unit, with
//!   the figures `meminfo` shows (a key the cgroup does not report, such as the slab and
//!   kernel stack on v1, is 0, as in `meminfo`): in pages, `nr_anon_pages` ← anon (v1
//!   total_rss), `nr_file_pages` ← file (total_cache), `nr_mapped` ← file_mapped
//!   (total_mapped_file), `nr_shmem` ← shmem, `nr_dirty` ← file_dirty (total_dirty),
//!   `nr_writeback` ← file_writeback (total_writeback), `nr_{in,}active_{anon,file}`
//!   and `nr_unevictable` ← the LRU sizes, `nr_slab_{un,}reclaimable` (also the `_b`
//!   spelling) ← slab_{un,}reclaimable, `nr_page_table_pages` ← pagetables,
//!   `nr_sec_page_table_pages` ← sec_pagetables, `nr_swapcached` ← swapcached;
//!   `nr_kernel_stack` ← kernel_stack in KiB (the kernel keeps NR_KERNEL_STACK_KB in
//!   KiB and prints it as it is: on Linux 6.18 `nr_kernel_stack` equals meminfo's
//!   KernelStack in kB); `nr_anon_transparent_hugepages` ← anon_thp,
//!   `nr_file_hugepages` ← file_thp, `nr_shmem_hugepages` ← shmem_thp in huge pages
//!   (`vmstat_item_print_in_thp` divides them by HPAGE_PMD_NR: `nr_file_hugepages 1`
//!   next to meminfo's `FileHugePages: 2048 kB` on x86-64). `nr_free_pages` is meminfo's
//!   MemFree in pages: min(MemTotal − usage, the host's free), MemTotal = min(limit,
//!   host's MemTotal) ([`super::meminfo::mem_free`]).
//! - **Everything else** (host-wide state with no cgroup counterpart: `nr_zone_*`,
//!   `numa_hit`…, `pgalloc_*`, `pgfree`, `compact_*`, `allocstall_*`, `kswapd_*`,
//!   `nr_dirty_threshold`, `balloon_*`, lines this code does not know, and any line
//!   whose value is not a number): the host's line as it is.
//!
//! Without a memory cgroup (a VPS in the root of every memory hierarchy) the host's
//! text is returned unchanged, as `meminfo` does.

use super::cgroup::{IoState, MemoryState};
use super::meminfo;
use super::ResError;

const FILE: &str = "vmstat";

/// What the VPS's vmstat is made of besides the host's text.
#[derive(Clone, Copy, Debug)]
pub struct VmstatInputs<'a> {
    /// The cgroup's memory state; `None` without a memory cgroup.
    pub mem: Option<&'a MemoryState>,
    /// The cgroup's I/O per device; `None` without I/O accounting.
    pub io: Option<&'a IoState>,
    /// The host's MemTotal in bytes.
    pub host_mem_total: u64,
    /// The kernel's page size in bytes (the unit of the `nr_*` gauges).
    pub page_size: u64,
    /// A PMD-sized transparent huge page in bytes (HPAGE_PMD_SIZE), the unit of the
    /// `nr_*_hugepages` lines.
    pub thp_size: u64,
}

/// Renders the VPS's vmstat from the host's text.
pub fn render(host: &[u8], inp: &VmstatInputs) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| ResError::Malformed {
        file: FILE,
        what: "not UTF-8".into(),
    })?;
    let Some(mem) = inp.mem else {
        return Ok(host.to_vec());
    };
    let page = inp.page_size.max(1);
    let thp = inp.thp_size.max(1);
    let s = &mem.stat;
    let host_free_pages = text.lines().find_map(|l| {
        let (name, v) = l.split_once(' ')?;
        (name == "nr_free_pages").then(|| v.parse::<u64>().ok())?
    });
    let (read_kib, written_kib) = inp.io.map_or((0, 0), |io| {
        let (r, w) = io.values().fold((0u64, 0u64), |(r, w), c| {
            (r.saturating_add(c.rbytes), w.saturating_add(c.wbytes))
        });
        (r / 1024, w / 1024)
    });
    let pages = |v: Option<u64>| v.unwrap_or(0) / page;
    let value = |name: &str| -> Option<u64> {
        Some(match name {
            "nr_free_pages" => {
                let host_free = host_free_pages?.saturating_mul(page);
                meminfo::mem_free(mem, inp.host_mem_total, host_free) / page
            }
            "nr_inactive_anon" => pages(s.inactive_anon),
            "nr_active_anon" => pages(s.active_anon),
            "nr_inactive_file" => pages(s.inactive_file),
            "nr_active_file" => pages(s.active_file),
            "nr_unevictable" => pages(s.unevictable),
            "nr_slab_reclaimable" | "nr_slab_reclaimable_b" => pages(s.slab_reclaimable),
            "nr_slab_unreclaimable" | "nr_slab_unreclaimable_b" => pages(s.slab_unreclaimable),
            "nr_anon_pages" => pages(s.anon),
            "nr_mapped" => pages(s.file_mapped),
            "nr_file_pages" => pages(s.file),
            "nr_dirty" => pages(s.file_dirty),
            "nr_writeback" => pages(s.file_writeback),
            "nr_shmem" => pages(s.shmem),
            "nr_page_table_pages" => pages(s.pagetables),
            "nr_sec_page_table_pages" => pages(s.sec_pagetables),
            "nr_swapcached" => pages(s.swapcached),
            "nr_kernel_stack" => s.kernel_stack.unwrap_or(0) / 1024,
            "nr_anon_transparent_hugepages" => s.anon_thp.unwrap_or(0) / thp,
            "nr_file_hugepages" => s.file_thp.unwrap_or(0) / thp,
            "nr_shmem_hugepages" => s.shmem_thp.unwrap_or(0) / thp,
            "pgpgin" => read_kib,
            "pgpgout" => written_kib,
            "pswpin" | "pswpout" => s.events.get(name).copied().unwrap_or(0),
            // Gauges of the host's pages with no cgroup counterpart; memory.stat has
            // no key of this form.
            _ if name.starts_with("nr_") => return None,
            _ => return s.events.get(name).copied(),
        })
    };

    let mut out = String::with_capacity(host.len());
    for seg in text.split_inclusive('\n') {
        let (body, end) = match seg.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (seg, ""),
        };
        let new = body
            .split_once(' ')
            .filter(|(_, v)| v.parse::<u64>().is_ok())
            .and_then(|(name, _)| Some((name, value(name)?)));
        match new {
            Some((name, v)) => {
                out.push_str(name);
                out.push(' ');
                out.push_str(&v.to_string());
                out.push_str(end);
            }
            None => out.push_str(seg),
        }
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::resources::cgroup::{parse_blkio, parse_io_stat, parse_memory_stat};

    // testdata/vmstat.host: /proc/vmstat of the development VM (Linux 6.18.44,
    // x86_64, 4 KiB pages, 24683784 kB of RAM), `cat /proc/vmstat`.
    // testdata/memory.stat.v1.parent: `memory.stat` of a v1 memory cgroup of the same
    // VM that has only child cgroups (`cat /sys/fs/cgroup/memory/<parent>/memory.stat`).
    // testdata/memory.stat.v1: `memory.stat` of a v1 memory cgroup with processes
    // (captured for meminfo's tests; this VM's v1 key set).
    // testdata/memory.stat.v2: `memory.stat` of a v2 cgroup with 100 MiB of anonymous
    // memory (a 6.x kernel whose memory.stat has no pswpin/pswpout yet).
    // testdata/io.stat.v2: `io.stat` of a v2 cgroup.
    const HOST: &[u8] = include_bytes!("testdata/vmstat.host");
    const MEMINFO_HOST: &[u8] = include_bytes!("testdata/meminfo.host");
    const HOST_TOTAL: u64 = 24683784 * 1024;
    const MIB: u64 = 1 << 20;

    /// A value of a "name value" file (vmstat); also used by `super::super::tests`.
    pub(in crate::resources) fn value(text: &[u8], key: &str) -> u64 {
        std::str::from_utf8(text)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {key}"))
            .parse()
            .unwrap()
    }

    fn names(text: &[u8]) -> Vec<String> {
        std::str::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    }

    fn state(stat: &str, v1: bool, limit: Option<u64>, usage: u64) -> MemoryState {
        MemoryState {
            limit,
            swap_limit: None,
            usage,
            swap_usage: 0,
            stat: parse_memory_stat(stat, v1).stat,
        }
    }

    fn v2() -> MemoryState {
        state(
            include_str!("testdata/memory.stat.v2"),
            false,
            Some(256 * MIB),
            120 * MIB,
        )
    }

    fn inputs<'a>(mem: Option<&'a MemoryState>, io: Option<&'a IoState>) -> VmstatInputs<'a> {
        VmstatInputs {
            mem,
            io,
            host_mem_total: HOST_TOTAL,
            page_size: 4096,
            thp_size: 2 * MIB,
        }
    }

    #[test]
    fn no_memory_cgroup_is_the_host() {
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        assert_eq!(render(HOST, &inputs(None, Some(&io))).unwrap(), HOST);
        assert_eq!(render(HOST, &inputs(None, None)).unwrap(), HOST);
    }

    #[test]
    fn order_and_lines_are_the_hosts() {
        let mem = v2();
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        let out = render(HOST, &inputs(Some(&mem), Some(&io))).unwrap();
        assert_eq!(names(&out), names(HOST));
        assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 192);
        assert!(out.ends_with(b"\nnr_unstable 0\n"));
        // Every line is still "name value".
        for l in std::str::from_utf8(&out).unwrap().lines() {
            let (_, v) = l.split_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn v2_counters_gauges_and_io() {
        let mem = v2();
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        let out = render(HOST, &inputs(Some(&mem), Some(&io))).unwrap();
        // Counters of the same name: the cgroup's.
        assert_eq!(value(&out, "pgfault"), 27895);
        assert_eq!(value(&out, "pgmajfault"), 4);
        assert_eq!(value(&out, "pgactivate"), 2);
        assert_eq!(value(&out, "workingset_refault_file"), 0);
        assert_ne!(value(HOST, "workingset_refault_file"), 0);
        // Not in this memory.stat (pswpin) or host-wide (pgfree, pgalloc_normal, the
        // zone counters, the dirty threshold).
        assert_eq!(value(&out, "pswpin"), 0);
        for key in [
            "pgfree",
            "pgalloc_normal",
            "nr_zone_inactive_file",
            "nr_dirty_threshold",
            "numa_hit",
            "pgreuse",
            "pgscan_file",
        ] {
            assert_eq!(value(&out, key), value(HOST, key), "{key}");
        }
        // Gauges, bytes to pages.
        let s = &mem.stat;
        assert_eq!(value(&out, "nr_anon_pages"), 104_857_600 / 4096);
        assert_eq!(value(&out, "nr_file_pages"), s.file.unwrap() / 4096);
        assert_eq!(value(&out, "nr_mapped"), 3_514_368 / 4096);
        assert_eq!(value(&out, "nr_inactive_anon"), 104_824_832 / 4096);
        assert_eq!(value(&out, "nr_active_file"), 4_788_224 / 4096);
        assert_eq!(value(&out, "nr_slab_reclaimable"), 788_072 / 4096);
        assert_eq!(value(&out, "nr_slab_unreclaimable"), 426_152 / 4096);
        assert_eq!(value(&out, "nr_page_table_pages"), 167_936 / 4096);
        // KiB, not pages.
        assert_eq!(value(&out, "nr_kernel_stack"), 65536 / 1024);
        // meminfo's MemFree: min(256 MiB − 120 MiB, host's free).
        assert_eq!(value(&out, "nr_free_pages"), 136 * MIB / 4096);
        // KiB read and written, summed over devices.
        assert_eq!(value(&out, "pgpgin"), 1_379_178_496 / 1024);
        assert_eq!(value(&out, "pgpgout"), 961_814_528 / 1024);
    }

    #[test]
    fn free_pages_agree_with_meminfo() {
        // meminfo.host and vmstat.host are not of the same moment: give the host as
        // much free memory in both, and compare MemFree with nr_free_pages, with a
        // limit (MemTotal − usage is less), without one (the host's free is less) and
        // with one above the host's RAM.
        let kb = |text: &[u8], key: &str| -> u64 {
            let t = std::str::from_utf8(text).unwrap();
            let l = t
                .lines()
                .find(|l| l.split(':').next() == Some(key))
                .unwrap();
            l.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let host_free_kb = 700_000u64;
        let host_mi = std::str::from_utf8(MEMINFO_HOST).unwrap().replace(
            &format!("MemFree:        {:>8} kB\n", kb(MEMINFO_HOST, "MemFree")),
            &format!("MemFree:        {host_free_kb:>8} kB\n"),
        );
        assert_eq!(kb(host_mi.as_bytes(), "MemFree"), host_free_kb);
        let host_vm = std::str::from_utf8(HOST).unwrap().replace(
            &format!("nr_free_pages {}\n", value(HOST, "nr_free_pages")),
            &format!("nr_free_pages {}\n", host_free_kb / 4),
        );
        let mut mem = v2();
        for (limit, want_kb) in [
            (Some(256 * MIB), 136 * 1024),
            (None, host_free_kb),
            (Some(u64::MAX), host_free_kb),
        ] {
            mem.limit = limit;
            let mi = meminfo::render(host_mi.as_bytes(), Some(&mem)).unwrap();
            let inp = VmstatInputs {
                host_mem_total: kb(MEMINFO_HOST, "MemTotal") * 1024,
                ..inputs(Some(&mem), None)
            };
            let out = render(host_vm.as_bytes(), &inp).unwrap();
            assert_eq!(kb(&mi, "MemFree"), want_kb, "{limit:?}");
            assert_eq!(value(&out, "nr_free_pages") * 4, want_kb, "{limit:?}");
        }
    }

    #[test]
    fn thp_lines_count_huge_pages() {
        let stat = include_str!("testdata/memory.stat.v2")
            .replace("anon_thp 0\n", &format!("anon_thp {}\n", 6 * MIB))
            .replace("file_thp 0\n", &format!("file_thp {}\n", 2 * MIB))
            .replace("shmem_thp 0\n", &format!("shmem_thp {}\n", 4 * MIB));
        let mem = state(&stat, false, None, 120 * MIB);
        let out = render(HOST, &inputs(Some(&mem), None)).unwrap();
        assert_eq!(value(&out, "nr_anon_transparent_hugepages"), 3);
        assert_eq!(value(&out, "nr_file_hugepages"), 1);
        assert_eq!(value(&out, "nr_shmem_hugepages"), 2);
        // 64 KiB pages (arm64): HPAGE_PMD_SIZE is 512 MiB, the gauges in 64 KiB pages.
        let inp = VmstatInputs {
            page_size: 65536,
            thp_size: 512 * MIB,
            ..inputs(Some(&mem), None)
        };
        let out = render(HOST, &inp).unwrap();
        assert_eq!(value(&out, "nr_anon_transparent_hugepages"), 0);
        assert_eq!(value(&out, "nr_anon_pages"), 100 * MIB / 65536);
    }

    #[test]
    fn swap_counters_of_a_kernel_that_has_them() {
        // A newer memory.stat with pswpin/pswpout (and a key no kernel has yet).
        let stat = format!(
            "{}pswpin 12\npswpout 34\nthp_swpout 5\nsome_future_counter 9\n",
            include_str!("testdata/memory.stat.v2")
        );
        let mem = state(&stat, false, None, 0);
        let host = String::from_utf8(HOST.to_vec())
            .unwrap()
            .replace("pswpin 0\n", "pswpin 1000\n")
            .replace("nr_unstable 0\n", "nr_unstable 0\nsome_future_counter 77\n");
        let out = render(host.as_bytes(), &inputs(Some(&mem), None)).unwrap();
        assert_eq!(value(&out, "pswpin"), 12);
        assert_eq!(value(&out, "pswpout"), 34);
        assert_eq!(value(&out, "thp_swpout"), 5);
        assert_eq!(value(&out, "some_future_counter"), 9);
        // Without them: 0, not the host's 1000.
        let out = render(host.as_bytes(), &inputs(Some(&v2()), None)).unwrap();
        assert_eq!(value(&out, "pswpin"), 0);
        assert_eq!(value(&out, "some_future_counter"), 77);
    }

    #[test]
    fn no_io_accounting_reads_and_writes_nothing() {
        let mem = v2();
        let out = render(HOST, &inputs(Some(&mem), None)).unwrap();
        assert_eq!(value(&out, "pgpgin"), 0);
        assert_eq!(value(&out, "pgpgout"), 0);
    }

    #[test]
    fn v1_uses_hierarchical_keys_and_not_its_pgpgin() {
        // A parent cgroup: its own counters 0, its children's in the totals.
        let stat = include_str!("testdata/memory.stat.v1.parent");
        let mem = state(stat, true, Some(512 * MIB), 20 * MIB);
        let bytes = "254:0 Read 4096\n254:0 Write 8192\n8:0 Read 2048\n8:0 Write 0\nTotal 14336\n";
        let io = parse_blkio(bytes, "");
        let out = render(HOST, &inputs(Some(&mem), Some(&io))).unwrap();
        assert_eq!(value(&out, "pgfault"), 63_157_317);
        assert_eq!(value(&out, "pgmajfault"), 2451);
        assert_eq!(value(&out, "workingset_refault_file"), 325_723);
        // Block I/O from blkio, never memory.stat's pgpgin (51689804 pages charged).
        assert_eq!(value(&out, "pgpgin"), 6);
        assert_eq!(value(&out, "pgpgout"), 8);
        // Gauges from the totals.
        assert_eq!(value(&out, "nr_anon_pages"), 3_342_336 / 4096);
        assert_eq!(value(&out, "nr_file_pages"), 1_535_381_504 / 4096);
        assert_eq!(value(&out, "nr_mapped"), 3_375_104 / 4096);
        assert_eq!(value(&out, "nr_dirty"), 2_326_528 / 4096);
        assert_eq!(value(&out, "nr_inactive_file"), 782_782_464 / 4096);
        assert_eq!(value(&out, "nr_active_anon"), 20_480 / 4096);
        // v1 does not report these: 0, as in meminfo.
        assert_eq!(value(&out, "nr_slab_reclaimable"), 0);
        assert_eq!(value(&out, "nr_kernel_stack"), 0);
        // Not in v1's memory.stat: the host's; pswpin/pswpout 0.
        assert_eq!(value(&out, "pgactivate"), value(HOST, "pgactivate"));
        assert_eq!(value(&out, "pswpout"), 0);
        assert_eq!(value(&out, "nr_free_pages"), (512 * MIB - 20 * MIB) / 4096);
        // A child cgroup (own = total): the same figures.
        let child = state(include_str!("testdata/memory.stat.v1"), true, None, 0);
        let out = render(HOST, &inputs(Some(&child), None)).unwrap();
        assert_eq!(value(&out, "pgfault"), 57000);
        assert_eq!(value(&out, "nr_anon_pages"), 1_830_912 / 4096);
    }

    #[test]
    fn unusual_host_text_is_kept_not_an_error() {
        let mem = v2();
        let inp = inputs(Some(&mem), None);
        let odd = "pgfault\npgfault x\npgfault -3\nweird line here\n\n nr_mapped 5\n\
                   pgmajfault 1 2\npgfault 99999999";
        let out = render(odd.as_bytes(), &inp).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "pgfault\npgfault x\npgfault -3\nweird line here\n\n nr_mapped 5\n\
             pgmajfault 1 2\npgfault 27895"
        );
        // No nr_free_pages to bound it by: the line is absent anyway.
        assert_eq!(render(b"", &inp).unwrap(), b"");
        assert!(render(&[0xff, 0xfe], &inp).is_err());
        assert!(render(&[0xff, 0xfe], &inputs(None, None)).is_err());
    }
}
