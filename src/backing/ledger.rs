//! The ledger of a mount's passthrough backing files: which backing id the kernel has
//! registered for which inode, kept in a file mapped shared, so that what a worker
//! killed outright had registered is known to the next one.
//!
//! Why: the kernel keeps a registered backing file until it is closed or the
//! connection ends, and keeps it attached to its inode while a reader holds a file of
//! that inode open; every other open of the inode must then name that very id, or the
//! kernel refuses it (`EIO`). A worker that steps down hands its ids over in a file;
//! one killed outright cannot, and before the ledger every open of a file a reader held
//! across the kill failed until that reader closed it. With the ledger the next worker
//! names the id at the inode's next open and closes it once the kernel forgets the
//! inode.
//!
//! How: a table of slots of two 64-bit words (the inode; the id and its state) in a
//! file of the worker directory, mapped shared ([`SharedWords`]): recording a
//! registration or a close is two stores, no system call, and each slot changes state
//! in one 64-bit store, so a process killed at any instruction leaves every slot either
//! as it was or as it was to be. Open addressing by id, linear probing; a closed id
//! leaves a tombstone, and the table is written anew (a new file renamed over the old)
//! when the live and dead slots fill half of it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::sys::shared_map::SharedWords;

/// The first word of a ledger file.
const MAGIC: u64 = u64::from_le_bytes(*b"vpledg01");
/// Words before the slots: the magic and the number of slots.
const HEADER: usize = 2;
/// The fewest slots a ledger has.
const MIN_SLOTS: usize = 1024;

const EMPTY: u64 = 0;
const LIVE: u64 = 1;
const DEAD: u64 = 2;

/// A registered backing id and the inode it was registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    pub ino: u64,
}

/// The ledger of one mount.
pub struct Ledger {
    path: PathBuf,
    map: SharedWords,
    slots: usize,
    live: usize,
    dead: usize,
}

fn state_word(id: u32, state: u64) -> u64 {
    (u64::from(id) << 32) | state
}

