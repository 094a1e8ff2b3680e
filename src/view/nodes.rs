//! The inode table: which node of the view each FUSE inode number stands for.
//!
//! A node is named by the real path it shows (plus, under a pid directory, the start
//! time of that process), so the same file seen by two readers is one inode, and a
//! reused pid gets a new inode: the kernel never serves a stale process from its caches.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::Pid;
use crate::host;

/// Inode number of the root directory (FUSE's `FUSE_ROOT_ID`).
pub const ROOT_INO: u64 = 1;

/// One node of the view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `/proc` itself.
    Root,
    /// `/proc/self`: a link to the reader's own process.
    SelfLink,
    /// `/proc/thread-self`: a link to the reader's own thread.
    ThreadSelf,
    /// `/proc/<n>` (or `/proc/<n>/task/<tid>` when `tid` is set) and everything below
    /// it (`rel`, empty for the directory itself). `n` and `tid` are real numbers.
    Pid {
        /// The real number in `/proc/<n>`.
        n: Pid,
        /// The real thread id in `task/<tid>`.
        tid: Option<Pid>,
        /// Start time of the process shown: the node's generation.
        start: u64,
        /// The path below the process directory.
        rel: std::sync::Arc<str>,
    },
    /// Anything else below `/proc`, passed through (`rel` not empty).
    Global {
        /// The path below `/proc`.
        rel: std::sync::Arc<str>,
    },
}

impl Node {
    /// The real path this node shows, for the nodes that have one.
    pub fn real_path(&self) -> PathBuf {
        match self {
            Node::Root => PathBuf::from(host::PROC),
            Node::SelfLink => host::proc_path("self"),
            Node::ThreadSelf => host::proc_path("thread-self"),
            Node::Pid { n, tid, rel, .. } => {
                let mut p = host::proc_path(&n.to_string());
                if let Some(t) = tid {
                    p.push("task");
                    p.push(t.to_string());
                }
                if !rel.is_empty() {
                    p.push(&**rel);
                }
                p
            }
            // The CPU lists and block devices' `stat` are sysfs's, served beside `/proc`
            // for binding over them.
            Node::Global { rel } => match super::resource_files::file_at(rel) {
                Some(f) if f.is_cpu_list() => PathBuf::from(f.host_path()),
                _ => match super::resource_files::block_stat_at(rel) {
                    Some(dev) => super::resource_files::host_block_stat(dev),
                    None => host::proc_path(rel),
                },
            },
        }
    }

    /// The task a pid node's files describe: the thread for `task/<tid>`, else `n`.
    pub fn shown_task(&self) -> Option<Pid> {
        match self {
            Node::Pid { n, tid, .. } => Some(tid.unwrap_or(*n)),
            _ => None,
        }
    }

    /// The process or thread directory this node is in (or is): the key under which
    /// the view knows whether the kernel holds its name ([`super::cache::Held`]).
    pub fn dir_key(&self) -> Option<super::cache::DirKey> {
        match self {
            Node::Pid { n, tid, start, .. } => Some((*n, *tid, *start)),
            _ => None,
        }
    }

    /// The start time that this node's own content shows when it is a process's `stat`
    /// (field 22 is the process's start time, and the node is keyed by it): reading
    /// that file proves the process is the node's, with no separate check.
    pub fn start_in_content(&self) -> Option<u64> {
        match self {
            Node::Pid {
                tid: None,
                start,
                rel,
                ..
            } if &**rel == "stat" => Some(*start),
            _ => None,
        }
    }

    /// The path below the pid directory or `/proc` (empty for directories themselves).
    pub fn rel(&self) -> &str {
        match self {
            Node::Pid { rel, .. } | Node::Global { rel } => rel,
            _ => "",
        }
    }

    /// The directory this node is an entry of: `/proc` for a process's directory and
    /// `/proc`'s own entries, the process's `task/` for a thread's directory; `None`
    /// for `/proc` itself.
    pub fn parent(&self) -> Option<Node> {
        match self {
            Node::Root => None,
            Node::SelfLink | Node::ThreadSelf => Some(Node::Root),
            Node::Pid { n, tid, start, rel } => Some(match (rel.rsplit_once('/'), tid) {
                (Some((up, _)), _) => Node::Pid {
                    n: *n,
                    tid: *tid,
                    start: *start,
                    rel: up.into(),
                },
                (None, _) if !rel.is_empty() => Node::Pid {
                    n: *n,
                    tid: *tid,
                    start: *start,
                    rel: "".into(),
                },
                (None, Some(_)) => Node::Pid {
                    n: *n,
                    tid: None,
                    start: *start,
                    rel: "task".into(),
                },
                (None, None) => Node::Root,
            }),
            Node::Global { rel } => Some(match rel.rsplit_once('/') {
                Some((up, _)) => Node::Global { rel: up.into() },
                None => Node::Root,
            }),
        }
    }

