//! `/proc/loadavg` of a VPS: the kernel's own fixed-point load average over the VPS's
//! runnable (R) and uninterruptible (D) tasks.
//!
//! The arithmetic is kernel/sched/loadavg.c and include/linux/sched/loadavg.h, so a
//! VPS's figures decay exactly as the host's do: every 5 s period,
//! `load = (load·exp + active·(FIXED_1 − exp)) / FIXED_1`, rounded up when the load is
//! rising (`active >= load`), and `calc_load_n` (the exponent raised to the n-th power
//! with `fixed_power_int`) when n periods passed without a sample. The text is
//! fs/proc/loadavg.c's: `LOAD_INT`/`LOAD_FRAC` of each average plus `FIXED_1/200`
//! (which rounds to the nearest hundredth), then "running/total last_pid".

use serde::{Deserialize, Serialize};

/// Bits of fraction in the fixed-point load.
pub const FSHIFT: u32 = 11;
/// 1.0 in fixed point.
pub const FIXED_1: u64 = 1 << FSHIFT;
/// 1/exp(5 s / 1 min) in fixed point.
pub const EXP_1: u64 = 1884;
/// 1/exp(5 s / 5 min).
pub const EXP_5: u64 = 2014;
/// 1/exp(5 s / 15 min).
pub const EXP_15: u64 = 2037;
/// The sampling period, LOAD_FREQ (the kernel's is 5 s + 1 tick).
pub const PERIOD_NS: u64 = 5_000_000_000;

/// The kernel's `calc_load`: one period's exponential decay toward `active` (which is
/// in fixed point: tasks × FIXED_1).
pub fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
    let mut newload = load
        .saturating_mul(exp)
        .saturating_add(active.saturating_mul(FIXED_1 - exp));
    if active >= load {
        newload = newload.saturating_add(FIXED_1 - 1);
    }
    newload / FIXED_1
}

/// The kernel's `fixed_power_int`: `x^n` in fixed point with `frac_bits` of fraction,
/// rounding each product to nearest.
pub fn fixed_power_int(mut x: u64, frac_bits: u32, mut n: u32) -> u64 {
    let mut result = 1u64 << frac_bits;
    let half = 1u64 << (frac_bits - 1);
    if n != 0 {
        loop {
            if n & 1 != 0 {
                result = (result.saturating_mul(x) + half) >> frac_bits;
            }
            n >>= 1;
            if n == 0 {
                break;
            }
            x = (x.saturating_mul(x) + half) >> frac_bits;
        }
    }
    result
}

/// The kernel's `calc_load_n`: n periods at once with the same `active`.
pub fn calc_load_n(load: u64, exp: u64, active: u64, n: u32) -> u64 {
    calc_load(load, fixed_power_int(exp, FSHIFT, n), active)
}

/// The three averages (`avenrun`), in fixed point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadAvg {
    pub avenrun: [u64; 3],
}

impl LoadAvg {
    /// Folds `periods` periods during which `active` tasks were R or D (the kernel's
    /// `calc_global_load`, and `calc_global_nohz`'s catch-up when periods were missed).
    pub fn fold(&mut self, active: u64, periods: u32) {
        if periods == 0 {
            return;
        }
        let active = active.saturating_mul(FIXED_1);
        for (load, exp) in self.avenrun.iter_mut().zip([EXP_1, EXP_5, EXP_15]) {
            *load = if periods == 1 {
                calc_load(*load, exp, active)
            } else {
                calc_load_n(*load, exp, active, periods)
            };
        }
    }

    /// fs/proc/loadavg.c's line: "%lu.%02lu %lu.%02lu %lu.%02lu %u/%d %d\n".
    pub fn render(&self, running: u32, total: u32, last_pid: i32) -> Vec<u8> {
        let mut out = String::with_capacity(48);
        for (i, &load) in self.avenrun.iter().enumerate() {
            // get_avenrun(avnrun, FIXED_1/200, 0): rounds to the nearest hundredth.
            let x = load.saturating_add(FIXED_1 / 200);
            let int = x >> FSHIFT;
            let frac = ((x & (FIXED_1 - 1)) * 100) >> FSHIFT;
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&format!("{int}.{frac:02}"));
        }
        out.push_str(&format!(" {running}/{total} {last_pid}\n"));
        out.into_bytes()
    }
}

