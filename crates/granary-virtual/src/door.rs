//! One network door per hosted kind: the remote layer's [`Door`] that serves every
//! activation name of the kind, so an activation costs the remote layer nothing.
//!
//! An activation is named `granary.v/<kind>/<key>#<n>` (a stateless worker
//! `granary.w/<kind>/<key>#<n>`); the name travels in the directory's locations and
//! in every frame to the activation, as before. The kind's door is exposed under
//! the prefix up to the key: the remote layer hands it the rest (`<key>#<n>`), and
//! the door finds the activation in the node's local table and delivers into its
//! mailbox through its [`Tracked`] door. A name whose activation is gone, or closed
//! for passivation, is refused with `RemoteError::NoSuchActor`: the caller's retry
//! path (`vref.rs`) locates the identity again and resends.
//!
//! One more name reaches a door: `<key>#*`, "whichever activation of the key is
//! here". Under hash placement an identity lives on its directory owner, so a member
//! that has not located it yet sends its call straight there under that name
//! ([`Runtime::direct_owner`]): the door delivers to the live activation, or, on
//! the owner, serves the lookup as a remote caller's would (activating the identity
//! here) and then delivers, on a task of its own — one round trip where a lookup and
//! then the call take two. Under random placement the caller picks the host itself
//! and sends the call there under that name (`runtime/claim.rs`): with no activation
//! here the door claims the identity at its directory owner and delivers once the
//! activation it was granted has started. Anywhere else (the ring moved, the
//! identity lives on another host) the call is refused as `NoSuchActor` and the
//! caller locates it.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use granary_core::{DeadLetter, DeadLetterReason, StopReason};
use granary_remote::{Delivery, Door, Refused};
use granary_storage::Identity;

use crate::actor::VirtualActor;
use crate::runtime::Runtime;
use crate::tracked::{ActivationDoor, Tracked};

/// The family of a kind's activation names: `worker` for a stateless worker kind.
pub(crate) fn family(worker: bool) -> &'static str {
    if worker {
        "granary.w/"
    } else {
        "granary.v/"
    }
}

/// Where the names of a kind's activations begin, and its door's prefix: `worker`
/// for a stateless worker kind.
pub(crate) fn door_prefix(kind: &str, worker: bool) -> String {
    [family(worker), kind, "/"].concat()
}

/// The name of the `seq`-th activation on this node, of `identity`: written into one
/// buffer of the right size (every activation makes one; `format!` through a prefix
/// string cost two allocations and as many regrowths, a tenth of an activation's time).
pub(crate) fn activation_name(identity: &Identity, worker: bool, seq: u64) -> Arc<str> {
    use std::fmt::Write as _;
    let (family, kind, key) = (family(worker), identity.kind(), identity.key());
    let mut name = String::with_capacity(family.len() + kind.len() + key.len() + 22);
    name.push_str(family);
    name.push_str(kind);
    name.push('/');
    name.push_str(key);
    name.push('#');
    // Writing into a String cannot fail.
    let _ = write!(name, "{seq}");
    Arc::from(name)
}

/// The suffix of [`any_activation_name`].
const ANY_ACTIVATION: &str = "#*";

/// The name that reaches whichever activation of `identity` its host holds, or has
/// its directory owner activate one (see the module's doc).
pub(crate) fn any_activation_name(identity: &Identity) -> Arc<str> {
    let prefix = door_prefix(identity.kind(), false);
    Arc::from([&prefix, identity.key(), ANY_ACTIVATION].concat())
}

/// Whether `name` is an [`any_activation_name`].
pub(crate) fn is_any_activation(name: &str) -> bool {
    name.ends_with(ANY_ACTIVATION)
}

/// The key in the rest of an activation name (`<key>#<n>`; the key may hold `#`).
fn key_of(rest: &str) -> Option<&str> {
    rest.rsplit_once('#').map(|(key, _)| key)
}

/// The door of the kind `A` on one node.
pub(crate) struct KindDoor<A: VirtualActor> {
    /// Weak: the runtime holds the remote node, which holds its doors.
    runtime: Weak<Runtime>,
    /// The length of the door's prefix: an activation's name without it is the rest.
    prefix_len: usize,
    _kind: PhantomData<fn() -> A>,
}