    /// The child of this node called `name`, for nodes whose children are plain names.
    pub fn child(&self, name: &str) -> Option<Node> {
        let join = |rel: &str| -> std::sync::Arc<str> {
            if rel.is_empty() {
                name.into()
            } else {
                format!("{rel}/{name}").into()
            }
        };
        match self {
            Node::Pid { n, tid, start, rel } => Some(Node::Pid {
                n: *n,
                tid: *tid,
                start: *start,
                rel: join(rel),
            }),
            Node::Global { rel } => Some(Node::Global { rel: join(rel) }),
            Node::Root => Some(Node::Global { rel: name.into() }),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Slot {
    node: Node,
    lookups: u64,
}

/// Inode numbers ↔ nodes, with the kernel's lookup counts so that forgotten nodes go.
#[derive(Debug)]
pub struct Nodes {
    by_ino: FxHashMap<u64, Slot>,
    by_node: FxHashMap<Node, u64>,
    /// Inodes of a process whose number and start time another process has taken (a
    /// pid reused within the clock tick of the first one's start, which start times in
    /// ticks cannot tell apart): kept for the descriptors readers hold, answered as a
    /// gone process's, never found by a lookup again.
    retired: FxHashSet<u64>,
    /// The inodes of each process (number, start time), for [`Nodes::retire`] and
    /// [`Nodes::entries_below`] without a walk over every inode.
    by_task: FxHashMap<(Pid, u64), Vec<u64>>,
    journal: Option<Journal>,
}

impl Default for Nodes {
    fn default() -> Self {
        let mut nodes = Nodes {
            by_ino: FxHashMap::default(),
            by_node: FxHashMap::default(),
            retired: FxHashSet::default(),
            by_task: FxHashMap::default(),
            journal: None,
        };
        nodes.by_ino.insert(
            ROOT_INO,
            Slot {
                node: Node::Root,
                lookups: 1,
            },
        );
        nodes.by_node.insert(Node::Root, ROOT_INO);
        nodes
    }
}

impl Nodes {
    /// The node behind inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.by_ino.get(&ino).map(|s| &s.node)
    }

    /// The process and thread directories the kernel holds an inode of.
    pub fn pid_dirs(&self) -> impl Iterator<Item = &Node> {
        self.by_ino
            .values()
            .map(|s| &s.node)
            .filter(|n| matches!(n, Node::Pid { rel, .. } if rel.is_empty()))
    }

    /// The inode of `node` if the kernel holds one, without counting a lookup.
    pub fn find(&self, node: &Node) -> Option<u64> {
        self.by_node.get(node).copied()
    }

    /// The inodes the kernel holds of the entries below pid directory `dir` (its files
    /// and subdirectories, not `task/<tid>` directories, which are pid directories of
    /// their own).
    pub fn entries_below(&self, dir: &Node) -> Vec<u64> {
        let Node::Pid { n, tid, start, .. } = dir else {
            return Vec::new();
        };
        let Some(inos) = self.by_task.get(&(*n, *start)) else {
            return Vec::new();
        };
        inos.iter()
            .copied()
            .filter(|ino| {
                matches!(self.get(*ino), Some(Node::Pid { tid: t2, rel, .. })
                    if t2 == tid && !rel.is_empty())
            })
            .collect()
    }

    /// The inode of `node`, made if new, counting one kernel lookup.
    pub fn lookup(&mut self, node: Node) -> u64 {
        if let Some(&ino) = self.by_node.get(&node) {
            if let Some(slot) = self.by_ino.get_mut(&ino) {
                slot.lookups += 1;
            }
            return ino;
        }
        // The number its entry shows in a listing ([`dirent_ino`]), or the next free one
        // past it (another node's, or a namespace's or socket's own,
        // [`Nodes::lookup_at`]).
        let mut ino = dirent_ino(&node);
        while self.by_ino.contains_key(&ino) {
            ino = next_ino(ino);
        }
        if let Some(j) = &mut self.journal {
            j.add(ino, &node);
        }
        self.index(&node, ino);
        self.by_node.insert(node.clone(), ino);
        self.by_ino.insert(ino, Slot { node, lookups: 1 });
        self.compact_if_due();
        ino
    }

    /// The inode of `node` as [`Nodes::lookup`], made at number `want` when it is new
    /// and that number is free (a namespace's own inode number, which `stat` then
    /// shows); otherwise at the next free number.
    pub fn lookup_at(&mut self, node: Node, want: u64) -> u64 {
        if self.by_node.contains_key(&node) || want <= ROOT_INO || self.by_ino.contains_key(&want) {
            return self.lookup(node);
        }
        if let Some(j) = &mut self.journal {
            j.add(want, &node);
        }
        self.index(&node, want);
        self.by_node.insert(node.clone(), want);
        self.by_ino.insert(want, Slot { node, lookups: 1 });
        want
    }

    /// Retires every inode of process `n` that started at `start` (its directory, its
    /// entries, its threads' directories): a new process has the same number and start
    /// time. Lookups make new inodes for the new process from now on.
    pub fn retire(&mut self, n: Pid, start: u64) {
        for ino in self.by_task.remove(&(n, start)).unwrap_or_default() {
            if let Some(slot) = self.by_ino.get(&ino) {
                if self.by_node.get(&slot.node) == Some(&ino) {
                    self.by_node.remove(&slot.node);
                }
                self.retired.insert(ino);
            }
        }
    }

    /// Records inode `ino` of `node` under its process.
    fn index(&mut self, node: &Node, ino: u64) {
        if let Node::Pid { n, start, .. } = node {
            self.by_task.entry((*n, *start)).or_default().push(ino);
        }
    }

    /// Drops inode `ino` of `node` from its process's record.
    fn unindex(&mut self, node: &Node, ino: u64) {
        if let Node::Pid { n, start, .. } = node {
            if let Some(inos) = self.by_task.get_mut(&(*n, *start)) {
                inos.retain(|&i| i != ino);
                if inos.is_empty() {
                    self.by_task.remove(&(*n, *start));
                }
            }
        }
    }

    /// Whether `ino` was retired ([`Nodes::retire`]).
    pub fn is_retired(&self, ino: u64) -> bool {
        self.retired.contains(&ino)
    }

    /// The kernel dropped `n` lookups of `ino`: at zero the node is forgotten.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let gone = match self.by_ino.get_mut(&ino) {
            Some(slot) => {
                slot.lookups = slot.lookups.saturating_sub(n);
                slot.lookups == 0
            }
            None => false,
        };
        if gone {
            if let Some(slot) = self.by_ino.remove(&ino) {
                // A retired inode's node may name a newer inode by now.
                if self.by_node.get(&slot.node) == Some(&ino) {
                    self.by_node.remove(&slot.node);
                }
                self.retired.remove(&ino);
                self.unindex(&slot.node, ino);
                if let Some(j) = &mut self.journal {
                    j.drop_ino(ino);
                }
            }
        }
    }

