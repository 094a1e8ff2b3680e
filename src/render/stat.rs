//! `/proc/<pid>/stat` and `/proc/<pid>/task/<tid>/stat`.
//!
//! The kernel (fs/proc/array.c, do_task_stat) prints
//! `pid (comm) state ppid pgrp session tty_nr tpgid flags ...` on one line.
//! comm is the raw task name: up to 15 bytes for user tasks (longer for some
//! kernel threads), any byte but NUL, so it can hold spaces, parentheses and
//! newlines. Everything after the LAST ')' is numbers, so that is where
//! field splitting starts; the comm bytes are never interpreted.

use super::{first_tokens, held, parse_num, push_num, splice, xlate, ParseError, PidMap};

const FILE: &str = "stat";

/// The fields of a stat line the view needs. `comm` borrows the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat<'a> {
    pub pid: i32,
    pub comm: &'a [u8],
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    pub tpgid: i32,
    /// The task's `PF_*` flags (field 9).
    pub flags: u64,
    pub num_threads: i64,
    pub starttime: u64,
}

/// The flag of a task in `do_exit` (`include/linux/sched.h`): set before its exit event
/// is sent, and kept while it is a zombie.
pub const PF_EXITING: u64 = 0x4;
/// `PF_IO_WORKER`: an io_uring worker or SQ-poll thread, named after a pid
/// ([`super::io_uring_comm`]).
pub const PF_IO_WORKER: u64 = 0x10;
/// `PF_SUPERPRIV`: the task used a superuser privilege (ps's `F` 4).
pub const PF_SUPERPRIV: u64 = 0x100;

/// Where the pieces of a stat line are: the pid's range, the comm's range and
/// the ranges of fields 3.. up to the last one asked for (index 0 is field 3, the
/// state).
struct Layout<'a> {
    pid: (usize, usize),
    comm: &'a [u8],
    fields: Vec<(usize, usize)>,
}

fn layout(raw: &[u8], last: usize) -> Result<Layout<'_>, ParseError> {
    let malformed = |what| ParseError::Malformed { file: FILE, what };
    // "pid (": the pid is digits, so the first '(' opens comm.
    let open = raw
        .iter()
        .position(|&c| c == b'(')
        .ok_or(malformed("line: no '(' before comm"))?;
    let pid_end = open.checked_sub(1).ok_or(malformed("line: no pid"))?;
    if raw.get(pid_end) != Some(&b' ') {
        return Err(malformed("line: no space before '('"));
    }
    let close = raw
        .iter()
        .rposition(|&c| c == b')')
        .filter(|&c| c > open)
        .ok_or(malformed("line: no ')' after comm"))?;
    let comm = raw.get(open + 1..close).unwrap_or_default();
    let rest = raw.get(close + 1..).unwrap_or_default();
    if rest.first() != Some(&b' ') {
        return Err(malformed("line: no space after comm"));
    }
    let fields = first_tokens(
        rest,
        close + 1,
        |c| c == b' ' || c == b'\n',
        last.saturating_sub(FIRST) + 1,
    );
    Ok(Layout {
        pid: (0, pid_end),
        comm,
        fields,
    })
}

/// Number of stat fields before the first one in `fields` (pid and comm).
const FIRST: usize = 3;

fn field<'a>(raw: &'a [u8], l: &Layout<'_>, n: usize) -> Result<&'a [u8], ParseError> {
    let missing = ParseError::Missing {
        file: FILE,
        field: FIELD_NAMES.get(n).copied().unwrap_or("field"),
    };
    let &(s, e) = l.fields.get(n - FIRST).ok_or(missing.clone())?;
    raw.get(s..e).ok_or(missing)
}

fn num<T: std::str::FromStr>(raw: &[u8], l: &Layout<'_>, n: usize) -> Result<T, ParseError> {
    parse_num(field(raw, l, n)?).ok_or(ParseError::BadNumber {
        file: FILE,
        field: FIELD_NAMES.get(n).copied().unwrap_or("field"),
    })
}

/// Names of the fields we read, by 1-based stat field number (proc(5)).
const FIELD_NAMES: [&str; 23] = [
    "",
    "pid",
    "comm",
    "state",
    "ppid",
    "pgrp",
    "session",
    "tty_nr",
    "tpgid",
    "flags",
    "minflt",
    "cminflt",
    "majflt",
    "cmajflt",
    "utime",
    "stime",
    "cutime",
    "cstime",
    "priority",
    "nice",
    "num_threads",
    "itrealvalue",
    "starttime",
];

