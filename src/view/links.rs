//! Magic links whose target is not a path: `fd/N` → `pipe:[123]`, `socket:[45]`,
//! `anon_inode:[eventfd]`, and `ns/pid` → `pid:[4026531836]`.
//!
//! The kernel follows such a link to the object itself; a FUSE symlink is only text,
//! which the kernel resolves as a path. The text has no `/`, so it is resolved relative
//! to the link's own directory, and the walk comes back to the daemon as a lookup of
//! `pipe:[123]` in `/proc/<vpid>/fd/`. The view answers it with the object behind the
//! link (a node named `fd/pipe:[123]`), found by reading the directory's links:
//!
//! - opening it opens the real object through the real magic link (with the reader's
//!   ptrace access checked, as procfs checks it for following `fd/` links), and reads
//!   are relayed: `cat /dev/stdin` on a pipe, and bash's `<(…)` (`/dev/fd/63`), work;
//! - `stat(2)` shows the object's attributes, and for a namespace its inode number,
//!   which is what `ps -o pidns` and `lsns` compare.
//! - a process that opened such an object through the view holds a file of the view,
//!   not the object (bash opens `/dev/fd/63` for `exec 3< <(…)`): its link reads as
//!   the object's name again, and leads to the daemon's own open file of the object
//!   ([`super::View::object`]).
//!
//! What a FUSE file cannot be is documented in docs/limits.md: the object shows as a
//! regular file (a FIFO inode on FUSE would be the kernel's own, empty, FIFO), a socket
//! cannot be opened (the kernel refuses that too, `ENXIO`), and an nsfs descriptor for
//! `setns` cannot be had through the view.

use super::Errno;
use std::fs;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::access::{may_ptrace_as, Guard};
use super::nodes::Node;
use super::Reader;
use crate::sync::lock;

/// Directories of a pid directory whose links may name objects rather than paths.
const OBJECT_DIRS: &[&str] = &["fd", "ns"];

/// The directory and the object's name, when `node` is the object behind a link.
fn split(node: &Node) -> Option<(&str, &str)> {
    let Node::Pid { rel, .. } = node else {
        return None;
    };
    let (dir, name) = rel.rsplit_once('/')?;
    (OBJECT_DIRS.contains(&dir) && is_object_name(name)).then_some((dir, name))
}

/// Whether `name` is the text of a link to an object (`type:[…]` or `anon_inode:…`),
/// which is never the name of a real entry of `fd/` (numbers) or `ns/` (words).
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty() && name.contains(':') && !name.contains('/')
}

/// Whether a lookup of `name` in `parent` is one for the object behind a link.
pub fn is_object_lookup(parent: &Node, name: &str) -> bool {
    matches!(parent, Node::Pid { rel, .. } if OBJECT_DIRS.contains(&&**rel)) && is_object_name(name)
}

/// The types of namespace, as their links name them (`ns/pid_for_children` →
/// `pid:[…]`).
const NAMESPACE_TYPES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// Whether `node` is a namespace behind a link: any of `ns/`, and one of `fd/` whose
/// descriptor is a namespace (`net:[…]`: a file of nsfs held open, or opened through
/// the view's `ns/` and inherited).
pub fn is_namespace(node: &Node) -> bool {
    split(node).is_some_and(|(dir, name)| {
        dir == "ns"
            || name
                .split_once(":[")
                .is_some_and(|(kind, _)| NAMESPACE_TYPES.contains(&kind))
    })
}

/// The real magic link through which the object of `node` is reached now: the entry of
/// the link's directory whose text is the object's name. `None` when `node` is no
/// object, or no link of the directory names it any more.
pub fn object_path(node: &Node) -> Option<PathBuf> {
    let (_, name) = split(node)?;
    let dir = node.real_path().parent()?.to_path_buf();
    fs::read_dir(&dir).ok()?.flatten().find_map(|e| {
        let target = fs::read_link(e.path()).ok()?;
        (target.as_os_str() == name).then(|| e.path())
    })
}

/// The daemon's open files of relayed objects: by inode, each handle's (handle, file).
pub(super) type Relays = rustc_hash::FxHashMap<u64, Vec<(u64, Arc<fs::File>)>>;

/// An object behind a link, and the path through which the daemon reaches it now.
pub(super) struct Object {
    path: PathBuf,
    /// The daemon's own descriptor of the object when `path` names it (a relayed
    /// object, [`super::View::object`]): held while the path is in use, so that its
    /// number cannot go to another file meanwhile.
    _held: Option<Arc<fs::File>>,
}

