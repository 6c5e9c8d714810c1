//! The event stream: typed publish/subscribe within one actor system, and the
//! [`DeadLetter`] events published on it.
//!
//! Each event type has its own `tokio::sync::broadcast` channel, created on first
//! subscription; publishing a type nobody subscribed to costs one map lookup.
//!
//! What is guaranteed: every [`DeadLetter`] is counted, per reason, in
//! [`DeadLetterCounts`] ([`crate::ActorSystem::dead_letters`]) whether or not anyone
//! subscribed and however far subscribers lag; a subscriber that stays fewer than
//! the stream's capacity events behind (`SystemBuilder::event_capacity`, default
//! 1,024 per event type) receives every event of its type published after it
//! subscribed, in publication order; one that falls further behind is told exactly
//! how many it missed ([`EventRecvError::Lagged`], [`EventSubscriber::missed`]) and
//! goes on with the oldest event still held.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::actor::Message;
use crate::actor_ref::Recipient;
use crate::error::RemoteError;
use crate::id::ActorId;

/// Anything that can travel on the event stream.
pub trait Event: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Event for T {}

/// Why a message became a dead letter.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The recipient had stopped, or stopped with the message still queued.
    ActorStopped,
    /// The recipient's bounded mailbox was full.
    MailboxFull,
    /// An `ask` got no reply within its timeout.
    Timeout,
    /// The remote layer could not deliver it.
    Remote(RemoteError),
    /// The recipient refused it without handling it ([`crate::Actor::admits`]).
    Refused,
}

/// A message that was not delivered (or not answered in time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The addressee.
    pub recipient: ActorId,
    /// The Rust type name of the message.
    pub message_type: &'static str,
    /// Why it was not delivered.
    pub reason: DeadLetterReason,
}

/// How many dead letters a system published, per reason, since it started
/// ([`crate::ActorSystem::dead_letters`]). Exact: counted when published, whether
/// or not anyone subscribed and however far subscribers lag.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    /// [`DeadLetterReason::ActorStopped`].
    pub actor_stopped: u64,
    /// [`DeadLetterReason::MailboxFull`].
    pub mailbox_full: u64,
    /// [`DeadLetterReason::Timeout`].
    pub timeout: u64,
    /// [`DeadLetterReason::Remote`], whatever the remote error.
    pub remote: u64,
    /// [`DeadLetterReason::Refused`].
    pub refused: u64,
}

impl DeadLetterCounts {
    /// All dead letters, whatever the reason.
    pub fn total(&self) -> u64 {
        self.actor_stopped + self.mailbox_full + self.timeout + self.remote + self.refused
    }
}

/// The live counters behind [`DeadLetterCounts`]: one atomic per reason.
#[derive(Default)]
struct DeadLetterCounters {
    actor_stopped: AtomicU64,
    mailbox_full: AtomicU64,
    timeout: AtomicU64,
    remote: AtomicU64,
    refused: AtomicU64,
}

