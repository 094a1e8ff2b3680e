//! The entries of a process directory (`/proc/<pid>/` and `/proc/<pid>/task/<tid>/`), as
//! one table: Linux's `tgid_base_stuff[]` (`fs/proc/base.c`) with, per entry, what the
//! view does beyond showing the real one. Lookup, open, readlink, readdir and the cache
//! rules all ask this table ([`entry`]); nothing else names a process's entries.
//!
//! Which entries a process has is the kernel's business (it depends on its
//! configuration): the view shows what the real directory holds, so the table lists
//! only entries the view treats otherwise than "the real file, read at the reader's
//! offsets, no check beyond the mode bits". The mode and owner of every entry are the
//! real one's, mirrored, which is what procfs's `pid_revalidate` recomputes them to.

use super::access::Guard;
use super::files::Render;
use crate::render::ids::{MapKind, SocketTable};

/// How a file's text reaches the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Rendered whole at open and served by the kernel from a snapshot (FUSE
    /// passthrough of a memfd, [`crate::backing`]): a small text procfs makes in one go
    /// (a seq file), read with no round trip once open.
    Snapshot,
    /// A [`Read::Snapshot`] that procfs copies whole into one read (a `single_open` seq
    /// file, `cmdline`, `environ`): a read that leaves room in the buffer has reached
    /// the end, and the daemon does not ask again for the empty read.
    Single,
    /// Read through the daemon at the reader's offsets: a file that is large, binary,
    /// addressed by offset (`mem`, `pagemap`) or that has a `poll` of its own
    /// (`mounts`, `mountinfo`).
    Direct,
}

impl Read {
    /// Rendered whole at open and served from a snapshot.
    pub fn snapshot(self) -> bool {
        matches!(self, Read::Snapshot | Read::Single)
    }
}

/// How long the kernel may keep a lookup of the entry's children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Children {
    /// A fixed set while the process lives (`attr/`, `ns/`, `net/`…): cached until the
    /// process's directory is invalidated.
    Fixed,
    /// Changes at any time (`fd/`, `fdinfo/`, `map_files/`, `task/`): asked every time,
    /// or, for `task/`, invalidated when a thread exits.
    Changing,
}

/// What procfs checks before it shows an entry, beyond the mode bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Only the mode bits.
    Mode,
    /// A file: opened only as [`Guard`] allows, or shown otherwise.
    File(Guard),
    /// A link whose target is shown only to a reader that may ptrace-read the process.
    Link,
    /// A directory listed and searched only by a reader that may ptrace-read the
    /// process.
    Dir,
    /// `fd/`: the mode bits (the process's owner), or the process itself
    /// (`proc_fd_permission`).
    FdDir,
}

/// One entry of a process directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name, or for the entries of a subdirectory, `dir/` followed by nothing (any
    /// name in `dir`).
    pub name: &'static str,
    /// The kernel's mode bits for it (`tgid_base_stuff[]`), which procfs never changes
    /// (only the owner follows the process's credentials); 0 where they vary (the
    /// links of `fd/`, `attr/`). The attributes shown are the real entry's; the mode
    /// here lets the daemon skip the look at the real one where anyone may read.
    pub mode: u16,
    /// The renderer that translates the pid numbers it carries.
    pub render: Option<Render>,
    /// The permission rule.
    pub check: Check,
    /// How its text is read.
    pub read: Read,
    /// For a directory, how its children may be cached.
    pub children: Children,
}

impl Entry {
    /// Whether any reader may open it for reading by its mode bits (the rule of
    /// [`Entry::check`] still applies).
    pub fn readable_by_all(&self) -> bool {
        self.mode & 0o004 != 0
    }
}

const fn e(name: &'static str, mode: u16, check: Check, read: Read) -> Entry {
    Entry {
        name,
        mode,
        render: None,
        check,
        read,
        children: Children::Fixed,
    }
}

const fn rendered(name: &'static str, mode: u16, render: Render, check: Check) -> Entry {
    Entry {
        name,
        mode,
        render: Some(render),
        check,
        // Every file the view rewrites is a `single_open` seq file but `timers`,
        // `children` and `fdinfo/`'s: see the table.
        read: Read::Single,
        children: Children::Fixed,
    }
}

const fn dir(name: &'static str, mode: u16, check: Check, children: Children) -> Entry {
    Entry {
        name,
        mode,
        render: None,
        check,
        read: Read::Direct,
        children,
    }
}

use Check::{Link, Mode};
use Read::{Direct, Single, Snapshot};

