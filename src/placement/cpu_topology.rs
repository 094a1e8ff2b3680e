//! A visible CPU's `topology/` and `cache/` as the VPS numbers its CPUs.
//!
//! The `cpuN` directories of the VPS are the host's ([`super::cpu_dir`]), whose sibling
//! lists and masks name host CPUs: `lscpu -e` then finds a core's sibling missing and
//! prints its core as "-", hwloc a topology of CPUs that are not there. Both
//! directories are static (the kernel fills them at CPU hotplug), so they are copied,
//! every CPU list (`*_list`) and mask (a file with a list twin, as the kernel makes
//! each pair: `core_cpus` and `core_cpus_list`, `shared_cpu_map` and `shared_cpu_list`) renumbered to the VPS's CPUs and cut to them, every other file as it is,
//! into a tmpfs mounted nowhere, and bound read-only over the host's: one mount a
//! directory and CPU.

use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::resources::cpus::{self, CpuSet};
use crate::sys::process::{move_mount_to, open_tree_clone_at};

/// The directories of a CPU that name other CPUs.
const NAMED: [&str; 2] = ["topology", "cache"];

/// Pure: the text of file `name` in a CPU's topology or cache as a VPS that sees host
/// CPUs `visible` (N-th = its CPU N) reads it; `has_list_twin` when its CPU list is
/// beside it ([`list_twin`]: then it is a mask). `None`: the host's text as it is.
pub fn renumber(name: &str, text: &str, has_list_twin: bool, visible: &CpuSet) -> Option<String> {
    if name.ends_with("_list") {
        let host = CpuSet::parse(text).ok()?;
        return Some(format!("{}\n", cpus::renumbered(&host, visible).to_list()));
    }
    if has_list_twin {
        let host = parse_mask(text)?;
        let shown = cpus::renumbered(&host, visible);
        return Some(format!("{}\n", cpus::render_mask(&shown, visible.len())));
    }
    None
}

/// The name of the CPU list a mask file `name` would have beside it: `<name>_list`
/// (`thread_siblings`), or for a `_map` the `_list` (`shared_cpu_map`).
fn list_twin(name: &str) -> Option<String> {
    if name.ends_with("_list") {
        return None;
    }
    Some(match name.strip_suffix("_map") {
        Some(stem) => format!("{stem}_list"),
        None => format!("{name}_list"),
    })
}

/// The CPUs of a kernel mask text ("ff,00000001": hex words, high first).
fn parse_mask(text: &str) -> Option<CpuSet> {
    let mut cpus = Vec::new();
    for (i, word) in text.trim().rsplit(',').enumerate() {
        let w = u32::from_str_radix(word, 16).ok()?;
        let base = u32::try_from(i).ok()?.checked_mul(32)?;
        cpus.extend((0..32).filter(|b| w & (1 << b) != 0).map(|b| base + b));
    }
    Some(CpuSet::from_cpus(cpus))
}

/// The ids of the caches of each level (`cache/indexN/id`), renumbered in the order
/// the VPS's CPUs meet them: `lscpu -e` takes an id for an index into its caches, and a
/// lone CPU whose L1 is the host's cache 1 was shown no caches at all.
#[derive(Default)]
struct CacheIds(std::collections::HashMap<String, Vec<String>>);

impl CacheIds {
    /// Reads every visible CPU's cache ids (`cpu0`… of the VPS's directory).
    fn read(sys_cpu: &Path, count: usize) -> CacheIds {
        let mut ids = CacheIds::default();
        for i in 0..count {
            let cache = sys_cpu.join(format!("cpu{i}")).join("cache");
            let Ok(names) = super::cpu_dir::names_in(&cache) else {
                continue;
            };
            for index in names.into_iter().filter(|n| n.starts_with("index")) {
                let Ok(id) = std::fs::read_to_string(cache.join(&index).join("id")) else {
                    continue;
                };
                let seen = ids.0.entry(index).or_default();
                if !seen.contains(&id) {
                    seen.push(id);
                }
            }
        }
        ids
    }

    /// The VPS's id of host cache `id` of level directory `index` ("index0").
    fn shown(&self, index: &str, id: &str) -> Option<String> {
        let at = self.0.get(index)?.iter().position(|s| s == id)?;
        Some(format!("{at}\n"))
    }
}

/// Binds renumbered copies of [`NAMED`] over those of each `cpuN` in `sys_cpu` (the
/// VPS's directory, already in place), for a VPS of host CPUs `visible`; the copies
/// are made in `tmp`, a tmpfs mounted nowhere.
pub fn place(sys_cpu: &Path, visible: &CpuSet, tmp: &OwnedFd) -> Result<(), String> {
    let cache_ids = CacheIds::read(sys_cpu, visible.len());
    let pool = make_dir_at(tmp, "pool").map_err(|e| format!("cannot make pool: {e}"))?;
    let copier = Copier {
        visible,
        cache_ids: &cache_ids,
        pool: &pool,
        written: RefCell::new(HashMap::new()),
    };
    for i in 0..visible.len() {
        for dir in NAMED {
            let target = sys_cpu.join(format!("cpu{i}")).join(dir);
            if !target.is_dir() {
                continue;
            }
            let copy = format!("cpu{i}-{dir}");
            let at = make_dir_at(tmp, &copy).map_err(|e| format!("cannot make {copy}: {e}"))?;
            copier
                .copy_dir(&target, &at)
                .map_err(|e| format!("{}: {e}", target.display()))?;
            let tree = open_tree_clone_at(tmp, Path::new(&copy))
                .map_err(|e| format!("cannot take {copy}: {e}"))?;
            move_mount_to(&tree, &target)
                .map_err(|e| format!("cannot mount on {}: {e}", target.display()))?;
            super::cpu_dir::make_read_only(&target)?;
        }
    }
    Ok(())
}

