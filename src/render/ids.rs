//! User and group ids as a reader in another user namespace sees them.
//!
//! procfs writes the ids of a `status` (`Uid:`, `Gid:`, `Groups:`), the lower ids of
//! a `uid_map`/`gid_map`/`projid_map` and a `loginuid` in the user namespace of the
//! reader (`seq_user_ns`, the opener's credentials), and so do the socket tables of
//! `/proc/net`, `/proc/sysvipc` (rendered with its pids, [`super::sysvipc`]) and
//! `/proc/keys` (which lists only the keys of users the reader's namespace maps), where
//! the daemon, which reads as
//! root of the initial namespace, gets the kernel's own ids. So a reader in a user
//! namespace of its own (a rootless or unprivileged container inside a VPS) would see
//! uid 100033 where procfs shows 33, and `ps` would name the user wrongly. These
//! renderers map the kernel's ids through the reader's namespace's maps: an id with no
//! mapping shows as the overflow id in `status` (`from_kuid_munged`) and as
//! 4294967295 in the id maps and `loginuid` (`from_kuid`).

/// One line of a `uid_map`: ids `first..first+count` of the namespace are the kernel's
/// `lower..lower+count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    first: u32,
    lower: u32,
    count: u32,
}

/// A user namespace's map of user (or group, or project) ids, as its `uid_map` reads
/// to the daemon (lower ids in the kernel's numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap(Vec<Extent>);

/// The id procfs prints for "no id" (`(uid_t)-1`).
const INVALID: u32 = u32::MAX;

impl IdMap {
    /// Parses a map file's text; lines that are not three numbers are skipped.
    pub fn parse(text: &[u8]) -> IdMap {
        let text = String::from_utf8_lossy(text);
        IdMap(
            text.lines()
                .filter_map(|line| {
                    let v: Vec<u32> = line
                        .split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect();
                    match v[..] {
                        [first, lower, count] => Some(Extent {
                            first,
                            lower,
                            count,
                        }),
                        _ => None,
                    }
                })
                .collect(),
        )
    }

    /// Whether the map has no line yet (a namespace whose map was never written).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `make_kuid`: the kernel's id for the namespace's id `id`, if it maps it.
    pub fn to_kernel(&self, id: u32) -> Option<u32> {
        self.0.iter().find_map(|e| {
            let off = id.checked_sub(e.first)?;
            (off < e.count).then(|| e.lower + off)
        })
    }

    /// `from_kuid`: the namespace's id for the kernel's id `k`, if it has one.
    pub fn from_kernel(&self, k: u32) -> Option<u32> {
        self.0.iter().find_map(|e| {
            let off = k.checked_sub(e.lower)?;
            (off < e.count).then(|| e.first + off)
        })
    }
}

/// The maps of a reader's user namespace, and the overflow ids
/// (`/proc/sys/kernel/overflowuid`, `overflowgid`) shown for ids it does not map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderIds {
    pub uid: IdMap,
    pub gid: IdMap,
    pub projid: IdMap,
    pub overflow_uid: u32,
    pub overflow_gid: u32,
}

/// Which map an id map file shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Uid,
    Gid,
    Projid,
}

impl ReaderIds {
    /// `from_kuid_munged`: the namespace's uid for the kernel's `k`, else the overflow uid.
    pub fn uid_munged(&self, k: u32) -> u32 {
        self.uid.from_kernel(k).unwrap_or(self.overflow_uid)
    }

    /// `from_kgid_munged`: the namespace's gid for the kernel's `k`, else the overflow gid.
    pub fn gid_munged(&self, k: u32) -> u32 {
        self.gid.from_kernel(k).unwrap_or(self.overflow_gid)
    }

    fn map(&self, kind: MapKind) -> &IdMap {
        match kind {
            MapKind::Uid => &self.uid,
            MapKind::Gid => &self.gid,
            MapKind::Projid => &self.projid,
        }
    }
}

