//! `serve --vps NAME:cgroup=PATH`: the VPS is a cgroup's processes, followed as
//! processes move in and out. The test makes its own cgroups under a test-only parent.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A cgroup v2 mount of this machine, from mountinfo.
fn v2_mount() -> Option<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            (right.starts_with("cgroup2 ") && f.get(3) == Some(&"/")).then(|| PathBuf::from(f[4]))
        })
}

/// A test-only cgroup tree, emptied and removed on drop (processes are moved back to the
/// hierarchy's root first).
struct CgroupGuard {
    root: PathBuf,
    top: PathBuf,
}

impl CgroupGuard {
    fn move_pid(&self, dir: &Path, pid: u32) {
        fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move into cgroup");
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let mut dirs = vec![
            self.top.join("box/inner"),
            self.top.join("box"),
            self.top.clone(),
        ];
        for d in &dirs {
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.lines() {
                    let _ = fs::write(self.root.join("cgroup.procs"), p);
                }
            }
        }
        for d in dirs.drain(..) {
            for _ in 0..50 {
                if fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn sleeper() -> ChildGuard {
    ChildGuard(Some(
        Command::new("sleep").arg("120").spawn().expect("sleep"),
    ))
}

#[test]
fn a_cgroup_vps_follows_processes_moving_in_and_out() {
    if !privileged() {
        return;
    }
    let Some(root) = v2_mount() else {
        panic!("no cgroup v2 hierarchy is mounted on this machine");
    };
    let tmp = TempDir::new("cgroup");
    let name = format!("vprocfs-test-{}", std::process::id());
    let top = root.join(&name);
    fs::create_dir_all(top.join("box/inner")).expect("make test cgroups");
    let cg = CgroupGuard {
        root: root.clone(),
        top: top.clone(),
    };
    let boxdir = top.join("box");

    // init (oldest) in box, one member in a child cgroup, one process outside.
    let init = sleeper();
    let deep = sleeper();
    let outside = sleeper();
    let pid = |g: &ChildGuard| g.0.as_ref().unwrap().id();
    cg.move_pid(&boxdir, pid(&init));
    cg.move_pid(&boxdir.join("inner"), pid(&deep));

    let mnt = tmp.subdir("mnt");
    let serve = Command::new(vprocfs())
        .arg("serve")
        .arg(&mnt)
        .arg("--ctl")
        .arg(tmp.0.join("ctl.sock"))
        .args(["--vps", &format!("c:cgroup=/{name}/box")])
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let _serve = ChildGuard(Some(serve));
    let _mount = MountGuard(mnt.clone());
    let mounted = || {
        fs::read_to_string("/proc/self/mounts")
            .map(|m| m.contains(&format!("{} fuse", mnt.display())))
            .unwrap_or(false)
    };
    assert!(wait_until(Duration::from_secs(10), mounted));

    // A reader moved into the box sees the box. It lists twice: before and after the
    // outsider moves in and the deep member moves out.
    let d = tmp.0.display();
    let m = mnt.display();
    let script = format!(
        "until [ -e {d}/go1 ]; do sleep 0.02; done; ls {m} | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' ' > {d}/one; \
         touch {d}/done1; until [ -e {d}/go2 ]; do sleep 0.02; done; \
         ls {m} | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' ' > {d}/two; touch {d}/done2; exec sleep 30"
    );
    let reader = ChildGuard(Some(
        Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("reader"),
    ));
    cg.move_pid(&boxdir, pid(&reader));
    // Another member loops over ps -ef through the view while processes move.
    let looper_script = format!(
        "n=0; bad=0; while [ ! -e {d}/done2 ]; do \
           ps -ef > /dev/null 2>{d}/ps-err || bad=$((bad+1)); [ -s {d}/ps-err ] && bad=$((bad+1)); n=$((n+1)); \
         done; echo runs=$n bad=$bad > {d}/loop"
    );
    let looper = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(format!("mount --bind {m} /proc && {looper_script}"))
        .spawn()
        .expect("looper");
    let looper_pid = looper.id();
    let _looper = ChildGuard(Some(looper));
    cg.move_pid(&boxdir, looper_pid);
    fs::write(tmp.0.join("go1"), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || tmp
        .0
        .join("done1")
        .exists()));
    let one = fs::read_to_string(tmp.0.join("one")).unwrap();

    cg.move_pid(&boxdir, pid(&outside));
    cg.move_pid(&root, pid(&deep));
    fs::write(tmp.0.join("go2"), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || tmp
        .0
        .join("done2")
        .exists()));
    let two = fs::read_to_string(tmp.0.join("two")).unwrap();

    // Linear numbering: init 1, members real + VPID_DIV, by default the smallest power of
    // two at or above pid_max. Phase one: init, deep, the reader and its pipeline. Phase
    // two: init, outside (moved in), the reader and its pipeline.
    let v = |g: &ChildGuard| (i64::from(pid(g)) + default_vpid_div()).to_string();
    let one: Vec<&str> = one.split_whitespace().collect();
    let two: Vec<&str> = two.split_whitespace().collect();
    assert_eq!(one[0], "1", "{one:?}");
    assert!(one.contains(&v(&deep).as_str()), "{one:?}");
    assert!(one.contains(&v(&reader).as_str()), "{one:?}");
    assert!(!one.contains(&v(&outside).as_str()), "{one:?}");
    assert!(two.contains(&v(&outside).as_str()), "moved in: {two:?}");
    assert!(!two.contains(&v(&deep).as_str()), "moved out: {two:?}");
    assert!(two.contains(&v(&reader).as_str()), "{two:?}");
    assert_eq!(two[0], "1", "{two:?}");
    assert!(wait_until(Duration::from_secs(10), || tmp
        .0
        .join("loop")
        .exists()));
    let looped = fs::read_to_string(tmp.0.join("loop")).unwrap();
    assert!(
        looped.ends_with("bad=0\n") && !looped.starts_with("runs=0 "),
        "{looped}"
    );

    // exec into the cgroup VPS: the command is moved into the cgroup and sees the VPS.
    let out = exec_in(
        &tmp.0.join("ctl.sock"),
        "c",
        &[
            "sh",
            "-c",
            "grep '^0::' /proc/self/cgroup; cut -d' ' -f1 /proc/1/stat",
        ],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text, format!("0::/{name}/box\n1\n"));
    drop((init, deep, outside, reader));
}
