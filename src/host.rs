//! Reading the real `/proc` of the daemon's pid namespace: the facts membership and the
//! view are built from. Every read may fail with `ENOENT`/`ESRCH` because the process
//! exited in between; callers treat that as "gone", never as a bug.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Pid;
use crate::render::stat::parse_stat;
use crate::render::status::parse_status;

/// Where the real procfs is mounted for the daemon.
pub const PROC: &str = "/proc";

/// The path of `rel` below the real `/proc`.
pub fn proc_path(rel: &str) -> PathBuf {
    Path::new(PROC).join(rel)
}

/// What the kernel says about one task (thread), in the daemon's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's id.
    pub tid: Pid,
    /// Its thread group.
    pub tgid: Pid,
    /// Its process's parent (thread group id).
    pub ppid: Pid,
    /// Process group.
    pub pgid: Pid,
    /// Session.
    pub sid: Pid,
    /// Start time in clock ticks after boot: with `tid`, the task's identity, since pids
    /// are reused.
    pub start: u64,
    /// State letter from `stat` (`R`, `S`, `Z`, …).
    pub state: u8,
    /// The task's ids from the daemon's pid namespace down to its own (`NSpid`).
    pub nspid: Vec<Pid>,
    /// Process group ids at each of those levels (`NSpgid`; 0 where not visible).
    pub nspgid: Vec<Pid>,
    /// Session ids at each of those levels (`NSsid`).
    pub nssid: Vec<Pid>,
}

/// Converts a parse failure of kernel text into an I/O error, so that callers have one
/// error type for "could not learn about this task".
fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A file of the real `/proc`, whole: like [`fs::read`], without its `statx` to size
/// the buffer (procfs files report size 0), so one system call fewer a file.
pub fn read_proc_file(path: &Path) -> io::Result<Vec<u8>> {
    read_from(fs::File::open(path)?, false)
}

/// A procfs file that the kernel writes in one go (`single_open`: a task's `stat`,
/// `status`): a read that does not fill the buffer has it all, so the read that would
/// return 0 is saved too.
pub fn read_single(path: &Path) -> io::Result<Vec<u8>> {
    read_from(fs::File::open(path)?, true)
}

/// The text of a procfs file that the kernel writes in one go (`single_open`) and renders
/// anew at each read from offset 0, read with one `pread` at 0 from a descriptor kept
/// open. `None` when the text may be longer than `cap` bytes.
pub fn pread_whole(file: &fs::File, cap: usize) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; cap];
    let n = loop {
        match file.read_at(&mut buf, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n == cap {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some(buf))
}

/// The whole of a procfs file already open (the reads [`read_proc_file`] makes).
pub fn read_open(file: &fs::File) -> io::Result<Vec<u8>> {
    read_from(file, false)
}

/// [`read_open`] of a file procfs copies whole into one read ([`read_single`]).
pub fn read_open_single(file: &fs::File) -> io::Result<Vec<u8>> {
    read_from(file, true)
}

/// The whole of `file` from offset 0, read with `pread` (the file's position is left
/// alone): for a descriptor kept open and read again, since procfs and cgroupfs make a
/// file's text anew at each read from offset 0.
pub fn pread_all(file: &fs::File) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt as _;
    /// Reads of `file` at `pos` on.
    struct At<'a> {
        file: &'a fs::File,
        pos: u64,
    }
    impl std::io::Read for At<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.file.read_at(buf, self.pos)?;
            self.pos += n as u64;
            Ok(n)
        }
    }
    read_from(At { file, pos: 0 }, false)
}

