//! `lseek` on a file opened through the view, answered as procfs answers it.
//!
//! procfs's seq files (`stat`, `status`, `maps`, `meminfo`…) take `SEEK_SET` and
//! `SEEK_CUR` only (`seq_lseek`): `SEEK_END`, `SEEK_DATA` and `SEEK_HOLE` fail with
//! `EINVAL`; its other files (`cmdline`, `environ`, `auxv`…) seek as a file of size 0.
//! FUSE seeks by itself to a set or current position, but asks the daemon for
//! `SEEK_DATA` and `SEEK_HOLE` (`FUSE_LSEEK`) and, for `SEEK_END`, for the size of
//! the open file (a `GETATTR` that names it): the daemon asks the real file the same
//! and answers as it does.

use std::fs::File;

use nix::unistd::{lseek, Whence};

use super::nodes::Node;
use super::{errno, Errno, View};

impl View {
    /// The answer to `lseek(offset, whence)` on a file of inode `ino`: the real
    /// file's. A real file that cannot be opened (its process is gone) is answered as
    /// a file of size 0.
    pub fn lseek(&self, ino: u64, offset: i64, whence: i32) -> Result<i64, Errno> {
        let whence = match whence {
            libc::SEEK_DATA => Whence::SeekData,
            libc::SEEK_HOLE => Whence::SeekHole,
            libc::SEEK_END => Whence::SeekEnd,
            libc::SEEK_CUR => Whence::SeekCur,
            _ => Whence::SeekSet,
        };
        match self.real_file_of(ino) {
            Ok(f) => lseek(&f, offset, whence),
            Err(_) if matches!(whence, Whence::SeekData | Whence::SeekHole) => Err(Errno::ENXIO),
            Err(_) => Ok(0),
        }
    }

    /// Whether the file of inode `ino`, open, may be asked its size: `EINVAL` where
    /// the real file refuses `SEEK_END` (a seq file), which FUSE then answers the
    /// reader's `lseek` with.
    pub fn takes_seek_to_end(&self, ino: u64) -> Result<(), Errno> {
        match self.lseek(ino, 0, libc::SEEK_END) {
            Err(Errno::EINVAL) => Err(Errno::EINVAL),
            _ => Ok(()),
        }
    }

    /// The real file behind inode `ino`, opened anew for reading.
    fn real_file_of(&self, ino: u64) -> Result<File, Errno> {
        match self.node(ino)? {
            node @ (Node::Pid { .. } | Node::Global { .. }) => {
                File::open(node.real_path()).map_err(|e| errno(&e))
            }
            _ => Err(Errno::ENOENT),
        }
    }
}
