//! `vprocfs serve`'s mount of each VPS. The shared mount serves every VPS, each reader
//! its own, so the kernel may cache nothing of it that depends on the reader; the
//! kernel's dentry and attribute caches belong to a mount, so a VPS gets a mount of its
//! own as well (SPEC section 6), where the kernel keeps what the view lets it
//! ([`crate::view::cache`]), as `vprocfs run`'s mount does. Hooks and `vprocfs exec` put
//! that mount over the VPS's `/proc`.
//!
//! Each mount is `DIR/NAME`, with `DIR` mode 0700 (`serve --vps-mounts`, by default
//! `vps/` beside the control socket). The worker mounts it and serves it with a session
//! of its own over the daemon's shared membership ([`View::mount_of`]); the supervisor
//! holds a copy of its `/dev/fuse` descriptor ([`Channel::hold`]), so that, like the
//! shared mount, it outlives a worker that crashes or steps down for an upgrade: the
//! next worker takes it over ([`VpsMounts::take_over`]) and the supervisor unmounts it
//! when it stops.

use std::collections::BTreeMap;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::mount::{umount2, MntFlags};

use super::channel::{Channel, HeldMount};
use crate::daemon;
use crate::engine::VpsId;
use crate::fuse::ProcFs;
use crate::stats::Stats;
use crate::view::View;

/// How each VPS's mount is served: what every session of the worker shares.
pub struct Settings {
    /// The directory of the mounts.
    pub dir: PathBuf,
    /// The worker's own directory: each mount's inode journal is kept there.
    pub worker_dir: PathBuf,
    /// This worker's generation: file handles are handed out clear of earlier ones'.
    pub generation: u64,
    /// The FUSE options (`--spin`, `--no-passthrough`), as for the shared mount.
    pub fuse: super::FuseArgs,
}

/// One VPS's mount, served.
struct Served {
    path: PathBuf,
    /// Its thread ends when the kernel ends the connection: when the mount is gone from
    /// every namespace.
    session: fuser::BackgroundSession,
    journal: PathBuf,
}

/// The mounts of the VPSes a worker serves.
pub struct VpsMounts {
    settings: Settings,
    /// The shared mount's view: each mount shares its membership.
    view: Arc<View>,
    stats: Arc<Stats>,
    channel: Arc<Channel>,
    served: Mutex<BTreeMap<String, Served>>,
}

