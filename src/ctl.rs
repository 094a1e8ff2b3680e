//! The control socket: a root-only Unix socket over which `vprocfs ctl` talks to a
//! running daemon, one JSON object per line each way.
//!
//! Requests (`{"cmd": …}`) and their answers:
//!
//! | request | answer |
//! |---|---|
//! | `{"cmd":"list"}` | `{"ok":true,"vpses":[{"id","name","init","mode","members","mappings"[,"mount"]}…]}` |
//! | `{"cmd":"mappings","vps":NAME}` | `{"ok":true,"mappings":[{"pid","vpid"}…]}` |
//! | `{"cmd":"add","vps":"NAME:SOURCE"}` | `{"ok":true,"id":N,"mount":PATH}` (SOURCE as `serve --vps`; PATH the VPS's own mount, or the shared one) |
//! | `{"cmd":"remove","vps":NAME}` | `{"ok":true}` |
//! | `{"cmd":"alloc","vps":NAME,"pid":P,"vpid":V}` | `{"ok":true}` — the restore path |
//! | `{"cmd":"stats"}` | `{"ok":true,"stats":"requests lookup=… rss_kb=… translations=… classify_hits=… …"}` |
//! | `{"cmd":"enter","vps":NAME,"pid":P}` | `{"ok":true,"mount":PATH[,"pidns_of":P][,"cpus":LIST]}` (`vprocfs exec`) |
//!
//! A refusal is `{"ok":false,"error":"one line","errno":N}`. A line longer than
//! [`MAX_LINE`] or that is not a request is refused and, for an overlong line, the
//! connection is closed; nothing a client sends can change a mapping it did not name.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Mode, VpsConfig};
use crate::stats::Stats;
use crate::view::View;

/// The longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vprocfs/ctl.sock";

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Every VPS.
    List,
    /// One VPS's mappings.
    Mappings {
        /// Its name.
        vps: String,
    },
    /// A new VPS, `NAME:SOURCE` as `serve --vps`.
    Add {
        /// The spec.
        vps: String,
    },
    /// Removes a VPS.
    Remove {
        /// Its name.
        vps: String,
    },
    /// Gives real pid `pid` vpid `vpid` in VPS `vps` (restore).
    Alloc {
        /// The VPS's name.
        vps: String,
        /// The real pid.
        pid: i32,
        /// The vpid it must carry.
        vpid: i32,
    },
    /// The daemon's statistics.
    Stats,
    /// Makes process `pid` a member of VPS `vps` before it execs into it (`vprocfs
    /// exec`); the answer says where the view is mounted and, for a pid-namespace VPS,
    /// which process's namespace to enter.
    Enter {
        /// The VPS's name.
        vps: String,
        /// The process entering.
        pid: i32,
    },
}

/// A VPS in a `list` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpsInfo {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Real pid of init.
    pub init: i32,
    /// `linear` or `sparse`.
    pub mode: String,
    /// Member tasks.
    pub members: usize,
    /// Numbers with a vpid.
    pub mappings: usize,
    /// The VPS's own mount, if it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mount: Option<String>,
}

/// A `mappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingInfo {
    /// Real number.
    pub pid: i32,
    /// Its vpid.
    pub vpid: i32,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, in one line.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The errno matching the refusal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<i32>,
    /// For `list`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vpses: Option<Vec<VpsInfo>>,
    /// For `mappings`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mappings: Option<Vec<MappingInfo>>,
    /// For `add`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<u32>,
    /// For `stats`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stats: Option<String>,
    /// For `enter`: the view's mount point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mount: Option<String>,
    /// For `enter` into a pid-namespace VPS: a process whose namespace to join.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pidns_of: Option<i32>,
    /// For `enter`: the host CPUs the VPS sees, in its order, as a CPU list ("2,5"), for
    /// its CPU directory in sysfs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpus: Option<String>,
}

impl Response {
    fn ok() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    fn refuse(error: impl std::fmt::Display, errno: i32) -> Response {
        Response {
            ok: false,
            error: Some(error.to_string().replace('\n', " ")),
            errno: Some(errno),
            ..Response::default()
        }
    }
}

