//! sysfs's CPU directory as a VPS sees it (SPEC section 5): `cpu0` … `cpuK-1` for its K
//! CPUs beside the host's other entries, and the CPU lists of the view.
//!
//! sysstat (`mpstat`, `iostat`, `sar`) counts the `cpuN` directories of
//! `/sys/devices/system/cpu`, and psutil and hwloc read the topology in them: with only
//! the lists virtual, a VPS of one CPU was shown "(2 CPU)" on a host of two. Serving
//! sysfs's whole subtree through FUSE would put the daemon on the path of every sysfs
//! read; instead a read-only tmpfs goes over the directory, and each host entry the VPS
//! sees is bound onto it: `cpuN` from the host CPU that is the VPS's N-th (the order in
//! which `cpuinfo` and `stat` number them), the other entries as they are, and the
//! lists (`online`, `possible`, `present`) from the view, which follow the cgroup at
//! every read. The directories are fixed when the view is put in place: a later change
//! of the cpuset or the quota shows in the lists, `cpuinfo` and `stat`, not in them.
//! Inside a `cpuN`, `topology/` and `cache/` are bound over with renumbered copies
//! ([`super::cpu_topology`]), and the NUMA nodes' CPU lists (`node/nodeN/cpulist`,
//! `cpumap`) are renumbered alike; the rest keeps the host's numbers (`cpufreq`
//! policies), as `docs/limits.md` says.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::resources::cpus::{self, CpuSet};
use crate::resources::ResFile;
use crate::sys::process::{detached_tmpfs, move_mount_to, open_tree_clone, open_tree_clone_at};

/// The number of entry `name` of the form `<prefix>N` ("cpu12" → 12 for "cpu");
/// `None` for the others ("cpufreq").
fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The number of a `cpuN` entry.
fn cpu_number(name: &str) -> Option<u32> {
    numbered(name, "cpu")
}

/// The names in directory `dir`, sorted (sysfs's are ASCII; another is left out).
pub(super) fn names_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The name of a CPU list in the directory ("online"), for a list file.
fn list_name(f: ResFile) -> Option<&'static str> {
    f.is_cpu_list()
        .then(|| f.host_path().rsplit('/').next())
        .flatten()
}

