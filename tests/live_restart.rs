//! The mount outlives its daemon: `vprocfs serve` is a supervisor that holds the FUSE
//! connection and runs the daemon as its child. Readers loop over `ps` inside a VPS while
//! the daemon is killed with SIGKILL (and replaced for an upgrade with SIGUSR2): no
//! reader gets an error, and no vpid changes.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

fn worker_of(supervisor: u32) -> Option<i32> {
    children_of(supervisor).first().copied()
}

/// Lines `PID VPID` of the VPS's mappings for the given real pids.
fn mappings_of(sock: &std::path::Path, pids: &[u32]) -> Vec<String> {
    ctl(sock, &["mappings", "t"])
        .1
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| pids.contains(&p))
        })
        .map(str::to_string)
        .collect()
}

/// A reader in VPS `t` of the daemon on `sock`: runs `cmd` until `dir/stop` exists, then
/// writes `runs=N bad=M` to `dir/NAME.out`. A run that fails or writes to its standard
/// error is bad (twice if both), and that standard error goes to `dir/NAME.log` with the
/// time.
fn loop_reader(sock: &std::path::Path, dir: &std::path::Path, name: &str, cmd: &str) -> ChildGuard {
    let d = dir.display();
    let script = format!(
        "n=0; bad=0; while [ ! -e {d}/stop ]; do \
           {cmd} > /dev/null 2>{d}/{name}.err || bad=$((bad+1)); \
           [ -s {d}/{name}.err ] && {{ bad=$((bad+1)); {{ date -u +%T.%N; cat {d}/{name}.err; }} >> {d}/{name}.log; }}; \
           n=$((n+1)); done; echo runs=$n bad=$bad > {d}/{name}.out"
    );
    let child = exec_in(sock, "t", &["sh", "-c", &script])
        .spawn()
        .expect("reader");
    ChildGuard(Some(child))
}

/// Tells the readers in `dir` to stop, waits for them, and checks that each of `names`
/// ran and saw no error (the daemon's log in the message if not).
fn stop_readers(
    dir: &std::path::Path,
    sock: &std::path::Path,
    readers: Vec<ChildGuard>,
    names: &[&str],
) {
    fs::write(dir.join("stop"), "").unwrap();
    for mut r in readers {
        let mut c = r.0.take().unwrap();
        let _ = run_child_with_deadline(&mut c, Duration::from_secs(30));
    }
    for name in names {
        let out = fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
        let log = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        assert!(
            out.ends_with(" bad=0\n") && !out.starts_with("runs=0 "),
            "reader {name}: {out} {log}\n{}",
            daemon_log(sock)
        );
    }
}

/// A tree VPS `t` of `init_pid` with dense (`ns`) numbering, served on a fresh mount by
/// a supervisor: vpids are the daemon's own choices, which no rule recomputes, so a new
/// daemon must carry them over.
struct Served {
    dir: std::path::PathBuf,
    mnt: std::path::PathBuf,
    sock: std::path::PathBuf,
    supervisor: u32,
    // Dropped in this order: the daemon, then the mount, the VPS's init if it is
    // ours, then the directory.
    _daemon: (ChildGuard, MountGuard),
    _init: Option<ChildGuard>,
    _tmp: TempDir,
}

/// [`serve_tree`] of a VPS whose init is a `sleep` of its own, ended with the rest.
fn serve_sleeper(tag: &str) -> Served {
    let init = Command::new("sleep").arg("120").spawn().expect("init");
    let mut served = serve_tree(tag, init.id());
    served._init = Some(ChildGuard(Some(init)));
    served
}

/// [`serve_sleeper`], and the VPS's own mount once it is there.
fn serve_sleeper_with_own_mount(tag: &str) -> (Served, std::path::PathBuf) {
    let served = serve_sleeper(tag);
    let own = served.dir.join("vps").join("t");
    assert!(wait_until(Duration::from_secs(10), || mounted(&own)));
    (served, own)
}

