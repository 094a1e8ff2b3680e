//! Taking over a FUSE passthrough backing file another worker registered.

#![allow(unsafe_code)]

use fuser::{BackingId, ReplyOpen};

/// The backing file `id` of the connection `reply` answers on, as an owned
/// [`BackingId`] (closed when dropped).
///
/// For a worker that took the connection over: `id` is one the previous worker
/// registered with this very connection and handed over unclosed
/// ([`crate::backing`]), and this is the only claim on it.
pub fn adopt_backing(reply: &ReplyOpen, id: u32) -> BackingId {
    // SAFETY: `wrap_backing` requires an id that is open, belongs to this FUSE session's
    // connection, and is not closed while the returned value lives. The id was opened
    // on this connection by the previous worker, which gave up its ownership with
    // `BackingId::into_raw` and exited without closing it; the handover file that
    // carried it is read once, and each id taken from it is wrapped at most once (it is
    // removed from the adopted set as it is wrapped), so nothing else closes it.
    unsafe { reply.wrap_backing(id) }
}
