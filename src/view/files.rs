//! The renderers of the files that carry pid numbers (or ids a reader in another user
//! namespace sees otherwise), and which files outside process directories have one
//! (the entries of a process directory are in [`super::entries`]). Every other file,
//! directory and link is the real one.

use crate::render::ids::{MapKind, ReaderIds, SocketTable};
use crate::render::{self, ParseError, PidMap};
use crate::resources::ResFile;
use nix::errno::Errno;

/// A renderer: real file bytes in, the reader's bytes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    /// `stat` of a process or thread.
    Stat,
    /// `status` of a process or thread.
    Status,
    /// `task/<tid>/children`.
    Children,
    /// `comm` (io_uring workers are named after a pid).
    Comm,
    /// `sched` (first line, numa group id).
    Sched,
    /// `timers` (`notify:` target).
    Timers,
    /// `fdinfo/<n>` (pidfds carry `Pid:` and `NSpid:`, locked files `lock:` lines,
    /// io_uring `SqThread:`).
    Fdinfo,
    /// `/proc/loadavg` (the last pid).
    Loadavg,
    /// `/proc/locks` (owner pids; locks of invisible owners are hidden).
    Locks,
    /// `/proc/sys/kernel/ns_last_pid`.
    NsLastPid,
    /// `/proc/sysvipc/shm` and `msg` (creator and last users' pids).
    Sysvipc,
    /// `/proc/sys/kernel/cad_pid` (the host's init: 0 in a VPS).
    CadPid,
    /// `/proc/sys/kernel/pid_max`, which the kernel keeps per pid namespace.
    PidMax,
    /// `uid_map`, `gid_map`, `projid_map`: lower ids in the reader's user namespace.
    IdMap(MapKind),
    /// `loginuid`: in the reader's user namespace.
    LoginUid,
    /// A socket table of `/proc/net` (`tcp`, `packet`…): its uid column in the
    /// reader's user namespace.
    Sockets(SocketTable),
    /// `maps`, `smaps`, `numa_maps`: the mapped files' paths from the reader's root.
    Maps,
    /// `/proc/keys`: the keys of the users the reader's user namespace maps.
    Keys,
    /// `/proc/key-users`: the users the reader's user namespace maps.
    KeyUsers,
    /// A virtual global file computed from the VPS's cgroup ([`super::resource_files`]);
    /// rendered by the view, which holds the VPS's resource state, not by [`render`].
    Resource(ResFile),
    /// sysfs's `stat` of a block device (major, minor), bound over the host's for
    /// `iostat` ([`super::resource_files::block_stat_at`]); rendered by the view, as
    /// [`Render::Resource`].
    BlockStat((u32, u32)),
}

impl Render {
    /// Whether the file is an integer sysctl, whose text procfs gives only to a read
    /// from offset 0 (`proc_dointvec`).
    pub fn int_sysctl(self) -> bool {
        matches!(self, Render::NsLastPid | Render::PidMax | Render::CadPid)
    }

    /// Whether the file shows user or group ids, which procfs prints in its reader's
    /// user namespace ([`crate::render::ids`]): `status`, the id maps, `loginuid`, the
    /// ids of System V IPC objects, the socket tables' uid column, and the keys and key
    /// users of the users that namespace maps.
    pub fn shows_ids(self) -> bool {
        matches!(
            self,
            Render::Status
                | Render::IdMap(_)
                | Render::LoginUid
                | Render::Sysvipc
                | Render::Sockets(_)
                | Render::Keys
                | Render::KeyUsers
        )
    }

    /// Whether the file shows what the VPS's forks change: its last pid (`ns_last_pid`,
    /// `loadavg`), its threads (`loadavg`'s total) and its forks (`processes` in
    /// `stat`). The kernel shows a fork the reader made before its read, so the view
    /// applies the process events queued by then before rendering it
    /// (read-your-own-forks).
    pub fn shows_forks(self) -> bool {
        matches!(
            self,
            Render::NsLastPid
                | Render::Loadavg
                | Render::Resource(ResFile::Loadavg)
                | Render::Resource(ResFile::Stat)
        )
    }

