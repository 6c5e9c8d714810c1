//! The partition of the identity directory this node owns (Orleans' grain
//! directory, Proto.Actor's partition identity lookup): identity → location, with one
//! async lock per identity so concurrent first messages produce one activation.

use std::net::SocketAddr;
use std::sync::Arc;

use granary_storage::Identity;
use parking_lot::Mutex;

use super::fence::Wait;
use super::{shrink_if_sparse, IdentityMap, KeyedLocks, Runtime};
use crate::placement::{self, Placement, PlacementRequest, PlacementTag};
use crate::protocol::{Failure, Location, Reply, Request};
use crate::tracked::ActivationDoor;

/// What asking hosts whether they hold an identity found.
#[derive(Debug)]
pub(crate) enum Found {
    /// One of them holds it, there.
    At(Location),
    /// Every one answered that it does not.
    Nowhere,
    /// None that answered holds it; this one did not answer (it may be dead, or cut
    /// off from this node only and still hosting).
    Unanswered(SocketAddr),
    /// None that answered holds it; this one does not hold it either but does not
    /// name this node the identity's owner (the two rings differ: a member joined or
    /// left and one of the two has not seen it yet), so it may still place the
    /// identity, or start it for another owner.
    Disputed(SocketAddr),
}

impl Found {
    /// The answer of two sets of hosts together: a holder wins, then a silence.
    fn either(self, other: Found) -> Found {
        match (self, other) {
            (Found::At(loc), _) | (_, Found::At(loc)) => Found::At(loc),
            (Found::Unanswered(host), _) | (_, Found::Unanswered(host)) => Found::Unanswered(host),
            (Found::Disputed(host), _) | (_, Found::Disputed(host)) => Found::Disputed(host),
            (Found::Nowhere, Found::Nowhere) => Found::Nowhere,
        }
    }

    /// Where it lives, if a host said so.
    pub(crate) fn location(self) -> Option<Location> {
        match self {
            Found::At(loc) => Some(loc),
            _ => None,
        }
    }
}

/// Whether `name` is an activation name of `identity` (`door.rs`): what a claim
/// must name.
fn names_activation_of(name: &str, identity: &Identity) -> bool {
    (name.strip_prefix(crate::door::family(false)))
        .and_then(|rest| rest.strip_prefix(identity.kind()))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_prefix(identity.key()))
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
}

/// A host's claim of an identity (`claim.rs`): placed on `claimer` if it is placed
/// now, as the activation `name` the claimer will start (`None`: the claimer is this
/// node, which activates it as for a lookup).
struct Claim {
    claimer: SocketAddr,
    name: Option<Arc<str>>,
}

/// The entries of this node's partition, and the activations it asked for without an
/// answer; one lock over both, and one async lock per identity that orders its
/// lookups and registrations.
#[derive(Default)]
pub(crate) struct Directory {
    partition: Mutex<Partition>,
    locks: KeyedLocks,
}

#[derive(Default)]
struct Partition {
    entries: IdentityMap<Location>,
    /// Identities this owner asked a host to activate without getting an answer: the
    /// host may hold the activation (its reply was lost) or not (the request was).
    /// Until the host says which ([`Request::Confirm`]) or is gone, the identity is
    /// placed nowhere else. An entry is only added by this node's own failed
    /// request, and leaves on the answer, the host's loss or the range moving away.
    unconfirmed: IdentityMap<SocketAddr>,
}

impl Directory {
    /// Where the entry of `identity` says it lives.
    pub(crate) fn get(&self, identity: &Identity) -> Option<Location> {
        self.partition.lock().entries.get(identity).cloned()
    }

    /// Records `identity` at `at`.
    fn record(&self, identity: &Identity, at: Location) {
        self.partition.lock().entries.insert(identity.clone(), at);
    }

