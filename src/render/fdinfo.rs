//! `/proc/<pid>/fdinfo/<fd>`: the pid lines of pidfds, file locks and io_uring.
//!
//! Three kinds of descriptor show pids in their fdinfo:
//! - a pidfd (below);
//! - any file with locks on it: fs/locks.c show_fd_locks adds one
//!   `lock:\t<line of /proc/locks>` per lock the descriptor's owner holds, numbered
//!   from 1 for the descriptor, with the owner's pid in the reader's namespace, 0 when
//!   it is not visible there (captured in testdata/fdinfo_{flock,posix,ofd}_*);
//! - an io_uring with a polling thread: io_uring/fdinfo.c prints `SqThread:\t<pid>`,
//!   the thread's global pid even inside a pid namespace (a kernel leak the view
//!   closes: translated, 0 when not visible; -1 without a polling thread).
//!
//! A pidfd:
//!
//! fs/pidfs.c pidfd_show_fdinfo appends "Pid:\t%d\nNSpid:\t%d[\t%d...]\n"
//! to the generic pos/flags/mnt_id/ino lines. Pid is the pid in the pid
//! namespace of the procfs instance: -1 when the process is gone, 0 when it
//! is not visible there. NSpid repeats that number and, only when it is
//! positive, adds the pid in each deeper namespace. So an invisible or dead
//! process reads "Pid:\t0\nNSpid:\t0" / "Pid:\t-1\nNSpid:\t-1" (captured
//! in testdata/fdinfo_pidfd_invisible and _dead): NSpid is always printed.

use super::{lines, ns_values, parse_ns_list, parse_num, push_ns_line, xlate, ParseError, PidMap};

const FILE: &str = "fdinfo";
const LOCK: &[u8] = b"lock:\t";
const SQ_THREAD: &[u8] = b"SqThread:\t";

/// Translates every pid of an fdinfo file (see the module docs); the rest is copied.
pub fn render_fdinfo(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let raw = render_pidfd_fdinfo(raw, map)?;
    let mut out = Vec::with_capacity(raw.len());
    for line in lines(&raw) {
        if let Some(rest) = line.strip_prefix(LOCK) {
            out.extend_from_slice(LOCK);
            out.extend(super::locks::render_lock_line(rest, map)?);
        } else if let Some(rest) = line.strip_prefix(SQ_THREAD) {
            let (body, nl) = match rest.strip_suffix(b"\n") {
                Some(b) => (b, &b"\n"[..]),
                None => (rest, &b""[..]),
            };
            let real: i32 = parse_num(body).ok_or(ParseError::BadNumber {
                file: FILE,
                field: "SqThread",
            })?;
            out.extend_from_slice(SQ_THREAD);
            super::push_num(&mut out, xlate(real, |p| map.pid(p)));
            out.extend_from_slice(nl);
        } else {
            out.extend_from_slice(line);
        }
    }
    Ok(out)
}

fn pid_value(line: &[u8]) -> Option<&[u8]> {
    line.strip_prefix(b"Pid:")
}

