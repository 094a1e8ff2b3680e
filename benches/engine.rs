//! Micro-benchmark of the VPID engine (`cargo bench --bench engine`, release build).
//!
//! Prints, for a VPS of 10,000 members:
//! - translations per second on one thread (per core), pid → vpid (`vpid_of`,
//!   `pid_type_to_vpid`, `translate`) and vpid → pid (`vpid_to_pid`), in linear and in
//!   sparse mode, over random lookups of the members' numbers (median of several runs);
//! - the time of `switch_to_sparse_mapping` for 1,000 and 10,000 members (median of
//!   repeated runs, each on a fresh clone of the linear VPS);
//! - heap bytes per sparse mapping, measured with a counting global allocator: heap of
//!   the VPS in sparse mode minus the same VPS in linear mode, divided by the number of
//!   sparse entries; and total engine heap bytes per member.
//!
//! Each figure is printed beside its target. `BENCH_RUNS` sets the number of runs
//! (default 11).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

use vprocfs::engine::{Mode, Numbering, Pid, PidType, Requested, Strays, TaskIds, Vps, VpsConfig};

// ----- counting allocator ---------------------------------------------------------------

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter of
// live bytes is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes that `f` leaves allocated (the value it returns keeps them alive).
fn heap_of<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = LIVE.load(Relaxed);
    let v = f();
    (v, LIVE.load(Relaxed) - before)
}

// ----- workload -------------------------------------------------------------------------

/// xorshift64*: a fixed pseudo-random sequence, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INIT: Pid = 1000;

/// A VPS of `members` tasks, built as a kernel would: real pids handed out upwards from
/// init's with random gaps (so some have the VPID bit set), one task in four a thread of
/// an earlier process, one process in 40 a session leader, one in 10 a group leader.
fn build(members: usize, numbering: Numbering) -> Vps {
    let config = VpsConfig {
        numbering,
        ..VpsConfig::default()
    };
    let mut vps = Vps::new(1, "bench", TaskIds::process(INIT, INIT, INIT), config).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ members as u64);
    let mut procs: Vec<Pid> = vec![INIT];
    let mut pid = INIT;
    while vps.tasks_num() < members {
        pid += 1 + rng.below(3) as Pid;
        if rng.below(4) == 0 {
            let tgid = procs[rng.below(procs.len())];
            vps.fork(TaskIds::thread(pid, tgid), Requested::Auto)
                .unwrap();
            continue;
        }
        let parent = procs[rng.below(procs.len())];
        let (pgid, sid) = vps.group_ids(parent).unwrap();
        vps.fork(TaskIds::process(pid, pgid, sid), Requested::Auto)
            .unwrap();
        match rng.below(40) {
            0 => vps.setsid(pid).unwrap(),
            1..=4 => vps.setpgid(pid, pid).unwrap(),
            _ => {}
        }
        procs.push(pid);
    }
    vps
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(11)
}

/// Lookups per second of `f` over `keys`, median of `runs()` runs of `rounds` passes.
fn rate(keys: &[i32], rounds: usize, mut f: impl FnMut(i32) -> i32) -> f64 {
    // Warm up.
    for &k in keys {
        black_box(f(black_box(k)));
    }
    let mut rates = vec![];
    for _ in 0..runs() {
        let start = Instant::now();
        for _ in 0..rounds {
            for &k in keys {
                black_box(f(black_box(k)));
            }
        }
        let secs = start.elapsed().as_secs_f64();
        rates.push((keys.len() * rounds) as f64 / secs);
    }
    median(rates)
}

fn mps(r: f64) -> String {
    format!("{:8.1} M/s", r / 1e6)
}

