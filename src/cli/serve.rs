//! `vprocfs serve` (one mount, many VPSes) and `vprocfs attach` (put a served mount over
//! a running container's `/proc`).

use std::fs::File;
use std::sync::Arc;

use fuser::MountOption;
use nix::sched::{setns, CloneFlags};

use super::{need_root, AttachArgs, NumberingArg, ServeArgs, VpsSpec};
use crate::daemon;
use crate::engine::VpsConfig;
use crate::fuse::ProcFs;
use crate::membership::{Source, Tracker};
use crate::stats::Stats;
use crate::sys::process::{fork, move_mount_to, open_tree_clone, Forked};
use crate::view::View;

pub(super) fn serve(a: ServeArgs) -> Result<i32, String> {
    need_root("vprocfs serve")?;
    if a.vps.is_empty() {
        log::warn!("no --vps given: every reader sees the host view");
    }
    daemon::block_stop_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    let mut tracker = Tracker::new();
    let numbering = a.engine.numbering;
    let base = a.engine.config(NumberingArg::Linear);
    let settings = move |spec: &VpsSpec| -> Result<(VpsConfig, bool), String> {
        let pidns = matches!(spec.source, Source::Pidns { .. });
        let numbering = numbering.unwrap_or(if pidns {
            NumberingArg::Pidns
        } else {
            NumberingArg::Linear
        });
        if numbering == NumberingArg::Pidns && !pidns {
            return Err(format!(
                "--vps {}: --numbering pidns needs a pidns= VPS",
                spec.name
            ));
        }
        let config = VpsConfig {
            numbering: numbering.engine(),
            ..base
        };
        Ok((config, numbering == NumberingArg::Pidns))
    };
    for spec in &a.vps {
        let (config, ns_numbers) = settings(spec)?;
        tracker
            .add_vps(&spec.name, spec.source.clone(), config, ns_numbers)
            .map_err(|e| format!("--vps {}: {e}", spec.name))?;
    }
    let view = Arc::new(View::new(tracker));
    daemon::follow_events(&view);
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("vprocfs".into()),
        MountOption::Subtype("vprocfs".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(2);
    let stats = Arc::new(Stats::default());
    let fs = ProcFs::new(Arc::clone(&view), Arc::clone(&stats));
    let session = fuser::Session::new(fs, &a.mountpoint, &config)
        .and_then(|s| s.spawn())
        .map_err(|e| format!("cannot mount {}: {e}", a.mountpoint.display()))?;
    let daemon = Arc::new(crate::ctl::Daemon {
        view: Arc::clone(&view),
        stats: Arc::clone(&stats),
        parse_spec: Box::new(move |text: &str| {
            let spec = super::parse_vps(text)?;
            let (config, ns_numbers) = settings(&spec)?;
            Ok((spec.name, spec.source, config, ns_numbers))
        }),
        mount: std::fs::canonicalize(&a.mountpoint).unwrap_or_else(|_| a.mountpoint.clone()),
    });
    crate::ctl::listen(&a.ctl, daemon)
        .map_err(|e| format!("cannot listen on {}: {e}", a.ctl.display()))?;
    log::info!(
        "serving {} VPS(es) on {}, control socket {}",
        a.vps.len(),
        a.mountpoint.display(),
        a.ctl.display()
    );
    let sig = daemon::wait_signal(&stats).map_err(|e| e.to_string())?;
    log::info!(
        "{sig}: unmounting {}; {}",
        a.mountpoint.display(),
        stats.line()
    );
    let _ = std::fs::remove_file(&a.ctl);
    session
        .umount_and_join()
        .map_err(|e| format!("cannot unmount {}: {e}", a.mountpoint.display()))?;
    Ok(0)
}

pub(super) fn attach(a: AttachArgs) -> Result<i32, String> {
    need_root("vprocfs attach")?;
    let tree = open_tree_clone(&a.mountpoint)
        .map_err(|e| format!("cannot take the mount at {}: {e}", a.mountpoint.display()))?;
    let ns = File::open(format!("/proc/{}/ns/mnt", a.pid))
        .map_err(|e| format!("cannot open the mount namespace of process {}: {e}", a.pid))?;
    // setns into a mount namespace needs a single-threaded caller: a child does it.
    match fork().map_err(|e| format!("cannot fork: {e}"))? {
        Forked::Child => {
            let r = setns(&ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot enter the mount namespace: {e}"))
                .and_then(|()| {
                    move_mount_to(&tree, &a.target)
                        .map_err(|e| format!("cannot mount on {}: {e}", a.target.display()))
                });
            match r {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    eprintln!("vprocfs: {e}");
                    std::process::exit(1)
                }
            }
        }
        Forked::Parent(child) => {
            let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None)
                .map_err(|e| e.to_string())?;
            match st {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(0),
                _ => Err(format!("attaching to process {} failed", a.pid)),
            }
        }
    }
}
