//! A small process-wide cache of compiled things (parsed JSONPaths,
//! compiled regexes) keyed by their source text, shared by every thread.
//! Expectations are written by people, so the set of distinct keys is small;
//! the cache is bounded anyway and simply starts over when it is full.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// A bounded map from source text to a shared compiled value.
pub(crate) struct Cache<V> {
    map: OnceLock<RwLock<HashMap<String, Arc<V>>>>,
    capacity: usize,
}

impl<V> Cache<V> {
    /// An empty cache holding at most `capacity` entries.
    pub(crate) const fn new(capacity: usize) -> Self {
        Cache {
            map: OnceLock::new(),
            capacity,
        }
    }

    /// The value for `key`, made by `make` (outside any lock) on a miss.
    /// Errors are not cached.
    pub(crate) fn get_or_try_insert<E>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let lock = self.map.get_or_init(|| RwLock::new(HashMap::new()));
        if let Some(hit) = lock.read().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Ok(Arc::clone(hit));
        }
        let made = Arc::new(make()?);
        let mut map = lock.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
        }
        Ok(Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::clone(&made)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_once_and_shares() {
        let cache: Cache<String> = Cache::new(4);
        let a = cache
            .get_or_try_insert("k", || Ok::<_, ()>("v".to_owned()))
            .unwrap();
        let b = cache
            .get_or_try_insert("k", || -> Result<String, ()> { panic!("not called") })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn errors_are_not_cached() {
        let cache: Cache<u32> = Cache::new(4);
        assert_eq!(cache.get_or_try_insert("k", || Err("bad")), Err("bad"));
        assert_eq!(
            *cache.get_or_try_insert("k", || Ok::<_, &str>(7)).unwrap(),
            7
        );
    }

    #[test]
    fn starts_over_when_full() {
        let cache: Cache<usize> = Cache::new(2);
        for i in 0..5 {
            let v = cache
                .get_or_try_insert(&i.to_string(), || Ok::<_, ()>(i))
                .unwrap();
            assert_eq!(*v, i);
        }
        let len = cache.map.get().unwrap().read().unwrap().len();
        assert!(len <= 2, "{len} entries");
    }
}
