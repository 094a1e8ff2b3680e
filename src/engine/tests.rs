//! Unit tests: the seed's functions, case by case, with exact values.
//!
//! Every table names the seed rule it walks through. Real pids are small made-up numbers;
//! `VPID_DIV` is 1024 unless a case says otherwise.

use super::*;

const DIV: i32 = 1024;
const INIT: Pid = 100;

fn cfg(numbering: Numbering) -> VpsConfig {
    VpsConfig {
        numbering,
        ..VpsConfig::default()
    }
}

fn cfg_cap(numbering: Numbering, max_mappings: usize) -> VpsConfig {
    VpsConfig {
        numbering,
        max_mappings,
        ..VpsConfig::default()
    }
}

/// A VPS whose init (100) leads its own session and group.
fn vps_with(config: VpsConfig) -> Vps {
    Vps::new(1, "test", TaskIds::process(INIT, INIT, INIT), config).unwrap()
}

fn linear() -> Vps {
    vps_with(cfg(Numbering::Linear))
}

fn sparse() -> Vps {
    vps_with(cfg(Numbering::Sparse))
}

/// A child process of init, in init's group and session.
fn child(pid: Pid) -> TaskIds {
    TaskIds::process(pid, INIT, INIT)
}

fn pairs(vps: &Vps) -> Vec<(Pid, Vpid)> {
    vps.mappings().iter().map(|m| (m.pid, m.vpid)).collect()
}

// ----- alloc_vpid -----------------------------------------------------------------------