impl Ledger {
    /// The entries of the ledger at `path`, as its last writer left them: `None` when
    /// there is none, an error when it is not a ledger.
    pub fn read(path: &Path) -> io::Result<Option<Vec<Entry>>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what}", path.display()),
            )
        };
        let word = |i: usize| -> Option<u64> {
            bytes
                .get(i * 8..i * 8 + 8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        };
        if word(0) != Some(MAGIC) {
            return Err(bad("not a ledger"));
        }
        let slots = word(1)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad("no size"))?;
        if bytes.len() < (HEADER + 2 * slots) * 8 {
            return Err(bad("shorter than its size"));
        }
        let mut out = Vec::new();
        for s in 0..slots {
            let (ino, st) = (word(HEADER + 2 * s), word(HEADER + 2 * s + 1));
            if let (Some(ino), Some(st)) = (ino, st) {
                if st & 0xffff_ffff == LIVE {
                    out.push(Entry {
                        id: (st >> 32) as u32,
                        ino,
                    });
                }
            }
        }
        Ok(Some(out))
    }

    /// A new ledger at `path` holding `entries`, in place of any there.
    pub fn create(path: &Path, entries: &[Entry]) -> io::Result<Ledger> {
        let slots = (entries.len() * 4).max(MIN_SLOTS).next_power_of_two();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.set_len(((HEADER + 2 * slots) * 8) as u64)?;
        let map = SharedWords::map(&file, HEADER + 2 * slots)?;
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            map,
            slots,
            live: 0,
            dead: 0,
        };
        let words = ledger.map.words();
        words[1].store(slots as u64, Relaxed);
        words[0].store(MAGIC, Release);
        for e in entries {
            ledger.put(*e);
        }
        fs::rename(&tmp, path)?;
        Ok(ledger)
    }

    /// The slot `id` starts its probe at.
    fn home(&self, id: u32) -> usize {
        (u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (self.slots - 1)
    }

    fn slot(&self, s: usize) -> (&std::sync::atomic::AtomicU64, &std::sync::atomic::AtomicU64) {
        let w = self.map.words();
        (&w[HEADER + 2 * s], &w[HEADER + 2 * s + 1])
    }

    /// Records that `e.id` is registered for inode `e.ino`; before the kernel is told
    /// to use it, so that a kill after that finds it here.
    pub fn insert(&mut self, e: Entry) {
        if (self.live + self.dead + 1) * 2 > self.slots {
            self.rewrite();
        }
        self.put(e);
    }

    fn put(&mut self, e: Entry) {
        let mut s = self.home(e.id);
        let mut was = None;
        for _ in 0..self.slots {
            let (ino, st) = self.slot(s);
            let cur = st.load(Acquire);
            let state = cur & 0xffff_ffff;
            if state != LIVE || (cur >> 32) as u32 == e.id {
                ino.store(e.ino, Relaxed);
                st.store(state_word(e.id, LIVE), Release);
                was = Some(state);
                break;
            }
            s = (s + 1) & (self.slots - 1);
        }
        // Full of live ids, only if it could not be written anew (`rewrite` said why):
        // this id goes unrecorded, and a worker killed while a reader holds its file
        // leaves that file failing its other opens until closed, as before the ledger.
        let Some(was) = was else {
            log::warn!(
                "{} is full: backing id {} not recorded",
                self.path.display(),
                e.id
            );
            return;
        };
        if was == DEAD {
            self.dead -= 1;
        }
        if was != LIVE {
            self.live += 1;
        }
    }

    /// Records that `id` is about to be closed; before it is, so that a kill in between
    /// leaves an id registered that nobody names (memory kept until the mount goes)
    /// rather than one named after its close.
    pub fn remove(&mut self, id: u32) {
        let mut s = self.home(id);
        let mut found = false;
        for _ in 0..self.slots {
            let (_, st) = self.slot(s);
            let cur = st.load(Acquire);
            match cur & 0xffff_ffff {
                EMPTY => break,
                LIVE if (cur >> 32) as u32 == id => {
                    st.store(state_word(id, DEAD), Release);
                    found = true;
                    break;
                }
                _ => s = (s + 1) & (self.slots - 1),
            }
        }
        if found {
            self.live -= 1;
            self.dead += 1;
        }
    }

    /// The live entries.
    pub fn entries(&self) -> Vec<Entry> {
        (0..self.slots)
            .filter_map(|s| {
                let (ino, st) = self.slot(s);
                let cur = st.load(Acquire);
                (cur & 0xffff_ffff == LIVE).then(|| Entry {
                    id: (cur >> 32) as u32,
                    ino: ino.load(Relaxed),
                })
            })
            .collect()
    }

    /// Writes the live entries to a new table (no tombstones; twice the room it needs),
    /// renamed over this one. If that fails this one stays, fuller.
    fn rewrite(&mut self) {
        let entries = self.entries();
        match Ledger::create(&self.path, &entries) {
            Ok(fresh) => *self = fresh,
            Err(e) => log::warn!("cannot rewrite {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vprocfs-ledger-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("ledger")
    }

    fn sorted(mut v: Vec<Entry>) -> Vec<Entry> {
        v.sort_by_key(|e| e.id);
        v
    }

    #[test]
    fn what_was_recorded_is_read_back_after_the_writer_is_gone() {
        let path = tmp("read-back");
        let e = |id, ino| Entry { id, ino };
        {
            let mut l = Ledger::create(&path, &[e(1, 10)]).unwrap();
            l.insert(e(2, 20));
            l.insert(e(3, 30));
            l.remove(2);
            l.remove(99); // never recorded: nothing
                          // Dropped without any shutdown, as a killed worker's.
        }
        let back = Ledger::read(&path).unwrap().unwrap();
        assert_eq!(sorted(back), vec![e(1, 10), e(3, 30)]);
        assert_eq!(Ledger::read(&path.with_extension("none")).unwrap(), None);
        fs::write(&path, b"something else").unwrap();
        assert!(Ledger::read(&path).is_err());
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_full_table_that_cannot_be_rewritten_drops_the_record_and_goes_on() {
        let path = tmp("full");
        let mut l = Ledger::create(&path, &[]).unwrap();
        // `put` without `insert`'s rewrite, as when the new file cannot be made.
        for id in 1..=MIN_SLOTS as u32 + 1 {
            l.put(Entry { id, ino: 1 });
        }
        assert_eq!(l.entries().len(), MIN_SLOTS);
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn many_registrations_and_closes_keep_the_live_ones_only() {
        let path = tmp("churn");
        let mut l = Ledger::create(&path, &[]).unwrap();
        let mut live = Vec::new();
        // Ids as the kernel hands them out: one after the other, most closed soon.
        for id in 1..20_000u32 {
            l.insert(Entry {
                id,
                ino: u64::from(id) * 7,
            });
            if id % 10 == 0 {
                live.push(Entry {
                    id,
                    ino: u64::from(id) * 7,
                });
            } else {
                l.remove(id);
            }
        }
        assert_eq!(sorted(l.entries()), live);
        assert_eq!(sorted(Ledger::read(&path).unwrap().unwrap()), live);
        assert!(
            l.slots <= 8 * live.len().max(MIN_SLOTS),
            "{} slots",
            l.slots
        );
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
