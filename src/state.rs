//! The daemon's saved state: the VPSes it serves and the vpids no rule can recompute
//! (those of VPSes in sparse mode: requested vpids, and dense or probed ones), so that
//! a restarted daemon gives every surviving process the vpid it had.
//!
//! Written to a temporary file, synced, and renamed over the old one, so a crash leaves
//! either the old state or the new one; a file that does not parse, or of another
//! version, is refused with a clear error and never half-loaded.
//!
//! The state is saved a few times a second, but a vpid is shown to readers the moment
//! it is handed out: one handed out since the last save would be lost with a killed
//! daemon, and its process (a `ps` that has read `/proc/self`) would find itself gone.
//! So every vpid is also appended to a [`Journal`] before anyone can see it. One
//! `write` a vpid, no fsync: what the daemon wrote is in the kernel's page cache, which
//! survives the daemon; only a machine crash loses it, and that ends the processes too.
//! A save seals the journal and starts the next one; once the state is on disk, the
//! sealed journals are removed. A daemon starting reads the state, then every journal
//! left, oldest first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Everything saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`VERSION`].
    pub version: u32,
    /// The VPSes, in the order they were added.
    pub vpses: Vec<SavedVps>,
}

/// One VPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedVps {
    /// `NAME:SOURCE`, as `--vps` takes it.
    pub spec: String,
    /// Task vpids to restore, each with the task's start time (a reused pid is not the
    /// same process), and the last vpid handed out ([`SavedVps::last_vpid`]).
    pub mappings: Vec<SavedMapping>,
}

/// The real pid of the mapping that carries a VPS's last vpid: no task has it, so a
/// daemon of a version that saved no last vpid, reading this state after a rollback
/// of a live upgrade, finds no such task and passes the mapping over, where a new
/// field would have made it refuse the whole file.
const LAST_VPID_PID: i32 = 0;

impl SavedVps {
    /// `spec` with the task vpids `tasks` and the last vpid handed out, `last`.
    pub fn new(spec: String, tasks: Vec<SavedMapping>, last: Option<i32>) -> SavedVps {
        let mut mappings = tasks;
        mappings.extend(last.map(|vpid| SavedMapping {
            pid: LAST_VPID_PID,
            vpid,
            start: 0,
        }));
        SavedVps { spec, mappings }
    }

    /// The task vpids to restore.
    pub fn tasks(&self) -> Vec<SavedMapping> {
        self.mappings
            .iter()
            .filter(|m| m.pid != LAST_VPID_PID)
            .copied()
            .collect()
    }

    /// The last vpid handed out (`ns_last_pid`): a restarted daemon goes on numbering
    /// after it, as a kernel pid namespace does, rather than handing out again the vpids
    /// of processes that just exited (whose names readers' kernels may still hold).
    /// `None` in the states of older versions.
    pub fn last_vpid(&self) -> Option<i32> {
        self.mappings
            .iter()
            .find(|m| m.pid == LAST_VPID_PID)
            .map(|m| m.vpid)
    }
}

/// A task's vpid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedMapping {
    /// Real pid.
    pub pid: i32,
    /// Its vpid.
    pub vpid: i32,
    /// Its start time (clock ticks after boot).
    pub start: u64,
}

