//! Cache of served lists per user, with a TTL, bounded both in entries and in bytes, and
//! invalidation by user (new feedback) or wholesale (a new snapshot).
//!
//! Entries are grouped by user in shards behind plain mutexes: a lookup holds one shard's lock
//! for a hash-map probe, so contention stays low at the request rates one process serves, and
//! invalidating a user is one removal. Each entry remembers the snapshot it was computed on; a
//! hit on an older snapshot is a miss.
//!
//! The bounds hold per shard (each gets 1/32 of the entries and of the bytes), so the whole
//! cache never holds more than its configured entries or bytes, whatever the users' ids or the
//! lists' lengths: a request that names a new user with a long list costs at most its share. A
//! value larger than a shard's share is not cached at all.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARDS: usize = 32;

/// What a cached value costs in memory, roughly: the heap it owns plus its own size. The
/// cache adds its keys and bookkeeping.
pub trait CacheWeight {
    fn weight_bytes(&self) -> usize;
}

/// Per-entry bookkeeping beyond the key and the value (hash-map slots, the `Arc`, timestamps).
const ENTRY_OVERHEAD: usize = 96;

struct Entry<V> {
    at: Instant,
    snapshot: u64,
    bytes: usize,
    value: Arc<V>,
}

struct Shard<V> {
    users: HashMap<String, HashMap<String, Entry<V>>>,
    entries: usize,
    bytes: usize,
}

impl<V> Shard<V> {
    fn new() -> Self {
        Self {
            users: HashMap::new(),
            entries: 0,
            bytes: 0,
        }
    }

    fn drop_expired(&mut self, ttl: Duration) {
        let mut freed = (0, 0);
        for entries in self.users.values_mut() {
            entries.retain(|_, e| {
                let keep = e.at.elapsed() < ttl;
                if !keep {
                    freed.0 += 1;
                    freed.1 += e.bytes;
                }
                keep
            });
        }
        self.users.retain(|_, m| !m.is_empty());
        self.entries -= freed.0;
        self.bytes -= freed.1;
    }

    fn clear(&mut self) {
        self.users.clear();
        self.entries = 0;
        self.bytes = 0;
    }
}

/// A TTL cache keyed by (user, request key).
pub struct ListCache<V> {
    ttl: Duration,
    shard_entries: usize,
    shard_bytes: usize,
    shards: Vec<Mutex<Shard<V>>>,
    hasher: std::collections::hash_map::RandomState,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Entries dropped to make room (expired ones included when room was needed).
    pub evictions: AtomicU64,
    /// Values not cached because one alone exceeds a shard's share of the bytes.
    pub oversized: AtomicU64,
}