impl DeadLetterCounters {
    fn count(&self, reason: &DeadLetterReason) {
        let counter = match reason {
            DeadLetterReason::ActorStopped => &self.actor_stopped,
            DeadLetterReason::MailboxFull => &self.mailbox_full,
            DeadLetterReason::Timeout => &self.timeout,
            DeadLetterReason::Remote(_) => &self.remote,
            DeadLetterReason::Refused => &self.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DeadLetterCounts {
        DeadLetterCounts {
            actor_stopped: self.actor_stopped.load(Ordering::Relaxed),
            mailbox_full: self.mailbox_full.load(Ordering::Relaxed),
            timeout: self.timeout.load(Ordering::Relaxed),
            remote: self.remote.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Typed publish/subscribe for one actor system ([`crate::ActorSystem::events`]).
///
/// Every [`DeadLetter`] is counted per reason ([`EventStream::dead_letters`]),
/// exactly, whether or not anyone subscribed. A subscriber that stays fewer than
/// the capacity (`SystemBuilder::event_capacity`, default 1,024 per event type)
/// events behind receives every event of its type published after it subscribed,
/// in order; one that falls further behind is told exactly how many it missed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use granary_core::prelude::*;
/// #[derive(Clone, Debug, PartialEq)]
/// struct UserJoined(u32);
/// let system = ActorSystem::new();
/// let mut sub = system.events().subscribe::<UserJoined>();
/// system.events().publish(UserJoined(7));
/// assert_eq!(sub.recv().await.unwrap(), UserJoined(7));
/// # }
/// ```
pub struct EventStream {
    channels: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    capacity: usize,
    dead_letters: DeadLetterCounters,
}

impl EventStream {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            dead_letters: DeadLetterCounters::default(),
        }
    }

    /// How many dead letters were published so far, per reason (exact).
    pub fn dead_letters(&self) -> DeadLetterCounts {
        self.dead_letters.snapshot()
    }

    fn sender<E: Event>(&self) -> broadcast::Sender<E> {
        let mut channels = self.channels.lock();
        let entry = channels
            .entry(TypeId::of::<E>())
            .or_insert_with(|| Box::new(broadcast::channel::<E>(self.capacity).0));
        if let Some(tx) = entry.downcast_ref::<broadcast::Sender<E>>() {
            return tx.clone();
        }
        // Entries are keyed by their own TypeId, so this is never reached; if it
        // were, a fresh channel replaces the odd entry instead of panicking.
        let tx = broadcast::channel::<E>(self.capacity).0;
        *entry = Box::new(tx.clone());
        tx
    }

    /// Subscribes to events of type `E` published from now on.
    pub fn subscribe<E: Event>(&self) -> EventSubscriber<E> {
        EventSubscriber {
            rx: self.sender::<E>().subscribe(),
            missed: 0,
        }
    }

    /// Forwards every event of type `E` to an actor (as a `tell`) until that
    /// actor stops. Runs a small forwarding task.
    pub fn subscribe_recipient<E>(&self, recipient: Recipient<E>)
    where
        E: Event + Message,
    {
        let mut sub = self.subscribe::<E>();
        // Events the actor missed are counted by `EventSubscriber::missed` only (the
        // actor is not told); dead letters stay counted in `dead_letters()`.
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Ok(event) => {
                        if recipient.tell(event).is_err() {
                            break;
                        }
                    }
                    Err(EventRecvError::Lagged(_)) => continue,
                    Err(EventRecvError::Closed) => break,
                }
            }
        });
    }

    /// Publishes `event` to current subscribers; returns how many received it. A
    /// [`DeadLetter`] is also counted (see [`EventStream::dead_letters`]).
    pub fn publish<E: Event>(&self, event: E) -> usize {
        if let Some(dead_letter) = (&event as &dyn Any).downcast_ref::<DeadLetter>() {
            self.dead_letters.count(&dead_letter.reason);
        }
        let channels = self.channels.lock();
        let Some(entry) = channels.get(&TypeId::of::<E>()) else {
            return 0;
        };
        match entry.downcast_ref::<broadcast::Sender<E>>() {
            Some(tx) => tx.send(event).unwrap_or(0),
            None => 0,
        }
    }
}

/// Receives events of one type; see [`EventStream::subscribe`].
pub struct EventSubscriber<E> {
    rx: broadcast::Receiver<E>,
    /// Events skipped because this subscriber lagged, in total.
    missed: u64,
}

/// A subscriber could not receive.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventRecvError {
    /// The subscriber fell more than the stream's capacity behind and exactly this
    /// many events were skipped (the next `recv` returns the oldest still held).
    #[error("lagged behind by {0} events")]
    Lagged(u64),
    /// The event stream is gone.
    #[error("event stream closed")]
    Closed,
}

impl<E: Event> EventSubscriber<E> {
    /// Waits for the next event.
    pub async fn recv(&mut self) -> Result<E, EventRecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => {
                self.missed += n;
                EventRecvError::Lagged(n)
            }
            broadcast::error::RecvError::Closed => EventRecvError::Closed,
        })
    }

    /// The next event if one is waiting. Events skipped because this subscriber
    /// lagged are added to [`EventSubscriber::missed`].
    pub fn try_recv(&mut self) -> Option<E> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.missed += n,
                Err(_) => return None,
            }
        }
    }

    /// How many events this subscriber missed in total because it lagged (the sum
    /// of every [`EventRecvError::Lagged`] and what `try_recv` skipped). Events
    /// received plus `missed` is every event published since it subscribed.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
