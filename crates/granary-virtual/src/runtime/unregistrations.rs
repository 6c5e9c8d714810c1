//! The unregistrations of ended activations, sent to their directory owners in
//! batches: one sender per owner at a time, which takes whatever ended while its last
//! request was on the way. Under load (a sort's thousands of short-lived actors) an
//! owner gets one request for many ends instead of one each; when activations end
//! seldom, each goes alone and at once, as before.
//!
//! A late unregistration is what an unacknowledged one always was: the owner keeps an
//! entry naming an activation that is gone, a caller sent there finds it missing, and
//! the owner, asking the host, hears "no" and places the identity again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use granary_storage::Identity;
use parking_lot::Mutex;

use super::{shrink_if_sparse, Runtime};
use crate::protocol::{Location, Request, Unregistration};

/// The most ends one request carries (a frame stays a few tens of kilobytes).
const MOST_PER_REQUEST: usize = 256;

/// Ended activations not yet sent to their owners, per owner. An owner has a queue
/// exactly while its sender runs.
#[derive(Default)]
pub(crate) struct Unregistrations {
    queues: Mutex<HashMap<SocketAddr, Vec<Unregistration>>>,
}

impl Unregistrations {
    /// Queues the end of `at` for `owner`; `true` if no sender runs for `owner`
    /// (the caller starts one).
    fn push(&self, owner: SocketAddr, identity: &Identity, at: Location) -> bool {
        let mut queues = self.queues.lock();
        let start = !queues.contains_key(&owner);
        queues.entry(owner).or_default().push(Unregistration {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
            at,
        });
        start
    }

    /// The next request's worth of `owner`'s queue; empty once it is drained, and
    /// then the queue is gone (its sender ends).
    fn take(&self, owner: SocketAddr) -> Vec<Unregistration> {
        let mut queues = self.queues.lock();
        match queues.get_mut(&owner) {
            Some(queue) if !queue.is_empty() => {
                let rest = queue.split_off(queue.len().min(MOST_PER_REQUEST));
                std::mem::replace(queue, rest)
            }
            _ => {
                queues.remove(&owner);
                shrink_if_sparse(&mut queues);
                Vec::new()
            }
        }
    }
}

impl Runtime {
    /// Sends the end of the activation `at` of `identity` to `owner`, with any
    /// others that end before the request goes. Counted in `unregistering` by the
    /// caller; uncounted once the owner answered (or did not).
    pub(crate) fn unregister_later(
        self: &Arc<Self>,
        owner: SocketAddr,
        identity: &Identity,
        at: Location,
    ) {
        if self.unregistrations.push(owner, identity, at) {
            let rt = self.clone();
            tokio::spawn(async move { rt.send_unregistrations(owner).await });
        }
    }

    /// `owner`'s sender: one request at a time until its queue is empty.
    async fn send_unregistrations(self: Arc<Self>, owner: SocketAddr) {
        loop {
            let mut batch = self.unregistrations.take(owner);
            let ends = batch.len();
            let req = match ends {
                0 => return,
                1 => {
                    let Unregistration { kind, key, at } = batch.remove(0);
                    Request::Unregister { kind, key, at }
                }
                _ => Request::UnregisterAll { ends: batch },
            };
            if let Err(e) = self.rpc.call(&self, owner, req).await {
                tracing::debug!(%owner, ends, error = %e, "unregistrations not acknowledged");
            }
            self.unregistering.fetch_sub(ends, Ordering::AcqRel);
            self.ends.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(name: &str) -> Location {
        Location {
            host: "127.0.0.1:1".parse().unwrap(),
            name: name.into(),
        }
    }

    #[test]
    fn one_sender_per_owner_takes_what_ended_meanwhile() {
        let queues = Unregistrations::default();
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:7".parse().unwrap(),
            "127.0.0.1:8".parse().unwrap(),
        );
        let id = Identity::new("k", "x");
        assert!(
            queues.push(a, &id, at("1")),
            "the first end starts a sender"
        );
        assert!(
            !queues.push(a, &id, at("2")),
            "the sender takes this one too"
        );
        assert!(
            queues.push(b, &id, at("3")),
            "another owner, another sender"
        );
        let names = |batch: Vec<Unregistration>| -> Vec<String> {
            batch.into_iter().map(|u| u.at.name.to_string()).collect()
        };
        assert_eq!(names(queues.take(a)), ["1", "2"]);
        assert!(!queues.push(a, &id, at("4")), "the sender still runs");
        assert_eq!(names(queues.take(a)), ["4"]);
        assert!(queues.take(a).is_empty(), "drained: the sender ends");
        assert!(queues.push(a, &id, at("5")), "so the next end starts one");
        for i in 0..MOST_PER_REQUEST + 1 {
            queues.push(b, &id, at(&i.to_string()));
        }
        assert_eq!(
            queues.take(b).len(),
            MOST_PER_REQUEST,
            "one request's worth"
        );
        assert_eq!(queues.take(b).len(), 2);
    }
}
