//! `vprocfs serve`: one mount, two VPSes and the host, each reader its own view.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn mounted(p: &Path) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == p.to_str() && l.contains("fuse"))
        })
        .unwrap_or(false)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A VPS member script: waits for `go`, then reads the mount into `out`.
fn reader_script(mnt: &Path, dir: &Path, name: &str) -> String {
    let (m, d) = (mnt.display(), dir.display());
    format!(
        "until [ -e {d}/go ]; do sleep 0.02; done; \
         {{ ls {m} | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; \
            cut -d' ' -f1,4 {m}/1/stat; readlink {m}/self; \
            for p in $(cat {d}/forbidden_{name}); do test -e {m}/$p && echo visible $p; done; }} > {d}/{name}.tmp; \
         mv {d}/{name}.tmp {d}/{name}; sleep 30"
    )
}

fn children_of(pid: u32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
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

    // Real pids that no VPS reader may reach: the other VPS's, the host's.
    let forbidden = format!(
        "{a_pid} {b_init} {b_unshare} {} {serve_pid}",
        std::process::id()
    );
    fs::write(dir.join("forbidden"), forbidden).unwrap();
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

    // a: init is 1, the other members are real pid + 1024 (linear), nothing else.
    let lines_a: Vec<&str> = out_a.lines().collect();
    let pids_a: Vec<i64> = lines_a[0]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(pids_a[0], 1, "{out_a}");
    assert!(pids_a[1..].iter().all(|&p| p > 1024), "{out_a}");
    assert!(!pids_a.contains(&i64::from(std::process::id())), "{out_a}");
    assert_eq!(lines_a[1], "1 0", "{out_a}");
    let self_a: i64 = lines_a[2].parse().unwrap();
    assert!(self_a > 1024, "the reader is a linear vpid: {out_a}");

    // b: the namespace's own numbers: init 1 and the reader.
    let lines_b: Vec<&str> = out_b.lines().collect();
    let pids_b: Vec<i64> = lines_b[0]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(pids_b[0], 1, "{out_b}");
    assert!(
        pids_b.iter().all(|&p| p < 50),
        "namespace numbers are small: {out_b}"
    );
    assert_eq!(lines_b[1], "1 0", "{out_b}");

    // The host sees the real /proc, its own pid included.
    let host: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(host.contains(&std::process::id().to_string()));
    assert!(host.contains(&a_pid.to_string()));

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
    }
}
