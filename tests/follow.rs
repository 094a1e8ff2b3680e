//! The FUSE thread serves a burst on its reader's CPU (src/spin/follow.rs): it runs
//! there at `SCHED_IDLE` while the reader reads, and gets its policy and CPUs back when
//! the burst ends, also when every CPU is kept busy by another task (where `SCHED_IDLE`
//! alone would starve it). Observed from the host through the daemon's own threads.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The reader inside the VPS: reads `/proc/1/stat` for `LOOP` seconds, creates the file
/// `argv[1]`, stays idle for `IDLE` seconds, and prints how many reads it made.
const READER: &str = r#"
import os, sys, time
LOOP, IDLE = 1.5, 2.0
n, end = 0, time.monotonic() + LOOP
while time.monotonic() < end:
    fd = os.open("/proc/1/stat", os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)
    n += 1
open(sys.argv[1], "w").close()
time.sleep(IDLE)
print(n)
"#;

const SCHED_IDLE: u64 = 5;

fn cpus(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .collect()
}

/// Field `n` (1-based, counted after the comm) of a task's stat.
fn stat_field(path: &str, n: usize) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// The thread named `comm` of process `pid`.
fn thread_named(pid: u32, comm: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .and_then(|t| t.file_name().to_str()?.parse().ok())
}

/// A descendant of `pid` whose comm is `comm`.
fn descendant_named(pid: u32, comm: &str) -> Option<i32> {
    let mut todo = vec![i32::try_from(pid).ok()?];
    while let Some(p) = todo.pop() {
        for c in children_of(p as u32) {
            if std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|s| s.trim() == comm) {
                return Some(c);
            }
            todo.push(c);
        }
    }
    None
}

/// What was seen of one reader's run.
struct Seen {
    /// Samples taken while the reader read.
    samples: usize,
    /// Of them, those with the FUSE thread at `SCHED_IDLE` on the reader's CPU.
    beside: usize,
    /// Whether the FUSE thread was ever at `SCHED_IDLE`.
    ever_idle: bool,
    /// Whether, once the reader idled, the thread got back its policy and CPUs.
    let_go: bool,
    /// The reads the reader made.
    reads: u64,
}

/// Runs the reader in a full-view VPS and watches the daemon's FUSE thread.
fn watch(run_prefix: &[&str]) -> Seen {
    let dir = TempDir::new("follow");
    let marker = dir.0.join("idle");
    let mut cmd = Command::new(run_prefix.first().copied().unwrap_or("env"));
    cmd.args(run_prefix.iter().skip(1))
        .arg(vprocfs())
        .args(["run", "--full-view", "--", "python3", "-c", READER])
        .arg(&marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn vprocfs run")));
    let top = guard.0.as_ref().expect("child").id();
    // `env` and `taskset` exec the daemon: it is the child itself.
    let daemon = top;
    let mut fuse = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            fuse = thread_named(daemon, "fuser-0");
            fuse.is_some()
        }),
        "no FUSE thread appeared"
    );
    let fuse = fuse.expect("fuse thread");
    let given = cpus(&sched_getaffinity(Pid::from_raw(daemon as i32)).expect("affinity"));
    let task = format!("/proc/{daemon}/task/{fuse}/stat");
    let mut seen = Seen {
        samples: 0,
        beside: 0,
        ever_idle: false,
        let_go: false,
        reads: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&marker).exists() && Instant::now() < deadline {
        let reader = descendant_named(top, "python3");
        let policy = stat_field(&task, 41);
        let cpu = stat_field(&task, 39);
        let reader_cpu = reader.and_then(|r| stat_field(&format!("/proc/{r}/stat"), 39));
        if let (Some(policy), Some(cpu), Some(rcpu)) = (policy, cpu, reader_cpu) {
            seen.samples += 1;
            seen.ever_idle |= policy == SCHED_IDLE;
            if policy == SCHED_IDLE && cpu == rcpu {
                seen.beside += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        Path::new(&marker).exists(),
        "the reader never finished its loop"
    );
    seen.let_go = wait_until(Duration::from_millis(1500), || {
        let normal = stat_field(&task, 41) == Some(0);
        let back = sched_getaffinity(Pid::from_raw(fuse)).is_ok_and(|s| cpus(&s) == given);
        normal && back
    });
    let child = guard.0.take().expect("child");
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "vprocfs run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.reads = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    seen
}

/// Threads of this test that keep every given CPU busy until dropped.
struct Hogs(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Hogs {
    fn on(cpus: &[usize]) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = cpus
            .iter()
            .map(|&c| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut one = CpuSet::new();
                    one.set(c).expect("cpu");
                    let _ = sched_setaffinity(Pid::from_raw(0), &one);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Hogs(stop, threads)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn the_fuse_thread_serves_a_burst_on_the_readers_cpu_and_lets_go_after() {
    if !privileged() {
        return;
    }
    let given = cpus(&sched_getaffinity(Pid::from_raw(0)).expect("affinity"));

    // Free placement: the thread follows the reader, when there is a CPU to choose.
    let seen = watch(&[]);
    assert!(seen.reads > 0, "the reader made no read");
    assert!(seen.samples > 10, "too few samples ({})", seen.samples);
    if given.len() >= 2 {
        assert!(
            seen.beside > 0,
            "never at SCHED_IDLE on the reader's CPU in {} samples",
            seen.samples
        );
    } else {
        assert!(!seen.ever_idle, "followed with a single CPU");
    }
    assert!(seen.let_go, "policy or CPUs not given back after the burst");

    // A daemon given one CPU (the pinned placement) never changes its scheduling.
    let one = given[0].to_string();
    let seen = watch(&["taskset", "-c", &one]);
    assert!(seen.reads > 0, "the reader made no read (pinned)");
    assert!(!seen.ever_idle, "a daemon given one CPU went SCHED_IDLE");
    assert!(seen.let_go, "policy or CPUs changed (pinned)");

    // Every CPU kept busy by another task: SCHED_IDLE would starve the FUSE thread
    // there; the reader still reads, and the thread is given back its policy after.
    let hogs = Hogs::on(&given);
    let seen = watch(&[]);
    drop(hogs);
    assert!(seen.reads > 0, "the reader made no read beside busy CPUs");
    assert!(seen.let_go, "policy or CPUs not given back on busy CPUs");
}
