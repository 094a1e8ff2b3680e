//! `vprocfs run --full-view` (and `--no-pidns`) end to end, against the kernel's own /proc in
//! a pid namespace: the full view, where the daemon serves every entry. (The default
//! kernel pid view is the kernel's own procfs; tests/resources.rs covers it.)

mod common;

use common::*;
use std::fs;

const PY: &str = "/usr/bin/python3";

fn hostile() -> String {
    script("hostile_tree.py").display().to_string()
}

#[test]
fn ps_ef_shows_pid_1_and_nothing_of_the_host() {
    if !privileged() {
        return;
    }
    let (out, err, code) = in_vps(&["--full-view"], &["ps", "-ef"]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "only ps itself is in the VPS:\n{out}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&cols[1..3], ["1", "0"], "ps is pid 1 with ppid 0: {out}");
    assert!(lines[1].ends_with("ps -ef"), "{out}");
}

#[test]
fn pidns_view_is_identical_to_the_kernel_on_a_hostile_tree() {
    if !privileged() {
        return;
    }
    // REUSE=1 adds a process that gets the number of one that just died.
    let kernel = in_kernel_ns(&["env", "REUSE=1", PY, &hostile()]);
    let (view, err, code) = in_vps(&["--full-view"], &["env", "REUSE=1", PY, &hostile()]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(kernel.contains("Zl"), "the tree was built: {kernel}");
    assert!(
        kernel.starts_with("reused True\n"),
        "a pid was reused: {kernel}"
    );
    assert_eq!(view, kernel, "stderr of the view: {err}");
}

/// Random trees (tests/scripts/random_tree.py: forks, sessions, process groups, names
/// with spaces, parentheses and newlines, threads, exits, reaps, changes of user, in an
/// order drawn from a seed) show in the view as in the kernel's /proc: `ps`, the id
/// lines of `status`, `stat` up to `tpgid`, `children` and the threads of every
/// process, and what two unprivileged readers are let read (`stat`'s hidden fields,
/// `environ`, `maps`, `fd/`, `cwd`). Four seeds, each read path twice.
#[test]
fn random_trees_match_the_kernel() {
    if !privileged() {
        return;
    }
    let probe = script("random_tree.py").display().to_string();
    for (i, seed) in ["1", "2", "5", "8"].into_iter().enumerate() {
        let kernel = in_kernel_ns(&[PY, &probe, seed]);
        let processes = kernel.lines().filter(|l| l.contains(" ['Name:")).count();
        assert!(processes >= 8, "seed {seed}: the tree was built: {kernel}");
        let flags = BOTH_READ_PATHS[i % BOTH_READ_PATHS.len()];
        let (view, err, code) = in_vps(flags, &[PY, &probe, seed]);
        assert_eq!(code, 0, "seed {seed}, {flags:?}: stderr: {err}");
        assert_eq!(
            view, kernel,
            "seed {seed}, {flags:?}: stderr of the view: {err}"
        );
    }
}

/// The same random trees in the seed's own model, a VPS without a pid namespace (tree
/// membership), numbered by the engine: each numbering keeps the order of the kernel's
/// numbers, so with every process id replaced by its rank (`--canonical`) the view must
/// show what the kernel shows.
#[test]
fn random_trees_without_a_pid_namespace_match_the_kernel_up_to_numbering() {
    if !privileged() {
        return;
    }
    let probe = script("random_tree.py").display().to_string();
    let runs: [(&str, &[&str]); 3] = [
        ("3", &["--no-pidns"]),
        ("4", &["--no-pidns", "--numbering", "ns"]),
        ("6", &["--no-pidns", "--numbering", "sparse"]),
    ];
    for (seed, flags) in runs {
        let kernel = in_kernel_ns(&[PY, &probe, seed, "--canonical"]);
        let processes = kernel.lines().filter(|l| l.contains(" ['Name:")).count();
        assert!(processes >= 8, "seed {seed}: the tree was built: {kernel}");
        // The probe exits 75 when the host's pids came round during its run (a host
        // forking fast: other tests, CI's neighbours), after which ranks cannot stand
        // for vpids that follow them; such a run is made again, a few times at most.
        let mut tries = 0;
        let (view, err, code) = loop {
            tries += 1;
            let run = in_vps(flags, &[PY, &probe, seed, "--canonical"]);
            if run.2 != 75 || tries == 4 {
                break run;
            }
        };
        assert_eq!(code, 0, "seed {seed}, {flags:?}: stderr: {err}");
        assert_eq!(
            view, kernel,
            "seed {seed}, {flags:?}: stderr of the view: {err}"
        );
    }
}

/// The full view with each of the two ways reads are served: snapshots the kernel
/// reads through FUSE passthrough (the default), and reads through the daemon.
const BOTH_READ_PATHS: &[&[&str]] = &[&["--full-view"], &["--full-view", "--no-passthrough"]];

/// Runs probe `name` (tests/scripts) in a kernel pid namespace and in a VPS, and checks
/// that the kernel's output shows `kernel_shows` (the probe did what it means to) and
/// that the view's output is the same, byte for byte.
fn probe_matches_kernel(name: &str, kernel_shows: &str) {
    probe_matches_kernel_with(name, &[kernel_shows], &[&["--full-view"]]);
}

/// [`probe_matches_kernel`] with several lines the kernel's output must show, and the
/// view made with each of `flags` in turn.
fn probe_matches_kernel_with(name: &str, kernel_shows: &[&str], flags: &[&[&str]]) {
    let probe = script(name).display().to_string();
    let kernel = in_kernel_ns(&[PY, &probe]);
    for shows in kernel_shows {
        assert!(kernel.contains(shows), "{shows}: {kernel}");
    }
    for f in flags {
        assert_view_matches(f, &[PY, &probe], &kernel);
    }
}

/// Threads are numbered when they are made, as a pid namespace numbers them: the
/// init's three threads 2, 3 and 4, then its child 5, also where the view numbers
/// densely itself. Before, a thread's fork event was judged by the parent it names (the
/// process's parent: for the init's threads, outside the VPS), so without a pid
/// namespace the threads were numbered when first read, after the child (child 2,
/// threads 3 to 5).
#[test]
fn threads_are_numbered_when_made() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "thread_numbers.py",
        &["processes: [1, 5]\nthreads of init: [1, 2, 3, 4]\nlast pid: 5\n"],
        &[&["--full-view"], &["--no-pidns", "--numbering", "ns"]],
    );
}

/// A reaped process, zombies, threads and held directories. Without FUSE passthrough
/// the view answers as procfs, byte for byte. With it (the default), a file is rendered
/// at open and every read is the kernel's, from that snapshot: a file opened before its
/// process died still reads, where procfs makes the text at the first read and answers
/// `ESRCH` (docs/limits.md), or no text (`children`), or `ENOENT` (`fdinfo/<n>`). Those
/// lines must then be the snapshot of the right process, taken at open; every other
/// line is the kernel's.
#[test]
fn zombies_threads_and_held_directories_match_the_kernel() {
    if !privileged() {
        return;
    }
    let probe = script("zombie_and_threads.py").display().to_string();
    let kernel = in_kernel_ns(&[PY, &probe]);
    assert!(kernel.contains("('held dead thread ls', 0)"), "{kernel}");
    assert!(
        kernel.contains("('first read after death', 'ESRCH')"),
        "{kernel}"
    );
    assert_view_matches(&["--full-view", "--no-passthrough"], &[PY, &probe], &kernel);

    let (view, err, code) = in_vps(&["--full-view"], &[PY, &probe]);
    assert_eq!(code, 0, "stderr: {err}");
    let (mut kernel_lines, mut view_lines) = (Vec::new(), Vec::new());
    for (k, v) in kernel.lines().zip(view.lines()) {
        if k.starts_with("('first read after death'") {
            // The status of `sleep` (the probe's vpid 3 in both), as it was at open.
            assert!(
                v.starts_with("('first read after death', b'Name:\\tsleep\\n")
                    && v.contains("\\nPid:\\t3\\n"),
                "{v}"
            );
            continue;
        }
        if k.starts_with("('first read after death of'") {
            // `children`, `fdinfo/0`: the same file, read from its snapshot.
            let file = &k[..k.rfind(", ").unwrap_or(k.len())];
            assert!(v.starts_with(file) && v.contains(", b'"), "{v}");
            continue;
        }
        kernel_lines.push(k);
        view_lines.push(v);
    }
    assert_eq!(kernel.lines().count(), view.lines().count(), "{view}");
    assert_eq!(view_lines, kernel_lines, "stderr of the view: {err}");
}

/// `/proc` read in several `getdents64` calls while processes are reaped and forked
/// between them, and `fd/`, `fdinfo/` while descriptors are closed and opened: procfs
/// goes on from the number where a call ended, with the processes (descriptors) there
/// are then (the view listed those of the first call to the end, the reaped ones too,
/// and none forked since).
#[test]
fn proc_read_in_several_calls_lists_the_processes_there_are_then() {
    if privileged() {
        probe_matches_kernel(
            "listing_churn.py",
            "reaped before the later calls, listed []",
        );
    }
}