    /// An inode table kept in the journal at `path` as well, so that a daemon that takes
    /// over a live mount knows the inode numbers the kernel still holds. With `restore`
    /// the journal's nodes are loaded first (a truncated last record is ignored: a daemon
    /// killed in the middle of a write); otherwise it is started afresh.
    pub fn with_journal(path: &Path, restore: bool) -> io::Result<Nodes> {
        let mut nodes = Nodes::default();
        if restore {
            match std::fs::read(path) {
                Ok(bytes) => {
                    for rec in Journal::parse(&bytes) {
                        match rec {
                            Record::Add(ino, node) => {
                                nodes.index(&node, ino);
                                nodes.by_node.insert(node.clone(), ino);
                                // How many lookups the kernel holds is not known: the
                                // node is kept until the daemon's end.
                                nodes.by_ino.insert(
                                    ino,
                                    Slot {
                                        node,
                                        lookups: RESTORED,
                                    },
                                );
                            }
                            Record::Drop(ino) => {
                                if let Some(slot) = nodes.by_ino.remove(&ino) {
                                    nodes.by_node.remove(&slot.node);
                                    nodes.unindex(&slot.node, ino);
                                }
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        nodes.journal = Some(Journal::create(path)?);
        nodes.rewrite_journal()?;
        Ok(nodes)
    }

    fn compact_if_due(&mut self) {
        let due = self
            .journal
            .as_ref()
            .is_some_and(|j| j.records > 2 * self.by_ino.len() + COMPACT_SLACK);
        if due {
            if let Err(e) = self.rewrite_journal() {
                log::error!("cannot compact the inode journal: {e}; it is no longer kept");
                self.journal = None;
            }
        }
    }

    /// Writes the live nodes to a new journal and puts it in place of the old one.
    fn rewrite_journal(&mut self) -> io::Result<()> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        let tmp = j.path.with_extension("tmp");
        let mut fresh = Journal {
            file: File::create(&tmp)?,
            path: j.path.clone(),
            records: 0,
            buf: Vec::new(),
        };
        for (ino, slot) in &self.by_ino {
            if *ino != ROOT_INO {
                fresh.add(*ino, &slot.node);
            }
        }
        std::fs::rename(&tmp, &fresh.path)?;
        self.journal = Some(fresh);
        Ok(())
    }

    /// Number of live inodes (root included).
    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    /// Whether only the root is left.
    pub fn is_empty(&self) -> bool {
        self.by_ino.len() <= 1
    }
}

/// Lookup count of a node restored from the journal: never dropped.
const RESTORED: u64 = u64::MAX / 2;

/// Records a journal may hold beyond twice the live nodes before it is rewritten.
const COMPACT_SLACK: usize = 65_536;

/// The inode table's journal: one record per inode handed out and per inode forgotten,
/// appended with one `write` each (a daemon killed with SIGKILL loses no record it
/// made), rewritten from the live table when it has grown to twice that.
///
/// Record layout, little-endian: `+ ino:u64 kind:u8 n:u32 tid:u32 start:u64 len:u16
/// rel` for a new inode (kind 1 self, 2 thread-self, 3 pid, 4 global; tid 0 for none),
/// `- ino:u64` for a forgotten one.
#[derive(Debug)]
struct Journal {
    file: File,
    path: PathBuf,
    records: usize,
    buf: Vec<u8>,
}

/// One journal record.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Add(u64, Node),
    Drop(u64),
}

impl Journal {
    fn create(path: &Path) -> io::Result<Journal> {
        Ok(Journal {
            file: File::create(path)?,
            path: path.to_path_buf(),
            records: 0,
            buf: Vec::new(),
        })
    }

    fn write(&mut self) {
        if let Err(e) = self.file.write_all(&self.buf) {
            log::warn!("cannot write the inode journal: {e}");
        }
        self.records += 1;
        self.buf.clear();
    }

    fn add(&mut self, ino: u64, node: &Node) {
        let (kind, n, tid, start, rel): (u8, Pid, Pid, u64, &str) = match node {
            Node::Root => return,
            Node::SelfLink => (1, 0, 0, 0, ""),
            Node::ThreadSelf => (2, 0, 0, 0, ""),
            Node::Pid { n, tid, start, rel } => (3, *n, tid.unwrap_or(0), *start, rel),
            Node::Global { rel } => (4, 0, 0, 0, rel),
        };
        let Ok(len) = u16::try_from(rel.len()) else {
            return;
        };
        self.buf.push(b'+');
        self.buf.extend_from_slice(&ino.to_le_bytes());
        self.buf.push(kind);
        self.buf.extend_from_slice(&n.to_le_bytes());
        self.buf.extend_from_slice(&tid.to_le_bytes());
        self.buf.extend_from_slice(&start.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(rel.as_bytes());
        self.write();
    }

    fn drop_ino(&mut self, ino: u64) {
        self.buf.push(b'-');
        self.buf.extend_from_slice(&ino.to_le_bytes());
        self.write();
    }

    /// The records of a journal, up to the first that is cut short or malformed.
    fn parse(mut b: &[u8]) -> Vec<Record> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = b.split_at_checked(n)?;
            *b = tail;
            Some(head)
        }
        fn u64_of(b: &mut &[u8]) -> Option<u64> {
            Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
        }
        fn i32_of(b: &mut &[u8]) -> Option<i32> {
            Some(i32::from_le_bytes(take(b, 4)?.try_into().ok()?))
        }
        let mut out = Vec::new();
        let one = |b: &mut &[u8]| -> Option<Record> {
            match take(b, 1)?[0] {
                b'-' => Some(Record::Drop(u64_of(b)?)),
                b'+' => {
                    let ino = u64_of(b)?;
                    let kind = take(b, 1)?[0];
                    let n = i32_of(b)?;
                    let tid = i32_of(b)?;
                    let start = u64_of(b)?;
                    let len = u16::from_le_bytes(take(b, 2)?.try_into().ok()?);
                    let rel: std::sync::Arc<str> =
                        std::str::from_utf8(take(b, usize::from(len))?).ok()?.into();
                    let node = match kind {
                        1 => Node::SelfLink,
                        2 => Node::ThreadSelf,
                        3 => Node::Pid {
                            n,
                            tid: (tid != 0).then_some(tid),
                            start,
                            rel,
                        },
                        4 => Node::Global { rel },
                        _ => return None,
                    };
                    (ino != ROOT_INO).then_some(Record::Add(ino, node))
                }
                _ => None,
            }
        };
        while !b.is_empty() {
            match one(&mut b) {
                Some(r) => out.push(r),
                None => break,
            }
        }
        out
    }
}

/// Past the inode numbers nodes are given: from here on are the namespaces' own
/// (`PROC_DYNAMIC_FIRST`, and the initial namespaces' just below), which a namespace's
/// node is given ([`Nodes::lookup_at`]).
const INO_END: u64 = 0xEFFF_FFF0;

/// The inode number a node is given when it is made, and its entry's `d_ino` in a
/// listing, which need not make the node: FNV-1a of the real path, in procfs's 32-bit
/// range below the namespaces' numbers and past the root's. So a listing shows the
/// `st_ino` that a `stat` of the entry gives, as procfs's does, unless another node had
/// the number first (then the node is given the next free one).
pub fn dirent_ino(node: &Node) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.real_path().as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ROOT_INO + 1 + h % (INO_END - ROOT_INO - 1)
}

/// The inode number tried after `ino` when `ino` is taken, within the nodes' range.
fn next_ino(ino: u64) -> u64 {
    if ino + 1 >= INO_END {
        ROOT_INO + 1
    } else {
        ino + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: Pid, start: u64, rel: &str) -> Node {
        Node::Pid {
            n,
            tid: None,
            start,
            rel: rel.into(),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(pid(5, 1, "").real_path(), PathBuf::from("/proc/5"));
        assert_eq!(pid(5, 1, "fd/3").real_path(), PathBuf::from("/proc/5/fd/3"));
        let t = Node::Pid {
            n: 5,
            tid: Some(6),
            start: 1,
            rel: "stat".into(),
        };
        assert_eq!(t.real_path(), PathBuf::from("/proc/5/task/6/stat"));
        assert_eq!(t.shown_task(), Some(6));
        assert_eq!(
            Node::Root.child("sys").and_then(|n| n.child("kernel")),
            Some(Node::Global {
                rel: "sys/kernel".into()
            })
        );
    }

    #[test]
    fn lookups_and_forget() {
        let mut nodes = Nodes::default();
        let a = nodes.lookup(pid(5, 1, ""));
        assert_eq!(nodes.lookup(pid(5, 1, "")), a);
        // A reused pid is another process: another inode.
        let b = nodes.lookup(pid(5, 2, ""));
        assert_ne!(a, b);
        nodes.forget(a, 1);
        assert!(nodes.get(a).is_some());
        nodes.forget(a, 1);
        assert!(nodes.get(a).is_none());
        nodes.forget(b, 7);
        assert!(nodes.is_empty());
        nodes.forget(ROOT_INO, 1);
        assert_eq!(nodes.get(ROOT_INO), Some(&Node::Root));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vprocfs-nodes-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("nodes")
    }

    #[test]
    fn journal_restores_live_inodes() {
        let path = scratch("restore");
        let weird = Node::Global {
            rel: "sys/net/ipv4/conf/a b\nc".into(),
        };
        let (a, b, c, t) = {
            let mut nodes = Nodes::with_journal(&path, false).unwrap();
            let a = nodes.lookup(pid(5, 9, "stat"));
            let b = nodes.lookup(weird.clone());
            let c = nodes.lookup(pid(6, 1, ""));
            let t = nodes.lookup(Node::Pid {
                n: 5,
                tid: Some(7),
                start: 9,
                rel: "".into(),
            });
            nodes.forget(c, 1);
            (a, b, c, t)
            // Dropped without any shutdown step, as a killed daemon is.
        };
        let mut back = Nodes::with_journal(&path, true).unwrap();
        assert_eq!(back.get(a), Some(&pid(5, 9, "stat")));
        assert_eq!(back.get(b), Some(&weird));
        assert_eq!(back.get(c), None);
        assert_eq!(back.get(t).and_then(Node::shown_task), Some(7));
        // New inodes do not take numbers the kernel may still hold; a node forgotten
        // and made again gets the number its listing entry shows.
        let d = back.lookup(pid(8, 1, ""));
        assert!(![a, b, t].contains(&d));
        assert_eq!(back.lookup(pid(6, 1, "")), dirent_ino(&pid(6, 1, "")));
        // Restored nodes are not dropped by forgets the old daemon counted.
        back.forget(a, 1);
        assert!(back.get(a).is_some());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A node is given the number its entry shows in a listing (`d_ino` is `st_ino`,
    /// as on procfs), in 32 bits below the namespaces' numbers; one whose number is
    /// taken (by a namespace's own, here) gets the next free one.
    #[test]
    fn a_node_gets_the_number_its_entry_shows() {
        let mut nodes = Nodes::default();
        let n = pid(5, 9, "stat");
        let want = dirent_ino(&n);
        assert!(want > ROOT_INO && want < INO_END, "{want}");
        let other = Node::Global { rel: "x".into() };
        assert_eq!(nodes.lookup_at(other, want), want);
        let got = nodes.lookup(n.clone());
        assert_eq!(got, next_ino(want));
        assert_eq!(nodes.lookup(n), got, "found again, not made");
        assert_eq!(next_ino(INO_END - 1), ROOT_INO + 1);
    }

    /// Each node's parent is the directory it is listed in, as a walk reaches it.
    #[test]
    fn parents_are_the_directories_entries_are_listed_in() {
        let thread = Node::Pid {
            n: 5,
            tid: Some(6),
            start: 9,
            rel: "".into(),
        };
        let cases = [
            (pid(5, 9, ""), Some(Node::Root)),
            (pid(5, 9, "stat"), Some(pid(5, 9, ""))),
            (pid(5, 9, "fd/3"), Some(pid(5, 9, "fd"))),
            (thread.clone(), Some(pid(5, 9, "task"))),
            (thread.child("stat").unwrap(), Some(thread.clone())),
            (
                Node::Global {
                    rel: "sys/kernel".into(),
                },
                Some(Node::Global { rel: "sys".into() }),
            ),
            (Node::Global { rel: "sys".into() }, Some(Node::Root)),
            (Node::SelfLink, Some(Node::Root)),
            (Node::Root, None),
        ];
        for (node, parent) in cases {
            assert_eq!(node.parent(), parent, "{node:?}");
            if let Some(p) = &parent {
                let name = node.real_path();
                assert_eq!(name.parent(), Some(p.real_path().as_path()), "{node:?}");
            }
        }
    }

    #[test]
    fn journal_cut_short_keeps_whole_records() {
        let path = scratch("cut");
        {
            let mut nodes = Nodes::with_journal(&path, false).unwrap();
            nodes.lookup(pid(5, 9, "stat"));
            nodes.lookup(pid(5, 9, "status"));
        }
        let bytes = std::fs::read(&path).unwrap();
        for cut in 0..bytes.len() {
            let recs = Journal::parse(&bytes[..cut]);
            assert!(recs.len() <= 2);
            if let Some(Record::Add(_, n)) = recs.first() {
                assert_eq!(n.rel(), "stat");
            }
        }
        assert_eq!(Journal::parse(&bytes).len(), 2);
        assert!(Journal::parse(b"\xff garbage").is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn journal_is_compacted() {
        let path = scratch("compact");
        let mut nodes = Nodes::with_journal(&path, false).unwrap();
        // Each pair is two records: this passes the threshold once.
        for i in 0..(COMPACT_SLACK as i32 / 2 + 10) {
            let ino = nodes.lookup(pid(i + 2, 1, ""));
            nodes.forget(ino, 1);
        }
        let kept = nodes.lookup(pid(1, 1, "stat"));
        assert!(nodes.journal.as_ref().unwrap().records < 100);
        let back = Nodes::with_journal(&path, true).unwrap();
        assert_eq!(back.get(kept), Some(&pid(1, 1, "stat")));
        assert_eq!(back.len(), 2);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
