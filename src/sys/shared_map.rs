//! A file mapped shared into memory as 64-bit words: stores into it need no system call,
//! and what was stored stays in the file (the page cache) when the process dies, which
//! is what the ledger of passthrough backing files needs (`crate::backing::ledger`).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

/// `words` 64-bit words of a file, mapped shared, read and written.
pub struct SharedWords {
    ptr: NonNull<std::ffi::c_void>,
    words: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access goes through
// atomics, so sharing it between threads is sound.
unsafe impl Send for SharedWords {}
// SAFETY: as for Send: only atomic accesses, through `&self`.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Maps the first `words` words of `file`, which must be at least that long.
    pub fn map(file: &File, words: usize) -> io::Result<SharedWords> {
        let len = words
            .checked_mul(8)
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty mapping"))?;
        if file.metadata()?.len() < len.get() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the file is too short",
            ));
        }
        // SAFETY: a new shared mapping of a file we hold open, at an address the kernel
        // chooses: it aliases no Rust object. The file is long enough (checked above);
        // it could still be truncated by another process, which would make an access
        // fault: the files mapped here are the daemon's own, in its root-only runtime
        // directory.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }
        .map_err(io::Error::from)?;
        Ok(SharedWords { ptr, words })
    }

    /// The words, as atomics: the mapping is page-aligned, hence aligned for them.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is a live mapping of `words` × 8 bytes, page-aligned (so aligned
        // for AtomicU64), valid for as long as `self`; AtomicU64 has the size and
        // alignment of u64 and allows shared mutation through `&`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.words) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of that length, unmapped once; the slices
        // `words` lent borrow `self`, so none outlives it.
        if let Err(e) = unsafe { munmap(self.ptr, self.words * 8) } {
            log::warn!("cannot unmap a shared file: {e}");
        }
    }
}
