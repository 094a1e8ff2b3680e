//! Locks that outlive a panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, even if a thread panicked while holding it: the daemon serves other
/// requests on, and every value guarded here stays valid whatever a panic interrupted
/// (plain tables and counters, no invariant spread over two updates).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
