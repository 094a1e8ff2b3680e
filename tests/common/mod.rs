//! Helpers for the integration tests: running commands in a VPS and in a kernel pid
//! namespace, comparing outputs, and cleaning up whatever a test started.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The built `vprocfs` binary.
pub fn vprocfs() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vprocfs"))
}

/// A test script shipped with the tests.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
}

/// Whether the tests can do what they need: root, /dev/fuse, unshare. Tests that need
/// them fail loudly where they are missing (CI runs as root), unless
/// `VPROCFS_SKIP_PRIVILEGED=1` says the machine cannot.
pub fn privileged() -> bool {
    if std::env::var_os("VPROCFS_SKIP_PRIVILEGED").is_some() {
        // Under CI a skipped test would pass without having run.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "VPROCFS_SKIP_PRIVILEGED is set under CI=true: the privileged tests must run there"
        );
        eprintln!("skipped: VPROCFS_SKIP_PRIVILEGED is set");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (set VPROCFS_SKIP_PRIVILEGED=1 to skip them)"
    );
    assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing");
    true
}

/// Runs `cmd` with a deadline; kills it (by pid) if it overruns.
pub fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let guard = ChildGuard(Some(child));
    wait_output(guard, limit)
}

/// Waits for the child `guard` holds, reading its output meanwhile: a child that
/// writes more than a pipe holds (64 KiB) waits for its reader, and would never end.
fn wait_output(mut guard: ChildGuard, limit: Duration) -> Output {
    let child = guard.0.as_mut().expect("child");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    loop {
        let child = guard.0.as_mut().expect("child");
        if let Some(status) = child.try_wait().expect("try_wait") {
            guard.0.take();
            return Output {
                status,
                stdout: stdout.join().expect("stdout reader"),
                stderr: stderr.join().expect("stderr reader"),
            };
        }
        if start.elapsed() > limit {
            panic!("command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills its child by pid when dropped, so a failing test leaves no process behind.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SIGTERM first, so that a daemon cleans up after itself (a supervisor
            // unmounts and removes its runtime directory); SIGKILL if it has not ended
            // within 3 s.
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Unmounts its path when dropped (lazily as a last resort), so that a failing test
/// leaves no mount behind.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let mounted = || {
            std::fs::read_to_string("/proc/self/mounts")
                .map(|m| m.lines().any(|l| l.split(' ').nth(1) == self.0.to_str()))
                .unwrap_or(false)
        };
        for _ in 0..50 {
            if !mounted() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if mounted() {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A temporary directory removed when dropped. Declare it before the guards of what
/// lives in it (mounts, processes), so that it goes last.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after `tag` and this test process.
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vprocfs-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// A directory `name` made inside, for a test to mount on (`mnt`).
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("subdirectory");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Whatever a test mounted inside is detached first (a daemon killed by its guard
        // leaves the mounts of its VPSes), deepest first, so that removing the tree never
        // walks into a file system.
        let below = format!("{}/", self.0.display());
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&below))
            .map(str::to_string)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `vprocfs run [flags] -- argv…`, stdout and stderr as text.
pub fn in_vps(flags: &[&str], argv: &[&str]) -> (String, String, i32) {
    let mut cmd = Command::new(vprocfs());
    cmd.arg("run").args(flags).arg("--").args(argv);
    let out = run_with_deadline(cmd, Duration::from_secs(120));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `vprocfs ARGS…` in namespaces `unshare` makes with `unshare_args` (a mount
/// namespace to change, a user namespace of its own), after the shell commands
/// `setup` have run there (`mount -t tmpfs none /sys`): how vprocfs fares where a
/// container puts it. Its whole output.
pub fn vprocfs_unshared(unshare_args: &[&str], setup: &str, args: &[&str]) -> Output {
    let script = format!("{setup}\nexec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(unshare_args)
        .args(["sh", "-ec", &script])
        .arg(vprocfs())
        .args(args);
    run_with_deadline(cmd, Duration::from_secs(120))
}

/// The same in a kernel pid namespace with its own procfs, and a time namespace of its
/// own as `vprocfs run` gives its VPS (`lsns` lists it; start times count from its
/// making): the oracle. Started with
/// a fresh signal state (tests/scripts/signal_state_exec.py), as `vprocfs run` starts
/// its CMD, whatever the test's own: a test run in the background of a shell without
/// job control has SIGINT and SIGQUIT ignored, which the oracle would pass on (and a
/// probe's `stat` show, in `sigignore` and `sigcatch`) and the VPS would not.
pub fn in_kernel_ns(argv: &[&str]) -> String {
    let state = script("signal_state_exec.py").display().to_string();
    in_kernel_ns_via(&["/usr/bin/python3", &state, "fresh"], argv)
}

/// [`in_kernel_ns`] with `unshare` started through `wrapper` (a command that execs its
/// arguments).
pub fn in_kernel_ns_via(wrapper: &[&str], argv: &[&str]) -> String {
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).args(["unshare", "--pid"]);
    // A kernel without time namespaces gives a VPS none either (src/placement).
    if Path::new("/proc/self/ns/time").exists() {
        cmd.arg("--time");
    }
    cmd.args(["--fork", "--mount-proc", "--"]).args(argv);
    let out = run_with_deadline(cmd, Duration::from_secs(120));
    assert!(out.status.success(), "unshare failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || "()[],|'{}-`+/:".contains(c))
        .filter(|t| !t.is_empty())
        .collect()
}

/// Checks that `view` equals `kernel` up to one bijection of numbers that maps 1 to 1
/// (and 0 to 0): the same lines, the same words, and numbers renamed consistently.
/// Returns the bijection.
pub fn assert_same_up_to_renaming(kernel: &str, view: &str) -> HashMap<i64, i64> {
    let k: Vec<&str> = kernel.lines().collect();
    let v: Vec<&str> = view.lines().collect();
    assert_eq!(
        k.len(),
        v.len(),
        "line counts differ\nkernel:\n{kernel}\nview:\n{view}"
    );
    let mut fwd: HashMap<i64, i64> = HashMap::from([(0, 0), (1, 1)]);
    let mut back: HashMap<i64, i64> = HashMap::from([(0, 0), (1, 1)]);
    for (kl, vl) in k.iter().zip(&v) {
        let (kt, vt) = (tokens(kl), tokens(vl));
        assert_eq!(
            kt.len(),
            vt.len(),
            "line differs:\n  kernel: {kl}\n  view:   {vl}"
        );
        for (a, b) in kt.iter().zip(&vt) {
            match (a.parse::<i64>(), b.parse::<i64>()) {
                (Ok(x), Ok(y)) => {
                    let f = *fwd.entry(x).or_insert(y);
                    let r = *back.entry(y).or_insert(x);
                    assert!(
                        f == y && r == x,
                        "numbers not renamed consistently ({x} -> {y}, but {x} -> {f} / {r} -> {y}):\n  kernel: {kl}\n  view:   {vl}"
                    );
                }
                _ => assert_eq!(a, b, "line differs:\n  kernel: {kl}\n  view:   {vl}"),
            }
        }
    }
    fwd
}

/// Lines of `s` without those starting with any of `prefixes`.
pub fn without(s: &str, prefixes: &[&str]) -> String {
    s.lines()
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Real pids of all processes the host's /proc lists.
pub fn host_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Polls `f` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Whether a FUSE file system is mounted at `p`.
pub fn mounted(p: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == p.to_str() && l.contains("fuse"))
        })
        .unwrap_or(false)
}

/// Real pids of the children of `pid`.
pub fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A container made by `unshare --pid --fork [--mount] --kill-child sh -c SCRIPT`: its
/// guard (killing unshare kills the container) and the real pid of its init.
pub fn container(script: &str, mount_ns: bool) -> (ChildGuard, i32) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"]);
    if mount_ns {
        cmd.arg("--mount");
    }
    let child = cmd
        .args(["sh", "-c", script])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a container");
    let unshare = child.id();
    let guard = ChildGuard(Some(child));
    assert!(wait_until(Duration::from_secs(5), || !children_of(unshare).is_empty()));
    (guard, children_of(unshare)[0])
}

/// `vprocfs serve MNT --ctl SOCK ARGS…`, returned once it is mounted and listening.
/// Dropping the pair stops the daemon first, then makes sure the mount is gone.
pub fn serve(mnt: &Path, sock: &Path, args: &[String]) -> (ChildGuard, MountGuard) {
    // The daemon's log, at `info`, beside the socket: what a failing test shows
    // ([`daemon_log`]).
    let log = std::fs::File::create(sock.with_extension("log")).expect("daemon log");
    let child = Command::new(vprocfs())
        .arg("serve")
        .arg(mnt)
        .arg("--ctl")
        .arg(sock)
        .args(args)
        .env("RUST_LOG", "info,fuser=error")
        .stderr(log)
        .spawn()
        .expect("spawn serve");
    let pair = (ChildGuard(Some(child)), MountGuard(mnt.to_path_buf()));
    assert!(
        wait_until(Duration::from_secs(10), || mounted(mnt) && sock.exists()),
        "the view is mounted and the control socket listens"
    );
    pair
}

/// The figure `key` (`read`, `lookup`, `memfd_kb`…) of the statistics line of the
/// daemon on control socket `sock` (`vprocfs ctl stats`).
pub fn daemon_stat(sock: &Path, key: &str) -> u64 {
    let (_, out, _) = ctl(sock, &["stats"]);
    let prefix = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out:?}"))
}

/// The last lines of the log of the daemon [`serve`] started with control socket `sock`.
pub fn daemon_log(sock: &Path) -> String {
    let text = std::fs::read_to_string(sock.with_extension("log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("daemon log (last 40 lines):\n{tail}")
}

/// `vprocfs attach --pid PID MNT`: the served mount put in place for the container of
/// process `pid`; panics when it fails.
pub fn attach(pid: i32, mnt: &Path) {
    let out = Command::new(vprocfs())
        .args(["attach", "--pid", &pid.to_string()])
        .arg(mnt)
        .output()
        .expect("run vprocfs attach");
    assert!(out.status.success(), "attach: {out:?}");
}

/// `vprocfs exec --socket SOCK VPS -- ARGV…`: a command run inside a served VPS, to
/// spawn or run as the test needs.
pub fn exec_in(sock: &Path, vps: &str, argv: &[&str]) -> Command {
    let mut cmd = Command::new(vprocfs());
    cmd.args(["exec", "--socket"])
        .arg(sock)
        .arg(vps)
        .arg("--")
        .args(argv);
    cmd
}

/// Runs `argv` in a VPS made with `flags` (`vprocfs run`), which must succeed, and
/// checks that its output is `kernel`'s, byte for byte; a difference is reported as
/// the lines apart, not as two long outputs whole.
pub fn assert_view_matches(flags: &[&str], argv: &[&str], kernel: &str) {
    let (view, err, code) = in_vps(flags, argv);
    assert_eq!(code, 0, "{flags:?}: stderr: {err}");
    if view != kernel {
        let apart: Vec<String> = kernel
            .lines()
            .zip(view.lines())
            .enumerate()
            .filter(|(_, (k, v))| k != v)
            .take(20)
            .map(|(i, (k, v))| format!("line {}:\n  kernel: {k}\n  view:   {v}", i + 1))
            .collect();
        panic!(
            "{flags:?}: the view differs from the kernel ({} lines against {}):\n{}\nstderr of the view: {err}",
            kernel.lines().count(),
            view.lines().count(),
            apart.join("\n")
        );
    }
}

/// `vprocfs ctl --socket SOCK ARGS…`: exit code, standard output, standard error.
pub fn ctl(sock: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(vprocfs())
        .arg("ctl")
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("run vprocfs ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits up to `limit` for `child` to end; kills it (by its pid) when it does not.
pub fn run_child_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends the control socket an `enter` request for `pid` into `vps`; the answer line.
pub fn enter(sock: &Path, vps: &str, pid: u32) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    conn.write_all(format!("{{\"cmd\":\"enter\",\"vps\":\"{vps}\",\"pid\":{pid}}}\n").as_bytes())
        .expect("send");
    let mut answer = String::new();
    BufReader::new(conn).read_line(&mut answer).expect("answer");
    answer
}

/// Kills its processes by pid (SIGKILL) when dropped: the children a test's shell
/// started, which would outlive the shell's own guard.
pub struct PidsGuard(pub Vec<i32>);

impl Drop for PidsGuard {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The host's `pid_max`: every real pid is below it.
pub fn host_pid_max() -> i64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("a number")
}

/// `VPID_DIV` of a VPS without a pid namespace and without `--vpid-bit`: the smallest
/// power of two at or above the host's `pid_max` (so that no vpid is a real pid).
pub fn default_vpid_div() -> i64 {
    let pid_max = host_pid_max();
    (1..=24)
        .map(|b| 1i64 << b)
        .find(|&d| d >= pid_max)
        .expect("pid_max is at most 2^22")
}
