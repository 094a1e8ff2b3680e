//! `/proc/interrupts` and `/proc/softirqs` of a VPS: the columns of its CPUs only,
//! renumbered from 0, as the CPU count of every other file says.
//!
//! Both files are a header of `CPU<n>` columns, one per online host CPU, then one row
//! per interrupt: a label, a count for each column, and (in `interrupts`) the chip and
//! handler names. A row is kept with the cells of the visible CPUs' columns (each cell
//! is the count with the blanks before it, so the kernel's widths stay whatever they
//! were: `%10u ` in `interrupts`, ` %10u` in `softirqs`); a row with fewer counts than
//! columns (`ERR:`, `MIS:`: one total) is kept as it is. The counts are the host's of
//! those CPUs (no cgroup counts interrupts), as `intr` and `softirq` in `stat` are the
//! host's. `mpstat -I` reads these by the header's CPU numbers.

use super::cpus::CpuSet;
use super::ResError;

/// Keeps the columns of the CPUs in `visible` (host numbering), renumbered 0, 1, … in
/// order.
pub fn render(host: &[u8], visible: &CpuSet) -> Result<Vec<u8>, ResError> {
    let text = std::str::from_utf8(host).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split_inclusive('\n');
    let header = lines.next().ok_or_else(|| bad("empty"))?;
    let columns: Vec<u32> = header
        .split_whitespace()
        .map(|c| c.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a header other than CPU columns"))?;
    let keep: Vec<bool> = columns.iter().map(|&c| visible.contains(c)).collect();
    let mut out = String::with_capacity(text.len());
    // The header: its leading blanks, then `CPU%-8d` for each kept column.
    let lead = header.len() - header.trim_start().len();
    out.push_str(&header[..lead]);
    for rank in 0..keep.iter().filter(|&&k| k).count() {
        out.push_str(&format!("CPU{rank:<8}"));
    }
    out.push('\n');
    for line in lines {
        out.push_str(&row(line, &keep));
    }
    Ok(out.into_bytes())
}

/// One row with the cells of the kept columns; as it is when it has fewer counts than
/// there are columns.
fn row(line: &str, keep: &[bool]) -> String {
    let Some(colon) = line.find(':') else {
        return line.to_string();
    };
    let (label, rest) = line.split_at(colon + 1);
    // The cells: each count with the blanks before it.
    let mut cells = Vec::with_capacity(keep.len());
    let mut at = 0;
    for _ in keep {
        let after_blanks = rest[at..].len() - rest[at..].trim_start_matches(' ').len();
        let digits = rest[at + after_blanks..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let end = at + after_blanks + digits;
        let follows_ok = rest[end..].is_empty() || rest[end..].starts_with([' ', '\n']);
        if digits == 0 || !follows_ok {
            return line.to_string();
        }
        cells.push(&rest[at..end]);
        at = end;
    }
    let mut out = String::with_capacity(line.len());
    out.push_str(label);
    for (cell, _) in cells.iter().zip(keep).filter(|(_, &k)| k) {
        out.push_str(cell);
    }
    out.push_str(&rest[at..]);
    out
}

fn bad(what: &str) -> ResError {
    ResError::Malformed {
        file: "interrupts",
        what: what.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERRUPTS: &[u8] = include_bytes!("testdata/interrupts.host");
    const SOFTIRQS: &[u8] = include_bytes!("testdata/softirqs.host");

    fn render_str(host: &[u8], visible: &str) -> String {
        String::from_utf8(render(host, &CpuSet::parse(visible).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn every_cpu_visible_is_the_hosts_text() {
        assert_eq!(
            render_str(INTERRUPTS, "0-1"),
            std::str::from_utf8(INTERRUPTS).unwrap()
        );
        assert_eq!(
            render_str(SOFTIRQS, "0-1"),
            std::str::from_utf8(SOFTIRQS).unwrap()
        );
    }

    #[test]
    fn the_second_cpus_column_is_shown_as_cpu0() {
        let host = "           CPU0       CPU1       \n  \
                    0:         44          7  IO-APIC   2-edge      timer\n\
                    NMI:          3          9   Non-maskable interrupts\n\
                    ERR:          0\n";
        let want = "           CPU0       \n  \
                    0:          7  IO-APIC   2-edge      timer\n\
                    NMI:          9   Non-maskable interrupts\n\
                    ERR:          0\n";
        assert_eq!(render_str(host.as_bytes(), "1"), want);
        let soft = "                    CPU0       CPU1       \n\
                    \x20         HI:          5 4294967295\n";
        let want = "                    CPU0       \n\
                    \x20         HI: 4294967295\n";
        assert_eq!(render_str(soft.as_bytes(), "1"), want);
    }

    #[test]
    fn every_row_of_the_hosts_files_keeps_its_shape() {
        for host in [INTERRUPTS, SOFTIRQS] {
            let one = render_str(host, "1");
            let text = std::str::from_utf8(host).unwrap();
            assert_eq!(one.lines().count(), text.lines().count());
            for (a, b) in text.lines().zip(one.lines()).skip(1) {
                let (la, lb) = (a.split_whitespace().count(), b.split_whitespace().count());
                // One count fewer, or the row as it was (a total: `ERR:`).
                assert!(lb + 1 == la || a == b, "{a:?} -> {b:?}");
            }
        }
    }

    #[test]
    fn a_header_without_cpu_columns_is_refused() {
        assert!(render(b"hello\n", &CpuSet::parse("0").unwrap()).is_err());
        assert!(render(b"", &CpuSet::parse("0").unwrap()).is_err());
    }
}