    /// Removes the entry of `identity` if it names `at`.
    pub(crate) fn unregister(&self, identity: &Identity, at: &Location) {
        let mut partition = self.partition.lock();
        if partition.entries.get(identity) == Some(at) {
            partition.entries.remove(identity);
            shrink_if_sparse(&mut partition.entries);
        }
    }

    /// The host asked to activate `identity` that has not answered yet, if any.
    fn unconfirmed(&self, identity: &Identity) -> Option<SocketAddr> {
        self.partition.lock().unconfirmed.get(identity).copied()
    }

    fn note_unconfirmed(&self, identity: &Identity, host: SocketAddr) {
        let mut partition = self.partition.lock();
        partition.unconfirmed.insert(identity.clone(), host);
    }

    fn confirmed(&self, identity: &Identity) {
        let mut partition = self.partition.lock();
        if partition.unconfirmed.remove(identity).is_some() {
            shrink_if_sparse(&mut partition.unconfirmed);
        }
    }

    /// Drops the entries (and unconfirmed activations) on hosts that are no longer
    /// alive and returns their identities, each with its host.
    pub(crate) fn retain_hosts(
        &self,
        alive: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<(Identity, SocketAddr)> {
        let mut dropped = Vec::new();
        let mut partition = self.partition.lock();
        partition.entries.retain(|identity, loc| {
            let keep = alive(&loc.host);
            if !keep {
                dropped.push((identity.clone(), loc.host));
            }
            keep
        });
        shrink_if_sparse(&mut partition.entries);
        partition.unconfirmed.retain(|identity, host| {
            let keep = alive(host);
            if !keep {
                dropped.push((identity.clone(), *host));
            }
            keep
        });
        shrink_if_sparse(&mut partition.unconfirmed);
        dropped
    }

    /// Keeps only the entries of identities `owned` accepts. (An unconfirmed
    /// activation of a range that moved away is the new owner's to find: the host
    /// re-registers what it holds, and the new owner asks it before placing.)
    pub(crate) fn retain_identities(&self, owned: impl Fn(&Identity) -> bool) {
        let mut partition = self.partition.lock();
        partition.entries.retain(|identity, _| owned(identity));
        shrink_if_sparse(&mut partition.entries);
        partition.unconfirmed.retain(|identity, _| owned(identity));
        shrink_if_sparse(&mut partition.unconfirmed);
    }

    /// Entries of this partition (for tests and inspection).
    pub(crate) fn len(&self) -> usize {
        self.partition.lock().entries.len()
    }
}

impl Runtime {
    /// Serves a lookup as the owner of `identity`'s partition.
    pub(crate) async fn serve_lookup(
        self: &Arc<Self>,
        identity: &Identity,
        requester: SocketAddr,
        tag: PlacementTag,
        stale: Option<Location>,
    ) -> Reply {
        if self.members.owner(identity) != Some(self.me) {
            return Reply::NotOwner;
        }
        let _locked = self.directory.locks.lock(identity).await;
        self.lookup_locked(identity, requester, tag, stale, None)
            .await
    }

    /// Serves a claim of `identity` by `claimer` as its directory owner: the lookup
    /// of any requester (`stale` the claimer's own activation it found ended),
    /// except that an identity placed now is placed on the claimer, as the
    /// activation `name` (the claimer starts it once it has the answer; on this node,
    /// `None`, it is activated here as for a lookup).
    pub(crate) async fn serve_claim(
        self: &Arc<Self>,
        identity: &Identity,
        claimer: SocketAddr,
        name: Option<Arc<str>>,
        stale: Option<Location>,
    ) -> Reply {
        if self.members.owner(identity) != Some(self.me) {
            return Reply::NotOwner;
        }
        if name
            .as_deref()
            .is_some_and(|name| !names_activation_of(name, identity))
        {
            return Reply::Failed(Failure::Other(format!(
                "a claim of {identity} must name one of its activations"
            )));
        }
        let _locked = self.directory.locks.lock(identity).await;
        let claim = Claim { claimer, name };
        (self.lookup_locked(identity, claimer, PlacementTag::Random, stale, Some(&claim))).await
    }