impl Object {
    /// The path of the object: a real magic link (`/proc/<n>/fd/<k>`, `ns/<name>`).
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

/// The real path a call on `node` acts on: the object's when `node` is one (keep the
/// `Object` alive while the path is in use), else `node`'s own entry.
pub(super) fn real_target(object: Option<&Object>, node: &Node) -> PathBuf {
    object.map_or_else(|| node.real_path(), |o| o.path().to_path_buf())
}

/// The name of the object whose file of the view link text `target` is the path of:
/// `/proc/1/fd/pipe:[123]` when bash opened `/dev/fd/63` through the view (`exec 3<
/// <(…)`, `done < <(…)`) and the descriptor it got (a file of the view, through which
/// the daemon relays the pipe) went on to be this link's. `None` for any other text.
/// Whether the file really is the view's is for [`super::View::relay_behind`] to check.
fn relayed_name(target: &[u8]) -> Option<&str> {
    if !target.starts_with(b"/") {
        return None;
    }
    let (dir, name) = std::str::from_utf8(target).ok()?.rsplit_once('/')?;
    let parent = dir.rsplit('/').next()?;
    (OBJECT_DIRS.contains(&parent) && is_object_name(name)).then_some(name)
}

/// The `ino:` line of an `fdinfo/<k>` text: the inode number of the descriptor's file.
fn fdinfo_ino(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("ino:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Opens the object at `path` (a real magic link) for reading, without waiting: reads
/// of a pipe with nothing in it answer `EAGAIN`, which the caller turns into a wait that
/// does not hold up other readers.
pub fn open_object(path: &std::path::Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Whether `file`, an object opened by [`open_object`], reads where it stands (a pipe,
/// a terminal) rather than at an offset: positional reads of it fail with `ESPIPE`,
/// which a read of no bytes finds out without taking any. An `ns/` file takes
/// positional reads (and fails them `EINVAL`, as every read): the view must not call it
/// a stream, or `pread` would answer `ESPIPE` where procfs answers `EINVAL`.
pub fn is_stream(file: &fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    file.read_at(&mut [], 0)
        .is_err_and(|e| e.raw_os_error() == Some(libc::ESPIPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(rel: &str) -> Node {
        Node::Pid {
            n: 1,
            tid: None,
            start: 0,
            rel: rel.into(),
        }
    }

    #[test]
    fn object_names() {
        assert!(is_object_name("pipe:[123]"));
        assert!(is_object_name("anon_inode:[eventfd]"));
        assert!(is_object_name("pid:[4026531836]"));
        assert!(!is_object_name("3"));
        assert!(!is_object_name("pid"));
        assert!(!is_object_name("/dev/null"));
        assert!(is_object_lookup(&pid("fd"), "pipe:[1]"));
        assert!(is_object_lookup(&pid("ns"), "net:[1]"));
        assert!(!is_object_lookup(&pid("fd"), "3"));
        assert!(!is_object_lookup(&pid("fdinfo"), "pipe:[1]"));
        assert!(!is_object_lookup(&pid(""), "pipe:[1]"));
        assert!(is_namespace(&pid("ns/pid:[4026531836]")));
        assert!(!is_namespace(&pid("fd/pipe:[1]")));
        assert!(is_namespace(&pid("fd/net:[4026531840]")));
        assert!(!is_namespace(&pid("fd/socket:[4026531840]")));
        assert!(!is_namespace(&pid("fd/anon_inode:[pidfd]")));
        assert!(!is_namespace(&pid("ns/pid")));
    }

    #[test]
    fn a_view_file_of_an_object_is_told_by_its_path() {
        assert_eq!(relayed_name(b"/proc/1/fd/pipe:[123]"), Some("pipe:[123]"));
        assert_eq!(
            relayed_name(b"/proc/7/task/8/fd/pipe:[5]"),
            Some("pipe:[5]")
        );
        assert_eq!(
            relayed_name(b"/proc/1/ns/net:[4026531840]"),
            Some("net:[4026531840]")
        );
        // The object's own text, a path that is no object of fd/ or ns/, a relative path.
        assert_eq!(relayed_name(b"pipe:[123]"), None);
        assert_eq!(relayed_name(b"/tmp/pipe:[123]"), None);
        assert_eq!(relayed_name(b"/proc/1/fd/3"), None);
        assert_eq!(relayed_name(b"/proc/1/fdinfo/pipe:[1]"), None);
        assert_eq!(relayed_name(b"fd/pipe:[1]"), None);
    }

    #[test]
    fn fdinfo_tells_the_inode() {
        assert_eq!(
            fdinfo_ino("pos:\t0\nflags:\t0100000\nmnt_id:\t24\nino:\t3\n"),
            Some(3)
        );
        assert_eq!(fdinfo_ino("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn the_object_behind_a_real_pipe_is_found_and_read() {
        use std::io::Write as _;
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let me = std::process::id() as i32;
        let text = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&r)
        ))
        .expect("readlink");
        let node = Node::Pid {
            n: me,
            tid: None,
            start: 0,
            rel: format!("fd/{}", text.display()).into(),
        };
        let path = object_path(&node).expect("found");
        let mut w = fs::File::from(w);
        w.write_all(b"hi").expect("write");
        let f = open_object(&path).expect("open");
        let mut buf = [0u8; 8];
        let n = std::io::Read::read(&mut &f, &mut buf).expect("read");
        assert_eq!(&buf[..n], b"hi");
        drop(r);
    }
}

impl super::View {
    /// Records handle `fh` of inode `ino` as the daemon's open `file` of the object
    /// behind a link, which the view relays to its reader ([`super::View::object`]).
    pub(super) fn relay_opened(&self, ino: u64, fh: u64, file: Arc<fs::File>) {
        lock(&self.relays).entry(ino).or_default().push((fh, file));
    }

    /// Forgets handle `fh` of inode `ino` as a relay, if it was one.
    pub(super) fn relay_released(&self, ino: u64, fh: u64) {
        let mut relays = lock(&self.relays);
        if let Some(open) = relays.get_mut(&ino) {
            open.retain(|(h, _)| *h != fh);
            if open.is_empty() {
                relays.remove(&ino);
            }
        }
    }

    /// The node a relayed object was opened as, and the daemon's file of it, when the
    /// real descriptor `fd` (`/proc/<n>/fd/<k>`), whose link text is `target`, is a file
    /// of this view that relays an object: its text names an object of `fd/` or `ns/`,
    /// and its inode (`fdinfo/<k>`) is one this view has such a handle open on, made
    /// for an object of that very name.
    fn relay_behind(&self, fd: &Path, target: &[u8]) -> Option<(Node, Arc<fs::File>)> {
        let name = relayed_name(target)?;
        let info = fd.parent()?.with_file_name("fdinfo").join(fd.file_name()?);
        let ino = fdinfo_ino(&fs::read_to_string(info).ok()?)?;
        let file = Arc::clone(&lock(&self.relays).get(&ino)?.first()?.1);
        let node = lock(&self.nodes).get(ino)?.clone();
        (split(&node)?.1 == name).then_some((node, file))
    }

    /// The text of link `node` (`fd/<k>`) whose real text is `target`, when the
    /// descriptor is a file of this view relaying an object: the object's name, which
    /// procfs shows for the object itself (the descriptor is the pipe there).
    pub(super) fn relayed_link_text(&self, node: &Node, target: &[u8]) -> Option<Vec<u8>> {
        let Node::Pid { rel, .. } = node else {
            return None;
        };
        let (dir, _) = rel.split_once('/')?;
        if dir != "fd" {
            return None;
        }
        let (opened_as, _) = self.relay_behind(&node.real_path(), target)?;
        Some(split(&opened_as)?.1.as_bytes().to_vec())
    }

    /// The object behind `node`, for `reader`: through the real link of its directory
    /// that names it, or, for one of `fd/`, through the daemon's own file of it when
    /// the process holds it as a file of this view only. A shell that opens
    /// `/dev/fd/63` through the view (`exec 3< <(…)`, `while …; done < <(…)`) gets such
    /// a file and closes the pipe itself; its commands then reach the pipe through
    /// `/dev/fd/3` or `/dev/stdin` as on procfs. That second way also needs `reader`
    /// to be let follow the links of the process the object was opened from, so that
    /// it reaches nothing a real link would not have let it reach.
    pub(super) fn object(&self, reader: Reader, node: &Node) -> Option<Object> {
        if let Some(path) = object_path(node) {
            return Some(Object { path, _held: None });
        }
        let (dir, name) = split(node)?;
        if dir != "fd" {
            return None;
        }
        let fds = node.real_path().parent()?.to_path_buf();
        let (opened_as, file) = fs::read_dir(fds).ok()?.flatten().find_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            let (opened_as, file) = self.relay_behind(&e.path(), target.as_os_str().as_bytes())?;
            (split(&opened_as)?.1 == name).then_some((opened_as, file))
        })?;
        if !may_ptrace_as(reader, None, &opened_as, Guard::Read) {
            return None;
        }
        let path = crate::host::proc_path(&format!("self/fd/{}", file.as_raw_fd()));
        Some(Object {
            path,
            _held: Some(file),
        })
    }

    /// The attributes of the object behind a link, reached through the real magic link
    /// `obj`: a regular file (see the module's doc) with the object's owner, mode and
    /// times, and for a namespace its own inode number.
    pub(super) fn object_attr(
        &self,
        node: &Node,
        obj: &std::path::Path,
        ino: u64,
    ) -> Result<super::Attr, Errno> {
        use std::os::unix::fs::MetadataExt as _;
        let md = fs::metadata(obj).map_err(|e| super::errno(&e))?;
        let socket = super::Kind::of(&md) == super::Kind::Socket;
        let ino = if is_namespace(node) || socket {
            md.ino()
        } else {
            ino
        };
        Ok(super::Attr {
            // A socket shows as one; a pipe as a regular file, whose reads and writes
            // the daemon relays (a FUSE fifo would be the kernel's own, empty pipe).
            kind: if socket {
                super::Kind::Socket
            } else {
                super::Kind::File
            },
            size: 0,
            ..super::Attr::from_md(ino, &md)
        })
    }
}

/// A link's target as the kernel writes it for `reader`: `d_path` from the reader's
/// root. The daemon reads links from its own root; a reader in a chroot (its
/// `/proc/<tid>/root` below the daemon's) sees the paths under its root without that
/// prefix, as procfs shows them (`pwdx`, `ls -l /proc/*/exe`). A target outside the
/// reader's root, and one that is not a path, stays as it is.
pub fn from_reader_root(target: Vec<u8>, reader: super::Reader) -> Vec<u8> {
    if !target.starts_with(b"/") {
        return target;
    }
    match reader_root(reader.tid()) {
        Some(root) => crate::render::paths::strip_root(target, &root),
        None => target,
    }
}

/// The root of the reader `tid` as the daemon sees it (`/proc/<tid>/root`), when it is
/// not the daemon's own (`/`): the paths procfs writes for that reader are relative to
/// it ([`crate::render::paths`]).
pub fn reader_root(tid: crate::engine::Pid) -> Option<Vec<u8>> {
    if tid <= 0 {
        return None;
    }
    let root = fs::read_link(crate::host::proc_path(&format!("{tid}/root"))).ok()?;
    let root = std::os::unix::ffi::OsStringExt::into_vec(root.into_os_string());
    (root != b"/").then_some(root)
}

/// `ioctl(2)` requests of nsfs (`linux/nsfs.h`), `_IO(0xb7, n)`.
pub mod nsfs {
    /// The owning user namespace (a new descriptor).
    pub const NS_GET_USERNS: u32 = 0xb701;
    /// The parent namespace (a new descriptor).
    pub const NS_GET_PARENT: u32 = 0xb702;
    /// The namespace's `CLONE_NEW*` type.
    pub const NS_GET_NSTYPE: u32 = 0xb703;
}

/// What an `ioctl` on a namespace opened through the view answers: the type is the
/// real namespace's; a request for another namespace's descriptor cannot be answered
/// through FUSE (no descriptor crosses it), and is answered as the kernel answers a
/// reader for whom that namespace is out of reach, `EPERM` (`lsns` then carries on).
pub fn namespace_ioctl(file: &fs::File, cmd: u32) -> Result<i32, Errno> {
    match cmd {
        nsfs::NS_GET_NSTYPE => crate::sys::process::ns_type(file).map_err(|e| super::errno(&e)),
        nsfs::NS_GET_USERNS | nsfs::NS_GET_PARENT => Err(Errno::EPERM),
        _ => Err(Errno::ENOTTY),
    }
}

impl super::View {
    /// The answer to `ioctl` request `cmd` on handle `fh` of inode `ino`: for a
    /// namespace opened through an `ns/` link, [`namespace_ioctl`]; procfs files are no
    /// terminals and take no other request (`ENOTTY`).
    pub fn ioctl(&self, ino: u64, fh: u64, cmd: u32) -> Result<i32, Errno> {
        let node = self.node(ino)?;
        if !is_namespace(&node) {
            return Err(Errno::ENOTTY);
        }
        let file = match super::lock(&self.handles).get(&fh) {
            // A namespace is opened as an object that takes positional reads.
            Some(super::Handle::File(f) | super::Handle::Stream(f)) => std::sync::Arc::clone(f),
            _ => return Err(Errno::ENOTTY),
        };
        namespace_ioctl(&file, cmd)
    }
}