/// The table, in the kernel's order where it has one.
pub const ENTRIES: &[Entry] = &[
    dir("task", 0o555, Mode, Children::Changing),
    dir("fd", 0o500, Check::FdDir, Children::Changing),
    dir("map_files", 0o500, Check::Dir, Children::Changing),
    dir("fdinfo", 0o555, Check::Dir, Children::Changing),
    dir("ns", 0o511, Mode, Children::Fixed),
    dir("net", 0o555, Mode, Children::Fixed),
    dir("attr", 0o555, Mode, Children::Fixed),
    e("environ", 0o400, Check::File(Guard::Memory), Single),
    e("auxv", 0o400, Check::File(Guard::Memory), Snapshot),
    rendered("status", 0o444, Render::Status, Mode),
    e("personality", 0o400, Check::File(Guard::Trace), Single),
    e("limits", 0o444, Mode, Single),
    rendered("sched", 0o644, Render::Sched, Mode),
    e("autogroup", 0o644, Mode, Snapshot),
    e("timens_offsets", 0o644, Mode, Snapshot),
    rendered("comm", 0o644, Render::Comm, Mode),
    e("syscall", 0o400, Check::File(Guard::Trace), Single),
    e("cmdline", 0o444, Mode, Single),
    rendered("stat", 0o444, Render::Stat, Check::File(Guard::Stat)),
    e("statm", 0o444, Mode, Single),
    Entry {
        read: Snapshot,
        ..rendered("maps", 0o444, Render::Maps, Check::File(Guard::Memory))
    },
    Entry {
        read: Snapshot,
        ..rendered("numa_maps", 0o444, Render::Maps, Check::File(Guard::Memory))
    },
    e("mem", 0o600, Check::File(Guard::MemoryAttach), Direct),
    e("cwd", 0o777, Link, Direct),
    e("root", 0o777, Link, Direct),
    e("exe", 0o777, Link, Direct),
    // Their poll reports mount changes: read through the daemon, which polls the real one.
    e("mounts", 0o444, Mode, Direct),
    e("mountinfo", 0o444, Mode, Direct),
    e("mountstats", 0o400, Mode, Direct),
    Entry {
        read: Snapshot,
        ..rendered("smaps", 0o444, Render::Maps, Check::File(Guard::Memory))
    },
    e("smaps_rollup", 0o444, Check::File(Guard::Memory), Snapshot),
    e("pagemap", 0o400, Check::File(Guard::Memory), Direct),
    e("wchan", 0o444, Check::File(Guard::Wchan), Single),
    e("stack", 0o400, Check::File(Guard::Stack), Single),
    e("schedstat", 0o444, Mode, Single),
    e("cpuset", 0o444, Mode, Single),
    e("cgroup", 0o444, Mode, Single),
    e("oom_score", 0o444, Mode, Single),
    e("oom_adj", 0o644, Mode, Snapshot),
    e("oom_score_adj", 0o644, Mode, Snapshot),
    Entry {
        read: Snapshot,
        ..rendered("loginuid", 0o644, Render::LoginUid, Mode)
    },
    e("sessionid", 0o444, Mode, Snapshot),
    e("coredump_filter", 0o644, Mode, Snapshot),
    e("io", 0o400, Check::File(Guard::ReadAtRead), Single),
    Entry {
        read: Snapshot,
        ..rendered("uid_map", 0o644, Render::IdMap(MapKind::Uid), Mode)
    },
    Entry {
        read: Snapshot,
        ..rendered("gid_map", 0o644, Render::IdMap(MapKind::Gid), Mode)
    },
    Entry {
        read: Snapshot,
        ..rendered("projid_map", 0o644, Render::IdMap(MapKind::Projid), Mode)
    },
    Entry {
        read: Snapshot,
        ..rendered("timers", 0o444, Render::Timers, Check::File(Guard::Read))
    },
    e("timerslack_ns", 0o666, Check::File(Guard::Nice), Snapshot),
    e("arch_status", 0o444, Mode, Single),
    e("ksm_merging_pages", 0o400, Mode, Single),
    e("ksm_stat", 0o400, Mode, Single),
    Entry {
        read: Snapshot,
        ..rendered("children", 0o444, Render::Children, Mode)
    },
    // The entries of subdirectories ("dir/" stands for any name in it).
    e("fd/", 0, Link, Direct),
    e("map_files/", 0, Link, Direct),
    Entry {
        read: Snapshot,
        ..rendered("fdinfo/", 0o444, Render::Fdinfo, Check::File(Guard::Read))
    },
    e("ns/", 0o777, Link, Direct),
    e("attr/", 0, Mode, Snapshot),
    // The socket tables of the process's network namespace (`/proc/net` is
    // `self/net`), whose uid column procfs shows in the reader's user namespace.
    sockets("net/tcp", SocketTable::Inet),
    sockets("net/tcp6", SocketTable::Inet),
    sockets("net/udp", SocketTable::Inet),
    sockets("net/udp6", SocketTable::Inet),
    sockets("net/udplite", SocketTable::Inet),
    sockets("net/udplite6", SocketTable::Inet),
    sockets("net/raw", SocketTable::Inet),
    sockets("net/raw6", SocketTable::Inet),
    sockets("net/icmp", SocketTable::Inet),
    sockets("net/icmp6", SocketTable::Inet),
    sockets("net/packet", SocketTable::Packet),
];