    /// A call sent straight to this node (`door.rs`, "`<key>#*`") for an identity
    /// with no activation here: under hash placement, as its directory owner, the
    /// lookup served as a remote caller's would be; under random placement, where
    /// the caller placed it here, the identity claimed at its owner (`claim.rs`).
    /// The door of the activation here it found or started; `None` if it lives on
    /// another host (or this node does not own an identity placed by hash).
    pub(crate) async fn serve_direct(
        self: &Arc<Self>,
        identity: &Identity,
    ) -> Option<Arc<dyn ActivationDoor>> {
        let reply = if self.places_by_caller(identity.kind()) {
            self.claim_here(identity).await
        } else {
            (self.serve_lookup(identity, self.me, PlacementTag::Hash, None)).await
        };
        match reply {
            Reply::Located(loc) if loc.host == self.me => self.local_door(identity, &loc.name),
            _ => None,
        }
    }

    /// Serves a lookup (or, with `claim`, a host's claim) of `identity`, its lock
    /// held.
    ///
    /// Every lookup and claim served runs this future, on a task of its own: the
    /// waits it takes only after a failure or for other placements (a host asked
    /// whether it still holds an activation, an unconfirmed activation settled, a
    /// stateless worker routed, an owner's activation request to another host) are
    /// boxed, so its size is that of the common path, a lookup answered from the
    /// table or a claim granted.
    async fn lookup_locked(
        self: &Arc<Self>,
        identity: &Identity,
        requester: SocketAddr,
        tag: PlacementTag,
        stale: Option<Location>,
        claim: Option<&Claim>,
    ) -> Reply {
        if self.stateless_pool(identity.kind()).is_some() {
            return Box::pin(self.route_to_worker(identity, requester)).await;
        }
        self.note_ring_seen();
        if let Some(loc) = self.directory.get(identity) {
            let alive = self.members.is_alive(loc.host);
            if alive && stale.as_ref() != Some(&loc) {
                return Reply::Located(loc);
            }
            if alive {
                // The requester found it dead: ask the host before replacing it, so a
                // transient failure never creates a second activation.
                match Box::pin(self.host_has(identity, &loc)).await {
                    Some(true) => return Reply::Located(loc),
                    Some(false) => {}
                    None => {
                        return Reply::Failed(Failure::Other(format!(
                            "host {} of {identity} does not answer",
                            loc.host
                        )))
                    }
                }
            } else {
                self.fence_entry_of_dead_host(identity, loc.host);
            }
            self.directory.unregister(identity, &loc);
        }
        if let Some(host) = self.directory.unconfirmed(identity) {
            if let Some(reply) = Box::pin(self.settle_unconfirmed(identity, host)).await {
                return reply;
            }
        }
        let candidates = self.members.hosts_of(identity.kind());
        if candidates.is_empty() {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        }
        let pending = self.rebuild_pending(&candidates);
        if !pending.is_empty() {
            match self.find_on_hosts(identity, &pending).await {
                Found::At(loc) => {
                    self.directory.record(identity, loc.clone());
                    return Reply::Located(loc);
                }
                Found::Unanswered(host) => {
                    // Its silence is not "not here": it may hold the activation and
                    // be cut off from this node only (and if it is gone, its Down
                    // fences the placement until its lease has lapsed).
                    return Reply::Failed(Failure::Other(format!(
                        "{identity} may live on {host}, which has not re-registered \
                         its activations for the current ring and does not answer"
                    )));
                }
                Found::Disputed(host) => {
                    return Reply::Failed(Failure::Other(format!(
                        "{host} does not see this node as the owner of {identity} yet \
                         (membership is changing); retry once the views agree"
                    )));
                }
                Found::Nowhere => {}
            }
        }
        if let Some((wait, mut confirmations)) = self.placement_fence(identity) {
            // The identity may still be live on a node that departed and has not
            // stopped hosting yet (the minority side of a partition, a one-way cut).
            match wait {
                Wait::Until(until) => tokio::time::sleep_until(until).await,
                Wait::Unconfirmed => {
                    // Half the control timeout: the requester hears why before its
                    // own request to this owner times out, and retries.
                    let confirmed =
                        tokio::time::timeout(self.config.rpc_timeout / 2, confirmations.changed())
                            .await;
                    if confirmed.is_err() {
                        return Reply::Failed(Failure::Other(format!(
                            "{identity} may still live on a departed member: no majority \
                             has confirmed the departure yet"
                        )));
                    }
                }
            }
            // Re-registrations may have arrived meanwhile: look again.
            return Box::pin(self.lookup_locked(identity, requester, tag, None, claim)).await;
        }
        let host = match claim {
            Some(claim) if candidates.contains(&claim.claimer) => claim.claimer,
            _ => self.place(identity, &candidates, requester, tag).await,
        };
        tracing::debug!(%identity, %host, "placing: no entry, nothing fences it");
        if let Some(name) = claim.and_then(|c| c.name.clone().filter(|_| c.claimer == host)) {
            // Granted: the entry first, then the claimer starts the activation it
            // names (`claim.rs` keeps the gap between the two safe).
            let loc = Location { host, name };
            self.directory.record(identity, loc.clone());
            return Reply::Located(loc);
        }
        let reply = if host == self.me {
            self.activate_here(identity, self.me, None).await
        } else {
            let req = Request::Activate {
                kind: identity.kind().to_owned(),
                key: identity.key().to_owned(),
                owner: self.me,
            };
            match Box::pin(self.rpc.call(self, host, req)).await {
                Ok(r) => r,
                Err(e) => {
                    // The request or its answer was lost: the host may hold the
                    // activation. Ask it before placing this identity anywhere.
                    self.directory.note_unconfirmed(identity, host);
                    Reply::Failed(Failure::Other(format!("activation on {host}: {e}")))
                }
            }
        };
        if let Reply::Located(loc) = &reply {
            self.directory.record(identity, loc.clone());
        }
        reply
    }

