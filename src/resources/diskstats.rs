//! `/proc/diskstats` of a VPS.
//!
//! The host's lines of the devices the cgroup has done I/O on (a device listed in
//! `io.stat` or blkio's statistics with a non-zero counter), in the host's order and
//! with its layout (block/genhd.c: `%4d %7d %s` then the counters). From the cgroup:
//! reads completed, sectors read, writes completed, sectors written, discards
//! completed and sectors discarded (bytes / 512). Everything else (merges, times,
//! in flight, io_ticks, flushes) is 0: no cgroup accounts it, and the host's figures
//! would mix every tenant's I/O into this VPS's `iostat`. Partitions are not shown,
//! since the cgroup counts I/O per whole disk. Counters never go back (floors kept
//! per device by the caller).

use std::collections::BTreeMap;

use super::cgroup::IoState;
use super::ResError;

const FILE: &str = "diskstats";

/// Floors per device ("major:minor"): reads, sectors read, writes, sectors written,
/// discards, sectors discarded.
pub type DiskFloors = BTreeMap<String, [u64; 6]>;

/// Renders the VPS's diskstats; without I/O accounting (`io` is `None`), the file is
/// empty, as for a machine without disks, rather than the host's.
pub fn render(
    host: &[u8],
    io: Option<&IoState>,
    floors: &mut DiskFloors,
) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| malformed("not UTF-8".into()))?;
    let mut out = String::new();
    let Some(io) = io else {
        return Ok(Vec::new());
    };
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(maj), Some(min), Some(name)) = (f.next(), f.next(), f.next()) else {
            return Err(malformed(format!("short line {line:?}")));
        };
        let dev: (u32, u32) = match (maj.parse(), min.parse()) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(malformed(format!("bad device in {line:?}"))),
        };
        let Some(c) = io.get(&dev) else { continue };
        let counters = [
            c.rios,
            c.rbytes / 512,
            c.wios,
            c.wbytes / 512,
            c.dios,
            c.dbytes / 512,
        ];
        if counters.iter().all(|&v| v == 0) {
            continue;
        }
        let floor = floors.entry(format!("{}:{}", dev.0, dev.1)).or_default();
        let mut v = [0u64; 6];
        for ((o, n), fl) in v.iter_mut().zip(counters).zip(floor.iter_mut()) {
            *o = n.max(*fl);
            *fl = *o;
        }
        // The host's column count (4 + 4 + 3 fields since 2.6, + 4 discard fields
        // since 4.18, + 2 flush fields since 5.5).
        let ncols = f.count();
        let mut cols = vec![0u64; ncols];
        let mut set = |i: usize, x: u64| {
            if let Some(slot) = cols.get_mut(i) {
                *slot = x;
            }
        };
        set(0, v[0]);
        set(2, v[1]);
        set(4, v[2]);
        set(6, v[3]);
        set(11, v[4]);
        set(13, v[5]);
        out.push_str(&format!("{:>4} {:>7} {name}", dev.0, dev.1));
        for x in cols {
            out.push(' ');
            out.push_str(&x.to_string());
        }
        out.push('\n');
    }
    Ok(out.into_bytes())
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
    fn only_used_devices_with_the_cgroups_counters() {
        let io = parse_io_stat(include_str!("testdata/io.stat.v2"));
        let mut f = DiskFloors::new();
        let out = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        assert_eq!(
            out,
            " 254       0 vda 5267 0 2693708 0 1673 0 1878544 0 0 0 0 0 0 0 0 0 0\n"
        );
        // The host's column count and alignment.
        let host_vda = std::str::from_utf8(HOST)
            .unwrap()
            .lines()
            .find(|l| l.contains("vda"))
            .unwrap();
        assert_eq!(
            out.split_whitespace().count(),
            host_vda.split_whitespace().count()
        );
        assert_eq!(&out[..13], &host_vda[..13]);
    }

    #[test]
    fn v1_blkio_and_floors() {
        let io = parse_blkio(
            "254:0 Read 4096\n254:0 Write 512\n",
            "254:0 Read 2\n254:0 Write 1\n",
        );
        let mut f = DiskFloors::new();
        let a = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        assert!(a.starts_with(" 254       0 vda 2 0 8 0 1 0 1 0 "), "{a}");
        // The cgroup's counters reset (recreated): the view keeps the last figures.
        let io = parse_blkio("254:0 Read 512\n", "254:0 Read 1\n");
        let b = String::from_utf8(render(HOST, Some(&io), &mut f).unwrap()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn no_accounting_and_odd_input() {
        let mut f = DiskFloors::new();
        assert_eq!(render(HOST, None, &mut f).unwrap(), b"");
        let io = parse_io_stat("254:0 rios=1\n");
        assert!(render(b"x y\n", Some(&io), &mut f).is_err());
        assert!(render(b"a b vda 1\n", Some(&io), &mut f).is_err());
    }
}
