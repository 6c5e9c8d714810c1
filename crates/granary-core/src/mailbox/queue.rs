//! The user-message queue: FIFO, or ranked by [`Priority`] for priority mailboxes.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::actor::{Actor, Priority};
use crate::envelope::Env;

/// User messages waiting for the actor.
pub(crate) enum UserQueue<A: Actor> {
    /// Arrival order; the actor takes the whole queue in one swap.
    Fifo(VecDeque<Env<A>>),
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
            UserQueue::Fifo(VecDeque::new())
        }
    }

    pub(crate) fn push(&mut self, env: Env<A>) {
        match self {
            UserQueue::Fifo(q) => q.push_back(env),
            UserQueue::Priority(q) => {
                let priority = env.priority();
                q.seq += 1;
                let seq = q.seq;
                q.heap.push(Ranked { priority, seq, env });
            }
        }
    }

    /// Moves the next messages into `batch` (which is empty); false if none.
    pub(crate) fn take_into(&mut self, batch: &mut VecDeque<Env<A>>) -> bool {
        match self {
            UserQueue::Fifo(q) => {
                if q.is_empty() {
                    return false;
                }
                // The buffers trade places: no allocation in steady state.
                std::mem::swap(q, batch);
                true
            }
            UserQueue::Priority(q) => match q.heap.pop() {
                Some(ranked) => {
                    batch.push_back(ranked.env);
                    true
                }
                None => false,
            },
        }
    }

    /// Empties the queue, in the order the actor would have served it.
    pub(crate) fn drain_all(&mut self) -> Vec<Env<A>> {
        match self {
            UserQueue::Fifo(q) => std::mem::take(q).into(),
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