    /// Settles an activation this owner asked `host` for without an answer: `Some`
    /// reply to give the requester now (the activation is there, or the host does not
    /// answer yet), `None` to place the identity (the host holds nothing, and will not
    /// start the lost request late, or the host is gone and its fence recorded).
    async fn settle_unconfirmed(
        self: &Arc<Self>,
        identity: &Identity,
        host: SocketAddr,
    ) -> Option<Reply> {
        if !self.members.is_alive(host) {
            self.fence_entry_of_dead_host(identity, host);
            self.directory.confirmed(identity);
            return None;
        }
        let req = Request::Confirm {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
        };
        match self.rpc.call(self, host, req).await {
            Ok(Reply::Located(loc)) => {
                self.directory.confirmed(identity);
                self.directory.record(identity, loc.clone());
                Some(Reply::Located(loc))
            }
            Ok(Reply::Bool(false)) => {
                self.directory.confirmed(identity);
                None
            }
            Ok(other) => Some(other),
            Err(e) => Some(Reply::Failed(Failure::Other(format!(
                "activation on {host} not confirmed: {e}"
            )))),
        }
    }

    /// A stateless worker on the requester if it hosts the kind, else on a random
    /// host; not recorded.
    async fn route_to_worker(
        self: &Arc<Self>,
        identity: &Identity,
        requester: SocketAddr,
    ) -> Reply {
        let candidates = self.members.hosts_of(identity.kind());
        if candidates.is_empty() {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        }
        let host = if candidates.contains(&requester) {
            requester
        } else {
            placement::random(&candidates)
        };
        if host == self.me {
            return self.worker_here(identity).await;
        }
        let req = Request::Worker {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
        };
        match self.rpc.call(self, host, req).await {
            Ok(r) => r,
            Err(e) => Reply::Failed(Failure::Other(format!("worker on {host}: {e}"))),
        }
    }

