//! What `run` and `serve` share: following kernel events into membership, serving the
//! FUSE session, and turning signals into an orderly stop.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use crate::events::{Batch, EventStream};
use crate::view::View;

/// Starts the thread that feeds kernel process events to membership. Returns false (and
/// the view falls back to rescanning `/proc` when it is listed) where the connector
/// cannot be opened: not root, or not in the initial namespaces.
pub fn follow_events(view: &Arc<View>) -> bool {
    let mut stream = match EventStream::open() {
        Ok(s) => s,
        Err(e) => {
            log::warn!(
                "process events unavailable ({e}); membership falls back to rescanning /proc"
            );
            return false;
        }
    };
    let events_view = Arc::clone(view);
    let spawned = thread::Builder::new()
        .name("vprocfs-events".into())
        .spawn(move || loop {
            let view = &events_view;
            match stream.next_batch(Some(Duration::from_millis(500))) {
                Ok(Batch::Events(evs)) => view.with_tracker(|t| {
                    for ev in &evs {
                        t.on_event(ev);
                    }
                }),
                Ok(Batch::Overrun) => {
                    log::info!("process events were lost; rescanning /proc");
                    view.with_tracker(|t| t.rescan());
                }
                Ok(Batch::Idle) => view.with_tracker(|t| t.reap()),
                Err(e) => {
                    log::error!("process events stopped: {e}; falling back to rescans");
                    view.set_events(false);
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => {
            view.set_events(true);
            true
        }
        Err(e) => {
            log::warn!("cannot start the events thread: {e}");
            false
        }
    }
}

/// The signals that stop the daemon.
pub fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the stop signals in the calling thread (and so in every thread it starts), so
/// that [`wait_signal`] receives them instead of the default action killing the daemon
/// with its mount still up.
pub fn block_stop_signals() -> io::Result<()> {
    stop_signals().thread_block().map_err(io::Error::from)
}

/// Waits for one of the stop signals.
pub fn wait_signal() -> io::Result<Signal> {
    stop_signals().wait().map_err(io::Error::from)
}
