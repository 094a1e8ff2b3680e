//! `vprocfs attach`: a served view put over `/proc` of a running container, and a
//! process that joins the container later with `nsenter`.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn attach_puts_the_view_over_a_running_containers_proc() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("attach");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let d = dir.display();
    // A container: its own pid and mount namespaces; it reads /proc once told to.
    let script = format!(
        "until [ -e {d}/go ]; do sleep 0.02; done; \
         {{ ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; readlink /proc/self; \
            cut -d' ' -f1,2,4 /proc/1/stat; }} > {d}/out.tmp; mv {d}/out.tmp {d}/out; sleep 30"
    );
    let (_container, init) = container(&script, true);

    let _serve = serve(
        &mnt,
        &dir.join("ctl.sock"),
        &["--vps".into(), format!("c:pidns={init}")],
    );

    attach(init, &mnt);
    // The host's own /proc is untouched.
    let host_mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        host_mounts
            .lines()
            .any(|l| l.starts_with("proc /proc proc")),
        "{host_mounts}"
    );

    fs::write(dir.join("go"), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir
        .join("out")
        .exists()));
    let seen = fs::read_to_string(dir.join("out")).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let pids: Vec<i64> = lines[0]
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1, "{seen}");
    assert!(
        pids.iter().all(|&p| p < 1000),
        "namespace numbers only: {seen}"
    );
    assert!(!pids.contains(&i64::from(std::process::id())), "{seen}");
    assert_eq!(lines[2], "1 (sh) 0", "{seen}");

    // A process that joins later (nsenter) is a member too, seen by its own number.
    let joined = Command::new("nsenter")
        .args(["-t", &init.to_string(), "-p", "-m", "--", "sh", "-c"])
        .arg("readlink /proc/self; cut -d' ' -f1,2 /proc/1/stat; test -e /proc/1/task/1 && echo task-ok")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&joined.stdout);
    let jl: Vec<&str> = text.lines().collect();
    assert_eq!(jl.len(), 3, "{joined:?}");
    let own: i64 = jl[0].parse().expect("its own vpid");
    assert!(own > 1 && own < 1000, "{text}");
    assert_eq!(jl[1], "1 (sh)");
    assert_eq!(jl[2], "task-ok");
}

/// A directory that is not a vprocfs mount, or a process that is not there, is refused
/// with a line that says so, before anything is mounted: a mistaken mount point would
/// otherwise have gone over the container's `/proc`.
#[test]
fn attach_refuses_what_is_not_a_view_or_not_a_process() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("attach-bad");
    let (_container, init) = container("sleep 30", true);
    let mounts_before = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    let out = Command::new(vprocfs())
        .args(["attach", "--pid", &init.to_string()])
        .arg(&tmp.0)
        .output()
        .expect("vprocfs attach");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a vprocfs mount"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let mounts_after = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    assert_eq!(mounts_before, mounts_after, "nothing was mounted");

    // A pid no process has (pid_max is at most 2^22).
    let out = Command::new(vprocfs())
        .args(["attach", "--pid", "99999999"])
        .arg(&tmp.0)
        .output()
        .expect("vprocfs attach");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("there is no process 99999999"), "{err}");
}
