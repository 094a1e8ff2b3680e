//! File paths as the kernel writes them for a reader in a chroot.
//!
//! procfs writes a file's path with `d_path`, from the root of the task that reads:
//! the targets of `exe`, `cwd`, `root` and `fd/N`, and the mapped files' names in
//! `maps`, `smaps` (fs/proc/task_mmu.c `show_map_vma`: `seq_path`) and `numa_maps`
//! (`file=`, `seq_file_path`). The daemon reads them from its own root, so a reader
//! whose root lies below it (`chroot`, the root of its `/proc/<tid>/root`) would see
//! that root's path in front of every name under it. These functions take it off;
//! a path outside the reader's root stays as the kernel writes it then, from the top.

/// `target` relative to `root` (both absolute paths), when it lies there; otherwise
/// `target` unchanged.
pub fn strip_root(target: Vec<u8>, root: &[u8]) -> Vec<u8> {
    match below_root(&target, root) {
        Some(rest) => rest.to_vec(),
        None => target,
    }
}

/// The part of `path` below `root` (`/` for `root` itself), if `path` lies there and
/// `root` is not `/`.
fn below_root<'a>(path: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let root = match root {
        b"/" | b"" => return None,
        r => r.strip_suffix(b"/").unwrap_or(r),
    };
    match path.strip_prefix(root) {
        Some([]) => Some(b"/"),
        Some(rest) if rest.starts_with(b"/") => Some(rest),
        _ => None,
    }
}

/// `maps`, `smaps` or `numa_maps` as a reader whose root is `root` reads them: the
/// name of each mapped file below it without that prefix. A `maps` line (and each
/// `smaps` header) is `start-end perms offset dev inode`, the padding, then the name;
/// a `numa_maps` line names its file in a `file=` field. Other lines (`smaps`'s
/// `Key: value`, `[heap]`-like names) are copied as they are.
pub fn maps_below_root(raw: &[u8], root: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        match name_at(line) {
            Some(at) => {
                let (head, name) = line.split_at(at);
                out.extend_from_slice(head);
                match below_root(name, root) {
                    Some(rest) => out.extend_from_slice(rest),
                    None => out.extend_from_slice(name),
                }
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// Where the path in a `maps` or `numa_maps` line starts, if it names a file by path.
fn name_at(line: &[u8]) -> Option<usize> {
    let hex = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_hexdigit);
    let first = line.split(|&b| b == b' ').next()?;
    if hex(first) {
        // A `numa_maps` line: `start policy file=/path …`.
        const FILE: &[u8] = b" file=/";
        let at = line.windows(FILE.len()).position(|w| w == FILE)?;
        return Some(at + FILE.len() - 1);
    }
    // A `maps` line (an `smaps` header): `start-end`, four more fields, the padding,
    // the name. Anything else (`smaps`'s `Key:  value kB`) has none.
    let (start, end) = split_once(first, b'-')?;
    if !(hex(start) && hex(end)) {
        return None;
    }
    let mut at = 0;
    for _ in 0..5 {
        at += line[at..].iter().position(|&b| b == b' ')? + 1;
    }
    at += line[at..].iter().take_while(|&&b| b == b' ').count();
    line[at..].starts_with(b"/").then_some(at)
}

fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == sep)?;
    Some((&s[..at], &s[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_the_readers_root() {
        let t =
            |s: &str, root: &str| String::from_utf8(strip_root(s.into(), root.as_bytes())).unwrap();
        assert_eq!(t("/srv/jail/bin/sh", "/srv/jail"), "/bin/sh");
        assert_eq!(t("/srv/jail", "/srv/jail"), "/");
        assert_eq!(t("/srv/jailer/x", "/srv/jail"), "/srv/jailer/x");
        assert_eq!(t("/etc/passwd", "/srv/jail"), "/etc/passwd");
        assert_eq!(t("/bin/sh", "/"), "/bin/sh");
        assert_eq!(t("/srv/jail/a", "/srv/jail/"), "/a");
    }

    /// Lines as this kernel writes them (6.18, read with `cat`), names under a jail.
    const MAPS: &str = "\
5603b4ad5000-5603b4ad7000 r--p 00000000 fe:00 247282                     /srv/jail/usr/bin/head
5603b4ae0000-5603b4ae1000 rw-p 0000b000 fe:00 247282                     /srv/jailer/usr/bin/head
5603d0b5e000-5603d0b7f000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a200000 r--p 00000000 fe:00 131090                     /usr/lib/locale/C.utf8/LC_CTYPE
7f1c2a3f0000-7f1c2a3f1000 rw-s 00000000 00:01 1055                       /srv/jail/dev/zero (deleted)
7f1c2a3f1000-7f1c2a3f2000 rw-p 00000000 00:00 0 \n\
7ffd5b7e4000-7ffd5b805000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn maps_names_below_the_root_lose_its_prefix() {
        let out = String::from_utf8(maps_below_root(MAPS.as_bytes(), b"/srv/jail")).unwrap();
        let want = MAPS
            .replace("     /srv/jail/usr/bin/head", "     /usr/bin/head")
            .replace("/srv/jail/dev/zero (deleted)", "/dev/zero (deleted)");
        assert_eq!(out, want);
        // From the daemon's own root, nothing changes.
        assert_eq!(maps_below_root(MAPS.as_bytes(), b"/"), MAPS.as_bytes());
    }

    #[test]
    fn smaps_headers_and_numa_maps_files_lose_it_too() {
        let smaps = "\
55c05d789000-55c05d78b000 r--p 00000000 fe:00 247282                     /srv/jail/usr/bin/head
Size:                  8 kB
VmFlags: rd mr mw me dw sd
";
        let out = String::from_utf8(maps_below_root(smaps.as_bytes(), b"/srv/jail")).unwrap();
        assert_eq!(out, smaps.replace("/srv/jail/usr", "/usr"));
        let numa = "\
55c05d789000 default file=/srv/jail/usr/bin/head mapped=2 N0=2 kernelpagesize_kB=4
55c05f1c4000 default heap anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7f1c2a000000 default file=/usr/lib/locale/C.utf8/LC_CTYPE mapped=1 N0=1 kernelpagesize_kB=4
";
        let out = String::from_utf8(maps_below_root(numa.as_bytes(), b"/srv/jail")).unwrap();
        assert_eq!(out, numa.replace("file=/srv/jail/usr", "file=/usr"));
    }

    #[test]
    fn anything_else_is_copied() {
        for junk in [
            "",
            "\n",
            "-",
            "zz-yy r--p",
            "Size: 4 kB\n",
            "1-2 r",
            "abc file=x\n",
        ] {
            assert_eq!(
                maps_below_root(junk.as_bytes(), b"/srv/jail"),
                junk.as_bytes()
            );
        }
    }
}