fn read_from(mut file: impl std::io::Read, single: bool) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if buf.len() - len < 1024 {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let filled = n == buf.len() - len;
        len += n;
        if n == 0 || (single && !filled) {
            break;
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// The kernel's `pid_max` in the daemon's pid namespace: it hands out pids below it.
pub fn pid_max() -> io::Result<Pid> {
    let text = fs::read_to_string(proc_path("sys/kernel/pid_max"))?;
    text.trim().parse().map_err(invalid)
}

/// How many times [`read_task`] and [`list_tids`] were called: the daemon's statistics
/// show them, as the price of following a VPS's processes is mostly these reads.
static TASK_READS: AtomicU64 = AtomicU64::new(0);
static TASK_LISTS: AtomicU64 = AtomicU64::new(0);

/// The number of [`read_task`] calls so far, in this process.
pub fn task_reads() -> u64 {
    TASK_READS.load(Ordering::Relaxed)
}

/// The number of [`list_tids`] calls so far, in this process.
pub fn task_lists() -> u64 {
    TASK_LISTS.load(Ordering::Relaxed)
}

/// Reads `/proc/<tid>/stat` and `/proc/<tid>/status`.
pub fn read_task(tid: Pid) -> io::Result<TaskInfo> {
    TASK_READS.fetch_add(1, Ordering::Relaxed);
    let stat = read_single(&proc_path(&format!("{tid}/stat")))?;
    let status = read_single(&proc_path(&format!("{tid}/status")))?;
    task_info(&stat, &status)
}

/// Builds a [`TaskInfo`] from the text of a task's `stat` and `status`.
///
/// The two files are read one after the other, and a process may call `setpgid` or
/// `setsid` in between (a shell's child does so right after fork, just when the
/// connector reports it). So every id that is paired with its namespace numbers — pid,
/// ppid, pgid, sid against `NSpid`, `NSpgid`, `NSsid` — comes from `status` alone, one
/// read; `stat` gives only the start time and the state.
pub fn task_info(stat: &[u8], status: &[u8]) -> io::Result<TaskInfo> {
    let st = parse_stat(stat).map_err(invalid)?;
    let ss = parse_status(status).map_err(invalid)?;
    if ss.pid != st.pid {
        return Err(invalid("stat and status describe different tasks"));
    }
    // A task being reaped: its file still names it by the number it was opened for
    // (`Pid:`), but `release_task` is unhashing it from its numbers, and procfs prints
    // 0 for those it no longer has (its thread group, its `NS*` levels; seen: `NSpid`
    // all 0 with `Tgid` still there). Gone, as a read a moment later finds it; not a
    // task of thread group 0, nor one without a number in its namespace.
    if ss.tgid == 0 || ss.nspid.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(TaskInfo {
        tid: ss.pid,
        tgid: ss.tgid,
        ppid: ss.ppid,
        pgid: ss.nspgid.first().copied().unwrap_or(st.pgrp),
        sid: ss.nssid.first().copied().unwrap_or(st.session),
        start: st.starttime,
        state: st.state,
        nspid: ss.nspid,
        nspgid: ss.nspgid,
        nssid: ss.nssid,
    })
}

/// The start time of task `tid`, or an error if it is gone.
pub fn start_time(tid: Pid) -> io::Result<u64> {
    let stat = read_single(&proc_path(&format!("{tid}/stat")))?;
    Ok(parse_stat(&stat).map_err(invalid)?.starttime)
}

/// The start time and state letter of task `tid` (one read of its `stat`), or an error
/// if it is gone. A zombie (`Z`) has exited but is not reaped yet.
pub fn start_and_state(tid: Pid) -> io::Result<(u64, u8)> {
    let stat = read_single(&proc_path(&format!("{tid}/stat")))?;
    let st = parse_stat(&stat).map_err(invalid)?;
    Ok((st.starttime, st.state))
}

/// Whether task `tid` is an io_uring worker or SQ-poll thread (`PF_IO_WORKER` in its
/// `stat`); `None` if it is gone.
pub fn is_io_worker(tid: Pid) -> Option<bool> {
    let stat = read_single(&proc_path(&format!("{tid}/stat"))).ok()?;
    Some(parse_stat(&stat).ok()?.flags & crate::render::stat::PF_IO_WORKER != 0)
}

/// Parses a directory entry name as a pid: digits only, no sign, no leading zero.
pub fn parse_pid(name: &str) -> Option<Pid> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return None;
    }
    name.parse().ok().filter(|&p: &Pid| p > 0)
}

fn numeric_entries(dir: &Path) -> io::Result<Vec<Pid>> {
    Ok(fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(parse_pid))
        .collect())
}

/// The thread-group ids the real `/proc` lists, ascending.
pub fn list_tgids() -> io::Result<Vec<Pid>> {
    let mut tgids = numeric_entries(Path::new(PROC))?;
    tgids.sort_unstable();
    Ok(tgids)
}

