//! [`VirtualRef`]: the typed handle to a virtual actor, valid on every node.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use granary_core::{
    ask_target, tell_target, AskError, Message, RemoteError, RemoteTarget, SendError,
};
use granary_storage::Identity;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::actor::{VirtualActor, VirtualHandler};
use crate::door::{any_activation_name, is_any_activation};
use crate::error::VirtualError;
use crate::key::Key;
use crate::protocol::Location;
use crate::runtime::{Gone, Runtime};
use crate::tracked::{ActivationDoor, Tracked};

/// A typed ref to the virtual actor `A` with one key.
///
/// Getting a ref does nothing; the first message activates the actor wherever the
/// directory places it. A call that finds the activation gone (passivated, node
/// down) asks the directory again and is resent, within the call's timeout and a
/// bounded number of attempts; messages are `Clone` so that they can be resent.
///
/// Delivery (nothing is deduplicated):
/// - [`VirtualRef::tell`] is at most once: it is resent only while nothing was
///   enqueued, never after `Ok`.
/// - [`VirtualRef::ask`] is at most once while the activation's node stays up and
///   at least once across its failure: if the host becomes unreachable after the
///   request went out (or is killed before answering), the handler may have run and
///   the resent request runs it again on the next activation. A timeout is never
///   resent. Handlers that must not apply a message twice keep the request ids they
///   applied in their state. Details: `docs/semantics.md`, "Delivery guarantees".
pub struct VirtualRef<A: VirtualActor> {
    callee: Callee,
    key: A::Key,
}

/// The identity a ref calls and the runtime it calls through: all that locating and
/// resending a call needs. [`VirtualRef`] and [`crate::ContractRef`] each hold one.
pub(crate) struct Callee {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) identity: Identity,
    /// The remote layer's ref to the activation on another node this ref reached last:
    /// a ref kept for many calls (an actor's partner, a client's session) builds it
    /// once per location instead of once per call (an allocation, a copy of the name
    /// and a hash each).
    reached: parking_lot::Mutex<Option<ReachedElsewhere>>,
}

/// A remote activation as [`Callee::reached`] keeps it.
#[derive(Clone)]
struct ReachedElsewhere {
    at: Location,
    target: Arc<dyn RemoteTarget>,
}

impl Callee {
    pub(crate) fn new(runtime: Arc<Runtime>, identity: Identity) -> Self {
        Self {
            runtime,
            identity,
            reached: parking_lot::Mutex::new(None),
        }
    }

    /// Where a call goes without a lookup under hash placement
    /// ([`Runtime::direct_owner`]): the owner's "whichever activation of the key"
    /// (`door.rs`). The location this ref reached last is reused while it is that, so
    /// a call builds no name.
    fn direct_location(&self) -> Option<Location> {
        let owner = self.runtime.direct_owner(&self.identity)?;
        let reached = self.reached.lock();
        if let Some(last) = reached
            .as_ref()
            .filter(|last| last.at.host == owner && is_any_activation(&last.at.name))
        {
            return Some(last.at.clone());
        }
        drop(reached);
        Some(Location {
            host: owner,
            name: any_activation_name(&self.identity),
        })
    }

    /// The remote layer's ref to the activation at `loc` on another node.
    fn target_at(&self, loc: &Location) -> Arc<dyn RemoteTarget> {
        if !self.runtime.is_member() {
            // A client's path goes through whichever gateway is up now.
            return self.runtime.activation_target(loc);
        }
        let mut reached = self.reached.lock();
        if let Some(last) = reached.as_ref().filter(|last| last.at == *loc) {
            return last.target.clone();
        }
        let target = self.runtime.activation_target(loc);
        *reached = Some(ReachedElsewhere {
            at: loc.clone(),
            target: target.clone(),
        });
        target
    }
}

impl Clone for Callee {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
            identity: self.identity.clone(),
            reached: parking_lot::Mutex::new(self.reached.lock().clone()),
        }
    }
}

/// A virtual actor's identity as data: put it in messages and resolve it on any
/// node with [`crate::Node::resolve`].
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct VirtualId<A> {
    /// The kind name.
    pub kind: String,
    /// The key as text.
    pub key: String,
    #[serde(skip)]
    _actor: PhantomData<fn() -> A>,
}

