//! `/proc/diskstats` of a VPS, and sysfs's `stat` of each block device
//! (`/sys/block/<disk>/stat`, `/sys/dev/block/<major>:<minor>/stat`), which sysstat's
//! `iostat` reads instead of `/proc/diskstats`.
//!
//! `diskstats`: every line of the host's, in its order and with its layout
//! (block/genhd.c: `%4d %7d %s` then the counters), as a parser expects the devices
//! it knows to be there, with the VPS's counters. From the cgroup (`io.stat` or blkio's
//! statistics): reads completed, sectors read, writes completed, sectors written,
//! discards completed and sectors discarded (bytes / 512). Everything else (merges,
//! times, in flight, io_ticks, flushes) is 0: no cgroup accounts it, and the host's
//! figures would mix every tenant's I/O into this VPS's `iostat`. A partition's
//! counters, and those of a device the VPS has not used, are 0: the cgroup counts I/O
//! per whole disk. Counters never go back (floors kept per device by the caller), and
//! a device's sysfs `stat` shows the same counters as its line, with the same floors
//! (`iostat` leaves out a device whose counters are all 0, as one the host never used).

use std::collections::BTreeMap;

use super::cgroup::IoState;
use super::ResError;

const FILE: &str = "diskstats";
const SYSFS_FILE: &str = "a block device's stat in sysfs";

/// Floors per device ("major:minor"): reads, sectors read, writes, sectors written,
/// discards, sectors discarded.
pub type DiskFloors = BTreeMap<String, [u64; 6]>;

/// Renders the VPS's diskstats; without I/O accounting (`io` is `None`), every
/// counter is 0, as in a VPS that has done no I/O, rather than the host's.
pub fn render(
    host: &[u8],
    io: Option<&IoState>,
    floors: &mut DiskFloors,
) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| malformed("not UTF-8".into()))?;
    let mut out = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(maj), Some(min), Some(name)) = (f.next(), f.next(), f.next()) else {
            return Err(malformed(format!("short line {line:?}")));
        };
        let dev: (u32, u32) = match (maj.parse(), min.parse()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(malformed(format!("bad device in {line:?}"))),
        };
        let v = shown(io, dev, floors);
        // The host's column count (4 + 4 + 3 fields since 2.6, + 4 discard fields
        // since 4.18, + 2 flush fields since 5.5).
        let cols = columns(f.count(), v);
        out.push_str(&format!("{:>4} {:>7} {name}", dev.0, dev.1));
        for x in cols {
            out.push(' ');
            out.push_str(&x.to_string());
        }
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// Renders sysfs's `stat` of block device `dev` for the VPS: `host` is the host's text
/// of it, whose field count is kept (11 before Linux 4.18, 15, 17 since 5.5), each
/// field `%8` wide and separated by a space (block/genhd.c `part_stat_show`). Without
/// I/O accounting the counters are 0, as in a VPS that has done no I/O.
pub fn render_sysfs_stat(
    host: &[u8],
    io: Option<&IoState>,
    dev: (u32, u32),
    floors: &mut DiskFloors,
) -> Result<Vec<u8>, ResError> {
    let bad = |what: String| ResError::Malformed {
        file: SYSFS_FILE,
        what,
    };
    let text = std::str::from_utf8(host).map_err(|_| bad("not UTF-8".into()))?;
    let ncols = text.split_whitespace().count();
    if ncols == 0 || text.split_whitespace().any(|f| f.parse::<u64>().is_err()) {
        return Err(bad(format!("not counters: {text:?}")));
    }
    let mut out = String::new();
    for (i, x) in columns(ncols, shown(io, dev, floors))
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{x:>8}"));
    }
    out.push('\n');
    Ok(out.into_bytes())
}

/// The counters shown for device `dev` (see [`DiskFloors`]): the cgroup's, never below
/// what was shown before; 0 for a device the cgroup has not used.
fn shown(io: Option<&IoState>, dev: (u32, u32), floors: &mut DiskFloors) -> [u64; 6] {
    let counters = io.and_then(|io| io.get(&dev)).map_or([0; 6], |c| {
        [
            c.rios,
            c.rbytes / 512,
            c.wios,
            c.wbytes / 512,
            c.dios,
            c.dbytes / 512,
        ]
    });
    let key = format!("{}:{}", dev.0, dev.1);
    if counters.iter().all(|&v| v == 0) && !floors.contains_key(&key) {
        return counters;
    }
    let floor = floors.entry(key).or_default();
    let mut v = [0u64; 6];
    for ((o, n), fl) in v.iter_mut().zip(counters).zip(floor.iter_mut()) {
        *o = n.max(*fl);
        *fl = *o;
    }
    v
}

/// The `ncols` counter columns of a device (diskstats' after its name, or sysfs's
/// `stat`), with the cgroup's counters `v` in theirs and 0 elsewhere.
fn columns(ncols: usize, v: [u64; 6]) -> Vec<u64> {
    let mut cols = vec![0u64; ncols];
    // reads, sectors read, writes, sectors written, discards, sectors discarded
    for (i, x) in [0, 2, 4, 6, 11, 13].into_iter().zip(v) {
        if let Some(slot) = cols.get_mut(i) {
            *slot = x;
        }
    }
    cols
}

