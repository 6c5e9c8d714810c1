//! The event stream: typed publish/subscribe within one actor system, and the
//! [`DeadLetter`] events published on it.
//!
//! Each event type has its own `tokio::sync::broadcast` channel, created on first
//! subscription; publishing a type nobody subscribed to costs one map lookup.

use std::any::{Any, TypeId};
use std::collections::HashMap;

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

/// Typed publish/subscribe for one actor system ([`crate::ActorSystem::events`]).
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
}

impl EventStream {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
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
        }
    }

    /// Forwards every event of type `E` to an actor (as a `tell`) until that
    /// actor stops. Runs a small forwarding task.
    pub fn subscribe_recipient<E>(&self, recipient: Recipient<E>)
    where
        E: Event + Message,
    {
        let mut sub = self.subscribe::<E>();
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

    /// Publishes `event` to current subscribers; returns how many received it.
    pub fn publish<E: Event>(&self, event: E) -> usize {
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
}

/// A subscriber could not receive.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventRecvError {
    /// The subscriber fell behind and this many events were skipped.
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
            broadcast::error::RecvError::Lagged(n) => EventRecvError::Lagged(n),
            broadcast::error::RecvError::Closed => EventRecvError::Closed,
        })
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<E> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}