impl<A> Clone for VirtualId<A> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind.clone(),
            key: self.key.clone(),
            _actor: PhantomData,
        }
    }
}

impl<A> fmt::Debug for VirtualId<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualId({}/{})", self.kind, self.key)
    }
}

impl<A> PartialEq for VirtualId<A> {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.key == other.key
    }
}

impl<A: VirtualActor> VirtualRef<A> {
    pub(crate) fn new(runtime: Arc<Runtime>, key: A::Key) -> Self {
        let identity = Identity::new(A::KIND, key.to_key_string());
        Self {
            callee: Callee::new(runtime, identity),
            key,
        }
    }

    /// The key.
    pub fn key(&self) -> &A::Key {
        &self.key
    }

    /// The identity (`kind/key`).
    pub fn identity(&self) -> &Identity {
        &self.callee.identity
    }

    /// The serializable form of this ref.
    pub fn id(&self) -> VirtualId<A> {
        VirtualId {
            kind: A::KIND.to_owned(),
            key: self.key.to_key_string(),
            _actor: PhantomData,
        }
    }

    /// Request/response with the node's default ask timeout.
    pub async fn ask<M>(&self, msg: M) -> Result<M::Reply, VirtualError>
    where
        A: VirtualHandler<M>,
        M: Message + Clone,
    {
        self.ask_timeout(msg, self.callee.runtime.config.ask_timeout)
            .await
    }

    /// Request/response within `timeout`, retries included.
    pub async fn ask_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, VirtualError>
    where
        A: VirtualHandler<M>,
        M: Message + Clone,
    {
        self.callee.ask_typed::<A, M>(msg, timeout).await
    }

    /// Sends without waiting for the handler: resolves the activation (activating it
    /// if needed) and enqueues the message there. At most once; `Ok` means enqueued.
    pub async fn tell<M>(&self, msg: M) -> Result<(), VirtualError>
    where
        A: VirtualHandler<M>,
        M: Message + Clone,
    {
        self.callee.tell(msg).await
    }
}

/// The activation a call reached: its door on this node, or a ref to it on another.
pub(crate) enum Reached {
    Here(Arc<dyn ActivationDoor>),
    Elsewhere(Arc<dyn RemoteTarget>),
}

impl Reached {
    /// Either, as the type-erased target every message type can be sent through.
    fn erased(&self) -> Arc<dyn RemoteTarget> {
        match self {
            Reached::Here(door) => door.clone(),
            Reached::Elsewhere(target) => target.clone(),
        }
    }
}

impl Callee {
    /// Request/response within `timeout`, resends included (see [`Callee::call`]).
    pub(crate) async fn ask<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, VirtualError>
    where
        M: Message + Clone,
    {
        let deadline = Instant::now() + timeout;
        self.call(Some(deadline), timeout, |target, remaining| {
            let msg = msg.clone();
            async move { ask_target(&*target.erased(), msg, remaining).await }
        })
        .await
    }

    /// [`Callee::ask`] from a caller that knows the actor type: an activation on this
    /// node is asked typed, through [`Tracked::ask_in_mailbox`] (no boxing, no erased
    /// future); anywhere else as [`Callee::ask`] does.
    pub(crate) async fn ask_typed<A, M>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<M::Reply, VirtualError>
    where
        A: VirtualHandler<M>,
        M: Message + Clone,
    {
        let deadline = Instant::now() + timeout;
        self.call(Some(deadline), timeout, |target, remaining| {
            let msg = msg.clone();
            async move {
                if let Reached::Here(door) = &target {
                    if let Some(tracked) = door.as_any().downcast_ref::<Tracked<A>>() {
                        // One future awaited after the `match`: awaited in its arms,
                        // the matched `Result` would be kept beside the future moved
                        // out of it (twice the ask's size in every call's future).
                        let target = &target;
                        let asked = match tracked.ask_in_mailbox(msg, remaining) {
                            Ok(asked) => Either::Left(asked),
                            Err(msg) => Either::Right(async move {
                                ask_target(&*target.erased(), msg, remaining).await
                            }),
                        };
                        return asked.await;
                    }
                }
                ask_target(&*target.erased(), msg, remaining).await
            }
        })
        .await
    }

