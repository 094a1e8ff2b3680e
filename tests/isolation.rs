//! Isolation for an unprivileged reader inside a VPS: it must not read through the view
//! what the kernel's own procfs refuses it. Each probe runs as uid 65534 (`setpriv`)
//! against the view and against the kernel's procfs of the same pid namespace, and the
//! outcomes (success, or which errno) must be the same.
//!
//! The targets, all in the reader's VPS: a root process (init), a process of another
//! unprivileged user (uid 65533), a process of the reader's own uid, one of its own uid
//! that made itself non-dumpable (`PR_SET_DUMPABLE` 0, so procfs owns its files as root
//! and refuses ptrace-mode access), and the reader's own process. procfs guards some
//! files with its mode bits and others with a ptrace-mode check
//! (`PTRACE_MODE_READ_FSCREDS`, `…_ATTACH_FSCREDS`): `maps` and `fdinfo/` are world
//! readable, the targets of `exe`, `cwd`, `root` and `ns/*` are not, `stat` is readable
//! with its memory and kernel-state fields zeroed. `hidepid` is out of scope.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const PY: &str = "/usr/bin/python3";

/// The unprivileged reader.
const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

/// The probe, run as the unprivileged reader: `probe.py PROC [KPROC] label=pid…`. For
/// each target it tries every guarded entry and prints `label entry outcome`, the
/// outcome being `ok`, `ok:<what was shown>` or `<phase>:<errno>`. Opening and reading
/// are one phase (`refused`): procfs refuses some files at open and others at the first
/// read (`stack`, `io`), and the view at open. With KPROC (the kernel's procfs of the same
/// namespace, mounted inside the VPS) it instead compares the files both show byte for
/// byte and prints `label file same` or the fields that differ.
const PROBE: &str = r#"
import errno, os, re, sys

def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))

def rd(p):
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError as e:
        return "refused:" + name(e)
    try:
        return os.read(fd, 1 << 16)
    except OSError as e:
        return "refused:" + name(e)
    finally:
        os.close(fd)

def read(p):
    r = rd(p)
    return r if isinstance(r, str) else "ok"

def opened(p):
    try:
        os.close(os.open(p, os.O_RDONLY))
        return "ok"
    except OSError as e:
        return "refused:" + name(e)

def listed(p):
    try:
        os.listdir(p)
        return "ok"
    except OSError as e:
        return "list:" + name(e)

def link(p):
    try:
        os.readlink(p)
        return "ok"
    except OSError as e:
        return "readlink:" + name(e)

def looked_up(p):
    try:
        os.lstat(p)
        return "ok"
    except OSError as e:
        return "lookup:" + name(e)

def wchan(p):
    r = rd(p)
    if isinstance(r, str):
        return r
    return "ok:" + ("0" if r.strip() in (b"", b"0") else "symbol")

# stat fields (1-based) procfs shows only to a reader that may ptrace-read the process:
# startcode, endcode, startstack, kstkesp, kstkeip, wchan, start_data … env_end, exit_code.
SENSITIVE = [26, 27, 28, 29, 30, 35, 45, 46, 47, 48, 49, 50, 51, 52]

def fields(b):
    return b[b.rindex(b")") + 2:].split()

def stat(p):
    r = rd(p)
    if isinstance(r, str):
        return r
    f = fields(r)
    cls = lambda v: v.decode() if v in (b"0", b"1") else "n"
    return "ok:" + ",".join("%d=%s" % (i, cls(f[i - 3])) for i in SENSITIVE)

def outcomes(proc, label, pid):
    d = "%s/%s" % (proc, pid)
    t = "task/%s/" % pid
    probes = [
        ("environ", read), ("mem", opened), ("maps", read), ("smaps", read),
        ("smaps_rollup", read), ("numa_maps", read), ("pagemap", opened),
        ("stack", read), ("syscall", read), ("auxv", read), ("io", read),
        ("personality", read), ("status", read), ("cmdline", read),
        ("wchan", wchan), ("stat", stat), (t + "stat", stat),
        ("fdinfo/0", read), (t + "fdinfo/0", read), ("fd/0", link),
        ("fd", listed), ("fdinfo", listed), ("map_files", listed), ("ns", listed),
        ("task", listed), ("exe", link), ("cwd", link), ("root", link),
        ("ns/pid", link), ("ns/mnt", link), (t + "environ", read), (t + "maps", read),
        (t + "exe", link), (t + "fd", listed), (t + "fdinfo", listed),
        ("fdinfo/0 ", looked_up), ("fdinfo/1 ", looked_up), ("map_files/x", looked_up),
    ]
    for rel, f in probes:
        print("%s %s %s" % (label, rel.replace(pid, label), f("%s/%s" % (d, rel.strip()))))

# Fields of the reader's own stat that move between two reads: utime, stime, the cpu.
MOVING = {14, 15, 39}