fn state(raw: &[u8], l: &Layout<'_>) -> Result<u8, ParseError> {
    match field(raw, l, 3)? {
        [c] => Ok(*c),
        _ => Err(ParseError::Malformed {
            file: FILE,
            what: "state",
        }),
    }
}

/// Parses the fields the view needs; needs fields up to 22 (starttime).
pub fn parse_stat(raw: &[u8]) -> Result<Stat<'_>, ParseError> {
    let l = layout(raw, 22)?;
    let pid =
        parse_num(raw.get(l.pid.0..l.pid.1).unwrap_or_default()).ok_or(ParseError::BadNumber {
            file: FILE,
            field: "pid",
        })?;
    Ok(Stat {
        pid,
        comm: l.comm,
        state: state(raw, &l)?,
        ppid: num(raw, &l, 4)?,
        pgrp: num(raw, &l, 5)?,
        session: num(raw, &l, 6)?,
        tty_nr: num(raw, &l, 7)?,
        tpgid: num(raw, &l, 8)?,
        flags: num(raw, &l, 9)?,
        num_threads: num(raw, &l, 20)?,
        starttime: num(raw, &l, 22)?,
    })
}

/// The CPU the task last ran on (field 39, `processor`): where a task blocked in a
/// request to the daemon waits for its reply.
pub fn processor(raw: &[u8]) -> Result<u32, ParseError> {
    let l = layout(raw, PROCESSOR)?;
    num(raw, &l, PROCESSOR)
}

/// Field number of `processor` (proc(5)).
const PROCESSOR: usize = 39;

/// How the kernel would show the task to this reader, beyond its numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    /// The reader is the task shown: the kernel would see it running (state `R`,
    /// `wchan` 0), where the daemon sees it asleep in the reader's request.
    pub running: bool,
    /// The task got what procfs grants by a capability, which the kernel did not see it
    /// use (the daemon granted it): its flags (field 9) carry `PF_SUPERPRIV`.
    pub superpriv: bool,
    /// The reader may not ptrace-read the task (`do_task_stat`'s `permitted`): the
    /// fields of [`HIDDEN_ZERO`] read 0, `startcode` and `endcode` 1 (0 without memory).
    pub hidden: bool,
    /// How far the reader's time namespace's boottime is from the one the line was
    /// read in, in ns: procfs shows `starttime` (field 22) on the reader's clock.
    pub clock_shift_ns: i64,
}

/// Field number of `starttime`, in clock ticks since boot.
const STARTTIME: usize = 22;

/// `starttime` of `ticks` on a clock `shift_ns` away: the kernel adds the reader's
/// offset to the start in ns, in unsigned arithmetic, and divides by the tick (the
/// start's fraction of a tick is not in the line: exact for offsets of whole ticks,
/// as `unshare -T` takes seconds and `vprocfs run` cuts its VPS's offset to a tick).
fn shifted_start(ticks: u64, shift_ns: i64) -> u64 {
    use crate::resources::stat::NS_PER_TICK;
    ticks
        .wrapping_mul(NS_PER_TICK)
        .wrapping_add_signed(shift_ns)
        / NS_PER_TICK
}

/// Fields `do_task_stat` prints as 0 to a reader that may not ptrace-read the task:
/// `startstack`, `kstkesp`, `kstkeip`, `wchan`, the data, brk, argument and environment
/// bounds and `exit_code`.
const HIDDEN_ZERO: [usize; 12] = [28, 29, 30, WCHAN, 45, 46, 47, 48, 49, 50, 51, 52];
/// `startcode` and `endcode`, shown as 1 to such a reader when the task has memory.
const HIDDEN_CODE: [usize; 2] = [26, 27];
/// Field number of `wchan` (proc(5)): 1 for a task asleep, to a reader who may see it.
const WCHAN: usize = 35;

