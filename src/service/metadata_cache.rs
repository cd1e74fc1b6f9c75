//! In-process caches of hot metadata (repository ids, manifests by tag and digest, blob rows,
//! tag lists) for a single node. Every entry records the generation of its repository and a
//! global epoch when it was read; a write bumps the repository's generation, so an entry filled
//! from a read that raced with a write is never served, and invalidation needs no scan.
//!
//! With several replicas (PostgreSQL) the cache is off: a change acknowledged by one replica must
//! be what every other replica serves at once, and a notification channel (LISTEN/NOTIFY) always
//! lags the commit by a little; the database answers those reads instead.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::meta::{BlobRow, ManifestRow};

/// Entries kept per map before the map is cleared (a crude but allocation-free bound).
const MAX_ENTRIES: usize = 100_000;

struct Entry<V> {
    value: V,
    generation: u64,
    epoch: u64,
}

/// A snapshot of the validity counters taken before reading the database.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    generation: u64,
    epoch: u64,
}

/// The caches and their invalidation counters.
pub struct MetaCache {
    enabled: bool,
    epoch: AtomicU64,
    generations: DashMap<i64, u64>,
    repositories: DashMap<String, Entry<i64>>,
    tags: DashMap<(i64, String), Entry<Arc<ManifestRow>>>,
    manifests: DashMap<(i64, String), Entry<Arc<ManifestRow>>>,
    blobs: DashMap<(i64, String), Entry<BlobRow>>,
    tag_lists: DashMap<i64, Entry<Arc<Vec<String>>>>,
}

impl MetaCache {
    /// A cache that serves (single node) or stays empty (several replicas).
    pub fn new(enabled: bool) -> Self {
        MetaCache {
            enabled,
            epoch: AtomicU64::new(0),
            generations: DashMap::new(),
            repositories: DashMap::new(),
            tags: DashMap::new(),
            manifests: DashMap::new(),
            blobs: DashMap::new(),
            tag_lists: DashMap::new(),
        }
    }

    fn generation(&self, repo: i64) -> u64 {
        self.generations.get(&repo).map(|g| *g).unwrap_or(0)
    }

    /// Counters to pass to `put_*` after reading `repo`'s rows from the database.
    pub fn stamp(&self, repo: i64) -> Stamp {
        Stamp {
            epoch: self.epoch.load(Ordering::Acquire),
            generation: self.generation(repo),
        }
    }

    fn valid<V>(&self, repo: i64, e: &Entry<V>) -> bool {
        self.enabled
            && e.epoch == self.epoch.load(Ordering::Acquire)
            && e.generation == self.generation(repo)
    }

    fn get<K: Eq + Hash, V: Clone>(
        &self,
        map: &DashMap<K, Entry<V>>,
        repo: i64,
        key: &K,
    ) -> Option<V> {
        let e = map.get(key)?;
        self.valid(repo, &e).then(|| e.value.clone())
    }

    fn put<K: Eq + Hash, V>(&self, map: &DashMap<K, Entry<V>>, stamp: Stamp, key: K, value: V) {
        if !self.enabled {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                generation: stamp.generation,
                epoch: stamp.epoch,
            },
        );
    }

    pub fn repository(&self, name: &str) -> Option<i64> {
        let e = self.repositories.get(name)?;
        (self.enabled && e.epoch == self.epoch.load(Ordering::Acquire)).then_some(e.value)
    }

    pub fn put_repository(&self, stamp: Stamp, name: &str, id: i64) {
        self.put(&self.repositories, stamp, name.to_owned(), id);
    }

    pub fn tag(&self, repo: i64, tag: &str) -> Option<Arc<ManifestRow>> {
        self.get(&self.tags, repo, &(repo, tag.to_owned()))
    }

    pub fn put_tag(&self, stamp: Stamp, repo: i64, tag: &str, row: Arc<ManifestRow>) {
        self.put(&self.tags, stamp, (repo, tag.to_owned()), row);
    }

    pub fn manifest(&self, repo: i64, digest: &str) -> Option<Arc<ManifestRow>> {
        self.get(&self.manifests, repo, &(repo, digest.to_owned()))
    }

    pub fn put_manifest(&self, stamp: Stamp, repo: i64, row: Arc<ManifestRow>) {
        self.put(&self.manifests, stamp, (repo, row.digest.clone()), row);
    }

    pub fn blob(&self, repo: i64, digest: &str) -> Option<BlobRow> {
        self.get(&self.blobs, repo, &(repo, digest.to_owned()))
    }

    pub fn put_blob(&self, stamp: Stamp, repo: i64, row: BlobRow) {
        self.put(&self.blobs, stamp, (repo, row.digest.clone()), row);
    }

    /// Every tag of `repo`, sorted.
    pub fn tag_list(&self, repo: i64) -> Option<Arc<Vec<String>>> {
        self.get(&self.tag_lists, repo, &repo)
    }

    pub fn put_tag_list(&self, stamp: Stamp, repo: i64, tags: Arc<Vec<String>>) {
        self.put(&self.tag_lists, stamp, repo, tags);
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Something in `repo` changed: its cached rows are stale from now on.
    pub fn invalidate(&self, repo: i64) {
        *self.generations.entry(repo).or_insert(0) += 1;
    }

    /// Everything may be stale (a missed notification, a repository deleted).
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(digest: &str) -> Arc<ManifestRow> {
        Arc::new(ManifestRow {
            id: 1,
            digest: digest.into(),
            media_type: "m".into(),
            content: bytes::Bytes::from_static(b"{}"),
            subject_digest: None,
            depth: 0,
            artifact_type: None,
        })
    }

    #[test]
    fn a_write_between_read_and_fill_keeps_the_stale_row_out() {
        let cache = MetaCache::new(true);
        let stamp = cache.stamp(7);
        cache.invalidate(7); // another request moved the tag after our read
        cache.put_tag(stamp, 7, "latest", row("old"));
        assert!(cache.tag(7, "latest").is_none());
        let stamp = cache.stamp(7);
        cache.put_tag(stamp, 7, "latest", row("new"));
        assert_eq!(cache.tag(7, "latest").unwrap().digest, "new");
        cache.invalidate(8);
        assert!(
            cache.tag(7, "latest").is_some(),
            "other repositories are unaffected"
        );
        cache.invalidate_all();
        assert!(cache.tag(7, "latest").is_none());
    }

    #[test]
    fn disabled_cache_serves_nothing() {
        let cache = MetaCache::new(false);
        let stamp = cache.stamp(1);
        cache.put_tag(stamp, 1, "t", row("x"));
        assert!(cache.tag(1, "t").is_none());
        assert!(!cache.enabled());
    }
}