def compare(proc, kproc, label, pid):
    own = pid == str(os.getpid())
    for rel in ["stat", "task/%s/stat" % pid, "wchan", "status"]:
        if own and rel == "status":
            continue  # its memory counters move between the two reads
        v, k = rd("%s/%s/%s" % (proc, pid, rel)), rd("%s/%s/%s" % (kproc, pid, rel))
        if rel == "status":
            # SigQ counts the signals queued to every process of the user, host-wide
            # (the kernel's own too): a host forking fast moves it between two reads.
            v, k = (re.sub(rb"\nSigQ:[^\n]*", b"", t) if isinstance(t, bytes) else t
                    for t in (v, k))
        what = "%s %s" % (label, rel.replace(pid, label))
        if v == k:
            print(what, "same")
        elif "stat" in rel and not isinstance(v, str) and not isinstance(k, str):
            fv, fk = fields(v), fields(k)
            diff = [i + 3 for i in range(max(len(fv), len(fk)))
                    if (fv[i:i + 1] != fk[i:i + 1]) and not (own and i + 3 in MOVING)]
            head = v[:v.rindex(b")") + 1] == k[:k.rindex(b")") + 1]
            print(what, "same" if not diff and head and len(fv) == len(fk)
                  else "differs in fields %s:\n  view   %r\n  kernel %r" % (diff, v, k))
        else:
            print(what, "differs:\n  view   %r\n  kernel %r" % (v, k))

args = sys.argv[1:]
proc = args.pop(0)
kproc = args.pop(0) if not "=" in args[0] else None
for arg in args:
    label, pid = arg.split("=")
    if pid == "self":
        pid = str(os.getpid())
    if kproc:
        compare(proc, kproc, label, pid)
    else:
        outcomes(proc, label, pid)
"#;

/// Starts the targets in the VPS (or kernel namespace) it runs in, as its init, then
/// runs the probe as the unprivileged reader with `$PROBE_ARGS` before the targets.
/// With `$KPROC` set, first mounts the kernel's procfs of the namespace there (in the
/// VPS's private mount namespace, gone with it).
fn setup_script() -> String {
    format!(
        r#"
set -e
wait_until() {{ n=0; until eval "$1"; do sleep 0.01; n=$((n+1)); [ $n -lt 1000 ] || {{ echo "timeout: $1"; exit 1; }}; done; }}
{AS_NOBODY} sleep 100 </dev/null & same=$!
setpriv --reuid=65533 --regid=65533 --clear-groups sleep 100 </dev/null & other=$!
{AS_NOBODY} {PY} -c 'import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); time.sleep(100)' </dev/null & nodump=$!
trap 'kill $same $other $nodump 2>/dev/null' EXIT
wait_until '[ "$(cat /proc/$same/comm)" = sleep ] && [ "$(cat /proc/$other/comm)" = sleep ]'
# Not dumpable: procfs owns its files (not its world-readable directory) as root.
# After the exec of python: setpriv is not dumpable either for a moment (its uid
# change), and the exec makes the process dumpable again until its prctl.
wait_until '[ "$(cat /proc/$nodump/comm)" = python3 ] && [ "$(stat -c %u /proc/$nodump/environ)" = 0 ]'
if [ -n "$KPROC" ]; then mount -t proc proc "$KPROC"; fi
{AS_NOBODY} {PY} -c "$PROBE" $PROBE_ARGS root=1 other=$other same=$same nodump=$nodump self=self </dev/null
"#
    )
}

fn env_args(extra: &[(&str, &str)]) -> Vec<String> {
    let mut v = vec!["env".to_string(), format!("PROBE={PROBE}")];
    v.extend(extra.iter().map(|(k, val)| format!("{k}={val}")));
    v.extend(["sh".into(), "-c".into(), setup_script()]);
    v
}