/// What a request needs: the view (membership and engine), the statistics, and how to
/// build a VPS from a spec (`serve`'s parser and settings).
pub struct Daemon {
    /// The view served.
    pub view: Arc<View>,
    /// Request counts.
    pub stats: Arc<Stats>,
    /// Turns `NAME:SOURCE` into a VPS: name, source, settings, namespace numbering.
    pub parse_spec: Box<SpecParser>,
    /// Where the view is mounted.
    pub mount: std::path::PathBuf,
    /// The served VPSes' specs (`NAME:SOURCE`), in the order they were added.
    pub specs: std::sync::Mutex<Vec<(String, String)>>,
    /// Where the state is saved (`serve --state`), if anywhere.
    pub state: Option<std::path::PathBuf>,
    /// The mount of each VPS, made as VPSes are added and unmade as they are removed;
    /// `None` where the daemon makes none (the shared mount then serves every VPS).
    pub vps_mounts: Option<Arc<dyn VpsMounts>>,
    /// Held while the state is taken and saved ([`Daemon::persist`]).
    pub saving: std::sync::Mutex<()>,
}

/// Mounts of one VPS each (`serve`'s, [`crate::view::cache`]): a VPS added gets one, a
/// VPS removed loses it.
pub trait VpsMounts: Send + Sync {
    /// Mounts VPS `name` (id `id`); where.
    fn add(&self, name: &str, id: crate::engine::VpsId) -> Result<std::path::PathBuf, String>;
    /// Unmounts VPS `name`'s mount, if it has one.
    fn remove(&self, name: &str);
    /// Where VPS `name`'s mount is, if it has one.
    fn path(&self, name: &str) -> Option<std::path::PathBuf>;
}

impl Daemon {
    /// What [`crate::state`] saves: every VPS's spec and its vpids that no rule can
    /// recompute.
    pub fn snapshot(&self) -> crate::state::State {
        self.snapshot_and(|_| ()).0
    }

    /// [`Daemon::snapshot`], and `also` run on the tracker under the same lock.
    fn snapshot_and<T>(
        &self,
        also: impl FnOnce(&mut crate::membership::Tracker) -> T,
    ) -> (crate::state::State, T) {
        let specs = crate::sync::lock(&self.specs).clone();
        self.view.with_tracker(|t| {
            let state = crate::state::State {
                version: crate::state::VERSION,
                vpses: specs
                    .iter()
                    .map(|(name, spec)| {
                        let vps = t.engine().vps_by_name(name);
                        crate::state::SavedVps::new(
                            spec.clone(),
                            vps.map(|v| t.saved_mappings(v.id())).unwrap_or_default(),
                            vps.map(|v| v.last_vpid()),
                        )
                    })
                    .collect(),
            };
            (state, also(t))
        })
    }

    /// Whether vpids were handed out since the last save (they are in the journal).
    pub fn journal_pending(&self) -> bool {
        self.view.with_tracker(|t| t.journal_pending())
    }

    /// Saves the state now, if the daemon keeps one; a failure is logged. The journal
    /// is rotated under the lock the snapshot is taken with, so every vpid is in the
    /// state saved or in a journal kept; the sealed journals go once the state is on
    /// disk.
    pub fn persist(&self) {
        if let Err(e) = self.save_state() {
            if let Some(path) = &self.state {
                log::error!("cannot save the state to {}: {e}", path.display());
            }
        }
    }

    /// [`Daemon::persist`], with the error of the save.
    fn save_state(&self) -> std::io::Result<()> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        // One save at a time, each of the state as it is when its turn comes: ctl
        // requests on several connections, the saver thread and the stop may all save at
        // once, and two writes of the one temporary file would leave a torn state, or an
        // older one over a newer, whose journals are gone.
        let _one = crate::sync::lock(&self.saving);
        let (state, sealed) = self.snapshot_and(|t| t.rotate_journal());
        crate::state::save(path, &state)?;
        if let Some(sealed) = sealed {
            if let Err(e) = crate::state::remove_journals(path, sealed) {
                log::warn!("cannot remove the journals of {}: {e}", path.display());
            }
        }
        Ok(())
    }
}

/// See [`Daemon::parse_spec`].
pub type SpecParser = dyn Fn(&str) -> Result<(String, crate::membership::Source, VpsConfig, bool), String>
    + Send
    + Sync;

