//! `/proc/loadavg`.
//!
//! fs/proc/loadavg.c prints "%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n":
//! three load averages, running/total threads, and the last pid allocated
//! in the reader's pid namespace. The last pid leaks how busy the host is
//! and is meaningless in a VPS, so the view supplies its own; the thread
//! counts are replaced when the view counts the VPS's own threads.

use super::{push_num, splice, tokens, ParseError};

const FILE: &str = "loadavg";

/// The kernel's count of running threads (before the '/'), host-wide.
pub fn running(raw: &[u8]) -> Option<u32> {
    let toks = tokens(raw, 0, |c| c == b' ' || c == b'\n');
    let &(ts, te) = toks.get(3)?;
    let field = raw.get(ts..te)?;
    let slash = field.iter().position(|&c| c == b'/')?;
    super::parse_num(field.get(..slash)?)
}

/// Replaces the last field with `last_pid` and, when `threads` is
/// `Some((running, total))`, the "running/total" field too.
pub fn render_loadavg(
    raw: &[u8],
    last_pid: i32,
    threads: Option<(u32, u32)>,
) -> Result<Vec<u8>, ParseError> {
    let toks = tokens(raw, 0, |c| c == b' ' || c == b'\n');
    let [_, _, _, (ts, te), (ps, pe)] = toks[..] else {
        return Err(ParseError::Malformed {
            file: FILE,
            what: "line (want 5 fields)",
        });
    };
    let field = raw.get(ts..te).unwrap_or_default();
    let slash = field.iter().filter(|&&c| c == b'/').count();
    if slash != 1 {
        return Err(ParseError::Malformed {
            file: FILE,
            what: "running/total field",
        });
    }
    let mut edits = Vec::with_capacity(2);
    if let Some((running, total)) = threads {
        let mut b = Vec::new();
        push_num(&mut b, running);
        b.push(b'/');
        push_num(&mut b, total);
        edits.push((ts, te, b));
    }
    let mut b = Vec::new();
    push_num(&mut b, last_pid);
    edits.push((ps, pe, b));
    splice(raw, &edits, FILE)
}

#[cfg(test)]
mod running_tests {
    use super::running;

    #[test]
    fn reads_the_running_count() {
        assert_eq!(running(b"0.00 0.01 0.05 3/234 5678\n"), Some(3));
        assert_eq!(running(b"0.00 0.01 0.05 x/234 5678\n"), None);
        assert_eq!(running(b"garbage"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::fixture;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_bytes() {
        let raw = b"0.00 0.01 0.05 1/234 5678\n";
        assert_eq!(
            render_loadavg(raw, 42, None).unwrap(),
            b"0.00 0.01 0.05 1/234 42\n"
        );
        assert_eq!(
            render_loadavg(raw, 7, Some((2, 9))).unwrap(),
            b"0.00 0.01 0.05 2/9 7\n"
        );
    }

    #[test]
    fn fixture() {
        let raw = fixture!("loadavg");
        let last = std::str::from_utf8(raw)
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap();
        let out = render_loadavg(raw, last.parse().unwrap(), None).unwrap();
        assert_eq!(out, raw);
        let out = render_loadavg(raw, 1, Some((1, 1))).unwrap();
        assert!(out.ends_with(b" 1/1 1\n"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(render_loadavg(b"", 1, None).is_err());
        assert!(render_loadavg(b"0.00 0.01 0.05 1/234\n", 1, None).is_err());
        assert!(render_loadavg(b"0.00 0.01 0.05 1 234 5\n", 1, None).is_err());
        assert!(render_loadavg(b"0.00 0.01 0.05 1234 5\n", 1, None).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..100), p: i32, t: Option<(u32, u32)>) {
            let _ = render_loadavg(&raw, p, t);
        }
    }
}
