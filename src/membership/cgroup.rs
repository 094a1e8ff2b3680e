//! The `cgroup` source: a VPS is the processes of a cgroup and of the cgroups below it,
//! which is how container runtimes group a container.
//!
//! Members are found by reading `cgroup.procs` of the cgroup and its descendants — the
//! size of the VPS, not of the host — and a single process is judged by its own
//! `/proc/<pid>/cgroup`. A child inherits its parent's cgroup at fork, so the connector's
//! fork events admit children; moves between cgroups are not reported by the kernel, so
//! the member list is re-read when a reader lists `/proc`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::Pid;
use crate::host;

/// Which cgroup: a path in the v2 hierarchy, or in the v1 hierarchy of a controller
/// (`pids:/box`) or of a named hierarchy (`name=systemd:/box`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupSpec {
    /// The v1 controller or `name=…`; `None` for the v2 hierarchy.
    pub controller: Option<String>,
    /// The cgroup's path from the hierarchy's root, starting with `/`.
    pub path: String,
}

impl CgroupSpec {
    /// Parses `PATH` or `CONTROLLER:PATH`.
    pub fn parse(s: &str) -> Result<CgroupSpec, String> {
        let (controller, path) = match s.split_once(':') {
            Some((c, p)) if !c.is_empty() && !c.contains('/') => (Some(c.to_string()), p),
            _ => (None, s),
        };
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(format!(
                "{s:?} is not a cgroup path (expected /PATH or CONTROLLER:/PATH)"
            ));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Ok(CgroupSpec { controller, path })
    }

    /// Whether a line of `/proc/<pid>/cgroup` (`id:controllers:path`) places the process
    /// in this cgroup or below it.
    pub fn matches_line(&self, line: &str) -> bool {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let hierarchy = match &self.controller {
            None => id == "0" && controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        hierarchy && within(path, &self.path)
    }

    /// Whether the process's cgroup file (all lines) places it here.
    pub fn matches(&self, cgroup_file: &str) -> bool {
        cgroup_file.lines().any(|l| self.matches_line(l))
    }
}

/// `path` is `base` or below it.
fn within(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A cgroup found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// What was asked for.
    pub spec: CgroupSpec,
    /// Its directory in the mounted hierarchy.
    pub dir: PathBuf,
}

impl Cgroup {
    /// Finds the hierarchy's mount (from the daemon's `mountinfo`) and the cgroup's
    /// directory in it.
    pub fn find(spec: CgroupSpec) -> Result<Cgroup, String> {
        let mountinfo = fs::read_to_string(host::proc_path("self/mountinfo"))
            .map_err(|e| format!("cannot read mountinfo: {e}"))?;
        let mount = mountinfo
            .lines()
            .find_map(|l| hierarchy_mount(l, spec.controller.as_deref()))
            .ok_or_else(|| match &spec.controller {
                None => "no cgroup v2 hierarchy is mounted".to_string(),
                Some(c) => format!("no cgroup v1 hierarchy with {c:?} is mounted"),
            })?;
        let dir = mount.join(spec.path.trim_start_matches('/'));
        if !dir.join("cgroup.procs").exists() {
            return Err(format!(
                "no cgroup {} (looked in {})",
                spec.path,
                dir.display()
            ));
        }
        Ok(Cgroup { spec, dir })
    }

    /// The processes (tgids) of the cgroup and every cgroup below it.
    pub fn processes(&self) -> io::Result<Vec<Pid>> {
        let mut out = Vec::new();
        collect(&self.dir, &mut out, 0)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether process `pid` is in the cgroup or below, by its own `cgroup` file.
    pub fn holds(&self, pid: Pid) -> bool {
        fs::read_to_string(host::proc_path(&format!("{pid}/cgroup")))
            .is_ok_and(|f| self.spec.matches(&f))
    }
}

/// Cgroup trees deeper than this are not walked.
const MAX_DEPTH: usize = 64;

fn collect(dir: &Path, out: &mut Vec<Pid>, depth: usize) -> io::Result<()> {
    let procs = fs::read_to_string(dir.join("cgroup.procs"))?;
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<Pid>().ok()));
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    for e in fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            // A cgroup removed meanwhile is simply gone.
            let _ = collect(&e.path(), out, depth + 1);
        }
    }
    Ok(())
}

/// The mount point of a `mountinfo` line if it is the wanted hierarchy, mounted at its
/// root.
pub(crate) fn hierarchy_mount(line: &str, controller: Option<&str>) -> Option<PathBuf> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let (root, point) = (*fields.get(3)?, *fields.get(4)?);
    let mut rf = right.split(' ');
    let fstype = rf.next()?;
    let options = rf.nth(1).unwrap_or("");
    if root != "/" {
        return None;
    }
    let wanted = match controller {
        None => fstype == "cgroup2",
        Some(c) => fstype == "cgroup" && options.split(',').any(|o| o == c),
    };
    wanted.then(|| PathBuf::from(point.replace("\\040", " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let v2 = CgroupSpec::parse("/box/inner/").unwrap();
        assert_eq!(v2.controller, None);
        assert_eq!(v2.path, "/box/inner");
        let v1 = CgroupSpec::parse("pids:/box").unwrap();
        assert_eq!(v1.controller.as_deref(), Some("pids"));
        let named = CgroupSpec::parse("name=systemd:/a").unwrap();
        assert_eq!(named.controller.as_deref(), Some("name=systemd"));
        assert_eq!(CgroupSpec::parse("/").unwrap().path, "/");
        for bad in ["", "box", "pids:box", "/a/../b", ":/a"] {
            assert!(CgroupSpec::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cgroup_lines() {
        let v2 = CgroupSpec::parse("/box").unwrap();
        assert!(v2.matches_line("0::/box"));
        assert!(v2.matches_line("0::/box/child"));
        assert!(!v2.matches_line("0::/boxer"));
        assert!(!v2.matches_line("0::/"));
        assert!(!v2.matches_line("8:pids:/box"));
        let v1 = CgroupSpec::parse("pids:/box").unwrap();
        assert!(v1.matches_line("8:pids:/box/x"));
        assert!(v1.matches_line("3:cpu,pids:/box"));
        assert!(!v1.matches_line("0::/box"));
        assert!(!v1.matches_line("garbage"));
        let file = "9:name=systemd:/\n8:pids:/box\n0::/\n";
        assert!(v1.matches(file));
        assert!(!v2.matches(file));
    }

    #[test]
    fn mountinfo_lines() {
        let v2 = "35 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let v1 = "40 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids";
        let sub = "41 31 0:36 /sub /mnt rw,relatime - cgroup cgroup rw,pids";
        assert_eq!(
            hierarchy_mount(v2, None),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(hierarchy_mount(v2, Some("pids")), None);
        assert_eq!(
            hierarchy_mount(v1, Some("pids")),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(hierarchy_mount(sub, Some("pids")), None);
        assert_eq!(hierarchy_mount("junk", None), None);
    }
}
