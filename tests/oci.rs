//! `vprocfs oci-hook`: what an OCI runtime (runc, crun, podman) runs for a container,
//! driven here with the state JSON of a container made by `unshare`.

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn hook(sock: &std::path::Path, phase: &str, state: &str) -> (Option<i32>, String) {
    let mut child = Command::new(vprocfs())
        .args(["oci-hook", "--socket"])
        .arg(sock)
        .arg(phase)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hook");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(state.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How the container is handed over: the OCI hook with state JSON, or the LXC hook
/// script with LXC's environment.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Oci,
    Lxc,
}

fn lxc_hook(sock: &std::path::Path, phase: &str, init: i32) -> (Option<i32>, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/mount/lxc/vprocfs-lxc-hook");
    let out = Command::new(script)
        .env("VPROCFS", vprocfs())
        .env("VPROCFS_SOCKET", sock)
        .env("LXC_NAME", "c1")
        .env("LXC_PID", init.to_string())
        .env("LXC_HOOK_TYPE", phase)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_oci_hook_registers_a_container_and_covers_its_proc() {
    if privileged() {
        hand_over(Via::Oci);
    }
}

#[test]
fn the_lxc_hook_registers_a_container_and_covers_its_proc() {
    if privileged() {
        hand_over(Via::Lxc);
    }
}

fn hand_over(via: Via) {
    let tmp = TempDir::new("oci");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let d = dir.display();
    let script = format!(
        "until [ -e {d}/go ]; do sleep 0.02; done; \
         {{ ls /proc | grep -E '^[0-9]+$' | sort -n | head -1; cut -d' ' -f1,2 /proc/1/stat; }} > {d}/out.tmp; \
         mv {d}/out.tmp {d}/out; sleep 30"
    );
    let (_container, init) = container(&script, true);

    let sock = dir.join("ctl.sock");
    let _serve = serve(&mnt, &sock, &[]);

    let state = format!(
        r#"{{"ociVersion":"1.0.2","id":"c1","status":"created","pid":{init},"bundle":"/nonexistent"}}"#
    );
    let (code, err) = match via {
        Via::Oci => hook(&sock, "create", &state),
        Via::Lxc => lxc_hook(&sock, "start-host", init),
    };
    assert_eq!(code, Some(0), "{err}");
    fs::write(dir.join("go"), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || dir
        .join("out")
        .exists()));
    let seen = fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(
        seen, "1\n1 (sh)\n",
        "the container sees its own processes from 1"
    );

    assert!(ctl(&sock, &["list"]).1.contains(" c1 "));
    let (code, err) = match via {
        Via::Oci => hook(&sock, "delete", &state),
        Via::Lxc => lxc_hook(&sock, "post-stop", init),
    };
    assert_eq!(code, Some(0), "{err}");
    assert!(!ctl(&sock, &["list"]).1.contains(" c1 "));
    if via == Via::Lxc {
        assert_eq!(lxc_hook(&sock, "bogus", init).0, Some(1));
        return;
    }
    // A create whose view cannot be put in place fails, and leaves no VPS registered.
    let (code, err) = Command::new(vprocfs())
        .args(["oci-hook", "--socket"])
        .arg(&sock)
        .args(["--target", "/nonexistent-target", "create"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(|mut c| {
            c.stdin.take().unwrap().write_all(state.as_bytes()).unwrap();
            let out = c.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !ctl(&sock, &["list"]).1.contains(" c1 "),
        "left registered: {err}"
    );
    // A second delete (the runtime may retry) is fine; bad state is a one-line error.
    assert_eq!(hook(&sock, "delete", &state).0, Some(0));
    let (code, err) = hook(&sock, "create", "not json");
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("vprocfs: the container state on standard input is not OCI state JSON"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
