//! `/proc/locks`.
//!
//! fs/locks.c lock_get_status prints one line per lock:
//! "<id>: <class> <mode> <rw> <pid> <dev>:<ino> <start> <end>", e.g.
//! "5: FLOCK  ADVISORY  WRITE 7744 fe:00:10010807 0 EOF". class/mode are
//! "POSIX  ADVISORY ", "ACCESS ADVISORY ", "OFDLCK ADVISORY ", "FLOCK  ADVISORY ",
//! "LEASE  ACTIVE   ", "LEASE  BREAKING ", "LEASE  BREAKER  ", "DELEG  ACTIVE   ",
//! "UNKNOWN UNKNOWN " (MANDATORY / *NOINODE* in place of ADVISORY), rw is
//! WRITE, READ or UNLCK; so the pid is always the fourth word after the id.
//! Blocked waiters follow their blocker with the same id and a "-> "
//! prefix right-aligned by depth ("1: -> ...", "1:  -> ..." one level deeper).
//!
//! Pid namespace semantics (locks_show, locks_translate_pid): a top-level
//! lock whose owner pid is not visible in the reader's namespace is not
//! listed at all, nor are its waiters; OFD locks show -1; negative pids
//! (remote owners) are shown as they are; waiters whose pid is not visible
//! show 0. Ids are positions in the global list, so hidden locks leave gaps
//! — they are kept as printed.

use super::{lines, parse_num, push_num, splice, tokens, xlate, ParseError, PidMap};

const FILE: &str = "locks";
const CLASSES: [&[u8]; 7] = [
    b"POSIX", b"ACCESS", b"OFDLCK", b"FLOCK", b"LEASE", b"DELEG", b"UNKNOWN",
];
const MODES: [&[u8]; 7] = [
    b"ADVISORY",
    b"MANDATORY",
    b"*NOINODE*",
    b"ACTIVE",
    b"BREAKING",
    b"BREAKER",
    b"UNKNOWN",
];
const RW: [&[u8]; 3] = [b"WRITE", b"READ", b"UNLCK"];

/// One line of the lock table, as `lock_get_status` prints it.
struct LockLine<'a> {
    /// The lock's id ("3" of "3: ").
    id: &'a [u8],
    /// A waiter ("3: -> …") rather than a holder.
    waiter: bool,
    /// The owner's pid as printed, and where it is in the line.
    pid: i32,
    span: (usize, usize),
}

fn parse_line(line: &[u8]) -> Result<LockLine<'_>, ParseError> {
    let malformed = |what| ParseError::Malformed { file: FILE, what };
    let toks = tokens(line, 0, |c| c == b' ' || c == b'\n');
    let word = |i: usize| toks.get(i).and_then(|&(s, e)| line.get(s..e));
    let id = word(0)
        .and_then(|w| w.strip_suffix(b":"))
        .filter(|w| parse_num::<i64>(w).is_some())
        .ok_or(malformed("lock id"))?;
    let waiter = word(1) == Some(b"->");
    let first = 1 + usize::from(waiter);
    let known = |i: usize, set: &[&[u8]]| word(first + i).is_some_and(|w| set.contains(&w));
    if !(known(0, &CLASSES) && known(1, &MODES) && known(2, &RW)) {
        return Err(malformed("lock type columns"));
    }
    let &(ps, pe) = toks.get(first + 3).ok_or(malformed("lock pid"))?;
    let pid: i32 =
        parse_num(line.get(ps..pe).unwrap_or_default()).ok_or(ParseError::BadNumber {
            file: FILE,
            field: "lock pid",
        })?;
    Ok(LockLine {
        id,
        waiter,
        pid,
        span: (ps, pe),
    })
}

/// `line` with its owner pid replaced by `shown`.
fn with_pid(line: &[u8], l: &LockLine, shown: i32) -> Result<Vec<u8>, ParseError> {
    let mut b = Vec::new();
    push_num(&mut b, shown);
    splice(line, &[(l.span.0, l.span.1, b)], FILE)
}

/// Renders /proc/locks for the reader's VPS (see the module docs).
pub fn render_locks(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(raw.len());
    // id of the hidden top-level lock whose waiters are being skipped
    let mut hidden: Option<&[u8]> = None;
    for line in lines(raw) {
        let l = parse_line(line)?;
        let shown = xlate(l.pid, |p| map.pid(p));
        if l.waiter {
            if hidden == Some(l.id) {
                continue;
            }
        } else if shown == 0 {
            hidden = Some(l.id);
            continue;
        } else {
            hidden = None;
        }
        out.extend(with_pid(line, &l, shown)?);
    }
    Ok(out)
}

