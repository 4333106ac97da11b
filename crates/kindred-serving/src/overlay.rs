//! The real-time feedback overlay: per user, the items of feedback stored since the snapshot
//! was read, so the next list folds them in without waiting for a rebuild.
//!
//! Users are request data, so the overlay is bounded: at most `max_users` users (the one written
//! least recently goes first) and `per_user` events each (the oldest go first). An evicted user's
//! events are still stored; their lists only miss the fold-in until the next snapshot reads them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sync::lock;

struct UserEvents {
    /// When the user was last written (a counter); the key of `Inner::by_recency`.
    stamp: u64,
    /// (generation, item) oldest first.
    events: Vec<(u64, String)>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, UserEvents>,
    by_recency: BTreeMap<u64, String>,
    stamp: u64,
}

impl Inner {
    fn remove(&mut self, user: &str) -> bool {
        match self.users.remove(user) {
            Some(events) => {
                self.by_recency.remove(&events.stamp);
                true
            }
            None => false,
        }
    }
}

/// Real-time feedback per user, bounded in users and in events per user.
pub struct Overlay {
    inner: Mutex<Inner>,
    max_users: usize,
    per_user: usize,
    /// Users dropped to stay within `max_users`.
    pub evictions: AtomicU64,
}

impl Overlay {
    pub fn new(max_users: usize, per_user: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_users: max_users.max(1),
            per_user: per_user.max(1),
            evictions: AtomicU64::new(0),
        }
    }

    /// Appends `(user, item)` events of one write, all with `generation`.
    pub fn record<'a>(
        &self,
        generation: u64,
        events: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let mut inner = lock(&self.inner);
        for (user, item) in events {
            inner.stamp += 1;
            let stamp = inner.stamp;
            let previous = match inner.users.get_mut(user) {
                Some(entry) => Some(std::mem::replace(&mut entry.stamp, stamp)),
                None => None,
            };
            match previous {
                Some(old) => {
                    inner.by_recency.remove(&old);
                }
                None => {
                    while inner.users.len() >= self.max_users {
                        let Some((_, oldest)) = inner.by_recency.pop_first() else {
                            break;
                        };
                        inner.users.remove(&oldest);
                        self.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                    inner.users.insert(
                        user.to_owned(),
                        UserEvents {
                            stamp,
                            events: Vec::new(),
                        },
                    );
                }
            }
            inner.by_recency.insert(stamp, user.to_owned());
            if let Some(entry) = inner.users.get_mut(user) {
                entry.events.push((generation, item.to_owned()));
                if entry.events.len() > self.per_user {
                    let extra = entry.events.len() - self.per_user;
                    entry.events.drain(..extra);
                }
            }
        }
    }

    /// `user`'s events newer than `generation`, oldest first, mapped by `index` (events it maps
    /// to None are left out).
    pub fn items_after<T>(
        &self,
        user: &str,
        generation: u64,
        mut index: impl FnMut(&str) -> Option<T>,
    ) -> Vec<T> {
        let inner = lock(&self.inner);
        let Some(entry) = inner.users.get(user) else {
            return Vec::new();
        };
        entry
            .events
            .iter()
            .filter(|(g, _)| *g > generation)
            .filter_map(|(_, item)| index(item))
            .collect()
    }

    /// Drops the events a snapshot read at `generation` holds, and users left with none.
    pub fn retain_after(&self, generation: u64) {
        let mut inner = lock(&self.inner);
        let mut emptied = Vec::new();
        for (user, entry) in &mut inner.users {
            entry.events.retain(|(g, _)| *g > generation);
            if entry.events.is_empty() {
                emptied.push(user.clone());
            }
        }
        for user in emptied {
            inner.remove(&user);
        }
    }

    /// Forgets `user` (a deleted user).
    pub fn remove(&self, user: &str) {
        lock(&self.inner).remove(user);
    }

    /// Users held.
    pub fn users(&self) -> usize {
        lock(&self.inner).users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(overlay: &Overlay, user: &str, after: u64) -> Vec<String> {
        overlay.items_after(user, after, |i| Some(i.to_owned()))
    }

    #[test]
    fn keeps_the_most_recently_written_users_and_the_newest_events() {
        let overlay = Overlay::new(2, 3);
        overlay.record(1, [("a", "i1"), ("b", "i2")]);
        overlay.record(2, [("a", "i3")]);
        // `b` is the least recently written: the third user evicts it, not `a`.
        overlay.record(3, [("c", "i4")]);
        assert_eq!(overlay.users(), 2);
        assert!(items(&overlay, "b", 0).is_empty());
        assert_eq!(items(&overlay, "a", 0), ["i1", "i3"]);
        assert_eq!(overlay.evictions.load(Ordering::Relaxed), 1);
        overlay.record(4, [("a", "i5"), ("a", "i6")]);
        assert_eq!(items(&overlay, "a", 0), ["i3", "i5", "i6"], "3 per user");
        assert_eq!(
            items(&overlay, "a", 3),
            ["i5", "i6"],
            "newer than generation 3"
        );
    }

    #[test]
    fn a_rebuild_drops_what_it_read_and_remove_forgets() {
        let overlay = Overlay::new(10, 10);
        overlay.record(1, [("a", "i1"), ("b", "i2")]);
        overlay.record(2, [("b", "i3")]);
        overlay.retain_after(1);
        assert_eq!(overlay.users(), 1);
        assert_eq!(items(&overlay, "b", 0), ["i3"]);
        overlay.remove("b");
        assert_eq!(overlay.users(), 0);
        // The recency index emptied with the users: a full overlay evicts nothing stale.
        overlay.record(3, (0..10).map(|_| ("x", "i")));
        assert_eq!(overlay.evictions.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn many_distinct_users_stay_within_the_bound() {
        let overlay = Overlay::new(100, 5);
        let names: Vec<String> = (0..10_000).map(|u| format!("user{u}")).collect();
        for (g, name) in names.iter().enumerate() {
            overlay.record(g as u64, [(name.as_str(), "item")]);
        }
        assert_eq!(overlay.users(), 100);
        assert_eq!(items(&overlay, "user9999", 0), ["item"]);
        assert!(items(&overlay, "user0", 0).is_empty());
    }
}
