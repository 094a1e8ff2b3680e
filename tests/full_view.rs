//! The full view (`--full-view`, `--no-pidns`) where FUSE needs more than files: magic
//! links whose targets are not paths, and `poll(2)` on the mount table, against the
//! kernel's procfs of a pid namespace.

mod common;

use common::*;

/// What shell scripts, procps and util-linux do with magic links, in the full view: every
/// magic link whose target is not a path (a pipe behind `/dev/stdin` and `/dev/fd/N`, a
/// namespace behind `ns/pid`) is followed back into the daemon; a pipe a shell opened
/// through the view (`exec 3< <(…)`, `done < <(…)`) is the pipe to its commands too;
/// and another user's pipe is refused by its mode, as the kernel's open refuses it. (A pidfd from a directory descriptor, which psmisc's `killall`
/// uses, and an nsfs descriptor for `nsenter`'s `setns` cannot be had through FUSE:
/// docs/limits.md.)
const LINKS: &str = r#"
echo hi | cat /dev/stdin
cat <(echo x)
diff <(echo a) <(echo a) && echo same
while read -r line; do echo "read $line"; done < <(printf 'a\nb\n')
echo written > >(cat); wait $!
exec 3< <(echo held); cat /proc/self/fd/3; exec 3<&-
exec 3< <(echo x); readlink /proc/self/fd/3 | tr -d 0-9; exec 3<&-
while read -r line; do echo "$line, then $(tr '\n' ' ' < /dev/stdin)"; done < <(printf 'a\nb\nc\n')
exec 4> >(cat); echo through fd 4 > /dev/fd/4; exec 4>&-; wait $!
exec 5< /proc/self/ns/net; readlink /proc/self/fd/5 | tr -d 0-9
[ "$(stat -L -c %i /proc/self/fd/5)" = "$(readlink /proc/self/ns/net | tr -dc 0-9)" ] && echo ns-fd-ok; exec 5<&-
echo secret | setpriv --reuid 65534 --regid 65534 --clear-groups cat /dev/stdin 2>&1
setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'echo mine | cat /dev/stdin'
[ "$(ps -o pidns= -p 1)" = "$(readlink /proc/1/ns/pid | tr -dc 0-9)" ] && echo pidns-ok
[ "$(stat -L -c %i /proc/self/ns/pid)" = "$(readlink /proc/self/ns/pid | tr -dc 0-9)" ] && echo ino-ok
ns=$(lsns -t pid -n -o NS 2>&1); rc=$?
echo "$ns" | grep -qx "$(readlink /proc/self/ns/pid | tr -dc 0-9)" && echo lsns-ok || echo "lsns ($rc) lists: $ns"
echo done
"#;

#[test]
fn magic_links_in_the_full_view_behave_as_in_a_kernel_pid_namespace() {
    if !privileged() {
        return;
    }
    let kernel = in_kernel_ns(&["bash", "-c", LINKS]);
    for line in [
        "lsns-ok",
        "read b",
        "held",
        "ns-fd-ok",
        "through fd 4",
        "mine",
    ] {
        assert!(kernel.contains(line), "{line}: {kernel}");
    }
    for flags in [&["--full-view"][..], &["--no-pidns"][..]] {
        let (view, err, code) = in_vps(flags, &["bash", "-c", LINKS]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(view, kernel, "{flags:?} differs from the kernel: {err}");
    }
}

/// `findmnt --poll` waits for a change of the mount table with `poll(POLLPRI)` on
/// `mountinfo`; a mount in the VPS's mount namespace must wake it.
const POLL: &str = r#"
d=$(mktemp -d)
findmnt --poll --first-only --timeout 5000 -n -o ACTION,TARGET > $d.out & p=$!
sleep 0.5
mount -t tmpfs none $d
wait $p; echo "findmnt: $?"
sed "s|$d|DIR|" $d.out
umount $d; rm -rf $d $d.out
python3 - <<'PY'
import select
f = open("/proc/self/mountinfo"); f.read()
p = select.poll(); p.register(f, select.POLLPRI)
print("no change:", p.poll(0))
PY
"#;

#[test]
fn a_mount_table_change_wakes_poll_as_in_the_kernel() {
    if !privileged() {
        return;
    }
    let kernel = run_with_deadline(
        {
            let mut c = std::process::Command::new("unshare");
            c.args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--mount",
                "bash",
                "-c",
                POLL,
            ]);
            c
        },
        std::time::Duration::from_secs(30),
    );
    let kernel = String::from_utf8_lossy(&kernel.stdout).into_owned();
    // The kernel wakes findmnt with the change (which line it reports first depends on
    // how /proc itself is mounted, which differs by design).
    assert!(
        kernel.contains("findmnt: 0\n") && kernel.contains("no change: []"),
        "{kernel}"
    );
    assert_eq!(kernel.lines().count(), 3, "{kernel}");
    for flags in [&["--full-view"][..], &["--no-pidns"][..]] {
        let (view, err, code) = in_vps(flags, &["bash", "-c", POLL]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(
            view, "findmnt: 0\nmount      DIR\nno change: []\n",
            "{flags:?}: {err}"
        );
    }
}