/// Renders one line of the lock table as `/proc/<pid>/fdinfo/<n>` prints it after
/// `lock:\t` (fs/locks.c show_fd_locks: the same `lock_get_status` text, numbered per
/// descriptor). There an owner the reader cannot see is shown as 0, not hidden.
pub fn render_lock_line(line: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let l = parse_line(line)?;
    with_pid(line, &l, xlate(l.pid, |p| map.pid(p)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    fn pids(raw: &[u8]) -> Vec<i32> {
        std::str::from_utf8(raw)
            .unwrap()
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = if w[1] == "->" { 5 } else { 4 };
                w[i].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn fixtures_identity_is_noop() {
        for raw in [
            fixture!("locks"),
            fixture!("locks_breaking"),
            fixture!("locks_nested_waiters_host"),
            fixture!("locks_nested_waiters_child_ns"),
        ] {
            assert_eq!(render_locks(raw, &Identity).unwrap(), raw);
        }
    }

    #[test]
    fn fixture_all_kinds_translated() {
        // OFDLCK (-1), LEASE ACTIVE/BREAKING/BREAKER (<none>:0), POSIX ranges, FLOCK, waiters.
        let raw = fixture!("locks_breaking");
        let out = render_locks(raw, &Shift { off: 1, levels: 0 }).unwrap();
        let want: Vec<i32> = pids(raw)
            .iter()
            .map(|&p| if p > 0 { p + 1 } else { p })
            .collect();
        assert_eq!(pids(&out), want);
        assert_eq!(out.len(), raw.len(), "same digit count: only pids changed");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("1: OFDLCK ADVISORY  WRITE -1 "));
        assert!(text.contains(" <none>:0 0 EOF\n"));
    }

    #[test]
    fn hides_invisible_owner_and_its_waiters() {
        // Host table; the VPS sees only the POSIX holder (as 1) and its waiter (as 2).
        let raw = fixture!("locks");
        let p = pids(raw);
        assert_eq!(p.len(), 8);
        let map = TableMap::new().with_pids(&[(p[3], 1), (p[5], 2)]);
        let out = String::from_utf8(render_locks(raw, &map).unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[0].starts_with("1: OFDLCK ADVISORY  WRITE -1 "));
        assert!(lines[1].starts_with("1: -> OFDLCK ADVISORY  WRITE -1 "));
        assert!(
            lines[2].starts_with("3: POSIX  ADVISORY  WRITE 1 ") && lines[2].ends_with(" 10 109")
        );
        assert!(
            lines[3].starts_with("4: POSIX  ADVISORY  WRITE 1 ") && lines[3].ends_with(" 0 EOF")
        );
        assert!(lines[4].starts_with("4: -> POSIX  ADVISORY  WRITE 2 "));
    }

    #[test]
    fn visible_owner_invisible_waiters_like_kernel() {
        // Kernel view from a child pid namespace: holder 2, host waiters 0.
        let child = fixture!("locks_nested_waiters_child_ns");
        assert_eq!(pids(child), vec![2, 0, 0]);
        let host = fixture!("locks_nested_waiters_host");
        let p = pids(host);
        let map = TableMap::new().with_pids(&[(p[0], 2)]);
        assert_eq!(render_locks(host, &map).unwrap(), child);
    }

    #[test]
    fn child_ns_fixture_matches_kernel_hiding() {
        // In the child namespace the kernel listed only OFD (-1) and its own flock.
        let raw = fixture!("locks_from_child_ns");
        let locks = &raw[..raw.windows(3).position(|w| w == b"==\n").unwrap()];
        assert_eq!(pids(locks), vec![-1, -1, 2]);
    }

    #[test]
    fn exact_bytes() {
        let raw = b"1: POSIX  ADVISORY  WRITE 1234 00:1b:5678 0 EOF\n1: -> POSIX  ADVISORY  WRITE 1235 00:1b:5678 0 EOF\n\
2: FLOCK  ADVISORY  WRITE 99 00:1b:11 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 1234 00:1b:11 0 EOF\n2:  -> FLOCK  ADVISORY  READ 1235 00:1b:11 0 EOF\n\
3: OFDLCK ADVISORY  READ -1 00:1b:12 0 EOF\n4: LEASE  ACTIVE    READ 1235 00:1b:13 0 EOF\n5: DELEG  ACTIVE    READ 77 00:1b:14 0 EOF\n\
6: POSIX  ADVISORY  WRITE -17 00:1b:15 0 9\n7: ACCESS MANDATORY READ 1234 00:1b:16 0 EOF\n8: UNKNOWN UNKNOWN  UNLCK 1234 <none>:0 0 EOF\n";
        let map = TableMap::new().with_pids(&[(1234, 1), (1235, 2)]);
        let want = b"1: POSIX  ADVISORY  WRITE 1 00:1b:5678 0 EOF\n1: -> POSIX  ADVISORY  WRITE 2 00:1b:5678 0 EOF\n\
3: OFDLCK ADVISORY  READ -1 00:1b:12 0 EOF\n4: LEASE  ACTIVE    READ 2 00:1b:13 0 EOF\n\
6: POSIX  ADVISORY  WRITE -17 00:1b:15 0 9\n7: ACCESS MANDATORY READ 1 00:1b:16 0 EOF\n8: UNKNOWN UNKNOWN  UNLCK 1 <none>:0 0 EOF\n";
        assert_eq!(
            String::from_utf8(render_locks(raw, &map).unwrap()).unwrap(),
            String::from_utf8(want.to_vec()).unwrap()
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"POSIX  ADVISORY  WRITE 1 00:1b:1 0 EOF\n"[..],
            b"x: POSIX  ADVISORY  WRITE 1 00:1b:1 0 EOF\n",
            b"1: POSIX  ADVISORY  WRITE\n",
            b"1: POSIX  ADVISORY  WRITE abc 00:1b:1 0 EOF\n",
            b"1: NEWKIND ADVISORY  WRITE 1 00:1b:1 0 EOF\n",
            b"1: -> -> POSIX  ADVISORY  WRITE 1 00:1b:1 0 EOF\n",
            b"\n",
        ] {
            assert!(
                render_locks(bad, &Identity).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(render_locks(b"", &Identity).unwrap(), b"");
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = render_locks(&raw, &TableMap::new().with_pids(&[(1, 2)]));
        }

        #[test]
        fn never_panics_near_valid(parts in proptest::collection::vec(prop_oneof![
            Just(&b"1:"[..]), Just(&b" "[..]), Just(&b"->"[..]), Just(&b"POSIX"[..]), Just(&b"ADVISORY"[..]),
            Just(&b"WRITE"[..]), Just(&b"-1"[..]), Just(&b"7"[..]), Just(&b"\n"[..])], 0..30)) {
            let _ = render_locks(&parts.concat(), &TableMap::new().with_pids(&[(7, 1)]));
        }
    }
}
