//! Issue 15: readers loop over /proc while processes die and their pids are reused, and no
//! read ever shows another process's data under a number (tests/scripts/race_readers.py
//! says what is read and checked).
//!
//! The probe runs first as the init of a kernel pid namespace: the kernel's own procfs is
//! the oracle, and its run shows that the probe does what it means to (numbers were
//! handed out again while the readers ran, reads were checked, reads were made through
//! directories held across a death and a reuse) and finds nothing to report. Then it
//! runs as the init of a VPS, in each way of having the full view, and must print the
//! same verdict with the same floors reached.
//!
//! The runs go one at a time: each keeps both CPUs of a small machine busy for a few
//! seconds, and the floors are meant for a run that has them to itself.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::*;

const PY: &str = "/usr/bin/python3";

/// Seconds the probe churns processes at least, its readers reading meanwhile.
const SECONDS: &str = "3";

/// Counts every run must reach, so that no run passes without having raced: the
/// children forked, the numbers handed out again while the readers ran, the reads that
/// showed a child's token and were checked, those made through a held directory or file,
/// and the reads attempted through a held directory once its number was someone else's.
/// (The probe itself churns on past SECONDS, up to twice as long, until its readers
/// have done five times these last three.)
const FLOORS: [(&str, u64); 5] = [
    ("forks", 30),
    ("reuses", 10),
    ("checked", 200),
    ("held_checked", 20),
    ("after_reuse", 20),
];

/// What a probe printed: the verdict (its first lines, compared with the kernel's), the
/// counts (different in every run: held to the floors), and the whole text.
struct Run {
    verdict: Vec<String>,
    counts: HashMap<String, u64>,
    text: String,
}

fn parse(text: String) -> Run {
    let verdict = text.lines().take(4).map(str::to_owned).collect();
    let counts = text
        .lines()
        .find_map(|l| l.strip_prefix("counts "))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    Run {
        verdict,
        counts,
        text,
    }
}

fn probe() -> String {
    script("race_readers.py").display().to_string()
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks that `run` reached every floor.
fn assert_floors(what: &str, run: &Run) {
    for (name, floor) in FLOORS {
        let got = run.counts.get(name).copied().unwrap_or(0);
        assert!(
            got >= floor,
            "{what}: {name} is {got}, under {floor}: the run did not race enough to count\n{}",
            run.text
        );
    }
}

/// The kernel's run, made once for all the tests of this file.
fn kernel() -> &'static Run {
    static KERNEL: OnceLock<Run> = OnceLock::new();
    KERNEL.get_or_init(|| {
        let run = parse(in_kernel_ns(&[PY, &probe(), SECONDS]));
        assert_eq!(
            run.verdict,
            [
                "setup ok",
                "mismatches 0",
                "unexpected errors 0",
                "reused True"
            ],
            "the kernel's procfs:\n{}",
            run.text
        );
        assert_floors("the kernel's procfs", &run);
        run
    })
}

/// Runs the probe in a VPS made with `flags` and compares its verdict with the kernel's.
fn view_matches_kernel(flags: &[&str]) {
    let _one = one_at_a_time();
    let kernel = kernel();
    let (out, err, code) = in_vps(flags, &[PY, &probe(), SECONDS]);
    assert_eq!(code, 0, "{flags:?}: {out}\nstderr: {err}");
    let view = parse(out);
    assert_eq!(
        view.verdict, kernel.verdict,
        "{flags:?}: the view's verdict is not the kernel's\nview:\n{}\nstderr: {err}\nkernel:\n{}",
        view.text, kernel.text
    );
    assert_floors(&format!("{flags:?}"), &view);
    eprintln!("{flags:?}: {}", counts_line(&view));
}

fn counts_line(run: &Run) -> &str {
    run.text
        .lines()
        .find(|l| l.starts_with("counts "))
        .unwrap_or("")
}

#[test]
fn the_kernel_shows_each_process_under_its_own_number() {
    if privileged() {
        let _one = one_at_a_time();
        eprintln!("kernel: {}", counts_line(kernel()));
    }
}

#[test]
fn the_full_view_shows_each_process_under_its_own_number() {
    if privileged() {
        view_matches_kernel(&["--full-view"]);
    }
}

