//! `/proc/<pid>/sched` and `/proc/<pid>/task/<tid>/sched`.
//!
//! kernel/sched/debug.c proc_sched_show_task starts with
//! "%s (%d, #threads: %d)\n" (comm, pid in the reader's namespace, thread
//! count) and, with NUMA balancing, has a line
//! "current_node=%d, numa_group_id=%d\n" whose group id is a global pid.
//! The rest is scheduler statistics, copied as is.
//!
//! comm (≤ 15 bytes, any byte but NUL) may itself contain "(", digits and
//! ", #threads: ", but never a complete "(<digits>, #threads: <digits>)\n"
//! (that needs at least 17 bytes), and a match cannot start inside comm and
//! end in the real text (the pattern has no " (" in it). So the first match
//! is the real one.

use super::{lines, parse_num, push_num, splice, xlate, ParseError, PidMap};

const FILE: &str = "sched";
const THREADS: &[u8] = b", #threads: ";
const NUMA: &[u8] = b"current_node=";
const GROUP: &[u8] = b", numa_group_id=";

fn digits_at(b: &[u8], at: usize) -> usize {
    b.get(at..)
        .map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// Finds "(<digits>, #threads: <digits>)\n"; returns the pid digits' range
/// and the index just past the '\n'.
fn header(raw: &[u8]) -> Option<((usize, usize), usize)> {
    for (i, _) in raw.iter().enumerate().filter(|(_, &c)| c == b'(') {
        let ps = i + 1;
        let pe = ps + digits_at(raw, ps);
        if pe == ps || raw.get(pe..pe + THREADS.len()) != Some(THREADS) {
            continue;
        }
        let ts = pe + THREADS.len();
        let te = ts + digits_at(raw, ts);
        if te > ts && raw.get(te..te + 2) == Some(b")\n") {
            return Some(((ps, pe), te + 2));
        }
    }
    None
}

/// Translates the header pid and the NUMA group id (0 stays 0: no group).
/// `io_worker`: the task is an io_uring worker, whose name carries a pid.
pub fn render_sched(raw: &[u8], map: &dyn PidMap, io_worker: bool) -> Result<Vec<u8>, ParseError> {
    let ((ps, pe), body) = header(raw).ok_or(ParseError::Malformed {
        file: FILE,
        what: "header (no \"(pid, #threads: n)\")",
    })?;
    let bad = |field| ParseError::BadNumber { file: FILE, field };
    let pid: i32 = parse_num(raw.get(ps..pe).unwrap_or_default()).ok_or(bad("pid"))?;
    let mut b = Vec::new();
    push_num(&mut b, xlate(pid, |p| map.pid(p)));
    let mut edits = Vec::new();
    // The header's comm ends at " (" before the pid.
    let comm_end = ps.saturating_sub(2);
    if let Some(name) = raw
        .get(..comm_end)
        .filter(|_| io_worker)
        .and_then(|c| super::io_uring_comm(c, map))
    {
        edits.push((0, comm_end, name));
    }
    edits.push((ps, pe, b));

    let mut at = body;
    for line in lines(raw.get(body..).unwrap_or_default()) {
        let start = at;
        at += line.len();
        let Some(rest) = line.strip_prefix(NUMA) else {
            continue;
        };
        let node = digits_at(rest, usize::from(rest.first() == Some(&b'-')));
        let gs = NUMA.len() + usize::from(rest.first() == Some(&b'-')) + node;
        if node == 0 || line.get(gs..gs + GROUP.len()) != Some(GROUP) {
            return Err(ParseError::Malformed {
                file: FILE,
                what: "current_node line",
            });
        }
        let vs = gs + GROUP.len();
        let ve = line.iter().position(|&c| c == b'\n').unwrap_or(line.len());
        let gid: i32 =
            parse_num(line.get(vs..ve).unwrap_or_default()).ok_or(bad("numa_group_id"))?;
        let mut b = Vec::new();
        push_num(&mut b, xlate(gid, |p| map.pid(p)));
        edits.push((start + vs, start + ve, b));
    }
    splice(raw, &edits, FILE)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{parse_stat, Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    const ALL: [(&[u8], &[u8]); 9] = [
        (fixture!("sched_plain"), fixture!("stat_plain")),
        (fixture!("sched_paren_trap"), fixture!("stat_paren_trap")),
        (fixture!("sched_space"), fixture!("stat_space")),
        (fixture!("sched_newline"), fixture!("stat_newline")),
        (fixture!("sched_close_paren"), fixture!("stat_close_paren")),
        (fixture!("sched_fifteen"), fixture!("stat_fifteen")),
        (fixture!("sched_sched_trap"), fixture!("stat_sched_trap")),
        (
            fixture!("sched_backslash_tab"),
            fixture!("stat_backslash_tab"),
        ),
        (fixture!("sched_high_bytes"), fixture!("stat_high_bytes")),
    ];

    #[test]
    fn fixtures_translate_header_pid_only() {
        for (sched, stat) in ALL
            .into_iter()
            .chain([(fixture!("sched_thread"), &b""[..])])
        {
            assert_eq!(render_sched(sched, &Identity, false).unwrap(), sched);
            let out = render_sched(sched, &Shift { off: 1, levels: 0 }, false).unwrap();
            if let Ok(st) = parse_stat(stat) {
                let mut want = st.comm.to_vec();
                want.extend_from_slice(format!(" ({}, #threads: 1)\n", st.pid + 1).as_bytes());
                assert!(
                    out.starts_with(&want),
                    "{:?}",
                    String::from_utf8_lossy(&out[..40])
                );
            }
            // numa_group_id=0 in the fixtures stays 0; the rest is unchanged
            let tail = |b: &[u8]| b[b.iter().position(|&c| c == b'-').unwrap()..].to_vec();
            assert_eq!(tail(&out), tail(sched));
        }
    }

    #[test]
    fn trap_comm_is_not_taken_for_header() {
        let raw = fixture!("sched_sched_trap");
        assert!(raw.starts_with(b"(1, #threads: 1 ("));
        let map = TableMap::new().with_pids(&[(1, 99)]);
        let out = render_sched(raw, &map, false).unwrap();
        assert!(out.starts_with(b"(1, #threads: 1 (0, #threads: 1)\n"));
    }

    #[test]
    fn exact_bytes_with_numa_group() {
        let raw = b"a (b) (100, #threads: 3)\n-----\nse.x   :   1\ncurrent_node=1, numa_group_id=100\nnuma_faults node=0\n";
        let map = TableMap::new().with_pids(&[(100, 1)]);
        assert_eq!(
            render_sched(raw, &map, false).unwrap(),
            b"a (b) (1, #threads: 3)\n-----\nse.x   :   1\ncurrent_node=1, numa_group_id=1\nnuma_faults node=0\n".to_vec()
        );
        let raw = b"x (7, #threads: 1)\ncurrent_node=-1, numa_group_id=55\n";
        assert_eq!(
            render_sched(raw, &map, false).unwrap(),
            b"x (0, #threads: 1)\ncurrent_node=-1, numa_group_id=0\n".to_vec()
        );
    }

    #[test]
    fn an_io_uring_workers_name_only_carries_a_pid() {
        let raw = b"iou-wrk-100 (101, #threads: 2)\n-----\nse.x   :   1\n";
        let map = TableMap::new().with_pids(&[(100, 1), (101, 2)]);
        assert!(render_sched(raw, &map, true)
            .unwrap()
            .starts_with(b"iou-wrk-1 (2, #threads: 2)\n"));
        assert!(render_sched(raw, &map, false)
            .unwrap()
            .starts_with(b"iou-wrk-100 (2, #threads: 2)\n"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(render_sched(b"", &Identity, false).is_err());
        assert!(render_sched(b"x (7, #threads: 1)", &Identity, false).is_err());
        assert!(render_sched(b"x (7, #threads: )\n", &Identity, false).is_err());
        assert!(render_sched(b"x (99999999999, #threads: 1)\n", &Identity, false).is_err());
        assert!(render_sched(
            b"x (7, #threads: 1)\ncurrent_node=0, numa_group_id=z\n",
            &Identity,
            false
        )
        .is_err());
        assert!(render_sched(
            b"x (7, #threads: 1)\ncurrent_node=, numa_group_id=1\n",
            &Identity,
            false
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = render_sched(&raw, &Shift { off: 1, levels: 0 }, false);
        }

        #[test]
        fn never_panics_near_valid(
            parts in proptest::collection::vec(prop_oneof![
                Just(&b"("[..]), Just(&b", #threads: "[..]), Just(&b")\n"[..]), Just(&b"current_node="[..]),
                Just(&b", numa_group_id="[..]), Just(&b"-"[..]), Just(&b"7"[..]), Just(&b"\n"[..])], 0..30),
        ) {
            let raw: Vec<u8> = parts.concat();
            let _ = render_sched(&raw, &Shift { off: 1, levels: 0 }, false);
        }

        #[test]
        fn any_comm_header(comm in proptest::collection::vec(1u8..=255, 1..=15), pid in 1i32..=4_194_304) {
            let mut raw = comm.clone();
            raw.extend_from_slice(format!(" ({pid}, #threads: 1)\n---\n").as_bytes());
            let out = render_sched(&raw, &Shift { off: 1, levels: 0 }, false).unwrap();
            let mut want = comm;
            want.extend_from_slice(format!(" ({}, #threads: 1)\n---\n", pid + 1).as_bytes());
            prop_assert_eq!(out, want);
        }
    }
}
