//! `/proc/<pid>/status` and `/proc/<pid>/task/<tid>/status`.
//!
//! One "Key:\tvalue" per line (fs/proc/array.c, proc_pid_status). The Name
//! line is the only free text and the kernel escapes '\n' and '\\' in it, so
//! splitting on '\n' is safe; it may still hold raw tabs and high bytes. We
//! keep the kernel's line order and copy every line we do not rewrite.

use super::{
    lines, ns_values, parse_ns_list, parse_num, push_ns_line, push_num, xlate, ParseError, PidMap,
};

const FILE: &str = "status";

/// The fields of a status file the view needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The task name with the kernel's escaping undone ("\\n" → '\n',
    /// "\\\\" → '\\'), so it equals the comm of the stat file.
    pub name: Vec<u8>,
    pub state: u8,
    pub tgid: i32,
    pub pid: i32,
    pub ppid: i32,
    pub tracer_pid: i32,
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    /// Supplementary groups and the inheritable, permitted and effective capabilities
    /// (hexadecimal in the file), where the lines are there: what a task is allowed
    /// ([`crate::sys::creds::Identity`]).
    pub groups: Option<Vec<u32>>,
    pub cap_inh: Option<u64>,
    pub cap_prm: Option<u64>,
    pub cap_eff: Option<u64>,
    /// The signals pending for the task and for its process, blocked and ignored
    /// (hexadecimal masks; 0 where a line is missing).
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    /// Resident set size in kB (`VmRSS`), where the task has memory.
    pub vm_rss_kb: Option<u64>,
    /// NS* lists as printed (daemon level first); empty without CONFIG_PID_NS.
    pub nstgid: Vec<i32>,
    pub nspid: Vec<i32>,
    pub nspgid: Vec<i32>,
    pub nssid: Vec<i32>,
    pub threads: u32,
}

impl Status {
    /// The signals pending (the task's own and its process's) and neither blocked nor
    /// ignored: what the task takes when it returns to user space.
    pub fn deliverable_signals(&self) -> u64 {
        (self.sig_pnd | self.shd_pnd) & !self.sig_blk & !self.sig_ign
    }
}

/// Splits a line (without its '\n') into key and the bytes after ':'.
fn split_key(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&c| c == b':')?;
    Some((line.get(..colon)?, line.get(colon + 1..)?))
}

fn strip_nl(line: &[u8]) -> (&[u8], &[u8]) {
    match line.strip_suffix(b"\n") {
        Some(body) => (body, b"\n"),
        None => (line, b""),
    }
}

fn bad(field: &'static str) -> ParseError {
    ParseError::BadNumber { file: FILE, field }
}

/// A single-number value such as "\t6415".
fn one_num<T: std::str::FromStr>(value: &[u8], field: &'static str) -> Result<T, ParseError> {
    parse_num(value.trim_ascii()).ok_or(bad(field))
}

fn four(value: &[u8], field: &'static str) -> Result<[u32; 4], ParseError> {
    let mut out = [0u32; 4];
    let mut it = value.split(|&c| c == b'\t').filter(|t| !t.is_empty());
    for slot in &mut out {
        *slot = parse_num(it.next().ok_or(bad(field))?).ok_or(bad(field))?;
    }
    match it.next() {
        None => Ok(out),
        Some(_) => Err(bad(field)),
    }
}

/// A capability set or a signal mask: 16 hexadecimal digits.
fn hex(value: &[u8], field: &'static str) -> Result<u64, ParseError> {
    let digits = std::str::from_utf8(value.trim_ascii()).map_err(|_| bad(field))?;
    u64::from_str_radix(digits, 16).map_err(|_| bad(field))
}