/// Parses one request line strictly: a JSON object with a known `cmd` and exactly the
/// fields that command takes (serde cannot refuse extra fields of a field-less variant
/// of an internally tagged enum, so they are checked here).
pub fn parse_request(line: &str) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a request: {e}"))?;
    let fields: &[&str] = match value.get("cmd").and_then(|c| c.as_str()) {
        Some("list") | Some("stats") => &["cmd"],
        Some("mappings") | Some("add") | Some("remove") => &["cmd", "vps"],
        Some("alloc") => &["cmd", "vps", "pid", "vpid"],
        Some("enter") => &["cmd", "vps", "pid"],
        _ => &[],
    };
    if let Some(obj) = value.as_object() {
        if let Some(extra) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
            if !fields.is_empty() {
                return Err(format!("not a request: unknown field {extra:?}"));
            }
        }
    }
    serde_json::from_value(value).map_err(|e| format!("not a request: {e}"))
}

/// Carries out one request line.
pub fn handle_line(d: &Daemon, line: &str) -> Response {
    match parse_request(line) {
        Ok(req) => handle(d, req),
        Err(e) => Response::refuse(e, libc::EINVAL),
    }
}

/// Carries out one request; a change to the VPSes or their vpids is saved at once.
pub fn handle(d: &Daemon, req: Request) -> Response {
    let changes = matches!(
        req,
        Request::Add { .. }
            | Request::Remove { .. }
            | Request::Alloc { .. }
            | Request::Enter { .. }
    );
    let added = match &req {
        Request::Add { vps } => Some(vps.clone()),
        _ => None,
    };
    let removed = match &req {
        Request::Remove { vps } => Some(vps.clone()),
        _ => None,
    };
    let entered = match &req {
        Request::Enter { vps, .. } => Some(vps.clone()),
        _ => None,
    };
    let mut resp = carry_out(d, req);
    if let (true, Some(mounts)) = (resp.ok, &d.vps_mounts) {
        if let (Some(spec), Some(id)) = (&added, resp.id) {
            let name = spec.split(':').next().unwrap_or_default();
            // Without a mount of its own, the VPS is served by the shared mount.
            match mounts.add(name, id) {
                Ok(path) => resp.mount = Some(path.display().to_string()),
                Err(e) => log::warn!(
                    "VPS {name} has no mount of its own ({e}): it is served by the shared mount"
                ),
            }
        }
        if let Some(name) = &removed {
            mounts.remove(name);
        }
        if let Some(path) = entered.as_ref().and_then(|name| mounts.path(name)) {
            resp.mount = Some(path.display().to_string());
        }
        for v in resp.vpses.iter_mut().flatten() {
            v.mount = mounts.path(&v.name).map(|p| p.display().to_string());
        }
    }
    if let (true, Some(name)) = (resp.ok, &entered) {
        let id = d
            .view
            .with_tracker(|t| t.engine().vps_by_name(name).map(|v| v.id()));
        resp.cpus = id
            .and_then(|id| d.view.visible_host_cpus(id))
            .map(|c| c.to_list());
    }
    if resp.ok && changes {
        {
            let mut specs = crate::sync::lock(&d.specs);
            if let Some(spec) = added {
                let name = spec.split(':').next().unwrap_or_default().to_string();
                specs.push((name, spec));
            }
            if let Some(name) = removed {
                specs.retain(|(n, _)| *n != name);
            }
        }
        d.persist();
    }
    resp
}