/// The thread ids of thread group `tgid` in the kernel's order: the group's list of
/// threads (the leader, then each thread as it was made), which is how procfs lists
/// `task/` and counts positions in it (`first_tid`). Not by number: thread ids come
/// round past `pid_max`, so a later thread may have a smaller one.
pub fn list_tids(tgid: Pid) -> io::Result<Vec<Pid>> {
    TASK_LISTS.fetch_add(1, Ordering::Relaxed);
    numeric_entries(&proc_path(&format!("{tgid}/task")))
}

/// Whether the kernel keeps `pid_max` per pid namespace (Linux 6.14 on), where a new
/// namespace starts at the kernel's limit; before, it is one global value.
pub fn pid_max_per_namespace() -> bool {
    static PER_NS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PER_NS.get_or_init(|| {
        let release = fs::read_to_string(proc_path("sys/kernel/osrelease")).unwrap_or_default();
        let mut version = release
            .split(['.', '-'])
            .map(|n| n.trim().parse::<u32>().unwrap_or(0));
        (version.next().unwrap_or(0), version.next().unwrap_or(0)) >= (6, 14)
    })
}

/// Task `task`'s pid namespace and its parents (`NS_GET_PARENT`), innermost first,
/// `depth` of them at most (fewer where one cannot be had: the task gone, or the top
/// the daemon sees reached), each with its inode number.
pub fn pid_ns_chain(task: Pid, depth: usize) -> Vec<(fs::File, u64)> {
    match fs::File::open(proc_path(&format!("{task}/ns/pid"))) {
        Ok(ns) => pid_ns_chain_from(ns, depth),
        Err(_) => Vec::new(),
    }
}

/// [`pid_ns_chain`] from pid namespace `ns` (an open `ns/pid` or `ns/pid_for_children`).
pub fn pid_ns_chain_from(mut ns: fs::File, depth: usize) -> Vec<(fs::File, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut chain = Vec::new();
    while chain.len() < depth {
        let Ok(ino) = ns.metadata().map(|m| m.ino()) else {
            break;
        };
        let parent = match chain.len() + 1 < depth {
            true => crate::sys::creds::ns_parent(&ns).ok().flatten(),
            false => None,
        };
        chain.push((ns, ino));
        match parent {
            Some(p) => ns = p,
            None => break,
        }
    }
    chain
}

/// The inode of task `tid`'s pid namespace: two tasks are in the same namespace exactly
/// when these are equal.
pub fn pidns_inode(tid: Pid) -> io::Result<u64> {
    ns_inode(tid, "pid")
}

/// The inode number of namespace `ns` (`pid`, `user`, `net`…) of `task`: a task id, or
/// `"self"` for the daemon's own, which tells whether two tasks share it. Read from the
/// link's text (`user:[4026531837]`, the number nsfs gives the namespace's inode): a
/// `stat` through the link costs twice as much (the kernel opens the namespace's file).
pub fn ns_inode(task: impl std::fmt::Display, ns: &str) -> io::Result<u64> {
    let target = fs::read_link(proc_path(&format!("{task}/ns/{ns}")))?;
    ns_number(target.as_os_str().as_encoded_bytes())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a namespace link"))
}

/// The daemon's own namespace of type `ns` (`user`, `uts`, `ipc`, `net`, `cgroup`, `time`), read
/// once: `self` names the daemon's process, whose namespaces no thread changes (the
/// threads that enter a reader's are threads of their own). Every check of a reader's
/// namespaces against the daemon's asks for it.
pub fn own_ns_inode(ns: &str) -> io::Result<u64> {
    const KEPT: [&str; 6] = ["user", "uts", "ipc", "net", "cgroup", "time"];
    static OWN: std::sync::OnceLock<Vec<Option<u64>>> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| KEPT.iter().map(|n| ns_inode("self", n).ok()).collect());
    match KEPT.iter().position(|&n| n == ns).and_then(|i| own[i]) {
        Some(ino) => Ok(ino),
        None => ns_inode("self", ns),
    }
}

