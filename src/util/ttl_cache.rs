//! A small concurrent map whose entries expire after a fixed time (the access layer's and the
//! pull gate's caches).

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Entries live at most `ttl`; when the map grows past `capacity` it is emptied (callers then
/// reload), so attacker-chosen keys cannot grow it without bound.
pub struct TtlCache<K, V> {
    entries: DashMap<K, (Instant, V)>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            entries: DashMap::new(),
            ttl,
            capacity,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entry = self.entries.get(key)?;
        (entry.0.elapsed() < self.ttl).then(|| entry.1.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        self.entries.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    pub fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.insert(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        cache.insert(2, "b");
        cache.insert(3, "c");
        assert_eq!(
            cache.get(&1),
            None,
            "a full cache is emptied before inserting"
        );
        assert_eq!(cache.get(&3), Some("c"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&3), None, "entries expire after the ttl");
    }
}