    /// What procfs's read of the file answers once its process is reaped (the file
    /// opened before): `ESRCH` from most (`proc_single_show`, `timers`), no text from
    /// `children` (its seq file has no task to walk), `ENOENT` from `fdinfo/<n>`
    /// (`seq_show` finds no task, as it finds no such fd).
    pub fn read_once_reaped(self) -> Result<Vec<u8>, Errno> {
        match self {
            Render::Children => Ok(Vec::new()),
            Render::Fdinfo => Err(Errno::ENOENT),
            _ => Err(Errno::ESRCH),
        }
    }
}

/// Files outside pid directories that carry pid numbers (path below `/proc`). The
/// virtual global files (`loadavg`, `meminfo`, …) come first, from
/// [`super::resource_files`].
pub const GLOBAL_FILES: &[(&str, Render)] = &[
    ("locks", Render::Locks),
    ("sysvipc/shm", Render::Sysvipc),
    ("sysvipc/msg", Render::Sysvipc),
    ("sysvipc/sem", Render::Sysvipc),
    ("keys", Render::Keys),
    ("key-users", Render::KeyUsers),
    ("sys/kernel/cad_pid", Render::CadPid),
    ("sys/kernel/ns_last_pid", Render::NsLastPid),
    ("sys/kernel/pid_max", Render::PidMax),
];

/// The renderer for a path below `/proc` outside pid directories.
pub fn global_file(rel: &str) -> Option<Render> {
    if let Some(f) = super::resource_files::file_at(rel) {
        return Some(Render::Resource(f));
    }
    if let Some(dev) = super::resource_files::block_stat_at(rel) {
        return Some(Render::BlockStat(dev));
    }
    GLOBAL_FILES
        .iter()
        .find(|(n, _)| *n == rel)
        .map(|&(_, r)| r)
}

/// What a renderer may need beyond the file and the map.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The reader is the task this file shows: the kernel would show it running.
    pub running: bool,
    /// The task this file shows got what procfs grants by a capability, which the
    /// kernel marks in its flags (`PF_SUPERPRIV`).
    pub superpriv: bool,
    /// The reader may not ptrace-read the task this file shows: procfs hides the
    /// addresses and the exit code of its `stat` ([`render::stat::Shown::hidden`]).
    pub hidden: bool,
    /// The task this file shows is an io_uring worker (`PF_IO_WORKER`, which only its
    /// `stat` shows): its name in `comm`, `status` and `sched` carries a pid.
    pub io_worker: bool,
    /// The last vpid handed out in the reader's VPS.
    pub last_pid: i32,
    /// The `pid_max` of the reader's pid namespace, when the VPS has its own.
    pub pid_max: Option<i32>,
    /// The number of the VPS's tasks (threads), for `loadavg`'s "running/total": the
    /// kernel counts every thread of the host there.
    pub tasks: Option<u32>,
    /// How far the reader's time namespace's boottime is from the daemon's, in ns: the
    /// start times of `stat` are shown on the reader's clock ([`super::timens`]).
    pub clock_shift_ns: i64,
    /// The reader's root as the daemon sees it, when it is not the daemon's: the paths
    /// of `maps` are written from it ([`crate::render::paths`]).
    pub root: Option<&'a [u8]>,
    /// The maps of the reader's user namespace, when it is not the daemon's: the ids
    /// of `status`, the id maps and `loginuid` are shown in it ([`crate::render::ids`]).
    pub ids: Option<&'a ReaderIds>,
}