/// `lseek` of every kind on a process's files and on global ones: procfs's seq files
/// refuse `SEEK_END`, `SEEK_DATA` and `SEEK_HOLE` with `EINVAL`, where FUSE answered
/// from a size of 0 (0, `ENXIO`); its other files seek as a file of size 0. With and
/// without passthrough.
#[test]
fn lseek_answers_as_procfs() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with("seeks.py", &["stat ['EINVAL', 5, 3"], BOTH_READ_PATHS);
}

/// A capability counts in its user namespace and below it (the kernel's
/// `cap_capable`): root of a namespace of its own (`unshare -Ur`, a rootless container,
/// a sandbox) opens no `environ`, `maps`, `cwd` or `exe` of a process above it, where
/// the daemon counted its `CAP_SYS_PTRACE` everywhere (8 lines apart before); the
/// owner of a namespace may ptrace-read its processes; root inside may read those of
/// other uids there, but not one whose memory belongs to the namespace above (not
/// dumpable). And the ids procfs prints in the reader's namespace: `status`'s `Uid:`,
/// `Gid:` and `Groups:`, the lower ids of the id maps, `loginuid`, the uid column of
/// `net/tcp`, the ids of `sysvipc/shm`, and so `ps`'s user columns (the daemon showed
/// the kernel's 101000 where procfs shows 1000 inside); `keys` lists only the keys of
/// users the reader's namespace maps. Namespaces two deep: the maps of an inner one
/// written by root of the outer one, and by a uid of it without capabilities (its own
/// id only), as the kernel takes them from the writer's namespace (refused before, the
/// write being made from the daemon's), and read from inside in the outer's numbering.
/// Readers inside and outside, with and without passthrough.
#[test]
fn capabilities_count_only_in_their_own_user_namespace() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "user_namespaces.py",
        &[
            "as root of its own namespace\n   dumpable environ Permission denied, maps Permission denied",
            "as uid 1000\n   dumpable environ Permission denied, maps ok",
            "ids as root\nUid: 1000 1000 1000 1000 Gid: 1000 1000 1000 1000 Groups: 5 100",
            " 0 4294967295 4294967295| 0 4294967295 4294967295|",
            "00000000  1000        0\n",
            "      0  1000  1000  1000  1000\n",
            "keys 0 key-users 0\n",
            "as root of the outer namespace\n   write uid_map '0 1000 1' ok\n   write gid_map '0 1000 1' ok\n 0 1000 1\n",
            "   write uid_map '0 1000 2' Operation not permitted\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// The sysctls the kernel keeps per user namespace (`/proc/sys/user/*`,
/// tests/scripts/user_ns_sysctls.sh): a reader in a user namespace of its own reads
/// its namespace's limits (2147483647 in a new one), and a writer there sets them where
/// that namespace lets it (its root, mapped or not as the kernel decides, and nobody's
/// own root), leaving the outer ones as they were. The view read and wrote the daemon's:
/// the host's limits, and its root's write refused.
#[test]
fn user_namespace_sysctls_are_the_readers_namespaces() {
    if !privileged() {
        return;
    }
    let probe = script("user_ns_sysctls.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    assert!(
        kernel.contains("own namespace: 2147483647 2147483647 \n")
            && kernel.contains(
                "root of its own: write rc=0\n  reads 7\n  a namespace inside reads 2147483647\n"
            )
            && kernel.contains("nobody, root of its own: write rc=0 reads 5\n"),
        "the kernel: {kernel}"
    );
    for flags in BOTH_READ_PATHS {
        assert_view_matches(flags, &["sh", &probe], &kernel);
    }
}

/// Every sysctl read in small pieces, as dash's `read` reads a file (a byte at a time),
/// as root and as nobody: an integer sysctl makes its text at a read from offset 0 and
/// gives nothing past it, a string sysctl goes on in its text, and one that opens and
/// fails its reads (`stable_secret`) fails them; an integer sysctl held open and read
/// again from offset 0 shows the value of then. Before, the view served every sysctl
/// as a text fixed at open, read at any offset: 707 of 755 files answered otherwise
/// than procfs, and dash's `read x < /proc/sys/kernel/pid_max` got the whole number.
#[test]
fn sysctls_read_in_pieces_as_procfs_gives_them() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "sysctl_reads.py",
        &[
            "/proc/sys/kernel/pid_max 1 0 0\n",
            "/proc/sys/kernel/osrelease 1 ",
            "as nobody:\n",
            "held ns_last_pid: b'",
        ],
        BOTH_READ_PATHS,
    );
}

/// Writes to `ns_last_pid` as shells and restore tools make them: one number in C's
/// bases, the bytes the kernel takes (a write returns only those, and a write past
/// offset 0 is ignored), the range, `CAP_SYS_ADMIN` or `CAP_CHECKPOINT_RESTORE`, and
/// the next process numbered after the number written, also in the seed's own model
/// with dense numbers. Before, the view parsed decimal only, took `70 80` for an
/// error, applied writes past offset 0, refused a writer with `CAP_CHECKPOINT_RESTORE`
/// alone, and showed the writer's own number as the last pid after a write in a pid
/// namespace.
#[test]
fn ns_last_pid_takes_writes_as_the_kernel_does() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "ns_last_pid_writes.py",
        &[
            "b'0x20' 4 then 3 -> 32\n",
            "b'70 80\\n' 3 then 3 -> 70\n",
            "b'7x' EINVAL then 3 -> 200\n",
            "next process: 61 last: 61\n",
            "nobody with CAP_CHECKPOINT_RESTORE: written",
        ],
        &[
            &["--full-view"],
            &["--full-view", "--no-passthrough"],
            &["--no-pidns", "--numbering", "ns"],
        ],
    );
}

/// The host's `pid_max` as a test found it, put back when dropped if a write reached
/// it, whatever the test's outcome.
struct HostPidMax(String);

impl HostPidMax {
    const PATH: &'static str = "/proc/sys/kernel/pid_max";

    fn read() -> String {
        fs::read_to_string(Self::PATH).unwrap()
    }

    fn keep() -> HostPidMax {
        HostPidMax(Self::read())
    }
}

impl Drop for HostPidMax {
    fn drop(&mut self) {
        if fs::read_to_string(Self::PATH).ok().as_ref() != Some(&self.0) {
            let _ = fs::write(Self::PATH, &self.0);
        }
    }
}

/// `pid_max` is a pid namespace's own (Linux 6.14 on), which the kernel answers for its
/// writer's namespace: a write in the VPS sets the VPS's, as in the kernel's own
/// namespace, and never the host's. Before, the daemon wrote it on a thread of its own
/// (which no pid namespace can be entered by) and so set the host's `pid_max`, while
/// the VPS went on showing its old one. The write takes no pid: the writer the daemon
/// forks into the namespace took one, and the next process got the number after it.
#[test]
fn pid_max_writes_stay_in_the_vps_namespace() {
    if !privileged() {
        return;
    }
    // Before 6.14 pid_max is the host's for everyone: the kernel's own run of the probe
    // would set the host's, which no test may do.
    if !pid_max_per_namespace() {
        return;
    }
    let before = HostPidMax::keep();
    probe_matches_kernel_with(
        "pid_max_writes.py",
        &[
            "b'301' 3 301 next 2\n",
            "b'300' EINVAL 301 next 3\n",
            "b'0x1000' 6 4096 next 7\n",
            "b'5000 6000' 5 5000 next 8\n",
            "b'550' 3 550 next 300\n",
        ],
        BOTH_READ_PATHS,
    );
    // Without a namespace, a VPS of dense numbers has one of its own all the same (its
    // engine's, where its numbers wrap); it showed, and let root write, the host's.
    probe_matches_kernel_with(
        "pid_max_writes.py",
        &["b'4194304' 7 4194304 next 5\n"],
        &[&["--no-pidns", "--numbering", "ns"]],
    );
    assert_eq!(HostPidMax::read(), before.0, "the host's pid_max moved");
}

