//! The typed handle on one named CRDT.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::entry::{decode, Entry, ErasedEntry};
use super::wire::{FrameBody, Payload};
use super::{Consistency, PendingRead, Replicas, Replicated, Shared};
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
    ///
    /// Fails with [`ReplicatorError::NotHolder`] on a node that does not hold the CRDT
    /// (see [`Replicator::crdt_with_replicas`](crate::Replicator::crdt_with_replicas)):
    /// a mutation needs the state, which only holders keep; use
    /// [`update_with`](Self::update_with) there.
    pub fn update(
        &self,
        mutate: impl FnOnce(&mut C, ReplicaId) -> C::Delta,
    ) -> Result<(), ReplicatorError> {
        let replica = self.shared.replica;
        if !self.held_here()? {
            return Err(ReplicatorError::NotHolder {
                name: self.name.clone(),
            });
        }
        self.with_entry(|entry| entry.mutate(|state| mutate(state, replica)))
    }

    /// Whether this node held the CRDT at the last push round (cheap: no look at the
    /// membership; every CRDT held by all members is held here).
    fn held_here(&self) -> Result<bool, ReplicatorError> {
        let core = self.shared.core.lock();
        if core.stopped {
            return Err(ReplicatorError::Stopped);
        }
        Ok(core.placements.get(&self.name).is_none_or(|p| p.holding))
    }

    /// Applies `mutate`, pushes it to the replicas at once and waits until as many of
    /// them as `consistency` asks for hold it.
    ///
    /// On a holder the change applies locally first. On a node that does not hold the
    /// CRDT it is routed to the holders: the state is read from as many holders as
    /// `consistency` needs (one for `Local`), the change is applied to it and sent to
    /// every holder, and the call returns once as many holders acknowledged it (the
    /// node drops the state again when every holder has). On
    /// [`ReplicatorError::Timeout`] the change is still applied and keeps spreading.
    pub async fn update_with(
        &self,
        consistency: Consistency,
        mutate: impl FnOnce(&mut C, ReplicaId) -> C::Delta,
    ) -> Result<(), ReplicatorError> {
        let replica = self.shared.replica;
        let replicas = self.replicas()?;
        let states = if replicas.here {
            Vec::new()
        } else {
            self.gather(&replicas, consistency).await?
        };
        let seq = self.with_entry(|entry| -> Result<u64, ReplicatorError> {
            for bytes in states {
                ErasedEntry::apply(entry, &Payload::Full(bytes))?;
            }
            entry.mutate(|state| mutate(state, replica));
            ErasedEntry::seal(entry);
            Ok(ErasedEntry::seq(entry))
        })??;
        if consistency == Consistency::Local && replicas.here {
            return Ok(());
        }
        let mut acks = self.shared.acks.subscribe();
        self.shared.flush(Some(&self.name));
        let deadline = tokio::time::Instant::now() + self.timeout(consistency, &replicas);
        loop {
            let (needed, reached) = {
                let mut core = self.shared.core.lock();
                if core.stopped {
                    return Err(ReplicatorError::Stopped);
                }
                let replicas = self.shared.replicas_of(&mut core, &self.name);
                let holding = replicas
                    .peers
                    .iter()
                    .filter(|addr| {
                        core.peers
                            .get(*addr)
                            .is_some_and(|p| p.acked(&self.name) >= seq)
                    })
                    .count();
                (
                    replicas.needed(consistency),
                    holding + usize::from(replicas.here),
                )
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
                        after: self.timeout(consistency, &replicas),
                    })
                }
            }
        }
    }

    /// The local value, at once. On a node that does not hold the CRDT this is only
    /// what it still keeps of its own recent updates (usually the empty value): use
    /// [`read`](Self::read) there.
    pub fn value(&self) -> Result<C::Value, ReplicatorError> {
        self.with_entry(|entry| crate::Crdt::value(&entry.state))
    }

    /// Runs `f` on the local state (no copy of the value is made); on a node that does
    /// not hold the CRDT, see [`value`](Self::value).
    pub fn with_state<R>(&self, f: impl FnOnce(&C) -> R) -> Result<R, ReplicatorError> {
        self.with_entry(|entry| f(&entry.state))
    }

    /// True when this node holds the CRDT (always, unless it was opened with a
    /// replication factor that leaves this node out).
    pub fn is_holder(&self) -> Result<bool, ReplicatorError> {
        Ok(self.replicas()?.here)
    }

    /// The members holding the CRDT as this node sees them now: `None` when every
    /// member holds it; otherwise the ring's preference list for its name.
    pub fn holders(&self) -> Result<Option<Vec<SocketAddr>>, ReplicatorError> {
        let mut core = self.shared.core.lock();
        if core.stopped {
            return Err(ReplicatorError::Stopped);
        }
        let replicas = self.shared.replicas_of(&mut core, &self.name);
        Ok(core.placements.get(&self.name).map(|_| {
            let mut all = replicas.peers;
            if replicas.here {
                all.push(self.shared.me);
            }
            all.sort();
            all
        }))
    }

    /// Reads the value: at `Local` the local one; at `Majority` or `All` after merging
    /// the states of enough replicas into the local one. On a node that does not hold
    /// the CRDT, the value merged from as many holders as `consistency` needs (one for
    /// `Local`, waiting up to four times `retransmit_after`).
    pub async fn read(&self, consistency: Consistency) -> Result<C::Value, ReplicatorError> {
        if consistency == Consistency::Local && self.held_here()? {
            return self.value();
        }
        let replicas = self.replicas()?;
        if replicas.here {
            if consistency == Consistency::Local || replicas.needed(consistency) <= 1 {
                return self.value();
            }
            self.gather(&replicas, consistency).await?;
            return self.value();
        }
        let mut merged = C::default();
        for bytes in self.gather(&replicas, consistency).await? {
            crate::Crdt::merge(&mut merged, &decode::<C>(&bytes)?);
        }
        Ok(crate::Crdt::value(&merged))
    }

    /// A receiver of the value: current now, and changed after every local update or
    /// merge that changes it. (Each change computes the value once while anyone
    /// listens.)
    pub fn subscribe(&self) -> Result<watch::Receiver<C::Value>, ReplicatorError> {
        self.with_entry(|entry| entry.subscribe())
    }

    fn replicas(&self) -> Result<Replicas, ReplicatorError> {
        let mut core = self.shared.core.lock();
        if core.stopped {
            return Err(ReplicatorError::Stopped);
        }
        Ok(self.shared.replicas_of(&mut core, &self.name))
    }

    /// How long `consistency` may wait; `Local` on a non-holder waits for one holder.
    fn timeout(&self, consistency: Consistency, replicas: &Replicas) -> Duration {
        match consistency {
            Consistency::Local if !replicas.here => self.shared.config.retransmit_after * 4,
            other => other.timeout(),
        }
    }

    /// Asks the replicas for their states until as many as `consistency` needs have
    /// answered (this node counting as one when it holds the CRDT). A holder merges
    /// the answers into its entry and gets nothing back; a non-holder gets the states.
    async fn gather(
        &self,
        replicas: &Replicas,
        consistency: Consistency,
    ) -> Result<Vec<Vec<u8>>, ReplicatorError> {
        let needed = replicas.needed(consistency);
        let timeout = self.timeout(consistency, replicas);
        let (id, mut done) = {
            let mut core = self.shared.core.lock();
            if core.stopped {
                return Err(ReplicatorError::Stopped);
            }
            core.next_read += 1;
            let id = core.next_read;
            let (tx, rx) = oneshot::channel();
            core.reads.insert(
                id,
                PendingRead {
                    key: self.name.clone(),
                    needed,
                    counts_self: replicas.here,
                    answered: Default::default(),
                    states: (!replicas.here).then(Vec::new),
                    done: Some(tx),
                },
            );
            (id, rx)
        };
        let request = FrameBody::Read {
            id,
            key: self.name.clone(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut unanswered = replicas.peers.clone();
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
        let read = self.shared.core.lock().reads.remove(&id);
        let answered = read.as_ref().map_or(0, |r| r.answered.len());
        match outcome {
            Ok(Ok(())) => Ok(read.and_then(|r| r.states).unwrap_or_default()),
            Ok(Err(_)) => Err(ReplicatorError::Stopped),
            Err(()) => Err(ReplicatorError::Timeout {
                needed,
                reached: answered + usize::from(replicas.here),
                after: timeout,
            }),
        }
    }
}