/// Link targets as a reader in a chroot sees them: from its own root (`d_path`).
const CHROOT: &str = r#"
j=$(mktemp -d)
mount --rbind / $j
cd /tmp
chroot $j sh -c 'cd /tmp; readlink /proc/self/exe; readlink /proc/self/cwd; readlink /proc/self/root
exec 3</etc/hostname; readlink /proc/self/fd/3; readlink /proc/1/cwd; [ -n "$PWDX" ] && pwdx $$ | cut -d" " -f2'
umount -R $j; rmdir $j
"#;

#[test]
fn a_reader_in_a_chroot_sees_link_targets_from_its_root() {
    if !privileged() {
        return;
    }
    // With a pid namespace `$$` is a number of the view; without one (--no-pidns) it is
    // a real pid, which the view does not resolve for another process (docs/limits.md).
    for (flags, pwdx) in [
        (&["--full-view"][..], "PWDX=1"),
        (&["--no-pidns"][..], "PWDX="),
    ] {
        let kernel = in_kernel_ns(&["env", pwdx, "bash", "-c", CHROOT]);
        assert!(
            kernel.starts_with("/usr/bin/readlink\n/tmp\n/\n/etc/hostname\n"),
            "{kernel}"
        );
        let (view, err, code) = in_vps(flags, &["env", pwdx, "bash", "-c", CHROOT]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(view, kernel, "{flags:?}: {err}");
    }
}

/// `ps -e -o pid,ppid,pgid,sid,comm` rows of the orphaned groups' tree, without the
/// processes that only look (ps, and `vprocfs exec`), in the order of their names
/// (each has its own): the host numbers a tree VPS, and its pids wrap at `pid_max`, so
/// their order need not be the kernel namespace's.
fn tree_rows(ps: &str) -> String {
    let mut rows: Vec<&str> = ps
        .lines()
        .filter(|l| !l.ends_with(" ps") && !l.ends_with(" vprocfs"))
        .collect();
    rows.sort_by_key(|l| l.split_whitespace().last().map(str::to_string));
    rows.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn groups_whose_leaders_left_before_the_daemon_came_keep_their_numbers() {
    if !privileged() {
        return;
    }
    let script = script("orphans.py").display().to_string();
    let kernel = tree_rows(&in_kernel_ns(&["python3", &script, "--report"]));
    // The kernel: the dead leaders' numbers stay, init's inherited groups show 0.
    let fields = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let zeros = kernel
        .lines()
        .filter(|l| fields(l)[2..4] == ["0", "0"])
        .count();
    let kept = kernel.lines().filter(|l| fields(l)[2] != "0").count();
    assert!(zeros >= 2 && kept == 2, "{kernel}");
    for numbering in ["linear", "ns"] {
        let tmp = TempDir::new("orphans");
        let mnt = tmp.0.join("mnt");
        std::fs::create_dir_all(&mnt).expect("mnt");
        let sock = tmp.0.join("ctl.sock");
        // The tree is built before the daemon starts: it never saw the leaders.
        let mut init = std::process::Command::new("python3")
            .arg(&script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let pid = init.id();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(init.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("ready");
        assert_eq!(line, "ready\n");
        let _init = ChildGuard(Some(init));
        let members: Vec<i32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        // The orphans were reparented away from init: kill every sleeper of the tree at
        // the end, by pid.
        let sleepers: Vec<i32> = host_pids()
            .into_iter()
            .filter(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&script))
                    && p != pid as i32
            })
            .collect();
        let _kill = PidsGuard(sleepers.iter().chain(&members).copied().collect());
        let (_daemon, _mount) = serve(
            &mnt,
            &sock,
            &[
                "--vps".into(),
                format!("t:tree={pid}"),
                "--numbering".into(),
                numbering.into(),
            ],
        );
        let out = run_with_deadline(
            exec_in(
                &sock,
                "t",
                &["ps", "-e", "-o", "pid=,ppid=,pgid=,sid=,comm="],
            ),
            std::time::Duration::from_secs(30),
        );
        assert!(out.status.success(), "{out:?}");
        let view = tree_rows(&String::from_utf8_lossy(&out.stdout));
        // The orphans' parent is the host's subreaper or init of the host: 0 in both.
        assert_same_up_to_renaming(&kernel, &view);
    }
}

#[test]
fn listings_are_taken_when_read_as_in_the_kernel() {
    if !privileged() {
        return;
    }
    let probe = script("listings.py").display().to_string();
    let kernel = in_kernel_ns(&["/usr/bin/python3", &probe]);
    assert!(
        kernel.contains("new processes after a rewind: 1\n")
            && kernel.contains("own listing fd listed: True"),
        "{kernel}"
    );
    for flags in [&["--full-view"][..], &["--no-pidns"][..]] {
        assert_view_matches(flags, &["/usr/bin/python3", &probe], &kernel);
    }
}

#[test]
fn writes_are_allowed_and_refused_as_the_kernel_does() {
    if !privileged() {
        return;
    }
    let probe = script("writes.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    // The oracle says what the test is about: writes taken, and refused for the
    // unprivileged.
    assert!(
        kernel.contains("ok: echo 500 > /proc/self/oom_score_adj")
            && kernel.contains("after!")
            && kernel.contains("refused: setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'echo 1 > /proc/sys/vm/drop_caches' -> Permission denied"),
        "{kernel}"
    );
    for flags in [&["--full-view"][..], &["--no-pidns"][..]] {
        assert_view_matches(flags, &["sh", &probe], &kernel);
    }
}

/// A write of `ns_last_pid` sets the number the next process gets, as the kernel's
/// does in a pid namespace (CRIU's restore path; the seed's `last_pid`).
#[test]
fn ns_last_pid_sets_the_next_number() {
    if !privileged() {
        return;
    }
    let script = "echo 500 > /proc/sys/kernel/ns_last_pid; cut -d' ' -f1 /proc/self/stat; \
                  cat /proc/sys/kernel/ns_last_pid; \
                  setpriv --reuid 65534 --regid 65534 --clear-groups sh -c \
                  'echo 900 > /proc/sys/kernel/ns_last_pid' 2>/dev/null || echo refused";
    let kernel = in_kernel_ns(&["sh", "-c", script]);
    // cut gets 501; cat, the next process, 502, and shows it as the last pid.
    assert_eq!(kernel, "501\n502\nrefused\n");
    for flags in [
        &["--full-view"][..],
        &["--no-pidns", "--numbering", "ns"][..],
    ] {
        let (view, err, code) = in_vps(flags, &["sh", "-c", script]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(view, kernel, "{flags:?}: {err}");
    }
}

/// `pam_loginuid` writes the task's own `loginuid`, and a program may name itself
/// through `/proc/self/comm`: the kernel takes both only from the task itself, which the
/// view answers without changing them; another task's are refused, as the kernel
/// refuses them (the oracle).
#[test]
fn a_task_may_write_its_own_loginuid_and_comm_and_no_others() {
    if !privileged() {
        return;
    }
    let script = "for f in loginuid comm; do \
                  echo 1000 > /proc/self/$f && echo own-ok; sleep 5 & \
                  echo 1000 > /proc/$!/$f 2>/dev/null || echo other-refused; kill $!; done";
    let kernel = in_kernel_ns(&["sh", "-c", script]);
    assert_eq!(kernel, "own-ok\nother-refused\nown-ok\nother-refused\n");
    let (view, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(view, kernel, "{err}");
}

/// Under a low descriptor limit the daemon cannot raise (hard 1,024), with more
/// processes than its pidfds' share and more files than its memfds' share, every read
/// still succeeds and `ps` shows every process: each cache that keeps descriptors
/// (pidfds, kept files, idle memfds) keeps to its share (src/fds.rs), and what does not
/// fit is read by path. Measured before the memfds had a share: 1,456 of 2,812 reads
/// failed (`EMFILE`) once the idle backing files held every descriptor.
#[test]
fn a_low_descriptor_limit_never_fails_a_read() {
    if !privileged() {
        return;
    }
    // The sleepers end with the VPS's init (its pid namespace goes).
    let script = "for i in $(seq 700); do sleep 120 & done; \
        for i in 1 2; do ps -ef > /dev/null; done; \
        echo sleepers $(ps -e -o comm= | grep -c '^sleep$'); \
        bad=0; for i in 1 2; do for p in /proc/[0-9]*; do for f in stat status cmdline environ; do \
        cat $p/$f > /dev/null 2>&1 || bad=$((bad+1)); done; done; done; echo failed $bad";
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=1024:1024").arg(vprocfs()).args([
        "run",
        "--full-view",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let out = run_with_deadline(cmd, std::time::Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sleepers 700\n"), "{stdout}\n{stderr}");
    assert!(stdout.contains("failed 0\n"), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("refused"),
        "passthrough stays on: {stderr}"
    );
}

/// A walk through `/proc/self` in a mount of one VPS asks the daemon for the link's
/// target only, every time (each reader has its own), not for the name as well: the
/// name is the same for every reader, as procfs's is. Counted from the statistics
/// `run` logs at its end: before, each of the 200 walks below cost a lookup of `self`.
/// Each process is still shown its own number, also a child reading after its parent.
#[test]
fn a_walk_through_self_asks_for_the_target_only() {
    if !privileged() {
        return;
    }
    const WALKS: &str = r#"
import os
for _ in range(200):
    with open("/proc/self/stat") as f:
        assert f.read().split()[0] == str(os.getpid())
pid = os.fork()
if pid == 0:
    os._exit(0 if os.readlink("/proc/self") == str(os.getpid()) else 1)
_, status = os.waitpid(pid, 0)
print("child sees itself:", status == 0, "parent sees itself:", os.readlink("/proc/self") == str(os.getpid()))
"#;
    let mut cmd = std::process::Command::new(vprocfs());
    cmd.env("RUST_LOG", "vprocfs=info").args([
        "run",
        "--full-view",
        "--",
        "/usr/bin/python3",
        "-c",
        WALKS,
    ]);
    let out = run_with_deadline(cmd, std::time::Duration::from_secs(60));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout, "child sees itself: True parent sees itself: True\n",
        "{stderr}"
    );
    let count = |key: &str| -> u64 {
        let line = stderr
            .lines()
            .find(|l| l.contains("requests lookup="))
            .unwrap_or_else(|| panic!("no statistics in: {stderr}"));
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in: {line}"))
    };
    // The interpreter's own start walks a few dozen names; 200 walks through `self`
    // would add 200 lookups.
    assert!(count("lookup") < 150, "{stderr}");
    assert!(
        count("readlink") >= 202,
        "every walk asked for its target: {stderr}"
    );
}
