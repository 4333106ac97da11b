//! Cache of served lists per user, with a TTL, a capacity, and invalidation by user (new
//! feedback) or wholesale (a new snapshot).
//!
//! Entries are grouped by user in shards behind plain mutexes: a lookup holds one shard's lock
//! for a hash-map probe, so contention stays low at the request rates one process serves, and
//! invalidating a user is one removal. Each entry remembers the snapshot it was computed on; a
//! hit on an older snapshot is a miss.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARDS: usize = 32;

struct Entry<V> {
    at: Instant,
    snapshot: u64,
    value: Arc<V>,
}

type Shard<V> = HashMap<String, HashMap<String, Entry<V>>>;

/// A TTL cache keyed by (user, request key).
pub struct ListCache<V> {
    ttl: Duration,
    capacity: usize,
    shards: Vec<Mutex<Shard<V>>>,
    len: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl<V> ListCache<V> {
    /// A cache; `ttl` zero disables it (every lookup misses, nothing is stored).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn shard(&self, user: &str) -> std::sync::MutexGuard<'_, Shard<V>> {
        let i = (self.hasher.hash_one(user) as usize) % SHARDS;
        // A poisoned shard only means a panic elsewhere mid-update of a cache: start it afresh.
        self.shards[i].lock().unwrap_or_else(|p| {
            let mut guard = p.into_inner();
            guard.clear();
            guard
        })
    }

    /// The cached value for (user, key) computed on `snapshot`, if fresh.
    pub fn get(&self, user: &str, key: &str, snapshot: u64) -> Option<Arc<V>> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shard(user);
        let found = shard
            .get(user)
            .and_then(|m| m.get(key))
            .filter(|e| e.snapshot == snapshot && e.at.elapsed() < self.ttl)
            .map(|e| Arc::clone(&e.value));
        drop(shard);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a value; over capacity, the shard drops its expired entries and then, if still
    /// needed, everything it holds (cheap, and bounded to 1/32 of the cache).
    pub fn put(&self, user: &str, key: &str, snapshot: u64, value: Arc<V>) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shard(user);
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            let before: usize = shard.values().map(HashMap::len).sum();
            let ttl = self.ttl;
            for entries in shard.values_mut() {
                entries.retain(|_, e| e.at.elapsed() < ttl);
            }
            shard.retain(|_, m| !m.is_empty());
            let mut after: usize = shard.values().map(HashMap::len).sum();
            if after * SHARDS >= self.capacity {
                shard.clear();
                after = 0;
            }
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
        let entry = Entry {
            at: Instant::now(),
            snapshot,
            value,
        };
        let previous = shard
            .entry(user.to_owned())
            .or_default()
            .insert(key.to_owned(), entry);
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets every list of `user`.
    pub fn invalidate_user(&self, user: &str) {
        if !self.enabled() {
            return;
        }
        if let Some(entries) = self.shard(user).remove(user) {
            self.len.fetch_sub(entries.len(), Ordering::Relaxed);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for i in 0..SHARDS {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            let n: usize = shard.values().map(HashMap::len).sum();
            shard.clear();
            self.len.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_ttl_invalidation_or_new_snapshot() {
        let cache = ListCache::new(Duration::from_millis(200), 100);
        cache.put("u1", "n=10", 1, Arc::new(vec![1, 2, 3]));
        assert_eq!(*cache.get("u1", "n=10", 1).unwrap(), vec![1, 2, 3]);
        assert!(cache.get("u1", "n=5", 1).is_none());
        assert!(cache.get("u1", "n=10", 2).is_none(), "another snapshot");
        cache.invalidate_user("u1");
        assert!(cache.get("u1", "n=10", 1).is_none());
        assert_eq!(cache.len(), 0);
        cache.put("u2", "n=10", 1, Arc::new(vec![4]));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get("u2", "n=10", 1).is_none(), "expired");
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn capacity_bounds_the_entries_and_zero_ttl_disables() {
        let cache = ListCache::new(Duration::from_secs(60), 64);
        for u in 0..10_000 {
            cache.put(&format!("user{u}"), "k", 1, Arc::new(u));
        }
        assert!(cache.len() <= 64 + SHARDS, "{}", cache.len());
        let off = ListCache::new(Duration::ZERO, 10);
        off.put("u", "k", 1, Arc::new(1));
        assert!(off.get("u", "k", 1).is_none());
        assert!(off.is_empty());
    }
}
