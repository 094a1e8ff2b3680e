//! Pure renderers that rewrite kernel /proc text for a VPS reader.
//!
//! The daemon reads a proc file in its own pid namespace and hands the bytes
//! here together with a [`PidMap`] describing how the reader's VPS names the
//! real numbers. Every renderer is a pure function (bytes in, bytes out): no
//! I/O and no global state, so the output depends only on the arguments and
//! can be tested against captured kernel output. Renderers never panic; input
//! that does not look like what the kernel prints yields a [`ParseError`]
//! rather than a guess, because a wrong guess could leak a real pid.
//!
//! Bytes that are not rewritten are copied verbatim: comm names may hold any
//! byte but NUL, and tools compare whitespace exactly.
//!
//! Fixtures under `testdata/` were captured from a real 6.18 kernel with
//! `testdata/capture.py`.

use std::collections::HashMap;

pub mod children;
pub mod comm;
pub mod fdinfo;
pub mod ids;
pub mod loadavg;
pub mod locks;
pub mod paths;
pub mod sched;
pub mod stat;
pub mod status;
pub mod sysctl;
pub mod sysvipc;
pub mod timers;

pub use children::render_children;
pub use fdinfo::{render_fdinfo, render_pidfd_fdinfo};
pub use loadavg::render_loadavg;
pub use locks::render_locks;
pub use sched::render_sched;
pub use stat::{parse_stat, render_stat, Stat};
pub use status::{parse_status, render_status, Status};
pub use sysctl::render_sysctl_pid;
pub use sysvipc::render_sysvipc;
pub use timers::render_timers;

/// What a renderer needs from the view: how the reader's VPS names real numbers.
pub trait PidMap {
    /// vpid of a real task number (pid, tid or tgid); 0 when the reader's VPS has no such number.
    fn pid(&self, real: i32) -> i32;
    /// vpid of a real process-group number; 0 when not visible.
    fn pgid(&self, real: i32) -> i32;
    /// vpid of a real session number; 0 when not visible.
    fn sid(&self, real: i32) -> i32;
    /// The vpid a real number had when its last user went, which a kernel object
    /// holding its `struct pid` goes on showing (a terminal's foreground group as
    /// `tpgid`; the creator and last users of a System V IPC object; a POSIX timer's
    /// target thread); `None` when not known. Asked only for a number with no live user
    /// ([`held`]).
    fn kept(&self, _real: i32) -> Option<i32> {
        None
    }
    /// Number of leading entries of the NS* lines (NStgid/NSpid/NSpgid/NSsid in status, NSpid in pidfd fdinfo)
    /// that belong to pid namespaces ABOVE the VPS's level (0 when the VPS has no kernel pid namespace).
    fn ns_levels_above(&self) -> usize;
}

/// Why a kernel file could not be rendered. Messages are one line and name
/// the file so they can go straight into a log.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ParseError {
    /// A line or field the kernel always prints is absent (truncated or foreign input).
    #[error("{file}: missing {field}")]
    Missing {
        file: &'static str,
        field: &'static str,
    },
    /// A field that must be a decimal number is not one (or does not fit).
    #[error("{file}: {field} is not a valid number")]
    BadNumber {
        file: &'static str,
        field: &'static str,
    },
    /// The text does not have the shape the kernel prints.
    #[error("{file}: malformed {what}")]
    Malformed {
        file: &'static str,
        what: &'static str,
    },
}

/// The identity view: every number maps to itself, no namespace levels above.
/// Used for the host view and in tests (rendering must then be a no-op).
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl PidMap for Identity {
    fn pid(&self, real: i32) -> i32 {
        real
    }
    fn pgid(&self, real: i32) -> i32 {
        real
    }
    fn sid(&self, real: i32) -> i32 {
        real
    }
    fn ns_levels_above(&self) -> usize {
        0
    }
}

/// A table-backed map for tests and tools: numbers absent from a table are
/// invisible (map to 0), like tasks outside the VPS.
#[derive(Debug, Clone, Default)]
pub struct TableMap {
    pub pids: HashMap<i32, i32>,
    pub pgids: HashMap<i32, i32>,
    pub sids: HashMap<i32, i32>,
    /// Numbers with no live user, with the vpid they had ([`PidMap::kept`]).
    pub kept: HashMap<i32, i32>,
    pub levels_above: usize,
}

