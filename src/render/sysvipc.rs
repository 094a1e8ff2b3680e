//! `/proc/sysvipc/shm` and `/proc/sysvipc/msg`.
//!
//! ipc/shm.c sysvipc_shm_show and ipc/msg.c sysvipc_msg_show print one header line,
//! then one line per object of the IPC namespace, with the pids of the last users in
//! the pid namespace of the reader who opened the file (`pid_nr_ns`, 0 when not
//! visible there): `cpid` and `lpid` (creator, last attach/detach) for shared memory,
//! `lspid` and `lrpid` (last send, last receive) for message queues. Each is printed
//! as `%5u` after a literal separator, so a number is right-aligned in five columns
//! and a longer one widens its column (captured in testdata/sysvipc_*).
//!
//! The columns are found by name in the header, so one parser serves both files (and
//! `sem`, which has no pid column, passes unchanged). Objects are never hidden: the
//! kernel lists every object of the IPC namespace, whoever made it.

use super::ids::ReaderIds;
use super::{held, lines, parse_num, push_num, tokens, ParseError, PidMap};

const FILE: &str = "sysvipc";
/// Header names of the columns that hold pids.
const PID_COLUMNS: [&[u8]; 4] = [b"cpid", b"lpid", b"lspid", b"lrpid"];
/// The kernel prints each pid, uid and gid with `%5u`.
const WIDTH: usize = 5;

/// What a rewritten column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Pid,
    /// `uid`, `cuid`: in the reader's user namespace.
    Uid,
    /// `gid`, `cgid`: in the reader's user namespace.
    Gid,
}