/// Renders a stat line for the reader's VPS.
///
/// Rewrites pid (1), ppid (4), pgrp (5), session (6) and tpgid (8); numbers
/// ≤ 0 are markers (0: none/not visible, -1: no controlling tty) and are
/// kept. What else the reader sees otherwise than the daemon read it is in `shown`.
/// All other bytes are copied unchanged; a field the line does not have (an older
/// kernel's shorter line) is left out of the masking.
pub fn render_stat(raw: &[u8], map: &dyn PidMap, shown: Shown) -> Result<Vec<u8>, ParseError> {
    let last = match shown {
        Shown { hidden: true, .. } => HIDDEN_ZERO[HIDDEN_ZERO.len() - 1],
        Shown { running: true, .. } => WCHAN,
        Shown {
            superpriv: true, ..
        } => 9,
        _ => 8,
    };
    let last = match shown.clock_shift_ns {
        0 => last,
        _ => last.max(STARTTIME),
    };
    let l = layout(raw, last)?;
    let pid: i32 =
        parse_num(raw.get(l.pid.0..l.pid.1).unwrap_or_default()).ok_or(ParseError::BadNumber {
            file: FILE,
            field: "pid",
        })?;
    state(raw, &l)?;
    let at = |n: usize| l.fields.get(n - FIRST).copied().unwrap_or_default();
    let put = |range: (usize, usize), v: i32| {
        let mut b = Vec::new();
        push_num(&mut b, v);
        (range.0, range.1, b)
    };
    let mut edits = vec![put(l.pid, xlate(pid, |p| map.pid(p)))];
    // Only a real worker's name carries a pid: a task may name itself the same.
    if let Some(name) = super::io_uring_comm(l.comm, map) {
        if num::<u64>(raw, &layout(raw, 9)?, 9)? & PF_IO_WORKER != 0 {
            edits.push((l.pid.1 + 2, l.pid.1 + 2 + l.comm.len(), name));
        }
    }
    if shown.running {
        edits.push((at(3).0, at(3).1, vec![b'R']));
    }
    edits.push(put(at(4), xlate(num(raw, &l, 4)?, |p| map.pid(p))));
    edits.push(put(at(5), xlate(num(raw, &l, 5)?, |p| map.pgid(p))));
    edits.push(put(at(6), xlate(num(raw, &l, 6)?, |p| map.sid(p))));
    num::<i32>(raw, &l, 7)?;
    // A terminal's foreground group may have no member left (its `struct pid` is the
    // terminal's).
    edits.push(put(at(8), held(map, num(raw, &l, 8)?, |p| map.pgid(p))));
    if shown.superpriv {
        let flags: u64 = num(raw, &l, 9)?;
        let mut b = Vec::new();
        push_num(&mut b, flags | PF_SUPERPRIV);
        edits.push((at(9).0, at(9).1, b));
    }
    if shown.clock_shift_ns != 0 {
        let start: u64 = num(raw, &l, STARTTIME)?;
        let mut b = Vec::new();
        push_num(&mut b, shifted_start(start, shown.clock_shift_ns));
        edits.push((at(STARTTIME).0, at(STARTTIME).1, b));
    }
    // From field 26 on, in order: what this reader is shown instead, where the line
    // has the field.
    let instead = |n: usize, value: &[u8]| -> Option<&'static [u8]> {
        if shown.hidden && HIDDEN_CODE.contains(&n) {
            return (value != b"0").then_some(b"1");
        }
        let zero = (shown.hidden && HIDDEN_ZERO.contains(&n)) || (shown.running && n == WCHAN);
        zero.then_some(b"0")
    };
    for n in HIDDEN_CODE[0]..=last {
        let Ok(value) = field(raw, &l, n) else {
            break;
        };
        if let Some(v) = instead(n, value) {
            edits.push((at(n).0, at(n).1, v.to_vec()));
        }
    }
    splice(raw, &edits, FILE)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    /// `processor` is field 39, counted after the last ')' whatever the comm holds; a
    /// line cut before it is an error, not a wrong CPU.
    #[test]
    fn processor_is_field_39_after_any_comm() {
        // Fields 3 to 37, then exit_signal (38) and processor (39).
        let tail = " S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0";
        for comm in ["sleeper", "a) 1 2 (b", "new\nline", ")"] {
            let line = format!("42 ({comm}){tail}\n");
            assert_eq!(processor(line.as_bytes()), Ok(3), "comm {comm:?}");
        }
        assert!(processor(b"42 (x) S 1 1 1 0 -1 4194560\n").is_err());
    }

    const ALL: [(&str, &[u8], &[u8]); 9] = [
        ("plain", fixture!("stat_plain"), b"sleeper"),
        ("paren_trap", fixture!("stat_paren_trap"), b"a) 1 2 (b"),
        ("space", fixture!("stat_space"), b"with space"),
        ("newline", fixture!("stat_newline"), b"new\nline"),
        ("close_paren", fixture!("stat_close_paren"), b")"),
        ("fifteen", fixture!("stat_fifteen"), b"fifteen_bytes_x"),
        (
            "sched_trap",
            fixture!("stat_sched_trap"),
            b"(1, #threads: 1",
        ),
        ("backslash_tab", fixture!("stat_backslash_tab"), b"b\\s\tt"),
        ("high_bytes", fixture!("stat_high_bytes"), b"\xff\xfe) ("),
    ];

    /// Space-separated fields after the comm, for comparing renders.
    fn tail_fields(line: &[u8]) -> Vec<Vec<u8>> {
        let close = line.iter().rposition(|&c| c == b')').unwrap();
        line[close + 1..]
            .split(|&c| c == b' ' || c == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn fixtures_parse_with_exact_comm() {
        for (tag, raw, comm) in ALL {
            let s = parse_stat(raw).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!(s.comm, comm, "{tag}");
            assert!(s.pid > 0 && s.ppid > 0 && s.num_threads == 1, "{tag}");
            assert_eq!(s.tpgid, -1, "{tag}");
            assert_eq!(s.tty_nr, 0, "{tag}");
            assert_eq!(
                s.flags.to_string().into_bytes(),
                tail_fields(raw)[7],
                "{tag}"
            );
            assert_eq!(s.flags & PF_EXITING, 0, "{tag}: captured alive");
        }
    }

    #[test]
    fn fixtures_identity_is_noop() {
        let more = [
            fixture!("stat_self"),
            fixture!("stat_threads"),
            fixture!("stat_tty"),
            fixture!("stat_nested2"),
        ];
        for raw in ALL.iter().map(|a| a.1).chain(more) {
            assert_eq!(render_stat(raw, &Identity, Shown::default()).unwrap(), raw);
        }
    }

    #[test]
    fn fixtures_translate_only_pid_fields() {
        for (tag, raw, comm) in ALL {
            let s = parse_stat(raw).unwrap();
            let map = TableMap::new()
                .with_pids(&[(s.pid, 7), (s.ppid, 1)])
                .with_pgids(&[(s.pgrp, 3)])
                .with_sids(&[(s.session, 4)]);
            let out = render_stat(raw, &map, Shown::default()).unwrap();
            let r = parse_stat(&out).unwrap();
            assert_eq!(
                (r.pid, r.ppid, r.pgrp, r.session, r.tpgid),
                (7, 1, 3, 4, -1),
                "{tag}"
            );
            assert_eq!(r.comm, comm, "{tag}");
            let (a, b) = (tail_fields(raw), tail_fields(&out));
            assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if ![2, 3, 4].contains(&i) {
                    assert_eq!(x, y, "{tag} field {}", i + 2);
                }
            }
        }
    }

    #[test]
    fn tty_fixture_translates_tpgid_via_pgid() {
        let raw = fixture!("stat_tty");
        let s = parse_stat(raw).unwrap();
        assert!(
            s.tty_nr > 0 && s.tpgid > 0,
            "captured with a controlling tty"
        );
        let map = TableMap::new()
            .with_pids(&[(s.pid, 2), (s.ppid, 1)])
            .with_pgids(&[(s.tpgid, 2)])
            .with_sids(&[(s.session, 2)]);
        let r = render_stat(raw, &map, Shown::default()).unwrap();
        let r = parse_stat(&r).unwrap();
        assert_eq!(
            (r.pid, r.ppid, r.pgrp, r.session, r.tty_nr, r.tpgid),
            (2, 1, 2, 2, s.tty_nr, 2)
        );
    }

    /// A terminal's foreground group whose members are gone is still named: by the
    /// vpid it had; a number not known at all is 0.
    #[test]
    fn an_emptied_foreground_group_is_named_by_its_kept_vpid() {
        let raw = fixture!("stat_tty");
        let s = parse_stat(raw).unwrap();
        let map = TableMap::new()
            .with_pids(&[(s.pid, 2)])
            .with_pgids(&[(s.pgrp, 2)])
            .with_kept(&[(s.tpgid, 7)]);
        let shown = |m: &TableMap| {
            parse_stat(&render_stat(raw, m, Shown::default()).unwrap())
                .unwrap()
                .tpgid
        };
        if s.tpgid != s.pgrp {
            assert_eq!(shown(&map), 7);
        }
        assert_eq!(shown(&TableMap::new().with_kept(&[(s.tpgid, 7)])), 7);
        assert_eq!(shown(&TableMap::new()), 0);
    }

    #[test]
    fn exact_bytes() {
        let raw = b"100 (a) 1 2 (b) S 101 100 100 34816 100 4194368 0 0 0 0 0 0 0 0 20 0 1 0 93802 1 2 3\n";
        let map = TableMap::new()
            .with_pids(&[(100, 1), (101, 2)])
            .with_pgids(&[(100, 1)]);
        assert_eq!(
            render_stat(raw, &map, Shown::default()).unwrap(),
            b"1 (a) 1 2 (b) S 2 1 0 34816 1 4194368 0 0 0 0 0 0 0 0 20 0 1 0 93802 1 2 3\n"
                .to_vec()
        );
        assert_eq!(
            render_stat(
                raw,
                &map,
                Shown {
                    running: true,
                    ..Shown::default()
                }
            )
            .unwrap(),
            b"1 (a) 1 2 (b) R 2 1 0 34816 1 4194368 0 0 0 0 0 0 0 0 20 0 1 0 93802 1 2 3\n"
                .to_vec()
        );
    }

    /// What the kernel printed for a reader who may not ptrace-read a stopped process
    /// is what the view makes of what it printed for root, and running (the reader's
    /// own task) shows `wchan` 0 as well; a shorter line is masked as far as it goes.
    #[test]
    fn hidden_fields_as_the_kernel_hides_them() {
        let permitted = fixture!("stat_stopped_permitted");
        let hidden = Shown {
            hidden: true,
            ..Shown::default()
        };
        assert_eq!(
            render_stat(permitted, &Identity, hidden).unwrap(),
            fixture!("stat_stopped_hidden")
        );
        let running = render_stat(
            permitted,
            &Identity,
            Shown {
                running: true,
                ..Shown::default()
            },
        )
        .unwrap();
        // tail_fields(line)[k - 2] is field k.
        let wchan = |line: &[u8]| tail_fields(line)[WCHAN - 2].clone();
        assert_eq!(
            (wchan(permitted), wchan(&running)),
            (b"1".to_vec(), b"0".to_vec())
        );
        assert_eq!(tail_fields(&running)[1], b"R");
        let first_30 = |line: &[u8]| {
            line.split(|&b| b == b' ')
                .take(30)
                .collect::<Vec<_>>()
                .join(&b' ')
        };
        let out = render_stat(&first_30(permitted), &Identity, hidden).unwrap();
        let want = first_30(fixture!("stat_stopped_hidden"));
        assert_eq!(
            out, want,
            "startcode and endcode 1, startstack and kstkesp 0"
        );
    }

    /// A task marked as having used a privilege shows `PF_SUPERPRIV` in its flags
    /// (field 9, after the last `)` whatever the comm holds), added to those it has,
    /// and nothing else changes.
    #[test]
    fn a_marked_task_shows_pf_superpriv() {
        for (tag, raw, _) in ALL {
            let plain = render_stat(raw, &Identity, Shown::default()).unwrap();
            let marked = render_stat(
                raw,
                &Identity,
                Shown {
                    superpriv: true,
                    ..Shown::default()
                },
            )
            .unwrap();
            let (a, b) = (tail_fields(&plain), tail_fields(&marked));
            let flags: u64 = std::str::from_utf8(&a[7]).unwrap().parse().unwrap();
            assert_eq!(
                b[7],
                (flags | PF_SUPERPRIV).to_string().into_bytes(),
                "{tag}"
            );
            let others = |f: &[Vec<u8>]| [&f[..7], &f[8..]].concat();
            assert_eq!(others(&a), others(&b), "{tag}");
            let head = |l: &[u8]| l[..l.iter().rposition(|&c| c == b')').unwrap()].to_vec();
            assert_eq!(head(&plain), head(&marked), "{tag}");
        }
    }

    #[test]
    fn markers_are_not_looked_up() {
        // pid 1 in a pid namespace: ppid, pgrp and session outside are 0.
        let raw = b"1 (sh) S 0 0 0 0 -1 4194560 85 306 0 0 0 0 0 0 20 0 1 0 78951\n";
        let out = render_stat(
            raw,
            &Shift {
                off: 1000,
                levels: 0,
            },
            Shown::default(),
        )
        .unwrap();
        assert_eq!(
            out,
            b"1001 (sh) S 0 0 0 0 -1 4194560 85 306 0 0 0 0 0 0 20 0 1 0 78951\n".to_vec()
        );
    }

    #[test]
    fn self_fixture_running() {
        let raw = fixture!("stat_plain");
        let out = render_stat(
            raw,
            &Identity,
            Shown {
                running: true,
                ..Shown::default()
            },
        )
        .unwrap();
        assert_eq!(parse_stat(&out).unwrap().state, b'R');
        assert_eq!(out.len(), raw.len());
    }

    #[test]
    fn hostile_comm_just_close_paren() {
        let raw = b"5 ()) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7\n";
        let s = parse_stat(raw).unwrap();
        assert_eq!(
            (s.comm, s.state, s.ppid, s.starttime),
            (&b")"[..], b'S', 1, 7)
        );
        // a comm that looks like fields: "1) R 2 3 (" must not be split
        let raw = b"9 (1) R 2 3 () S 4 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 2 0 8\n";
        let s = parse_stat(raw).unwrap();
        assert_eq!(
            (s.comm, s.state, s.ppid, s.num_threads),
            (&b"1) R 2 3 ("[..], b'S', 4, 2)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"\n",
            b"12",
            b"12 (x",
            b"(x) S 1 1 1 0 -1",
            b"12 x) S 1 1 1 0 -1",
            b"12(x) S 1 1 1 0 -1",
            b"12 (x)S 1 1 1 0 -1",
            b"12 (x) S 1 1",
            b"12 (x) SS 1 1 1 0 -1",
            b"12 (x) S 1 1 1 0 +1",
            b"x2 (x) S 1 1 1 0 -1",
            b"12 (x) S 99999999999 1 1 0 -1",
        ] {
            assert!(
                render_stat(bad, &Identity, Shown::default()).is_err(),
                "{:?}",
                bad
            );
            assert!(parse_stat(bad).is_err(), "{:?}", bad);
        }
        // fields up to tpgid are enough to render, parse needs flags and starttime
        assert!(render_stat(b"12 (x) S 1 1 1 0 -1", &Identity, Shown::default()).is_ok());
        assert_eq!(
            parse_stat(b"12 (x) S 1 1 1 0 -1"),
            Err(ParseError::Missing {
                file: "stat",
                field: "flags"
            })
        );
    }

    fn synth(pid: i32, comm: &[u8], n: &[i32; 5], rest: &[u64]) -> Vec<u8> {
        let mut v = format!("{pid} (").into_bytes();
        v.extend_from_slice(comm);
        v.extend_from_slice(format!(") S {} {} {} {} {}", n[0], n[1], n[2], n[3], n[4]).as_bytes());
        for r in rest {
            v.extend_from_slice(format!(" {r}").as_bytes());
        }
        v.push(b'\n');
        v
    }

    proptest! {
        #[test]
        fn roundtrip_identity_and_shift(
            comm in proptest::collection::vec(1u8..=255, 1..=15),
            pid in 1i32..=4_194_304,
            n in proptest::array::uniform5(-1i32..=4_194_304),
            mut rest in proptest::collection::vec(any::<u64>(), 14..=44),
        ) {
            rest[11] %= 1 << 40; // num_threads (field 20) is a signed long
            let raw = synth(pid, &comm, &n, &rest);
            prop_assert_eq!(render_stat(&raw, &Identity, Shown::default()).unwrap(), raw.clone());
            let s = parse_stat(&raw).unwrap();
            prop_assert_eq!(s.comm, &comm[..]);
            let out = render_stat(&raw, &Shift { off: 10, levels: 0 }, Shown::default()).unwrap();
            let shift = |v: i32, o: i32| if v > 0 { v + o } else { v };
            let want = synth(shift(pid, 10), &comm, &[shift(n[0], 10), shift(n[1], 11), shift(n[2], 12), n[3], shift(n[4], 11)], &rest);
            prop_assert_eq!(out, want);
        }

        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200), running: bool) {
            let _ = render_stat(&raw, &Shift { off: 3, levels: 1 }, Shown { running, ..Shown::default() });
            let _ = parse_stat(&raw);
        }

        #[test]
        fn never_panics_near_valid(
            comm in proptest::collection::vec(any::<u8>(), 0..20),
            tail in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'-'), Just(b')'), Just(b'\n'), b'0'..=b'9'], 0..60),
        ) {
            let mut raw = b"12 (".to_vec();
            raw.extend_from_slice(&comm);
            raw.extend_from_slice(b") S ");
            raw.extend_from_slice(&tail);
            let _ = render_stat(&raw, &Shift { off: 3, levels: 1 }, Shown { running: true, ..Shown::default() });
            let _ = parse_stat(&raw);
        }
    }
}
