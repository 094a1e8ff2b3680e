//! `/proc/uptime` of a VPS.
//!
//! The first field is the reader's `CLOCK_BOOTTIME`: the host's boottime plus the
//! VPS's time-namespace offset. With a time namespace (which `vprocfs run` gives a
//! VPS, offset so that it starts at 0) that is the VPS's age; without one it is the
//! host's uptime. Either way it agrees with the start times the kernel writes in
//! `/proc/<pid>/stat` for that reader, so `ps` shows true start and elapsed times
//! (LXCFS shows the container's age even without a time namespace, which is what
//! makes `ps` start times wrong there: lxcfs#164, #189).
//!
//! The second field is the idle time summed over the visible CPUs: uptime × CPUs −
//! CPU time the VPS used, never negative and never going back (the caller keeps
//! the floor). Both are printed as fs/proc/uptime.c does, `%lu.%02lu`, truncating
//! to hundredths.

/// The text for an uptime and an idle time in ns.
pub fn render(uptime_ns: u64, idle_ns: u64) -> Vec<u8> {
    let fmt = |ns: u64| {
        format!(
            "{}.{:02}",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 10_000_000
        )
    };
    format!("{} {}\n", fmt(uptime_ns), fmt(idle_ns)).into_bytes()
}

/// The host's `/proc/uptime` text `host` for a reader whose clock is `offset_ns` from
/// the host's: its first field moved by the offset (not below 0), the idle time as it
/// is, as procfs shifts only the clock; a text it cannot read, as it is.
pub fn host_shifted(host: &[u8], offset_ns: i64) -> Vec<u8> {
    if offset_ns == 0 {
        return host.to_vec();
    }
    let text = String::from_utf8_lossy(host);
    let mut fields = text.split_whitespace();
    let parse = |f: &str| -> Option<u64> {
        let (s, h) = f.split_once('.')?;
        Some(s.parse::<u64>().ok()? * 1_000_000_000 + h.parse::<u64>().ok()? * 10_000_000)
    };
    match (fields.next().and_then(parse), fields.next().and_then(parse)) {
        (Some(up), Some(idle)) => render(reader_boottime(up, offset_ns), idle),
        _ => host.to_vec(),
    }
}

/// The reader's boottime: host boottime shifted by the namespace's offset, not below 0.
pub fn reader_boottime(now_boottime_ns: u64, boot_offset_ns: i64) -> u64 {
    let v = i128::from(now_boottime_ns) + i128::from(boot_offset_ns);
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// Idle time over `cpus` CPUs after `used_ns` of CPU time in `uptime_ns`.
pub fn idle_ns(uptime_ns: u64, cpus: usize, used_ns: u64) -> u64 {
    uptime_ns
        .saturating_mul(cpus.max(1) as u64)
        .saturating_sub(used_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_format() {
        assert_eq!(render(228_290_000_000, 206_309_999_999), b"228.29 206.30\n");
        assert_eq!(render(0, 0), b"0.00 0.00\n");
        assert_eq!(render(5_009_999_999, 1), b"5.00 0.00\n");
    }

    #[test]
    fn a_host_uptime_moves_its_clock_alone() {
        assert_eq!(
            host_shifted(b"228.29 206.30\n", 1_000_000_000_000),
            b"1228.29 206.30\n"
        );
        assert_eq!(
            host_shifted(b"228.29 206.30\n", -300_000_000_000),
            b"0.00 206.30\n"
        );
        assert_eq!(host_shifted(b"nonsense\n", 5), b"nonsense\n");
    }

    #[test]
    fn clock_and_idle() {
        // A time namespace whose offset was −(host uptime at the VPS's start).
        assert_eq!(
            reader_boottime(1_000 * 1_000_000_000, -999_500_000_000),
            500_000_000
        );
        assert_eq!(reader_boottime(5, 0), 5);
        assert_eq!(reader_boottime(5, -10), 0);
        assert_eq!(idle_ns(10, 2, 5), 15);
        assert_eq!(idle_ns(10, 1, 50), 0);
        assert_eq!(idle_ns(10, 0, 0), 10);
    }
}
