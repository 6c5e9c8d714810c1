//! The typed handle on one named CRDT.

use std::marker::PhantomData;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::entry::Entry;
use super::wire::FrameBody;
use super::{Consistency, PendingRead, Replicated, Shared};
use crate::error::ReplicatorError;
use crate::replica::ReplicaId;

/// A typed handle on one named CRDT of a [`Replicator`](crate::Replicator); cheap to
/// clone.
///
/// ```no_run
/// // no_run: needs a running replicator; see Replicator's example.
/// # async fn demo(replicator: granary_crdt::Replicator) -> Result<(), granary_crdt::ReplicatorError> {
/// use std::time::Duration;
/// use granary_crdt::{Consistency, GCounter};
/// let clicks = replicator.crdt::<GCounter>("clicks")?;
/// clicks.update(|c, me| c.increment(me, 1))?;
/// clicks
///     .update_with(Consistency::Majority(Duration::from_secs(1)), |c, me| c.increment(me, 1))
///     .await?;
/// assert!(clicks.value()? >= 2);
/// # Ok(()) }
/// ```
pub struct CrdtHandle<C> {
    shared: Arc<Shared>,
    name: String,
    _type: PhantomData<fn() -> C>,
}

impl<C> Clone for CrdtHandle<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

impl<C> std::fmt::Debug for CrdtHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdtHandle")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<C>())
            .finish()
    }
}

impl<C: Replicated> CrdtHandle<C> {
    pub(crate) fn new(shared: Arc<Shared>, name: String) -> Self {
        Self {
            shared,
            name,
            _type: PhantomData,
        }
    }

    /// The CRDT's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on the local entry under the replicator's lock.
    fn with_entry<R>(&self, f: impl FnOnce(&mut Entry<C>) -> R) -> Result<R, ReplicatorError> {
        let mut core = self.shared.core.lock();
        if core.stopped {
            return Err(ReplicatorError::Stopped);
        }
        let entry = core
            .entries
            .get_mut(&self.name)
            .and_then(|e| e.as_any_mut().downcast_mut::<Entry<C>>())
            .ok_or(ReplicatorError::Stopped)?;
        Ok(f(entry))
    }

    /// Applies `mutate` (given the state and this node's replica id; it returns the
    /// mutation's delta) locally; the change reaches peers with the next push round.
    pub fn update(
        &self,
        mutate: impl FnOnce(&mut C, ReplicaId) -> C::Delta,
    ) -> Result<(), ReplicatorError> {
        let replica = self.shared.replica;
        self.with_entry(|entry| entry.mutate(|state| mutate(state, replica)))
    }

    /// Applies `mutate` locally, pushes it to every peer at once and waits until as many
    /// replicas as `consistency` asks for hold it.
    ///
    /// On [`ReplicatorError::Timeout`] the change is still applied here and keeps
    /// spreading.
    pub async fn update_with(
        &self,
        consistency: Consistency,
        mutate: impl FnOnce(&mut C, ReplicaId) -> C::Delta,
    ) -> Result<(), ReplicatorError> {
        let replica = self.shared.replica;
        let seq = self.with_entry(|entry| {
            entry.mutate(|state| mutate(state, replica));
            super::entry::ErasedEntry::seal(entry);
            super::entry::ErasedEntry::seq(entry)
        })?;
        if consistency == Consistency::Local {
            return Ok(());
        }
        let mut acks = self.shared.acks.subscribe();
        self.shared.flush(Some(&self.name));
        let deadline = tokio::time::Instant::now() + consistency.timeout();
        loop {
            let (needed, reached) = {
                let mut core = self.shared.core.lock();
                if core.stopped {
                    return Err(ReplicatorError::Stopped);
                }
                self.shared.refresh_peers(&mut core);
                let holding = core
                    .peers
                    .values()
                    .filter(|p| p.acked(&self.name) >= seq)
                    .count();
                (consistency.needed(core.peers.len() + 1), holding + 1)
            };
            if reached >= needed {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, acks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ReplicatorError::Stopped),
                Err(_) => {
                    return Err(ReplicatorError::Timeout {
                        needed,
                        reached,
                        after: consistency.timeout(),
                    })
                }
            }
        }
    }

    /// The local value, at once.
    pub fn value(&self) -> Result<C::Value, ReplicatorError> {
        self.with_entry(|entry| crate::Crdt::value(&entry.state))
    }

    /// Runs `f` on the local state (no copy of the value is made).
    pub fn with_state<R>(&self, f: impl FnOnce(&C) -> R) -> Result<R, ReplicatorError> {
        self.with_entry(|entry| f(&entry.state))
    }

    /// Reads the value: at `Local` the local one; at `Majority` or `All` after merging
    /// the states of enough peers into the local one.
    pub async fn read(&self, consistency: Consistency) -> Result<C::Value, ReplicatorError> {
        if consistency == Consistency::Local {
            return self.value();
        }
        let (id, needed, peers, mut done) = {
            let mut core = self.shared.core.lock();
            if core.stopped {
                return Err(ReplicatorError::Stopped);
            }
            self.shared.refresh_peers(&mut core);
            let peers: Vec<_> = core.peers.keys().copied().collect();
            let needed = consistency.needed(peers.len() + 1);
            if needed <= 1 {
                drop(core);
                return self.value();
            }
            core.next_read += 1;
            let id = core.next_read;
            let (tx, rx) = oneshot::channel();
            core.reads.insert(
                id,
                PendingRead {
                    key: self.name.clone(),
                    needed,
                    answered: Default::default(),
                    done: Some(tx),
                },
            );
            (id, needed, peers, rx)
        };
        let request = FrameBody::Read {
            id,
            key: self.name.clone(),
        };
        let deadline = tokio::time::Instant::now() + consistency.timeout();
        let mut unanswered = peers;
        let outcome = loop {
            // Ask whoever has not answered yet; ask again after `retransmit_after`,
            // since a request or its answer may be lost.
            self.shared.send_all(&unanswered, &request);
            let retry_at = tokio::time::Instant::now() + self.shared.config.retransmit_after;
            match tokio::time::timeout_at(retry_at.min(deadline), &mut done).await {
                Ok(answer) => break Ok(answer),
                Err(_) if retry_at >= deadline => break Err(()),
                Err(_) => {
                    let core = self.shared.core.lock();
                    if let Some(read) = core.reads.get(&id) {
                        unanswered.retain(|addr| !read.answered.contains(addr));
                    }
                }
            }
        };
        let answered = self
            .shared
            .core
            .lock()
            .reads
            .remove(&id)
            .map_or(0, |r| r.answered.len());
        match outcome {
            Ok(Ok(())) => self.value(),
            Ok(Err(_)) => Err(ReplicatorError::Stopped),
            Err(()) => Err(ReplicatorError::Timeout {
                needed,
                reached: answered + 1,
                after: consistency.timeout(),
            }),
        }
    }

    /// A receiver of the value: current now, and changed after every local update or
    /// merge that changes it. (Each change computes the value once while anyone
    /// listens.)
    pub fn subscribe(&self) -> Result<watch::Receiver<C::Value>, ReplicatorError> {
        self.with_entry(|entry| entry.subscribe())
    }
}