impl<V: CacheWeight> ListCache<V> {
    /// A cache of at most `capacity` entries and `max_bytes` bytes; `ttl` zero disables it
    /// (every lookup misses, nothing is stored).
    pub fn new(ttl: Duration, capacity: usize, max_bytes: usize) -> Self {
        Self {
            ttl,
            shard_entries: capacity.div_ceil(SHARDS).max(1),
            shard_bytes: (max_bytes / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn shard(&self, user: &str) -> std::sync::MutexGuard<'_, Shard<V>> {
        let i = (self.hasher.hash_one(user) as usize) % SHARDS;
        self.lock(i)
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Shard<V>> {
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
            .users
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

    /// Stores a value. When its shard is full (entries or bytes), the shard first drops its
    /// expired entries and then, if still needed, everything it holds: cheap, amortised over
    /// the shard's refill, and bounded to 1/32 of the cache.
    pub fn put(&self, user: &str, key: &str, snapshot: u64, value: Arc<V>) {
        if !self.enabled() {
            return;
        }
        let bytes = value.weight_bytes() + user.len() + key.len() + ENTRY_OVERHEAD;
        if bytes > self.shard_bytes {
            self.oversized.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut shard = self.shard(user);
        if let Some(old) = shard.users.get_mut(user).and_then(|m| m.remove(key)) {
            shard.entries -= 1;
            shard.bytes -= old.bytes;
        }
        let full =
            |s: &Shard<V>| s.entries >= self.shard_entries || s.bytes + bytes > self.shard_bytes;
        if full(&shard) {
            let held = shard.entries;
            shard.drop_expired(self.ttl);
            if full(&shard) {
                shard.clear();
            }
            self.evictions
                .fetch_add((held - shard.entries) as u64, Ordering::Relaxed);
        }
        shard.users.entry(user.to_owned()).or_default().insert(
            key.to_owned(),
            Entry {
                at: Instant::now(),
                snapshot,
                bytes,
                value,
            },
        );
        shard.entries += 1;
        shard.bytes += bytes;
    }

    /// Forgets every list of `user`.
    pub fn invalidate_user(&self, user: &str) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shard(user);
        if let Some(entries) = shard.users.remove(user) {
            let bytes: usize = entries.values().map(|e| e.bytes).sum();
            shard.entries -= entries.len();
            shard.bytes -= bytes;
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for i in 0..SHARDS {
            self.lock(i).clear();
        }
    }

    /// Entries held (summed over the shards: read by `/metrics`, not by requests).
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).entries).sum()
    }

    /// Bytes held, as the values, keys and bookkeeping are weighed.
    pub fn bytes(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).bytes).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CacheWeight for Vec<u8> {
        fn weight_bytes(&self) -> usize {
            std::mem::size_of::<Self>() + self.len()
        }
    }

    #[test]
    fn hits_until_ttl_invalidation_or_new_snapshot() {
        let cache = ListCache::new(Duration::from_millis(200), 100, 1 << 20);
        cache.put("u1", "n=10", 1, Arc::new(vec![1, 2, 3]));
        assert_eq!(*cache.get("u1", "n=10", 1).unwrap(), vec![1, 2, 3]);
        assert!(cache.get("u1", "n=5", 1).is_none());
        assert!(cache.get("u1", "n=10", 2).is_none(), "another snapshot");
        cache.invalidate_user("u1");
        assert!(cache.get("u1", "n=10", 1).is_none());
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        cache.put("u2", "n=10", 1, Arc::new(vec![4]));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get("u2", "n=10", 1).is_none(), "expired");
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn capacity_bounds_the_entries_and_zero_ttl_disables() {
        let cache = ListCache::new(Duration::from_secs(60), 64, 1 << 30);
        for u in 0..10_000 {
            cache.put(&format!("user{u}"), "k", 1, Arc::new(vec![1]));
        }
        assert!(cache.len() <= 64 + SHARDS, "{}", cache.len());
        assert!(cache.evictions.load(Ordering::Relaxed) > 0);
        let off = ListCache::new(Duration::ZERO, 10, 1 << 20);
        off.put("u", "k", 1, Arc::new(vec![1]));
        assert!(off.get("u", "k", 1).is_none());
        assert!(off.is_empty());
    }

    #[test]
    fn bytes_stay_under_the_budget_whatever_the_ids_and_values() {
        let budget = 1 << 20;
        let cache = ListCache::new(Duration::from_secs(60), 1_000_000, budget);
        for u in 0..5_000 {
            let user = format!("{u}-{}", "x".repeat(u % 3_000));
            cache.put(&user, "n=1000", 1, Arc::new(vec![7; 4_000]));
            cache.put(&user, "n=10", 1, Arc::new(vec![7; 10]));
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        // A value bigger than a shard's share is refused, not cached at the others' expense.
        cache.put("big", "k", 1, Arc::new(vec![0; budget]));
        assert!(cache.get("big", "k", 1).is_none());
        assert_eq!(cache.oversized.load(Ordering::Relaxed), 1);
        // Replacing a key does not count it twice; clearing returns every byte.
        cache.put("same", "k", 1, Arc::new(vec![1; 100]));
        let held = cache.bytes();
        cache.put("same", "k", 1, Arc::new(vec![1; 100]));
        assert_eq!(cache.bytes(), held);
        cache.clear();
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }
}
