//! The hand-off of directory ranges on a membership change (docs/semantics.md, "The
//! directory under membership change"): each host re-registers its activations with
//! their owners on the new ring and says when it is done; until a host has said so for
//! an owner's current ring, that owner asks it before placing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use granary_cluster::{HashRing, NodeId};
use granary_storage::Identity;
use parking_lot::Mutex;

use super::{members, Runtime};
use crate::protocol::{Location, Reply, Request};

/// How long a host keeps retrying the re-registration of an activation with an
/// owner that has not seen the membership change yet (answers `NotOwner`); after
/// that the activation is deactivated rather than left unrecorded.
const REBUILD_GRACE: Duration = Duration::from_secs(5);

/// Attempts at delivering a "re-registered" notice to one member.
const REBUILT_NOTICE_ATTEMPTS: u32 = 3;

/// Re-registrations in flight at once after a membership change.
const REREGISTER_CONCURRENCY: usize = 64;

/// Progress of the directory rebuild after the last membership change this node saw.
#[derive(Default)]
pub(crate) struct RebuildProgress {
    state: Mutex<Rebuild>,
}

#[derive(Default)]
struct Rebuild {
    /// Fingerprint of the ring this node's membership task last handled.
    ring: u64,
    /// The latest ring fingerprint each host said it finished re-registering for.
    done: HashMap<SocketAddr, u64>,
    /// The last ring a lookup asked about, with its fingerprint (computed once per
    /// ring, not per lookup).
    asked: Option<(Arc<HashRing>, u64)>,
}

impl RebuildProgress {
    /// This node's ring is now the one with fingerprint `ring`.
    fn ring_changed(&self, ring: u64) {
        self.state.lock().ring = ring;
    }

    /// `host` finished re-registering its activations for the ring `ring`.
    fn done(&self, host: SocketAddr, ring: u64) {
        let mut state = self.state.lock();
        state.done.insert(host, ring);
    }

    /// Hosts among `hosts` that have not said they are done for `ring`, this node's
    /// ring now — which may be newer than the one its membership task last handled:
    /// until the task has handled it, this node itself is one of them.
    fn pending(&self, hosts: &[SocketAddr], ring: &Arc<HashRing>) -> Vec<SocketAddr> {
        let mut state = self.state.lock();
        let current = match &state.asked {
            Some((asked, print)) if Arc::ptr_eq(asked, ring) => *print,
            _ => {
                let print = members::fingerprint(ring);
                state.asked = Some((ring.clone(), print));
                print
            }
        };
        (hosts.iter().copied())
            .filter(|h| state.done.get(h) != Some(&current))
            .collect()
    }

    /// Whether `host` said it finished re-registering for the ring `ring`, or for
    /// this node's current one.
    fn done_for(&self, host: SocketAddr, ring: u64) -> bool {
        let state = self.state.lock();
        state
            .done
            .get(&host)
            .is_some_and(|done| *done == ring || *done == state.ring)
    }

    /// Forgets hosts that `alive` no longer accepts.
    fn retain_hosts(&self, alive: impl Fn(&SocketAddr) -> bool) {
        let mut state = self.state.lock();
        state.done.retain(|h, _| alive(h));
        super::shrink_if_sparse(&mut state.done);
    }
}

impl Runtime {
    /// `host` finished re-registering its activations for the ring `ring`.
    pub(crate) fn note_rebuilt(&self, host: SocketAddr, ring: u64) {
        self.rebuild.done(host, ring);
    }

    /// Hosts among `hosts` that have not said they re-registered their activations
    /// for this node's current ring: one of them may hold an activation this node
    /// has no entry for yet, so a placement asks them first. Every host says so once
    /// it handled the change (it deactivates what it could not register), so the
    /// set empties as the views converge; there is no time limit after which an
    /// owner places without asking.
    pub(crate) fn rebuild_pending(&self, hosts: &[SocketAddr]) -> Vec<SocketAddr> {
        self.rebuild.pending(hosts, &self.members.ring())
    }