/// Reads the state at `path`; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<State>, String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the state file {}: {e}",
                path.display()
            ))
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|e| {
        format!(
            "the state file {} is damaged ({e}); move it away to start afresh",
            path.display()
        )
    })?;
    if state.version != VERSION {
        return Err(format!(
            "the state file {} has version {}, this vprocfs reads version {VERSION}",
            path.display(),
            state.version
        ));
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically: temporary file, fsync, rename, fsync of the
/// directory.
pub fn save(path: &Path, state: &State) -> io::Result<()> {
    write_json(path, state)
}

/// Writes `value` as JSON to `path` atomically: temporary file, fsync, rename, fsync of
/// the directory.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let dir = state_dir(path);
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The vpids handed out since the state was last saved: `NAME PID VPID START` lines in
/// `STATE.journal.SEQ`, next to the state file `STATE` (see the module's doc).
#[derive(Debug)]
pub struct Journal {
    state: PathBuf,
    seq: u64,
    file: File,
    empty: bool,
}

impl Journal {
    /// Starts journal `seq` of the state at `state` (a file left with that number is
    /// emptied: its records were read before).
    pub fn create(state: &Path, seq: u64) -> io::Result<Journal> {
        fs::create_dir_all(state_dir(state))?;
        Journal::open(state, seq)
    }

    /// Starts journal `seq` in the state's directory, which exists.
    fn open(state: &Path, seq: u64) -> io::Result<Journal> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(journal_path(state, seq))?;
        Ok(Journal {
            state: state.to_path_buf(),
            seq,
            file,
            empty: true,
        })
    }

    /// Appends one vpid of VPS `vps`, in one `write`.
    pub fn record(&mut self, vps: &str, m: SavedMapping) -> io::Result<()> {
        let line = format!("{vps} {} {} {}\n", m.pid, m.vpid, m.start);
        self.file.write_all(line.as_bytes())?;
        self.empty = false;
        Ok(())
    }

    /// Whether nothing was recorded since this journal was started.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Seals this journal and starts the next; returns the sealed one's number, for
    /// [`remove_journals`] once the state that holds its records is saved.
    pub fn rotate(&mut self) -> io::Result<u64> {
        let next = Journal::open(&self.state, self.seq + 1)?;
        let sealed = self.seq;
        *self = next;
        Ok(sealed)
    }
}

/// The directory of the state file `state`.
fn state_dir(state: &Path) -> &Path {
    state
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn journal_path(state: &Path, seq: u64) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".journal.{seq}"));
    state.with_file_name(name)
}

/// The journals next to the state at `state`, by number.
fn journals(state: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = state_dir(state);
    let prefix = format!(
        "{}.journal.",
        state.file_name().unwrap_or_default().to_string_lossy()
    );
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What the journals left next to the state at `state` hold, oldest first, and the
/// number the next journal takes. A line that does not parse is refused, as a damaged
/// state file is.
pub fn load_journals(state: &Path) -> Result<(Vec<(String, SavedMapping)>, u64), String> {
    let found = journals(state)
        .map_err(|e| format!("cannot list the journals of {}: {e}", state.display()))?;
    let mut records = Vec::new();
    for (_, path) in &found {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read the journal {}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let record = parse_record(line).ok_or_else(|| {
                format!(
                    "the journal {} is damaged at line {} ({line:?}); move it away to start \
                     afresh",
                    path.display(),
                    n + 1
                )
            })?;
            records.push(record);
        }
    }
    let next = found.last().map_or(0, |(seq, _)| seq + 1);
    Ok((records, next))
}

fn parse_record(line: &str) -> Option<(String, SavedMapping)> {
    let mut f = line.split(' ');
    let name = f.next().filter(|n| !n.is_empty())?;
    let m = SavedMapping {
        pid: f.next()?.parse().ok()?,
        vpid: f.next()?.parse().ok()?,
        start: f.next()?.parse().ok()?,
    };
    f.next().is_none().then(|| (name.to_string(), m))
}

