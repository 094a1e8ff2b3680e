//! Taking over a FUSE passthrough backing file another worker registered.

#![allow(unsafe_code)]

use fuser::{BackingId, ReplyOpen};

/// The backing file `id` of the connection `reply` answers on, as an owned
/// [`BackingId`] (closed when dropped).
///
/// `id` is one registered with this very connection whose owner gave it up unclosed:
/// this worker, which just registered it and took its raw value to record it in the
/// mount's ledger, or a previous worker, which handed it over or was killed with it
/// registered ([`crate::backing`]). This is the only claim on it.
pub fn adopt_backing(reply: &ReplyOpen, id: u32) -> BackingId {
    // SAFETY: `wrap_backing` requires an id that is open, belongs to this FUSE session's
    // connection, and is not closed while the returned value lives. The id was opened
    // on this connection, by this worker (which gave up the `BackingId` with `into_raw`
    // just before this call) or by a previous worker (which gave up its ownership with
    // `into_raw` and exited, or was killed, without closing it). A previous worker's id
    // comes from the handover file or the ledger, each read once, and each id taken from
    // them is wrapped at most once (it is removed from the adopted set as it is
    // wrapped), so nothing else closes it.
    unsafe { reply.wrap_backing(id) }
}
