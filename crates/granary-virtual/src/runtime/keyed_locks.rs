//! One async lock per identity, made on first use and forgotten once nobody holds or
//! waits for it: the directory orders the lookups of one identity with it, a host the
//! activations (and confirms) of one identity.

use std::hash::BuildHasher;
use std::sync::Arc;

use granary_storage::Identity;
use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use super::{shrink_if_sparse, IdentityHasher, IdentityMap};

/// Shards of the map, by a hash of the identity: every activation takes and drops a
/// lock (two on the node that owns its directory entry), and with one map the two
/// workers of a 2-core machine met on its mutex (3 % of activating an identity).
const SHARDS: usize = 16;

/// One shard: the identities of its share that are locked or waited for.
type Shard = Mutex<IdentityMap<Arc<tokio::sync::Mutex<()>>>>;

/// Async locks keyed by identity; the map holds only identities locked or waited for.
pub(crate) struct KeyedLocks {
    /// Picks an identity's shard (its own seed; each shard's map has another).
    shard_of: IdentityHasher,
    shards: Box<[Shard]>,
}

impl Default for KeyedLocks {
    fn default() -> Self {
        Self {
            shard_of: IdentityHasher::default(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// The lock of one identity, held until dropped (which forgets the lock when nobody
/// else holds or waits for it).
pub(crate) struct KeyedGuard<'a> {
    shard: &'a Shard,
    identity: &'a Identity,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for `identity`'s lock.
    ///
    /// A wait that is cancelled leaves the identity's (unlocked) lock in the map until
    /// the next guard of that identity drops: the map then forgets it.
    pub(crate) async fn lock<'a>(&'a self, identity: &'a Identity) -> KeyedGuard<'a> {
        let shard = self.shard(identity);
        let lock = shard.lock().entry(identity.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        KeyedGuard {
            shard,
            identity,
            guard: Some(guard),
        }
    }

    fn shard(&self, identity: &Identity) -> &Shard {
        let hash = self.shard_of.hash_one(identity);
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// Identities locked or waited for now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        // Unlock first: the map's own reference is then the only one unless another
        // call holds or waits for the lock (it cloned the `Arc` under the map's lock).
        drop(self.guard.take());
        let mut locks = self.shard.lock();
        if (locks.get(self.identity)).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(self.identity);
            shrink_if_sparse(&mut locks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_is_exclusive_per_identity_and_forgotten_when_free() {
        let locks = Arc::new(KeyedLocks::default());
        let a = Identity::new("k", "a");
        let b = Identity::new("k", "b");
        let held = locks.lock(&a).await;
        // Another identity is not held up.
        let other = locks.lock(&b).await;
        drop(other);
        assert_eq!(locks.len(), 1, "b's lock is forgotten once free");
        // The same identity waits until the first guard drops.
        let waiter = {
            let locks = locks.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let _second = locks.lock(&a).await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a second lock of `a` waits");
        drop(held);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0, "nothing is kept once nobody holds or waits");
    }

    #[tokio::test]
    async fn a_waiter_keeps_the_lock_in_the_map_when_the_holder_drops() {
        let locks = Arc::new(KeyedLocks::default());
        let a = Identity::new("k", "a");
        let held = locks.lock(&a).await;
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (leave_tx, leave_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = {
            let locks = locks.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let _second = locks.lock(&a).await;
                entered_tx.send(()).unwrap();
                leave_rx.await.unwrap();
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        entered_rx.await.unwrap();
        // The waiter now holds the lock: a third caller must wait behind it, so the
        // lock the waiter holds must still be the map's.
        assert_eq!(locks.len(), 1);
        let third = {
            let locks = locks.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let _third = locks.lock(&a).await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "the third waits for the waiter");
        leave_tx.send(()).unwrap();
        waiter.await.unwrap();
        third.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}