    /// Asks each of `hosts` whether it holds `identity`, all at once, each for at
    /// most half the control timeout.
    pub(crate) async fn find_on_hosts(
        self: &Arc<Self>,
        identity: &Identity,
        hosts: &[SocketAddr],
    ) -> Found {
        // Half the control timeout: the requester of a lookup hears why before its
        // own request to this owner times out, and retries.
        let within = self.config.rpc_timeout / 2;
        let asks = hosts.iter().map(|&host| async move {
            let answer = if host == self.me {
                Ok(self.find_for_owner(identity, self.me).await)
            } else {
                let req = Request::Find {
                    kind: identity.kind().to_owned(),
                    key: identity.key().to_owned(),
                };
                self.rpc.call_within(self, host, req, within).await
            };
            match answer {
                Ok(Reply::Located(loc)) => Found::At(loc),
                Ok(Reply::Bool(false)) => Found::Nowhere,
                Ok(Reply::NotOwner) => Found::Disputed(host),
                _ => Found::Unanswered(host),
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .reduce(Found::either)
            .unwrap_or(Found::Nowhere)
    }

    /// `Some(alive?)`, or `None` if the host does not answer.
    async fn host_has(self: &Arc<Self>, identity: &Identity, loc: &Location) -> Option<bool> {
        if loc.host == self.me {
            return Some(self.has_settled(identity, &loc.name).await);
        }
        let req = Request::Has {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
            name: loc.name.to_string(),
        };
        match self.rpc.call(self, loc.host, req).await {
            Ok(Reply::Bool(b)) => Some(b),
            _ => None,
        }
    }

    async fn place(
        self: &Arc<Self>,
        identity: &Identity,
        candidates: &[SocketAddr],
        requester: SocketAddr,
        tag: PlacementTag,
    ) -> SocketAddr {
        let placement = match self.kinds.get(identity.kind()) {
            Some(slot) => slot.kind.config().placement.clone(),
            None => Placement::from_tag(tag),
        };
        let chosen = match placement {
            Placement::Random => placement::random(candidates),
            Placement::RoundRobin => {
                let i = self
                    .round_robin
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                candidates[i % candidates.len()]
            }
            Placement::PreferLocal if candidates.contains(&requester) => requester,
            Placement::Hash if candidates.contains(&self.me) => self.me,
            Placement::PreferLocal | Placement::Hash => placement::random(candidates),
            Placement::LeastLoaded => {
                let a = placement::random(candidates);
                let b = placement::random(candidates);
                if a == b {
                    a
                } else {
                    let (la, lb) = Box::pin(async {
                        futures::join!(
                            self.load_of(identity.kind(), a),
                            self.load_of(identity.kind(), b)
                        )
                    })
                    .await;
                    if lb < la {
                        b
                    } else {
                        a
                    }
                }
            }
            Placement::Custom(strategy) => strategy.place(&PlacementRequest {
                identity,
                candidates,
                requester,
                owner: self.me,
            }),
        };
        if candidates.contains(&chosen) {
            chosen
        } else {
            placement::random(candidates)
        }
    }

    async fn load_of(self: &Arc<Self>, kind: &str, host: SocketAddr) -> u64 {
        if host == self.me {
            return self.load(kind);
        }
        let req = Request::Load {
            kind: kind.to_owned(),
        };
        match self.rpc.call(self, host, req).await {
            Ok(Reply::Count(n)) => n,
            _ => u64::MAX,
        }
    }

    /// A host says it holds `at`: keep it unless another live activation is
    /// recorded, in which case `Bool(false)` tells the host to deactivate its copy.
    pub(crate) async fn serve_register(
        self: &Arc<Self>,
        identity: &Identity,
        at: Location,
    ) -> Reply {
        if self.members.owner(identity) != Some(self.me) {
            // Not (yet) the owner in this node's view: the host tries again.
            return Reply::NotOwner;
        }
        let _locked = self.directory.locks.lock(identity).await;
        {
            let current = self.directory.get(identity);
            match current {
                Some(loc) if loc == at => Reply::Bool(true),
                Some(loc) if self.members.is_alive(loc.host) => {
                    match self.host_has(identity, &loc).await {
                        Some(false) => {
                            self.directory.record(identity, at);
                            Reply::Bool(true)
                        }
                        _ => Reply::Bool(false),
                    }
                }
                _ => match self.directory.unconfirmed(identity) {
                    Some(host) if host != at.host => {
                        // Another host may hold the activation asked for without an
                        // answer: only one of the two may stay.
                        match self.settle_unconfirmed(identity, host).await {
                            None => {
                                self.directory.record(identity, at);
                                Reply::Bool(true)
                            }
                            Some(Reply::Located(_)) => Reply::Bool(false),
                            // No answer yet: the registering host tries again.
                            Some(_) => Reply::NotOwner,
                        }
                    }
                    _ => {
                        self.directory.confirmed(identity);
                        self.directory.record(identity, at);
                        Reply::Bool(true)
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16, name: &str) -> Location {
        Location {
            host: SocketAddr::from(([127, 0, 0, 1], port)),
            name: name.into(),
        }
    }

    #[test]
    fn an_entry_is_removed_only_by_the_activation_it_names() {
        let directory = Directory::default();
        let id = Identity::new("account", "a");
        directory.record(&id, at(1, "first"));
        directory.unregister(&id, &at(2, "first"));
        directory.unregister(&id, &at(1, "second"));
        assert_eq!(
            directory.get(&id),
            Some(at(1, "first")),
            "another one's end"
        );
        directory.unregister(&id, &at(1, "first"));
        assert_eq!(directory.get(&id), None);
        assert_eq!(directory.len(), 0);
    }

    #[test]
    fn a_claim_must_name_an_activation_of_its_identity() {
        let id = Identity::new("bank.Account", "a#1");
        assert!(names_activation_of("granary.v/bank.Account/a#1#7", &id));
        for wrong in [
            "granary.v/bank.Account/a#1#",
            "granary.v/bank.Account/a#1#7x",
            "granary.v/bank.Account/b#7",
            "granary.w/bank.Account/a#1#7",
            "granary.v/bank.Other/a#1#7",
            "granary.v/bank.Account/a#1",
        ] {
            assert!(!names_activation_of(wrong, &id), "{wrong}");
        }
    }

    #[test]
    fn a_lost_host_drops_its_entries_and_unconfirmed_activations() {
        let directory = Directory::default();
        let (a, b, c) = (
            Identity::new("account", "a"),
            Identity::new("account", "b"),
            Identity::new("account", "c"),
        );
        directory.record(&a, at(1, "a"));
        directory.record(&b, at(2, "b"));
        directory.note_unconfirmed(&c, at(1, "").host);
        assert_eq!(directory.unconfirmed(&c), Some(at(1, "").host));
        let mut lost = directory.retain_hosts(|host| host.port() != 1);
        lost.sort_by(|x, y| x.0.key().cmp(y.0.key()));
        let lost_host = at(1, "").host;
        assert_eq!(lost, vec![(a.clone(), lost_host), (c.clone(), lost_host)]);
        assert_eq!(directory.get(&b), Some(at(2, "b")));
        assert_eq!(directory.unconfirmed(&c), None);
        // A range that moved away takes its entries (and unconfirmed ones) along.
        directory.note_unconfirmed(&c, at(2, "").host);
        directory.retain_identities(|id| id.key() != "b" && id.key() != "c");
        assert_eq!(directory.len(), 0);
        assert_eq!(directory.unconfirmed(&c), None);
        directory.note_unconfirmed(&a, at(2, "").host);
        directory.confirmed(&a);
        assert_eq!(directory.unconfirmed(&a), None);
    }
}