/// How many whole periods a sample taken `elapsed_ns` after the previous one stands
/// for. The caller's sampler ticks every 5 s with some jitter, so a tick is counted
/// when at least half a period has passed, and a late tick (a stalled sampler, a
/// suspended host) counts the periods it missed, rounded to nearest, as
/// `calc_global_nohz` does after an idle host skipped ticks.
pub fn periods_since(elapsed_ns: u64) -> u32 {
    if elapsed_ns < PERIOD_NS / 2 {
        return 0;
    }
    let n = (elapsed_ns + PERIOD_NS / 2) / PERIOD_NS;
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct transcription of the kernel's C (unsigned long arithmetic), written
    /// separately from the code under test, to compare with.
    mod reference {
        pub const FSHIFT: u64 = 11;
        pub const FIXED_1: u64 = 1 << FSHIFT;

        pub fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
            let mut newload = load * exp + active * (FIXED_1 - exp);
            if active >= load {
                newload += FIXED_1 - 1;
            }
            newload / FIXED_1
        }

        pub fn fixed_power_int(x: u64, frac_bits: u64, n: u64) -> u64 {
            // The kernel's loop, unrolled as plain repeated squaring with a while.
            let (mut x, mut n) = (x, n);
            let mut result = 1u64 << frac_bits;
            while n > 0 {
                if n % 2 == 1 {
                    result = (result * x + (1 << (frac_bits - 1))) >> frac_bits;
                }
                n /= 2;
                if n > 0 {
                    x = (x * x + (1 << (frac_bits - 1))) >> frac_bits;
                }
            }
            result
        }

        /// `LOAD_INT(x), LOAD_FRAC(x)` after adding FIXED_1/200, as loadavg_proc_show.
        pub fn show(x: u64) -> String {
            let x = x + FIXED_1 / 200;
            format!(
                "{}.{:02}",
                x >> FSHIFT,
                ((x & (FIXED_1 - 1)) * 100) >> FSHIFT
            )
        }
    }

    #[test]
    fn one_task_for_a_minute() {
        // A fake clock: the sampler sees one runnable task at every 5 s tick for 60 s.
        let mut la = LoadAvg::default();
        let mut r = [0u64; 3];
        for _ in 0..12 {
            la.fold(1, 1);
            for (v, e) in r.iter_mut().zip([1884, 2014, 2037]) {
                *v = reference::calc_load(*v, e, reference::FIXED_1);
            }
        }
        assert_eq!(la.avenrun, r);
        // The values the kernel shows after one busy minute from idle: 1 − 1/e ≈ 0.63
        // for the 1-min average, 1 − e^(−1/5) ≈ 0.18 and 1 − e^(−1/15) ≈ 0.06.
        let text = String::from_utf8(la.render(1, 3, 42)).unwrap();
        assert_eq!(text, "0.63 0.18 0.06 1/3 42\n");
        let shown: Vec<String> = r.iter().map(|&x| reference::show(x)).collect();
        assert_eq!(text, format!("{} 1/3 42\n", shown.join(" ")));
    }

    #[test]
    fn matches_the_reference_on_a_varied_trace() {
        let mut la = LoadAvg::default();
        let mut r = [0u64; 3];
        // A pseudo-random trace of active counts, some ticks missed (n > 1).
        let mut seed = 12345u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let active = (seed >> 33) % 40;
            let n = 1 + ((seed >> 20) % 7 == 0) as u32 * ((seed >> 40) % 5) as u32;
            la.fold(active, n);
            for (v, e) in r.iter_mut().zip([1884u64, 2014, 2037]) {
                let e = if n == 1 {
                    e
                } else {
                    reference::fixed_power_int(e, 11, u64::from(n))
                };
                *v = reference::calc_load(*v, e, active * reference::FIXED_1);
            }
            assert_eq!(la.avenrun, r);
        }
    }

    #[test]
    fn calc_load_n_equals_n_steps_approximately() {
        // With a constant active count, n periods at once land within a hair of n
        // single steps (the kernel's own approximation).
        let mut single = LoadAvg::default();
        let mut batch = LoadAvg::default();
        for _ in 0..12 {
            single.fold(4, 1);
        }
        batch.fold(4, 12);
        for (a, b) in single.avenrun.iter().zip(batch.avenrun) {
            assert!(a.abs_diff(b) <= 12, "{a} vs {b}");
        }
        assert_eq!(fixed_power_int(EXP_1, FSHIFT, 0), FIXED_1);
        assert_eq!(fixed_power_int(EXP_1, FSHIFT, 1), EXP_1);
    }

    #[test]
    fn decays_to_zero_and_renders() {
        let mut la = LoadAvg {
            avenrun: [FIXED_1 * 2, FIXED_1, FIXED_1 / 2],
        };
        assert_eq!(la.render(0, 0, 1), b"2.00 1.00 0.50 0/0 1\n");
        for _ in 0..10_000 {
            la.fold(0, 1);
        }
        assert_eq!(la.avenrun, [0, 0, 0]);
        assert_eq!(la.render(1, 1, 1), b"0.00 0.00 0.00 1/1 1\n");
    }

    #[test]
    fn sampling_periods() {
        assert_eq!(periods_since(0), 0);
        assert_eq!(periods_since(2_000_000_000), 0);
        assert_eq!(periods_since(2_600_000_000), 1);
        assert_eq!(periods_since(4_900_000_000), 1);
        assert_eq!(periods_since(5_100_000_000), 1);
        assert_eq!(periods_since(7_600_000_000), 2);
        assert_eq!(periods_since(60_000_000_000), 12);
    }
}