/// Pure: what the VPS's directory shows of the host's entries `host_names`, as (host
/// entry, name shown), for a VPS that sees the host CPUs `visible` (ascending: the N-th
/// is the VPS's CPU N). The CPU lists are left out (the view's are bound instead), and
/// so is every `cpuN` the VPS does not see. `None` when the host's directory can stay:
/// every host `cpuN` is visible under its own number.
pub fn plan(host_names: &[String], visible: &CpuSet) -> Option<Vec<(String, String)>> {
    let shown_as = |n: u32| visible.cpus().iter().position(|&c| c == n);
    let identity = host_names
        .iter()
        .filter_map(|name| cpu_number(name))
        .all(|n| shown_as(n) == usize::try_from(n).ok());
    if identity {
        return None;
    }
    let lists: Vec<&str> = ResFile::ALL.iter().filter_map(|&f| list_name(f)).collect();
    let mut out: Vec<(String, String)> = host_names
        .iter()
        .filter(|name| !lists.contains(&name.as_str()))
        .filter_map(|name| match cpu_number(name) {
            Some(n) => shown_as(n).map(|i| (name.clone(), format!("cpu{i}"))),
            None => Some((name.clone(), name.clone())),
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Some(out)
}

/// The view's CPU lists, taken (`open_tree`) from the view mounted at `view`, to be put
/// in place by [`place`], in this mount namespace or another. The view has those the
/// daemon's sysfs has: none where no sysfs is mounted, and nothing is then covered.
pub fn take_lists(view: &Path) -> Result<Vec<(ResFile, OwnedFd)>, String> {
    let mut lists = Vec::new();
    for &f in ResFile::ALL.iter().filter(|f| f.is_cpu_list()) {
        let source = view.join(crate::view::resource_files::view_name(f));
        match open_tree_clone(&source) {
            Ok(tree) => lists.push((f, tree)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                log::info!("{}: the host has no such list here", source.display());
            }
            Err(e) => return Err(format!("cannot take {}: {e}", source.display())),
        }
    }
    Ok(lists)
}

/// Puts the VPS's CPU directory over `sys_cpu` (sysfs's `devices/system/cpu`): the
/// overlay of [`plan`] when the VPS sees other CPUs than the host's (`visible`), else
/// only the `lists` over the host's. An overlay that cannot be made is taken down again
/// and the lists alone are bound, as before it existed.
pub fn place(
    sys_cpu: &Path,
    lists: Vec<(ResFile, OwnedFd)>,
    visible: Option<&CpuSet>,
) -> Result<(), String> {
    if !sys_cpu.is_dir() {
        log::info!("{} does not exist here: not virtualized", sys_cpu.display());
        return Ok(());
    }
    let host_names =
        names_in(sys_cpu).map_err(|e| format!("cannot list {}: {e}", sys_cpu.display()))?;
    if let Some((v, entries)) = visible.and_then(|v| Some((v, plan(&host_names, v)?))) {
        match overlay(sys_cpu, &entries, &host_names) {
            Ok(()) => renumber_the_rest(sys_cpu, v),
            Err(e) => log::warn!(
                "{}: {e}; the VPS sees the host's CPU directories",
                sys_cpu.display()
            ),
        }
    }
    for (f, tree) in lists {
        let Some(name) = list_name(f) else { continue };
        let target = sys_cpu.join(name);
        if target.exists() {
            move_mount_to(&tree, &target)
                .map_err(|e| format!("cannot mount on {}: {e}", target.display()))?;
        }
    }
    Ok(())
}

/// Mounts the read-only tmpfs over `sys_cpu` with the host `entries` bound onto it
/// under their shown names, and empty files where the host has the CPU lists (for
/// [`place`] to bind the view's onto). The host's entries are taken before the tmpfs
/// covers them.
fn overlay(
    sys_cpu: &Path,
    entries: &[(String, String)],
    host_names: &[String],
) -> Result<(), String> {
    let mut trees = Vec::with_capacity(entries.len());
    for (from, to) in entries {
        let source = sys_cpu.join(from);
        let is_dir = source.is_dir();
        let tree = open_tree_clone(&source).map_err(|e| format!("cannot take {from}: {e}"))?;
        trees.push((to, is_dir, tree));
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("vprocfs"),
        sys_cpu,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| format!("cannot mount a tmpfs: {e}"))?;
    let filled = fill(sys_cpu, &trees, host_names);
    if filled.is_err() {
        // Half made: taken down with whatever was bound on it.
        let _ = umount2(sys_cpu, MntFlags::MNT_DETACH);
    }
    filled
}

/// Makes the placeholders on the tmpfs just mounted over `sys_cpu`, makes it read-only
/// and binds the host's entries (`trees`, each with its shown name and whether it is a
/// directory) onto them.
fn fill(
    sys_cpu: &Path,
    trees: &[(&String, bool, OwnedFd)],
    host_names: &[String],
) -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let placeholder = |name: &str, dir: bool| {
        let p = sys_cpu.join(name);
        let made = if dir {
            std::fs::create_dir(&p)
        } else {
            std::fs::File::create(&p).map(drop)
        };
        made.map_err(|e| format!("cannot make {}: {e}", p.display()))
    };
    for (to, is_dir, _) in trees {
        placeholder(to, *is_dir)?;
    }
    for f in ResFile::ALL.iter().filter_map(|&f| list_name(f)) {
        if host_names.iter().any(|n| n == f) {
            placeholder(f, false)?;
        }
    }
    mount(
        None::<&str>,
        sys_cpu,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the tmpfs read-only: {e}"))?;
    for (to, _, tree) in trees {
        let target = sys_cpu.join(to);
        move_mount_to(tree, &target)
            .map_err(|e| format!("cannot mount on {}: {e}", target.display()))?;
    }
    Ok(())
}

/// With the overlay in place, what else names CPUs by the host's numbers is bound over
/// with copies renumbered (in a tmpfs mounted nowhere, fixed here as the directories
/// are): each visible CPU's topology and caches ([`super::cpu_topology`]) and the NUMA
/// nodes' CPU lists. What cannot be is left as the host's, with a warning.
fn renumber_the_rest(sys_cpu: &Path, visible: &CpuSet) {
    let tmp = match detached_tmpfs() {
        Ok(t) => t,
        Err(e) => {
            log::warn!("cannot make a tmpfs ({e}): topology and NUMA lists stay the host's");
            return;
        }
    };
    if let Err(e) = super::cpu_topology::place(sys_cpu, visible, &tmp) {
        log::warn!("{e}; the VPS sees the host's CPU topology there");
    }
    let sys_node = sys_cpu.with_file_name("node");
    if let Err(e) = place_node_lists(&sys_node, visible, &tmp) {
        log::warn!(
            "{}: {e}; the VPS sees the host's NUMA CPU lists",
            sys_node.display()
        );
    }
}

/// Binds over each NUMA node's `cpulist` and `cpumap` (`<sys_node>/nodeN/`) the node's
/// CPUs among `visible`, renumbered as the VPS's `cpuN` directories are, on a machine of
/// as many CPUs as the VPS sees (libnuma, hwloc, `lscpu`'s "NUMA node0 CPU(s)"), made
/// in `tmp`.
fn place_node_lists(sys_node: &Path, visible: &CpuSet, tmp: &OwnedFd) -> Result<(), String> {
    let Ok(names) = names_in(sys_node) else {
        return Ok(()); // a kernel without NUMA nodes in sysfs
    };
    for node in names.iter().filter(|n| numbered(n, "node").is_some()) {
        let host_list = sys_node.join(node).join("cpulist");
        let Ok(text) = std::fs::read_to_string(&host_list) else {
            continue;
        };
        let host = CpuSet::parse(&text).map_err(|e| format!("{}: {e}", host_list.display()))?;
        let shown = cpus::renumbered(&host, visible);
        let texts = [
            ("cpulist", format!("{}\n", shown.to_list())),
            (
                "cpumap",
                format!("{}\n", cpus::render_mask(&shown, visible.len())),
            ),
        ];
        for (file, text) in texts {
            let name = PathBuf::from(format!("{node}-{file}"));
            write_at(tmp, &name, text.as_bytes(), Mode::from_bits_truncate(0o444))
                .map_err(|e| format!("cannot write {}: {e}", name.display()))?;
            let tree = open_tree_clone_at(tmp, &name)
                .map_err(|e| format!("cannot take {}: {e}", name.display()))?;
            let target = sys_node.join(node).join(file);
            move_mount_to(&tree, &target)
                .map_err(|e| format!("cannot mount on {}: {e}", target.display()))?;
            make_read_only(&target)?;
        }
    }
    Ok(())
}

/// Makes the bind mount at `target` read-only (and nosuid, nodev, noexec).
pub(super) fn make_read_only(target: &Path) -> Result<(), String> {
    let ro = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(None::<&str>, target, None::<&str>, ro, None::<&str>)
        .map_err(|e| format!("cannot make {} read-only: {e}", target.display()))
}

/// Makes file `name` (of `mode`) in directory `dir` with `text` in it.
pub(super) fn write_at(dir: &OwnedFd, name: &Path, text: &[u8], mode: Mode) -> nix::Result<()> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, name, flags, mode)?;
    let mut at = 0;
    while at < text.len() {
        at += nix::unistd::write(&fd, &text[at..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const HOST: &[&str] = &[
        "cpu0",
        "cpu1",
        "cpu2",
        "cpu3",
        "cpufreq",
        "cpuidle",
        "kernel_max",
        "online",
        "possible",
        "present",
        "smt",
        "vulnerabilities",
    ];

    #[test]
    fn a_vps_of_every_cpu_keeps_the_hosts_directory() {
        let all = CpuSet::parse("0-3").unwrap();
        assert_eq!(plan(&names(HOST), &all), None);
    }

    #[test]
    fn the_visible_cpus_are_shown_renumbered_and_the_rest_kept() {
        let two = CpuSet::parse("1,3").unwrap();
        let shown = plan(&names(HOST), &two).expect("an overlay");
        let pairs: Vec<(&str, &str)> = shown
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("cpu1", "cpu0"),
                ("cpu3", "cpu1"),
                ("cpufreq", "cpufreq"),
                ("cpuidle", "cpuidle"),
                ("kernel_max", "kernel_max"),
                ("smt", "smt"),
                ("vulnerabilities", "vulnerabilities"),
            ]
        );
    }

    #[test]
    fn a_prefix_of_the_hosts_cpus_hides_the_others() {
        let first = CpuSet::parse("0").unwrap();
        let shown = plan(&names(HOST), &first).expect("an overlay");
        let cpus: Vec<&str> = shown
            .iter()
            .filter(|(a, _)| cpu_number(a).is_some())
            .map(|(a, b)| {
                assert_eq!(a, b);
                a.as_str()
            })
            .collect();
        assert_eq!(cpus, ["cpu0"]);
    }

    #[test]
    fn only_cpu_and_digits_name_a_cpu() {
        assert_eq!(cpu_number("cpu12"), Some(12));
        for other in ["cpu", "cpufreq", "cpuidle", "cpu1a", "online", "cpu-1"] {
            assert_eq!(cpu_number(other), None, "{other}");
        }
    }
}
