//! A small bounded read-through cache for data that only changes through staged batches.
//!
//! Writers stage a change in a batch and commit it later, so a reader can see the old value
//! on disk while a change is on its way. To never cache a stale value:
//! - a writer calls [`SharedCache::begin_change`] before staging and
//!   [`SharedCache::end_change`] after the batch is committed (or failed): while a key has a
//!   change in flight it is neither served nor cached, and both calls drop the cached value;
//! - a reader takes a [`SharedCache::ticket`] *before* reading the store and inserts with it;
//!   the insert is ignored if any change began or ended since, because the value read may
//!   predate it.
//!
//! A writer that never calls `end_change` (its future was dropped mid-commit) only costs
//! misses for that key. A full cache drops its least recently used entry on each insert: it
//! used to empty itself when full, and dropping thousands of parsed events at once stalled
//! the request that happened to fill it (every 82nd page of a `/messages` walk took 40–70 ms).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard},
};

use hashlink::LruCache;

pub struct SharedCache<K, V> {
    inner: Arc<Mutex<Inner<K, V>>>,
}

impl<K, V> Clone for SharedCache<K, V> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

struct Inner<K, V> {
    entries: LruCache<K, V>,
    /// Keys with a change staged but not yet committed, with how many.
    in_flight: HashMap<K, usize>,
    /// Bumped whenever a change begins or ends.
    generation: u64,
}

/// Proof of when a reader started reading the store.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

impl<K: Eq + Hash + Clone, V: Clone> SharedCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner { entries: LruCache::new(capacity.max(1)), in_flight: HashMap::new(), generation: 0 })),
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner<K, V>>> {
        // A poisoned cache only costs misses: callers fall back to the store.
        self.inner.lock().ok()
    }

    /// The cached value, if any and if no change to the key is in flight.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock()?.entries.get(key).cloned()
    }

    /// Take before reading the store for a value to insert.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().map_or(u64::MAX, |inner| inner.generation))
    }

    /// Caches a value read from the store after `ticket` was taken, unless something changed.
    pub fn insert(&self, ticket: Ticket, key: K, value: V) {
        let Some(mut inner) = self.lock() else { return };
        if inner.generation != ticket.0 || inner.in_flight.contains_key(&key) {
            return;
        }
        inner.entries.insert(key, value);
    }

    /// A change to `key` is about to be staged.
    pub fn begin_change(&self, key: K) {
        let Some(mut inner) = self.lock() else { return };
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.remove(&key);
        *inner.in_flight.entry(key).or_insert(0) += 1;
    }

    /// A change begun with [`SharedCache::begin_change`] was committed (or abandoned).
    pub fn end_change<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let Some(mut inner) = self.lock() else { return };
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.remove(key);
        if let Some(count) = inner.in_flight.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                inner.in_flight.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SharedCache;

    #[test]
    fn changes_in_flight_are_never_cached() {
        let cache: SharedCache<String, u32> = SharedCache::new(8);
        let ticket = cache.ticket();
        cache.insert(ticket, "a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        // A reader that read before the change began must not cache its value.
        let stale = cache.ticket();
        cache.begin_change("a".to_owned());
        assert_eq!(cache.get("a"), None);
        cache.insert(cache.ticket(), "a".to_owned(), 1);
        assert_eq!(cache.get("a"), None);
        cache.end_change("a");
        cache.insert(stale, "a".to_owned(), 1);
        assert_eq!(cache.get("a"), None);
        cache.insert(cache.ticket(), "a".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(2));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache: SharedCache<u32, u32> = SharedCache::new(4);
        for i in 0..100 {
            cache.insert(cache.ticket(), i, i);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= 4);
    }

    #[test]
    fn a_full_cache_drops_its_least_recently_used_entry() {
        let cache: SharedCache<u32, u32> = SharedCache::new(3);
        for i in 0..3 {
            cache.insert(cache.ticket(), i, i);
        }
        assert_eq!(cache.get(&0), Some(0), "0 is now the most recently used");
        cache.insert(cache.ticket(), 3, 3);
        assert_eq!(cache.get(&1), None, "1 was the least recently used");
        assert_eq!((cache.get(&0), cache.get(&2), cache.get(&3)), (Some(0), Some(2), Some(3)));
    }
}
