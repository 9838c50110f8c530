//! Surrogate keys: an index from tag to the cache keys of objects carrying
//! it, so a purge by tag costs time proportional to the tagged objects, not
//! to the cache size.
//!
//! The index is exact: under each tag, each cache key counts the stored
//! objects (Vary variants) of that key carrying the tag. The store adds an
//! object's tags when it stores it and takes them away when the object
//! leaves, whichever way (replaced, dropped as an excess or expired
//! variant, purged, evicted, expired); a tag goes when its last object does.
//! The memory this takes is charged to each object's weight
//! (`CachedObject::weight`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::key::CacheKey;

const SHARDS: usize = 16;

/// One shard: tag → cache key → objects of that key carrying the tag.
type Shard = HashMap<Box<str>, HashMap<CacheKey, u32>>;

/// Tag → keys, sharded by tag to spread lock contention.
pub struct TagIndex {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for TagIndex {
    fn default() -> Self {
        TagIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl TagIndex {
    fn shard(&self, tag: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(tag) as usize) % SHARDS]
    }

    /// Records one more object under `key` tagged `tag`.
    pub fn add(&self, tag: &str, key: &CacheKey) {
        let mut map = self.shard(tag).lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(tag) {
            Some(keys) => *keys.entry(key.clone()).or_insert(0) += 1,
            None => {
                map.insert(tag.into(), HashMap::from([(key.clone(), 1)]));
            }
        }
    }

    /// Records one object fewer under `key` tagged `tag`; forgets the key
    /// (and the tag) when none is left.
    pub fn remove(&self, tag: &str, key: &CacheKey) {
        let mut map = self.shard(tag).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(keys) = map.get_mut(tag) {
            if let Some(count) = keys.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    keys.remove(key);
                }
            }
            if keys.is_empty() {
                map.remove(tag);
            }
        }
    }

    /// The keys recorded under `tag`.
    pub fn keys(&self, tag: &str) -> Vec<CacheKey> {
        let map = self.shard(tag).lock().unwrap_or_else(|p| p.into_inner());
        map.get(tag)
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of distinct tags indexed.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// True when no tag is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Splits a surrogate key header value into its keys (space-separated).
pub fn parse_keys(value: &str) -> impl Iterator<Item = &str> {
    value.split_ascii_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_keys() {
        let idx = TagIndex::default();
        let a = CacheKey::for_request("h", "/a");
        let b = CacheKey::for_request("h", "/b");
        idx.add("red", &a);
        idx.add("red", &b);
        idx.add("blue", &a);
        // Two variants of `a` tagged red.
        idx.add("red", &a);
        assert_eq!(idx.keys("red").len(), 2);
        idx.remove("red", &a);
        assert_eq!(idx.keys("red").len(), 2, "one variant of a is left");
        idx.remove("red", &a);
        assert_eq!(idx.keys("red"), vec![b.clone()]);
        idx.remove("red", &b);
        assert!(idx.keys("red").is_empty());
        assert_eq!(idx.len(), 1);
        assert_eq!(
            parse_keys(" k1  k2\tk3 ").collect::<Vec<_>>(),
            ["k1", "k2", "k3"]
        );
    }
}
