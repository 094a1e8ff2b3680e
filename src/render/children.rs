//! `/proc/<pid>/task/<tid>/children`.
//!
//! fs/proc/array.c children_seq_show prints each child as "%d " (no
//! newline). A child the reader cannot see is simply left out, as the
//! kernel does for children outside the reader's pid namespace.

use super::{parse_num, push_num, xlate, ParseError, PidMap};

const FILE: &str = "children";

/// Translates each child pid; drops those the map gives 0 for.
pub fn render_children(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(raw.len());
    for tok in raw.split(|&c| c == b' ').filter(|t| !t.is_empty()) {
        let real: i32 = parse_num(tok).ok_or(ParseError::BadNumber {
            file: FILE,
            field: "child pid",
        })?;
        if real < 0 {
            return Err(ParseError::Malformed {
                file: FILE,
                what: "child pid (negative)",
            });
        }
        // 0 is the kernel's "not visible"; it stays hidden.
        let v = xlate(real, |p| map.pid(p));
        if v != 0 {
            push_num(&mut out, v);
            out.push(b' ');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::fixture;
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_identity_is_noop() {
        let raw = fixture!("children");
        assert_eq!(raw.iter().filter(|&&c| c == b' ').count(), 3);
        assert_eq!(render_children(raw, &Identity).unwrap(), raw);
        assert_eq!(
            render_children(fixture!("children_empty"), &Identity).unwrap(),
            b""
        );
    }

    #[test]
    fn translates_and_omits_invisible() {
        let map = TableMap::new().with_pids(&[(12, 3), (56, 4)]);
        assert_eq!(render_children(b"12 34 56 ", &map).unwrap(), b"3 4 ");
        assert_eq!(render_children(b"34 ", &map).unwrap(), b"");
    }

    #[test]
    fn rejects_garbage() {
        assert!(render_children(b"12 x ", &Identity).is_err());
        assert!(render_children(b"12\n", &Identity).is_err());
        assert_eq!(render_children(b"0 5 ", &Identity).unwrap(), b"5 ");
        assert!(render_children(b"-3 ", &Identity).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = render_children(&raw, &TableMap::new().with_pids(&[(1, 2)]));
        }

        #[test]
        fn identity_roundtrip(pids in proptest::collection::vec(1i32..=i32::MAX, 0..20)) {
            let raw: String = pids.iter().map(|p| format!("{p} ")).collect();
            prop_assert_eq!(render_children(raw.as_bytes(), &Identity).unwrap(), raw.into_bytes());
        }
    }
}