/// Renders a `/proc/sysvipc/*` table for the reader's VPS (see the module docs), with
/// its ids in the reader's user namespace when `ids` gives that namespace's maps
/// (`from_kuid_munged` in the opener's namespace, [`super::ids`]).
pub fn render_sysvipc(
    raw: &[u8],
    map: &dyn PidMap,
    ids: Option<&ReaderIds>,
) -> Result<Vec<u8>, ParseError> {
    let mut all = lines(raw);
    let Some(header) = all.next() else {
        return Ok(Vec::new());
    };
    let names = tokens(header, 0, |c| c == b' ' || c == b'\n');
    let cols: Vec<Option<Column>> = names
        .iter()
        .map(|&(s, e)| match header.get(s..e).unwrap_or_default() {
            name if PID_COLUMNS.contains(&name) => Some(Column::Pid),
            b"uid" | b"cuid" if ids.is_some() => Some(Column::Uid),
            b"gid" | b"cgid" if ids.is_some() => Some(Column::Gid),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(header);
    for line in all {
        if cols.iter().all(Option::is_none) {
            out.extend_from_slice(line);
            continue;
        }
        let toks = tokens(line, 0, |c| c == b' ' || c == b'\n');
        if toks.len() != names.len() {
            return Err(ParseError::Malformed {
                file: FILE,
                what: "row (columns differ from the header)",
            });
        }
        let mut at = 0;
        let mut prev_end = 0;
        for (i, &(s, e)) in toks.iter().enumerate() {
            if let Some(col) = cols.get(i).copied().flatten() {
                let digits = line.get(s..e).unwrap_or_default();
                let bad = |field| ParseError::BadNumber { file: FILE, field };
                let mut num = Vec::new();
                match (col, ids) {
                    (Column::Pid, _) => {
                        let real: i32 = parse_num(digits).ok_or(bad("pid column"))?;
                        // The object holds the `struct pid`: a creator gone is named.
                        push_num(&mut num, held(map, real, |p| map.pid(p)));
                    }
                    (Column::Uid, Some(ids)) => {
                        let k: u32 = parse_num(digits).ok_or(bad("uid column"))?;
                        push_num(&mut num, ids.uid_munged(k));
                    }
                    (Column::Gid, Some(ids)) => {
                        let k: u32 = parse_num(digits).ok_or(bad("gid column"))?;
                        push_num(&mut num, ids.gid_munged(k));
                    }
                    (_, None) => num.extend_from_slice(digits),
                }
                // The gap before the number is the format's literal separator plus
                // the `%5u` padding; the separator is kept, the padding recomputed.
                let gap = s - prev_end;
                let pad = WIDTH.saturating_sub(digits.len());
                let sep = gap.saturating_sub(pad).max(1);
                out.extend_from_slice(line.get(at..prev_end).unwrap_or_default());
                out.resize(out.len() + sep + WIDTH.saturating_sub(num.len()), b' ');
                out.extend_from_slice(&num);
                at = e;
            }
            prev_end = e;
        }
        out.extend_from_slice(line.get(at..).unwrap_or_default());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    fn init() -> i32 {
        std::str::from_utf8(fixture!("init_pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn fixtures_identity_is_noop() {
        for raw in [
            fixture!("sysvipc_shm_host"),
            fixture!("sysvipc_shm_child_ns"),
            fixture!("sysvipc_msg_host"),
            fixture!("sysvipc_msg_child_ns"),
        ] {
            assert_eq!(render_sysvipc(raw, &Identity, None).unwrap(), raw);
        }
    }

    /// A creator that has exited is named by the vpid it had: the segment holds its
    /// `struct pid`.
    #[test]
    fn a_creator_gone_is_named_by_its_kept_vpid() {
        for raw in [fixture!("sysvipc_shm_host"), fixture!("sysvipc_msg_host")] {
            let render = |m: &TableMap| render_sysvipc(raw, m, None).unwrap();
            let kept = render(&TableMap::new().with_kept(&[(init(), 4)]));
            assert_eq!(kept, render(&TableMap::new().with_pids(&[(init(), 4)])));
            assert_ne!(kept, render(&TableMap::new()), "the fixture names the init");
        }
    }

    #[test]
    fn renders_what_the_kernel_shows_in_a_child_namespace() {
        // The child namespace's init (1 there) attached the segment and took a message;
        // the host process that made them is invisible there (0).
        let map = TableMap::new().with_pids(&[(init(), 1)]);
        for (host, child) in [
            (
                fixture!("sysvipc_shm_host"),
                fixture!("sysvipc_shm_child_ns"),
            ),
            (
                fixture!("sysvipc_msg_host"),
                fixture!("sysvipc_msg_child_ns"),
            ),
        ] {
            assert_eq!(
                String::from_utf8(render_sysvipc(host, &map, None).unwrap()).unwrap(),
                String::from_utf8(child.to_vec()).unwrap()
            );
        }
    }

    #[test]
    fn long_numbers_widen_their_column_as_printf_does() {
        let raw = fixture!("sysvipc_shm_host");
        let out = render_sysvipc(
            raw,
            &Shift {
                off: 4_194_304,
                levels: 0,
            },
            None,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        let want = format!(" 4096 {} {}      1 ", 23642 + 4_194_304, init() + 4_194_304);
        assert!(row.contains(&want), "{row}");
    }

    #[test]
    fn sem_has_no_pid_column() {
        let raw = b"       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n         0          0   600          1     0     0     0     0          0 1796469886\n";
        assert_eq!(render_sysvipc(raw, &TableMap::new(), None).unwrap(), raw);
    }

    #[test]
    fn rejects_malformed() {
        let header = "       key      shmid perms                  size  cpid  lpid nattch\n";
        for row in [
            "0 1 600 4096 12 x 1\n",
            "0 1 600 4096 12 13\n",
            "0 1 600 4096 12 -\n",
        ] {
            let raw = format!("{header}{row}");
            assert!(
                render_sysvipc(raw.as_bytes(), &Identity, None).is_err(),
                "{row}"
            );
        }
        assert_eq!(render_sysvipc(b"", &Identity, None).unwrap(), b"");
        assert_eq!(
            render_sysvipc(header.as_bytes(), &Identity, None).unwrap(),
            header.as_bytes()
        );
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = render_sysvipc(&raw, &Shift { off: 7, levels: 0 }, None);
        }

        #[test]
        fn never_panics_near_valid(parts in proptest::collection::vec(prop_oneof![
            Just(&b"cpid"[..]), Just(&b"lrpid"[..]), Just(&b" "[..]), Just(&b"   "[..]),
            Just(&b"-1"[..]), Just(&b"123456"[..]), Just(&b"7"[..]), Just(&b"\n"[..])], 0..30)) {
            let _ = render_sysvipc(&parts.concat(), &Shift { off: 7, levels: 0 }, None);
        }
    }

    /// A reader in a namespace mapping 0..65535 to 100000..165535 sees the ids in its
    /// numbering, an id it does not map as 65534, each `%5u` as the kernel prints it.
    #[test]
    fn ids_are_shown_in_the_readers_user_namespace() {
        use super::super::ids::IdMap;
        let map = IdMap::parse(b"         0     100000      65536\n");
        let ids = ReaderIds {
            uid: map.clone(),
            gid: map,
            projid: IdMap::default(),
            overflow_uid: 65534,
            overflow_gid: 65534,
        };
        let shm = b"       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n         0          4   644                  4096     0     0      0 101000 100000     0 100033          0          0 1765000000                     0                     0\n";
        let want = b"       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n         0          4   644                  4096     0     0      0  1000     0 65534    33          0          0 1765000000                     0                     0\n";
        let got = render_sysvipc(shm, &Identity, Some(&ids)).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }
}