#[test]
fn an_unprivileged_reader_is_refused_exactly_what_the_kernel_refuses() {
    if !privileged() {
        return;
    }
    let argv = env_args(&[("PROBE_ARGS", "/proc")]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let kernel = in_kernel_ns(&argv);
    let (view, err, code) = in_vps(&["--full-view"], &argv);
    assert_eq!(code, 0, "stderr: {err}\n{view}");
    // The oracle says what the test is about: each kind of guard was met.
    for want in [
        // mode bits: 0400 and 0500 entries of another user
        "root environ refused:EACCES",
        "other environ refused:EACCES",
        "other fd list:EACCES",
        "root mem refused:EACCES",
        // ptrace-mode checks on world-readable entries and on links
        "root maps refused:EACCES",
        "other maps refused:EACCES",
        "other fdinfo list:EACCES",
        "other fdinfo/0 refused:EACCES",
        "root exe readlink:EACCES",
        "other cwd readlink:EACCES",
        "other ns/pid readlink:EACCES",
        "other task/other/exe readlink:EACCES",
        "other wchan ok:0",
        "other stat ok:26=1,27=1,28=0,29=0,30=0,35=0,45=0,46=0,47=0,48=0,49=0,50=0,51=0,52=0",
        // the same uid, not dumpable: refused though its mode bits would allow
        "nodump maps refused:EACCES",
        "nodump exe readlink:EACCES",
        "nodump stat ok:26=1,27=1,28=0,29=0,30=0,35=0,45=0,46=0,47=0,48=0,49=0,50=0,51=0,52=0",
        // the same uid, dumpable, and the reader itself: allowed
        "same environ ok",
        "same maps ok",
        "same exe ok",
        "same fdinfo/0 ok",
        "self environ ok",
        "self maps ok",
        "self fd ok",
        "self syscall ok",
        "self exe ok",
        // CAP_SYS_ADMIN only, whoever owns the process
        "self stack refused:EACCES",
        // the reader's own stat: running, so no wchan
        "self wchan ok:0",
    ] {
        assert!(
            kernel.lines().any(|l| l == want),
            "kernel: {want}\n{kernel}"
        );
    }
    assert_eq!(kernel.lines().count(), 5 * 38, "{kernel}");
    let differ: Vec<String> = kernel
        .lines()
        .zip(view.lines())
        .filter(|(k, v)| k != v)
        .map(|(k, v)| format!("  kernel: {k}\n  view:   {v}"))
        .collect();
    assert!(
        differ.is_empty() && kernel.lines().count() == view.lines().count(),
        "the view differs from the kernel:\n{}",
        differ.join("\n")
    );
}

#[test]
fn an_unprivileged_reader_reads_the_same_bytes_as_from_the_kernel() {
    if !privileged() {
        return;
    }
    // The kernel's procfs of the VPS's own pid namespace, mounted inside the VPS: the
    // same processes, read at the same moment through both.
    let tmp = TempDir::new("iso-kproc");
    let kproc = tmp.subdir("kproc");
    let k = kproc.display().to_string();
    let args = format!("/proc {k}");
    let argv = env_args(&[("PROBE_ARGS", &args), ("KPROC", &k)]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (view, err, code) = in_vps(&["--full-view"], &argv);
    assert_eq!(code, 0, "stderr: {err}\n{view}");
    assert_eq!(
        view.lines().filter(|l| l.ends_with(" same")).count(),
        5 * 4 - 1,
        "every file compared was the same:\n{view}"
    );
    assert!(!mounted(&kproc), "the kernel's procfs stayed in the VPS");
}

/// Kills a process that no [`ChildGuard`] owns (a grandchild) by its pid when dropped.
struct KillPid(i32);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// `vprocfs exec --socket SOCK VPS -- sh -c SCRIPT`: status and standard output.
fn exec(sock: &Path, vps: &str, script: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = exec_in(sock, vps, &["sh", "-c", script]);
    cmd.envs(env.iter().copied());
    let out = run_with_deadline(cmd, Duration::from_secs(30));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Run as the unprivileged reader: `reach.py PROC label=number…` tries every way to
/// reach each number (lookup, open, readlink, listing, as a process and as a thread)
/// and prints `label way outcome` for each way that does not answer ENOENT.
const REACH: &str = r#"
import errno, os, sys
proc = sys.argv[1]
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return name(e)
def opened(p):
    os.close(os.open(p, os.O_RDONLY))
listing = os.listdir(proc)
threads = os.listdir(proc + "/1/task")
for arg in sys.argv[2:]:
    label, n = arg.split("=")
    if n == "self":
        n = str(os.getpid())
    ways = {
        "lookup": lambda: os.lstat("%s/%s" % (proc, n)),
        "stat": lambda: opened("%s/%s/stat" % (proc, n)),
        "status": lambda: opened("%s/%s/status" % (proc, n)),
        "environ": lambda: opened("%s/%s/environ" % (proc, n)),
        "exe": lambda: os.readlink("%s/%s/exe" % (proc, n)),
        "task": lambda: os.listdir("%s/%s/task" % (proc, n)),
        "fd": lambda: os.listdir("%s/%s/fd" % (proc, n)),
        "thread": lambda: os.lstat("%s/%s/task/%s" % (proc, n, n)),
        "thread-of-init": lambda: os.lstat("%s/1/task/%s" % (proc, n)),
        "thread-stat": lambda: opened("%s/1/task/%s/stat" % (proc, n)),
    }
    for way, f in ways.items():
        r = attempt(f)
        if r != "ENOENT":
            print(label, way, r)
    if n in listing:
        print(label, "listed")
    if n in threads:
        print(label, "listed-as-thread-of-init")
"#;

#[test]
fn an_unprivileged_reader_cannot_reach_any_number_outside_its_vps() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("iso-serve");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    let kproc = dir.join("kproc");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&kproc).unwrap();
    // VPS t: a tree rooted at a shell with a child. VPS n: a kernel pid namespace whose
    // init has a child. A host process that is in neither.
    let tree = Command::new("sh")
        .args(["-c", "sleep 100 & wait"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn t");
    let t_init = tree.id() as i32;
    let _tree = ChildGuard(Some(tree));
    let (_ns, n_init) = container("sleep 100 & wait", false);
    let host = Command::new("sleep").arg("100").spawn().expect("sleep");
    let host_pid = host.id() as i32;
    let _host = ChildGuard(Some(host));
    assert!(wait_until(Duration::from_secs(5), || {
        children_of(t_init as u32).len() == 1 && children_of(n_init as u32).len() == 1
    }));
    let t_child = children_of(t_init as u32)[0];
    let _t_child = KillPid(t_child);
    let n_child = children_of(n_init as u32)[0];
    let sock = dir.join("ctl.sock");
    let (serve_guard, _mount) = serve(
        &mnt,
        &sock,
        &[
            "--vps".into(),
            format!("t:tree={t_init}"),
            "--vps".into(),
            format!("n:pidns={n_init}"),
        ],
    );
    let serve_pid = serve_guard.0.as_ref().unwrap().id();
    let me = std::process::id();
    // Real numbers no reader of either VPS may reach, and small numbers that are no
    // vpid of n (its init is 1, its child 2, the reader a few more).
    let outside = format!(
        "host={host_pid} test={me} daemon={serve_pid} t_init={t_init} t_child={t_child} \
         n_init={n_init} n_child={n_child}"
    );
    let script = format!(
        "mount -t proc proc {k} && {AS_NOBODY} {PY} -c \"$REACH\" {k} $TARGETS; \
         echo '--- view'; {AS_NOBODY} {PY} -c \"$REACH\" /proc $TARGETS",
        k = kproc.display()
    );
    // In the pid namespace: the kernel's procfs of that namespace is the oracle, probed
    // first, in the same process (its mount namespace, private, goes with it).
    // (n's child, vpid 2, is left out: a VPS added after another misses the members it
    // already had, see `members_of_a_vps_added_after_another_are_all_visible`.)
    let targets = format!("{outside} init=1 self=self v40=40 v999=999 v4194303=4194303");
    let (code, out) = exec(
        &sock,
        "n",
        &script,
        &[("REACH", REACH), ("TARGETS", &targets)],
    );
    assert_eq!(code, Some(0), "{out}");
    let (kernel, view) = out.split_once("--- view\n").expect("both probes ran");
    assert!(
        kernel.contains("init lookup ok") && kernel.contains("self environ ok"),
        "{out}"
    );
    assert!(kernel.contains("init exe EACCES"), "init is root's: {out}");
    assert_eq!(view, kernel, "view (after) vs kernel (before):\n{out}");

    // A tree VPS has no pid namespace, hence no oracle: nothing but its own members'
    // vpids resolves, and the reader's own real pid (the documented exception).
    let targets = format!("{outside} init=1 self=self");
    let script = format!("{AS_NOBODY} {PY} -c \"$REACH\" /proc $TARGETS");
    let (code, out) = exec(
        &sock,
        "t",
        &script,
        &[("REACH", REACH), ("TARGETS", &targets)],
    );
    assert_eq!(code, Some(0), "{out}");
    let reached: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("init ") && !l.starts_with("self "))
        .collect();
    assert!(reached.is_empty(), "reached from VPS t: {reached:?}\n{out}");
    assert!(
        out.contains("init lookup ok") && out.contains("self environ ok"),
        "{out}"
    );
    assert!(out.contains("init environ EACCES"), "init is root's: {out}");
    assert!(out.contains("self lookup ok"), "its own real pid: {out}");
}

#[test]
fn members_of_a_vps_added_after_another_are_all_visible() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("iso-order");
    let mnt = tmp.subdir("mnt");
    let tree = Command::new("sleep").arg("100").spawn().expect("sleep");
    let t_init = tree.id();
    let _tree = ChildGuard(Some(tree));
    let (_ns, n_init) = container("sleep 100 & wait", false);
    assert!(wait_until(Duration::from_secs(5), || children_of(
        n_init as u32
    )
    .len()
        == 1));
    let sock = tmp.0.join("ctl.sock");
    let _served = serve(
        &mnt,
        &sock,
        &[
            "--vps".into(),
            format!("t:tree={t_init}"),
            "--vps".into(),
            format!("n:pidns={n_init}"),
        ],
    );
    // n's init (1) and its child (2) were there before the daemon started.
    let (code, out) = exec(&sock, "n", "cut -d' ' -f1-4 /proc/1/stat /proc/2/stat", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "1 (sh) S 0\n2 (sleep) S 1\n");
}