fn serve_tree(tag: &str, init_pid: u32) -> Served {
    let tmp = TempDir::new(tag);
    let dir = tmp.0.clone();
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let sock = dir.join("ctl.sock");
    let daemon = serve(
        &mnt,
        &sock,
        &[
            "--vps".into(),
            format!("t:tree={init_pid}"),
            "--numbering".into(),
            "ns".into(),
        ],
    );
    let supervisor = daemon.0 .0.as_ref().unwrap().id();
    Served {
        dir,
        mnt,
        sock,
        supervisor,
        _daemon: daemon,
        _init: None,
        _tmp: tmp,
    }
}

#[test]
fn readers_never_see_the_daemon_die() {
    if !privileged() {
        return;
    }
    // A tree VPS; a requested vpid makes its numbering sparse, so vpids are the
    // daemon's own choices (no rule recomputes them) and must be carried over.
    let init = Command::new("sh")
        .args(["-c", "sleep 120 & sleep 120 & wait"])
        .spawn()
        .expect("init");
    let init_pid = init.id();
    let _init = ChildGuard(Some(init));
    std::thread::sleep(Duration::from_millis(200));
    // Dropped before the shell's guard: the shell then reaps them.
    let _sleepers = PidsGuard(children_of(init_pid));
    let sleepers: Vec<u32> = _sleepers.0.iter().map(|&p| p as u32).collect();
    assert_eq!(sleepers.len(), 2);
    let served = serve_tree("live-restart", init_pid);
    let (dir, mnt, sock) = (served.dir.clone(), served.mnt.clone(), served.sock.clone());
    let supervisor = served.supervisor;
    // A process enters the VPS with a requested vpid.
    let entered = Command::new("sleep").arg("120").spawn().expect("sleep");
    let entered_pid = entered.id();
    let _entered = ChildGuard(Some(entered));
    let (code, _, err) = ctl(
        &sock,
        &[
            "alloc",
            "--vps",
            "t",
            "--pid",
            &entered_pid.to_string(),
            "--vpid",
            "777",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let answer = enter(&sock, "t", entered_pid);
    assert!(answer.starts_with(r#"{"ok":true"#), "{answer}");
    let mut long_lived = sleepers.clone();
    long_lived.push(init_pid);
    long_lived.push(entered_pid);
    let before = mappings_of(&sock, &long_lived);
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(before.iter().any(|l| l.ends_with(" 777")), "{before:?}");

    // Readers inside the VPS: ps -ef, ps -eLf, a read of stat by vpid; a reader that
    // times each open+read+close of /proc/uptime records the longest pause.
    let d = dir.display();
    let reader = |name: &str, cmd: &str| loop_reader(&sock, &dir, name, cmd);
    let mut readers = vec![
        reader("ef", "ps -ef"),
        reader("elf", "ps -eLf"),
        reader("stat", "cat /proc/777/stat /proc/1/status"),
    ];
    let pause = format!(
        "import os, time\n\
         worst = 0.0\n\
         while not os.path.exists('{d}/stop'):\n\
         \x20   t = time.monotonic()\n\
         \x20   with open('/proc/uptime') as f: f.read()\n\
         \x20   worst = max(worst, time.monotonic() - t)\n\
         open('{d}/pause.out', 'w').write('%.1f' % (worst * 1000))\n"
    );
    readers.push(ChildGuard(Some(
        exec_in(&sock, "t", &["python3", "-c", &pause])
            .spawn()
            .expect("pause reader"),
    )));
    std::thread::sleep(Duration::from_millis(700));

    let mut workers = Vec::new();
    for round in 0..4 {
        let w = worker_of(supervisor).expect("a daemon runs under the supervisor");
        workers.push(w);
        if round == 3 {
            // An upgrade: the daemon saves its state and steps down for a new one.
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(supervisor as i32),
                nix::sys::signal::Signal::SIGUSR2,
            )
            .unwrap();
        } else {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(w),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        assert!(
            wait_until(Duration::from_secs(10), || worker_of(supervisor)
                .is_some_and(|n| n != w)),
            "a new daemon replaces {w}\n{}",
            daemon_log(&sock)
        );
        std::thread::sleep(Duration::from_millis(600));
    }
    stop_readers(&dir, &sock, readers, &["ef", "elf", "stat"]);
    let pause = fs::read_to_string(dir.join("pause.out")).unwrap_or_default();
    assert!(!pause.is_empty(), "the pause reader ran to the end");
    eprintln!("longest open+read+close of /proc/uptime across 4 restarts: {pause} ms");
    assert!(mounted(&mnt), "still mounted");
    let after = mappings_of(&sock, &long_lived);
    assert_eq!(after, before, "every vpid survived the restarts");
    let mut distinct = workers.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "four daemons in turn: {workers:?}");
}

/// Processes that come and go while daemons hand the mount over: their names stay in the
/// kernel (no worker invalidates those of a process that exits between two workers), and
/// `ns` numbering hands their vpids out again. A `ps` walking `/proc/self` through such a
/// stale name got the dead process's answer (ESRCH, "Error, do this: mount -t proc proc
/// /proc"), in 17 to 28 of 25 upgrades, before a worker that takes over took every name
/// the kernel may hold as stale-able; and once in CI since, when two readers walked the
/// same stale name at once and only the first was told `ESTALE` (now each reader is,
/// and numbering goes on after the last vpid, so a vpid is seldom handed out again).
#[test]
fn ps_survives_back_to_back_upgrades() {
    if !privileged() {
        return;
    }
    let served = serve_sleeper("upgrades");
    let (dir, sock) = (served.dir.clone(), served.sock.clone());
    let readers = vec![
        loop_reader(&sock, &dir, "ef", "ps -ef"),
        loop_reader(&sock, &dir, "elf", "ps -eLf"),
    ];
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..16 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(served.supervisor as i32),
            nix::sys::signal::Signal::SIGUSR2,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    stop_readers(&dir, &sock, readers, &["ef", "elf"]);
}

/// A file a reader holds open across upgrades stays attached to its backing file in the
/// kernel, which refuses (`EIO`) any other open of the same file that does not name it:
/// each worker hands the backing files in use over to the next. Other readers open and
/// read the file throughout, the holder reads its snapshot to the end, and the file reads
/// on once it is closed.
#[test]
fn a_file_held_open_across_upgrades_leaves_other_readers_alone() {
    use std::io::Read as _;
    if !privileged() {
        return;
    }
    let (served, own) = serve_sleeper_with_own_mount("held-open");
    let stat = own.join("1/stat");
    let read = || fs::read_to_string(&stat);
    let mut held = fs::File::open(&stat).expect("open");
    let mut first = [0u8; 8];
    held.read_exact(&mut first).expect("first bytes");
    // No close waits for the daemon, the first one included: a FLUSH at an exec's close
    // of an inherited descriptor (this test's, in another test's child) held that exec,
    // and a worker starting meanwhile, which reads the process's stat, waited for it for
    // good. (Answered ENOSYS once, FLUSH stops; the first is the one to avoid.)
    read().expect("read");
    let (_, stats, _) = ctl(&served.sock, &["stats"]);
    assert!(stats.contains(" flush=0 "), "{stats}");
    for round in 1..=2 {
        replace_worker(&served, false);
        for _ in 0..3 {
            let text = read().unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(text.starts_with("1 (sleep) "), "{text}");
        }
    }
    let mut rest = String::new();
    held.read_to_string(&mut rest)
        .expect("the held file reads on");
    assert!(rest.ends_with('\n'), "{rest}");
    drop(held);
    assert!(wait_until(Duration::from_secs(5), || read().is_ok()));
}

/// Replaces the worker of `served`: an upgrade (`SIGUSR2` to the supervisor) or a crash
/// (`SIGKILL` to the worker), and waits for the new one.
fn replace_worker(served: &Served, crash: bool) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let before = worker_of(served.supervisor).expect("a worker");
    match crash {
        true => kill(Pid::from_raw(before), Signal::SIGKILL),
        false => kill(Pid::from_raw(served.supervisor as i32), Signal::SIGUSR2),
    }
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || worker_of(served.supervisor)
            .is_some_and(|w| w != before)),
        "a new worker replaces {before}\n{}",
        daemon_log(&served.sock)
    );
    assert!(wait_until(Duration::from_secs(10), || ctl(
        &served.sock,
        &["stats"]
    )
    .0 == Some(0)));
}