fn carry_out(d: &Daemon, req: Request) -> Response {
    // Taken before the tracker is locked below: the view's counters read it too.
    let view_counters = matches!(req, Request::Stats).then(|| d.view.counters());
    d.view.with_tracker(|t| {
        let find = |name: &str| {
            t.engine().vps_by_name(name).map(|v| v.id()).ok_or_else(|| {
                Box::new(Response::refuse(
                    format!("no VPS named {name:?}"),
                    libc::ESRCH,
                ))
            })
        };
        match req {
            Request::List => Response {
                vpses: Some(
                    t.engine()
                        .vpses()
                        .map(|v| VpsInfo {
                            id: v.id(),
                            name: v.name().to_string(),
                            init: v.init_pid(),
                            mode: match v.mode() {
                                Mode::Linear => "linear".into(),
                                Mode::Sparse => "sparse".into(),
                            },
                            members: v.tasks_num(),
                            mappings: v.numbers_in_use(),
                            mount: None,
                        })
                        .collect(),
                ),
                ..Response::ok()
            },
            Request::Mappings { vps } => match find(&vps) {
                Ok(id) => Response {
                    mappings: t.vps(id).map(|v| {
                        v.mappings()
                            .into_iter()
                            .map(|m| MappingInfo {
                                pid: m.pid,
                                vpid: m.vpid,
                            })
                            .collect()
                    }),
                    ..Response::ok()
                },
                Err(r) => *r,
            },
            Request::Add { vps } => match (d.parse_spec)(&vps) {
                Ok((name, source, config, ns_numbers)) => {
                    match t.add_vps(&name, source, config, ns_numbers) {
                        Ok(id) => Response {
                            id: Some(id),
                            mount: Some(d.mount.display().to_string()),
                            ..Response::ok()
                        },
                        Err(e) => Response::refuse(e, libc::EINVAL),
                    }
                }
                Err(e) => Response::refuse(e, libc::EINVAL),
            },
            Request::Remove { vps } => match find(&vps) {
                Ok(id) => match t.remove_vps(id) {
                    Ok(()) => {
                        d.view.drop_resources(id);
                        Response::ok()
                    }
                    Err(e) => Response::refuse(&e, e.errno()),
                },
                Err(r) => *r,
            },
            // A pid_max that cannot be read refuses nothing.
            Request::Alloc { vps, pid, vpid } => match (find(&vps), crate::host::pid_max()) {
                (Ok(_), Ok(max)) if pid >= max => Response::refuse(
                    format!("pid {pid} is not below the kernel's pid_max ({max}): no process can have it"),
                    libc::EINVAL,
                ),
                (Ok(id), _) => match t.alloc(id, pid, vpid) {
                    Ok(()) => Response::ok(),
                    Err(e) => Response::refuse(&e, e.errno()),
                },
                (Err(r), _) => *r,
            },
            Request::Stats => Response {
                stats: Some(format!(
                    "{} {}",
                    d.stats.line(),
                    view_counters.unwrap_or_default()
                )),
                ..Response::ok()
            },
            Request::Enter { vps, pid } => match find(&vps) {
                Ok(id) => match t.enter(id, pid) {
                    Ok(pidns_of) => Response {
                        mount: Some(d.mount.display().to_string()),
                        pidns_of,
                        ..Response::ok()
                    },
                    Err(e) => Response::refuse(e, libc::EINVAL),
                },
                Err(r) => *r,
            },
        }
    })
}

/// Listens on `path` (made mode 0600, in a directory made 0700 if missing) and serves
/// each connection on a thread of its own.
pub fn listen(path: &Path, daemon: Arc<Daemon>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    if path.exists() {
        // A socket left by a daemon that died: nothing answers on it.
        if answers(path) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another daemon listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("vprocfs-ctl".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let d = Arc::clone(&daemon);
                let _ = std::thread::Builder::new()
                    .name("vprocfs-ctl-conn".into())
                    .spawn(move || serve_conn(&d, conn));
            }
        })?;
    Ok(())
}

fn serve_conn(d: &Daemon, conn: UnixStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = Vec::new();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let too_long = line.len() > MAX_LINE;
        let resp = if too_long {
            Response::refuse(format!("request longer than {MAX_LINE} bytes"), libc::E2BIG)
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => handle_line(d, text.trim()),
                Err(_) => Response::refuse("request is not UTF-8", libc::EINVAL),
            }
        };
        let mut text = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() || too_long {
            return;
        }
    }
}

/// How long [`answers`] waits for a daemon's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Whether a daemon answers on the socket at `path`. A connection alone proves
/// nothing: a worker killed while one of its threads is stuck in the kernel (an
/// invalidation waiting for a lookup that only the next worker can answer) keeps its
/// listening socket open, and the kernel queues connections on it that nobody
/// accepts; refusing to start over such a socket left the mount with no worker at all
/// (seen in tests/live_restart.rs: six refused starts, then the supervisor gave up).
fn answers(path: &Path) -> bool {
    exchange(path, &Request::List, Some(ANSWER_WAIT)).is_ok_and(|line| !line.is_empty())
}

/// Sends one request to the daemon at `path` and returns its answer.
pub fn call(path: &Path, req: &Request) -> io::Result<Response> {
    let answer = exchange(path, req, None)?;
    serde_json::from_str(&answer)
        .map_err(|e| io::Error::other(format!("bad answer from the daemon: {e}")))
}