/// Makes directory `name` (mode 0755) in `dir`, and opens it.
fn make_dir_at(dir: &OwnedFd, name: &str) -> nix::Result<OwnedFd> {
    nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755))?;
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    nix::fcntl::openat(dir, name, flags, Mode::empty())
}

/// Copies sysfs directories with their CPU numbers renumbered.
///
/// A file is written once per text (and mode), in `pool`, and linked where it stands:
/// most of a CPU's 60-odd files (cache sizes and types, ids, the lists of a shared
/// cache) read the same on every CPU, and a tmpfs file holds a page, so a VPS of 64
/// CPUs took 15 MiB of copies, and takes a few hundred KiB this way.
struct Copier<'a> {
    visible: &'a CpuSet,
    cache_ids: &'a CacheIds,
    /// The directory of the tmpfs where each text is written once.
    pool: &'a OwnedFd,
    /// The texts written to `pool`, with the name each has there.
    written: RefCell<HashMap<(Vec<u8>, u32), String>>,
}

impl Copier<'_> {
    /// Puts file `name` with `text` and `mode` in directory `to`: a link to the pool's
    /// file of that text, written there the first time.
    fn put(&self, to: &OwnedFd, name: &str, text: &[u8], mode: Mode) -> nix::Result<()> {
        let mut written = self.written.borrow_mut();
        let next = written.len().to_string();
        let pooled = match written.entry((text.to_vec(), mode.bits())) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => {
                super::cpu_dir::write_at(self.pool, Path::new(&next), text, mode)?;
                e.insert(next).clone()
            }
        };
        nix::unistd::linkat(self.pool, pooled.as_str(), to, name, AtFlags::empty())
    }

    /// Copies directory `from` into `to` (a directory of the tmpfs), renumbered; a file
    /// the host does not let root read (none in these directories today) is left out.
    fn copy_dir(&self, from: &Path, to: &OwnedFd) -> std::io::Result<()> {
        let names = super::cpu_dir::names_in(from)?;
        for name in &names {
            let path = from.join(name);
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                self.copy_dir(&path, &make_dir_at(to, name)?)?;
                continue;
            }
            if !meta.is_file() {
                continue; // links (`subsystem`, `driver`) name sysfs places: left out
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let twin = names
                .iter()
                .any(|n| Some(n.as_str()) == list_twin(name).as_deref());
            let shown = match (name.as_str(), from.file_name().and_then(|n| n.to_str())) {
                ("id", Some(index)) if index.starts_with("index") => {
                    self.cache_ids.shown(index, &text)
                }
                _ => renumber(name, &text, twin, self.visible),
            };
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                Mode::from_bits_truncate(meta.permissions().mode() & 0o444)
            };
            self.put(
                to,
                name,
                shown.as_ref().map_or(&bytes[..], |s| s.as_bytes()),
                mode,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn lists_and_masks_name_the_vps_cpus() {
        // The VPS sees host CPUs 2 and 3 (its 0 and 1) of a host of 8.
        let v = set("2-3");
        assert_eq!(
            renumber("core_cpus_list", "2-3\n", false, &v).unwrap(),
            "0-1\n"
        );
        assert_eq!(
            renumber("thread_siblings", "0c\n", true, &v).unwrap(),
            "3\n"
        );
        assert_eq!(renumber("package_cpus", "ff\n", true, &v).unwrap(), "3\n");
        assert_eq!(
            renumber("shared_cpu_list", "0-7\n", false, &v).unwrap(),
            "0-1\n"
        );
        assert_eq!(renumber("die_cpus_list", "4-7\n", false, &v).unwrap(), "\n");
        // Ids and sizes are the hardware's.
        assert_eq!(renumber("core_id", "3\n", false, &v), None);
        assert_eq!(
            list_twin("shared_cpu_map").as_deref(),
            Some("shared_cpu_list")
        );
        assert_eq!(list_twin("core_cpus").as_deref(), Some("core_cpus_list"));
        assert_eq!(list_twin("core_cpus_list"), None);
        assert_eq!(renumber("size", "32K\n", false, &v), None);
    }

    #[test]
    fn masks_of_several_words_are_read_high_word_first() {
        assert_eq!(
            parse_mask("00000001,00000003\n").unwrap().to_list(),
            "0-1,32"
        );
        assert_eq!(parse_mask("3").unwrap().to_list(), "0-1");
        assert!(parse_mask("xyz").is_none());
    }
}
