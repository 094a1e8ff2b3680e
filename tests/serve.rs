//! `vprocfs serve`: one mount, two VPSes and the host, each reader its own view.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A VPS member script: waits for `go`, then reads the mount into `out`.
fn reader_script(mnt: &Path, dir: &Path, name: &str) -> String {
    let (m, d) = (mnt.display(), dir.display());
    format!(
        "until [ -e {d}/go ]; do sleep 0.02; done; \
         {{ ls {m} | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
            cut -d' ' -f1,4 {m}/1/stat; readlink {m}/self; \
            test -s {d}/forbidden_{name} || echo visible-list-missing; for p in $(cat {d}/forbidden_{name}); do test -e {m}/$p && echo visible $p; done; }} > {d}/{name}.tmp; \
         mv {d}/{name}.tmp {d}/{name}; exec sleep 30"
    )
}

/// A sleeping host process, killed when dropped.
fn sleeper_pid() -> (u32, ChildGuard) {
    let c = Command::new("sleep").arg("60").spawn().expect("sleep");
    (c.id(), ChildGuard(Some(c)))
}

#[test]
fn each_reader_sees_its_own_vps() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();

    // VPS a: a tree rooted at a shell. VPS b: a kernel pid namespace.
    let a = Command::new("sh")
        .args(["-c", &reader_script(&mnt, &dir, "a")])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a");
    let a = ChildGuard(Some(a));
    let b = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            &reader_script(&mnt, &dir, "b"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn b");
    let b_unshare = b.id();
    let b = ChildGuard(Some(b));
    assert!(wait_until(Duration::from_secs(5), || !children_of(
        b_unshare
    )
    .is_empty()));
    let b_init = children_of(b_unshare)[0];
    let a_pid = a.0.as_ref().unwrap().id();

    let serve = Command::new(vprocfs())
        .arg("serve")
        .arg(&mnt)
        .arg("--ctl")
        .arg(dir.join("ctl.sock"))
        .args(["--vps", &format!("a:tree={a_pid}")])
        .args(["--vps", &format!("b:pidns={b_init}")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let serve_pid = serve.id();
    let mut serve = ChildGuard(Some(serve));
    let _mount = MountGuard(mnt.clone());
    assert!(
        wait_until(Duration::from_secs(10), || mounted(&mnt)),
        "the view is mounted"
    );

    // Real pids that no VPS reader may reach: the other VPS's, the host's. (Without a
    // pid namespace a reader may open its own process by its real pid: a's init reads.)
    let host = format!("{b_unshare} {} {serve_pid}", std::process::id());
    fs::write(dir.join("forbidden_a"), format!("{b_init} {host}")).unwrap();
    fs::write(dir.join("forbidden_b"), format!("{a_pid} {host}")).unwrap();
    fs::write(dir.join("go"), "").unwrap();
    assert!(wait_until(Duration::from_secs(20), || dir
        .join("a")
        .exists()
        && dir.join("b").exists()));
    let out_a = fs::read_to_string(dir.join("a")).unwrap();
    let out_b = fs::read_to_string(dir.join("b")).unwrap();
    assert!(
        !out_a.contains("visible"),
        "VPS a reaches no real pid: {out_a}"
    );
    assert!(
        !out_b.contains("visible"),
        "VPS b reaches no real pid: {out_b}"
    );

    // a: init is 1, the other members are real pid + VPID_DIV (linear, by default above
    // pid_max, so that no vpid is a real pid), nothing else.
    let lines_a: Vec<&str> = out_a.lines().collect();
    let pids_a: Vec<i64> = lines_a[0]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(pids_a[0], 1, "{out_a}");
    assert!(pids_a[1..].iter().all(|&p| p > host_pid_max()), "{out_a}");
    assert!(!pids_a.contains(&i64::from(std::process::id())), "{out_a}");
    assert_eq!(lines_a[1], "1 0", "{out_a}");
    let self_a: i64 = lines_a[2].parse().unwrap();
    assert!(
        self_a > host_pid_max(),
        "the reader is a linear vpid: {out_a}"
    );

    // b: the namespace's own numbers: init 1 and the reader.
    let lines_b: Vec<&str> = out_b.lines().collect();
    let pids_b: Vec<i64> = lines_b[0]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(pids_b[0], 1, "{out_b}");
    // The namespace's own numbers: its waiting loop forks a few hundred sleeps at most.
    assert!(
        pids_b.iter().all(|&p| p < 10_000 && p != i64::from(b_init)),
        "namespace numbers: {out_b}"
    );
    assert_eq!(lines_b[1], "1 0", "{out_b}");

    // The host sees the real /proc, its own pid included.
    let host: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(host.contains(&std::process::id().to_string()));
    assert!(host.contains(&a_pid.to_string()));

    // The control socket: root-only, lists both VPSes, refuses bad input and stays up.
    let sock = dir.join("ctl.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let ctl = |args: &[&str]| {
        let out = Command::new(vprocfs())
            .arg("ctl")
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, list, _) = ctl(&["list"]);
    assert_eq!(code, Some(0));
    assert!(list.contains(" a ") && list.contains(" b "), "{list}");
    let (_, maps, _) = ctl(&["mappings", "a"]);
    assert!(
        maps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [a_pid.to_string(), "1".to_string()]),
        "{maps}"
    );
    // Hostile lines on a raw connection: each refused with one line, nothing changes.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let mut lines = BufReader::new(conn.try_clone().unwrap());
        for bad in [
            "garbage",
            "{}",
            r#"{"cmd":"alloc","vps":"a","pid":-5,"vpid":0}"#,
            r#"{"cmd":"remove","vps":"nosuch"}"#,
        ] {
            conn.write_all(format!("{bad}\n").as_bytes()).unwrap();
            let mut answer = String::new();
            lines.read_line(&mut answer).unwrap();
            assert!(
                answer.starts_with(r#"{"ok":false,"error":"#),
                "{bad}: {answer}"
            );
        }
        let huge = "x".repeat(70_000);
        conn.write_all(format!("{huge}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        lines.read_line(&mut answer).unwrap();
        assert!(answer.contains("longer than"), "{answer}");
    }
    // The restore path: a number gets the vpid asked for; a taken vpid is EEXIST.
    let spare = sleeper_pid();
    let (code, _, err) = ctl(&[
        "alloc",
        "--vps",
        "a",
        "--pid",
        &spare.0.to_string(),
        "--vpid",
        "777",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (_, maps, _) = ctl(&["mappings", "a"]);
    assert!(
        maps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [spare.0.to_string(), "777".to_string()]),
        "{maps}"
    );
    let (code, _, err) = ctl(&[
        "alloc",
        "--vps",
        "a",
        "--pid",
        &b_init.to_string(),
        "--vpid",
        "777",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "vprocfs: vpid 777 is already in use in this VPS"
    );
    // A pid the kernel cannot hand out is refused, and no mapping is made.
    let pid_max = host_pid_max().to_string();
    let (code, _, err) = ctl(&["alloc", "--vps", "a", "--pid", &pid_max, "--vpid", "778"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("pid {pid_max} is not below the kernel's pid_max")),
        "{err}"
    );
    // No line has vpid 778 (its second column: a real pid may well start with 778).
    let mappings = ctl(&["mappings", "a"]).1;
    assert!(
        !mappings
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("778")),
        "{mappings}"
    );
    let (_, list, _) = ctl(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.contains(" a ") && l.contains("sparse")),
        "{list}"
    );
    // Add and remove a VPS while serving.
    let (code, _, err) = ctl(&["add", &format!("c:tree={}", spare.0)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(ctl(&["list"]).1.contains(" c "));
    assert_eq!(ctl(&["remove", "c"]).0, Some(0));
    assert!(!ctl(&["list"]).1.contains(" c "));
    let (_, stats, _) = ctl(&["stats"]);
    assert!(stats.starts_with("requests lookup="), "{stats}");
    assert!(
        stats.contains(" translations=") && stats.contains(" classify_hits="),
        "{stats}"
    );
    drop(spare);

    // SIGTERM unmounts and exits cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut child = serve.0.take().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM");
    assert!(!mounted(&mnt), "unmounted");
    assert!(!sock.exists(), "the control socket is removed");
    drop((a, b));
}

#[test]
fn bad_command_lines_get_one_line_errors() {
    for args in [
        &["serve", "/nonexistent", "--vps", "nocolon"][..],
        &["run"][..],
        &["run", "--vpid-bit", "99", "--", "true"][..],
        &["frobnicate"][..],
    ] {
        let out = Command::new(vprocfs()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    if nix::unistd::geteuid().is_root() {
        let out = Command::new(vprocfs())
            .args(["serve", "/nonexistent-dir", "--vps", "a:tree=999999999"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("vprocfs: --vps a:"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // A pidns VPS of a process of vprocfs's own namespace: said so, with the
        // source that fits (it read "has no init process left").
        let me = std::process::id();
        let out = Command::new(vprocfs())
            .args([
                "serve",
                "/nonexistent-dir",
                "--vps",
                &format!("b:pidns={me}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("own pid namespace") && err.contains(&format!("tree={me}")),
            "{err}"
        );
    }
}

/// A standard error whose reader has gone (a closed pipe, a supervisor's log that went
/// away) costs vprocfs its messages, not its VPS: `--no-pidns` warns at start, and that
/// warning panicked (`eprintln!` on `EPIPE`) before the command ran.
#[test]
fn a_broken_stderr_does_not_stop_the_vps() {
    if !privileged() {
        return;
    }
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let out = Command::new(vprocfs())
        .args(["run", "--no-pidns", "--", "sh", "-c", "echo ran"])
        .stderr(Stdio::from(w))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
}

/// A `/dev/fuse` that is not the FUSE device (a container given another node under
/// that name) is named as such, with what to do; the mount's bare `EINVAL` said
/// nothing, and `run` hid even that behind "the VPS could not be started (status 1)".
#[test]
fn a_dev_fuse_that_is_not_the_fuse_device_is_named() {
    if !privileged() {
        return;
    }
    let out = vprocfs_unshared(
        &["--mount", "--propagation", "private"],
        "mount --bind /dev/null /dev/fuse",
        &["run", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "vprocfs: /dev/fuse is not the FUSE device (character device 10:229; here 1:3): \
         recreate it with `mknod /dev/fuse c 10 229`, or give the container the host's\n"
    );
}

#[test]
fn exec_runs_a_command_inside_a_served_vps() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("exec");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let tree_init = Command::new("sleep").arg("60").spawn().expect("sleep");
    let tree_pid = tree_init.id();
    let _tree = ChildGuard(Some(tree_init));
    let ns = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let ns_unshare = ns.id();
    let _ns = ChildGuard(Some(ns));
    assert!(wait_until(Duration::from_secs(5), || !children_of(
        ns_unshare
    )
    .is_empty()));
    let ns_init = children_of(ns_unshare)[0];
    let sock = dir.join("ctl.sock");
    let serve = Command::new(vprocfs())
        .arg("serve")
        .arg(&mnt)
        .arg("--ctl")
        .arg(&sock)
        .args(["--vps", &format!("t:tree={tree_pid}")])
        .args(["--vps", &format!("n:pidns={ns_init}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let _serve = ChildGuard(Some(serve));
    let _mount = MountGuard(mnt.clone());
    assert!(wait_until(Duration::from_secs(10), || mounted(&mnt) && sock.exists()));

    let exec = |vps: &str, script: &str| {
        let out = exec_in(&sock, vps, &["sh", "-c", script]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let probe = "readlink /proc/self; ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; cut -d' ' -f1 /proc/1/stat";
    // A tree VPS: the entered process is a member (linear vpid), init is 1.
    let (code, out, err) = exec("t", probe);
    assert_eq!(code, Some(0), "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert!(l[0].parse::<u32>().unwrap() > 1024, "{out}");
    assert_eq!(&l[1..], ["1", "1"], "{out}");
    // A pid-namespace VPS: the command runs in the namespace, numbered by it.
    let (code, out, err) = exec("n", probe);
    assert_eq!(code, Some(0), "{err}");
    let l: Vec<&str> = out.lines().collect();
    let own: u32 = l[0].parse().unwrap();
    assert!(own > 1 && own < 1000, "{out}");
    assert_eq!(&l[1..], ["1", "1"], "{out}");
    // The status is the command's; an unknown VPS is a one-line error.
    assert_eq!(exec("n", "exit 4").0, Some(4));
    let (code, _, err) = exec("nosuch", "true");
    assert_eq!(code, Some(1));
    assert_eq!(err.trim(), "vprocfs: no VPS named \"nosuch\"");
}

#[test]
fn a_config_file_is_reloaded_on_sighup() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("config");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let (one, _g1) = sleeper_pid();
    let (two, _g2) = sleeper_pid();
    let conf = dir.join("vpses.conf");
    fs::write(&conf, format!("# the VPSes\none:tree={one}\n")).unwrap();
    let sock = dir.join("ctl.sock");
    let serve = Command::new(vprocfs())
        .arg("serve")
        .arg(&mnt)
        .arg("--ctl")
        .arg(&sock)
        .arg("--config")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let serve_pid = serve.id() as i32;
    let _serve = ChildGuard(Some(serve));
    let _mount = MountGuard(mnt.clone());
    assert!(wait_until(Duration::from_secs(10), || mounted(&mnt) && sock.exists()));
    let list = || {
        let out = Command::new(vprocfs())
            .args(["ctl", "--socket"])
            .arg(&sock)
            .arg("list")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(list().contains(" one "));
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(serve_pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    // A broken file changes nothing and the daemon keeps serving.
    fs::write(&conf, "one:tree=\n").unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(list().contains(" one "), "{}", list());
    // one goes, two comes.
    fs::write(&conf, format!("two:tree={two}  # added\n")).unwrap();
    hup();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let l = list();
            l.contains(" two ") && !l.contains(" one ")
        }),
        "{}",
        list()
    );
    assert!(mounted(&mnt), "still serving after reloads");
}

#[test]
fn a_restarted_daemon_gives_every_surviving_process_its_vpid() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("restart");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let sock = dir.join("ctl.sock");
    let state = dir.join("state.json");
    // A tree VPS with dense numbering (vpids no rule recomputes) and a process that
    // enters it with a requested vpid (the restore path).
    let init = Command::new("sh")
        .args(["-c", "sleep 60 & sleep 60 & sleep 60 & wait"])
        .spawn()
        .expect("init");
    let init_pid = init.id();
    let _init = ChildGuard(Some(init));
    std::thread::sleep(Duration::from_millis(200));
    // Dropped before the shell's guard: the shell then reaps them.
    let _sleepers = PidsGuard(children_of(init_pid));
    let (entered, _entered) = sleeper_pid();
    let args = |_: ()| -> Vec<String> {
        vec![
            "--vps".into(),
            format!("t:tree={init_pid}"),
            "--numbering".into(),
            "ns".into(),
            "--state".into(),
            state.display().to_string(),
        ]
    };
    let (daemon, mount) = serve(&mnt, &sock, &args(()));
    let (code, _, err) = ctl(
        &sock,
        &[
            "alloc",
            "--vps",
            "t",
            "--pid",
            &entered.to_string(),
            "--vpid",
            "777",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let answer = enter(&sock, "t", entered);
    assert!(answer.starts_with(r#"{"ok":true"#), "{answer}");
    let before = ctl(&sock, &["mappings", "t"]).1;
    let members_before = ctl(&sock, &["list"]).1;
    assert!(before.contains(&format!("{entered}      777")), "{before}");
    let vpids: Vec<&str> = before.lines().skip(1).collect();
    assert!(
        vpids.len() >= 5,
        "init, three sleepers, the entered one: {before}"
    );
    std::thread::sleep(Duration::from_millis(2500)); // the periodic save

    // kill -9: the mount is dead; a new daemon takes the state back.
    let mut daemon = daemon;
    let mut child = daemon.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = Command::new("umount").arg("-l").arg(&mnt).status();
    drop(mount);
    let _ = fs::remove_file(&sock);
    fs::create_dir_all(&mnt).unwrap();
    let (_daemon2, _mount2) = serve(&mnt, &sock, &args(()));
    let after = ctl(&sock, &["mappings", "t"]).1;
    assert_eq!(after, before, "every vpid survived the restart");
    let list = ctl(&sock, &["list"]).1;
    assert!(list.contains("sparse"), "{list}");
    assert_eq!(
        list, members_before,
        "the same members, the entered one included"
    );
}

/// A pid-namespace VPS outlives its namespace (until `ctl remove`); nsfs gives a freed
/// namespace's inode number to the next namespace made, so a container started after
/// the VPS's had ended was taken for it, its processes made that VPS's members. The
/// daemon holds the namespace while the VPS is.
#[test]
fn a_namespace_made_after_a_vps_ends_is_not_taken_for_it() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("nsreuse");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let sock = dir.join("ctl.sock");
    let container = || {
        let c = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "sleep", "60"])
            .spawn()
            .expect("unshare");
        let pid = c.id();
        let guard = ChildGuard(Some(c));
        assert!(wait_until(Duration::from_secs(5), || !children_of(pid).is_empty()));
        (children_of(pid)[0], guard)
    };
    let (old_init, mut old) = container();
    let (_daemon, _mount) = serve(&mnt, &sock, &[format!("--vps=old:pidns={old_init}")]);
    let members = ctl(&sock, &["mappings", "old"]).1;
    assert!(members.contains(&format!("{old_init} ")), "{members}");

    // The container ends; its namespace is freed (deferred) once nothing holds it.
    let mut child = old.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !Path::new(&format!(
        "/proc/{old_init}"
    ))
    .exists()));
    std::thread::sleep(Duration::from_millis(500));
    let (new_init, _new) = container();
    std::thread::sleep(Duration::from_millis(300)); // the fork event's classification
    let members = ctl(&sock, &["mappings", "old"]).1;
    let pid = new_init.to_string();
    assert!(
        !members
            .lines()
            .any(|l| l.split_whitespace().next() == Some(pid.as_str())),
        "a later container's init is not the ended VPS's member: {members}"
    );
}

/// Reads `path` `n` times, each by a new `cat` (a new path walk).
fn cat_times(path: &Path, n: usize) {
    for _ in 0..n {
        let out = Command::new("cat").arg(path).output().expect("cat");
        assert!(out.status.success(), "cat {}: {out:?}", path.display());
    }
}

/// A tree VPS `t` whose init is `sh -c SCRIPT`, once it has its children, served by a
/// daemon (`serve`, shared mount `mnt` and control socket `sock` in `tmp`) that gives it
/// a mount of its own, `own`. Fields drop in order: the shared mount, the daemon, the
/// VPS's processes (the shell, then its children, by pid), then the guard of `own`, so
/// that a failing test leaves nothing.
struct OwnMount {
    _mount: MountGuard,
    daemon: ChildGuard,
    _vps: ChildGuard,
    /// The shell's children, which its end would leave running.
    _children: PidsGuard,
    _own: MountGuard,
    init: u32,
    mnt: std::path::PathBuf,
    sock: std::path::PathBuf,
    own: std::path::PathBuf,
}

impl OwnMount {
    fn serve(tmp: &TempDir, script: &str, children: usize) -> OwnMount {
        let (mnt, sock, own) = (
            tmp.0.join("mnt"),
            tmp.0.join("ctl.sock"),
            tmp.0.join("vps/t"),
        );
        fs::create_dir_all(&mnt).unwrap();
        let own_guard = MountGuard(own.clone());
        let vps = Command::new("sh")
            .args(["-c", script])
            .spawn()
            .expect("spawn t");
        let init = vps.id();
        let vps = ChildGuard(Some(vps));
        assert!(wait_until(Duration::from_secs(10), || children_of(init)
            .len()
            == children));
        let children = PidsGuard(children_of(init));
        let (daemon, mount) = serve(&mnt, &sock, &["--vps".into(), format!("t:tree={init}")]);
        assert!(
            wait_until(Duration::from_secs(10), || mounted(&own)),
            "VPS t gets a mount of its own beside the control socket"
        );
        OwnMount {
            _mount: mount,
            daemon,
            _vps: vps,
            _children: children,
            _own: own_guard,
            init,
            mnt,
            sock,
            own,
        }
    }
}

#[test]
fn each_vps_gets_a_mount_of_its_own_where_the_kernel_caches() {
    if !privileged() {
        return;
    }
    // Dropped after the daemon (declared before it): a failing test leaves no mount.
    let tmp = TempDir::new("serve-own-mount");
    let _other_guard = MountGuard(tmp.0.join("vps").join("u"));
    // VPS t: a shell that waits for its child, then sleeps on.
    let mut t = OwnMount::serve(&tmp, "sleep 60 & wait; exec sleep 60", 1);
    let (t_init, sock, mnt, own, dir) = (
        t.init,
        t.sock.clone(),
        t.mnt.clone(),
        t.own.clone(),
        tmp.0.clone(),
    );
    let t_child = children_of(t_init)[0];
    let (u_pid, _u) = sleeper_pid();
    let (_, list, _) = ctl(&sock, &["list"]);
    assert!(
        list.contains(own.to_str().unwrap()),
        "ctl list names it: {list}"
    );

    // Whoever reads it sees VPS t, numbered from 1, and nothing of the host.
    let stat = fs::read_to_string(own.join("1/stat")).unwrap();
    assert!(stat.starts_with("1 ("), "{stat}");
    let numbers = |m: &Path| -> Vec<i64> {
        let mut v: Vec<i64> = fs::read_dir(m)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        v.sort();
        v
    };
    let listed = numbers(&own);
    assert_eq!(listed.len(), 2, "init and its child: {listed:?}");
    assert_eq!(listed[0], 1);
    assert!(!listed.contains(&i64::from(std::process::id())));
    // The shared mount shows this reader (in no VPS) the host.
    assert!(numbers(&mnt).contains(&i64::from(std::process::id())));

    // The kernel keeps the names of the VPS's mount; the shared mount's are asked for
    // at every walk (differential: the same reads through each).
    let before = daemon_stat(&sock, "lookup");
    cat_times(&own.join("1/stat"), 10);
    let through_own = daemon_stat(&sock, "lookup") - before;
    let before = daemon_stat(&sock, "lookup");
    cat_times(&mnt.join(format!("{t_init}/stat")), 10);
    let through_shared = daemon_stat(&sock, "lookup") - before;
    assert!(
        through_own <= 2 && through_shared >= 10,
        "lookups for 10 reads: {through_own} through the VPS's mount, {through_shared} through the shared one"
    );

    // A member that exits is gone from the cached mount at once after its reaping.
    let v_child = listed[1];
    assert!(own.join(v_child.to_string()).exists());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t_child),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{t_child}"
        ))
        .exists()),
        "the child is reaped"
    );
    assert!(
        wait_until(Duration::from_secs(2), || !own
            .join(v_child.to_string())
            .exists()),
        "a reaped member's directory goes from the cached mount"
    );

    // A VPS added at run time gets one, and loses it when removed.
    let (code, out, err) = ctl(&sock, &["add", &format!("u:tree={u_pid}")]);
    assert_eq!(code, Some(0), "{out} {err}");
    let other = dir.join("vps").join("u");
    assert!(out.contains(other.to_str().unwrap()), "{out}");
    assert!(mounted(&other));
    assert!(fs::read_to_string(other.join("1/stat"))
        .unwrap()
        .starts_with("1 (sleep)"));
    let (code, out, err) = ctl(&sock, &["remove", "u"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(!mounted(&other) && !other.exists(), "removed with its VPS");

    // The mount outlives its worker: the supervisor holds it and the next worker
    // takes it over.
    let supervisor = t.daemon.0.as_ref().unwrap().id();
    let worker = children_of(supervisor)[0];
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(wait_until(Duration::from_secs(10), || children_of(
        supervisor
    )
    .first()
    .is_some_and(|&w| w != worker)));
    let stat = fs::read_to_string(own.join("1/stat")).unwrap();
    assert!(stat.starts_with("1 ("), "after the takeover: {stat}");

    // Stopping the daemon unmounts it and removes its directory.
    let mut child = t.daemon.0.take().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = run_child_with_deadline(&mut child, Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(!mounted(&own) && !own.exists(), "gone with the daemon");
}

/// Two daemons whose VPS mounts would go in the same directory: the second does not
/// mount over the first's (it serves its VPS through its shared mount), and stopping it
/// leaves the first's in place.
#[test]
fn a_second_daemon_leaves_the_first_ones_vps_mount_alone() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve-two");
    let dir = tmp.0.clone();
    let (m1, m2) = (dir.join("m1"), dir.join("m2"));
    fs::create_dir_all(&m1).unwrap();
    fs::create_dir_all(&m2).unwrap();
    let own = dir.join("vps").join("t");
    let _own_guard = MountGuard(own.clone());
    let (pid, _sleeper) = sleeper_pid();
    let vps = ["--vps".to_string(), format!("t:tree={pid}")];
    let (a_sock, b_sock) = (dir.join("a.sock"), dir.join("b.sock"));
    let _a = serve(&m1, &a_sock, &vps);
    assert!(wait_until(Duration::from_secs(10), || mounted(&own)));
    let mounts_at = |p: &Path| {
        fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(1) == p.to_str())
            .count()
    };
    {
        let _b = serve(&m2, &b_sock, &vps);
        // The second daemon has made its VPSes' mounts (or refused to) once it lists
        // its VPS with a mount column.
        let listed = || ctl(&b_sock, &["list"]).1;
        assert!(wait_until(Duration::from_secs(10), || listed()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("t"))));
        std::thread::sleep(Duration::from_millis(300));
        let list = listed();
        assert!(
            !list.contains(own.to_str().unwrap()),
            "the second daemon claims the first's mount: {list}"
        );
        assert_eq!(mounts_at(&own), 1, "nothing was mounted over it");
    }
    assert_eq!(mounts_at(&own), 1, "the first's mount stays");
    assert!(fs::read_to_string(own.join("1/stat"))
        .unwrap()
        .starts_with("1 (sleep)"));
}

/// Opens and reads the first 64 KiB of every regular file of every process directory
/// below `mnt` (`pagemap` reads on for 256 GiB), and answers how many it read.
fn read_every_file(mnt: &Path) -> usize {
    use std::io::Read as _;
    let mut read = 0;
    for dir in fs::read_dir(mnt).unwrap().flatten() {
        let name = dir.file_name();
        if name.to_str().is_none_or(|n| n.parse::<u32>().is_err()) {
            continue;
        }
        for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let mut buf = vec![0u8; 64 << 10];
            if f.file_type().is_ok_and(|t| t.is_file())
                && fs::File::open(f.path()).is_ok_and(|mut file| file.read(&mut buf).is_ok())
            {
                read += 1;
            }
        }
    }
    read
}

/// The memfds behind passthrough files are counted in the statistics (`memfd_kb`),
/// and those no reader holds open stay within their budget (16 MiB) however many files
/// are read: here every file of 120 processes, twice. More files than the budget holds
/// are read, so the second pass finds some no longer kept for their text: it rewrites
/// spares (memfds let go by other inodes) rather than make new memfds for all of them.
#[test]
fn the_memory_of_snapshots_is_counted_and_bounded() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve-memfds");
    let t = OwnMount::serve(&tmp, "for i in $(seq 119); do sleep 60 & done; wait", 119);
    let (sock, own) = (&t.sock, &t.own);
    assert_eq!(daemon_stat(sock, "memfd_kb"), 0, "no file opened yet");

    let first = read_every_file(own);
    assert!(first > 120 * 20, "{first} files read");
    let after_first = daemon_stat(sock, "memfd_kb");
    let made = daemon_stat(sock, "memfds_made");
    let second = read_every_file(own);
    let after_second = daemon_stat(sock, "memfd_kb");
    let made = daemon_stat(sock, "memfds_made") - made;
    let rewritten = daemon_stat(sock, "memfds_rewritten");
    assert!(
        rewritten > 0,
        "no spare rewritten; {made} memfds made in the second pass"
    );
    // Every file is closed: what is held is idle, a page or more per file kept.
    for kb in [after_first, after_second] {
        assert!(
            (1024..=16 * 1024).contains(&kb),
            "{kb} kB held after reading {first} + {second} files"
        );
    }
}

/// A reader outside every VPS reads the shared mount's `/proc` in several `getdents64`
/// calls while its own children are reaped and forked between them, as it reads the
/// host's `/proc`: procfs goes on from the number where a call ended, with the processes
/// there are then (the view listed the first call's processes to the end, the reaped
/// ones too, and none forked since).
#[test]
fn a_host_reader_of_the_shared_mount_reads_proc_in_several_calls_as_procfs() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve-host-listing");
    let mnt = tmp.subdir("mnt");
    let (_daemon, _mount) = serve(&mnt, &tmp.0.join("ctl.sock"), &[]);
    let churn = |root: &Path| {
        let mut cmd = Command::new("python3");
        cmd.arg(script("listing_churn.py")).arg(root);
        let out = run_with_deadline(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{root:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let kernel = churn(Path::new("/proc"));
    assert!(
        kernel.contains("reaped before the later calls, listed 0\n")
            && kernel.contains("forked before the later calls, listed 5 of 5\n"),
        "the host's procfs: {kernel}"
    );
    assert_eq!(churn(&mnt), kernel);
}

/// A host reader of the shared mount in a user namespace of its own (`unshare -Ur`) is
/// shown ids in its namespace, as procfs shows them: a uid it does not map as the
/// overflow uid in `status`, the lower ids of an id map and `loginuid` in its
/// numbering. The daemon showed the kernel's.
#[test]
fn a_host_reader_in_a_user_namespace_is_shown_ids_in_it() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve-host-userns");
    let mnt = tmp.subdir("mnt");
    let (_daemon, _mount) = serve(&mnt, &tmp.0.join("ctl.sock"), &[]);
    let sleeper = Command::new("setpriv")
        .args([
            "--reuid",
            "1000",
            "--regid",
            "1000",
            "--clear-groups",
            "sleep",
            "60",
        ])
        .spawn()
        .expect("setpriv");
    let pid = sleeper.id();
    let _sleeper = ChildGuard(Some(sleeper));
    assert!(wait_until(Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("Uid:\t1000"))
    }));
    let read = |root: &Path| {
        let script = format!(
            "grep -E '^(Uid|Gid):' {r}/{pid}/status; cat {r}/{pid}/uid_map {r}/{pid}/gid_map; \
             cat {r}/{pid}/loginuid; echo; grep -E '^(Uid|Gid):' {r}/self/status",
            r = root.display()
        );
        let out = Command::new("unshare")
            .args(["-Ur", "sh", "-c", &script])
            .output()
            .expect("unshare");
        assert!(out.status.success(), "{root:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let kernel = read(Path::new("/proc"));
    assert!(
        kernel.contains("Uid:\t65534\t65534"),
        "the host's procfs: {kernel}"
    );
    assert_eq!(read(&mnt), kernel);
}

/// A container in a time namespace of its own (`unshare --time --boottime 5000`, a
/// restored checkpoint) reads the shared mount on its own clock, as it reads procfs:
/// `uptime`, `btime` and its start time moved together by the offset. The view showed
/// the host's uptime and start times.
#[test]
fn a_container_in_a_time_namespace_reads_its_own_clock() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("serve-timens");
    let dir = tmp.0.clone();
    let mnt = tmp.subdir("mnt");
    let sock = dir.join("ctl.sock");
    // The container's shell reads each file once from procfs and once from the view,
    // with its builtin `read` (no fork: the start time is its own).
    let script = format!(
        "until [ -e {d}/go ]; do sleep 0.05; done; M={m}
         read line < /proc/self/stat; set -- $line; k=${{22}}
         read line < $M/self/stat; set -- $line; v=${{22}}
         read ku rest < /proc/uptime; read vu rest < $M/uptime
         kb=$(grep '^btime' /proc/stat); vb=$(grep '^btime' $M/stat)
         echo \"${{ku%.*}} $k $kb\" > {d}/kernel.tmp; echo \"${{vu%.*}} $v $vb\" > {d}/view.tmp
         mv {d}/kernel.tmp {d}/kernel; mv {d}/view.tmp {d}/view",
        d = dir.display(),
        m = mnt.display()
    );
    let c = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--time",
            "--boottime",
            "5000",
            "--kill-child",
        ])
        .args(["sh", "-c", &script])
        .spawn()
        .expect("unshare");
    let unshare = c.id();
    let _c = ChildGuard(Some(c));
    assert!(wait_until(Duration::from_secs(5), || !children_of(unshare).is_empty()));
    let init = children_of(unshare)[0];
    let (_daemon, _mount) = serve(&mnt, &sock, &[format!("--vps=c:pidns={init}")]);
    fs::write(dir.join("go"), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir
        .join("view")
        .exists()));
    let kernel = fs::read_to_string(dir.join("kernel")).unwrap();
    let view = fs::read_to_string(dir.join("view")).unwrap();
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let up: f64 = kernel.split(' ').next().unwrap().parse().unwrap();
    assert!(
        up >= host_up + 4990.0,
        "the kernel moved the clock: {kernel} (host {host_up})"
    );
    // The same start time and boot time; uptimes read a moment apart, within a second.
    let fields = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
    let (k, v) = (fields(&kernel), fields(&view));
    assert_eq!(
        (k.len(), &k[1..]),
        (4, &v[1..]),
        "kernel {kernel:?}, view {view:?}"
    );
    let (ku, vu): (i64, i64) = (k[0].parse().unwrap(), v[0].parse().unwrap());
    assert!(
        (0..=1).contains(&(vu - ku)),
        "kernel {kernel:?}, view {view:?}"
    );
}