    /// Enqueues at the activation (activating it if needed), within the node's ask
    /// timeout; at most once.
    pub(crate) async fn tell<M>(&self, msg: M) -> Result<(), VirtualError>
    where
        M: Message + Clone,
    {
        // A tell is done on its first poll: its time starts only if it has to look the
        // activation up or try again (no clock read per message otherwise).
        self.call(None, self.runtime.config.ask_timeout, |target, _| {
            let msg = msg.clone();
            async move { tell_target(&*target.erased(), msg).map_err(AskError::Send) }
        })
        .await
    }

    /// One call: locate the activation, hand `send` the door to it, and on a "not
    /// here" or a lost host locate it again and resend, within `deadline` and the
    /// node's `max_attempts`.
    ///
    /// `send` gets the activation [`Reached`]: the tracked door of a local activation
    /// (`tracked.rs`) or the remote layer's ref to one on another node. Either works
    /// as a type-erased [`RemoteTarget`] through which `send` types the message and its
    /// reply again (`granary_core::ask_target`), so this loop knows no actor type and a
    /// contract ref, which names none, shares it with [`VirtualRef`]; a `send` that
    /// knows the type asks a local door typed ([`Callee::ask_typed`]).
    ///
    /// The call must be done by `deadline`; `None` for a call whose attempt takes no
    /// time (a tell), whose deadline is `timeout` from its first lookup or retry.
    async fn call<M, R, F, Fut>(
        &self,
        deadline: Option<Instant>,
        timeout: Duration,
        send: F,
    ) -> Result<R, VirtualError>
    where
        M: Message,
        F: Fn(Reached, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<R, AskError<M>>>,
    {
        let rt = &self.runtime;
        // Asks come with a deadline, tells without (see above).
        let is_ask = deadline.is_some();
        let mut deadline = deadline;
        // The deadline, read from the clock now if it was not yet.
        let due = |deadline: &mut Option<Instant>| {
            *deadline.get_or_insert_with(|| Instant::now() + timeout)
        };
        let mut stale: Option<Location> = None;
        let mut last: Option<String> = None;
        // The last attempt was refused by flow control (`Backpressure`): nothing was
        // sent, so running out of time or attempts is reported as that, not as a timeout.
        let mut refused: Option<RemoteError> = None;
        let attempts = rt.config.max_attempts.max(1);
        for attempt in 1..=attempts {
            if attempt > 1 {
                let pause =
                    Duration::from_millis(10 * u64::from(attempt)).min(Duration::from_millis(500));
                if Instant::now() + pause >= due(&mut deadline) {
                    return Err(refused.map_or(VirtualError::Timeout, VirtualError::Remote));
                }
                // Backoff between retries (membership may need a moment to converge).
                tokio::time::sleep(pause).await;
            }
            // In a block of its own: what the lookup left is gone before the call
            // waits for its answer, not kept in this future beside the send.
            let loc = {
                // A known location costs no lookup and no timer.
                let known = match stale {
                    None => (rt.locate_known(&self.identity)).or_else(|| self.direct_location()),
                    Some(_) => None,
                };
                let located = match known {
                    Some(loc) => Ok(Ok(loc)),
                    None => {
                        let tag = rt
                            .kinds
                            .get(self.identity.kind())
                            .map(|s| s.kind.config().placement.tag())
                            .unwrap_or(crate::placement::PlacementTag::Random);
                        // Only an ask may go to a host the caller picks: a host that
                        // finds the identity living elsewhere refuses the call, and a
                        // refused tell, already sent, would be lost.
                        // Boxed: a lookup is a network trip at most once per identity and
                        // location, and inline its future (kilobytes, the directory's
                        // whole placement path) would be copied with every call's future,
                        // a tell to a known location included.
                        let locate = Box::pin(rt.locate(&self.identity, stale.take(), tag, is_ask));
                        rt.system().within(due(&mut deadline), locate).await
                    }
                };
                match located {
                    Err(_) => return Err(VirtualError::Timeout),
                    Ok(Ok(loc)) => loc,
                    Ok(Err(
                        e @ (VirtualError::NoHost(_)
                        | VirtualError::BadKey { .. }
                        | VirtualError::NodeDown),
                    )) => return Err(e),
                    Ok(Err(e)) => {
                        last = Some(e.to_string());
                        continue;
                    }
                }
            };
            let target = if loc.host == rt.me {
                match rt.local_door(&self.identity, &loc.name) {
                    Some(door) => Reached::Here(door),
                    None => {
                        rt.invalidate(&self.identity);
                        last = Some(format!("{} no longer here", loc.name));
                        stale = Some(loc);
                        continue;
                    }
                }
            } else {
                Reached::Elsewhere(self.target_at(&loc))
            };
            // Unread, the deadline is a whole `timeout` away.
            let remaining =
                deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            let outcome = if loc.host == rt.me {
                send(target, remaining).await
            } else {
                // Polled once the request is sent (a tell, done on its first poll,
                // never reads the ring): a host in this node's ring counts as lost
                // once it leaves it; one not in it (yet) only once it has entered and
                // left it.
                let lost = rt.host_lost_once_seen(loc.host);
                tokio::select! {
                    // The send first: a tell is done on its first poll, and the host's
                    // watch is then never subscribed to.
                    biased;
                    outcome = send(target, remaining) => outcome,
                    // The host went Down while we waited: the request may or may not
                    // have been handled there (at least once, see above).
                    gone = lost => match gone {
                        Gone::Host => Err(AskError::Remote(RemoteError::Unreachable)),
                        // This node went Down: it takes no part until it has rejoined,
                        // so the call ends here instead of being sent again.
                        Gone::ThisNode => return Err(VirtualError::NodeDown),
                    },
                }
            };
            refused = None;
            match outcome {
                Ok(r) => return Ok(r),
                Err(AskError::Timeout) => return Err(VirtualError::Timeout),
                Err(AskError::ActorPanicked) => return Err(VirtualError::Panicked),
                Err(AskError::ActorStopped)
                | Err(AskError::Send(SendError::ActorStopped(_)))
                | Err(AskError::Remote(RemoteError::NoSuchActor(_)))
                | Err(AskError::Send(SendError::Remote {
                    error: RemoteError::NoSuchActor(_),
                    ..
                }))
                | Err(AskError::Remote(RemoteError::Unreachable))
                | Err(AskError::Send(SendError::Remote {
                    error: RemoteError::Unreachable,
                    ..
                })) => {
                    rt.invalidate(&self.identity);
                    last = Some(format!("{} at {} gone", loc.name, loc.host));
                    stale = Some(loc);
                }
                // The host's connection is full (flow control, `docs/wire.md`): nothing
                // was sent and the location is still right, so resend there after the
                // back-off without looking it up again.
                Err(AskError::Remote(e @ RemoteError::Backpressure(_)))
                | Err(AskError::Send(SendError::Remote {
                    error: e @ RemoteError::Backpressure(_),
                    ..
                })) => {
                    last = Some(e.to_string());
                    refused = Some(e);
                }
                // Resending cannot help: the same message fails the same way.
                Err(AskError::Remote(e))
                | Err(AskError::Send(SendError::Remote { error: e, .. }))
                    if is_final(&e) =>
                {
                    return Err(VirtualError::Remote(e))
                }
                Err(e) => {
                    rt.invalidate(&self.identity);
                    last = Some(format!("{e}"));
                    stale = Some(loc);
                }
            }
        }
        if let Some(e) = refused {
            return Err(VirtualError::Remote(e));
        }
        Err(VirtualError::Unavailable {
            identity: self.identity.to_string(),
            attempts,
            last: last.unwrap_or_else(|| "no attempt made".to_owned()),
        })
    }
}

impl<A: VirtualActor> Clone for VirtualRef<A> {
    fn clone(&self) -> Self {
        Self {
            callee: self.callee.clone(),
            key: self.key.clone(),
        }
    }
}

impl<A: VirtualActor> fmt::Debug for VirtualRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualRef({})", self.callee.identity)
    }
}

/// Errors that a resend would meet again.
fn is_final(e: &RemoteError) -> bool {
    matches!(
        e,
        RemoteError::TypeMismatch { .. }
            | RemoteError::Decode(_)
            | RemoteError::Encode(_)
            | RemoteError::FrameTooLarge { .. }
            | RemoteError::Unauthorized(_)
            | RemoteError::MessageTooNew { .. }
            | RemoteError::MessageTooOld { .. }
    )
}
