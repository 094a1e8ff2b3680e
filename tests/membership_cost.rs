//! What following a VPS's processes costs the daemon, counted in its statistics. A test
//! binary of its own: a pid-namespace VPS makes the daemon read every process the host
//! forks (one may enter the namespace with `setns`), so tests running beside it in the
//! same binary would count too.

mod common;

use common::*;

/// What following a VPS costs the daemon per fork and exec: one read of the new
/// process's `stat` and `status`, and nothing of the leaders of its session and process
/// group when the VPS can tell from the numbers alone that they are outside it (the
/// session and group of `vprocfs run`'s caller, which init and every process it forks
/// inherit): a group a pid namespace numbers 0, or, in a tree VPS, one init brought in;
/// nor the task list of a process with one thread that execs (only another thread's
/// exec changes its threads). The daemon's statistics (`tasks_read`, `task_lists`,
/// printed on SIGUSR1) are taken before and after the forks.
/// A tree VPS's daemon reads no process the host forks; a pid-namespace VPS's reads
/// each once, so the host's other forks meanwhile (the `processes` count of the host's
/// `/proc/stat`) are taken off.
#[test]
fn a_fork_and_exec_cost_one_read_of_the_new_process() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;
    if !privileged() {
        return;
    }
    const FORKS: u64 = 300;
    const SCRIPT: &str = r#"
import os, sys
print("ready", flush=True)
sys.stdin.readline()
for _ in range(300):
    pid = os.fork()
    if pid == 0:
        os.execv("/bin/true", ["true"])
    os.waitpid(pid, 0)
print("done", flush=True)
sys.stdin.readline()
"#;
    for flags in [&["--full-view"][..], &["--no-pidns"]] {
        let child = std::process::Command::new(vprocfs())
            .arg("run")
            .args(flags)
            .args(["--", "/usr/bin/python3", "-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vprocfs run");
        let mut guard = ChildGuard(Some(child));
        let c = guard.0.as_mut().expect("child");
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let mut stdin = c.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(c.stdout.take().expect("stdout"));
        let stderr = BufReader::new(c.stderr.take().expect("stderr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The daemon's counts of task reads and task lists now, asked with SIGUSR1.
        let tasks_read = || -> (u64, u64) {
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
            loop {
                let line = rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("statistics on SIGUSR1");
                let count = |key: &str| {
                    line.split_whitespace()
                        .find_map(|t| t.strip_prefix(key))
                        .map(|n| n.parse::<u64>().expect("a count"))
                };
                if let (Some(reads), Some(lists)) = (count("tasks_read="), count("task_lists=")) {
                    return (reads, lists);
                }
            }
        };
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ready");
        assert_eq!(line, "ready\n", "{flags:?}");
        let (before, lists_before) = tasks_read();
        let forks_before = host_forks();
        stdin.write_all(b"go\n").expect("go");
        line.clear();
        stdout.read_line(&mut line).expect("done");
        assert_eq!(line, "done\n", "{flags:?}");
        // Until every fork and exit is followed: the count stops moving (or, while the
        // host forks, a second has passed).
        let (mut after, mut lists_after) = tasks_read();
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            let now = tasks_read();
            if now == (after, lists_after) {
                break;
            }
            (after, lists_after) = now;
        }
        stdin.write_all(b"end\n").expect("end");
        drop(stdin);
        let status = c.wait().expect("wait");
        guard.0.take();
        assert!(status.success(), "{flags:?}: {status}");
        let forks_after = host_forks();
        let others = match flags {
            ["--no-pidns"] => 0,
            _ => (forks_after - forks_before).saturating_sub(FORKS),
        };
        let reads = (after - before).saturating_sub(others);
        let per_fork = reads as f64 / FORKS as f64;
        assert!(
            after - before >= FORKS,
            "{flags:?}: {} reads for {FORKS} forks: every new process is read",
            after - before
        );
        assert!(
            per_fork < 1.5,
            "{flags:?}: {per_fork:.2} task reads a fork ({before} before, {after} after, \
             {others} other forks of the host)"
        );
        assert!(
            lists_after - lists_before < FORKS / 10,
            "{flags:?}: {} task lists read for {FORKS} execs",
            lists_after - lists_before
        );
    }
}

/// The processes and threads the host has forked since it booted (`processes` in its
/// `/proc/stat`).
fn host_forks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a processes line")
}
