//! `/proc/pressure/{cpu,memory,io}` of a VPS: its cgroup's PSI file.
//!
//! A v2 cgroup's `cpu.pressure`, `memory.pressure` and `io.pressure` have exactly the
//! format of the global files ("some avg10=… avg60=… avg300=… total=…" and a "full"
//! line), so the text is passed through. Without a v2 cgroup (or with PSI off for
//! it) the host's text is shown: it is the only pressure figure there is, and
//! monitoring agents treat a missing file as an error.

/// The cgroup's text when it looks like PSI, else the host's.
pub fn render(host: &[u8], cgroup: Option<&[u8]>) -> Vec<u8> {
    match cgroup {
        Some(t) if t.starts_with(b"some ") => t.to_vec(),
        _ => host.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[u8] = include_bytes!("testdata/pressure_cpu.host");

    #[test]
    fn cgroup_first_then_host() {
        let cg = b"some avg10=1.00 avg60=0.50 avg300=0.10 total=123\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(render(HOST, Some(cg)), cg);
        assert_eq!(render(HOST, None), HOST);
        assert_eq!(render(HOST, Some(b"")), HOST);
    }
}