/// Rewrites every run of digits in `value` through `f`, keeping the other bytes.
fn map_numbers(out: &mut Vec<u8>, value: &[u8], f: impl Fn(u32) -> u32) {
    let mut i = 0;
    while i < value.len() {
        if !value[i].is_ascii_digit() {
            out.push(value[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < value.len() && value[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &value[start..i];
        match std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        {
            Some(n) => out.extend_from_slice(f(n).to_string().as_bytes()),
            None => out.extend_from_slice(digits),
        }
    }
}

/// A `status` with its `Uid:`, `Gid:` and `Groups:` in the reader's namespace.
pub fn status_ids(text: &[u8], ids: &ReaderIds) -> Vec<u8> {
    let uid = |k| ids.uid_munged(k);
    let gid = |k| ids.gid_munged(k);
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"Uid:") {
            out.extend_from_slice(b"Uid:");
            map_numbers(&mut out, value, uid);
        } else if let Some(value) = line.strip_prefix(b"Gid:") {
            out.extend_from_slice(b"Gid:");
            map_numbers(&mut out, value, gid);
        } else if let Some(value) = line.strip_prefix(b"Groups:") {
            out.extend_from_slice(b"Groups:");
            map_numbers(&mut out, value, gid);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// An id map file (`uid_map`…, lines `"%10u %10u %10u\n"`) with its lower ids in the
/// reader's namespace (`uid_m_show`: only the first id of each range is mapped).
pub fn id_map(text: &[u8], ids: &ReaderIds, kind: MapKind) -> Vec<u8> {
    let lower = ids.map(kind);
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let words: Vec<u32> = String::from_utf8_lossy(line)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match words[..] {
            [first, k, count] => {
                let shown = lower.from_kernel(k).unwrap_or(INVALID);
                out.extend_from_slice(format!("{first:>10} {shown:>10} {count:>10}\n").as_bytes());
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// A `loginuid` (`"%u"`, no newline) in the reader's namespace; an unset one (4294967295)
/// stays unset.
pub fn loginuid(text: &[u8], ids: &ReaderIds) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    map_numbers(&mut out, text, |k| match k {
        INVALID => INVALID,
        k => ids.uid.from_kernel(k).unwrap_or(INVALID),
    });
    out
}

/// Which socket table a `/proc/net` file is, for the column of its owner's uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketTable {
    /// `tcp`, `udp`, `raw`, `icmp`, `udplite` and their `6` twins: the uid is the
    /// eighth field, `%5u` (right-aligned in five columns).
    Inet,
    /// `packet`: the `User` column, eighth too, `%-6u` (left-aligned in six).
    Packet,
}

/// The uid column of a socket table in the reader's namespace (`from_kuid_munged`).
pub fn socket_table_ids(text: &[u8], ids: &ReaderIds, table: SocketTable) -> Vec<u8> {
    let (width, left) = match table {
        SocketTable::Inet => (5, false),
        SocketTable::Packet => (6, true),
    };
    let uid = |k| ids.uid_munged(k);
    let mut out = Vec::with_capacity(text.len());
    for (n, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        match (n, column(line, 7)) {
            (0, _) | (_, None) => out.extend_from_slice(line),
            (_, Some(span)) => put_column(&mut out, line, span, width, left, uid),
        }
    }
    out
}

/// The byte span of the `index`th field of a line of space-separated fields.
fn column(line: &[u8], index: usize) -> Option<(usize, usize)> {
    let mut fields = 0;
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && matches!(line[i], b' ' | b'\n') {
            i += 1;
        }
        let start = i;
        while i < line.len() && !matches!(line[i], b' ' | b'\n') {
            i += 1;
        }
        if start == i {
            return None;
        }
        if fields == index {
            return Some((start, i));
        }
        fields += 1;
    }
    None
}

/// Writes `line` with the number at `span` rewritten through `f`, printed as the
/// kernel's `%<width>u` (`%-<width>u` when `left`) would print it: the padding is
/// recomputed around the one separator, so a number longer than `width` widens its
/// column as printf does. A field that is not a number is copied.
fn put_column(
    out: &mut Vec<u8>,
    line: &[u8],
    (s, e): (usize, usize),
    width: usize,
    left: bool,
    f: impl Fn(u32) -> u32,
) {
    let Some(k) = std::str::from_utf8(&line[s..e])
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
    else {
        out.extend_from_slice(line);
        return;
    };
    let new = f(k).to_string();
    let pad = |len: usize| width.saturating_sub(len);
    if left {
        let after = line[e..].iter().take_while(|&&b| b == b' ').count();
        let sep = after.saturating_sub(pad(e - s)).max(1);
        out.extend_from_slice(&line[..s]);
        out.extend_from_slice(new.as_bytes());
        out.resize(out.len() + pad(new.len()) + sep, b' ');
        out.extend_from_slice(&line[e + after..]);
    } else {
        let before = line[..s].iter().rev().take_while(|&&b| b == b' ').count();
        let sep = before.saturating_sub(pad(e - s)).max(1);
        out.extend_from_slice(&line[..s - before]);
        out.resize(out.len() + sep + pad(new.len()), b' ');
        out.extend_from_slice(new.as_bytes());
        out.extend_from_slice(&line[e..]);
    }
}

/// `/proc/keys` for a reader in another user namespace: only the keys whose owner it
/// maps (`find_ge_key` skips the others), with their owner and group (`%5d` each, the
/// sixth and seventh fields) in its numbering.
pub fn keys_ids(text: &[u8], ids: &ReaderIds) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let owner =
            column(line, 5).and_then(|(s, e)| std::str::from_utf8(&line[s..e]).ok()?.parse().ok());
        let Some(uid) = owner.and_then(|k| ids.uid.from_kernel(k)) else {
            continue;
        };
        let Some(span) = column(line, 5) else {
            continue;
        };
        let mut row = Vec::with_capacity(line.len());
        put_column(&mut row, line, span, 5, false, |_| uid);
        let gid = |k| ids.gid_munged(k);
        match column(&row, 6) {
            Some(span) => put_column(&mut out, &row, span, 5, false, gid),
            None => out.extend_from_slice(&row),
        }
    }
    out
}

/// `/proc/key-users` for a reader in another user namespace: only the users it maps,
/// each numbered in its namespace (`"%5u:"`, the first field).
pub fn key_users_ids(text: &[u8], ids: &ReaderIds) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let Some((s, e)) = column(line, 0) else {
            continue;
        };
        let field = &line[s..e];
        let number = field.strip_suffix(b":").unwrap_or(field);
        let Some(uid) = std::str::from_utf8(number)
            .ok()
            .and_then(|t| t.parse().ok())
            .and_then(|k| ids.uid.from_kernel(k))
        else {
            continue;
        };
        let shown = format!("{uid}:");
        let pad = 6usize.saturating_sub(shown.len());
        out.resize(out.len() + pad, b' ');
        out.extend_from_slice(shown.as_bytes());
        out.extend_from_slice(&line[e..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `got` is `want`, compared as text (a failure shows the lines).
    fn same(got: Vec<u8>, want: &[u8]) {
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    /// A namespace mapping 0..65535 to 100000..165535 (`unshare` with subordinate ids).
    fn sub_ids() -> ReaderIds {
        let map = IdMap::parse(b"         0     100000      65536\n");
        ReaderIds {
            uid: map.clone(),
            gid: map.clone(),
            projid: IdMap::parse(b"         0          0 4294967295\n"),
            overflow_uid: 65534,
            overflow_gid: 65534,
        }
    }

    #[test]
    fn maps_translate_inside_their_ranges_only() {
        let ids = sub_ids();
        assert_eq!(ids.uid.from_kernel(100_000), Some(0));
        assert_eq!(ids.uid.from_kernel(165_535), Some(65535));
        assert_eq!(ids.uid.from_kernel(165_536), None);
        assert_eq!(ids.uid.from_kernel(0), None);
        assert_eq!(ids.uid.to_kernel(0), Some(100_000));
        assert_eq!(ids.uid.to_kernel(65536), None);
        assert!(IdMap::parse(b"").is_empty());
    }

    /// The kernel's `status` of a process of uid 100033 with groups 100005 and 100100,
    /// and what procfs shows a reader inside the namespace (captured on Linux 6.18).
    #[test]
    fn status_ids_are_the_readers() {
        let raw = b"Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t3\nUid:\t100033\t100033\t100033\t100033\nGid:\t100033\t100033\t100033\t100033\nFDSize:\t64\nGroups:\t100005 100100 \nNStgid:\t3\n";
        let want = b"Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t3\nUid:\t33\t33\t33\t33\nGid:\t33\t33\t33\t33\nFDSize:\t64\nGroups:\t5 100 \nNStgid:\t3\n";
        assert_eq!(status_ids(raw, &sub_ids()), want.to_vec());
        // Root of the initial namespace has no id there: the overflow id.
        let root = b"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n";
        let shown =
            b"Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t \n";
        assert_eq!(status_ids(root, &sub_ids()), shown.to_vec());
    }

    #[test]
    fn id_maps_show_lower_ids_in_the_readers_namespace() {
        // The initial namespace's map, read from inside the namespace.
        let init = b"         0          0 4294967295\n";
        assert_eq!(
            id_map(init, &sub_ids(), MapKind::Uid),
            b"         0 4294967295 4294967295\n".to_vec()
        );
        // A nested namespace's map, its lower ids the reader's own.
        let nested = b"         0     101000       1000\n";
        assert_eq!(
            id_map(nested, &sub_ids(), MapKind::Gid),
            b"         0       1000       1000\n".to_vec()
        );
        assert_eq!(id_map(b"", &sub_ids(), MapKind::Projid), b"".to_vec());
    }

    /// `/proc/net/tcp` and `packet` with a socket of uid 101000 and one of root, in the
    /// kernel's formats (`%5u`, `%-6u`), and as a reader inside the namespace must see
    /// them (tests/scripts/user_namespaces.py checks the tcp line against procfs).
    #[test]
    fn socket_tables_show_the_readers_uids() {
        let tcp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:A1B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000 101000        0 40963 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:A1B4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 40964 1 0000000000000000 100 0 0 10 0\n";
        let want = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:A1B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 40963 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:A1B4 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 40964 1 0000000000000000 100 0 0 10 0\n";
        same(socket_table_ids(tcp, &sub_ids(), SocketTable::Inet), want);
        let packet = b"sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n0000000000000000 3      3    0003   0     1 0      101000 50123\n";
        let want = b"sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n0000000000000000 3      3    0003   0     1 0      1000   50123\n";
        same(
            socket_table_ids(packet, &sub_ids(), SocketTable::Packet),
            want,
        );
    }

    /// `/proc/keys` and `/proc/key-users` in the kernel's formats (the first key as
    /// Linux 6.18 printed it here): a reader inside the namespace sees the keys of the
    /// users it maps, renumbered.
    #[test]
    fn keys_of_unmapped_owners_are_not_listed() {
        let keys = b"06497dee I------     1 perm 1f030000     0     0 keyring   .dns_resolver: empty\n1a2b3c4d I--Q---     1 perm 3f010000 101000 101000 user      secret: 6\n";
        let want = b"1a2b3c4d I--Q---     1 perm 3f010000  1000  1000 user      secret: 6\n";
        same(keys_ids(keys, &sub_ids()), want);
        let users = b"    0:     9 8/8 5/1000000 46/25000000\n101000:     2 2/2 1/200 6/20000\n";
        let want = b" 1000:     2 2/2 1/200 6/20000\n";
        same(key_users_ids(users, &sub_ids()), want);
    }

    #[test]
    fn loginuid_is_mapped_or_unset() {
        assert_eq!(loginuid(b"4294967295", &sub_ids()), b"4294967295".to_vec());
        assert_eq!(loginuid(b"101000", &sub_ids()), b"1000".to_vec());
        assert_eq!(loginuid(b"1000", &sub_ids()), b"4294967295".to_vec());
    }
}
