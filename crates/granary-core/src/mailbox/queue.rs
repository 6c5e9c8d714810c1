//! The user-message queue: FIFO, or ranked by [`Priority`] for priority mailboxes.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::actor::{Actor, Priority};
use crate::envelope::Env;

/// The messages the actor has taken from its mailbox and not yet handled.
///
/// A lone message (the usual case for an idle actor) travels in `single`, so
/// neither side allocates a queue buffer for it.
pub(crate) struct Batch<A: Actor> {
    single: Option<Env<A>>,
    many: VecDeque<Env<A>>,
}

impl<A: Actor> Batch<A> {
    pub(crate) fn new() -> Self {
        Self {
            single: None,
            many: VecDeque::new(),
        }
    }

    /// The next message, in arrival (or rank) order.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Env<A>> {
        match self.single.take() {
            Some(env) => Some(env),
            None => self.many.pop_front(),
        }
    }

    /// Messages in the batch.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.single.is_some()) + self.many.len()
    }

    /// Everything left, in order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Env<A>> + '_ {
        self.single.take().into_iter().chain(self.many.drain(..))
    }
}

/// User messages waiting for the actor.
pub(crate) enum UserQueue<A: Actor> {
    /// Arrival order: `first` is the oldest (`None` only when `rest` is empty
    /// too); the actor takes everything in one go, `rest` by swapping buffers.
    Fifo {
        first: Option<Env<A>>,
        rest: VecDeque<Env<A>>,
    },
    /// Highest rank first, arrival order among equals; taken one at a time so a
    /// later, higher-ranked message can overtake the rest.
    Priority(Box<RankedQueue<A>>),
}

impl<A: Actor> UserQueue<A> {
    pub(crate) fn new(priority: bool) -> Self {
        if priority {
            UserQueue::Priority(Box::new(RankedQueue {
                heap: BinaryHeap::new(),
                seq: 0,
            }))
        } else {
            UserQueue::Fifo {
                first: None,
                rest: VecDeque::new(),
            }
        }
    }

    pub(crate) fn push(&mut self, env: Env<A>) {
        match self {
            UserQueue::Fifo { first, rest } => {
                if first.is_none() {
                    *first = Some(env);
                } else {
                    rest.push_back(env);
                }
            }
            UserQueue::Priority(q) => {
                let priority = env.priority();
                q.seq += 1;
                let seq = q.seq;
                q.heap.push(Ranked { priority, seq, env });
            }
        }
    }

    /// Moves the next messages into `batch` (which is empty); false if none.
    pub(crate) fn take_into(&mut self, batch: &mut Batch<A>) -> bool {
        match self {
            UserQueue::Fifo { first, rest } => {
                let Some(env) = first.take() else {
                    return false;
                };
                batch.single = Some(env);
                if !rest.is_empty() {
                    // The buffers trade places: no allocation in steady state.
                    std::mem::swap(rest, &mut batch.many);
                }
                true
            }
            UserQueue::Priority(q) => match q.heap.pop() {
                Some(ranked) => {
                    batch.single = Some(ranked.env);
                    true
                }
                None => false,
            },
        }
    }

    /// Whether no message waits.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            UserQueue::Fifo { first, .. } => first.is_none(),
            UserQueue::Priority(q) => q.heap.is_empty(),
        }
    }

    /// Empties the queue, in the order the actor would have served it.
    pub(crate) fn drain_all(&mut self) -> Vec<Env<A>> {
        match self {
            UserQueue::Fifo { first, rest } => first
                .take()
                .into_iter()
                .chain(std::mem::take(rest))
                .collect(),
            UserQueue::Priority(q) => {
                let mut out = Vec::with_capacity(q.heap.len());
                while let Some(r) = q.heap.pop() {
                    out.push(r.env);
                }
                out
            }
        }
    }
}

pub(crate) struct RankedQueue<A: Actor> {
    heap: BinaryHeap<Ranked<A>>,
    seq: u64,
}

struct Ranked<A: Actor> {
    priority: Priority,
    seq: u64,
    env: Env<A>,
}

impl<A: Actor> PartialEq for Ranked<A> {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.seq == other.seq
    }
}

impl<A: Actor> Eq for Ranked<A> {}

impl<A: Actor> PartialOrd for Ranked<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<A: Actor> Ord for Ranked<A> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: higher priority first, then the older (smaller) sequence number.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}
