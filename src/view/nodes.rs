//! The inode table: which node of the view each FUSE inode number stands for.
//!
//! A node is named by the real path it shows (plus, under a pid directory, the start
//! time of that process), so the same file seen by two readers is one inode, and a
//! reused pid gets a new inode: the kernel never serves a stale process from its caches.

use std::path::PathBuf;

use rustc_hash::FxHashMap;

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
        rel: Box<str>,
    },
    /// Anything else below `/proc`, passed through (`rel` not empty).
    Global {
        /// The path below `/proc`.
        rel: Box<str>,
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
            Node::Global { rel } => host::proc_path(rel),
        }
    }

    /// The task a pid node's files describe: the thread for `task/<tid>`, else `n`.
    pub fn shown_task(&self) -> Option<Pid> {
        match self {
            Node::Pid { n, tid, .. } => Some(tid.unwrap_or(*n)),
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

    /// The child of this node called `name`, for nodes whose children are plain names.
    pub fn child(&self, name: &str) -> Option<Node> {
        let join = |rel: &str| -> Box<str> {
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
    next: u64,
}

impl Default for Nodes {
    fn default() -> Self {
        let mut nodes = Nodes {
            by_ino: FxHashMap::default(),
            by_node: FxHashMap::default(),
            next: ROOT_INO + 1,
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

    /// The inode of `node`, made if new, counting one kernel lookup.
    pub fn lookup(&mut self, node: Node) -> u64 {
        if let Some(&ino) = self.by_node.get(&node) {
            if let Some(slot) = self.by_ino.get_mut(&ino) {
                slot.lookups += 1;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_node.insert(node.clone(), ino);
        self.by_ino.insert(ino, Slot { node, lookups: 1 });
        ino
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
                self.by_node.remove(&slot.node);
            }
        }
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

/// A stable inode number for a directory entry's `d_ino`, without making a node: FNV-1a
/// of the real path, kept clear of the small numbers the table hands out.
pub fn dirent_ino(node: &Node) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.real_path().as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | (1 << 63)
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
}
