//! Caller placement (Orleans' route for random placement): a member asking an
//! identity it has not located picks a random host of the kind and sends the ask
//! there, under the name of "whichever activation of the key is here" (`door.rs`);
//! only asks, as a host that refuses the call (the identity lives elsewhere) makes the
//! caller look it up, and a refused tell would be lost;
//! that host, holding no activation, **claims** the identity at its directory owner
//! ([`crate::protocol::Request::Claim`]) and activates it once granted. A fresh
//! identity then costs the call and one claim, where a lookup, the owner's activation
//! request and then the call took three requests.
//!
//! The owner decides exactly as for a lookup (`directory.rs`, under the identity's
//! lock, behind the same fences and hand-off checks): where an entry or a pending
//! host names another activation it answers that location and the claiming host
//! refuses the call (the caller looks the identity up); where it would place the
//! identity it places it on the claimer, records the entry and answers with it. So the
//! entry exists before the activation does, and this module keeps that gap safe:
//!
//! - The claimer names the activation before it claims, and while the claim is
//!   pending an owner's "is this activation alive?" (`Has`, asked when a caller found
//!   the named activation missing) waits for the claim to end instead of answering
//!   "no" — a "no" would let the owner place a second activation beside the one about
//!   to start.
//! - The activation starts only with the grant in hand and the granting owner still
//!   the owner in this node's ring once it is in the local table, as for an owner's
//!   activation request (`hosting.rs`); otherwise it is stopped.
//! - A grant whose answer is lost leaves an entry naming an activation that never
//!   started: callers that reach it find it missing, and the owner, asking, hears "no"
//!   and places again.
//! - While the rings of two members differ (a join, a departure), two owners may hold
//!   an identity at once. One owner's "is the identity on this host?" (`Find`, asked of
//!   a host that has not announced itself rebuilt) waits for a claim in flight here to
//!   any other owner, and for an activation starting here, to end before it answers;
//!   a "no" in between would let that owner place a second activation beside the one
//!   the other owner granted. The owner the claim went to is not waited for: it holds
//!   the identity's lock while it asks, and the claim needs that lock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use granary_storage::Identity;
use parking_lot::Mutex;

use super::{shrink_if_sparse, Gone, IdentityMap, KeyedLocks, Runtime};
use crate::placement::Placement;
use crate::protocol::{Failure, Location, Reply, Request};

/// The claims this node has in flight: one at a time per identity, each with the
/// name its activation will have and the owner it went to.
#[derive(Default)]
pub(crate) struct Claims {
    /// Held from before a claim is sent until its activation is in the local table
    /// (or the claim failed).
    locks: KeyedLocks,
    /// Each identity's claim in flight.
    pending: Mutex<IdentityMap<PendingClaim>>,
}

/// A claim in flight: the name its activation will have, and the directory owner
/// it was sent to.
struct PendingClaim {
    name: Arc<str>,
    owner: SocketAddr,
}

/// A claim in flight: its name is pending until this drops.
struct Pending<'a> {
    claims: &'a Claims,
    identity: &'a Identity,
}

impl Claims {
    /// Marks `name` as the activation a claim of `identity`, sent to `owner`, is about
    /// to start.
    fn pending<'a>(
        &'a self,
        identity: &'a Identity,
        name: Arc<str>,
        owner: SocketAddr,
    ) -> Pending<'a> {
        (self.pending.lock()).insert(identity.clone(), PendingClaim { name, owner });
        Pending {
            claims: self,
            identity,
        }
    }

    /// Whether a claim in flight will start `identity`'s activation `name`.
    fn is_pending(&self, identity: &Identity, name: &str) -> bool {
        (self.pending.lock().get(identity)).is_some_and(|pending| &*pending.name == name)
    }

    /// Whether a claim of `identity` is in flight to an owner other than `owner`.
    fn is_pending_elsewhere(&self, identity: &Identity, owner: SocketAddr) -> bool {
        (self.pending.lock().get(identity)).is_some_and(|pending| pending.owner != owner)
    }

    /// Claims of identities in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.lock().len()
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut pending = self.claims.pending.lock();
        pending.remove(self.identity);
        shrink_if_sparse(&mut pending);
    }
}