/// Sends `req` to the daemon at `path` and reads its one-line answer, each way within
/// `wait` if given.
fn exchange(path: &Path, req: &Request, wait: Option<Duration>) -> io::Result<String> {
    let mut conn = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the daemon at {}: {e} (is vprocfs serve running?)",
                path.display()
            ),
        )
    })?;
    conn.set_read_timeout(wait)?;
    conn.set_write_timeout(wait)?;
    let mut line = serde_json::to_string(req).map_err(io::Error::other)?;
    line.push('\n');
    conn.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(conn)
        .take(16 << 20)
        .read_line(&mut answer)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "no answer from the daemon at {}: {e} (is it a vprocfs serve socket?)",
                    path.display()
                ),
            )
        })?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket whose owner never accepts (a killed worker's, kept open by a thread
    /// stuck in the kernel) is not a daemon; one that answers is.
    #[test]
    fn only_a_socket_that_answers_is_a_live_daemon() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("vprocfs-ctl-answers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        assert!(!answers(&path), "no socket at all");
        let silent = UnixListener::bind(&path).unwrap();
        assert!(!answers(&path), "connections queued, never accepted");
        drop(silent);
        std::fs::remove_file(&path).unwrap();
        let live = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = live.accept().unwrap();
            let mut line = String::new();
            BufReader::new(conn.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            (&conn).write_all(b"{\"ok\":true}\n").unwrap();
        });
        assert!(answers(&path), "a daemon that answers");
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A socket that answers something other than the daemon's JSON lines is named,
    /// with what it may be, in one line.
    #[test]
    fn a_socket_that_answers_garbage_is_named() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("vprocfs-ctl-garbage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut line);
            (&conn).write_all(b"garbage\xff\n").unwrap();
        });
        let err = call(&path, &Request::List).unwrap_err().to_string();
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.starts_with("no answer from the daemon at "), "{err}");
        assert!(err.ends_with("(is it a vprocfs serve socket?)"), "{err}");
    }

    /// Found by the live-restart test's daemon log: `ctl` connections saving at once
    /// raced on the state's one temporary file (`rename` failed with `ENOENT`, and a
    /// torn or older state could be left).
    #[test]
    fn saves_from_many_threads_at_once_all_succeed() {
        let dir = std::env::temp_dir().join(format!("vprocfs-ctl-saves-{}", std::process::id()));
        let tracker = crate::membership::Tracker::new();
        let daemon = Arc::new(Daemon {
            view: View::new(tracker, crate::view::Inputs::default()),
            stats: Arc::default(),
            parse_spec: Box::new(|_| Err("no VPS in this test".into())),
            mount: dir.clone(),
            specs: std::sync::Mutex::new(vec![("a".into(), "a:tree=1".into())]),
            state: Some(dir.join("state")),
            vps_mounts: None,
            saving: std::sync::Mutex::new(()),
        });
        let savers: Vec<_> = (0..8)
            .map(|_| {
                let d = Arc::clone(&daemon);
                std::thread::spawn(move || (0..40).map(|_| d.save_state()).find(Result::is_err))
            })
            .collect();
        let failed: Vec<_> = savers
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        let saved = crate::state::load(&dir.join("state"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failed.is_empty(), "{failed:?}");
        assert!(matches!(saved, Ok(Some(_))), "{saved:?}");
    }

    #[test]
    fn requests_parse_strictly() {
        assert_eq!(parse_request(r#"{"cmd":"list"}"#).unwrap(), Request::List);
        assert_eq!(
            parse_request(r#"{"cmd":"alloc","vps":"a","pid":5,"vpid":7}"#).unwrap(),
            Request::Alloc {
                vps: "a".into(),
                pid: 5,
                vpid: 7
            }
        );
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"cmd":"frob"}"#,
            r#"{"cmd":"alloc","vps":"a","pid":"5","vpid":7}"#,
            r#"{"cmd":"alloc","vps":"a","pid":5}"#,
            r#"{"cmd":"list","extra":1}"#,
            r#"{"cmd":"alloc","vps":"a","pid":99999999999,"vpid":1}"#,
            r#"{"cmd":"stats","vps":"a"}"#,
            r#"{"cmd":"enter","vps":"a","pid":1,"vpid":2}"#,
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::refuse("vpid 5 is already in use\nsecond line", 17);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"ok":false,"error":"vpid 5 is already in use second line","errno":17}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), r);
    }
}
