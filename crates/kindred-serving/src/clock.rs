//! The wall clock the serving code stamps events, lists and versions with: the same reading
//! the timestamp checks use.

/// Unix seconds now.
pub fn unix_now() -> i64 {
    kindred_core::timestamp_range::now()
}