/// Translates Pid and NSpid of a pidfd's fdinfo; other fdinfo files (no
/// "Pid:" line) are returned unchanged.
///
/// Pid > 0 goes through `map.pid`; NSpid then follows the NS rule (see
/// [`PidMap::ns_levels_above`]). When the translated Pid is ≤ 0 (not
/// visible, or dead) NSpid is that single number, as the kernel prints it.
pub fn render_pidfd_fdinfo(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let Some(value) = lines(raw).find_map(pid_value) else {
        return Ok(raw.to_vec());
    };
    let real: i32 = parse_num(value.trim_ascii()).ok_or(ParseError::BadNumber {
        file: FILE,
        field: "Pid",
    })?;
    let shown = xlate(real, |p| map.pid(p));
    let mut out = Vec::with_capacity(raw.len());
    for line in lines(raw) {
        let (body, nl) = match line.strip_suffix(b"\n") {
            Some(b) => (b, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        if pid_value(body).is_some() {
            push_ns_line(&mut out, b"Pid:", &[shown]);
        } else if let Some(v) = body.strip_prefix(b"NSpid:") {
            let vals = parse_ns_list(v, FILE, "NSpid")?;
            if vals.first() != Some(&real) {
                return Err(ParseError::Malformed {
                    file: FILE,
                    what: "NSpid (does not start with Pid)",
                });
            }
            let vals = if shown > 0 {
                ns_values(&vals, map.ns_levels_above(), shown)
            } else {
                vec![shown]
            };
            push_ns_line(&mut out, b"NSpid:", &vals);
        } else {
            out.extend_from_slice(body);
        }
        out.extend_from_slice(nl);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    fn real_pid(raw: &[u8]) -> i32 {
        let t = std::str::from_utf8(raw).unwrap();
        t.lines()
            .find_map(|l| l.strip_prefix("Pid:\t"))
            .unwrap()
            .parse()
            .unwrap()
    }

    fn tail(raw: &[u8]) -> String {
        let t = String::from_utf8(raw.to_vec()).unwrap();
        t[t.find("Pid:").unwrap()..].to_string()
    }

    #[test]
    fn fixtures_identity_is_noop() {
        for raw in [
            fixture!("fdinfo_pidfd_self"),
            fixture!("fdinfo_pidfd_dead"),
            fixture!("fdinfo_pidfd_nested"),
            fixture!("fdinfo_pidfd_invisible"),
            fixture!("fdinfo_pipe"),
        ] {
            assert_eq!(render_pidfd_fdinfo(raw, &Identity).unwrap(), raw);
        }
    }

    #[test]
    fn kernel_prints_nspid_for_dead_and_invisible() {
        assert_eq!(
            tail(fixture!("fdinfo_pidfd_dead")),
            "Pid:\t-1\nNSpid:\t-1\n"
        );
        assert_eq!(
            tail(fixture!("fdinfo_pidfd_invisible")),
            "Pid:\t0\nNSpid:\t0\n"
        );
    }

    #[test]
    fn invisible_to_vps_renders_like_kernel() {
        let raw = fixture!("fdinfo_pidfd_self");
        let out = render_pidfd_fdinfo(raw, &TableMap::new()).unwrap();
        assert_eq!(tail(&out), "Pid:\t0\nNSpid:\t0\n");
        assert!(out.starts_with(b"pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t"));
        let dead = fixture!("fdinfo_pidfd_dead");
        assert_eq!(render_pidfd_fdinfo(dead, &TableMap::new()).unwrap(), dead);
    }

    #[test]
    fn nested_fixture_ns_rule() {
        let raw = fixture!("fdinfo_pidfd_nested");
        let real = real_pid(raw);
        assert_eq!(tail(raw), format!("Pid:\t{real}\nNSpid:\t{real}\t1\n"));
        // VPS without its own pid namespace: vpid 5, the inner level is kept.
        let flat = TableMap::new().with_pids(&[(real, 5)]);
        assert_eq!(
            tail(&render_pidfd_fdinfo(raw, &flat).unwrap()),
            "Pid:\t5\nNSpid:\t5\t1\n"
        );
        // VPS is the child namespace itself: it sees the task as 1.
        let ns = TableMap::new().with_pids(&[(real, 1)]).with_levels_above(1);
        assert_eq!(
            tail(&render_pidfd_fdinfo(raw, &ns).unwrap()),
            "Pid:\t1\nNSpid:\t1\n"
        );
        let deep = Shift { off: 0, levels: 9 };
        assert_eq!(
            tail(&render_pidfd_fdinfo(raw, &deep).unwrap()),
            format!("Pid:\t{real}\nNSpid:\t{real}\n")
        );
    }

    #[test]
    fn exact_bytes() {
        let raw = b"pos:\t0\nflags:\t02\nmnt_id:\t4\nino:\t9\nPid:\t100\nNSpid:\t100\t7\t1\n";
        let map = TableMap::new().with_pids(&[(100, 3)]).with_levels_above(1);
        assert_eq!(
            render_pidfd_fdinfo(raw, &map).unwrap(),
            b"pos:\t0\nflags:\t02\nmnt_id:\t4\nino:\t9\nPid:\t3\nNSpid:\t3\t1\n".to_vec()
        );
    }

    #[test]
    fn lock_lines_render_what_the_kernel_shows_in_a_child_namespace() {
        // The child namespace's init (1 there) holds POSIX locks and an OFD lock (-1),
        // and inherited a descriptor flocked by a host process, shown as 0 there.
        let init: i32 = std::str::from_utf8(fixture!("init_pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let map = TableMap::new().with_pids(&[(init, 1)]);
        for (host, child) in [
            (
                fixture!("fdinfo_flock_host"),
                fixture!("fdinfo_flock_child_ns"),
            ),
            (
                fixture!("fdinfo_posix_host"),
                fixture!("fdinfo_posix_child_ns"),
            ),
            (fixture!("fdinfo_ofd_host"), fixture!("fdinfo_ofd_child_ns")),
        ] {
            assert_eq!(render_fdinfo(host, &Identity).unwrap(), host);
            assert_eq!(
                String::from_utf8(render_fdinfo(host, &map).unwrap()).unwrap(),
                String::from_utf8(child.to_vec()).unwrap()
            );
        }
        assert!(String::from_utf8_lossy(fixture!("fdinfo_posix_child_ns"))
            .contains("\nlock:\t2: POSIX"));
    }

    #[test]
    fn sq_thread_is_translated() {
        let raw = b"pos:\t0\nSqMask:\t0x3\nSqThread:\t23849\nSqThreadCpu:\t0\nPollList:\n";
        let map = TableMap::new().with_pids(&[(23849, 4)]);
        assert_eq!(
            render_fdinfo(raw, &map).unwrap(),
            b"pos:\t0\nSqMask:\t0x3\nSqThread:\t4\nSqThreadCpu:\t0\nPollList:\n".to_vec()
        );
        let hidden = render_fdinfo(raw, &TableMap::new()).unwrap();
        assert!(hidden.windows(13).any(|w| w == b"SqThread:\t0\nS"));
        let none = b"SqThread:\t-1\n";
        assert_eq!(render_fdinfo(none, &map).unwrap(), none);
        assert!(render_fdinfo(b"SqThread:\tx\n", &map).is_err());
        assert!(render_fdinfo(b"lock:\t1: POSIX ADVISORY\n", &map).is_err());
    }

    #[test]
    fn rejects_malformed() {
        assert!(render_pidfd_fdinfo(b"Pid:\tx\n", &Identity).is_err());
        assert!(render_pidfd_fdinfo(b"Pid:\t5\nNSpid:\t6\n", &Identity).is_err());
        assert!(render_pidfd_fdinfo(b"Pid:\t5\nNSpid:\n", &Identity).is_err());
        assert_eq!(
            render_pidfd_fdinfo(b"Pid:\t5\n", &Identity).unwrap(),
            b"Pid:\t5\n"
        );
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200), levels in 0usize..3) {
            let _ = render_pidfd_fdinfo(&raw, &Shift { off: 2, levels });
            let _ = render_fdinfo(&raw, &Shift { off: 2, levels });
        }

        #[test]
        fn never_panics_near_valid(parts in proptest::collection::vec(prop_oneof![
            Just(&b"Pid:"[..]), Just(&b"NSpid:"[..]), Just(&b"\t"[..]), Just(&b"-1"[..]),
            Just(&b"7"[..]), Just(&b"\n"[..])], 0..20), levels in 0usize..3) {
            let _ = render_pidfd_fdinfo(&parts.concat(), &Shift { off: 2, levels });
        }
    }
}
