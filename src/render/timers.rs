//! `/proc/<pid>/timers`.
//!
//! kernel/time/posix-timers.c show_timer prints, per POSIX timer,
//! "ID: %d", "signal: %d/%px", "notify: %s/%s.%d" and "ClockID: %d". The
//! notify line names the thread or process that gets the signal
//! ("signal/pid.N", "signal/tid.N", "none/pid.N", "thread/pid.N"), with N
//! in the reader's pid namespace, so N is translated. The timer holds the target's
//! `struct pid` (`it_pid`): a thread that exited goes on being named ([`held`]).

use super::{held, lines, parse_num, push_num, splice, ParseError, PidMap};

const FILE: &str = "timers";
const NOTIFY: &[u8] = b"notify: ";

/// Translates N in every "notify: <word>/<pid|tid>.N" line.
pub fn render_timers(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let malformed = ParseError::Malformed {
        file: FILE,
        what: "notify line",
    };
    let mut edits = Vec::new();
    let mut at = 0;
    for line in lines(raw) {
        let start = at;
        at += line.len();
        let Some(rest) = line.strip_prefix(NOTIFY) else {
            continue;
        };
        let body = rest.strip_suffix(b"\n").unwrap_or(rest);
        let slash = body
            .iter()
            .position(|&c| c == b'/')
            .ok_or(malformed.clone())?;
        let word = body.get(..slash).unwrap_or_default();
        let target = body.get(slash + 1..).unwrap_or_default();
        if word.is_empty() || !word.iter().all(u8::is_ascii_lowercase) {
            return Err(malformed);
        }
        let num = target
            .strip_prefix(b"pid.")
            .or_else(|| target.strip_prefix(b"tid."))
            .ok_or(malformed.clone())?;
        let n: i32 = parse_num(num).ok_or(ParseError::BadNumber {
            file: FILE,
            field: "notify target",
        })?;
        let ns = start + NOTIFY.len() + slash + 1 + 4;
        let mut b = Vec::new();
        push_num(&mut b, held(map, n, |p| map.pid(p)));
        edits.push((ns, ns + num.len(), b));
    }
    splice(raw, &edits, FILE)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::fixture;
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_ended_target_thread_is_named_by_its_kept_vpid() {
        let raw = b"ID: 0\nsignal: 10/0000000000000000\nnotify: signal/tid.5123\nClockID: 1\n";
        let kept = TableMap::new().with_kept(&[(5123, 2)]);
        let want = b"ID: 0\nsignal: 10/0000000000000000\nnotify: signal/tid.2\nClockID: 1\n";
        assert_eq!(render_timers(raw, &kept).unwrap(), want);
        let gone = b"ID: 0\nsignal: 10/0000000000000000\nnotify: signal/tid.0\nClockID: 1\n";
        assert_eq!(render_timers(raw, &TableMap::new()).unwrap(), gone);
    }

    #[test]
    fn fixture_signal_none_and_thread_id() {
        let raw = fixture!("timers");
        assert_eq!(render_timers(raw, &Identity).unwrap(), raw);
        let text = std::str::from_utf8(raw).unwrap();
        let real: i32 = text
            .lines()
            .find_map(|l| l.strip_prefix("notify: signal/pid."))
            .unwrap()
            .parse()
            .unwrap();
        let out = render_timers(raw, &TableMap::new().with_pids(&[(real, 1)])).unwrap();
        let want = text.replace(&format!(".{real}\n"), ".1\n");
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert!(want.contains("notify: signal/tid.1\n") && want.contains("notify: none/pid.1\n"));
        assert!(want.contains("ID: 2\n"), "other lines untouched");
    }

    #[test]
    fn exact_bytes() {
        let raw = b"ID: 0\nsignal: 14/0000000000000000\nnotify: thread/pid.100\nClockID: 0\nID: 1\nsignal: 10/0000000000000001\nnotify: signal/tid.101\nClockID: 1\n";
        let map = TableMap::new().with_pids(&[(100, 1)]);
        assert_eq!(
            render_timers(raw, &map).unwrap(),
            b"ID: 0\nsignal: 14/0000000000000000\nnotify: thread/pid.1\nClockID: 0\nID: 1\nsignal: 10/0000000000000001\nnotify: signal/tid.0\nClockID: 1\n".to_vec()
        );
        assert_eq!(render_timers(b"", &map).unwrap(), b"");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"notify: signal\n"[..],
            b"notify: signal/pgid.3\n",
            b"notify: /pid.3\n",
            b"notify: signal/pid.\n",
            b"notify: signal/pid.3x\n",
            b"notify: Sig/pid.3\n",
        ] {
            assert!(render_timers(bad, &Identity).is_err(), "{:?}", bad);
        }
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = render_timers(&raw, &TableMap::new());
        }

        #[test]
        fn never_panics_near_valid(parts in proptest::collection::vec(prop_oneof![
            Just(&b"notify: "[..]), Just(&b"signal"[..]), Just(&b"/"[..]), Just(&b"pid."[..]),
            Just(&b"tid."[..]), Just(&b"-"[..]), Just(&b"12"[..]), Just(&b"\n"[..])], 0..20)) {
            let _ = render_timers(&parts.concat(), &TableMap::new().with_pids(&[(12, 1)]));
        }
    }
}
