//! What following processes costs the daemon, counted in its statistics (`tasks_read`,
//! `task_lists`, printed on SIGUSR1) before and after the forks of each test. A test
//! binary of its own, so that no test of another binary forks meanwhile.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// A `vprocfs run` whose init is a Python script that prints `ready`, then `done` after
/// each line it is sent (running `steps` in between, one per line), and ends at the last.
struct Run {
    guard: ChildGuard,
    pid: nix::unistd::Pid,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: mpsc::Receiver<String>,
}

impl Run {
    fn start(flags: &[&str], steps: &[&str]) -> Run {
        let mut script = String::from("import os, sys\nprint('ready', flush=True)\n");
        for step in steps {
            script.push_str("sys.stdin.readline()\n");
            script.push_str(step);
            script.push_str("\nprint('done', flush=True)\n");
        }
        script.push_str("sys.stdin.readline()\n");
        let child = std::process::Command::new(vprocfs())
            .arg("run")
            .args(flags)
            .args(["--", "/usr/bin/python3", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vprocfs run");
        let mut guard = ChildGuard(Some(child));
        let c = guard.0.as_mut().expect("child");
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let stdin = c.stdin.take();
        let stdout = BufReader::new(c.stdout.take().expect("stdout"));
        let stderr = BufReader::new(c.stderr.take().expect("stderr"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut run = Run {
            guard,
            pid,
            stdin,
            stdout,
            stderr: rx,
        };
        run.expect("ready");
        run
    }

    fn expect(&mut self, word: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("a line from init");
        assert_eq!(line.trim_end(), word, "init said something else");
    }

    /// Runs init's next step and waits for it.
    fn step(&mut self) {
        let stdin = self.stdin.as_mut().expect("init's stdin");
        stdin.write_all(b"go\n").expect("go");
        self.expect("done");
    }

    /// The daemon's counts of task reads and task lists, once they stop moving (every
    /// event followed), or after a second.
    fn counts(&self) -> (u64, u64) {
        let mut last = self.counts_now();
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.counts_now();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    fn counts_now(&self) -> (u64, u64) {
        nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
        loop {
            let line = self
                .stderr
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
    }

    /// Ends init's last step and waits for the VPS to end well.
    fn finish(mut self) {
        let mut stdin = self.stdin.take().expect("init's stdin");
        stdin.write_all(b"end\n").expect("end");
        drop(stdin);
        let c = self.guard.0.as_mut().expect("child");
        let status = c.wait().expect("wait");
        self.guard.0.take();
        assert!(status.success(), "{status}");
    }
}

/// What following a VPS costs the daemon per fork and exec: one read of the new
/// process's `stat` and `status`, and nothing of the leaders of its session and process
/// group when the VPS can tell from the numbers alone that they are outside it (the
/// session and group of `vprocfs run`'s caller, which init and every process it forks
/// inherit): a group a pid namespace numbers 0, or, in a tree VPS, one init brought in;
/// nor the task list of a process with one thread that execs (only another thread's
/// exec changes its threads).
#[test]
fn a_fork_and_exec_cost_one_read_of_the_new_process() {
    if !privileged() {
        return;
    }
    const FORKS: u64 = 300;
    const LOOP: &str = "
for _ in range(300):
    pid = os.fork()
    if pid == 0:
        os.execv('/bin/true', ['true'])
    os.waitpid(pid, 0)";
    for flags in [&["--full-view"][..], &["--no-pidns"]] {
        let mut run = Run::start(flags, &[LOOP]);
        let (before, lists_before) = run.counts();
        run.step();
        let (after, lists_after) = run.counts();
        run.finish();
        let per_fork = (after - before) as f64 / FORKS as f64;
        assert!(
            after - before >= FORKS,
            "{flags:?}: {} reads for {FORKS} forks: every new process is read",
            after - before
        );
        assert!(
            per_fork < 1.5,
            "{flags:?}: {per_fork:.2} task reads a fork ({before} before, {after} after)"
        );
        assert!(
            lists_after - lists_before < FORKS / 10,
            "{flags:?}: {} task lists read for {FORKS} execs",
            lists_after - lists_before
        );
    }
}

/// The host's own forks, while a VPS with a pid namespace is served, cost the daemon one
/// look at each new process's pid namespace (a process joins the VPS only through it,
/// `setns` then `fork`) and no read of its files: with many VPSes on a host, each
/// daemon would otherwise read every process the host makes.
#[test]
fn the_hosts_forks_are_not_read() {
    if !privileged() {
        return;
    }
    const FORKS: u64 = 300;
    let run = Run::start(&["--full-view"], &[]);
    let (before, _) = run.counts();
    for _ in 0..FORKS {
        let status = std::process::Command::new("/bin/true")
            .status()
            .expect("/bin/true");
        assert!(status.success());
    }
    let (after, _) = run.counts();
    run.finish();
    assert!(
        after - before < FORKS / 10,
        "{} task reads for {FORKS} forks of the host",
        after - before
    );
}