/// Removes the journals up to number `upto`, whose records a saved state holds.
pub fn remove_journals(state: &Path, upto: u64) -> io::Result<()> {
    for (seq, path) in journals(state)? {
        if seq <= upto {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The last vpid handed out, from the one `saved` with the state and the vpids
/// `journaled` after it: the greatest. A journal also holds the older vpids a daemon
/// restored and did not live to save; after a wrap past `pid_max` the greatest is
/// before the wrap, and numbering goes on from there (vpids in use are skipped all the
/// same).
pub fn last_vpid(saved: Option<i32>, journaled: &[SavedMapping]) -> Option<i32> {
    saved
        .into_iter()
        .chain(journaled.iter().map(|m| m.vpid))
        .max()
}

/// `saved` followed by `later`, one mapping a pid: a later one replaces an earlier.
pub fn merge(
    saved: &[SavedMapping],
    later: impl IntoIterator<Item = SavedMapping>,
) -> Vec<SavedMapping> {
    let mut out: Vec<SavedMapping> = saved.to_vec();
    for m in later {
        match out.iter_mut().find(|o| o.pid == m.pid) {
            Some(o) => *o = m,
            None => out.push(m),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(test: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vprocfs-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_refusals() {
        let d = dir("state");
        let p = d.join("state.json");
        assert_eq!(load(&p), Ok(None));
        let s = State {
            version: VERSION,
            vpses: vec![SavedVps::new(
                "a:tree=5".into(),
                vec![SavedMapping {
                    pid: 5,
                    vpid: 1,
                    start: 99,
                }],
                Some(17),
            )],
        };
        save(&p, &s).unwrap();
        assert_eq!(load(&p), Ok(Some(s.clone())));
        assert!(!p.with_extension("tmp").exists());
        // Truncated, garbage, other version, unknown field: refused, never half-loaded.
        let full = fs::read_to_string(&p).unwrap();
        for bad in [
            full[..full.len() / 2].to_string(),
            "garbage".to_string(),
            full.replace("\"version\": 1", "\"version\": 2"),
            full.replace("\"spec\"", "\"extra\": 1, \"spec\""),
        ] {
            fs::write(&p, bad).unwrap();
            let e = load(&p).unwrap_err();
            assert!(e.contains("state file"), "{e}");
            assert_eq!(e.lines().count(), 1);
        }
        let saved = &s.vpses[0];
        assert_eq!(saved.last_vpid(), Some(17));
        assert_eq!(saved.tasks().len(), 1, "the last vpid is no task's");
        // A state of a version without the last vpid loads, without it; and this
        // version's carries it in the fields every version knows.
        let old = SavedVps::new(saved.spec.clone(), saved.tasks(), None);
        assert_eq!(old.last_vpid(), None);
        assert_eq!(old.tasks(), saved.tasks());
        assert!(!full.contains("last"), "{full}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn the_last_vpid_is_the_greatest_saved_or_journaled() {
        let m = |vpid| SavedMapping {
            pid: 100 + vpid,
            vpid,
            start: 1,
        };
        assert_eq!(last_vpid(None, &[]), None);
        assert_eq!(last_vpid(Some(40), &[]), Some(40));
        assert_eq!(last_vpid(Some(40), &[m(41), m(42), m(3)]), Some(42));
        assert_eq!(last_vpid(Some(40), &[m(3)]), Some(40), "a restored vpid");
        assert_eq!(last_vpid(None, &[m(7), m(5)]), Some(7));
    }

    #[test]
    fn journals_are_read_in_order_and_removed_once_saved() {
        let d = dir("journal");
        let p = d.join("state");
        assert_eq!(load_journals(&p), Ok((vec![], 0)));
        let m = |pid, vpid| SavedMapping {
            pid,
            vpid,
            start: 7,
        };
        let mut j = Journal::create(&p, 0).unwrap();
        assert!(j.is_empty());
        j.record("a", m(10, 2)).unwrap();
        assert!(!j.is_empty());
        assert_eq!(j.rotate().unwrap(), 0);
        assert!(j.is_empty(), "the next journal starts empty");
        j.record("b.x-1", m(11, 3)).unwrap();
        j.record("a", m(10, 4)).unwrap();
        let (records, next) = load_journals(&p).unwrap();
        assert_eq!(
            records,
            vec![
                ("a".into(), m(10, 2)),
                ("b.x-1".into(), m(11, 3)),
                ("a".into(), m(10, 4))
            ]
        );
        assert_eq!(next, 2);
        // A later record replaces an earlier one of the same pid.
        let a: Vec<SavedMapping> = records.iter().filter(|r| r.0 == "a").map(|r| r.1).collect();
        assert_eq!(merge(&[m(9, 1), m(10, 5)], a), vec![m(9, 1), m(10, 4)]);
        remove_journals(&p, 0).unwrap();
        let (records, next) = load_journals(&p).unwrap();
        assert_eq!(records.len(), 2, "journal 1 is kept: {records:?}");
        assert_eq!(next, 2);
        // A damaged line is refused, never half-loaded.
        fs::write(journal_path(&p, 1), "a 10 4 7\na 10 x\n").unwrap();
        let e = load_journals(&p).unwrap_err();
        assert!(e.contains("damaged at line 2"), "{e}");
        assert_eq!(e.lines().count(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
