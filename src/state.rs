//! The daemon's saved state: the VPSes it serves and the vpids no rule can recompute
//! (those of VPSes in sparse mode: requested vpids, and dense or probed ones), so that
//! a restarted daemon gives every surviving process the vpid it had.
//!
//! Written to a temporary file, synced, and renamed over the old one, so a crash leaves
//! either the old state or the new one; a file that does not parse, or of another
//! version, is refused with a clear error and never half-loaded.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

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
    /// same process).
    pub mappings: Vec<SavedMapping>,
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
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vprocfs-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_refusals() {
        let d = dir();
        let p = d.join("state.json");
        assert_eq!(load(&p), Ok(None));
        let s = State {
            version: VERSION,
            vpses: vec![SavedVps {
                spec: "a:tree=5".into(),
                mappings: vec![SavedMapping {
                    pid: 5,
                    vpid: 1,
                    start: 99,
                }],
            }],
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
        let _ = fs::remove_dir_all(&d);
    }
}