fn malformed(what: String) -> ResError {
    ResError::Malformed { file: FILE, what }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::cgroup::{parse_blkio, parse_io_stat};

    const HOST: &[u8] = include_bytes!("testdata/diskstats.host");

    #[test]
    fn every_device_with_the_cgroups_counters() {
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        let mut f = DiskFloors::new();
        let out = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        let host = std::str::from_utf8(HOST).unwrap();
        // The host's devices, in its order, with its column count and alignment.
        assert_eq!(out.lines().count(), host.lines().count());
        for (ours, theirs) in out.lines().zip(host.lines()) {
            let name = |l: &str| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
            assert_eq!(name(ours), name(theirs));
            assert_eq!(
                ours.split_whitespace().count(),
                theirs.split_whitespace().count()
            );
            assert!(theirs.starts_with(&ours[..13]), "{ours:?} {theirs:?}");
        }
        let vda = out.lines().find(|l| l.contains(" vda ")).unwrap();
        assert_eq!(
            vda,
            " 254       0 vda 5267 0 2693708 0 1673 0 1878544 0 0 0 0 0 0 0 0 0 0"
        );
        // The devices the cgroup did not use: 0.
        for l in out.lines().filter(|l| !l.contains(" vda ")) {
            assert!(l.split_whitespace().skip(3).all(|v| v == "0"), "{l}");
        }
    }

    #[test]
    fn v1_blkio_and_floors() {
        let io = parse_blkio(
            "254:0 Read 4096\n254:0 Write 512\n",
            "254:0 Read 2\n254:0 Write 1\n",
        );
        let mut f = DiskFloors::new();
        let a = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        assert!(a.contains("\n 254       0 vda 2 0 8 0 1 0 1 0 "), "{a}");
        // The cgroup's counters reset (recreated): the view keeps the last figures.
        let io = parse_blkio("254:0 Read 512\n", "254:0 Read 1\n");
        let b = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn no_accounting_and_odd_input() {
        let mut f = DiskFloors::new();
        let none = String::from_utf8(render(HOST, None, &mut f).unwrap()).unwrap();
        assert_eq!(none.lines().count(), 10);
        assert!(none
            .lines()
            .all(|l| l.split_whitespace().skip(3).all(|v| v == "0")));
        let io = parse_io_stat("254:0 rios=1\n");
        assert!(render(b"x y\n", Some(&io), &mut f).is_err());
        assert!(render(b"a b vda 1\n", Some(&io), &mut f).is_err());
    }

    /// sysfs's `stat` of the host's `vda` (17 fields since Linux 5.5).
    const SYSFS_VDA: &[u8] = b" 2994019    69732 155193434  5794810   755374   527073 407608336  2025018        0   519336  7957829   555915       44 396159168   128618   120698     9381\n";

    #[test]
    fn sysfs_stat_has_the_cgroups_counters_in_the_hosts_layout() {
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        let mut f = DiskFloors::new();
        let out = render_sysfs_stat(SYSFS_VDA, Some(&io), (254, 0), &mut f).unwrap();
        let out = String::from_utf8(out).unwrap();
        // The same counters as the device's line of diskstats, each `%8u`.
        let mut g = DiskFloors::new();
        let all = String::from_utf8(render(HOST, Some(&io), &mut g).unwrap()).unwrap();
        let line = all.lines().find(|l| l.contains(" vda ")).unwrap();
        let counters: Vec<&str> = line.split_whitespace().skip(3).collect();
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), counters);
        assert_eq!(
            out,
            "    5267        0  2693708        0     1673        0  1878544        0        0        0        0        0        0        0        0        0        0\n"
        );
        // An older kernel's 11 fields stay 11.
        let old = render_sysfs_stat(b"1 2 3 4 5 6 7 8 9 10 11\n", Some(&io), (254, 0), &mut f);
        assert_eq!(
            String::from_utf8(old.unwrap())
                .unwrap()
                .split_whitespace()
                .count(),
            11
        );
    }

    #[test]
    fn sysfs_stat_of_an_unused_device_or_a_partition_is_zero_and_never_goes_back() {
        let io = parse_blkio("254:0 Read 4096\n", "254:0 Read 2\n");
        let mut f = DiskFloors::new();
        let zero = render_sysfs_stat(SYSFS_VDA, Some(&io), (254, 1), &mut f).unwrap();
        assert!(String::from_utf8(zero)
            .unwrap()
            .split_whitespace()
            .all(|x| x == "0"));
        assert!(f.is_empty(), "no floor kept for a device never used: {f:?}");
        let none = render_sysfs_stat(SYSFS_VDA, None, (254, 0), &mut f).unwrap();
        assert!(String::from_utf8(none)
            .unwrap()
            .split_whitespace()
            .all(|x| x == "0"));
        let a = render_sysfs_stat(SYSFS_VDA, Some(&io), (254, 0), &mut f).unwrap();
        assert!(String::from_utf8(a.clone())
            .unwrap()
            .starts_with("       2        0        8 "));
        // The cgroup recreated with nothing counted: both files keep the last figures.
        let empty = parse_blkio("", "");
        assert_eq!(
            render_sysfs_stat(SYSFS_VDA, Some(&empty), (254, 0), &mut f).unwrap(),
            a
        );
        let all = String::from_utf8(render(HOST, Some(&empty), &mut f).unwrap()).unwrap();
        assert!(all.contains("\n 254       0 vda 2 0 8 0 "), "{all}");
        assert!(render_sysfs_stat(b"x\n", Some(&io), (254, 0), &mut f).is_err());
        assert!(render_sysfs_stat(b"", Some(&io), (254, 0), &mut f).is_err());
    }
}