impl TableMap {
    /// An empty map: nothing visible, no levels above.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds task numbers `real → virtual`.
    pub fn with_pids(mut self, pairs: &[(i32, i32)]) -> Self {
        self.pids.extend(pairs.iter().copied());
        self
    }
    /// Adds process-group numbers `real → virtual`.
    pub fn with_pgids(mut self, pairs: &[(i32, i32)]) -> Self {
        self.pgids.extend(pairs.iter().copied());
        self
    }
    /// Adds session numbers `real → virtual`.
    pub fn with_sids(mut self, pairs: &[(i32, i32)]) -> Self {
        self.sids.extend(pairs.iter().copied());
        self
    }
    /// Adds numbers with no live user, `real → the vpid they had`.
    pub fn with_kept(mut self, pairs: &[(i32, i32)]) -> Self {
        self.kept.extend(pairs.iter().copied());
        self
    }
    /// Sets how many NS* entries belong to namespaces above the VPS.
    pub fn with_levels_above(mut self, levels: usize) -> Self {
        self.levels_above = levels;
        self
    }
}

impl PidMap for TableMap {
    fn pid(&self, real: i32) -> i32 {
        self.pids.get(&real).copied().unwrap_or(0)
    }
    fn pgid(&self, real: i32) -> i32 {
        self.pgids.get(&real).copied().unwrap_or(0)
    }
    fn sid(&self, real: i32) -> i32 {
        self.sids.get(&real).copied().unwrap_or(0)
    }
    fn kept(&self, real: i32) -> Option<i32> {
        self.kept.get(&real).copied()
    }
    fn ns_levels_above(&self) -> usize {
        self.levels_above
    }
}

/// Translates a number that a kernel object holds the `struct pid` of: through `live`
/// while it has a live user, else to the vpid it had ([`PidMap::kept`]).
pub(crate) fn held(map: &dyn PidMap, v: i32, live: impl Fn(i32) -> i32) -> i32 {
    xlate(v, |p| match live(p) {
        0 => map.kept(p).unwrap_or(0),
        n => n,
    })
}

/// Translates a real number through `f` only when it names something.
///
/// The kernel prints 0 for "none / not visible" and negative values as
/// markers (-1: no tty group, dead pidfd, OFD lock owner; other negatives:
/// remote lock owners). Those are not pids and must not be looked up.
pub(crate) fn xlate(v: i32, f: impl Fn(i32) -> i32) -> i32 {
    if v > 0 {
        f(v)
    } else {
        v
    }
}

/// Parses a decimal integer exactly as the kernel prints it: optional '-'
/// then ASCII digits, nothing else (no '+', no spaces). `str::parse` alone
/// would also accept a leading '+'.
pub(crate) fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Appends the decimal form of `v` (formatted in place: no string in between).
pub(crate) fn push_num(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{v}");
}

/// Byte ranges of the runs of non-separator bytes in `b`, offset by `base`.
pub(crate) fn tokens(b: &[u8], base: usize, is_sep: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    first_tokens(b, base, is_sep, usize::MAX)
}

