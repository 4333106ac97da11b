//! The one way serving code takes a `std::sync::Mutex`: a panic on another thread while it held
//! the lock leaves data that is still usable (counters, caches, rings), so the poison is ignored
//! instead of turning one failed request into failures for every later one.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data from a poisoned lock.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