/// A pid namespace nested in the VPS's has a `pid_max` of its own (Linux 6.14 on), which
/// its readers are told and its writers set: before, a write from inside set the VPS's
/// (the host's, in a VPS without a pid namespace), and its readers were told the VPS's.
/// The writes take no pid in any namespace: a second write from inside used to give
/// back a last pid of the VPS's that counted the first write's helpers, and a
/// `pid_max` set under the namespace's last pid could not have its last pid given back.
#[test]
fn a_nested_namespace_has_its_own_pid_max() {
    if !privileged() || !pid_max_per_namespace() {
        return;
    }
    let before = HostPidMax::keep();
    let probe = script("nested_pid_max.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    assert!(
        kernel.contains("inside after writing 6000: 6000\n")
            && kernel.contains("under last pid 600, two commands then: 301\n")
            && kernel.contains("two deep: 4194304\n"),
        "the kernel: {kernel}"
    );
    for flags in BOTH_READ_PATHS {
        assert_view_matches(flags, &["sh", &probe], &kernel);
    }
    // Without a pid namespace, a VPS of dense numbers keeps a `pid_max` of its own as
    // a namespace does (its engine wraps there); one of linear numbers shows the host's,
    // so only the lines of the namespaces nested in it are the kernel's.
    let nested = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("outside"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (view, err, code) = in_vps(&["--no-pidns", "--numbering", "ns"], &["sh", &probe]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(view, kernel, "{err}");
    let (view, err, code) = in_vps(&["--no-pidns"], &["sh", &probe]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(nested(&view), nested(&kernel), "{err}");
    assert!(
        view.contains(&format!("outside: {}\n", before.0.trim())),
        "a VPS of linear numbers shows the host's pid_max: {view}"
    );
    assert_eq!(HostPidMax::read(), before.0, "the host's pid_max moved");
}

/// A process's `cgroup` and `cpuset` show its paths from the root of the reader's cgroup
/// namespace: read from a new one (`unshare -C`, as a container runtime makes), every
/// path is `/` on procfs; the daemon read them in its own namespace and showed the
/// whole path from the host's root (`cpuset` until the tenth session).
#[test]
fn cgroup_paths_are_the_readers_cgroup_namespaces() {
    if !privileged() {
        return;
    }
    let script = "unshare -C sh -c 'cat /proc/self/cgroup /proc/1/cgroup; \
                  cat /proc/self/cpuset /proc/1/cpuset 2>/dev/null'";
    let kernel = in_kernel_ns(&["sh", "-c", script]);
    assert!(
        !kernel.is_empty() && kernel.lines().all(|l| l.ends_with(":/") || l == "/"),
        "{kernel}"
    );
    for flags in BOTH_READ_PATHS {
        assert_view_matches(flags, &["sh", "-c", script], &kernel);
    }
}

/// `mountinfo` shows the root of each cgroup mount from the root of the reader's cgroup
/// namespace (`/../..` from a namespace made two levels below a hierarchy's root, where
/// `vprocfs run` puts its VPS), as the kernel's own procfs of the VPS's namespace,
/// mounted inside it, shows the same reader; the daemon read it from its own namespace
/// and showed `/`.
#[test]
fn cgroup_mount_roots_are_the_readers_cgroup_namespaces() {
    if !privileged() {
        return;
    }
    let script = r#"D=$(mktemp -d); mount -t proc proc $D
for how in "" "unshare -C"; do
  $how sh -c "awk '\$9 ~ /cgroup/ {print \$4, \$5}' /proc/self/mountinfo > $D.v
    awk '\$9 ~ /cgroup/ {print \$4, \$5}' $D/self/mountinfo > $D.k"
  if cmp -s $D.v $D.k; then echo "[$how] same $(cut -d' ' -f1 $D.v | sort -u | tr '
' ' ')"
  else echo "[$how] differs:"; diff $D.k $D.v; fi
done
umount $D; rmdir $D; rm -f $D.v $D.k"#;
    for flags in [
        BOTH_READ_PATHS[0],
        BOTH_READ_PATHS[1],
        &["--no-pidns", "--numbering", "ns"],
    ] {
        let (out, err, code) = in_vps(flags, &["sh", "-c", script]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{flags:?}: {out}");
        assert!(lines[0].starts_with("[] same / "), "{flags:?}: {out}");
        // The hierarchies in which run made the VPS's cgroup show their root above.
        assert!(
            lines[1].starts_with("[unshare -C] same ") && lines[1].contains(" /../.. "),
            "{flags:?}: {out}"
        );
    }
}

/// A reader in a time namespace of its own (`unshare -T --boottime 100000`, as a
/// checkpoint restore makes one) is shown its own clock in `uptime`, `btime` and every
/// start time, as procfs shows it, so `ps` shows true elapsed times. Before, the kernel
/// pid view showed the VPS's uptime beside the kernel's start times on the reader's
/// clock (`ps` elapsed 4123039872 s), and the full view the daemon's uptime.
#[test]
fn a_reader_in_a_time_namespace_of_its_own_is_shown_its_clock() {
    if !privileged() {
        return;
    }
    let probe = script("time_namespace.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    assert_eq!(kernel.matches(": yes\n").count(), 4, "the kernel: {kernel}");
    for flags in [&[][..], BOTH_READ_PATHS[0], BOTH_READ_PATHS[1]] {
        assert_view_matches(flags, &["sh", &probe], &kernel);
    }
}

/// A VPS started inside a VPS counts its clock from its own start, as a pid and time
/// namespace made inside another do (tests/scripts/nested_clock.sh): the kernel takes a
/// time namespace's offsets from the host's clock, and the inner `vprocfs run` wrote
/// them from the outer VPS's, so its processes started half an hour ahead of its
/// `btime` (`ps` elapsed 4123166816 s); its daemon, in the outer time namespace, also
/// counts from that clock.
#[test]
fn a_vps_inside_a_vps_keeps_one_clock() {
    if !privileged() {
        return;
    }
    let probe = script("nested_clock.sh").display().to_string();
    // The inner namespaces as `vprocfs run` makes a VPS's: its boottime starts at 0.
    let inner = format!(
        "exec unshare --pid --time --boottime -$(cut -d. -f1 /proc/uptime) --fork \
         --mount-proc -- sh {probe}"
    );
    let kernel = in_kernel_ns(&["sh", "-c", &inner]);
    assert_eq!(kernel.matches(": yes\n").count(), 3, "the kernel: {kernel}");
    let vprocfs = vprocfs().display().to_string();
    for flags in [&[][..], &["--full-view"]] {
        let (view, err, code) = in_vps(flags, &[&vprocfs, "run", "--", "sh", &probe]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(view, kernel, "{flags:?}: stderr of the view: {err}");
    }
}

/// A full view served by a daemon inside a pid namespace (a `vprocfs run --full-view`
/// inside a VPS, or inside a container), where the kernel gives it no process events
/// and membership comes from scans: the hostile and random trees show as in nested pid
/// namespaces. Before, a process forked since the last scan had no number until a
/// reader listed `/proc`, so `/proc/self` and `/proc/$!` were missing and `ps` refused
/// to run ("mount -t proc proc /proc").
#[test]
fn a_full_view_served_from_inside_a_pid_namespace_matches_the_kernel() {
    if !privileged() {
        return;
    }
    let vprocfs = vprocfs().display().to_string();
    let runs: [(&str, &[&str], &[&str]); 2] = [
        ("hostile_tree.py", &[], &[]),
        ("random_tree.py", &["7"], &["--full-view"]),
    ];
    for (name, args, outer) in runs {
        let probe = script(name).display().to_string();
        let inner = format!(
            "exec unshare --pid --time --boottime -$(cut -d. -f1 /proc/uptime) --fork \
             --mount-proc -- {PY} {probe} {}",
            args.join(" ")
        );
        let kernel = in_kernel_ns(&["sh", "-c", &inner]);
        assert!(kernel.lines().count() > 20, "{name}: the kernel: {kernel}");
        let argv = [
            &[&vprocfs[..], "run", "--full-view", "--", PY, &probe][..],
            args,
        ]
        .concat();
        let (view, err, code) = in_vps(outer, &argv);
        assert_eq!(code, 0, "{name}, outer {outer:?}: {err}");
        assert_eq!(
            view, kernel,
            "{name}, outer {outer:?}: stderr of the view: {err}"
        );
    }
}

/// vprocfs run as root of a user namespace of its own (`unshare -r`, as in a rootless
/// container): the VPS runs and `ps` reads it, and the daemon's FUSE thread is never
/// left at `SCHED_IDLE`. Its capabilities there do not count for the scheduler, so it
/// could lower its thread to follow a reader but not raise it again: every burst ended
/// with "cannot give the FUSE thread its scheduling policy back" and a thread that a
/// busy CPU would starve.
#[test]
fn vprocfs_runs_as_root_of_a_user_namespace_of_its_own() {
    if !privileged() {
        return;
    }
    for flags in [&[][..], &["--full-view"]] {
        let ps = "ps -e -o pid=,comm= && ps -ef > /dev/null";
        let args = [&["run"][..], flags, &["--", "sh", "-c", ps]].concat();
        let out = vprocfs_unshared(&["--user", "--map-root-user", "--mount"], "", &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "      1 sh\n      2 ps\n"
        );
        assert!(!err.contains("scheduling policy"), "{flags:?}: {err}");
    }
}

/// Under a small descriptor limit that root cannot raise (no `CAP_SYS_RESOURCE`, as in
/// many containers) the full view still answers: its caches take nothing from the
/// descriptors the daemon needs for itself. At 64 they took 48, and `ps` and
/// `/proc/meminfo` failed with "Too many open files" in a VPS of 8 processes.
#[test]
fn a_small_descriptor_limit_leaves_the_view_working() {
    if !privileged() {
        return;
    }
    let inside = "for i in $(seq 30); do sleep 30 & pids=\"$pids $!\"; done; \
                  ps -e | wc -l; cat /proc/meminfo > /dev/null && echo meminfo-ok; \
                  kill $pids";
    let args = ["run", "--full-view", "--", "sh", "-c", inside];
    let out = vprocfs_unshared(&["--mount"], "ulimit -n 48", &args);
    assert!(out.status.success(), "{out:?}");
    // The header, init, 30 sleepers, ps and wc.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "34\nmeminfo-ok\n",
        "{out:?}"
    );
}

/// A reader waiting in `poll` for its mount table to change (systemd, a container
/// runtime) is woken with POLLPRI when it does, and reads the new table from offset 0,
/// also from a cgroup namespace of its own, whose `mountinfo` is read as the reader:
/// that one was the text of its open, always ready and never new. A reaped process's
/// `mountinfo` opened before stays readable, as procfs's holds its mount namespace.
#[test]
fn a_mount_table_change_wakes_its_poller_as_on_procfs() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "mount_poll.py",
        &[
            "[own cgroup namespace: yes] poll after a mount: IN PRI ERR\n",
            "[own cgroup namespace: yes] mounted after a read from 0: True\n",
            "[own cgroup namespace: yes] a reaped process's, read: True and again from 0: True\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// Whether this kernel keeps `pid_max` per pid namespace (Linux 6.14): before, a write
/// in a namespace sets the host's, which no test may do. Says why when it does not.
fn pid_max_per_namespace() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    if (major, minor) < (6, 14) {
        eprintln!("skipped: pid_max is per pid namespace from Linux 6.14, this is {release}");
        return false;
    }
    true
}

/// `task/` lists a group's threads in the kernel's order, the order they were made (the
/// group's list), also when thread ids come round past `pid_max`. The daemon sorted them
/// by their real ids, which at a wrap of the host's pids put the newest threads first:
/// the probe, which names threads by their rank in the listing, then ended other
/// threads than the ones it meant (it hung CI once, on a host of `pid_max` 32768). Here
/// the daemon's "host" is a pid namespace whose `pid_max` is 1000 and last pid 950, so
/// the probe's hundred threads come round at 1000 every time (there the daemon has no
/// process events and rescans, which changes nothing in a listing).
#[test]
fn task_listing_keeps_the_kernels_order_when_thread_ids_come_round() {
    if !privileged() || !pid_max_per_namespace() {
        return;
    }
    let probe = script("task_listing_calls.py").display().to_string();
    let kernel = in_kernel_ns(&[PY, &probe]);
    for flags in BOTH_READ_PATHS {
        let run = format!(
            "echo 1000 > /proc/sys/kernel/pid_max && echo 950 > /proc/sys/kernel/ns_last_pid \
             && '{}' run {} -- {PY} '{probe}' \
             && [ \"$(cat /proc/sys/kernel/ns_last_pid)\" -lt 950 ] && echo came round",
            vprocfs().display(),
            flags.join(" "),
        );
        let view = in_kernel_ns(&["sh", "-c", &run]);
        assert_eq!(view, format!("{kernel}came round\n"), "{flags:?}");
    }
}

/// A shell's short-lived processes take numbers as in a kernel pid namespace, also in
/// the seed's model numbered densely, where most are reaped before the daemon reads
/// them (tests/scripts/shell_numbering.sh): before, such a VPS numbered every later
/// process one or more below the kernel's in two runs of three.
#[test]
fn short_lived_processes_are_numbered_as_the_kernel_numbers_them() {
    if !privileged() {
        return;
    }
    let probe = script("shell_numbering.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    assert!(kernel.contains("== e: last "), "{kernel}");
    for flags in [&["--full-view"][..], &["--no-pidns", "--numbering", "ns"]] {
        for _ in 0..2 {
            assert_view_matches(flags, &["sh", &probe], &kernel);
        }
    }
}

/// `task/` and a process's directory listed while threads start, end and exec from a
/// non-leader thread, each listed twice in a row: the second listing may be the one the
/// kernel kept (`FOPEN_CACHE_DIR`), which must never lag behind a change.
#[test]
fn thread_listings_follow_threads_as_the_kernel_does() {
    if privileged() {
        probe_matches_kernel("thread_listings.py", "('child after exec', ['");
    }
}

/// The flag procfs sets on a task that used a superuser privilege (`PF_SUPERPRIV`, ps's
/// `F` 4, which `ps -l` and `ps -elf` show of ps itself: it reads `pid_max`): set by the
/// reads procfs grants by a capability (the sysctls whose permission hook asks one, a
/// file the mode bits refuse, another task's `timerslack_ns`), not by the others, as
/// the kernel sets it (tests/scripts/superpriv.py).
#[test]
fn a_reader_using_a_privilege_is_marked_as_the_kernel_marks_it() {
    if privileged() {
        probe_matches_kernel_with(
            "superpriv.py",
            &[
                "pid_max: ok, marked True\n",
                "vm/swappiness: ok, marked False\n",
            ],
            BOTH_READ_PATHS,
        );
    }
}

/// The owner the kernel judges an `O_NOATIME` open by itself, from the attributes it
/// keeps with a name: after a process looked at its own directory as root, dropped to
/// another uid, then exec'd, as procfs recomputes it at every walk
/// (tests/scripts/owner_after_setuid.py). The view kept the name, and the root owner
/// with it, until the process ended.
#[test]
fn an_owner_the_kernel_checks_follows_credentials_as_on_procfs() {
    if privileged() {
        probe_matches_kernel_with(
            "owner_after_setuid.py",
            &["after exec ['ok', 'ok', 'ok']\n"],
            BOTH_READ_PATHS,
        );
    }
}

/// A listing's inode numbers (`d_ino`: `ls -i`, `find -inum`, `os.scandir`) are those
/// `lstat` gives its entries, and `.` and `..` the directory's and its parent's, as
/// procfs's are: the view made them from a hash of the path, unrelated to the inode a
/// lookup then made, and 1 for `.` and `..` (tests/scripts/entry_inodes.py).
#[test]
fn a_listing_shows_the_inode_numbers_of_its_entries() {
    if privileged() {
        probe_matches_kernel_with(
            "entry_inodes.py",
            &["/proc/self/task (0, 2) dots (True, True)\n"],
            &[
                &["--full-view"],
                &["--full-view", "--no-passthrough"],
                &["--no-pidns"],
            ],
        );
    }
}

/// `task/` of a hundred threads read in getdents calls of 320 bytes while threads end
/// and start between the calls: each call lists what is there then, going on from the
/// thread the last call could not return, or by count once it is gone (procfs's
/// `first_tid`; tests/scripts/task_listing_calls.py).
#[test]
fn task_read_in_several_calls_goes_on_as_procfs_does() {
    if privileged() {
        probe_matches_kernel_with(
            "task_listing_calls.py",
            &["gone [11, 12, 13, 14, 15]\n", "'new', 'new', 'new']\n"],
            BOTH_READ_PATHS,
        );
    }
}

/// A process reached while alive (its file read, its directory or an entry stat'ed, its
/// link read, its directory listed…), left to live a moment or not, killed and waited
/// for, and reached the same way again: `ENOENT` at once, as procfs's walk fails, also
/// after it was reached once more as a zombie. Found with the kernel's cache answering
/// the `stat` of an entry after the wait (its name and attributes kept until the exit
/// event was applied), and a retired inode answering `ESRCH` to an open through a name.
#[test]
fn a_reaped_process_is_gone_at_once_whichever_way_it_is_reached() {
    if privileged() {
        for _ in 0..2 {
            probe_matches_kernel(
                "reaped_entries.py",
                "lived 0.4: stat entry: alive ok, reaped ENOENT; zombie ok, reaped ENOENT",
            );
        }
    }
}

/// A process `stat`ed alive and then as a zombie is gone at once when reaped: the
/// attributes answered for the zombie, which may come through the name kept while it
/// lived, are not kept (they answered a `stat` after the reap a few times in a
/// thousand).
#[test]
fn a_zombie_looked_at_is_gone_at_once_when_reaped() {
    if privileged() {
        probe_matches_kernel("zombie_then_reaped.py", "reaped and still there: 0 of 1000");
    }
}

/// A process's `cmdline`, which the view keeps open once read (`view/kept.rs`), read
/// again after the process execs shows the new command, as procfs makes it at every
/// read; a command line longer than a page, in one read and in small ones; a zombie's.
#[test]
fn a_kept_cmdline_follows_an_exec_as_the_kernel_does() {
    if privileged() {
        probe_matches_kernel("cmdline_exec.py", "short after exec 11 ");
    }
}

/// chmod, chown, utime, truncate, the extended-attribute calls, statvfs, fsync and the
/// calls that make or remove names, as root and as `nobody`, on process directories
/// (which procfs marks immutable), their files, namespaces behind `ns/` links, sysctls
/// and `/proc`'s global entries: each answers as procfs answers, in both read paths.
/// fsync and fdatasync succeeded through the view, where procfs answers EINVAL.
#[test]
fn file_system_calls_answer_as_the_kernel() {
    if privileged() {
        probe_matches_kernel_with(
            "fs_calls.py",
            &[
                "root /proc/self/ attrs ['EPERM', 'EPERM', 'EPERM'",
                "root syncs [['EINVAL', 'EINVAL'], ['EINVAL', 'EINVAL'], ['EINVAL', 'EINVAL'],",
            ],
            BOTH_READ_PATHS,
        );
    }
}

/// A process's socket through its `fd/` link: a socket to `stat`, of the inode number
/// the link names (what `lsof -i` and `ss` match against /proc/net/tcp), `ENXIO` to an
/// open, and `lsof -i` finds it: as on the kernel's procfs.
#[test]
fn a_socket_behind_an_fd_link_is_the_kernels() {
    if privileged() {
        probe_matches_kernel("sockets.py", "inode is the link's True");
    }
}

/// Pages spliced from a process's file into a pipe keep their text after the daemon
/// rewrites the memfd behind them for later opens (src/backing/: a spare is truncated
/// before it is written, so the pipe keeps the old page). No kernel differential:
/// procfs refuses to splice a process's files (`EINVAL`). Measured: with the rewrite in
/// place instead, the pipe showed the later text ("changed") every time.
#[test]
fn a_spliced_snapshot_keeps_its_text_when_its_memfd_is_rewritten() {
    if !privileged() {
        return;
    }
    let probe = script("spliced_snapshot.py").display().to_string();
    let (out, err, code) = in_vps(&["--full-view"], &[PY, &probe]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "unchanged\n", "stderr: {err}");
}

/// A reader waiting on `/proc/kmsg` holds nobody else up, a non-blocking read gets
/// `EAGAIN`, and a signal ends the wait: as on the kernel's procfs.
#[test]
fn a_waiting_read_matches_the_kernel() {
    if privileged() {
        probe_matches_kernel("kmsg_wait.py", "waiter after SIGTERM: -15");
    }
}

/// procfs refuses `mmap`; through FUSE passthrough the kernel maps the daemon's memfd,
/// and the mapping outlives its open. A `nobody` reader's mapping of root's `stat`
/// (code and stack addresses masked for it) must not show root's later, unmasked open
/// of the same file: it did while an idle memfd was rewritten for the next open.
#[test]
fn a_mapping_shows_only_its_own_readers_snapshot() {
    if !privileged() {
        return;
    }
    let probe = script("mapped_snapshot.py").display().to_string();
    assert_eq!(in_kernel_ns(&[PY, &probe]), "refused ENODEV\n");
    for flags in [&["--full-view"][..], &["--full-view", "--no-passthrough"]] {
        let (view, err, code) = in_vps(flags, &[PY, &probe]);
        assert_eq!(code, 0, "{flags:?}: stderr: {err}");
        // With passthrough the kernel maps the snapshot; without it, direct I/O
        // refuses a shared mapping as procfs does.
        let want = if flags.len() == 1 {
            "unchanged\n"
        } else {
            "refused ENODEV\n"
        };
        assert_eq!(view, want, "{flags:?}: stderr: {err}");
    }
}
/// Comm names that contain digits would be renamed like pids by the comparison: they are
/// compared verbatim by the exact pid-namespace test, and masked here.
fn mask_comms(s: &str) -> String {
    s.replace("a) 1 2 (b", "a)_one_two_(b")
        .replace("iou-wrk-1", "iou-wrk-one")
        .replace("iou-sqp-2", "iou-sqp-two")
}

fn tree_matches_kernel(numbering: &str) {
    // Linear and sparse vpids are large; the kernel's are made large too, so that no pid
    // looks like a thread count. Dense `ns` numbers are compared with dense ones.
    let first = if numbering == "ns" {
        "FIRST_PID="
    } else {
        "FIRST_PID=5000"
    };
    let kernel = mask_comms(&in_kernel_ns(&["env", first, PY, &hostile()]));
    let last_pid = || -> u64 {
        std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    // Linear and sparse vpids keep the order of the host's pids, which the kernel's
    // namespace (numbered afresh) shares only while the host's pid counter does not wrap
    // at pid_max: a run during which it wrapped is run again.
    let mut attempts = 0;
    let (view, err, code) = loop {
        let before = last_pid();
        let run = in_vps(&["--no-pidns", "--numbering", numbering], &[PY, &hostile()]);
        attempts += 1;
        if numbering == "ns" || last_pid() >= before || attempts == 3 {
            break run;
        }
        eprintln!("the host's pid counter wrapped during the run: running it again");
    };
    let view = mask_comms(&view);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("--no-pidns"), "the warning is printed: {err}");
    // pid_max is per pid namespace: without one, the VPS sees the host's.
    let map = assert_same_up_to_renaming(
        &without(&kernel, &["pid_max"]),
        &without(&view, &["pid_max"]),
    );
    assert!(map.len() > 20, "many numbers compared: {map:?}");
}

#[test]
fn tree_view_with_ns_numbering_matches_the_kernel_up_to_renaming() {
    if privileged() {
        tree_matches_kernel("ns");
    }
}

#[test]
fn tree_view_with_linear_numbering_matches_the_kernel_up_to_renaming() {
    if privileged() {
        tree_matches_kernel("linear");
    }
}

#[test]
fn tree_view_with_sparse_numbering_matches_the_kernel_up_to_renaming() {
    if privileged() {
        tree_matches_kernel("sparse");
    }
}

#[test]
fn exit_status_is_the_commands() {
    if !privileged() {
        return;
    }
    for (flags, script, want) in [
        (&[][..], "exit 7", 7),
        // In a pid namespace init is immune to signals it does not handle, as the
        // kernel makes it: the shell survives its own SIGTERM and exits normally.
        (&[][..], "kill -TERM $$; exit 5", 5),
        (&["--no-pidns"][..], "kill -TERM $$", 128 + 15),
        (&["--no-pidns"][..], "exit 3", 3),
        (&["--no-pidns"][..], "kill -KILL $$", 128 + 9),
    ] {
        let (_, err, code) = in_vps(flags, &["sh", "-c", script]);
        assert_eq!(code, want, "{flags:?} {script}: {err}");
    }
    let (_, err, code) = in_vps(&["--full-view"], &["/nonexistent/command"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("cannot run /nonexistent/command"), "{err}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains("fuse.vprocfs"),
        "no mount is left: {mounts}"
    );
}

#[test]
fn members_die_with_init_in_tree_mode() {
    if !privileged() {
        return;
    }
    // Without a pid namespace $! is the real pid of the background sleep.
    let (out, err, code) = in_vps(&["--no-pidns"], &["sh", "-c", "sleep 300 & echo $!"]);
    assert_eq!(code, 0, "{err}");
    let pid: i32 = out.trim().parse().expect("a pid");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "the member was killed with init: {stat}"
    );
}

/// Everyday tools, each reading /proc its own way (procps's `ps` formats, `pgrep`,
/// `pidof`, `pwdx`; psmisc's `pstree`, `fuser`, `prtstat`; `lsns`, which compares the
/// inodes `stat` gives through `ns/` links; `lsof` and the fd links followed), print
/// what they print on the kernel's own procfs (tests/scripts/clients.py), with both
/// read paths of the full view.
#[test]
fn everyday_tools_print_what_they_print_on_the_kernels_proc() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "clients.py",
        &[
            "$ pidof -o 3 sleep\n7 4\n",
            "NS1 pid       8   1\n",
            "TMP/held.txt:\n                     root      f.... python3\n",
            "$ pgrep -w -l python3\n1 python3\n5 python3\n9 python3\n10 python3\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// Processes of every scheduling class (`SCHED_FIFO`, `SCHED_RR`, batch, idle, nice
/// either way, and a thread of its own class) show in `ps` and in each task's `stat`
/// and `sched` as in a pid namespace (tests/scripts/sched_classes.py), by the kernel's
/// procfs and by the full view. Before, `chrt -f` failed in every VPS: the VPS's own v1
/// cpu cgroup had no real-time runtime, and the kernel refuses real-time classes there.
#[test]
fn every_scheduling_class_runs_and_shows_as_in_a_pid_namespace() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "sched_classes.py",
        &[
            "$ chrt -f 5 true: exit 0 \n",
            "      4  FF FF       5  45  54   5   - S    sleep           sleep 1000\n",
            "      1      19  RR      2  42   - python3\n",
        ],
        &[&[], BOTH_READ_PATHS[0], BOTH_READ_PATHS[1]],
    );
}

/// A VPS's init and its child hold what they hold in a pid namespace: `prctl` states,
/// limits, signal state, capabilities, affinity, descriptors
/// (tests/scripts/init_attributes.py). The full view's init was made a child
/// subreaper, which only a VPS without a pid namespace needs to gather its orphans.
#[test]
fn the_init_holds_what_a_pid_namespaces_init_holds() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "init_attributes.py",
        &[
            "## init\nchild_subreaper 0\n",
            "## child\nchild_subreaper 0\npdeathsig 0\n",
        ],
        &[&[], &["--full-view"]],
    );
}

/// A terminal's foreground process group that loses its last member stays the
/// terminal's foreground group, and every member of the session shows its number as
/// `tpgid`, also once a new process has taken the number, until the foreground moves
/// (tests/scripts/tty_foreground.py). The view showed 0 once it had released the
/// group's last member.
#[test]
fn an_emptied_foreground_group_stays_the_terminals() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "tty_foreground.py",
        &[
            "## 2 the foreground group's last member is gone\n",
            "      3       1       3       3       4 pts/N    Ss   leader\n      5       3       5       3       4 pts/N    S    bg\n",
            "newcomer took the old group's number: True\n",
            "4 pgrp 0 session 0 no tty tpgid -1\n5 pgrp 5 session 3 tty tpgid 4\n",
            "## 5 bg's group emptied in the foreground\n",
            "6 pgrp 3 session 3 tty tpgid 5\n## 6",
            "6 pgrp 3 session 3 no tty tpgid -1\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// A System V IPC object names its creator and last users after they are gone and
/// reaped, also once a new process has the number (tests/scripts/ipc_pids.py), as
/// procfs does (`/proc/sysvipc/*`, `ipcs -p`): the object holds their `struct pid`.
/// The view showed 0 once it had released the process.
#[test]
fn an_ipc_object_names_its_creator_after_it_is_gone() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "ipc_pids.py",
        &[
            "## 1 the creator is gone\nshm cpid=2 lpid=2 nattch=0\nmsg qnum=1 lspid=2 lrpid=0\n",
            "newcomer took the creator's number: True\n",
            "msg qnum=0 lspid=2 lrpid=1\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// A POSIX timer aimed at a thread goes on naming that thread after it has ended, in
/// `/proc/<pid>/timers`, as procfs does (tests/scripts/timer_target.py): one thread
/// ended before the daemon could see it start, one after. The view showed 0 for both.
#[test]
fn a_timer_names_its_ended_target_thread() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "timer_target.py",
        &[
            "ID: 1\nsignal: 10/0000000000000000\nnotify: signal/tid.3\n",
            "ID: 0\nsignal: 10/0000000000000000\nnotify: signal/tid.2\n",
            "read by a child: True\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// The paths procfs writes are its reader's, from the reader's root: a reader in a
/// chroot sees the files below its root without the root's path in front, in the
/// `exe`/`cwd`/`root`/`fd/N` links and in the mapped files' names of `maps`, `smaps`
/// and `numa_maps` (tests/scripts/chroot_paths.sh), and a file outside it from the top.
/// The view wrote the mapped files' names from the daemon's root (`/tmp/…/usr/bin/grep`).
#[test]
fn a_chrooted_reader_sees_paths_from_its_root() {
    if !privileged() {
        return;
    }
    let probe = script("chroot_paths.sh").display().to_string();
    let kernel = in_kernel_ns(&["sh", &probe]);
    assert!(
        kernel.contains("self cwd: /\n")
            && kernel.contains("maps:\n /usr/bin/grep\n")
            && kernel.contains("numa_maps:\nfile=/usr/bin/grep\n")
            && !kernel.contains("JAIL"),
        "the kernel: {kernel}"
    );
    for flags in BOTH_READ_PATHS {
        assert_view_matches(flags, &["sh", &probe], &kernel);
    }
}

/// Network tools find a socket's process as they find it on procfs
/// (tests/scripts/net_clients.py): `ss -p`, `netstat -p`, `lsof -i`/`-U` and psutil
/// match the `socket:[N]` text of every `fd/N` link to the kernel's socket tables, and
/// psutil and `lsof` take the inode from `stat` through the link.
#[test]
fn network_tools_find_each_sockets_process() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "net_clients.py",
        &[
            "ESTAB 0 0 127.0.0.1:PORT 127.0.0.1:CPORT users:((\"python3\",pid=3,fd=6))\n",
            "tcp 0 0 127.0.0.1:PORT 0.0.0.0:* LISTEN 3/python3\n",
            "unix 2 [ ACC ] STREAM LISTENING INO 3/python3 @NAME\n",
            "p4\ncpython3\nPTCP\nn127.0.0.1:CPORT->127.0.0.1:PORT\n",
            "(4, 3, 'AF_INET', 'SOCK_STREAM', addr(ip='127.0.0.1', port=CPORT)",
            "$ link 5\nsocket:[INO] inode matches: True\n",
        ],
        BOTH_READ_PATHS,
    );
}

/// A reader in a pid namespace nested in the VPS's (`unshare --pid --fork` with no
/// /proc of its own) is told its own namespace's last pid in `ns_last_pid` and
/// `loadavg`, as procfs tells it, also after commands reaped before the daemon could
/// look at them, and after it wrote `ns_last_pid`; a reader in a namespace between the
/// VPS's and a deeper one, its own (the deeper one's forks count there too: the VPS's
/// was answered before), also after a write from the deeper one, which leaves it as it
/// was; the VPS's init, the VPS's, which the nested writes leave as it was
/// (tests/scripts/nested_last_pid.py).
#[test]
fn a_nested_namespace_is_told_its_own_last_pid() {
    if !privileged() {
        return;
    }
    probe_matches_kernel_with(
        "nested_last_pid.py",
        &[
            "after ten: ns_last_pid 24 loadavg 25\n",
            "after a command: ns_last_pid 44 loadavg 45\n",
            "two deep, after writing 20: ns_last_pid 21 loadavg 22\n",
        ],
        &[
            BOTH_READ_PATHS[0],
            BOTH_READ_PATHS[1],
            &["--no-pidns", "--numbering", "ns"],
        ],
    );
}

#[test]
fn tools_see_exactly_the_vps() {
    if !privileged() {
        return;
    }
    let script = r#"
sleep 100 & a=$!
sleep 100 & b=$!
sleep 0.2
echo "top:"; top -b -n1 | awk 'NR>7 {print $1, $NF}' | sort -n
echo "pgrep:"; pgrep sleep
echo "pidof:"; pidof sleep
echo "psutil:"; /usr/bin/python3 -c 'import psutil; print(sorted(p.pid for p in psutil.process_iter())); print(psutil.Process().ppid())'
kill $a $b
"#;
    let (out, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}\n{out}");
    let kernel = in_kernel_ns(&["sh", "-c", script]);
    assert_eq!(out, kernel, "stderr: {err}");
    assert!(out.contains("pgrep:\n2\n3\n"), "{out}");
    assert!(out.contains("pidof:\n3 2\n"), "{out}");
}

#[test]
fn unprivileged_reader_is_refused_what_the_kernel_refuses() {
    if !privileged() {
        return;
    }
    let script = "setpriv --reuid 65534 --regid 65534 --clear-groups sh -c \
        'cat /proc/1/stat >/dev/null && echo stat-ok; cat /proc/1/environ >/dev/null 2>&1 || echo environ-denied; ls /proc/1/fd >/dev/null 2>&1 || echo fd-denied'";
    let (out, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "stat-ok\nenviron-denied\nfd-denied\n", "{err}");
    assert_eq!(in_kernel_ns(&["sh", "-c", script]), out);
}

/// Which reader may open, list, read or write which entry of which process, and the
/// error and where it comes (at open or at the read), as procfs decides: root, the
/// owner and a stranger, against live, undumpable and zombie processes
/// (tests/scripts/reader_matrix.py). Both with and without passthrough: a read refused
/// after its open is served by the daemon either way.
#[test]
fn each_reader_is_answered_each_entry_as_procfs_answers_it() {
    if !privileged() {
        return;
    }
    // The probe did what it means to: a refusal at open, one at the read, a zombie
    // without memory, a task's own write, kernel addresses hidden from a stranger and
    // page frames from uid 1000.
    probe_matches_kernel_with(
        "reader_matrix.py",
        &[
            "read reader=2000 target=u1000 maps open:EACCES\n",
            "read reader=1000 target=u1000 stack read:EACCES\n",
            "read reader=1000 target=root-zombie maps empty\n",
            "write reader=1000 target=self timerslack_ns wrote 5\n",
            "global reader=2000 iomem ['00000000-00000000 : ",
            " frame zero\npagemap reader=2000 flags ",
        ],
        BOTH_READ_PATHS,
    );
}

#[test]
fn host_processes_cannot_be_reached_by_any_number() {
    if !privileged() {
        return;
    }
    let me = std::process::id();
    // A number far above any vpid of this small VPS, and a real pid of the host.
    let script = format!(
        "for p in {me} 2 $(seq 3 40); do test -e /proc/$p && echo visible $p; done; \
         ls /proc/{me}/task 2>/dev/null && echo leak; readlink /proc/{me}/exe 2>/dev/null && echo leak; echo done"
    );
    for flags in [&[][..], &["--full-view"][..], &["--no-pidns"][..]] {
        let (out, err, code) = in_vps(flags, &["sh", "-c", &script]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains("leak"), "{flags:?}: {out}");
        assert!(!out.contains(&format!("visible {me}")), "{flags:?}: {out}");
        assert!(out.ends_with("done\n"), "{out}");
    }
}

#[test]
fn processes_exiting_during_listing_never_break_ps() {
    if !privileged() {
        return;
    }
    let script = r#"
( i=0; while [ $i -lt 300 ]; do sh -c 'exit 0'; i=$((i+1)); done ) &
churn=$!
n=0; bad=0
while kill -0 $churn 2>/dev/null; do
  ps -eLf >/dev/null 2>/tmp/vprocfs-ps-err.$$ || bad=$((bad+1))
  [ -s /tmp/vprocfs-ps-err.$$ ] && bad=$((bad+1))
  n=$((n+1))
done
rm -f /tmp/vprocfs-ps-err.$$
echo "runs=$n bad=$bad"
"#;
    for flags in [&[][..], &["--full-view"][..], &["--no-pidns"][..]] {
        let (out, err, code) = in_vps(flags, &["sh", "-c", script]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("bad=0"), "{flags:?}: {out} {err}");
    }
}

#[test]
fn proc_link_count_counts_only_the_vps() {
    if !privileged() {
        return;
    }
    // The kernel's /proc link count is a fixed base plus one per process of the whole
    // host (a leak, even in a pid namespace); the view counts the VPS's processes.
    let script = "sleep 100 & sleep 100 & sleep 0.1; \
        echo $(( $(stat -c %h /proc) - $(ls /proc | grep -c '^[0-9]*$') )); kill $(jobs -p) 2>/dev/null; true";
    let base = |s: &str| -> i64 { s.trim().parse().expect("a number") };
    let (out, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    let host = std::fs::metadata("/proc")
        .map(|m| std::os::unix::fs::MetadataExt::nlink(&m) as i64)
        .unwrap()
        - host_pids().len() as i64;
    // The host's count races with processes starting and ending; the view's does not.
    assert!(
        (base(&out) - host).abs() <= 3,
        "view base {} vs host base {host}",
        base(&out)
    );
}

/// The link count of `/proc` follows the VPS's processes at once: a fork, a zombie
/// (counted until reaped), a reaping, with no event for the last; a thread is none. Before, the kernel
/// kept it for a second and was told to drop it only at forks and exits: after a
/// reaping it stayed one too high until the next.
#[test]
fn proc_link_count_follows_forks_and_reaping() {
    if !privileged() {
        return;
    }
    let probe = script("task_counts.py").display().to_string();
    let (out, err, code) = in_vps(&["--full-view"], &[PY, &probe]);
    assert_eq!(code, 0, "{err}");
    // Each line: "step: total base listed".
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.rsplitn(3, ' ').collect()).collect();
    let listed: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(listed, ["1", "11", "11", "9", "9", "1"], "{out}");
    let base = rows[0][1];
    assert!(rows.iter().all(|r| r[1] == base), "{out}");
}

#[test]
fn ctrl_c_ends_the_vps_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    use std::os::unix::process::CommandExt;
    for flags in [&[][..], &["--full-view"][..], &["--no-pidns"][..]] {
        let mut cmd = std::process::Command::new(vprocfs());
        cmd.arg("run")
            .args(flags)
            .args(["--", "sh", "-c", "sleep 100; sleep 100"]);
        cmd.process_group(0);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("spawn");
        let pgid = child.id() as i32;
        let mut guard = ChildGuard(Some(child));
        std::thread::sleep(std::time::Duration::from_millis(700));
        // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = guard.0.take().unwrap().wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "{flags:?}: exit status 128 + SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        let left = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None);
        assert!(left.is_err(), "{flags:?}: no process of the VPS is left");
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains("fuse.vprocfs"), "no mount is left");
    }
}

#[test]
fn a_reaped_process_is_gone_at_once() {
    if !privileged() {
        return;
    }
    // Visible the moment it is forked; looked up while alive, so that any cached entry
    // would show; gone once waited for.
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do \
        sleep 0.05 & p=$!; test -e /proc/$p || echo missing; cat /proc/$p/stat >/dev/null; \
        wait $p; test -e /proc/$p && echo stale; test -e /proc/$p/stat && echo stale-stat; \
        done; echo done";
    // With a pid namespace only: without one, `$!` is a real pid, which the view does
    // not resolve (a documented limit).
    let (out, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "done\n");
    assert_eq!(in_kernel_ns(&["sh", "-c", script]), "done\n");
}

/// The same on a loaded machine, where a reader may be descheduled between its path walk
/// and its request, so that the request reaches the daemon after the reaped process's
/// name was flushed and its inode retired (found while a benchmark loaded the machine:
/// the retired inode was answered as a held descriptor, and `test -e` succeeded).
#[test]
fn a_reaped_process_is_gone_at_once_on_a_loaded_machine() {
    if !privileged() {
        return;
    }
    let script = "for i in $(seq 30); do \
        sleep 0.02 & p=$!; test -e /proc/$p || echo missing; \
        wait $p; test -e /proc/$p && echo stale; \
        done; echo done";
    // Busy loops, two per CPU, ended by pid.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _load: Vec<ChildGuard> = (0..2 * cpus)
        .map(|_| {
            ChildGuard(Some(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("spawn a busy loop"),
            ))
        })
        .collect();
    assert_eq!(in_kernel_ns(&["sh", "-c", script]), "done\n");
    for _ in 0..3 {
        let (out, err, code) = in_vps(&["--full-view"], &["sh", "-c", script]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "done\n");
    }
}

#[test]
fn a_controlling_terminal_shows_as_the_kernel_shows_it() {
    if !privileged() {
        return;
    }
    // Under a pseudo-terminal (script(1)) whose foreground group is outside the VPS, the
    // kernel shows tpgid 0, so ps marks init `S+`; without a terminal tpgid is -1.
    // The background sleep is given time to block: just forked, it may still be running
    // (R) when ps reads it, on either side.
    let inner =
        "tty; ps -eo pid,ppid,pgid,sid,tpgid,tty,stat,comm; sleep 1 & sleep 0.2; ps -o pid,tpgid,stat,comm";
    let under_pty = |argv: String| -> String {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &argv, "/dev/null"]);
        let out = run_with_deadline(cmd, std::time::Duration::from_secs(60));
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    // A shell caught between forking ps and waiting for it is R rather than S, on
    // either side (seen on the kernel's side on a loaded host): that letter is timing,
    // not the view's; the shells' rows compare with R read as S. The `+` and the tpgid
    // are compared as they are. Each run has the terminal `script` got for it, whose
    // number depends on the other tests' at the time: `tty` prints it first, and it is
    // named the same in both outputs.
    let settle = |out: String| -> String {
        let (tty, rest) = out.split_once('\n').unwrap_or(("", ""));
        let tty = tty.trim().strip_prefix("/dev/").unwrap_or("no tty");
        let rest = rest.replace(&format!(" {tty} "), " TTY ");
        rest.lines()
            .map(|l| {
                if l.ends_with(" sh") {
                    l.replace(" R+ ", " S+ ").replace(" R ", " S ")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect()
    };
    let kernel = settle(under_pty(format!(
        "unshare --pid --fork --mount-proc sh -c '{inner}'"
    )));
    // The daemon's rendering (the default run is the kernel's own procfs).
    let view = settle(under_pty(format!(
        "{} run --full-view -- sh -c '{inner}'",
        vprocfs().display()
    )));
    assert!(kernel.contains("S+"), "{kernel}");
    assert_eq!(view, kernel);
}

#[test]
fn no_real_pid_of_a_non_member_shows_anywhere_in_the_view() {
    if !privileged() {
        return;
    }
    // Host processes the VPS must not learn of: a sleeper, this test, its parent.
    let sleeper = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .expect("sleep");
    let sleeper = ChildGuard(Some(sleeper));
    let pids = format!(
        "{} {} {}",
        sleeper.0.as_ref().unwrap().id(),
        std::process::id(),
        std::os::unix::process::parent_id()
    );
    let env = format!("LEAK_PIDS={pids}");
    let scan = script("leak_scan.py").display().to_string();
    let (out, err, code) = in_vps(&["--full-view"], &["env", &env, PY, &scan]);
    assert_eq!(code, 0, "{err}");
    let scanned: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("scanned "))
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(scanned > 200, "every member's files were read: {out}");
    assert!(!out.contains("leak "), "{out}");
}

/// A child the reader has just forked shows at once in `ns_last_pid`, the last field of
/// `loadavg`, the listing and a lookup (tests/scripts/own_forks.py), in every numbering
/// of the full view, as on the kernel's procfs; before the view applied the queued
/// process events first, the two files could show the previous child.
#[test]
fn a_fork_shows_at_once_in_ns_last_pid_loadavg_and_the_listing() {
    if !privileged() {
        return;
    }
    let probe = script("own_forks.py").display().to_string();
    assert_eq!(
        in_kernel_ns(&[PY, &probe, "100"]).trim(),
        "rounds 100 bad 0",
        "the kernel's procfs"
    );
    for flags in [
        &["--full-view"][..],
        &["--no-pidns", "--numbering", "ns"][..],
        &["--no-pidns"][..],
    ] {
        let (out, err, code) = in_vps(flags, &[PY, &probe, "300"]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(
            out.lines().next(),
            Some("rounds 300 bad 0"),
            "{flags:?}:\n{out}"
        );
    }
}

/// Without a pid namespace system calls take real pids, so a vpid that is also a host
/// pid makes `kill <vpid>` (or `pkill`) signal a host process. By default the linear
/// vpids are above the host's pid_max, where no real pid is; a smaller `--vpid-bit`,
/// and `ns` or `sparse` numbering, are allowed with a one-line warning.
#[test]
fn the_seed_model_numbers_no_vpid_as_a_host_pid_by_default() {
    if !privileged() {
        return;
    }
    let script = "sleep 100 & a=$!; sleep 100 & b=$!; sleep 0.1; ls /proc | grep -E '^[0-9]+$'; \
        cut -d' ' -f1 /proc/self/stat; kill $a $b";
    let (out, err, code) = in_vps(&["--no-pidns"], &["sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    let vpids: Vec<i64> = out.lines().map(|l| l.parse().expect("a vpid")).collect();
    assert!(vpids.len() >= 4, "init, two sleepers, ls, cut: {out}");
    let pid_max = host_pid_max();
    let div = default_vpid_div();
    assert_eq!(vpids[0], 1, "{out}");
    for &v in &vpids[1..] {
        assert!(v > pid_max, "vpid {v} is above pid_max {pid_max}: {out}");
        assert!(v - div > 0 && v - div < pid_max, "vpid {v} is pid + {div}");
    }
    let host = host_pids();
    assert!(vpids[1..].iter().all(|v| !host.contains(&(*v as i32))));
    assert_eq!(err.lines().count(), 1, "only the --no-pidns warning: {err}");

    for (flags, says) in [
        (
            &["--no-pidns", "--vpid-bit", "10"][..],
            "--vpid-bit 10 without a pid namespace",
        ),
        (
            &["--no-pidns", "--numbering", "ns"][..],
            "kill N acts on host pid N",
        ),
        (
            &["--no-pidns", "--numbering", "sparse"][..],
            "kill N acts on host pid N",
        ),
    ] {
        let (out, err, code) = in_vps(flags, &["sh", "-c", "cut -d' ' -f1 /proc/self/stat"]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        let warned: Vec<&str> = err.lines().filter(|l| l.contains(says)).collect();
        assert_eq!(warned.len(), 1, "{flags:?}: one warning line: {err}");
        assert!(warned[0].starts_with("vprocfs: warning: "), "{err}");
        if flags.contains(&"10") {
            let v: i64 = out.trim().parse().expect("a vpid");
            assert!(v > 1024 && v < pid_max + 1024, "linear with bit 10: {v}");
        }
    }
    // With a pid namespace the bit does not show and nothing is said of it.
    let (_, err, code) = in_vps(&["--full-view", "--vpid-bit", "10"], &["true"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// CMD starts as a fresh process would, in every mode, however `vprocfs run` itself was
/// started: the signal mask, ignored and caught signals of init (`/proc/1/status`) and
/// its descriptors (`/proc/1/fd`) are those of init in `unshare --pid --fork
/// --mount-proc` started with a fresh signal state, while `vprocfs run` is started with
/// signals ignored and blocked (tests/scripts/signal_state_exec.py). Init execs `sleep`,
/// which changes no signal state, after starting a child that reads init's files, so
/// that neither the shell's own handling nor the listing's descriptor shows.
#[test]
fn init_starts_clean_like_the_kernels() {
    if !privileged() {
        return;
    }
    let probe = r#"(sleep 0.5; grep -E '^Sig(Blk|Ign|Cgt)' /proc/1/status
find /proc/1/fd -mindepth 1 -printf '%f %l\n' | sort -n | sed -E 's/(pipe|socket|anon_inode):[^ ]*/\1:N/') &
exec sleep 1"#;
    let state = script("signal_state_exec.py").display().to_string();
    let kernel = in_kernel_ns_via(&[PY, &state, "fresh"], &["sh", "-c", probe]);
    assert!(
        kernel.starts_with(
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n"
        ),
        "{kernel}"
    );
    assert!(
        kernel.contains("\n0 /dev/null\n1 pipe:N\n2 pipe:N\n"),
        "{kernel}"
    );
    for flags in [&[][..], &["--full-view"][..], &["--no-pidns"][..]] {
        let mut cmd = std::process::Command::new(PY);
        cmd.args([&state, "dirty"])
            .arg(vprocfs())
            .arg("run")
            .args(flags)
            .args(["--", "sh", "-c", probe]);
        let out = run_with_deadline(cmd, std::time::Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            kernel,
            "{flags:?}: {err}"
        );
    }
}

/// io_uring names its threads after a global pid (`iou-sqp-<pid>`), which the kernel
/// shows inside a pid namespace too; the view shows the owner's vpid in `comm`, `stat`
/// and `status`. A task that names itself so without being one (no `PF_IO_WORKER`) is
/// shown as it named itself, as the kernel shows it (the view showed `iou-wrk-0`).
#[test]
fn io_uring_thread_names_carry_vpids_and_only_theirs_do() {
    if !privileged() {
        return;
    }
    let probe = script("io_uring_names.py").display().to_string();
    let kernel = in_kernel_ns(&[PY, &probe]);
    let sqp = |s: &str| -> String {
        s.lines()
            .find(|l| l.starts_with("2 "))
            .unwrap_or_else(|| panic!("no SQ-poll thread: {s}"))
            .to_string()
    };
    // The kernel: the owner's global pid, not its 1.
    assert!(
        sqp(&kernel).starts_with("2 iou-sqp-") && !sqp(&kernel).starts_with("2 iou-sqp-1 "),
        "{kernel}"
    );
    for flags in BOTH_READ_PATHS {
        let (view, err, code) = in_vps(flags, &[PY, &probe]);
        assert_eq!(code, 0, "{flags:?}: {err}");
        assert_eq!(
            sqp(&view),
            "2 iou-sqp-1 iou-sqp-1 Name:\tiou-sqp-1",
            "{flags:?}: {view}"
        );
        // Everything else as the kernel shows it: the self-named task's name too.
        let rest = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with("2 "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(rest(&view), rest(&kernel), "{flags:?}: {view}");
        assert!(
            view.contains(" iou-wrk-1 iou-wrk-1 Name:\tiou-wrk-1\n"),
            "{view}"
        );
    }
}

/// Reads every file and link of the full view that can carry a pid while the VPS holds
/// descriptors of every kind (pidfd, flock, POSIX and OFD locks, eventfd, signalfd,
/// inotify, io_uring), a SysV segment and message queue used by members, a thread and
/// children (tests/scripts/pid_scan.py), and fails on any real pid of a member (every
/// process and thread of the VPS, found from the host) or of a non-member (this test,
/// its parent, a host sleeper, the daemon and its relay) that the kernel's own procfs
/// does not show at that place.
fn pid_scan(flags: &[&str], pidns: bool) {
    use std::io::BufRead;
    // Named without this test's pid, which the scan looks for (init's cmdline holds it).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tmp = TempDir(std::env::temp_dir().join(format!("vprocfs-scan-{nanos}")));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let pids_file = tmp.0.join("pids");
    let sleeper = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .expect("sleep");
    let sleeper = ChildGuard(Some(sleeper));
    let mut cmd = std::process::Command::new(vprocfs());
    cmd.arg("run")
        .args(flags)
        .args(["--", PY, &script("pid_scan.py").display().to_string()])
        .arg(&pids_file)
        .env("SCAN_PIDNS", if pidns { "1" } else { "0" })
        .env("SCAN_VPID_BIT", "22")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("vprocfs run");
    let daemon = child.id();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut guard = ChildGuard(Some(child));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n");
    // Every task below the daemon (its relay, init and all members), and its threads.
    let mut all = vec![daemon as i32];
    let mut seen = std::collections::HashSet::from([daemon as i32]);
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let tid: i32 = t.file_name().to_str().unwrap().parse().unwrap();
            let children = std::fs::read_to_string(format!("/proc/{p}/task/{tid}/children"))
                .unwrap_or_default();
            let found = std::iter::once(tid).chain(
                children
                    .split_whitespace()
                    .map(|c| c.parse::<i32>().unwrap()),
            );
            for n in found {
                if seen.insert(n) {
                    all.push(n);
                }
            }
        }
    }
    assert!(all.len() > 10, "the VPS's tasks: {all:?}");
    all.extend([
        sleeper.0.as_ref().unwrap().id() as i32,
        std::process::id() as i32,
        std::os::unix::process::parent_id() as i32,
    ]);
    let text: String = all.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(tmp.0.join("pids.tmp"), text).unwrap();
    std::fs::rename(tmp.0.join("pids.tmp"), &pids_file).unwrap();
    let mut child = guard.0.take().unwrap();
    let status = run_child_with_deadline(&mut child, std::time::Duration::from_secs(120));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{flags:?}: {err}\n{out}"
    );
    let scanned: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("scanned "))
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(scanned > 300, "every member's files were read: {out}");
    for f in [
        "file sysvipc/shm",
        "file sysvipc/msg",
        "file locks",
        "file sys/kernel/cad_pid",
        "file sys/kernel/ns_last_pid",
        "file loadavg",
    ] {
        assert!(
            out.contains(&format!("{f}\n")),
            "{flags:?}: {f} was read:\n{out}"
        );
    }
    let fdinfos = out.lines().filter(|l| l.contains("/fdinfo/")).count();
    assert!(
        fdinfos >= 10,
        "{flags:?}: every descriptor's fdinfo:\n{out}"
    );
    let leaks: Vec<&str> = out.lines().filter(|l| l.starts_with("leak ")).collect();
    assert!(leaks.is_empty(), "{flags:?}: {leaks:#?}");
}

#[test]
fn no_real_pid_of_anyone_shows_anywhere_in_the_full_view() {
    if !privileged() {
        return;
    }
    pid_scan(&["--full-view"], true);
}

/// Without a pid namespace the only oracle is the host's procfs, where every pid is real:
/// a line the view left as the host's cannot be told from a counter that equals a pid,
/// so this scan catches real pids on lines the view rewrote, or that the host's line
/// lacks; the renderers are the same as the full view's, which the scan above checks
/// strictly.
#[test]
fn no_real_pid_of_anyone_shows_anywhere_without_a_pid_namespace() {
    if !privileged() {
        return;
    }
    pid_scan(&["--no-pidns", "--vpid-bit", "22"], false);
}