/// A worker that takes the connection over serves the snapshots through FUSE
/// passthrough again (the kernel reads them; no read reaches the daemon), after an
/// upgrade as after a crash. A worker killed outright leaves the backing file of a file
/// a reader holds attached to its inode, and the kernel refuses every other open of that
/// inode that does not name it: the next worker names it, from the mount's ledger, and
/// nobody gets `EIO` (before the ledger, every open of that file failed until the
/// reader closed it).
#[test]
fn passthrough_resumes_after_an_upgrade_and_after_a_crash() {
    use std::io::Read as _;
    if !privileged() {
        return;
    }
    let (served, own) = serve_sleeper_with_own_mount("passthrough-resumes");
    let cat = |name: &str| {
        let text = fs::read_to_string(own.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!text.is_empty(), "{name} is empty");
        text
    };
    // How many reads of five open+read+close of `name` reach the daemon, counted from
    // the second (the first may look the name up).
    let reads_of_five = |name: &str| {
        cat(name);
        let before = daemon_stat(&served.sock, "read");
        for _ in 0..5 {
            cat(name);
        }
        daemon_stat(&served.sock, "read") - before
    };
    assert_eq!(reads_of_five("1/stat"), 0, "the first worker: passthrough");
    replace_worker(&served, false);
    assert_eq!(reads_of_five("1/stat"), 0, "after an upgrade");

    let mut held = fs::File::open(own.join("1/stat")).expect("open");
    let mut first = [0u8; 4];
    held.read_exact(&mut first).expect("first bytes");
    replace_worker(&served, true);
    // The held file's inode keeps the killed worker's backing file: named, and read
    // through the daemon (its text is unknown), without an error.
    for _ in 0..3 {
        assert!(cat("1/stat").starts_with("1 (sleep) "));
    }
    assert!(reads_of_five("1/stat") > 0, "read through the daemon");
    // A file first opened since has a backing file of this worker's. One whose text
    // stays the same (`sched` shows `clock-delta`, new at every read): an open that
    // comes before the previous one's release is read through the daemon when its text
    // differs, by design; with `sched` the count here was 8 in 2 of ~150 runs, as four
    // such overlaps would make it.
    let reads = reads_of_five("1/cmdline");
    assert_eq!(
        reads,
        0,
        "passthrough after a crash\n{}",
        daemon_log(&served.sock)
    );
    let mut rest = String::new();
    held.read_to_string(&mut rest)
        .expect("the held file reads on");
    assert!(rest.ends_with('\n'), "{rest}");
    drop(held);
    // A second crash, with nothing held, and an upgrade: the same.
    replace_worker(&served, true);
    assert_eq!(reads_of_five("1/status"), 0, "after a second crash");
    assert!(cat("1/stat").starts_with("1 (sleep) "));
    // (A file the killed worker had registered is read through the daemon until the
    // kernel forgets its inode; one this worker registered is handed over as usual.)
    replace_worker(&served, false);
    assert!(cat("1/stat").starts_with("1 (sleep) "));
    assert_eq!(
        reads_of_five("1/status"),
        0,
        "after the upgrade that followed"
    );
}

