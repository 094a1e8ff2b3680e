//! `/proc/<pid>/comm` and `task/<tid>/comm`: the name, one line. Only io_uring's worker
//! names carry a pid ([`super::io_uring_comm`]).

use super::{ParseError, PidMap};

/// Renders a comm file: the io_uring pid in a worker's name translated (`io_worker`:
/// the task is one, `PF_IO_WORKER`), any other name byte for byte.
pub fn render_comm(raw: &[u8], map: &dyn PidMap, io_worker: bool) -> Result<Vec<u8>, ParseError> {
    let name = raw.strip_suffix(b"\n").unwrap_or(raw);
    Ok(
        match io_worker.then(|| super::io_uring_comm(name, map)).flatten() {
            Some(mut n) => {
                n.extend_from_slice(&raw[name.len()..]);
                n
            }
            None => raw.to_vec(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::{
        io_uring_comm,
        stat::{render_stat, Shown},
        status::render_status,
        TableMap,
    };
    use super::*;

    fn map() -> TableMap {
        TableMap::new().with_pids(&[(1234, 7), (100, 1)])
    }

    #[test]
    fn io_uring_names_carry_translated_pids() {
        let m = map();
        for (name, want) in [
            (&b"iou-wrk-1234"[..], Some(&b"iou-wrk-7"[..])),
            (b"iou-sqp-1234", Some(b"iou-sqp-7")),
            (b"iou-wrk-999", Some(b"iou-wrk-0")),
            (b"iou-wrk-", None),
            (b"iou-wrk-12a", None),
            (b"iou-wrk--1", None),
            (b"bash", None),
            (b"xiou-wrk-1234", None),
        ] {
            assert_eq!(io_uring_comm(name, &m).as_deref(), want, "{name:?}");
        }
    }

    #[test]
    fn comm_file() {
        let m = map();
        assert_eq!(
            render_comm(b"iou-wrk-1234\n", &m, true).unwrap(),
            b"iou-wrk-7\n"
        );
        // A task that named itself so is shown as it named itself.
        assert_eq!(
            render_comm(b"iou-wrk-1234\n", &m, false).unwrap(),
            b"iou-wrk-1234\n"
        );
        assert_eq!(
            render_comm(b"a) 1 2 (b\n", &m, true).unwrap(),
            b"a) 1 2 (b\n"
        );
        assert_eq!(render_comm(b"", &m, false).unwrap(), b"");
    }

    #[test]
    fn stat_and_status_hide_the_io_uring_pid() {
        // Only task numbers are mapped: the group and session show 0.
        let m = map();
        // Flags 0x400050: PF_IO_WORKER (0x10) among them.
        let stat =
            b"1235 (iou-wrk-1234) S 100 100 100 0 -1 4194384 0 0 0 0 0 0 0 0 20 0 2 0 5000 0 0\n";
        let out = render_stat(stat, &m, Shown::default()).unwrap();
        assert_eq!(
            &out[..],
            b"0 (iou-wrk-7) S 1 0 0 0 -1 4194384 0 0 0 0 0 0 0 0 20 0 2 0 5000 0 0\n"
        );
        // The same name without PF_IO_WORKER (0x400040): a task's own choice, as it is.
        let named =
            b"1235 (iou-wrk-1234) S 100 100 100 0 -1 4194368 0 0 0 0 0 0 0 0 20 0 2 0 5000 0 0\n";
        let out = render_stat(named, &m, Shown::default()).unwrap();
        assert_eq!(
            &out[..],
            b"0 (iou-wrk-1234) S 1 0 0 0 -1 4194368 0 0 0 0 0 0 0 0 20 0 2 0 5000 0 0\n"
        );
        let status =
            b"Name:\tiou-sqp-1234\nState:\tS (sleeping)\nTgid:\t1234\nPid:\t1235\nPPid:\t100\n";
        let out = render_status(status, &m, false, true).unwrap();
        assert_eq!(
            &out[..],
            b"Name:\tiou-sqp-7\nState:\tS (sleeping)\nTgid:\t7\nPid:\t0\nPPid:\t1\n"
        );
        let out = render_status(status, &m, false, false).unwrap();
        assert!(out.starts_with(b"Name:\tiou-sqp-1234\n"), "{out:?}");
    }
}