    /// Whether `host` said it re-registered its activations for `ring` (a ring it
    /// departed from) or for this node's current ring: if it departs without having
    /// said so, it may hold an activation this node owns and has no entry for (see
    /// `fence.rs`, unsettled departures). `ring` may be older than the last ring
    /// with `host` in it (the ring the last lookup saw), hence the current one too.
    pub(crate) fn rebuilt_for(&self, host: SocketAddr, ring: &HashRing) -> bool {
        self.rebuild.done_for(host, members::fingerprint(ring))
    }

    /// After a membership change: forget locations on nodes that are gone, drop
    /// directory entries this node no longer owns, and register every local
    /// activation whose recorded owner (address and incarnation) is not its owner on
    /// the current ring. An activation that cannot be registered is stopped (and
    /// waited for): a live activation no owner records is how a second one gets
    /// placed. Then tells every member this node is done for the ring.
    pub(crate) async fn on_membership_change(self: &Arc<Self>) {
        let ring = self.members.ring();
        self.rebuild.ring_changed(members::fingerprint(&ring));
        self.view_changed();
        let alive = |host: &SocketAddr| self.members.is_alive(*host);
        self.cache.retain_hosts(|h| alive(h));
        self.superseded.retain_owners(|h| alive(h));
        self.rebuild.retain_hosts(|h| alive(h));
        self.fence_lost(self.directory.retain_hosts(|h| alive(h)));
        // Entries of ranges that moved away: their new owner rebuilds them from the
        // hosts; kept here they would be served again, stale, if the range came back.
        self.directory.retain_identities(|identity| {
            ring.owner_of_position(members::ring_position(identity))
                .map(|n| n.addr)
                == Some(self.me)
        });
        let moved: Vec<(Identity, Arc<str>, NodeId)> =
            self.catalog.registered_elsewhere(|identity| {
                ring.owner_of_position(members::ring_position(identity))
            });
        // Concurrently (bounded), so that one unreachable owner does not hold up the
        // rest for its RPC timeout each.
        let unregistered: Vec<(Identity, Arc<str>)> = futures::stream::iter(moved)
            .map(|(identity, name, owner)| async move {
                let registered = self
                    .reregister(identity.clone(), name.clone(), owner.addr)
                    .await;
                let still_owner = self.members.owner(&identity) == Some(owner.addr);
                if registered && still_owner {
                    self.catalog.note_registered_with(&identity, &name, owner);
                } else if registered {
                    // The range moved on meanwhile. The owner it was recorded with
                    // before dropped its entry when the range left it, so even if
                    // the range goes back there, the next change must register it.
                    self.catalog.note_registered_with_none(&identity, &name);
                }
                (!registered).then_some((identity, name))
            })
            .buffer_unordered(REREGISTER_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if !unregistered.is_empty() {
            tracing::info!(
                count = unregistered.len(),
                "activations could not be registered with their new owner; deactivating them"
            );
            let waits: Vec<_> = (unregistered.iter())
                .filter_map(|(identity, name)| self.catalog.stop(identity, name))
                .collect();
            futures::future::join_all(waits).await;
        }
        self.announce_rebuilt(&ring);
    }

    /// Registers the live activation `name` of `identity` with its new owner; stops
    /// it if the owner already records another live one. Retries while the owner has
    /// not seen the membership change yet; `false` if the owner never accepted and
    /// the ring did not move on (a later change registers it again otherwise).
    async fn reregister(
        self: &Arc<Self>,
        identity: Identity,
        name: Arc<str>,
        owner: SocketAddr,
    ) -> bool {
        self.meters.handoff();
        let deadline = tokio::time::Instant::now() + REBUILD_GRACE;
        let mut pause = Duration::from_millis(5);
        loop {
            let at = Location {
                host: self.me,
                name: name.clone(),
            };
            let kept = if owner == self.me {
                self.serve_register(&identity, at).await
            } else {
                let req = Request::Register {
                    kind: identity.kind().to_owned(),
                    key: identity.key().to_owned(),
                    at,
                };
                match self.rpc.call(self, owner, req).await {
                    Ok(reply) => reply,
                    Err(_) => return false,
                }
            };
            match kept {
                Reply::Bool(false) => {
                    tracing::info!(%identity, "duplicate activation found on re-registration; deactivating it");
                    self.catalog.stop(&identity, &name);
                    return true;
                }
                Reply::NotOwner if self.members.owner(&identity) != Some(owner) => {
                    // The ring moved on again: the next change registers it with
                    // the owner then (its recorded owner stays the old one).
                    return true;
                }
                Reply::NotOwner if tokio::time::Instant::now() + pause < deadline => {
                    // Backoff while the owner's view catches up with ours.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Reply::NotOwner => return false,
                _ => return true,
            }
        }
    }

    /// Tells every member that this node's activations are registered with their
    /// owners on `ring` (or deactivated), so owners stop asking it before placing.
    fn announce_rebuilt(self: &Arc<Self>, ring: &HashRing) {
        let print = members::fingerprint(ring);
        self.rebuild.done(self.me, print);
        for (node, _) in ring.nodes() {
            if node.addr == self.me {
                continue;
            }
            let rt = self.clone();
            tokio::spawn(async move {
                for attempt in 1..=REBUILT_NOTICE_ATTEMPTS {
                    let req = Request::Rebuilt { ring: print };
                    match rt.rpc.call(&rt, node.addr, req).await {
                        Ok(_) => return,
                        Err(e) => {
                            tracing::debug!(to = %node.addr, attempt, error = %e, "rebuild notice not acknowledged");
                        }
                    }
                    if !rt.members.is_alive(node.addr) {
                        return;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_pending_until_it_is_done_for_the_current_ring() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let ring_of = |nodes: &[SocketAddr]| {
            let mut ring = HashRing::new();
            for &addr in nodes {
                ring.insert(NodeId::new(addr, 1), 16);
            }
            Arc::new(ring)
        };
        let (older, current, newer) = (ring_of(&[a]), ring_of(&[a, b]), ring_of(&[b]));
        let print = |ring: &Arc<HashRing>| members::fingerprint(ring);
        let progress = RebuildProgress::default();
        progress.ring_changed(print(&current));
        assert_eq!(progress.pending(&[a, b], &current), vec![a, b]);
        progress.done(a, print(&current));
        progress.done(b, print(&older));
        assert_eq!(
            progress.pending(&[a, b], &current),
            vec![b],
            "done for an older ring"
        );
        // A lookup on a newer ring than the membership task has handled yet (this
        // node among the hosts) asks everyone not done for that newer ring.
        assert_eq!(
            progress.pending(&[a, b], &newer),
            vec![a, b],
            "a new ring asks everyone, before the task handles it too"
        );
        progress.ring_changed(print(&newer));
        progress.done(b, print(&newer));
        progress.retain_hosts(|h| *h != a);
        assert_eq!(progress.pending(&[b], &newer), Vec::<SocketAddr>::new());
    }

    /// A departing host is settled if it said it was done for the ring it departed
    /// from or for this node's current ring; not for an older one.
    #[test]
    fn a_host_is_done_for_the_ring_it_departed_from_or_the_current_one() {
        let host: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let progress = RebuildProgress::default();
        progress.ring_changed(8);
        assert!(!progress.done_for(host, 7), "nothing said");
        progress.done(host, 7);
        assert!(progress.done_for(host, 7));
        assert!(!progress.done_for(host, 6), "done for another ring");
        progress.done(host, 8);
        assert!(progress.done_for(host, 6), "done for the current ring");
    }
}