/// A socket table of `net/`: a seq file, read whole at open.
const fn sockets(name: &'static str, table: SocketTable) -> Entry {
    Entry {
        read: Snapshot,
        ..rendered(name, 0o444, Render::Sockets(table), Mode)
    }
}

/// What every entry the table does not name is: the real one, read at the reader's
/// offsets, behind the mode bits alone.
const PLAIN: Entry = e("", 0, Mode, Direct);

/// The entry at path `rel` below a process (or thread) directory: `stat`, `fd/3`…, and
/// in `net/` the socket tables by their names. Other paths (`net/dev`,
/// `attr/apparmor/current`) are [`PLAIN`]: real files read through the daemon.
pub fn entry(rel: &str) -> &'static Entry {
    let key = match rel.split_once('/') {
        None => rel,
        Some(("net", _)) => rel,
        Some((d, name)) if !name.contains('/') => &rel[..d.len() + 1],
        Some(_) => return &PLAIN,
    };
    ENTRIES.iter().find(|e| e.name == key).unwrap_or(&PLAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_in_the_table() {
        assert_eq!(entry("stat").render, Some(Render::Stat));
        assert_eq!(entry("stat").check, Check::File(Guard::Stat));
        assert_eq!(entry("fdinfo/3").render, Some(Render::Fdinfo));
        assert_eq!(entry("fdinfo/3").check, Check::File(Guard::Read));
        assert_eq!(entry("fdinfo").check, Check::Dir);
        assert_eq!(entry("fdinfo").render, None);
        assert_eq!(entry("fd/3").check, Check::Link);
        assert_eq!(entry("fd").check, Check::FdDir);
        assert_eq!(entry("environ").check, Check::File(Guard::Memory));
        assert_eq!(entry("environ").read, Read::Single);
        assert_eq!(entry("stat").read, Read::Single);
        assert_eq!(entry("timers").read, Read::Snapshot);
        assert_eq!(entry("maps").read, Read::Snapshot);
        assert_eq!(entry("mem").read, Read::Direct);
        assert_eq!(entry("mountinfo").read, Read::Direct);
        assert_eq!(entry("net/dev"), &PLAIN);
        assert_eq!(
            entry("net/tcp6").render,
            Some(Render::Sockets(SocketTable::Inet))
        );
        assert_eq!(entry("net/dev_snmp6/lo"), &PLAIN);
        assert_eq!(entry("attr/apparmor/current"), &PLAIN);
        assert_eq!(entry("no-such-entry"), &PLAIN);
        assert_eq!(entry("task").children, Children::Changing);
        assert_eq!(entry("ns").children, Children::Fixed);
        assert!(entry("stat").readable_by_all());
        assert!(!entry("environ").readable_by_all());
        assert!(
            !entry("fd/3").readable_by_all(),
            "varies: asked of the real link"
        );
        assert!(!PLAIN.readable_by_all(), "unknown: asked of the real file");
    }

    /// The table's modes are the kernel's: the daemon skips the look at the real file
    /// for an entry the table says anyone may read, so a wrong mode there would let a
    /// reader in where procfs refuses it.
    #[test]
    fn modes_are_the_kernels() {
        use std::os::unix::fs::PermissionsExt;
        let mut compared = 0;
        for e in ENTRIES
            .iter()
            .filter(|e| e.mode != 0 && !e.name.ends_with('/'))
        {
            let path = format!("/proc/self/{}", e.name);
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue; // not in this kernel's configuration
            };
            let mode = md.permissions().mode() & 0o777;
            assert_eq!(mode, u32::from(e.mode), "{}: {mode:o}", e.name);
            compared += 1;
        }
        assert!(compared > 30, "only {compared} entries found in /proc/self");
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in ENTRIES.iter().enumerate() {
            assert!(
                ENTRIES[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
    }
}