fn main() {
    const N: usize = 10_000;
    const KEYS: usize = 1 << 16;
    const ROUNDS: usize = 64; // 4 Mi lookups per run
    println!(
        "vprocfs engine micro-benchmark (one thread; median of {} runs)",
        runs()
    );
    println!();

    // ----- translation throughput ---------------------------------------------------
    let linear = build(N, Numbering::Linear);
    let mut sparse = linear.clone();
    sparse.switch_to_sparse_mapping().unwrap();
    assert_eq!(linear.mode(), Mode::Linear);
    assert_eq!(sparse.mode(), Mode::Sparse);
    println!(
        "VPS: {} members ({} thread groups), {} numbers in use, {} sparse entries",
        linear.tasks_num(),
        linear.tgids().count(),
        linear.numbers_in_use(),
        sparse.sparse_entries()
    );
    let tids: Vec<Pid> = {
        let mut t: Vec<Pid> = linear.tids().collect();
        t.sort_unstable();
        t
    };
    let mut rng = Rng(42);
    let pid_keys: Vec<Pid> = (0..KEYS).map(|_| tids[rng.below(tids.len())]).collect();
    let vpid_keys: Vec<i32> = pid_keys
        .iter()
        .map(|&p| linear.vpid_of(p).unwrap())
        .collect();
    // Sanity: every lookup hits, in both modes.
    for (&p, &v) in pid_keys.iter().zip(&vpid_keys) {
        assert_eq!(sparse.vpid_of(p), Some(v));
        assert_eq!(linear.vpid_to_pid(v), Some(p));
        assert_eq!(sparse.vpid_to_pid(v), Some(p));
    }

    println!();
    println!("translations per second, per core (random lookups over the members):");
    println!("  {:<40} {:>12} {:>12}   target", "", "linear", "sparse");
    for (name, lin, sp) in [
        (
            "pid -> vpid   vpid_of",
            rate(&pid_keys, ROUNDS, |k| linear.vpid_of(k).unwrap_or(0)),
            rate(&pid_keys, ROUNDS, |k| sparse.vpid_of(k).unwrap_or(0)),
        ),
        (
            "pid -> vpid   pid_type_to_vpid(Pid)",
            rate(&pid_keys, ROUNDS, |k| {
                linear.pid_type_to_vpid(PidType::Pid, k).unwrap_or(0)
            }),
            rate(&pid_keys, ROUNDS, |k| {
                sparse.pid_type_to_vpid(PidType::Pid, k).unwrap_or(0)
            }),
        ),
        (
            "pid -> vpid   translate(Pid, Isolate)",
            rate(&pid_keys, ROUNDS, |k| {
                linear.translate(PidType::Pid, k, Strays::Isolate)
            }),
            rate(&pid_keys, ROUNDS, |k| {
                sparse.translate(PidType::Pid, k, Strays::Isolate)
            }),
        ),
        (
            "vpid -> pid   vpid_to_pid",
            rate(&vpid_keys, ROUNDS, |k| linear.vpid_to_pid(k).unwrap_or(0)),
            rate(&vpid_keys, ROUNDS, |k| sparse.vpid_to_pid(k).unwrap_or(0)),
        ),
    ] {
        println!(
            "  {:<40} {:>12} {:>12}   >= 50 M/s (sparse) {}",
            name,
            mps(lin),
            mps(sp),
            if sp >= 50e6 { "met" } else { "MISSED" }
        );
    }

    // ----- switch_to_sparse_mapping ---------------------------------------------------
    println!();
    println!("switch_to_sparse_mapping (each run on a fresh clone of the linear VPS):");
    let switch_runs = runs().max(5) * 3;
    for n in [1_000usize, 10_000] {
        let base = if n == N {
            linear.clone()
        } else {
            build(n, Numbering::Linear)
        };
        let mut times = vec![];
        for _ in 0..switch_runs {
            let mut v = base.clone();
            let start = Instant::now();
            v.switch_to_sparse_mapping().unwrap();
            let t = start.elapsed();
            black_box(&v);
            times.push(t.as_secs_f64());
            drop(v);
        }
        let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let med = median(times);
        let target = if n == 10_000 {
            format!("<= 2 ms {}", if med <= 0.002 { "met" } else { "MISSED" })
        } else {
            String::new()
        };
        println!(
            "  {:>6} members ({:>6} numbers): median {:>9.1} µs  (min {:>7.1} µs, {} runs)   {}",
            n,
            base.numbers_in_use(),
            med * 1e6,
            min * 1e6,
            switch_runs,
            target
        );
    }

    // ----- memory ---------------------------------------------------------------------
    println!();
    println!("heap memory (counting global allocator):");
    for n in [1_000usize, 10_000] {
        let (lin, lin_bytes) = heap_of(|| build(n, Numbering::Linear));
        // The same VPS, switched: the difference is the sparse table alone.
        let (sw, sw_bytes) = heap_of(|| {
            let mut v = lin.clone();
            v.switch_to_sparse_mapping().unwrap();
            v
        });
        let (lin_clone, lin_clone_bytes) = heap_of(|| lin.clone());
        // Sparse from the start: the table grew with the VPS.
        let (sp, sp_bytes) = heap_of(|| build(n, Numbering::Sparse));
        assert_eq!(sp.numbers_in_use(), lin.numbers_in_use());
        let entries = sw.sparse_entries() as f64;
        let per_switched = (sw_bytes - lin_clone_bytes) as f64 / entries;
        let per_grown = (sp_bytes - lin_bytes) as f64 / sp.sparse_entries() as f64;
        println!("  {n:>6} members, {} sparse entries:", sw.sparse_entries());
        println!(
            "    bytes per sparse mapping, switched VPS   {per_switched:>6.1} B   target <= 64 B {}",
            if per_switched <= 64.0 { "met" } else { "MISSED" }
        );
        println!(
            "    bytes per sparse mapping, sparse from start {per_grown:>4.1} B   target <= 64 B {}",
            if per_grown <= 64.0 { "met" } else { "MISSED" }
        );
        println!(
            "    engine heap per member: linear {:>6.1} B, sparse {:>6.1} B  (linear {} B, sparse {} B in all)",
            lin_bytes as f64 / n as f64,
            sp_bytes as f64 / n as f64,
            lin_bytes,
            sp_bytes
        );
        drop((lin, sw, lin_clone, sp));
    }
}