/// Without a pid namespace the probe steers the host's own pid counter (through a procfs
/// instance of the host's namespace, mounted in the VPS's mount namespace): the real pid
/// behind a vpid is what comes round again.
#[test]
fn without_a_pid_namespace_each_process_shows_under_its_own_number() {
    if privileged() {
        view_matches_kernel(&["--no-pidns"]);
    }
}

/// The same with the vpids the daemon hands out itself (`ns`: small and dense, `sparse`:
/// through the mapping table), which a reused real pid must not confuse either.
#[test]
fn without_a_pid_namespace_ns_numbering_shows_each_process_under_its_own_number() {
    if privileged() {
        view_matches_kernel(&["--no-pidns", "--numbering", "ns"]);
    }
}

#[test]
fn without_a_pid_namespace_sparse_numbering_shows_each_process_under_its_own_number() {
    if privileged() {
        view_matches_kernel(&["--no-pidns", "--numbering", "sparse"]);
    }
}

/// The same through `vprocfs serve`'s mount of one VPS, which the kernel caches as
/// `run`'s is: a tree VPS whose init is the probe, reading that mount bound over its
/// `/proc` in a mount namespace of its own, while processes outside every VPS fork.
#[test]
fn a_served_vps_own_mount_shows_each_process_under_its_own_number() {
    if privileged() {
        served_matches_kernel(true);
    }
}

/// The same through `serve`'s shared mount, where each request is judged by its
/// reader and nothing of a process is cached.
#[test]
fn the_served_shared_mount_shows_each_process_under_its_own_number() {
    if privileged() {
        served_matches_kernel(false);
    }
}

/// The probe as the init of a tree VPS of `vprocfs serve`, reading the VPS's own mount
/// (`own`) or the shared one, bound over its `/proc`.
fn served_matches_kernel(own: bool) {
    let _one = one_at_a_time();
    let kernel = kernel();
    let tmp = TempDir::new("race-serve");
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let sock = dir.join("ctl.sock");
    let view = if own {
        dir.join("vps").join("t")
    } else {
        mnt.clone()
    };
    let (go, out) = (dir.join("go"), dir.join("out"));
    // Its pid stays through the execs: the probe is the VPS's init.
    let script = format!(
        "until [ -e {go} ]; do sleep 0.02; done; exec unshare --mount sh -c \
         'mount --bind {view} /proc && exec {PY} {probe} {SECONDS}' > {out} 2>&1",
        go = go.display(),
        view = view.display(),
        probe = probe(),
        out = out.display()
    );
    let mut init = ChildGuard(Some(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("spawn the probe's shell"),
    ));
    let pid = init.0.as_ref().unwrap().id();
    let mut args = vec!["--vps".to_string(), format!("t:tree={pid}")];
    if !own {
        args.push("--no-vps-mounts".into());
    }
    let _daemon = serve(&mnt, &sock, &args);
    assert!(
        wait_until(std::time::Duration::from_secs(10), || mounted(&view)),
        "the view is mounted"
    );
    // Processes of no VPS fork meanwhile and take freed numbers, now and then within the
    // clock tick of the member that had them (the bug this found: such a newcomer was
    // shown under the member's vpid).
    let _outsiders = ChildGuard(Some(
        std::process::Command::new(PY)
            .args([
                "-c",
                "import os\nwhile True:\n    p = os.fork()\n    if p == 0:\n        os._exit(0)\n    os.waitpid(p, 0)",
            ])
            .spawn()
            .expect("spawn the outsiders' loop"),
    ));
    std::fs::write(&go, "").unwrap();
    let child = init.0.as_mut().unwrap();
    let status = run_child_with_deadline(child, std::time::Duration::from_secs(60));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    let run = parse(text);
    assert_eq!(
        run.verdict, kernel.verdict,
        "served (own mount: {own}): the view's verdict is not the kernel's\nview:\n{}\nkernel:\n{}",
        run.text, kernel.text
    );
    let what = if own {
        "serve's own mount"
    } else {
        "serve's shared mount"
    };
    assert_floors(what, &run);
    eprintln!("{what}: {}", counts_line(&run));
}