impl VpsMounts {
    /// Mounts of VPSes of `view`'s daemon, made in `settings.dir` (made mode 0700 if
    /// missing), whose descriptors the supervisor on `channel` holds.
    pub fn new(
        settings: Settings,
        view: Arc<View>,
        stats: Arc<Stats>,
        channel: Arc<Channel>,
    ) -> Result<VpsMounts, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.dir)
            .map_err(|e| format!("cannot make {}: {e}", settings.dir.display()))?;
        Ok(VpsMounts {
            settings,
            view,
            stats,
            channel,
            served: Mutex::new(BTreeMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Served>> {
        crate::sync::lock(&self.served)
    }

    /// Where VPS `name`'s mount is, if it has one.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.lock().get(name).map(|s| s.path.clone())
    }

    /// Mounts and serves a mount of VPS `name` (id `id`); its path.
    pub fn add(&self, name: &str, id: VpsId) -> Result<PathBuf, String> {
        // Held throughout, so that two adds of a name (a reload and `ctl add`) make one.
        let mut served = self.lock();
        if let Some(s) = served.get(name) {
            return Ok(s.path.clone());
        }
        let path = self.settings.dir.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => stale_or_free(&path)?,
            Err(e) => return Err(format!("cannot make {}: {e}", path.display())),
        }
        let fuse = super::open_dev_fuse()?;
        let made = super::mount_view(&fuse, &path, true)
            .map_err(|e| format!("cannot mount {}: {e}", path.display()))
            .and_then(|()| {
                self.channel
                    .hold(name, &path, fuse.as_fd())
                    .map_err(|e| format!("cannot hand {} to the supervisor: {e}", path.display()))
            })
            .and_then(|()| self.serve(name, id, path.clone(), OwnedFd::from(fuse), false));
        match made {
            Ok(s) => {
                served.insert(name.to_string(), s);
                log::info!("VPS {name} has a mount of its own at {}", path.display());
                Ok(path)
            }
            Err(e) => {
                let _ = self.channel.release(name);
                unmount(&path);
                Err(e)
            }
        }
    }

    /// Serves the mounts an earlier worker left with the supervisor: of a VPS still
    /// served (found by name in `id_of`), taken over; of one gone, unmounted.
    pub fn take_over(&self, held: Vec<HeldMount>, id_of: impl Fn(&str) -> Option<VpsId>) {
        for h in held {
            let Some(id) = id_of(&h.name) else {
                log::info!(
                    "VPS {} is gone: unmounting its mount {}",
                    h.name,
                    h.path.display()
                );
                let _ = self.channel.release(&h.name);
                unmount(&h.path);
                continue;
            };
            match self.serve(&h.name, id, h.path.clone(), h.fd, true) {
                Ok(s) => {
                    self.lock().insert(h.name, s);
                }
                Err(e) => {
                    log::error!("cannot take over {}: {e}; unmounting it", h.path.display());
                    let _ = self.channel.release(&h.name);
                    unmount(&h.path);
                }
            }
        }
    }

    /// A session serving VPS `id`'s mount at `path` on `fuse`: a connection an earlier
    /// worker initialised (`takeover`), or a new one the kernel sends INIT on.
    fn serve(
        &self,
        name: &str,
        id: VpsId,
        path: PathBuf,
        fuse: OwnedFd,
        takeover: bool,
    ) -> Result<Served, String> {
        let view = self.view.mount_of(id);
        let journal = self.settings.worker_dir.join(format!("nodes-{name}"));
        view.keep_journal(&journal, takeover, self.settings.generation << 48)
            .map_err(|e| format!("cannot keep the inode journal {}: {e}", journal.display()))?;
        let spin = self.settings.fuse.spin(&self.stats);
        let backings = self.settings.worker_dir.join(format!("backings-{name}"));
        let mut fs = ProcFs::new(
            Arc::clone(&view),
            Arc::clone(&self.stats),
            Arc::clone(&spin),
        )
        .hand_over_backings(backings, takeover);
        if self.settings.fuse.no_passthrough {
            fs = fs.without_passthrough();
        }
        let config = daemon::session_config(&spin);
        let session = if takeover {
            crate::handover::adopt(fs, fuse, config)
        } else {
            fuser::Session::from_fd(fs, fuse, fuser::SessionACL::All, config)
        };
        let session = session
            .and_then(|s| daemon::start_session(s, &view, &spin))
            .map_err(|e| format!("cannot serve {}: {e}", path.display()))?;
        Ok(Served {
            path,
            session,
            journal,
        })
    }

    /// Unmounts VPS `name`'s mount, if it has one. A container may still have the mount
    /// in place; its session answers there (every name `ENOENT`, the VPS being gone)
    /// until the container's last copy of it goes.
    pub fn remove(&self, name: &str) {
        let Some(served) = self.lock().remove(name) else {
            return;
        };
        if let Err(e) = self.channel.release(name) {
            log::warn!("cannot tell the supervisor to let {name}'s mount go: {e}");
        }
        unmount(&served.path);
        let _ = std::fs::remove_file(&served.journal);
        // Not joined: its thread ends when the kernel ends the connection, once the
        // mount is gone from every namespace.
        drop(served.session);
        log::info!("VPS {name}'s mount {} is gone", served.path.display());
    }
}

/// Whether the directory `path`, already there, may take a VPS's mount: empty, or a
/// mount left by a supervisor that was killed (nothing serves it: `ENOTCONN`), which is
/// detached. A mount that answers belongs to another daemon (two `serve`s given the same
/// `--vps-mounts`, or the same control socket's directory) and is left alone.
fn stale_or_free(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            Ok(())
        }
        Err(e) => Err(format!("cannot use {}: {e}", path.display())),
        Ok(md) => {
            let parent = path.parent().and_then(|p| std::fs::metadata(p).ok());
            match parent {
                Some(p) if p.dev() != md.dev() => Err(format!(
                    "{} is mounted already, by another daemon (give each `vprocfs serve` \
                     its own --vps-mounts)",
                    path.display()
                )),
                _ => Ok(()),
            }
        }
    }
}

/// Unmounts `path` (detached if a reader still uses it) and removes its directory.
fn unmount(path: &Path) {
    if umount2(path, MntFlags::empty()).is_err() {
        let _ = umount2(path, MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(path);
}

/// The control socket's side: the inherent methods above.
impl crate::ctl::VpsMounts for VpsMounts {
    fn add(&self, name: &str, id: VpsId) -> Result<PathBuf, String> {
        VpsMounts::add(self, name, id)
    }
    fn remove(&self, name: &str) {
        VpsMounts::remove(self, name)
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        VpsMounts::path(self, name)
    }
}