/// The number in a namespace link's text, `type:[number]`.
fn ns_number(text: &[u8]) -> Option<u64> {
    let open = text.iter().position(|&b| b == b'[')?;
    let inner = text[open + 1..].strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// Whether task `tid` has `gid` among its supplementary groups (`Groups:` in status).
pub fn in_group(tid: Pid, gid: u32) -> bool {
    if tid <= 0 {
        return false;
    }
    let Ok(status) = fs::read_to_string(proc_path(&format!("{tid}/status"))) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
}

/// Whether process group `pgid` still exists: `kill(-pgid, 0)` succeeds or is refused,
/// but does not answer `ESRCH`. A group outlives its leader while it has members.
pub fn process_group_exists(pgid: Pid) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Whether task `tid` has a signal to take, pending and neither blocked nor ignored (or
/// is gone): a reader waiting in a FUSE request cannot take it until the daemon answers,
/// and fuser does not pass the kernel's `FUSE_INTERRUPT` on.
pub fn signal_pending(tid: Pid) -> bool {
    match read_single(&proc_path(&format!("{tid}/status"))) {
        Ok(raw) => parse_status(&raw).is_ok_and(|s| s.deliverable_signals() != 0),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_has_no_signal_pending() {
        // This test's own thread has nothing pending.
        assert!(!signal_pending(nix::unistd::gettid().as_raw()));
    }

    #[test]
    fn a_namespace_is_named_by_the_inode_number_stat_gives() {
        assert_eq!(ns_number(b"user:[4026531837]"), Some(4026531837));
        assert_eq!(ns_number(b"pid:[1]x"), None);
        assert_eq!(ns_number(b"/dev/null"), None);
        let own = std::os::unix::fs::MetadataExt::ino(&fs::metadata("/proc/self/ns/user").unwrap());
        assert_eq!(ns_inode("self", "user").unwrap(), own);
        assert_eq!(own_ns_inode("user").unwrap(), own);
    }

    #[test]
    fn pid_names() {
        for (name, want) in [
            ("1", Some(1)),
            ("4194304", Some(4194304)),
            ("0", None),
            ("01", None),
            ("-1", None),
            ("+1", None),
            ("self", None),
            ("", None),
            ("99999999999", None),
            ("12a", None),
        ] {
            assert_eq!(parse_pid(name), want, "{name:?}");
        }
    }

    #[test]
    fn reads_own_task() {
        let me = std::process::id() as Pid;
        let info = read_task(me).expect("own task readable");
        assert_eq!(info.tid, me);
        assert_eq!(info.tgid, me);
        assert_eq!(info.start, start_time(me).unwrap());
        assert_eq!(*info.nspid.first().unwrap(), me);
        assert!(list_tgids().unwrap().contains(&me));
        assert!(list_tids(me).unwrap().contains(&me));
        assert!(process_group_exists(info.pgid));
    }

    /// A task read while its parent reaps it: procfs still prints the number its files
    /// were opened for as `Pid:` (and `stat`'s first field), and 0 for its thread group,
    /// its parent and every `NS*` level, the numbers `release_task` has unhashed. Seen
    /// under load as a member's child that the events named and a `wait` reaped at once:
    /// taken for a task of thread group 0, it was numbered nowhere, and `ns_last_pid`
    /// and `loadavg` named the child before it.
    #[test]
    fn a_task_read_while_it_is_reaped_is_gone() {
        let me = std::process::id() as Pid;
        let stat = read_single(&proc_path("self/stat")).unwrap();
        let status = String::from_utf8(read_single(&proc_path("self/status")).unwrap()).unwrap();
        // Zeroes for the thread group and parent and every `NS*` level (all unhashed),
        // or for `NSpid` only (seen while `Tgid` still showed).
        let zeroed = |keys: &[&str]| -> String {
            status
                .lines()
                .map(|l| match l.split_once(":\t") {
                    Some((k, v)) if keys.contains(&k) => {
                        format!("{k}:{}\n", "\t0".repeat(v.split('\t').count()))
                    }
                    _ => format!("{l}\n"),
                })
                .collect()
        };
        let all = zeroed(&["Tgid", "Ngid", "PPid", "NStgid", "NSpid", "NSpgid", "NSsid"]);
        assert!(all.contains(&format!("\nPid:\t{me}\n")), "{all}");
        assert!(
            task_info(&stat, status.as_bytes()).is_ok(),
            "alive, as read"
        );
        for text in [all, zeroed(&["NSpid"])] {
            let err = task_info(&stat, text.as_bytes()).expect_err("being reaped");
            assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{text}");
        }
    }
}
