//! One named CRDT held by a replicator: its state, its numbered local changes, and the
//! subscribers of its value.

use std::any::Any;
use std::collections::VecDeque;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::crdt::Crdt;
use crate::error::ReplicatorError;
use crate::replicator::wire::Payload;

/// A CRDT the replicator can put on the wire: it and its delta are serde types.
///
/// Implemented for every [`Crdt`] whose state and delta are `Serialize` and
/// `DeserializeOwned` (all types of this crate with owned element types).
///
/// ```
/// fn replicable<C: granary_crdt::Replicated>() {}
/// replicable::<granary_crdt::ORSet<String>>();
/// ```
pub trait Replicated:
    Crdt<Delta: Serialize + DeserializeOwned> + Serialize + DeserializeOwned
{
}

impl<C> Replicated for C
where
    C: Crdt + Serialize + DeserializeOwned,
    C::Delta: Serialize + DeserializeOwned,
{
}

/// A named CRDT with its type erased, as the replicator's task sees it.
pub(crate) trait ErasedEntry: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn type_name(&self) -> &'static str;
    /// Numbers the local changes made since the last call; true if there were any.
    fn seal(&mut self) -> bool;
    /// The number of the last sealed local change.
    fn seq(&self) -> u64;
    /// What to send a peer that holds changes up to `acked`: the joined deltas after it,
    /// or the full state when the buffer no longer reaches back that far or `full` is
    /// asked for. `None` when the peer has everything.
    fn outgoing(&self, acked: u64, full: bool) -> Result<Option<Payload>, ReplicatorError>;
    /// Merges a received delta or state.
    fn apply(&mut self, payload: &Payload) -> Result<(), ReplicatorError>;
    /// The whole state, encoded.
    fn encode_state(&self) -> Result<Vec<u8>, ReplicatorError>;
    /// When the state last changed (local update or merge).
    fn last_change(&self) -> Instant;
    /// True while local changes wait for the next round.
    fn has_unsealed(&self) -> bool;
    /// True when nothing was changed or merged since the entry was made or reset.
    fn is_blank(&self) -> bool;
    /// Forgets the state (a node that no longer holds the CRDT, after handing it over);
    /// the numbered local changes stay, since peers' acknowledgements refer to them.
    fn reset_state(&mut self);
}

/// A digest of an encoded state (FNV-1a, 64 bit): equal on every node and build for
/// equal states, since the encodings of equal states are equal (ordered maps and sets).
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A named CRDT of type `C`.
pub(crate) struct Entry<C: Replicated> {
    pub(crate) state: C,
    /// Local changes not numbered yet (joined).
    unsealed: Option<C::Delta>,
    seq: u64,
    /// Numbered local changes, oldest first, at most `buffer` of them.
    log: VecDeque<(u64, C::Delta)>,
    buffer: usize,
    value: watch::Sender<C::Value>,
    last_change: Instant,
    blank: bool,
}

impl<C: Replicated> Entry<C> {
    pub(crate) fn new(buffer: usize) -> Self {
        let state = C::default();
        let (value, _) = watch::channel(state.value());
        Self {
            state,
            unsealed: None,
            seq: 0,
            log: VecDeque::new(),
            buffer: buffer.max(1),
            value,
            last_change: Instant::now(),
            blank: true,
        }
    }

    /// Applies a local mutation and keeps its delta for the peers.
    pub(crate) fn mutate(&mut self, mutate: impl FnOnce(&mut C) -> C::Delta) {
        let delta = mutate(&mut self.state);
        match &mut self.unsealed {
            Some(unsealed) => C::join_deltas(unsealed, &delta),
            None => self.unsealed = Some(delta),
        }
        self.last_change = Instant::now();
        self.blank = false;
        self.publish();
    }

    /// A receiver of the value, current now and updated on every change.
    pub(crate) fn subscribe(&mut self) -> watch::Receiver<C::Value> {
        // The sender skips work while nobody listens, so refresh before handing out.
        self.value.send_replace(self.state.value());
        self.value.subscribe()
    }

    /// Tells subscribers, if any, about the current value (when it changed).
    fn publish(&self) {
        if self.value.receiver_count() == 0 {
            return;
        }
        let now = self.state.value();
        self.value.send_if_modified(|old| {
            if *old == now {
                false
            } else {
                *old = now;
                true
            }
        });
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ReplicatorError> {
    postcard::to_stdvec(value).map_err(|e| ReplicatorError::Encode(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ReplicatorError> {
    postcard::from_bytes(bytes).map_err(|e| ReplicatorError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

impl<C: Replicated> ErasedEntry for Entry<C> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<C>()
    }

    fn seal(&mut self) -> bool {
        let Some(delta) = self.unsealed.take() else {
            return false;
        };
        self.seq += 1;
        self.log.push_back((self.seq, delta));
        while self.log.len() > self.buffer {
            self.log.pop_front();
        }
        true
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn outgoing(&self, acked: u64, full: bool) -> Result<Option<Payload>, ReplicatorError> {
        if acked >= self.seq {
            return Ok(None);
        }
        let reaches_back = self
            .log
            .front()
            .is_some_and(|(first, _)| *first <= acked + 1);
        if full || !reaches_back {
            return Ok(Some(Payload::Full(encode(&self.state)?)));
        }
        let mut joined = C::Delta::default();
        for (_, delta) in self.log.iter().filter(|(seq, _)| *seq > acked) {
            C::join_deltas(&mut joined, delta);
        }
        Ok(Some(Payload::Delta(encode(&joined)?)))
    }

    fn apply(&mut self, payload: &Payload) -> Result<(), ReplicatorError> {
        match payload {
            Payload::Delta(bytes) => self.state.merge_delta(&decode::<C::Delta>(bytes)?),
            Payload::Full(bytes) => self.state.merge(&decode::<C>(bytes)?),
        }
        self.last_change = Instant::now();
        self.blank = false;
        self.publish();
        Ok(())
    }

    fn encode_state(&self) -> Result<Vec<u8>, ReplicatorError> {
        encode(&self.state)
    }

    fn last_change(&self) -> Instant {
        self.last_change
    }

    fn has_unsealed(&self) -> bool {
        self.unsealed.is_some()
    }

    fn is_blank(&self) -> bool {
        self.blank
    }

    fn reset_state(&mut self) {
        self.state = C::default();
        self.blank = true;
        self.last_change = Instant::now();
        self.publish();
    }
}