#[test]
fn alloc_vpid_linear_table() {
    struct Case {
        what: &'static str,
        pid: Pid,
        requested: Requested,
        expect: Result<Vpid, EngineError>,
        mode_after: Mode,
    }
    let cases = [
        Case {
            what: "auto is pid + VPID_DIV",
            pid: 200,
            requested: Requested::Auto,
            expect: Ok(200 + DIV),
            mode_after: Mode::Linear,
        },
        Case {
            what: "auto for a real pid with the VPID bit set",
            pid: 1500,
            requested: Requested::Auto,
            expect: Ok(2524),
            mode_after: Mode::Linear,
        },
        Case {
            what: "request of pid + VPID_DIV stays linear",
            pid: 200,
            requested: Requested::Vpid(1224),
            expect: Ok(1224),
            mode_after: Mode::Linear,
        },
        Case {
            what: "any other request switches to sparse",
            pid: 200,
            requested: Requested::Vpid(5),
            expect: Ok(5),
            mode_after: Mode::Sparse,
        },
        Case {
            what: "a request of 1 for a non-init while init lives: EEXIST, no switch",
            pid: 200,
            requested: Requested::Vpid(1),
            expect: Err(EngineError::VpidTaken(1)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "a request of another member's linear vpid: EEXIST, no switch",
            pid: 300,
            requested: Requested::Vpid(INIT + DIV + 1),
            expect: Err(EngineError::VpidTaken(INIT + DIV + 1)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "pid already has a vpid",
            pid: 101,
            requested: Requested::Auto,
            expect: Err(EngineError::PidInUse(101)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "pid 0",
            pid: 0,
            requested: Requested::Auto,
            expect: Err(EngineError::InvalidPid(0)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "negative pid",
            pid: -7,
            requested: Requested::Auto,
            expect: Err(EngineError::InvalidPid(-7)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "pid above PID_MAX_LIMIT",
            pid: PID_MAX_LIMIT + 1,
            requested: Requested::Auto,
            expect: Err(EngineError::InvalidPid(PID_MAX_LIMIT + 1)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "vpid 0",
            pid: 200,
            requested: Requested::Vpid(0),
            expect: Err(EngineError::InvalidVpid(0)),
            mode_after: Mode::Linear,
        },
        Case {
            what: "negative vpid",
            pid: 200,
            requested: Requested::Vpid(-3),
            expect: Err(EngineError::InvalidVpid(-3)),
            mode_after: Mode::Linear,
        },
    ];
    for c in cases {
        let mut vps = linear();
        vps.fork(child(101), Requested::Auto).unwrap();
        let before = vps.clone();
        let got = vps.alloc_vpid(c.pid, c.requested);
        assert_eq!(got, c.expect, "{}", c.what);
        assert_eq!(vps.mode(), c.mode_after, "{}", c.what);
        match got {
            Ok(v) => {
                assert_eq!(vps.vpid_of(c.pid), Some(v), "{}", c.what);
                assert_eq!(vps.vpid_to_pid(v), Some(c.pid), "{}", c.what);
                assert_eq!(vps.last_vpid(), v, "{}", c.what);
                if vps.mode() == Mode::Sparse {
                    assert_eq!(vps.sparse_entries(), 3, "{}", c.what);
                }
            }
            Err(_) => assert_eq!(vps, before, "{}: a failed alloc changes nothing", c.what),
        }
    }
}

#[test]
fn alloc_vpid_request_one_for_init() {
    // At creation: the seed's alloc_vpid(init_pid, 1).
    let vps = linear();
    assert_eq!(vps.vpid_of(INIT), Some(1));
    assert_eq!(vps.vpid_to_pid(1), Some(INIT));
    assert_eq!(vps.mode(), Mode::Linear);
    // Init gone, its number comes back as init: 1 again, still linear.
    let mut vps = linear();
    vps.exit(INIT).unwrap();
    assert_eq!(vps.vpid_to_pid(1), None);
    assert_eq!(vps.alloc_vpid(INIT, Requested::Vpid(1)), Ok(1));
    assert_eq!(vps.mode(), Mode::Linear);
    assert_eq!(vps.vpid_to_pid(1), Some(INIT));
    // Init gone, another number asks for 1: that needs the table, and 1 is free.
    let mut vps = linear();
    vps.exit(INIT).unwrap();
    assert_eq!(vps.alloc_vpid(200, Requested::Vpid(1)), Ok(1));
    assert_eq!(vps.mode(), Mode::Sparse);
    assert_eq!(vps.vpid_to_pid(1), Some(200));
}

#[test]
fn alloc_vpid_sparse_table() {
    struct Case {
        what: &'static str,
        /// (pid, requested vpid) allocated first, in order.
        taken: &'static [(Pid, Vpid)],
        pid: Pid,
        requested: Requested,
        expect: Result<Vpid, EngineError>,
    }
    let cases = [
        Case {
            what: "auto without collision is pid + VPID_DIV",
            taken: &[],
            pid: 200,
            requested: Requested::Auto,
            expect: Ok(1224),
        },
        Case {
            what: "requested and free",
            taken: &[],
            pid: 200,
            requested: Requested::Vpid(7),
            expect: Ok(7),
        },
        Case {
            what: "requested and taken: EEXIST",
            taken: &[(300, 7)],
            pid: 200,
            requested: Requested::Vpid(7),
            expect: Err(EngineError::VpidTaken(7)),
        },
        Case {
            what: "requested 1 while init holds it: EEXIST",
            taken: &[],
            pid: 200,
            requested: Requested::Vpid(1),
            expect: Err(EngineError::VpidTaken(1)),
        },
        Case {
            what: "requested pid + VPID_DIV taken by a restored task: EEXIST",
            taken: &[(300, 1224)],
            pid: 200,
            requested: Requested::Vpid(1224),
            expect: Err(EngineError::VpidTaken(1224)),
        },
        Case {
            what: "collision: probe to the next number (it has the VPID bit)",
            taken: &[(300, 1224)],
            pid: 200,
            requested: Requested::Auto,
            expect: Ok(1225),
        },
        Case {
            what: "collision: probe steps over several taken numbers",
            taken: &[(300, 1224), (301, 1225), (302, 1226)],
            pid: 200,
            requested: Requested::Auto,
            expect: Ok(1227),
        },
        Case {
            what: "collision: 2048 has no VPID bit, skipped by += VPID_DIV to 3072",
            taken: &[(300, 2047)],
            pid: 1023,
            requested: Requested::Auto,
            expect: Ok(3072),
        },
        Case {
            what: "collision: 3072 taken too, then 3073",
            taken: &[(300, 2047), (301, 3072)],
            pid: 1023,
            requested: Requested::Auto,
            expect: Ok(3073),
        },
        Case {
            what:
                "collision at the top: 32768 -> 33792 >= pid_max wraps to RESERVED_PIDS + VPID_DIV",
            taken: &[(300, 32767)],
            pid: 31743,
            requested: Requested::Auto,
            expect: Ok(RESERVED_PIDS + DIV),
        },
        Case {
            what: "wrap target taken: the probe goes on from 1324",
            taken: &[(300, 32767), (301, 1324)],
            pid: 31743,
            requested: Requested::Auto,
            expect: Ok(1325),
        },
        Case {
            what: "linear vpid above pid_max collides: 41025 has no bit, 42049 wraps",
            taken: &[(300, 41024)],
            pid: 40000,
            requested: Requested::Auto,
            expect: Ok(1324),
        },
        Case {
            what: "a real pid with the VPID bit set: 2524 has no VPID bit but is free",
            taken: &[],
            pid: 1500,
            requested: Requested::Auto,
            expect: Ok(2524),
        },
        Case {
            what: "a real pid with the VPID bit set, collision: 2525 has no bit -> 3549",
            taken: &[(300, 2524)],
            pid: 1500,
            requested: Requested::Auto,
            expect: Ok(3549),
        },
    ];
    for c in cases {
        let mut vps = sparse();
        for &(p, v) in c.taken {
            assert_eq!(vps.fork(child(p), Requested::Vpid(v)), Ok(v), "{}", c.what);
        }
        let before = vps.clone();
        let got = vps.alloc_vpid(c.pid, c.requested);
        assert_eq!(got, c.expect, "{}", c.what);
        match got {
            Ok(v) => {
                assert_eq!(vps.vpid_of(c.pid), Some(v), "{}", c.what);
                assert_eq!(vps.vpid_to_pid(v), Some(c.pid), "{}", c.what);
                assert_eq!(vps.last_vpid(), v, "{}: remembers the last one", c.what);
                assert_eq!(vps.sparse_entries(), before.sparse_entries() + 1);
            }
            Err(_) => assert_eq!(vps, before, "{}", c.what),
        }
    }
}

#[test]
fn alloc_vpid_probe_exhausted_is_no_free_vpid() {
    // pid_max 1400: the probe's candidates are 1324..=1399 (all have bit 10 set).
    let mut vps = vps_with(VpsConfig {
        numbering: Numbering::Sparse,
        pid_max: 1400,
        ..VpsConfig::default()
    });
    for v in (RESERVED_PIDS + DIV)..1400 {
        vps.fork(child(v + 1000), Requested::Vpid(v)).unwrap();
    }
    // pid 300 wants 1324: taken; every candidate is taken.
    let before = vps.clone();
    assert_eq!(
        vps.alloc_vpid(300, Requested::Auto),
        Err(EngineError::NoFreeVpid(1400))
    );
    assert_eq!(vps, before);
}

#[test]
fn alloc_vpid_other_vpid_bits() {
    struct Case {
        bit: u32,
        pid: Pid,
        linear: Vpid,
        /// The vpid auto gets in sparse mode when `linear` is taken.
        probed: Vpid,
    }
    let cases = [
        // div 256: 456 taken -> 457 has bit 8 (256+201) -> 457.
        Case {
            bit: 8,
            pid: 200,
            linear: 456,
            probed: 457,
        },
        // div 256: 511 taken -> 512 lacks bit 8 -> 768.
        Case {
            bit: 8,
            pid: 255,
            linear: 511,
            probed: 768,
        },
        // div 4096: 4296 taken -> 4297.
        Case {
            bit: 12,
            pid: 200,
            linear: 4296,
            probed: 4297,
        },
        // div 4096: 8191 taken -> 8192 lacks bit 12 -> 12288.
        Case {
            bit: 12,
            pid: 4095,
            linear: 8191,
            probed: 12288,
        },
        // div 2: 202 taken -> 203 (0b11001011) has bit 1 -> 203.
        Case {
            bit: 1,
            pid: 200,
            linear: 202,
            probed: 203,
        },
    ];
    for c in cases {
        let mut lin = vps_with(VpsConfig {
            vpid_bit: c.bit,
            ..VpsConfig::default()
        });
        assert_eq!(lin.vpid_div(), 1 << c.bit);
        assert_eq!(lin.fork(child(c.pid), Requested::Auto), Ok(c.linear));
        assert_eq!(lin.vpid_to_pid(c.linear), Some(c.pid));
        assert_eq!(lin.vpid_to_pid(1), Some(INIT));
        assert_eq!(lin.vpid_to_pid(INIT + (1 << c.bit)), None);

        let mut sp = vps_with(VpsConfig {
            vpid_bit: c.bit,
            numbering: Numbering::Sparse,
            ..VpsConfig::default()
        });
        sp.fork(child(9000), Requested::Vpid(c.linear)).unwrap();
        assert_eq!(
            sp.fork(child(c.pid), Requested::Auto),
            Ok(c.probed),
            "bit {}",
            c.bit
        );
    }
}

#[test]
fn alloc_vpid_ns_dense_numbering() {
    let mut vps = vps_with(cfg(Numbering::Ns));
    assert_eq!(vps.mode(), Mode::Sparse);
    assert_eq!(vps.vpid_of(INIT), Some(1));
    let mut got = vec![];
    for p in [5000, 7000, 6000, 1500] {
        got.push(vps.fork(child(p), Requested::Auto).unwrap());
    }
    assert_eq!(got, [2, 3, 4, 5]);
    // A freed number is not reused at once: the next one after the cursor is.
    vps.exit(5000).unwrap();
    assert_eq!(vps.fork(child(5001), Requested::Auto), Ok(6));
    // A requested vpid is skipped by the dense numbering, and does not move the cursor.
    assert_eq!(vps.fork(child(5002), Requested::Vpid(7)), Ok(7));
    assert_eq!(vps.fork(child(5003), Requested::Auto), Ok(8));
    assert_eq!(vps.fork(child(5004), Requested::Vpid(20)), Ok(20));
    assert_eq!(vps.fork(child(5005), Requested::Auto), Ok(9));
    assert_eq!(
        vps.fork(child(5006), Requested::Vpid(9)),
        Err(EngineError::VpidTaken(9))
    );
}

#[test]
fn alloc_vpid_ns_passes_over_the_number_of_a_task_gone_before_it_was_numbered() {
    let mut vps = vps_with(cfg(Numbering::Ns));
    assert_eq!(vps.fork(child(5000), Requested::Auto), Ok(2));
    vps.fork(child(5002), Requested::Vpid(4)).unwrap();
    // The kernel gave vpid 3 to a task reaped before anyone numbered it.
    vps.pass_over_vpid(5001, false);
    assert_eq!(vps.last_vpid(), 3);
    assert_eq!(vps.kept_vpid(5001), Some(3), "kept for what may name it");
    assert_eq!(vps.vpid_to_pid(3), None);
    assert_eq!(
        vps.fork(child(5003), Requested::Auto),
        Ok(5),
        "4 is taken, 3 was the gone task's"
    );
    // The other policies number from the real pid: nothing to pass over.
    let mut linear = vps_with(cfg(Numbering::Linear));
    let before = linear.last_vpid();
    linear.pass_over_vpid(5001, false);
    assert_eq!(linear.last_vpid(), before);
    assert_eq!(linear.kept_vpid(5001), Some(5001 + DIV));
    // Numbered by a pid namespace: the last vpid shown moves on as the namespace's
    // did, past the numbers in use.
    let mut by_kernel = vps_with(cfg(Numbering::Sparse));
    by_kernel.fork(child(6000), Requested::Vpid(2)).unwrap();
    by_kernel.fork(child(6001), Requested::Vpid(4)).unwrap();
    by_kernel.set_last_vpid(3);
    by_kernel.pass_over_vpid(6002, true);
    assert_eq!(by_kernel.last_vpid(), 5);
    assert_eq!(by_kernel.kept_vpid(6002), Some(5));
}

#[test]
fn alloc_vpid_ns_wraps_to_one_before_the_cursor_passes_300() {
    let mut vps = vps_with(VpsConfig {
        numbering: Numbering::Ns,
        pid_max: 310,
        ..VpsConfig::default()
    });
    // Auto: 2, 3, 4, 5 (cursor 5); requested: 6..=309 fill the rest.
    for p in 2..=5 {
        assert_eq!(vps.fork(child(1000 + p), Requested::Auto), Ok(p));
    }
    for v in 6..310 {
        vps.fork(child(1000 + v), Requested::Vpid(v)).unwrap();
    }
    vps.exit(1003).unwrap(); // frees vpid 3
    assert_eq!(vps.fork(child(2000), Requested::Auto), Ok(3));
    assert_eq!(
        vps.fork(child(2001), Requested::Auto),
        Err(EngineError::NoFreeVpid(310))
    );
}

#[test]
fn alloc_vpid_ns_wraps_to_reserved_pids_after_the_cursor_passed_300() {
    let mut vps = vps_with(VpsConfig {
        numbering: Numbering::Ns,
        pid_max: 310,
        ..VpsConfig::default()
    });
    // Init is 1; autos give 2..=309, the cursor ends at 309 (past 300).
    for v in 2..310 {
        assert_eq!(vps.fork(child(1000 + v), Requested::Auto), Ok(v));
    }
    assert_eq!(
        vps.fork(child(2000), Requested::Auto),
        Err(EngineError::NoFreeVpid(310))
    );
    vps.exit(1005).unwrap(); // frees 5
    vps.exit(1303).unwrap(); // frees 303
    assert_eq!(vps.fork(child(2000), Requested::Auto), Ok(303));
    // 5 is free, but below RESERVED_PIDS: the kernel does not go back there.
    assert_eq!(
        vps.fork(child(2001), Requested::Auto),
        Err(EngineError::NoFreeVpid(310))
    );
    // A requested 5 is fine.
    assert_eq!(vps.fork(child(2001), Requested::Vpid(5)), Ok(5));
}

#[test]
fn alloc_vpid_cap_table() {
    struct Case {
        what: &'static str,
        numbering: Numbering,
        cap: usize,
        /// Children of init forked (auto) first.
        children: &'static [Pid],
        pid: Pid,
        requested: Requested,
        expect: Result<Vpid, EngineError>,
        mode_after: Mode,
    }
    let cases = [
        Case {
            what: "switch needs 3 entries, cap 2: ENOMEM, stays linear",
            numbering: Numbering::Linear,
            cap: 2,
            children: &[200, 201],
            pid: 300,
            requested: Requested::Vpid(5),
            expect: Err(EngineError::OutOfMappings { cap: 2 }),
            mode_after: Mode::Linear,
        },
        Case {
            what: "switch fits exactly (3 of 3) but the new entry does not: unchanged",
            numbering: Numbering::Linear,
            cap: 3,
            children: &[200, 201],
            pid: 300,
            requested: Requested::Vpid(5),
            expect: Err(EngineError::OutOfMappings { cap: 3 }),
            mode_after: Mode::Linear,
        },
        Case {
            what: "switch and entry fit (4 of 4)",
            numbering: Numbering::Linear,
            cap: 4,
            children: &[200, 201],
            pid: 300,
            requested: Requested::Vpid(5),
            expect: Ok(5),
            mode_after: Mode::Sparse,
        },
        Case {
            what: "linear auto needs no entry, whatever the cap",
            numbering: Numbering::Linear,
            cap: 0,
            children: &[200, 201],
            pid: 300,
            requested: Requested::Auto,
            expect: Ok(300 + DIV),
            mode_after: Mode::Linear,
        },
        Case {
            what: "linear request of pid + VPID_DIV needs no entry",
            numbering: Numbering::Linear,
            cap: 0,
            children: &[200],
            pid: 300,
            requested: Requested::Vpid(300 + DIV),
            expect: Ok(300 + DIV),
            mode_after: Mode::Linear,
        },
        Case {
            what: "sparse full: auto fails",
            numbering: Numbering::Sparse,
            cap: 3,
            children: &[200, 201],
            pid: 300,
            requested: Requested::Auto,
            expect: Err(EngineError::OutOfMappings { cap: 3 }),
            mode_after: Mode::Sparse,
        },
        Case {
            what: "ns full: auto fails",
            numbering: Numbering::Ns,
            cap: 2,
            children: &[200],
            pid: 300,
            requested: Requested::Auto,
            expect: Err(EngineError::OutOfMappings { cap: 2 }),
            mode_after: Mode::Sparse,
        },
    ];
    for c in cases {
        // A cap of 0 is fine for a linear VPS: init needs no entry there.
        let mut vps = vps_with(cfg_cap(c.numbering, c.cap));
        for &p in c.children {
            vps.fork(child(p), Requested::Auto).unwrap();
        }
        let before = vps.clone();
        let got = vps.alloc_vpid(c.pid, c.requested);
        assert_eq!(got, c.expect, "{}", c.what);
        assert_eq!(vps.mode(), c.mode_after, "{}", c.what);
        if got.is_err() {
            assert_eq!(vps, before, "{}: a failed switch changes nothing", c.what);
        }
    }
}

#[test]
fn switch_to_sparse_mapping_direct() {
    // Cap below the tasks: fails, unchanged.
    let mut vps = vps_with(cfg_cap(Numbering::Linear, 1));
    vps.fork(child(200), Requested::Auto).unwrap();
    let before = vps.clone();
    assert_eq!(
        vps.switch_to_sparse_mapping(),
        Err(EngineError::OutOfMappings { cap: 1 })
    );
    assert_eq!(vps, before);
    // Orphaned groups need entries beyond the task count: 2 tasks, 3 numbers.
    let orphaned = |cap| {
        let mut vps = vps_with(cfg_cap(Numbering::Linear, cap));
        vps.fork(child(200), Requested::Auto).unwrap();
        vps.setpgid(200, 200).unwrap();
        vps.fork(TaskIds::process(201, 200, INIT), Requested::Auto)
            .unwrap();
        vps.exit(200).unwrap();
        vps
    };
    let mut vps = orphaned(2);
    assert_eq!(vps.tasks_num(), 2);
    assert_eq!(vps.numbers_in_use(), 3);
    let before = vps.clone();
    assert_eq!(
        vps.switch_to_sparse_mapping(),
        Err(EngineError::OutOfMappings { cap: 2 })
    );
    assert_eq!(vps, before);
    // Enough room: every number, the orphaned group's included, keeps its vpid.
    let mut vps = orphaned(3);
    let lin = pairs(&vps);
    assert_eq!(vps.switch_to_sparse_mapping(), Ok(()));
    assert_eq!(vps.mode(), Mode::Sparse);
    assert_eq!(pairs(&vps), lin);
    assert_eq!(vps.sparse_entries(), 3);
    assert_eq!(vps.vpid_to_pid(200 + DIV), Some(200));
    // Twice is a no-op.
    let again = vps.clone();
    assert_eq!(vps.switch_to_sparse_mapping(), Ok(()));
    assert_eq!(vps, again);
}

// ----- free_vpid ------------------------------------------------------------------------

#[test]
fn free_vpid_table() {
    for numbering in [Numbering::Linear, Numbering::Sparse, Numbering::Ns] {
        let mut vps = vps_with(cfg(numbering));
        vps.fork(child(200), Requested::Auto).unwrap();
        let before = pairs(&vps);
        let sparse_before = vps.sparse_entries();

        // alloc then free, auto and requested.
        for req in [
            Requested::Auto,
            Requested::Vpid(777),
            Requested::Vpid(300 + DIV),
        ] {
            let v = vps.alloc_vpid(300, req).unwrap();
            assert_eq!(vps.vpid_to_pid(v), Some(300));
            assert_eq!(vps.free_vpid(v), Ok(()), "{numbering:?} {req:?}");
            assert_eq!(pairs(&vps), before, "{numbering:?} {req:?}");
            assert_eq!(vps.vpid_of(300), None);
            assert_eq!(vps.vpid_to_pid(v), None);
        }
        if vps.mode() == Mode::Sparse {
            assert_eq!(
                vps.sparse_entries(),
                before.len().max(sparse_before),
                "{numbering:?}"
            );
        }

        // Errors change nothing.
        let snapshot = vps.clone();
        let v200 = vps.vpid_of(200).unwrap();
        assert_eq!(vps.free_vpid(v200), Err(EngineError::PidInUse(200)));
        assert_eq!(vps.free_vpid(1), Err(EngineError::PidInUse(INIT)));
        assert_eq!(vps.free_vpid(55555), Err(EngineError::InvalidVpid(55555)));
        assert_eq!(vps.free_vpid(0), Err(EngineError::InvalidVpid(0)));
        assert_eq!(vps.free_vpid(-1), Err(EngineError::InvalidVpid(-1)));
        assert_eq!(vps, snapshot);
    }
}

// ----- exit -----------------------------------------------------------------------------

#[test]
fn exit_frees_with_the_last_user() {
    for numbering in [Numbering::Linear, Numbering::Sparse] {
        let mut vps = vps_with(cfg(numbering));
        vps.fork(child(200), Requested::Auto).unwrap();
        let before = pairs(&vps);
        // A childless process in its parent's group: fork then exit restores everything.
        vps.fork(child(300), Requested::Auto).unwrap();
        assert_eq!(vps.exit(300), Ok(()));
        assert_eq!(pairs(&vps), before);
        // A thread: its own number goes, the group's stays.
        vps.fork(TaskIds::thread(201, 200), Requested::Auto)
            .unwrap();
        assert_eq!(vps.vpid_of(201), Some(201 + DIV));
        vps.exit(201).unwrap();
        assert_eq!(vps.vpid_of(201), None);
        assert_eq!(vps.vpid_of(200), Some(200 + DIV));
        assert_eq!(pairs(&vps), before);
        // Unknown task.
        let snap = vps.clone();
        assert_eq!(vps.exit(999), Err(EngineError::NoSuchTask(999)));
        assert_eq!(vps, snap);
        // Everyone gone: nothing left.
        vps.exit(200).unwrap();
        vps.exit(INIT).unwrap();
        assert_eq!(vps.numbers_in_use(), 0);
        assert_eq!(vps.sparse_entries(), 0);
        assert_eq!(vps.tasks_num(), 0);
    }
}

#[test]
fn exit_orphaned_process_group_keeps_its_vpid() {
    for numbering in [Numbering::Linear, Numbering::Sparse, Numbering::Ns] {
        let mut vps = vps_with(cfg(numbering));
        let v200 = vps.fork(child(200), Requested::Auto).unwrap();
        vps.setpgid(200, 200).unwrap();
        let v300 = vps
            .fork(TaskIds::process(300, 200, INIT), Requested::Auto)
            .unwrap();
        vps.exit(200).unwrap();
        // The leader is gone, the group is not.
        assert_eq!(vps.vpid_of(200), Some(v200), "{numbering:?}");
        assert_eq!(vps.pid_type_to_vpid(PidType::Pgid, 200), Some(v200));
        assert_eq!(vps.pid_type_to_vpid(PidType::Pid, 200), None);
        assert_eq!(vps.pid_type_to_vpid(PidType::Tgid, 200), None);
        assert_eq!(vps.translate(PidType::Pid, 200, Strays::Isolate), 0);
        assert_eq!(vps.vpid_to_pid(v200), Some(200));
        assert_eq!(vps.comb_pid_to_vpid(-200, Strays::Isolate), -v200);
        assert_eq!(vps.comb_vpid_to_pid(-v200), Some(-200));
        assert_eq!(vps.group_ids(300), Some((200, INIT)));
        // A new member joins the orphaned group: still the same vpid.
        vps.fork(TaskIds::process(400, 200, INIT), Requested::Auto)
            .unwrap();
        vps.exit(300).unwrap();
        assert_eq!(vps.vpid_of(300), None);
        assert_eq!(vps.vpid_of(200), Some(v200));
        // The last member leaves the group by setpgid: the number goes.
        vps.setpgid(400, INIT).unwrap();
        assert_eq!(vps.vpid_of(200), None, "{numbering:?}");
        assert_eq!(vps.vpid_to_pid(v200), None);
        assert_eq!(vps.vpid_to_pid(v300), None);
        assert_eq!(vps.numbers_in_use(), 2);
    }
}

#[test]
fn exit_orphaned_session_keeps_its_vpid() {
    for numbering in [Numbering::Linear, Numbering::Sparse] {
        let mut vps = vps_with(cfg(numbering));
        let v200 = vps.fork(child(200), Requested::Auto).unwrap();
        vps.setsid(200).unwrap();
        assert_eq!(vps.group_ids(200), Some((200, 200)));
        vps.fork(TaskIds::process(300, 200, 200), Requested::Auto)
            .unwrap();
        vps.setpgid(300, 300).unwrap(); // its own group, still in session 200
        vps.exit(200).unwrap();
        // No process group 200 any more, the session lives on.
        assert_eq!(vps.pid_type_to_vpid(PidType::Pgid, 200), None);
        assert_eq!(vps.pid_type_to_vpid(PidType::Sid, 200), Some(v200));
        assert_eq!(vps.translate(PidType::Sid, 200, Strays::Isolate), v200);
        assert_eq!(vps.vpid_to_pid(v200), Some(200));
        vps.exit(300).unwrap();
        assert_eq!(vps.vpid_of(200), None);
        assert_eq!(vps.vpid_of(300), None);
        assert_eq!(pairs(&vps), vec![(INIT, 1)]);
    }
}

/// A freed number keeps, one way, the vpid it had, for the kernel objects that hold its
/// `struct pid` (a terminal's emptied foreground group, an IPC object's creator): no
/// vpid lookup finds it, a new task may take the vpid, and a new task of the same real
/// number makes it forgotten.
#[test]
fn a_freed_number_keeps_its_vpid_one_way() {
    for numbering in [Numbering::Linear, Numbering::Sparse, Numbering::Ns] {
        let what = format!("{numbering:?}");
        let mut vps = vps_with(cfg(numbering));
        let v300 = vps
            .fork(TaskIds::process(300, 300, INIT), Requested::Auto)
            .unwrap();
        assert_eq!(vps.kept_vpid(300), Some(v300), "{what}: in use");
        vps.exit(300).unwrap();
        assert_eq!(vps.vpid_of(300), None, "{what}");
        assert_eq!(vps.kept_vpid(300), Some(v300), "{what}: freed");
        assert_eq!(vps.vpid_to_pid(v300), None, "{what}");
        assert_eq!(vps.translate(PidType::Pgid, 300, Strays::Isolate), 0);
        assert_eq!(pairs(&vps), vec![(INIT, 1)], "{what}");
        assert_eq!(vps.kept_vpid(999), None, "{what}: never a member's");
        // A new task may be given the vpid (a pid namespace hands the number out again).
        if numbering != Numbering::Linear {
            vps.fork(child(350), Requested::Vpid(v300)).unwrap();
            assert_eq!(vps.vpid_to_pid(v300), Some(350), "{what}");
            assert_eq!(vps.kept_vpid(300), Some(v300), "{what}");
            vps.exit(350).unwrap();
        }
        // A new task of the same real number: the old one is no longer told apart.
        let again = vps.fork(child(300), Requested::Auto).unwrap();
        assert_eq!(vps.kept_vpid(300), Some(again), "{what}");
        vps.exit(300).unwrap();
        assert_eq!(vps.kept_vpid(300), Some(again), "{what}");
    }
}

/// The freed numbers remembered are the last [`KEPT_FREED`], oldest forgotten first.
#[test]
fn freed_numbers_are_remembered_up_to_a_bound() {
    let mut vps = sparse();
    let first = vps.fork(child(200), Requested::Auto).unwrap();
    vps.exit(200).unwrap();
    for pid in 1000..1000 + KEPT_FREED as Pid {
        vps.fork(child(pid), Requested::Auto).unwrap();
        vps.exit(pid).unwrap();
        // Freed again and again: one entry, the newest.
        if pid == 1000 {
            vps.fork(child(pid), Requested::Auto).unwrap();
            vps.exit(pid).unwrap();
        }
    }
    assert_eq!(vps.kept_numbers(), KEPT_FREED);
    assert_eq!(vps.kept_vpid(200), None, "the oldest is forgotten: {first}");
    assert!(vps.kept_vpid(1000).is_some());
    let newest = 1000 + KEPT_FREED as Pid - 1;
    assert!(vps.kept_vpid(newest).is_some());
    // One number handed out and freed over and over: one entry, and the order of
    // freeings, stale entries and all, stays bounded (compacted).
    let mut last = 0;
    for _ in 0..3 * KEPT_FREED {
        last = vps.fork(child(9000), Requested::Auto).unwrap();
        vps.exit(9000).unwrap();
    }
    assert_eq!(vps.kept_vpid(9000), Some(last));
    assert_eq!(vps.kept_numbers(), KEPT_FREED);
    assert!(vps.kept_vpid(newest).is_some());
}

#[test]
fn exit_of_a_leader_thread_keeps_the_thread_group() {
    let mut vps = sparse();
    vps.fork(child(200), Requested::Auto).unwrap();
    vps.fork(TaskIds::thread(201, 200), Requested::Auto)
        .unwrap();
    vps.exit(200).unwrap(); // leader thread first (a zombie leader)
    assert_eq!(vps.pid_type_to_vpid(PidType::Tgid, 200), Some(1224));
    assert_eq!(vps.pid_type_to_vpid(PidType::Pid, 200), None);
    assert_eq!(vps.group_ids(200), Some((INIT, INIT)));
    vps.exit(201).unwrap();
    assert_eq!(vps.vpid_of(200), None);
    assert_eq!(vps.group_ids(200), None);
    assert_eq!(pairs(&vps), vec![(INIT, 1)]);
}

// ----- switch_exec_pids -----------------------------------------------------------------

#[test]
fn switch_exec_pids_table() {
    struct Case {
        what: &'static str,
        numbering: Numbering,
        leader_exited_first: bool,
    }
    let cases = [
        Case {
            what: "linear, leader alive",
            numbering: Numbering::Linear,
            leader_exited_first: false,
        },
        Case {
            what: "sparse, leader alive",
            numbering: Numbering::Sparse,
            leader_exited_first: false,
        },
        Case {
            what: "ns, leader alive",
            numbering: Numbering::Ns,
            leader_exited_first: false,
        },
        Case {
            what: "linear, leader a zombie",
            numbering: Numbering::Linear,
            leader_exited_first: true,
        },
        Case {
            what: "sparse, leader a zombie",
            numbering: Numbering::Sparse,
            leader_exited_first: true,
        },
    ];
    for c in cases {
        let mut vps = vps_with(cfg(c.numbering));
        let vg = vps.fork(child(200), Requested::Auto).unwrap();
        let v201 = vps
            .fork(TaskIds::thread(201, 200), Requested::Auto)
            .unwrap();
        vps.fork(TaskIds::thread(202, 200), Requested::Auto)
            .unwrap();
        vps.fork(TaskIds::process(300, INIT, INIT), Requested::Auto)
            .unwrap();
        assert_eq!(vps.threads_of(200), 3, "{}", c.what);
        if c.leader_exited_first {
            vps.exit(200).unwrap();
        }
        vps.exit(202).unwrap(); // de_thread kills the other threads first
        assert_eq!(vps.switch_exec_pids(201), Ok(()), "{}", c.what);
        assert!(vps.has_task(200), "{}", c.what);
        assert!(!vps.has_task(201), "{}", c.what);
        assert_eq!(vps.tgid_of(200), Some(200));
        assert_eq!(
            vps.threads_of(200),
            1,
            "{}: the exec'ed thread alone",
            c.what
        );
        assert_eq!(vps.threads_of(201), 0, "{}", c.what);
        assert_eq!(
            vps.vpid_of(200),
            Some(vg),
            "{}: the group keeps its vpid",
            c.what
        );
        assert_eq!(vps.pid_type_to_vpid(PidType::Pid, 200), Some(vg));
        assert_eq!(vps.pid_type_to_vpid(PidType::Tgid, 200), Some(vg));
        assert_eq!(
            vps.vpid_of(201),
            None,
            "{}: the thread's own is freed",
            c.what
        );
        assert_eq!(vps.vpid_to_pid(v201), None, "{}", c.what);
        assert_eq!(vps.tasks_num(), 3);
        assert_eq!(vps.numbers_in_use(), 3);
        if vps.mode() == Mode::Sparse {
            assert_eq!(vps.sparse_entries(), 3);
        }
        // The exec'ed process lives on as an ordinary one.
        vps.exit(200).unwrap();
        assert_eq!(vps.vpid_of(200), None, "{}", c.what);
    }
    // A leader exec'ing: nothing to do. Unknown task: ESRCH.
    let mut vps = linear();
    vps.fork(child(200), Requested::Auto).unwrap();
    let snap = vps.clone();
    assert_eq!(vps.switch_exec_pids(200), Ok(()));
    assert_eq!(vps, snap);
    assert_eq!(vps.switch_exec_pids(999), Err(EngineError::NoSuchTask(999)));
    assert_eq!(vps, snap);
}

// ----- pid_type_to_vpid / translate ------------------------------------------------------

/// Init 100 (session and group 100); 200 leads group 200 in session 100; 201 is a
/// thread of 200; 300 is in group 200; 400 is in a group and session outside the VPS
/// (50, 60, e.g. inherited from the host). Linear mode.
fn roles_vps(numbering: Numbering) -> Vps {
    let mut vps = vps_with(cfg(numbering));
    vps.fork(child(200), Requested::Auto).unwrap();
    vps.setpgid(200, 200).unwrap();
    vps.fork(TaskIds::thread(201, 200), Requested::Auto)
        .unwrap();
    vps.fork(TaskIds::process(300, 200, INIT), Requested::Auto)
        .unwrap();
    vps.fork(TaskIds::process(400, 50, 60), Requested::Auto)
        .unwrap();
    vps
}

#[test]
fn pid_type_to_vpid_per_role() {
    use PidType::*;
    let cases: &[(PidType, i32, Option<Vpid>)] = &[
        (Pid, INIT, Some(1)),
        (Tgid, INIT, Some(1)),
        (Pgid, INIT, Some(1)),
        (Sid, INIT, Some(1)),
        (Pid, 200, Some(1224)),
        (Tgid, 200, Some(1224)),
        (Pgid, 200, Some(1224)),
        (Sid, 200, None),
        (Pid, 201, Some(1225)),
        (Tgid, 201, None),
        (Pgid, 201, None),
        (Sid, 201, None),
        (Pid, 300, Some(1324)),
        (Tgid, 300, Some(1324)),
        (Pgid, 300, None),
        (Pid, 400, Some(1424)),
        (Pgid, 50, None),
        (Sid, 60, None),
        (Pid, 50, None),
        (Pid, 999, None),
        (Pid, 0, None),
        (Pid, -200, None),
    ];
    for numbering in [Numbering::Linear, Numbering::Sparse] {
        let vps = roles_vps(numbering);
        for &(ty, pid, expect) in cases {
            assert_eq!(
                vps.pid_type_to_vpid(ty, pid),
                expect,
                "{numbering:?} {ty:?} {pid}"
            );
        }
        assert_eq!(vps.group_ids(400), Some((50, 60)));
        assert_eq!(vps.vpid_of(50), None);
        assert_eq!(vps.vpid_of(201), Some(1225));
    }
}

#[test]
fn translate_strays_table() {
    use PidType::*;
    // (role, number, Isolate, PassThrough)
    let cases: &[(PidType, i32, i32, i32)] = &[
        (Pid, 200, 1224, 1224),
        (Pid, INIT, 1, 1),
        (Pgid, 200, 1224, 1224),
        (Pgid, 50, 0, 50),   // a foreign group
        (Sid, 60, 0, 60),    // a foreign session
        (Pid, 999, 0, 999),  // not in use at all
        (Tgid, 201, 0, 201), // a thread id is no thread group
        (Pid, 0, 0, 0),
        (Pid, -1, -1, -1), // numbers <= 0 pass as they are, as in the seed
        (Pgid, -200, -200, -200),
        (Pid, i32::MIN, i32::MIN, i32::MIN),
        (Pid, i32::MAX, 0, i32::MAX),
    ];
    let vps = roles_vps(Numbering::Linear);
    for &(ty, pid, iso, pass) in cases {
        assert_eq!(vps.translate(ty, pid, Strays::Isolate), iso, "{ty:?} {pid}");
        assert_eq!(
            vps.translate(ty, pid, Strays::PassThrough),
            pass,
            "{ty:?} {pid}"
        );
    }
    assert_eq!(Strays::default(), Strays::Isolate);
}

// ----- vpid_to_pid ----------------------------------------------------------------------

#[test]
fn vpid_to_pid_linear_table() {
    let mut vps = linear();
    vps.fork(child(200), Requested::Auto).unwrap();
    vps.fork(child(1500), Requested::Auto).unwrap(); // has the VPID bit set
    vps.fork(child(476), Requested::Auto).unwrap(); // 476 + 1024 = 1500
    let cases: &[(Vpid, Option<Pid>)] = &[
        (1, Some(INIT)),
        (1224, Some(200)),
        (2524, Some(1500)), // 1500 round-trips although 2524 lacks bit 10
        (1500, Some(476)),  // and 1500 as a vpid names 476, not itself
        (INIT + DIV, None), // init is 1, not 1124
        (2, None),
        (INIT, None),
        (200, None),
        (DIV, None),
        (DIV + 1, None),
        (1225, None),
        (0, None),
        (-1, None),
        (-1224, None),
        (i32::MAX, None),
        (i32::MIN, None),
    ];
    for &(vpid, expect) in cases {
        assert_eq!(vps.vpid_to_pid(vpid), expect, "vpid {vpid}");
    }
    for v in 2..=DIV {
        assert_eq!(
            vps.vpid_to_pid(v),
            None,
            "vpid {v} <= VPID_DIV has no preimage"
        );
    }
    for m in vps.mappings() {
        assert_eq!(vps.vpid_to_pid(m.vpid), Some(m.pid));
        assert_eq!(vps.vpid_of(m.pid), Some(m.vpid));
    }
}

#[test]
fn vpid_to_pid_sparse_table() {
    let mut vps = sparse();
    vps.fork(child(200), Requested::Vpid(2)).unwrap();
    vps.fork(child(300), Requested::Auto).unwrap();
    let cases: &[(Vpid, Option<Pid>)] = &[
        (1, Some(INIT)),
        (2, Some(200)),
        (1324, Some(300)),
        (1224, None),
        (INIT + DIV, None),
        (3, None),
        (0, None),
        (-2, None),
        (i32::MIN, None),
    ];
    for &(vpid, expect) in cases {
        assert_eq!(vps.vpid_to_pid(vpid), expect, "vpid {vpid}");
    }
}

// ----- comb_pid_to_vpid / comb_vpid_to_pid -------------------------------------------

#[test]
fn comb_pid_to_vpid_table() {
    let vps = roles_vps(Numbering::Linear);
    // (number, Isolate, PassThrough)
    let cases: &[(i32, i32, i32)] = &[
        (200, 1224, 1224),
        (-200, -1224, -1224), // process group 200
        (-INIT, -1, -1),
        (300, 1324, 1324),
        (-300, 0, -300), // 300 leads no group
        (-50, 0, -50),   // a foreign group
        (999, 0, 999),
        (0, 0, 0),
        (i32::MIN, 0, 0), // no negation possible: 0, no panic
        (i32::MAX, 0, i32::MAX),
        (-i32::MAX, 0, -i32::MAX),
    ];
    for &(pid, iso, pass) in cases {
        assert_eq!(vps.comb_pid_to_vpid(pid, Strays::Isolate), iso, "{pid}");
        assert_eq!(
            vps.comb_pid_to_vpid(pid, Strays::PassThrough),
            pass,
            "{pid}"
        );
    }
}

#[test]
fn comb_vpid_to_pid_table() {
    for numbering in [Numbering::Linear, Numbering::Sparse] {
        let vps = roles_vps(numbering);
        let cases: &[(i32, Option<i32>)] = &[
            (1224, Some(200)),
            (-1224, Some(-200)),
            (1, Some(INIT)),
            (-1, Some(-INIT)),
            (1324, Some(300)),
            (0, Some(0)),
            (5, None),
            (-5, None),
            (i32::MIN, None),
            (i32::MAX, None),
        ];
        for &(vpid, expect) in cases {
            assert_eq!(vps.comb_vpid_to_pid(vpid), expect, "{numbering:?} {vpid}");
        }
    }
}

// ----- get_task_ppid ---------------------------------------------------------------------

#[test]
fn get_task_ppid_table() {
    let mut vps = roles_vps(Numbering::Sparse);
    vps.fork(TaskIds::process(500, 200, INIT), Requested::Vpid(42))
        .unwrap();
    // (task, real parent's tgid, expected ppid)
    let cases: &[(Pid, Pid, Vpid)] = &[
        (INIT, 7, 0),     // init: 0, its parent is outside
        (INIT, INIT, 0),  // init: 0 whatever is passed
        (200, INIT, 1),   // child of init
        (201, INIT, 1),   // a thread: its process's parent
        (300, 200, 1224), // grandchild
        (500, 300, 1324),
        (300, 500, 42),
        (300, 7, 0),    // reparented outside the VPS
        (300, 201, 0),  // a thread id is no parent
        (999, INIT, 0), // not a member
        (200, 50, 0),   // 50 is a foreign group, not a member
    ];
    for &(pid, parent, expect) in cases {
        assert_eq!(vps.get_task_ppid(pid, parent), expect, "{pid} {parent}");
    }
}

// ----- setpgid / setsid / attach ---------------------------------------------------------

#[test]
fn setpgid_and_setsid_move_references() {
    let mut vps = linear();
    vps.fork(child(200), Requested::Auto).unwrap();
    vps.fork(child(300), Requested::Auto).unwrap();
    vps.setpgid(200, 200).unwrap();
    vps.setpgid(300, 200).unwrap();
    assert_eq!(vps.pid_type_to_vpid(PidType::Pgid, 200), Some(1224));
    assert_eq!(vps.pid_type_to_vpid(PidType::Pgid, INIT), Some(1)); // init still
    vps.setpgid(300, 300).unwrap();
    vps.setpgid(200, INIT).unwrap();
    assert_eq!(vps.pid_type_to_vpid(PidType::Pgid, 200), None);
    vps.setsid(300).unwrap();
    assert_eq!(vps.group_ids(300), Some((300, 300)));
    assert_eq!(vps.pid_type_to_vpid(PidType::Sid, 300), Some(1324));
    // A group outside the VPS: recorded, not held.
    vps.setpgid(200, 77).unwrap();
    assert_eq!(vps.group_ids(200), Some((77, INIT)));
    assert_eq!(vps.vpid_of(77), None);
    assert_eq!(vps.translate(PidType::Pgid, 77, Strays::Isolate), 0);
    let snap = vps.clone();
    assert_eq!(vps.setpgid(999, 999), Err(EngineError::NoSuchGroup(999)));
    assert_eq!(vps.setsid(999), Err(EngineError::NoSuchGroup(999)));
    assert_eq!(vps, snap);
}

#[test]
fn fork_and_attach_errors_change_nothing() {
    let mut vps = linear();
    vps.fork(child(200), Requested::Auto).unwrap();
    let snap = vps.clone();
    assert_eq!(
        vps.fork(child(200), Requested::Auto),
        Err(EngineError::TaskExists(200))
    );
    assert_eq!(
        vps.fork(TaskIds::thread(201, 555), Requested::Auto),
        Err(EngineError::NoSuchGroup(555))
    );
    assert_eq!(vps.attach(child(300)), Err(EngineError::NotAllocated(300)));
    assert_eq!(vps, snap);
    // alloc, then attach: the two halves of fork.
    let v = vps.alloc_vpid(300, Requested::Auto).unwrap();
    assert_eq!(vps.attach(child(300)), Ok(()));
    assert_eq!(vps.vpid_of(300), Some(v));
    assert_eq!(vps.pid_type_to_vpid(PidType::Pid, 300), Some(v));
    // Bad configs.
    for bad in [
        VpsConfig {
            vpid_bit: 0,
            ..VpsConfig::default()
        },
        VpsConfig {
            vpid_bit: 25,
            ..VpsConfig::default()
        },
        VpsConfig {
            pid_max: RESERVED_PIDS,
            ..VpsConfig::default()
        },
        VpsConfig {
            pid_max: PID_MAX_LIMIT + 1,
            ..VpsConfig::default()
        },
    ] {
        assert!(matches!(
            Vps::new(1, "x", child(INIT), bad),
            Err(EngineError::InvalidConfig(_))
        ));
    }
    assert_eq!(
        Vps::new(1, "x", TaskIds::thread(101, INIT), VpsConfig::default()),
        Err(EngineError::InvalidPid(101))
    );
}

#[test]
fn errno_values() {
    assert_eq!(EngineError::VpidTaken(5).errno(), libc::EEXIST);
    assert_eq!(EngineError::OutOfMappings { cap: 1 }.errno(), libc::ENOMEM);
    assert_eq!(EngineError::NoFreeVpid(1).errno(), libc::EAGAIN);
    assert_eq!(EngineError::InvalidVpid(0).errno(), libc::EINVAL);
    assert_eq!(EngineError::NoSuchTask(1).errno(), libc::ESRCH);
}

// ----- Engine ----------------------------------------------------------------------------

#[test]
fn engine_two_vpses_do_not_interfere() {
    let mut e = Engine::new();
    let a = e
        .create_vps("a", TaskIds::process(100, 100, 100), cfg(Numbering::Linear))
        .unwrap();
    let b = e
        .create_vps("b", TaskIds::process(500, 500, 500), cfg(Numbering::Sparse))
        .unwrap();
    assert_ne!(a, b);
    // The same vpids in both, for different real numbers.
    assert_eq!(
        e.fork(a, TaskIds::process(200, 100, 100), Requested::Auto),
        Ok(1224)
    );
    assert_eq!(
        e.fork(b, TaskIds::process(600, 500, 500), Requested::Vpid(1224)),
        Ok(1224)
    );
    let va = e.vps(a).unwrap().clone();
    let vb = e.vps(b).unwrap().clone();
    // Operations on b leave a alone, and the other way round.
    e.fork(b, TaskIds::process(700, 500, 500), Requested::Vpid(2))
        .unwrap();
    e.setsid(700).unwrap();
    e.exit(600).unwrap();
    assert_eq!(e.vps(a), Some(&va));
    e.fork(a, TaskIds::process(300, 100, 100), Requested::Vpid(3))
        .unwrap();
    e.exit(200).unwrap();
    assert_ne!(e.vps(b), Some(&vb));
    let vb2 = e.vps(b).unwrap().clone();
    e.setpgid(300, 300).unwrap();
    assert_eq!(e.vps(b), Some(&vb2));
    // Translation is per VPS.
    let (va, vb) = (e.vps(a).unwrap(), e.vps(b).unwrap());
    assert_eq!(va.vpid_to_pid(1), Some(100));
    assert_eq!(vb.vpid_to_pid(1), Some(500));
    assert_eq!(va.vpid_to_pid(3), Some(300));
    assert_eq!(vb.vpid_to_pid(3), None);
    assert_eq!(vb.vpid_to_pid(2), Some(700));
    assert_eq!(va.translate(PidType::Pid, 700, Strays::Isolate), 0);
    assert_eq!(vb.translate(PidType::Pid, 300, Strays::Isolate), 0);
    assert_eq!(e.vps_by_name("b").map(Vps::id), Some(b));
    assert_eq!(e.vpses().count(), 2);
}

#[test]
fn engine_a_task_is_in_at_most_one_vps() {
    let mut e = Engine::new();
    let a = e
        .create_vps("a", TaskIds::process(100, 100, 100), VpsConfig::default())
        .unwrap();
    let b = e
        .create_vps("b", TaskIds::process(500, 500, 500), VpsConfig::default())
        .unwrap();
    e.fork(a, TaskIds::process(200, 100, 100), Requested::Auto)
        .unwrap();
    e.fork(a, TaskIds::thread(201, 200), Requested::Auto)
        .unwrap();
    let snap = e.clone();
    assert_eq!(
        e.fork(b, TaskIds::process(200, 500, 500), Requested::Auto),
        Err(EngineError::TaskInOtherVps { pid: 200, vps: a })
    );
    assert_eq!(
        e.fork(b, TaskIds::thread(201, 200), Requested::Auto),
        Err(EngineError::TaskInOtherVps { pid: 201, vps: a })
    );
    assert_eq!(
        e.fork(b, TaskIds::thread(202, 200), Requested::Auto),
        Err(EngineError::NoSuchGroup(200))
    );
    assert_eq!(
        e.create_vps("c", TaskIds::process(200, 200, 200), VpsConfig::default()),
        Err(EngineError::TaskInOtherVps { pid: 200, vps: a })
    );
    assert_eq!(
        e.create_vps("a", TaskIds::process(900, 900, 900), VpsConfig::default()),
        Err(EngineError::VpsExists("a".into()))
    );
    assert_eq!(
        e.fork(77, TaskIds::process(900, 1, 1), Requested::Auto),
        Err(EngineError::NoSuchVps(77))
    );
    assert_eq!(e.exit(999), Err(EngineError::NoSuchTask(999)));
    assert_eq!(e.setpgid(999, 999), Err(EngineError::NoSuchTask(999)));
    assert_eq!(e.switch_exec_pids(999), Err(EngineError::NoSuchTask(999)));
    assert_eq!(e, snap);
    assert_eq!(e.vps_of(200), Some(a));
    assert_eq!(e.vps_of(201), Some(a));
    assert_eq!(e.vps_of(500), Some(b));
    // Exec through the engine: the thread takes the group's number.
    e.switch_exec_pids(201).unwrap();
    assert_eq!(e.vps_of(201), None);
    assert_eq!(e.vps_of(200), Some(a));
    // Once gone from a, the number may join b.
    e.exit(200).unwrap();
    assert_eq!(e.vps_of(200), None);
    assert_eq!(
        e.fork(b, TaskIds::process(200, 500, 500), Requested::Auto),
        Ok(1224)
    );
    assert_eq!(e.vps_of(200), Some(b));
}

#[test]
fn engine_remove_vps() {
    let mut e = Engine::new();
    let a = e
        .create_vps("a", TaskIds::process(100, 100, 100), VpsConfig::default())
        .unwrap();
    e.fork(a, TaskIds::process(200, 100, 100), Requested::Auto)
        .unwrap();
    let b = e
        .create_vps("b", TaskIds::process(500, 500, 500), VpsConfig::default())
        .unwrap();
    let vb = e.vps(b).unwrap().clone();
    let removed = e.remove_vps(a).unwrap();
    assert_eq!(removed.id(), a);
    assert_eq!(removed.tasks_num(), 2);
    assert_eq!(e.vps(a), None);
    assert_eq!(e.vps_of(100), None);
    assert_eq!(e.vps_of(200), None);
    assert_eq!(e.vps(b), Some(&vb));
    assert_eq!(
        e.remove_vps(a).map(|v| v.id()),
        Err(EngineError::NoSuchVps(a))
    );
    assert_eq!(e.exit(200), Err(EngineError::NoSuchTask(200)));
    // Its former members may now join another VPS, and its name is free again.
    e.fork(b, TaskIds::process(200, 500, 500), Requested::Auto)
        .unwrap();
    let c = e
        .create_vps("a", TaskIds::process(100, 100, 100), VpsConfig::default())
        .unwrap();
    assert_ne!(c, a, "ids are not reused");
    assert_eq!(e.vps_of(100), Some(c));
}

#[test]
fn safe_vpid_bit_puts_every_linear_vpid_above_pid_max() {
    for (pid_max, bit) in [
        (301, 9),
        (512, 9),
        (513, 10),
        (32768, 15),
        (32769, 16),
        (99999, 17),
        (4_194_304, 22),
        // Out of the kernel's range: clamped, never a panic.
        (0, 1),
        (-5, 1),
        (i32::MAX, 22),
    ] {
        assert_eq!(safe_vpid_bit(pid_max), bit, "pid_max {pid_max}");
    }
    for pid_max in [301, 1000, 32768, 65536, 100_000, 4_194_304] {
        let bit = safe_vpid_bit(pid_max);
        let config = VpsConfig {
            vpid_bit: bit,
            pid_max,
            ..VpsConfig::default()
        };
        assert_eq!(config.validate(), Ok(()), "the engine takes the default");
        let smallest_vpid = 1 + (1i64 << bit);
        assert!(smallest_vpid > i64::from(pid_max - 1), "pid_max {pid_max}");
        // The bit below would let the largest real pid's number be a vpid.
        assert!((1i64 << (bit - 1)) < i64::from(pid_max) || bit == 1);
        let mut vps = vps_with(config);
        let last = pid_max - 1;
        let v = vps.fork(child(last), Requested::Auto).unwrap();
        assert_eq!(v, last + (1 << bit));
        assert_eq!(vps.vpid_to_pid(v), Some(last));
    }
}

#[test]
fn probe_with_the_safe_bit_stays_in_the_linear_range() {
    // pid_max 32768, VPID_BIT 15: linear vpids are 32769..=65535; a collision probes
    // within that range and wraps at its top to RESERVED_PIDS + VPID_DIV.
    let config = VpsConfig {
        vpid_bit: 15,
        pid_max: 32768,
        numbering: Numbering::Sparse,
        ..VpsConfig::default()
    };
    let div = 1 << 15;
    let mut vps = vps_with(config);
    vps.fork(child(300), Requested::Vpid(200 + div)).unwrap();
    assert_eq!(vps.alloc_vpid(200, Requested::Auto), Ok(201 + div));
    vps.fork(child(301), Requested::Vpid(32767 + div)).unwrap();
    assert_eq!(
        vps.alloc_vpid(32767, Requested::Auto),
        Ok(RESERVED_PIDS + div)
    );
}
