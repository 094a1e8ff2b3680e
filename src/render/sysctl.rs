//! A sysctl whose value is a pid: `/proc/sys/kernel/cad_pid`, the process that gets
//! SIGINT on Ctrl-Alt-Del (the host's init). kernel/sysctl.c proc_do_cad_pid prints
//! `pid_vnr(cad_pid)`: the number in the reader's pid namespace, 0 when it has none
//! there, which is what a reader of a child namespace sees (the host's init is
//! outside).

use super::{parse_num, xlate, ParseError, PidMap};

/// Renders a one-number sysctl (`"%d\n"`) whose number is a pid.
pub fn render_sysctl_pid(raw: &[u8], map: &dyn PidMap) -> Result<Vec<u8>, ParseError> {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    let real: i32 = parse_num(body).ok_or(ParseError::BadNumber {
        file: "sysctl",
        field: "pid",
    })?;
    Ok(format!("{}\n", xlate(real, |p| map.pid(p))).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::{Identity, TableMap};
    use super::*;

    #[test]
    fn the_hosts_init_is_0_in_a_vps() {
        // Captured: the host reads "1\n", a child pid namespace "0\n".
        assert_eq!(render_sysctl_pid(b"1\n", &TableMap::new()).unwrap(), b"0\n");
        assert_eq!(render_sysctl_pid(b"1\n", &Identity).unwrap(), b"1\n");
        let map = TableMap::new().with_pids(&[(4321, 7)]);
        assert_eq!(render_sysctl_pid(b"4321\n", &map).unwrap(), b"7\n");
        assert_eq!(render_sysctl_pid(b"0\n", &map).unwrap(), b"0\n");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [&b""[..], b"\n", b"x\n", b"1 2\n", b"+1\n"] {
            assert!(render_sysctl_pid(bad, &Identity).is_err());
        }
    }
}