impl Runtime {
    /// Whether this member places the identities of `kind` itself when it calls one
    /// it has not located: a kind it hosts with random placement (not a stateless
    /// worker kind, whose workers are never in the directory).
    pub(crate) fn places_by_caller(&self, kind: &str) -> bool {
        if !self.is_member() {
            return false;
        }
        (self.kinds.get(kind)).is_some_and(|slot| {
            let config = slot.kind.config();
            matches!(config.placement, Placement::Random) && config.stateless_workers.is_none()
        })
    }

    /// The activation of `identity` here for a call a caller placed on this node:
    /// the live one, else one started under a grant of the identity's directory
    /// owner. `Located` elsewhere when the owner knows the identity lives (or is
    /// being placed) on another host.
    pub(crate) async fn claim_here(self: &Arc<Self>, identity: &Identity) -> Reply {
        if !self.can_host() {
            return Reply::Failed(Failure::ShuttingDown);
        }
        let Some(owner) = self.members.owner(identity) else {
            return Reply::NotOwner;
        };
        if owner == self.me {
            // The owner claims from itself: its lookup, placed here (boxed: inline,
            // the directory's future would double this one's size, which every
            // caller-placed lookup carries).
            return Box::pin(self.serve_claim(identity, self.me, None, None)).await;
        }
        let _one_claim = self.claims.locks.lock(identity).await;
        if let Some(loc) = self.find_settled(identity).await {
            return Reply::Located(loc);
        }
        let name = self.catalog.next_name(identity, false);
        let _pending = self.claims.pending(identity, name.clone(), owner);
        // At most twice: the second time telling the owner that the activation of
        // this node its entry names has ended.
        let mut stale = None;
        for _ in 0..2 {
            let req = Request::Claim {
                kind: identity.kind().to_owned(),
                key: identity.key().to_owned(),
                name: name.to_string(),
                stale: stale.take(),
            };
            let answer = tokio::select! {
                answer = self.rpc.call(self, owner, req) => answer,
                // The owner went Down while this node waited (cut off, paused): its
                // answer would come at the RPC timeout at best, and the caller's
                // retry finds the new owner.
                gone = self.host_lost(owner) => {
                    let who = match gone {
                        Gone::Host => format!("directory owner {owner}"),
                        Gone::ThisNode => "this node".to_owned(),
                    };
                    return Reply::Failed(Failure::Other(format!("{who} went Down during the claim")));
                }
            };
            let reply = match answer {
                Ok(reply) => reply,
                // Lost either way: a grant that came too late names an activation
                // that never starts (see the module's doc).
                Err(e) => return Reply::Failed(Failure::Other(format!("claim at {owner}: {e}"))),
            };
            match reply {
                Reply::Located(loc) if loc.host == self.me && loc.name == name => {
                    let reply = self.start_granted(identity, owner, name.clone()).await;
                    if !matches!(&reply, Reply::Located(started) if started.name == name) {
                        // Never started: the owner's entry names nothing.
                        self.unregistering.fetch_add(1, Ordering::AcqRel);
                        self.unregister_later(owner, identity, loc);
                    }
                    return reply;
                }
                // The entry names an activation here that has ended, its
                // unregistration not there yet: the owner asks this node before
                // it drops the entry.
                Reply::Located(loc)
                    if loc.host == self.me && !self.has_local(identity, &loc.name) =>
                {
                    stale = Some(loc);
                }
                other => return other,
            }
        }
        Reply::Failed(Failure::Other(format!(
            "{identity}'s owner {owner} names an activation here that has ended"
        )))
    }

    /// Whether a claim in flight here will start the activation `name` of
    /// `identity`; if so, waits until it has started or failed (what an owner's
    /// `Has` must wait for, see the module's doc).
    pub(crate) async fn claim_ended(&self, identity: &Identity, name: &str) -> bool {
        if !self.claims.is_pending(identity, name) {
            return false;
        }
        drop(self.claims.locks.lock(identity).await);
        true
    }