/// A vpid is shown the moment it is handed out, and the state is saved only a few times
/// a second: a daemon killed in between must not lose it (a `ps` that has read
/// `/proc/self` would find itself gone). Each round, a new process in the VPS reads its
/// vpid through `/proc/self`, and the daemon is killed at once; the new daemon must give
/// the process the vpid it read.
#[test]
fn a_vpid_handed_out_just_before_a_crash_survives_it() {
    if !privileged() {
        return;
    }
    let served = serve_sleeper("crash-window");
    let (dir, sock) = (served.dir.clone(), served.sock.clone());
    let supervisor = served.supervisor;
    // Dense (`ns`) vpids are the daemon's own choices: only the state and its journal
    // carry them over.
    let (_, list, _) = ctl(&sock, &["list"]);
    let d = dir.display();
    const ROUNDS: u32 = 3;
    // Inside the VPS: each round starts a process that reads its own vpid (`read` is a
    // builtin: the shell itself opens /proc/self, not a child such as readlink), then
    // waits for the test to say go.
    let script = format!(
        "for i in $(seq 1 {ROUNDS}); do \
           sh -c 'read -r me rest < /proc/self/stat; echo $me > {d}/vpid.tmp; mv {d}/vpid.tmp {d}/vpid.'$i'; exec sleep 120' & \
           echo $! > {d}/pid.$i; \
           while [ ! -e {d}/go.$i ]; do sleep 0.01; done; \
         done; wait"
    );
    let shell = exec_in(&sock, "t", &["sh", "-c", &script])
        .spawn()
        .expect("exec");
    let shell_pid = shell.id();
    let _shell = ChildGuard(Some(shell));
    let mut rounds = Vec::new();
    for i in 1..=ROUNDS {
        let vpid_file = dir.join(format!("vpid.{i}"));
        assert!(
            wait_until(Duration::from_secs(10), || vpid_file.exists()),
            "round {i}: the process read its vpid ({list})"
        );
        let w = worker_of(supervisor).expect("a daemon runs under the supervisor");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(w),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let shown = fs::read_to_string(&vpid_file).unwrap().trim().to_string();
        let pid: u32 = fs::read_to_string(dir.join(format!("pid.{i}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || worker_of(supervisor)
                .is_some_and(|n| n != w)),
            "a new daemon replaces {w}\n{}",
            daemon_log(&sock)
        );
        // It answers on the control socket once it has restored the state.
        assert!(
            wait_until(Duration::from_secs(10), || ctl(&sock, &["list"]).0
                == Some(0)),
            "the new daemon answers"
        );
        let after = mappings_of(&sock, &[pid]);
        rounds.push((pid, shown.clone(), after.clone()));
        fs::write(dir.join(format!("go.{i}")), "").unwrap();
        let vpid_after = after
            .first()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            vpid_after, shown,
            "round {i}: pid {pid} read vpid {shown} before the crash; after it: {after:?}"
        );
    }
    // The round's processes are the shell's children: ended by pid.
    let pids: Vec<i32> = children_of(shell_pid);
    drop(PidsGuard(pids));
    eprintln!("pid, vpid read before the crash, mapping after: {rounds:?}");
}

