//! The location cache: where identities were last found, bounded in size and least
//! recently used first out.

use std::net::SocketAddr;

use granary_storage::Identity;
use hashlink::LinkedHashMap;
use parking_lot::Mutex;

use super::{IdentityHasher, SHRINK_FROM};
use crate::protocol::Location;

/// Identity → last known location, at most `capacity` entries (the least recently
/// used one goes first). Forgets an identity when its local activation ends, and
/// every location on a host that left; a capacity of 0 caches nothing.
pub(crate) struct LocationCache {
    capacity: usize,
    entries: Mutex<LinkedHashMap<Identity, Location, IdentityHasher>>,
}

impl LocationCache {
    /// An empty cache holding at most `capacity` locations.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(LinkedHashMap::default()),
        }
    }

    /// The cached location of `identity` (now the most recently used).
    pub(crate) fn get(&self, identity: &Identity) -> Option<Location> {
        let mut entries = self.entries.lock();
        let loc = entries.get(identity).cloned()?;
        entries.to_back(identity);
        Some(loc)
    }

    /// Caches `loc` for `identity`, evicting the least recently used beyond the
    /// capacity.
    pub(crate) fn insert(&self, identity: Identity, loc: Location) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock();
        entries.insert(identity, loc);
        while entries.len() > self.capacity {
            entries.pop_front();
        }
    }

    /// Forgets `identity`.
    pub(crate) fn remove(&self, identity: &Identity) {
        let mut entries = self.entries.lock();
        entries.remove(identity);
        shrink_if_sparse(&mut entries);
    }

    /// Forgets `identity` if it is cached at `at` (its activation there ended).
    pub(crate) fn forget_at(&self, identity: &Identity, at: &Location) {
        let mut entries = self.entries.lock();
        if entries.get(identity) == Some(at) {
            entries.remove(identity);
            shrink_if_sparse(&mut entries);
        }
    }

    /// Forgets every location on a host `alive` rejects.
    pub(crate) fn retain_hosts(&self, alive: impl Fn(&SocketAddr) -> bool) {
        let mut entries = self.entries.lock();
        entries.retain(|_, loc| alive(&loc.host));
        shrink_if_sparse(&mut entries);
    }

    /// Cached locations.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

/// Gives a mostly empty table's memory back (removed entries' nodes are otherwise
/// kept for reuse).
fn shrink_if_sparse(entries: &mut LinkedHashMap<Identity, Location, IdentityHasher>) {
    if entries.capacity() >= SHRINK_FROM && entries.len() * 4 < entries.capacity() {
        entries.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: &str) -> Identity {
        Identity::new("k", key)
    }

    fn at(port: u16, name: &str) -> Location {
        Location {
            host: SocketAddr::from(([127, 0, 0, 1], port)),
            name: name.into(),
        }
    }

    #[test]
    fn the_least_recently_used_goes_first_beyond_the_capacity() {
        let cache = LocationCache::new(2);
        cache.insert(id("a"), at(1, "a"));
        cache.insert(id("b"), at(1, "b"));
        assert!(cache.get(&id("a")).is_some(), "a is now the most recent");
        cache.insert(id("c"), at(1, "c"));
        assert_eq!(cache.len(), 2);
        assert!(
            cache.get(&id("b")).is_none(),
            "b was the least recently used"
        );
        assert!(cache.get(&id("a")).is_some());
        assert!(cache.get(&id("c")).is_some());
    }

    #[test]
    fn an_ended_activation_is_forgotten_but_not_its_successor() {
        let cache = LocationCache::new(10);
        cache.insert(id("a"), at(1, "a#1"));
        cache.forget_at(&id("a"), &at(1, "a#0"));
        assert!(cache.get(&id("a")).is_some(), "another activation's end");
        cache.forget_at(&id("a"), &at(1, "a#1"));
        assert!(cache.get(&id("a")).is_none());
    }

    #[test]
    fn locations_on_a_departed_host_are_forgotten() {
        let cache = LocationCache::new(10);
        cache.insert(id("a"), at(1, "a"));
        cache.insert(id("b"), at(2, "b"));
        cache.retain_hosts(|h| h.port() != 1);
        assert!(cache.get(&id("a")).is_none());
        assert!(cache.get(&id("b")).is_some());
    }

    #[test]
    fn a_zero_capacity_caches_nothing() {
        let cache = LocationCache::new(0);
        cache.insert(id("a"), at(1, "a"));
        assert_eq!(cache.len(), 0);
    }
}