/// Runs renderer `r` over the real bytes.
pub fn render(r: Render, raw: &[u8], map: &dyn PidMap, cx: Context) -> Result<Vec<u8>, ParseError> {
    match r {
        Render::Stat => {
            let shown = render::stat::Shown {
                running: cx.running,
                superpriv: cx.superpriv,
                hidden: cx.hidden,
                clock_shift_ns: cx.clock_shift_ns,
            };
            render::stat::render_stat(raw, map, shown)
        }
        Render::Status => {
            let text = render::status::render_status(raw, map, cx.running, cx.io_worker)?;
            Ok(match cx.ids {
                Some(ids) => render::ids::status_ids(&text, ids),
                None => text,
            })
        }
        Render::IdMap(kind) => Ok(match cx.ids {
            Some(ids) => render::ids::id_map(raw, ids, kind),
            None => raw.to_vec(),
        }),
        Render::LoginUid => Ok(match cx.ids {
            Some(ids) => render::ids::loginuid(raw, ids),
            None => raw.to_vec(),
        }),
        Render::Maps => Ok(match cx.root {
            Some(root) => render::paths::maps_below_root(raw, root),
            None => raw.to_vec(),
        }),
        Render::Children => render::render_children(raw, map),
        Render::Comm => render::comm::render_comm(raw, map, cx.io_worker),
        Render::Sched => render::render_sched(raw, map, cx.io_worker),
        Render::Timers => render::render_timers(raw, map),
        Render::Fdinfo => render::render_fdinfo(raw, map),
        Render::Loadavg => {
            let threads = cx.tasks.map(|total| {
                let running = render::loadavg::running(raw).unwrap_or(0);
                (running.min(total), total)
            });
            render::render_loadavg(raw, cx.last_pid, threads)
        }
        Render::Locks => render::render_locks(raw, map),
        Render::Sysvipc => render::render_sysvipc(raw, map, cx.ids),
        Render::Keys => Ok(match cx.ids {
            Some(ids) => render::ids::keys_ids(raw, ids),
            None => raw.to_vec(),
        }),
        Render::KeyUsers => Ok(match cx.ids {
            Some(ids) => render::ids::key_users_ids(raw, ids),
            None => raw.to_vec(),
        }),
        Render::Sockets(table) => Ok(match cx.ids {
            Some(ids) => render::ids::socket_table_ids(raw, ids, table),
            None => raw.to_vec(),
        }),
        Render::CadPid => render::render_sysctl_pid(raw, map),
        Render::NsLastPid => Ok(format!("{}\n", cx.last_pid).into_bytes()),
        Render::PidMax => Ok(match cx.pid_max {
            Some(p) => format!("{p}\n").into_bytes(),
            None => raw.to_vec(),
        }),
        // The view renders these with the VPS's resource state; here, the host's text.
        Render::Resource(_) | Render::BlockStat(_) => Ok(raw.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        assert_eq!(
            global_file("sys/kernel/ns_last_pid"),
            Some(Render::NsLastPid)
        );
        assert_eq!(
            global_file("meminfo"),
            Some(Render::Resource(ResFile::Meminfo))
        );
        assert_eq!(
            global_file("loadavg"),
            Some(Render::Resource(ResFile::Loadavg))
        );
        assert_eq!(
            global_file("pressure/io"),
            Some(Render::Resource(ResFile::PressureIo))
        );
        assert_eq!(global_file("sysvipc/shm"), Some(Render::Sysvipc));
        assert_eq!(global_file("sysvipc/msg"), Some(Render::Sysvipc));
        // No pid column, but ids a reader in another user namespace sees otherwise.
        assert_eq!(global_file("sysvipc/sem"), Some(Render::Sysvipc));
        assert_eq!(global_file("sys/kernel/cad_pid"), Some(Render::CadPid));
        assert_eq!(global_file("cpu_online"), None);
        for (rel, shows) in [
            ("sys/kernel/ns_last_pid", true),
            ("loadavg", true),
            ("stat", true),
            ("meminfo", false),
            ("locks", false),
        ] {
            assert_eq!(global_file(rel).unwrap().shows_forks(), shows, "{rel}");
        }
        assert_eq!(
            global_file("vmstat"),
            Some(Render::Resource(ResFile::Vmstat))
        );
        assert_eq!(global_file("zoneinfo"), None);
        assert_eq!(
            global_file(".vprocfs-block-254:16"),
            Some(Render::BlockStat((254, 16)))
        );
        assert_eq!(global_file(".vprocfs-block-254"), None);
    }
}