/// Undoes seq_escape_str(.., "\n\\"): only those two bytes are escaped.
fn unescape_name(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        match (c, v.get(i + 1)) {
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Parses the fields the view needs. Every line listed in [`Status`] except
/// the NS* lines, `Groups` and the capabilities must be present.
pub fn parse_status(raw: &[u8]) -> Result<Status, ParseError> {
    let mut name = None;
    let mut state = None;
    let (mut tgid, mut pid, mut ppid, mut tracer, mut threads) = (None, None, None, None, None);
    let (mut uid, mut gid) = (None, None);
    let mut st = Status {
        name: Vec::new(),
        state: 0,
        tgid: 0,
        pid: 0,
        ppid: 0,
        tracer_pid: 0,
        uid: [0; 4],
        gid: [0; 4],
        groups: None,
        cap_inh: None,
        cap_prm: None,
        cap_eff: None,
        sig_pnd: 0,
        shd_pnd: 0,
        sig_blk: 0,
        sig_ign: 0,
        vm_rss_kb: None,
        nstgid: Vec::new(),
        nspid: Vec::new(),
        nspgid: Vec::new(),
        nssid: Vec::new(),
        threads: 0,
    };
    for line in lines(raw) {
        let (body, _) = strip_nl(line);
        let Some((key, value)) = split_key(body) else {
            continue;
        };
        match key {
            b"Name" => name = Some(unescape_name(value.strip_prefix(b"\t").unwrap_or(value))),
            b"State" => {
                state = Some(
                    *value
                        .trim_ascii_start()
                        .first()
                        .ok_or(ParseError::Malformed {
                            file: FILE,
                            what: "State line",
                        })?,
                )
            }
            b"Tgid" => tgid = Some(one_num(value, "Tgid")?),
            b"Pid" => pid = Some(one_num(value, "Pid")?),
            b"PPid" => ppid = Some(one_num(value, "PPid")?),
            b"TracerPid" => tracer = Some(one_num(value, "TracerPid")?),
            b"Uid" => uid = Some(four(value, "Uid")?),
            b"Gid" => gid = Some(four(value, "Gid")?),
            b"Threads" => threads = Some(one_num(value, "Threads")?),
            b"Groups" => {
                let groups = value
                    .split(|c| c.is_ascii_whitespace())
                    .filter(|g| !g.is_empty());
                st.groups = Some(
                    groups
                        .map(parse_num)
                        .collect::<Option<_>>()
                        .ok_or(bad("Groups"))?,
                );
            }
            b"CapInh" => st.cap_inh = Some(hex(value, "CapInh")?),
            b"CapPrm" => st.cap_prm = Some(hex(value, "CapPrm")?),
            b"CapEff" => st.cap_eff = Some(hex(value, "CapEff")?),
            b"SigPnd" => st.sig_pnd = hex(value, "SigPnd")?,
            b"ShdPnd" => st.shd_pnd = hex(value, "ShdPnd")?,
            b"SigBlk" => st.sig_blk = hex(value, "SigBlk")?,
            b"SigIgn" => st.sig_ign = hex(value, "SigIgn")?,
            b"VmRSS" => {
                let kb = value.trim_ascii().strip_suffix(b"kB").unwrap_or_default();
                st.vm_rss_kb = Some(one_num(kb, "VmRSS")?);
            }
            b"NStgid" => st.nstgid = parse_ns_list(value, FILE, "NStgid")?,
            b"NSpid" => st.nspid = parse_ns_list(value, FILE, "NSpid")?,
            b"NSpgid" => st.nspgid = parse_ns_list(value, FILE, "NSpgid")?,
            b"NSsid" => st.nssid = parse_ns_list(value, FILE, "NSsid")?,
            _ => {}
        }
    }
    let need = |field| ParseError::Missing { file: FILE, field };
    st.name = name.ok_or(need("Name"))?;
    st.state = state.ok_or(need("State"))?;
    st.tgid = tgid.ok_or(need("Tgid"))?;
    st.pid = pid.ok_or(need("Pid"))?;
    st.ppid = ppid.ok_or(need("PPid"))?;
    st.tracer_pid = tracer.ok_or(need("TracerPid"))?;
    st.uid = uid.ok_or(need("Uid"))?;
    st.gid = gid.ok_or(need("Gid"))?;
    st.threads = threads.ok_or(need("Threads"))?;
    Ok(st)
}

/// Replaces the number in a single-number value, keeping the whitespace
/// around it ("\t6415" → "\t3").
fn put_one(out: &mut Vec<u8>, key: &[u8], value: &[u8], v: i32) {
    let lead = value.len() - value.trim_ascii_start().len();
    let trail = value.len() - value.trim_ascii_end().len();
    out.extend_from_slice(key);
    out.push(b':');
    out.extend_from_slice(value.get(..lead).unwrap_or_default());
    push_num(out, v);
    out.extend_from_slice(
        value
            .get(value.len().saturating_sub(trail)..)
            .unwrap_or_default(),
    );
}

/// Renders a status file for the reader's VPS.
///
/// Tgid, Pid, PPid, TracerPid and Ngid are translated with `map.pid` (0
/// stays 0: none). Ngid is a NUMA group id, which the kernel prints as a
/// global pid even inside a pid namespace; we translate it like a pid so
/// the real number never reaches the VPS. NS* lines follow the NS rule (see
/// [`PidMap::ns_levels_above`]). `running`: the reader is the task shown,
/// so the kernel would show it running: "State:\tR (running)". `io_worker`: the task
/// is an io_uring worker, whose name carries a pid ([`super::io_uring_comm`]).
///
/// Tgid, Pid, PPid and State must be present: the kernel always prints
/// them, so their absence means the input is not a status file.
pub fn render_status(
    raw: &[u8],
    map: &dyn PidMap,
    running: bool,
    io_worker: bool,
) -> Result<Vec<u8>, ParseError> {
    let k = map.ns_levels_above();
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut seen = [false; 4];
    let mut consumed = 0;
    for line in lines(raw) {
        consumed += line.len();
        let (body, nl) = strip_nl(line);
        let Some((key, value)) = split_key(body) else {
            out.extend_from_slice(line);
            continue;
        };
        let pid_field = |field: &'static str| -> Result<i32, ParseError> {
            Ok(xlate(one_num(value, field)?, |p| map.pid(p)))
        };
        match key {
            b"Tgid" | b"Pid" | b"PPid" | b"TracerPid" | b"Ngid" => {
                let field = match key {
                    b"Tgid" => "Tgid",
                    b"Pid" => "Pid",
                    b"PPid" => "PPid",
                    b"TracerPid" => "TracerPid",
                    _ => "Ngid",
                };
                if let Some(i) = ["Tgid", "Pid", "PPid"].iter().position(|&f| f == field) {
                    if let Some(s) = seen.get_mut(i) {
                        *s = true;
                    }
                }
                put_one(&mut out, key, value, pid_field(field)?);
            }
            b"Name" => {
                let name = value.strip_prefix(b"\t").unwrap_or(value);
                match io_worker.then(|| super::io_uring_comm(name, map)).flatten() {
                    Some(name) => {
                        out.extend_from_slice(b"Name:\t");
                        out.extend_from_slice(&name);
                    }
                    None => out.extend_from_slice(body),
                }
            }
            b"State" => {
                seen[3] = true;
                if running {
                    out.extend_from_slice(b"State:\tR (running)");
                } else {
                    out.extend_from_slice(body);
                }
            }
            b"NStgid" | b"NSpid" | b"NSpgid" | b"NSsid" => {
                let (field, lookup): (&'static str, &dyn Fn(i32) -> i32) = match key {
                    b"NStgid" => ("NStgid", &|p| map.pid(p)),
                    b"NSpid" => ("NSpid", &|p| map.pid(p)),
                    b"NSpgid" => ("NSpgid", &|p| map.pgid(p)),
                    _ => ("NSsid", &|p| map.sid(p)),
                };
                let vals = parse_ns_list(value, FILE, field)?;
                let first = vals.first().map_or(0, |&v| xlate(v, lookup));
                let mut head = key.to_vec();
                head.push(b':');
                push_ns_line(&mut out, &head, &ns_values(&vals, k, first));
                if key == b"NSsid" && seen.iter().all(|&s| s) {
                    // The kernel prints no pid after NSsid (memory, signals,
                    // capabilities, CPUs follow): the rest is copied as it is.
                    out.extend_from_slice(nl);
                    out.extend_from_slice(raw.get(consumed..).unwrap_or_default());
                    break;
                }
            }
            _ => out.extend_from_slice(body),
        }
        out.extend_from_slice(nl);
    }
    for (i, field) in ["Tgid", "Pid", "PPid", "State"].into_iter().enumerate() {
        if !seen.get(i).copied().unwrap_or(false) {
            return Err(ParseError::Missing { file: FILE, field });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{fixture, Shift};
    use super::super::{parse_stat, Identity, TableMap};
    use super::*;
    use proptest::prelude::*;

    const ALL: [(&[u8], &[u8]); 11] = [
        (fixture!("status_plain"), fixture!("stat_plain")),
        (fixture!("status_paren_trap"), fixture!("stat_paren_trap")),
        (fixture!("status_space"), fixture!("stat_space")),
        (fixture!("status_newline"), fixture!("stat_newline")),
        (fixture!("status_close_paren"), fixture!("stat_close_paren")),
        (fixture!("status_fifteen"), fixture!("stat_fifteen")),
        (fixture!("status_sched_trap"), fixture!("stat_sched_trap")),
        (
            fixture!("status_backslash_tab"),
            fixture!("stat_backslash_tab"),
        ),
        (fixture!("status_high_bytes"), fixture!("stat_high_bytes")),
        (fixture!("status_tty"), fixture!("stat_tty")),
        (fixture!("status_nested2"), fixture!("stat_nested2")),
    ];

    fn line<'a>(raw: &'a [u8], key: &str) -> &'a [u8] {
        raw.split(|&c| c == b'\n')
            .find(|l| l.starts_with(format!("{key}:").as_bytes()))
            .unwrap()
    }

    #[test]
    fn fixtures_parse_and_agree_with_stat() {
        for (status, stat) in ALL {
            let s = parse_status(status).unwrap();
            let t = parse_stat(stat).unwrap();
            assert_eq!(s.name, t.comm, "unescaped Name equals comm");
            assert_eq!((s.pid, s.tgid, s.ppid), (t.pid, t.pid, t.ppid));
            assert_eq!(s.nspid.first(), Some(&t.pid));
            assert_eq!(s.nspgid.first(), Some(&t.pgrp));
            assert_eq!(s.nssid.first(), Some(&t.session));
            assert_eq!(
                (s.uid, s.gid, s.threads, s.tracer_pid),
                ([0; 4], [0; 4], 1, 0)
            );
        }
        assert_eq!(parse_status(fixture!("status_threads")).unwrap().threads, 4);
    }

    /// The signal masks and the resident size of a real status, with its signal lines
    /// set as a test needs them.
    #[test]
    fn signals_and_rss() {
        let with = |masks: &[(&str, &str)]| -> Status {
            let text = String::from_utf8(fixture!("status_plain").to_vec()).unwrap();
            let lines: Vec<String> = text
                .lines()
                .map(
                    |l| match masks.iter().find(|(k, _)| l.starts_with(&format!("{k}:"))) {
                        Some((k, v)) => format!("{k}:\t{v}"),
                        None => l.to_string(),
                    },
                )
                .collect();
            parse_status((lines.join("\n") + "\n").as_bytes()).unwrap()
        };
        let plain = with(&[]);
        assert_eq!(plain.deliverable_signals(), 0);
        assert!(plain.vm_rss_kb.is_some_and(|kb| kb > 0));
        // SIGTERM (15, bit 14) pending for the process; SIGUSR1's (bit 9) for the task,
        // blocked.
        let pending = with(&[
            ("SigPnd", "0000000000000100"),
            ("ShdPnd", "0000000000004100"),
            ("SigBlk", "0000000000000100"),
        ]);
        assert_eq!(pending.deliverable_signals(), 1 << 14);
        let ignored = with(&[
            ("ShdPnd", "0000000000004000"),
            ("SigIgn", "0000000000004000"),
        ]);
        assert_eq!(ignored.deliverable_signals(), 0);
        assert!(parse_status(
            &fixture!("status_plain")
                .to_vec()
                .into_iter()
                .chain(*b"SigBlk:\tzz\n")
                .collect::<Vec<_>>()
        )
        .is_err());
    }

    #[test]
    fn fixtures_identity_is_noop() {
        let more = [
            fixture!("status_self"),
            fixture!("status_threads"),
            fixture!("status_nested1"),
        ];
        for raw in ALL.iter().map(|a| a.0).chain(more) {
            assert_eq!(render_status(raw, &Identity, false, false).unwrap(), raw);
        }
    }

    #[test]
    fn name_line_kept_escaped() {
        let raw = fixture!("status_newline");
        assert_eq!(line(raw, "Name"), b"Name:\tnew\\nline");
        let out = render_status(raw, &Shift { off: 5, levels: 0 }, false, false).unwrap();
        assert_eq!(line(&out, "Name"), b"Name:\tnew\\nline");
        let raw = fixture!("status_backslash_tab");
        assert_eq!(parse_status(raw).unwrap().name, b"b\\s\tt");
        let out = render_status(raw, &Shift { off: 5, levels: 0 }, false, false).unwrap();
        assert_eq!(line(&out, "Name"), line(raw, "Name"));
    }

    #[test]
    fn nested_fixture_two_levels_below_daemon() {
        // Captured: NSpid:\t<real>\t2\t1; the VPS is the innermost namespace.
        let raw = fixture!("status_nested2");
        let s = parse_status(raw).unwrap();
        assert_eq!(&s.nspid[1..], &[2, 1]);
        assert_eq!(&s.nspgid[1..], &[0, 0]);
        let map = TableMap::new()
            .with_pids(&[(s.pid, 1)])
            .with_levels_above(2);
        let out = render_status(raw, &map, false, false).unwrap();
        let r = parse_status(&out).unwrap();
        assert_eq!((r.tgid, r.pid, r.ppid), (1, 1, 0));
        assert_eq!(line(&out, "NStgid"), b"NStgid:\t1");
        assert_eq!(line(&out, "NSpid"), b"NSpid:\t1");
        assert_eq!(line(&out, "NSpgid"), b"NSpgid:\t0");
        assert_eq!(line(&out, "NSsid"), b"NSsid:\t0");
        // VPS one level below the daemon: the task is 2 there and 1 below.
        let map = TableMap::new()
            .with_pids(&[(s.pid, 2), (s.ppid, 1)])
            .with_levels_above(1);
        let out = render_status(raw, &map, false, false).unwrap();
        assert_eq!(line(&out, "NSpid"), b"NSpid:\t2\t1");
        assert_eq!(line(&out, "PPid"), b"PPid:\t1");
        assert_eq!(line(&out, "NSpgid"), b"NSpgid:\t0\t0");
    }

    #[test]
    fn nested_fixture_matches_kernel_inside_view() {
        // What the kernel itself showed inside a new pid namespace for
        // `cat /proc/self/status` (pid 3 there): one NS value per line.
        let inside = fixture!("nested_inside_dump");
        assert_eq!(line(inside, "NSpid"), b"NSpid:\t3");
        assert_eq!(line(inside, "NSpgid"), b"NSpgid:\t0");
    }

    #[test]
    fn exact_bytes_flat_vps() {
        let raw = b"Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t100\nNgid:\t77\nPid:\t101\nPPid:\t99\nTracerPid:\t100\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNStgid:\t100\nNSpid:\t101\nNSpgid:\t100\nNSsid:\t98\nThreads:\t2\n";
        let map = TableMap::new()
            .with_pids(&[(100, 1), (101, 2), (77, 9)])
            .with_pgids(&[(100, 1)]);
        let want = b"Name:\tx\nUmask:\t0022\nState:\tR (running)\nTgid:\t1\nNgid:\t9\nPid:\t2\nPPid:\t0\nTracerPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNStgid:\t1\nNSpid:\t2\nNSpgid:\t1\nNSsid:\t0\nThreads:\t2\n";
        assert_eq!(
            render_status(raw, &map, true, false).unwrap(),
            want.to_vec()
        );
    }

    #[test]
    fn ngid_zero_stays_and_global_is_hidden() {
        let raw = b"State:\tS (sleeping)\nTgid:\t5\nNgid:\t0\nPid:\t5\nPPid:\t1\n";
        let out = render_status(
            raw,
            &Shift {
                off: 100,
                levels: 0,
            },
            false,
            false,
        )
        .unwrap();
        assert_eq!(line(&out, "Ngid"), b"Ngid:\t0");
        let raw = b"State:\tS (sleeping)\nTgid:\t5\nNgid:\t4242\nPid:\t5\nPPid:\t1\n";
        let out = render_status(raw, &TableMap::new(), false, false).unwrap();
        assert_eq!(line(&out, "Ngid"), b"Ngid:\t0");
    }

    #[test]
    fn running_rewrites_state_only() {
        let raw = fixture!("status_plain");
        let out = render_status(raw, &Identity, true, false).unwrap();
        assert_eq!(line(&out, "State"), b"State:\tR (running)");
        assert_eq!(
            out.len(),
            raw.len() - b"S (sleeping)".len() + b"R (running)".len()
        );
    }

    #[test]
    fn rejects_malformed() {
        let ok = b"State:\tS (sleeping)\nTgid:\t5\nPid:\t5\nPPid:\t1\n";
        assert!(render_status(ok, &Identity, false, false).is_ok());
        assert_eq!(
            render_status(b"", &Identity, false, false),
            Err(ParseError::Missing {
                file: "status",
                field: "Tgid"
            })
        );
        assert_eq!(
            render_status(
                b"State:\tS\nTgid:\t5\nPid:\tx\nPPid:\t1\n",
                &Identity,
                false,
                false
            ),
            Err(ParseError::BadNumber {
                file: "status",
                field: "Pid"
            })
        );
        assert!(render_status(
            b"State:\tS\nTgid:\t5\nPid:\t5\nPPid:\t1\nNSpid:\n",
            &Identity,
            false,
            false
        )
        .is_err());
        assert!(render_status(
            b"State:\tS\nTgid:\t5\nPid:\t5\nPPid:\t1\nNSpid:\t5\tz\n",
            &Identity,
            false,
            false
        )
        .is_err());
        assert!(parse_status(ok).is_err(), "parse needs Name, Uid, Gid, ...");
        assert!(parse_status(b"Name:\tx\nUid:\t0\t0\t0\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300), running: bool, levels in 0usize..4) {
            let _ = render_status(&raw, &Shift { off: 3, levels }, running, false);
            let _ = parse_status(&raw);
        }

        #[test]
        fn never_panics_near_valid(
            keys in proptest::collection::vec(prop_oneof![
                Just("Name:"), Just("State:"), Just("Tgid:"), Just("Pid:"), Just("PPid:"), Just("Ngid:"),
                Just("TracerPid:"), Just("Uid:"), Just("Gid:"), Just("NSpid:"), Just("NSpgid:"), Just("Threads:")], 0..16),
            vals in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b'-'), Just(b'\\'), b'0'..=b'9'], 0..12), 16),
            levels in 0usize..4,
        ) {
            let mut raw = Vec::new();
            for (k, v) in keys.iter().zip(&vals) {
                raw.extend_from_slice(k.as_bytes());
                raw.extend_from_slice(v);
                raw.push(b'\n');
            }
            let _ = render_status(&raw, &Shift { off: 3, levels }, true, false);
            let _ = parse_status(&raw);
        }
    }
}