/// [`tokens`], the first `max` of them only: a renderer that rewrites the first fields
/// of a long line (`stat` has 52) does not split the rest.
pub(crate) fn first_tokens(
    b: &[u8],
    base: usize,
    is_sep: impl Fn(u8) -> bool,
    max: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(max.min(64));
    let mut start = None;
    for (i, &c) in b.iter().enumerate() {
        match (is_sep(c), start) {
            (true, Some(s)) => {
                out.push((base + s, base + i));
                if out.len() == max {
                    return out;
                }
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        if out.len() < max {
            out.push((base + s, base + b.len()));
        }
    }
    out
}

/// Copies `raw`, replacing each `(start, end)` range by its bytes.
///
/// Ranges must be sorted and disjoint (all callers build them from one left
/// to right scan); a range that is not is reported instead of panicking.
pub(crate) fn splice(
    raw: &[u8],
    edits: &[(usize, usize, Vec<u8>)],
    file: &'static str,
) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut at = 0;
    for (s, e, with) in edits {
        let keep = raw.get(at..*s).ok_or(ParseError::Malformed {
            file,
            what: "field layout",
        })?;
        out.extend_from_slice(keep);
        out.extend_from_slice(with);
        at = (*e).max(at);
    }
    out.extend_from_slice(raw.get(at..).unwrap_or_default());
    Ok(out)
}

/// io_uring names its kernel threads after the real pid of the task they serve
/// (`iou-sqp-<pid>`, `iou-wrk-<pid>`): a global id that the kernel shows even inside a
/// pid namespace. Returns the name with that pid translated, or `None` for any other
/// name (which stays byte for byte). The caller asks only of a task that is such a
/// thread (`PF_IO_WORKER`): any task may give itself such a name (`prctl`), and the
/// kernel shows it as it is.
pub fn io_uring_comm(comm: &[u8], map: &dyn PidMap) -> Option<Vec<u8>> {
    for prefix in [b"iou-sqp-".as_slice(), b"iou-wrk-".as_slice()] {
        let Some(digits) = comm.strip_prefix(prefix) else {
            continue;
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let real: i32 = parse_num(digits)?;
        let mut out = prefix.to_vec();
        push_num(&mut out, xlate(real, |p| map.pid(p)));
        return Some(out);
    }
    None
}

/// Splits into lines, each keeping its trailing '\n' (the last may lack one).
pub(crate) fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split_inclusive(|&c| c == b'\n')
}

/// Applies the NS* rule shared by status and pidfd fdinfo.
///
/// `values` are what the daemon's kernel printed, outermost (daemon level)
/// first. The VPS sees the levels from its own down: the first `levels_above`
/// entries belong to namespaces above it and are dropped, and the entry at its
/// own level is replaced by the VPS's name for the task (`first`, looked up
/// from `values[0]`, the real number). If the kernel printed no entry at the
/// VPS level the line still carries the one number the VPS knows.
pub(crate) fn ns_values(values: &[i32], levels_above: usize, first: i32) -> Vec<i32> {
    let mut out = vec![first];
    out.extend(values.iter().skip(levels_above.saturating_add(1)));
    out
}

/// Parses the tab-separated numbers of an NS* value (`"\t5\t1"`).
pub(crate) fn parse_ns_list(
    value: &[u8],
    file: &'static str,
    field: &'static str,
) -> Result<Vec<i32>, ParseError> {
    let bad = ParseError::BadNumber { file, field };
    let vals: Vec<i32> = value
        .split(|&c| c == b'\t')
        .filter(|t| !t.is_empty())
        .map(|t| parse_num(t).ok_or(bad.clone()))
        .collect::<Result<_, _>>()?;
    if vals.is_empty() {
        return Err(ParseError::Missing { file, field });
    }
    Ok(vals)
}

/// Writes `key` + one "\t%d" per value, the way the kernel prints NS* lines.
pub(crate) fn push_ns_line(out: &mut Vec<u8>, key: &[u8], vals: &[i32]) {
    out.extend_from_slice(key);
    for v in vals {
        out.push(b'\t');
        push_num(out, v);
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Reads a fixture captured by testdata/capture.py.
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/render/testdata/",
                $name
            ))
            .as_slice()
        };
    }
    pub(crate) use fixture;

    /// A map that renames every positive number by adding `off` (pids),
    /// `off + 1` (pgids) and `off + 2` (sids), so each kind of lookup leaves
    /// a distinct trace in the output.
    pub(crate) struct Shift {
        pub off: i32,
        pub levels: usize,
    }
    impl PidMap for Shift {
        fn pid(&self, real: i32) -> i32 {
            real.wrapping_add(self.off)
        }
        fn pgid(&self, real: i32) -> i32 {
            real.wrapping_add(self.off + 1)
        }
        fn sid(&self, real: i32) -> i32 {
            real.wrapping_add(self.off + 2)
        }
        fn ns_levels_above(&self) -> usize {
            self.levels
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_num_is_strict() {
        assert_eq!(parse_num::<i32>(b"42"), Some(42));
        assert_eq!(parse_num::<i32>(b"-1"), Some(-1));
        assert_eq!(parse_num::<i32>(b"+1"), None);
        assert_eq!(parse_num::<i32>(b""), None);
        assert_eq!(parse_num::<i32>(b"-"), None);
        assert_eq!(parse_num::<i32>(b" 1"), None);
        assert_eq!(parse_num::<i32>(b"2147483648"), None);
        assert_eq!(parse_num::<u64>(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn ns_rule() {
        assert_eq!(ns_values(&[6940, 2, 1], 0, 7), vec![7, 2, 1]);
        assert_eq!(ns_values(&[6940, 2, 1], 1, 7), vec![7, 1]);
        assert_eq!(ns_values(&[6940, 2, 1], 2, 7), vec![7]);
        assert_eq!(ns_values(&[6940, 2, 1], 5, 7), vec![7]);
        assert_eq!(ns_values(&[6940], usize::MAX, 7), vec![7]);
    }

    #[test]
    fn table_map_hides_unknown() {
        let m = TableMap::new()
            .with_pids(&[(100, 1)])
            .with_pgids(&[(100, 1)]);
        assert_eq!(
            (m.pid(100), m.pid(101), m.pgid(100), m.sid(100)),
            (1, 0, 1, 0)
        );
    }

    #[test]
    fn held_numbers_fall_back_to_the_vpid_kept() {
        let m = TableMap::new()
            .with_pids(&[(100, 1)])
            .with_kept(&[(100, 9), (200, 2)]);
        let live = |p| m.pid(p);
        // A live user first, then the kept vpid, then 0; markers as they are.
        assert_eq!(held(&m, 100, live), 1);
        assert_eq!(held(&m, 200, live), 2);
        assert_eq!(held(&m, 300, live), 0);
        assert_eq!((held(&m, 0, live), held(&m, -1, live)), (0, -1));
    }

    #[test]
    fn errors_are_one_line() {
        let e = ParseError::BadNumber {
            file: "stat",
            field: "ppid",
        };
        assert_eq!(e.to_string(), "stat: ppid is not a valid number");
        assert!(!e.to_string().contains('\n'));
    }
}
