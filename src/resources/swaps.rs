//! `/proc/swaps` of a VPS.
//!
//! The host's header line, then, when the VPS has swap (SwapTotal in its meminfo is
//! not 0), one line for it, printed with mm/swapfile.c's `swap_show` format
//! (`%*s%s\t%lu\t%s%lu\t%s%d`): filename `none`, type `virtual`, size and use in kB
//! and priority 0, as LXCFS shows it. The host's own swap devices are not listed:
//! their names and sizes say nothing about what the VPS may use. The size is
//! min(swap limit, host's total swap), as meminfo's SwapTotal: a host without swap
//! shows none whatever the limit. A VPS without a memory cgroup sees the host's file.

use super::ResError;

/// The host's swap size and use in bytes: the sums of the Size and Used columns.
pub fn host_totals(host: &[u8]) -> Result<(u64, u64), ResError> {
    let text = std::str::from_utf8(host).map_err(|_| ResError::Malformed {
        file: "swaps",
        what: "not UTF-8".into(),
    })?;
    let (mut size, mut used) = (0u64, 0u64);
    for line in text.lines().skip(1) {
        // The filename may hold spaces (escaped as \040) but never ends a line:
        // size, used and priority are the last three fields.
        let f: Vec<&str> = line.split_whitespace().collect();
        let [.., s, u, _prio] = f[..] else {
            continue;
        };
        let parse = |x: &str| {
            x.parse::<u64>().map_err(|_| ResError::Malformed {
                file: "swaps",
                what: format!("bad number in {line:?}"),
            })
        };
        size += parse(s)?;
        used += parse(u)?;
    }
    Ok((size.saturating_mul(1024), used.saturating_mul(1024)))
}

/// The VPS's swaps text from the host's (for its header) and the VPS's swap size and
/// use in bytes.
pub fn render(host: &[u8], total_bytes: u64, used_bytes: u64) -> Result<Vec<u8>, ResError> {
    let header_end = host
        .iter()
        .position(|&c| c == b'\n')
        .ok_or_else(|| ResError::Malformed {
            file: "swaps",
            what: "no header line".into(),
        })?;
    let mut out = host[..=header_end].to_vec();
    if total_bytes == 0 {
        return Ok(out);
    }
    let (size, used) = (total_bytes / 1024, used_bytes.min(total_bytes) / 1024);
    let name = "none";
    let pad = if name.len() < 40 { 40 - name.len() } else { 1 };
    let tab = |v: u64| if v < 10_000_000 { "\t" } else { "" };
    out.extend_from_slice(
        format!(
            "{name}{:>pad$}{}\t{size}\t{}{used}\t{}{}\n",
            " ",
            "virtual",
            tab(size),
            tab(used),
            0
        )
        .as_bytes(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[u8] = include_bytes!("testdata/swaps.host");

    #[test]
    fn header_only_without_swap() {
        assert_eq!(render(HOST, 0, 0).unwrap(), HOST);
    }

    #[test]
    fn one_line_with_swap() {
        let out = render(HOST, 512 << 20, 12 << 20).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            format!("none{}virtual\t524288\t\t12288\t\t0", " ".repeat(36))
        );
        // swapon(8)-style parsing: whitespace-separated fields.
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f, ["none", "virtual", "524288", "12288", "0"]);
    }

    #[test]
    fn host_sums() {
        assert_eq!(host_totals(HOST).unwrap(), (0, 0));
        let host = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/vdb                                partition\t1048572\t\t0\t\t-2\n\
                    /swapfile                               file\t\t524284\t\t1024\t\t-3\n";
        assert_eq!(
            host_totals(host.as_bytes()).unwrap(),
            ((1048572 + 524284) * 1024, 1024 * 1024)
        );
        assert!(host_totals(b"h\n/x partition a b -2\n").is_err());
    }

    #[test]
    fn odd_input() {
        assert!(render(b"", 1, 0).is_err());
        // Use above the size (a racing read) is capped.
        let out = String::from_utf8(render(HOST, 1 << 20, 5 << 20).unwrap()).unwrap();
        assert!(out.ends_with("\t1024\t\t1024\t\t0\n"));
    }
}