impl<A: VirtualActor> KindDoor<A> {
    pub(crate) fn new(runtime: &Arc<Runtime>, prefix: &str) -> Self {
        Self {
            runtime: Arc::downgrade(runtime),
            prefix_len: prefix.len(),
            _kind: PhantomData,
        }
    }

    /// The door of the activation named by `rest` here (alive or closing).
    fn activation(&self, rest: &str) -> Option<Arc<dyn ActivationDoor>> {
        let runtime = self.runtime.upgrade()?;
        // Looked up by borrowed parts: a frame's hop through the door allocates nothing.
        let identity = (A::KIND, key_of(rest)?);
        let prefix_len = self.prefix_len;
        runtime.activation_door(&identity, |name| name.get(prefix_len..) == Some(rest))
    }
}

/// The activation's door as the `Tracked<A>` it is (every door of a kind is).
fn tracked<A: VirtualActor>(door: &dyn ActivationDoor) -> Option<&Tracked<A>> {
    door.as_any().downcast_ref::<Tracked<A>>()
}

impl<A: VirtualActor> KindDoor<A> {
    /// Delivers a call to `<key>#*` (see the module's doc): to the activation of `key`
    /// here, else after a lookup served as its directory owner (hash placement) or a
    /// claim granted by it (random placement).
    fn deliver_to_any(&self, key: &str, delivery: Delivery) -> Result<(), Refused> {
        let Some(runtime) = self.runtime.upgrade() else {
            return Err(Refused::no_such_actor(delivery));
        };
        if let Some(door) = runtime.activation_door(&(A::KIND, key), |_| true) {
            return match tracked::<A>(&*door) {
                Some(tracked) => tracked.deliver(delivery),
                None => Err(Refused::no_such_actor(delivery)),
            };
        }
        let identity = Identity::new(A::KIND, key);
        tokio::spawn(async move {
            let door = runtime.serve_direct(&identity).await;
            let refused = match door.as_deref().and_then(tracked::<A>) {
                Some(tracked) => match tracked.deliver(delivery) {
                    Ok(()) => return,
                    Err(refused) => refused,
                },
                None => Refused::no_such_actor(delivery),
            };
            let name = any_activation_name(&identity);
            let remote = runtime.remote();
            let id = remote.remote_target(runtime.me, &name).id();
            let (error, is_tell) = refused.answer(id);
            if is_tell {
                remote.system().events().publish(DeadLetter {
                    recipient: id,
                    message_type: "a tell to a virtual actor",
                    reason: DeadLetterReason::Remote(error),
                });
            }
        });
        Ok(())
    }
}

impl<A: VirtualActor> Door for KindDoor<A> {
    fn deliver(&self, rest: &str, delivery: Delivery) -> Result<(), Refused> {
        if let Some(key) = rest.strip_suffix(ANY_ACTIVATION) {
            return self.deliver_to_any(key, delivery);
        }
        let door = self.activation(rest);
        match door.as_deref().and_then(tracked::<A>) {
            Some(tracked) => tracked.deliver(delivery),
            // Passivated, or never here: the caller looks the identity up again.
            None => Err(Refused::no_such_actor(delivery)),
        }
    }

    fn stop(&self, rest: &str) {
        if let Some(tracked) = self.activation(rest).as_deref().and_then(tracked::<A>) {
            tracked.local.stop();
        }
    }

    fn on_stopped(&self, rest: &str, stopped: Box<dyn FnOnce(StopReason) + Send>) -> bool {
        let door = self.activation(rest);
        let Some(tracked) = door.as_deref().and_then(tracked::<A>) else {
            return false;
        };
        tracked.local.on_stopped(stopped);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activation_name_is_its_door_prefix_then_key_then_number() {
        let identity = Identity::new("bank.Account", "a#b/c");
        let name = activation_name(&identity, false, 7);
        assert_eq!(&*name, "granary.v/bank.Account/a#b/c#7");
        let rest = name
            .strip_prefix(&door_prefix("bank.Account", false))
            .expect("the name starts with the kind's door prefix");
        assert_eq!(key_of(rest), Some("a#b/c"));
        let worker = activation_name(&identity, true, 8);
        assert!(worker.starts_with(&door_prefix("bank.Account", true)));
    }
}
