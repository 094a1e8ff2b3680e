//! The kernel's process events as the view takes them. Membership follows them (an
//! events thread waits on the socket, `daemon::follow_events`), and a reader that asks
//! for a task membership has not heard of yet applies those queued first: the kernel
//! queues a fork's event before the child runs, so draining the socket at that moment
//! finds it. Both take events under one lock, so they are applied in the kernel's order.
//!
//! Without the connector (not root, or not in the initial namespaces) there is no feed,
//! and a reader listing `/proc` triggers a rescan instead.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::{lock, View};
use crate::events::{Batch, EventStream};

/// The connector's socket, while it works.
pub(super) struct Feed {
    stream: Mutex<EventStream>,
    /// A copy of the socket's descriptor, to wait on without taking the stream's lock
    /// (a wait must not hold up a reader's catch-up).
    socket: OwnedFd,
    /// False once the socket failed for good, or its thread could not start.
    running: AtomicBool,
}

impl Feed {
    pub(super) fn new(stream: EventStream) -> io::Result<Feed> {
        Ok(Feed {
            socket: stream.socket().as_fd().try_clone_to_owned()?,
            stream: Mutex::new(stream),
            running: AtomicBool::new(true),
        })
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

impl View {
    /// Whether the process-events connector feeds membership.
    pub fn follows_events(&self) -> bool {
        self.shared.feed.as_ref().is_some_and(Feed::running)
    }

    /// The connector's socket, for the events thread to wait on.
    pub fn event_socket(&self) -> Option<BorrowedFd<'_>> {
        let feed = self.shared.feed.as_ref().filter(|f| f.running())?;
        Some(feed.socket.as_fd())
    }

    /// Applies every event the kernel has queued, without waiting, in every mount of the
    /// daemon. False once the socket has failed for good: membership then falls back to
    /// rescans.
    pub fn catch_up(&self) -> bool {
        let Some(feed) = self.shared.feed.as_ref().filter(|f| f.running()) else {
            return false;
        };
        let mut stream = lock(&feed.stream);
        loop {
            match stream.next_batch(Some(Duration::ZERO)) {
                Ok(Batch::Events(evs)) => self.on_events(&evs),
                Ok(Batch::Overrun) => {
                    log::info!("process events were lost; rescanning /proc");
                    self.with_tracker(|t| t.rescan());
                }
                Ok(Batch::Idle) => return true,
                Err(e) => {
                    log::error!("process events stopped: {e}; falling back to rescans");
                    feed.stop();
                    return false;
                }
            }
        }
    }

    /// The events are no longer followed (their thread could not go on): membership
    /// falls back to rescans.
    pub fn stop_events(&self) {
        if let Some(feed) = &self.shared.feed {
            feed.stop();
        }
    }
}