    /// What the directory owner `asker` is told when it asks whether `identity`
    /// lives on this node before placing it (`Find`), once an activation of it
    /// starting here and a claim of it in flight to another owner have ended (see
    /// the module's doc): `Located` here, else `Bool(false)` — but only while this
    /// node's ring names `asker` the identity's owner; otherwise `NotOwner`.
    ///
    /// The "no" is a promise about the future as well: from then on this node starts
    /// no activation of the identity for anyone but `asker` (`hosting.rs` checks the
    /// owner on this node's ring before and after a start) and, not owning it, places
    /// it nowhere. A node whose ring differs (it has not seen a member join or leave
    /// yet, or the asker has not) could not promise that: it may own the identity in
    /// its own ring and place it, or start it for another owner, right after a "no" —
    /// two activations while a cluster forms. So it answers `NotOwner`, the asker's
    /// lookup fails (retryably), and the next attempt after the views agree succeeds.
    pub(crate) async fn find_for_owner(&self, identity: &Identity, asker: SocketAddr) -> Reply {
        if self.claims.is_pending_elsewhere(identity, asker) {
            drop(self.claims.locks.lock(identity).await);
        }
        let _no_start = self.activating.lock(identity).await;
        match self.find_settled(identity).await {
            Some(loc) => Reply::Located(loc),
            None if self.members.owner(identity) == Some(asker) => Reply::Bool(false),
            None => Reply::NotOwner,
        }
    }

    /// Where a call to `identity`, not located yet, goes when this member places it
    /// ([`Self::places_by_caller`]): a random host of the kind, reached through its
    /// "whichever activation of the key" name, or this node (whose own activation
    /// the caller then claims, [`Self::claim_here`]). `None` when no member hosts the
    /// kind.
    ///
    /// Not an `async fn`: only the claim waits, and the caller awaits it itself, so
    /// its lookup's future holds the claim's once, not wrapped a second time.
    pub(crate) fn place_by_caller(&self, identity: &Identity) -> Option<CallerPlaced> {
        let hosts = self.members.hosts_of(identity.kind());
        if hosts.is_empty() {
            return None;
        }
        let host = crate::placement::random(&hosts);
        Some(if host == self.me {
            CallerPlaced::Here
        } else {
            CallerPlaced::Elsewhere(Location {
                host,
                name: crate::door::any_activation_name(identity),
            })
        })
    }
}

/// Where a member that places an identity itself sends its first call to it
/// ([`Runtime::place_by_caller`]).
pub(crate) enum CallerPlaced {
    /// To another host, which claims the identity when the call arrives.
    Elsewhere(Location),
    /// Here: this node claims the identity before the call goes to the activation.
    Here,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_pending_under_its_own_name_until_it_ends() {
        let claims = Claims::default();
        let a = Identity::new("k", "a");
        let owner: SocketAddr = "10.0.0.1:7000".parse().expect("an address");
        let pending = claims.pending(&a, Arc::from("granary.v/k/a#7"), owner);
        assert!(claims.is_pending(&a, "granary.v/k/a#7"));
        assert!(
            !claims.is_pending(&a, "granary.v/k/a#6"),
            "another activation of the identity is not the claim's"
        );
        assert!(!claims.is_pending(&Identity::new("k", "b"), "granary.v/k/a#7"));
        drop(pending);
        assert!(!claims.is_pending(&a, "granary.v/k/a#7"));
        assert_eq!(claims.len(), 0, "nothing is kept once the claim ended");
    }

    /// An owner asking where an identity is waits for a claim of it in flight to
    /// another owner, not for one sent to itself (which needs the lock that owner
    /// holds while it asks).
    #[test]
    fn a_claim_is_in_flight_elsewhere_for_every_owner_but_its_own() {
        let claims = Claims::default();
        let a = Identity::new("k", "a");
        let granting: SocketAddr = "10.0.0.1:7000".parse().expect("an address");
        let other: SocketAddr = "10.0.0.2:7000".parse().expect("an address");
        assert!(
            !claims.is_pending_elsewhere(&a, other),
            "no claim in flight"
        );
        let pending = claims.pending(&a, Arc::from("granary.v/k/a#7"), granting);
        assert!(claims.is_pending_elsewhere(&a, other));
        assert!(!claims.is_pending_elsewhere(&a, granting));
        assert!(!claims.is_pending_elsewhere(&Identity::new("k", "b"), other));
        drop(pending);
        assert!(!claims.is_pending_elsewhere(&a, other));
    }
}