/// A kernel pid namespace numbers on from its last pid; so does a VPS with dense (`ns`)
/// numbering, across an upgrade and a crash of its daemon: a new worker neither goes back
/// to handing out the vpids of processes that exited just before (whose names readers'
/// kernels may still hold for them), nor shows an older `ns_last_pid` (the last field of
/// `loadavg`). Before the last vpid was saved, the first process after an upgrade got
/// vpid 2 again, the number of an exited one.
#[test]
fn numbering_goes_on_across_upgrades_and_crashes() {
    if !privileged() {
        return;
    }
    let served = serve_sleeper("numbering");
    // A new process in the VPS: its vpid, and the last vpid handed out that it reads.
    let next = || -> (i32, i32) {
        let out = exec_in(
            &served.sock,
            "t",
            &[
                "sh",
                "-c",
                "read -r me rest < /proc/self/stat; read -r l < /proc/loadavg; echo $me ${l##* }",
            ],
        )
        .output()
        .expect("exec");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let f: Vec<i32> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(
            f.len(),
            2,
            "{text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (f[0], f[1])
    };
    let mut last = 0;
    let mut three_more = |after: &str| {
        for _ in 0..3 {
            let (vpid, shown_last) = next();
            assert!(
                vpid > last && shown_last >= vpid,
                "{after}: vpid {vpid} (last shown {shown_last}) after {last}\n{}",
                daemon_log(&served.sock)
            );
            last = shown_last;
        }
    };
    three_more("the first worker");
    replace_worker(&served, false);
    three_more("an upgrade");
    replace_worker(&served, true);
    three_more("a crash");
}

/// Several readers may walk the same stale name at once: the kernel holds the name of
/// a process that exited while no worker followed the events (nobody invalidated it),
/// and its vpid is handed out again. Each reader's request through that name must be
/// told `ESTALE`, so that each walks again and finds the new process: before, only the
/// first was, and the others got the dead process's `ESRCH`.
#[test]
fn readers_walking_one_stale_name_at_once_each_walk_again() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if !privileged() {
        return;
    }
    let (served, own) = serve_sleeper_with_own_mount("stale-at-once");
    let (dir, sock) = (served.dir.clone(), served.sock.clone());
    let d = dir.display();
    // A process in the VPS, under a shell that reaps it.
    let script = format!("sleep 120 & echo $! > {d}/p.tmp; mv {d}/p.tmp {d}/p; wait");
    let _shell = ChildGuard(Some(
        exec_in(&sock, "t", &["sh", "-c", &script])
            .spawn()
            .expect("exec"),
    ));
    let pid_in = |name: &str| -> i32 {
        let file = dir.join(name);
        assert!(
            wait_until(Duration::from_secs(10), || file.exists()),
            "{name}"
        );
        fs::read_to_string(file).unwrap().trim().parse().unwrap()
    };
    let p = pid_in("p");
    let _p = PidsGuard(vec![p]);
    let vpid_of = |pid: i32| -> i32 {
        let line = mappings_of(&sock, &[pid as u32]);
        line.first()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no vpid for {pid}: {line:?}"))
    };
    let n = vpid_of(p);
    // The kernel takes the process's names (held for long in a mount of one VPS).
    let stat = own.join(format!("{n}/stat"));
    assert!(fs::read_to_string(&stat).expect("stat").contains("(sleep)"));
    // It exits while the worker is stopped, and the worker dies with its exit event
    // unread: its names stay in the kernel.
    let worker = worker_of(served.supervisor).expect("a worker");
    kill(Pid::from_raw(worker), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(p), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{p}")).exists()
    }));
    kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(10), || worker_of(
        served.supervisor
    )
    .is_some_and(|w| w != worker)));
    assert!(wait_until(Duration::from_secs(10), || ctl(
        &sock,
        &["stats"]
    )
    .0 == Some(0)));
    // Its vpid goes to a new process (a write of ns_last_pid steers the next one).
    let script = format!(
        "echo {} > /proc/sys/kernel/ns_last_pid; sleep 120 & echo $! > {d}/q.tmp; mv {d}/q.tmp {d}/q; wait",
        n - 1
    );
    let _shell2 = ChildGuard(Some(
        exec_in(&sock, "t", &["sh", "-c", &script])
            .spawn()
            .expect("exec"),
    ));
    let q = pid_in("q");
    let _q = PidsGuard(vec![q]);
    assert_eq!(vpid_of(q), n, "the new process takes the dead one's vpid");
    // Readers read the stale name at once: each reads the new process's stat.
    const READERS: usize = 8;
    let barrier = std::sync::Barrier::new(READERS);
    let results: Vec<std::io::Result<String>> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    fs::read_to_string(&stat)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for r in &results {
        match r {
            Ok(text) => assert!(text.starts_with(&format!("{n} (sleep) ")), "{text}"),
            Err(e) => panic!("{e}: {results:?}\n{}", daemon_log(&sock)),
        }
    }
}

#[test]
fn stopping_the_supervisor_unmounts_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    let tmp = TempDir::new("supervisor-stop");
    let mnt = tmp.subdir("mnt");
    let sock = tmp.0.join("ctl.sock");
    let (mut daemon, _mount) = serve(&mnt, &sock, &[]);
    let mut child = daemon.0.take().unwrap();
    let supervisor = child.id();
    let worker = worker_of(supervisor).expect("a daemon runs under the supervisor");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = run_child_with_deadline(&mut child, Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(!mounted(&mnt), "unmounted");
    assert!(!sock.exists(), "the control socket is removed");
    assert!(
        !std::path::Path::new(&format!("/proc/{worker}")).exists(),
        "the daemon is gone"
    );
}
