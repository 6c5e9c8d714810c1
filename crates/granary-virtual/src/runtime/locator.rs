//! Finding an identity: this node's own activations, the bounded location cache
//! (`locations.rs`), else the identity's directory owner (or, on a client, a
//! gateway); and giving up on a host once the view says it is gone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use granary_core::RemoteTarget;
use granary_storage::{Identity, IdentityParts};

use super::catalog::Current;
use super::claim::CallerPlaced;
use super::{failure_error, Members, Runtime};
use crate::error::VirtualError;
use crate::placement::Placement;
use crate::protocol::{Location, Reply, Request};
use crate::tracked::ActivationDoor;

/// Why a wait on a host ended ([`Runtime::host_lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// The host left this node's ring.
    Host,
    /// This node itself went Down.
    ThisNode,
}

impl Runtime {
    /// Where `identity` lives when that is known without asking anyone: a live
    /// activation here or the location cache (a stateless worker kind hosted here is
    /// always `None`: [`Self::locate`] picks a worker per call).
    pub(crate) fn locate_known(&self, identity: &Identity) -> Option<Location> {
        if self.stateless_pool(identity.kind()).is_some() {
            return None;
        }
        // An activation here is found in the local table; the cache holds only
        // locations on other nodes, so a node's own activations cost it no entry.
        let loc = self
            .find_local(identity)
            .or_else(|| self.cache.get(identity))?;
        self.meters.cache_hit();
        Some(loc)
    }

    /// The owner to send a call to `identity` to when it is not located yet, without
    /// a lookup: a kind this member hosts with hash placement lives on the identity's
    /// directory owner, so the call goes straight there under the name of "whichever
    /// activation of the key" (`door.rs`, `any_activation_name`), which finds or
    /// activates it. `None` when a lookup is needed (another placement, a client, a
    /// stateless worker kind, this node the owner, an owner that does not host the
    /// kind).
    pub(crate) fn direct_owner(&self, identity: &Identity) -> Option<SocketAddr> {
        if !self.is_member() {
            return None;
        }
        let config = self.kinds.get(identity.kind())?.kind.config();
        if !matches!(config.placement, Placement::Hash) || config.stateless_workers.is_some() {
            return None;
        }
        let owner = self.members.owner(identity)?;
        if owner == self.me || !self.members.hosts_of(identity.kind()).contains(&owner) {
            return None;
        }
        Some(owner)
    }

    /// Whether this node is a member (not an external client).
    pub(crate) fn is_member(&self) -> bool {
        !matches!(self.members, Members::Client(_))
    }

    /// Where `identity` lives: the cache, else its directory owner (which activates
    /// it if needed). `stale` is a location the caller found dead. `may_place`: the
    /// call is an ask from this member, which may go to a host this node picks
    /// ([`Self::place_by_caller`]); a tell may not (a host that refuses it would lose
    /// it), nor a client's call through this gateway (this node does not know which
    /// it is).
    pub(crate) async fn locate(
        self: &Arc<Self>,
        identity: &Identity,
        stale: Option<Location>,
        placement: crate::placement::PlacementTag,
        may_place: bool,
    ) -> Result<Location, VirtualError> {
        if self.stateless_pool(identity.kind()).is_some() {
            // A stateless worker kind hosted here: served by a local worker.
            return match self.worker_here(identity).await {
                Reply::Located(loc) => Ok(loc),
                Reply::Failed(f) => Err(failure_error(identity, f)),
                other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
            };
        }
        if stale.is_none() {
            if let Some(loc) = self.locate_known(identity) {
                return Ok(loc);
            }
        }
        if let Members::Client(_) = self.members {
            return self
                .locate_through_gateway(identity, stale, placement)
                .await;
        }
        let owner = self
            .members
            .owner(identity)
            .ok_or(VirtualError::NoMembers)?;
        let placed = match stale {
            // A caller that found a location stale asks the owner where it lives.
            None if may_place && self.places_by_caller(identity.kind()) => {
                match self.place_by_caller(identity) {
                    Some(CallerPlaced::Elsewhere(loc)) => Some(Reply::Located(loc)),
                    Some(CallerPlaced::Here) => Some(self.claim_here(identity).await),
                    None => None,
                }
            }
            _ => None,
        };
        let reply = match placed {
            Some(reply) => reply,
            None => self.lookup_at(owner, identity, placement, stale).await?,
        };
        match reply {
            Reply::Located(loc) => {
                if loc.host != self.me {
                    self.cache.insert(identity.clone(), loc.clone());
                }
                Ok(loc)
            }
            Reply::NotOwner => Err(VirtualError::Unavailable {
                identity: identity.to_string(),
                attempts: 1,
                last: format!("{owner} does not own the identity yet (membership changing)"),
            }),
            Reply::Failed(f) => Err(failure_error(identity, f)),
            other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
        }
    }

    /// Asks `owner`, the directory owner of `identity`, where it lives (this node's
    /// own partition if `owner` is this node).
    async fn lookup_at(
        self: &Arc<Self>,
        owner: SocketAddr,
        identity: &Identity,
        placement: crate::placement::PlacementTag,
        stale: Option<Location>,
    ) -> Result<Reply, VirtualError> {
        self.meters.lookup();
        let reply = if owner == self.me {
            // Boxed, as the owner's own lookup in `claim_here`: inline, it would
            // double the size of every lookup's future.
            Box::pin(self.serve_lookup(identity, self.me, placement, stale)).await
        } else {
            let req = Request::Lookup {
                kind: identity.kind().to_owned(),
                key: identity.key().to_owned(),
                requester: self.me,
                placement,
                stale,
            };
            tokio::select! {
                reply = self.rpc.call(self, owner, req) => reply?,
                // The owner went Down while we waited (paused, cut off): its answer
                // would come at the RPC timeout at best; the caller asks the new owner.
                gone = self.host_lost(owner) => {
                    return Err(match gone {
                        Gone::Host => VirtualError::Unavailable {
                            identity: identity.to_string(),
                            attempts: 1,
                            last: format!("directory owner {owner} went Down during the lookup"),
                        },
                        Gone::ThisNode => VirtualError::NodeDown,
                    })
                }
            }
        };
        Ok(reply)
    }

    /// A client's lookup: its gateway locates the identity (a client has no
    /// connection to the directory owners, only to its gateways).
    async fn locate_through_gateway(
        self: &Arc<Self>,
        identity: &Identity,
        stale: Option<Location>,
        placement: crate::placement::PlacementTag,
    ) -> Result<Location, VirtualError> {
        let gateway = (self.gateway(&identity.to_string())).ok_or(VirtualError::NoMembers)?;
        self.meters.lookup();
        let req = Request::Locate {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
            placement,
            stale,
        };
        match self.rpc.call(self, gateway, req).await? {
            Reply::Located(loc) => {
                if loc.host != self.me {
                    self.cache.insert(identity.clone(), loc.clone());
                }
                Ok(loc)
            }
            Reply::Failed(f) => Err(failure_error(identity, f)),
            other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
        }
    }

    /// The gateway a client sends `target`'s calls through now: one whose connection
    /// is up, chosen by a hash of `target` (so the calls spread over the gateways while
    /// one target's messages keep one path, and their order), else the first it has.
    /// `None` on a member.
    pub(crate) fn gateway(&self, target: &str) -> Option<SocketAddr> {
        let gateways = self.members.gateways();
        let transport = self.remote.transport();
        let up: Vec<SocketAddr> = (gateways.iter().copied())
            .filter(|g| transport.is_connected(*g))
            .collect();
        if up.is_empty() {
            return gateways.first().copied();
        }
        let hash = (target.bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(up[(hash % up.len() as u64) as usize])
    }

    /// The activation at `loc`, type erased: straight to its host from a member,
    /// through a gateway from a client.
    pub(crate) fn activation_target(&self, loc: &Location) -> Arc<dyn RemoteTarget> {
        match self.gateway(&loc.name) {
            Some(gateway) => self.remote.remote_target_via(gateway, loc.host, &loc.name),
            None => self.remote.remote_target(loc.host, &loc.name),
        }
    }

    pub(crate) fn invalidate(&self, identity: &Identity) {
        self.cache.remove(identity);
    }

    /// The tracked door of an activation here, if it is the one named.
    pub(crate) fn local_door(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Option<Arc<dyn ActivationDoor>> {
        self.activation_door(identity, |n| n == name)
    }

    /// The door of the activation (or stateless worker) of `identity` here whose
    /// name passes `is_named`, alive or closing.
    pub(crate) fn activation_door(
        &self,
        identity: &dyn IdentityParts,
        is_named: impl Fn(&str) -> bool,
    ) -> Option<Arc<dyn ActivationDoor>> {
        self.catalog.door(identity, is_named)
    }

    /// Locations in this node's cache.
    pub(crate) fn cached_locations(&self) -> usize {
        self.cache.len()
    }

    /// Live activations of `kind` here.
    pub(crate) fn load(&self, kind: &str) -> u64 {
        self.catalog.live_count(kind)
    }

    /// Whether the activation (or stateless worker) `name` of `identity` is here and
    /// live.
    pub(crate) fn has_local(&self, identity: &Identity, name: &str) -> bool {
        self.catalog.is_live(identity, name)
    }

    /// The live activation of `identity` here, said only once any deactivating one
    /// has stopped: what a directory owner asks before it places the identity
    /// (`Find`). A deactivating activation may still be finishing a message — on a
    /// node downing itself, whose handler waits on a call across a cut, or a
    /// passivation saving its state — so "not here" while it runs would let the owner
    /// place a second one beside it.
    pub(crate) async fn find_settled(&self, identity: &Identity) -> Option<Location> {
        if let Current::Closing(stopped) = self.catalog.current(identity) {
            stopped.await;
        }
        self.find_local(identity)
    }

    /// Whether the activation (or stateless worker) `name` of `identity` is here and
    /// live; "no" said only once any deactivating activation of `identity` has
    /// stopped (see [`Self::find_settled`]): what an owner asks before it replaces an
    /// activation a caller found gone (`Has`).
    pub(crate) async fn has_settled(&self, identity: &Identity, name: &str) -> bool {
        if self.has_local(identity, name) {
            return true;
        }
        if self.claim_ended(identity, name).await {
            // A claim here was granted this name: "no" only if it never started.
            return self.has_local(identity, name);
        }
        if let Current::Closing(stopped) = self.catalog.current(identity) {
            stopped.await;
        }
        self.has_local(identity, name)
    }

    /// The live (not closing) activation of `identity` here.
    pub(crate) fn find_local(&self, identity: &Identity) -> Option<Location> {
        let name = self.catalog.live_name(identity)?;
        Some(Location {
            host: self.me,
            name,
        })
    }

    /// The view of the members changed (a membership event, a client's refresh).
    pub(crate) fn view_changed(&self) {
        self.views.send_modify(|n| *n += 1);
    }

    /// Completes once `host` is no longer an Up member in this node's view: a call
    /// waiting for a reply from it gives up then instead of at its timeout (a
    /// partition or a dead process drops packets silently).
    ///
    /// Only a member trusts its view for this: its ring is the cluster's own
    /// decision. A client's view is a copy of whichever member answered last, and a
    /// member that has not yet seen a join can leave out a live host; giving up on
    /// that host would resend a request it is handling. A client learns that a host
    /// is gone from its transport instead (the ask fails with `Unreachable` once the
    /// connection is lost or heartbeats stop).
    ///
    /// For a host taken from this node's own ring (a directory owner): a host that
    /// left the ring before this is called counts as lost at once. A host named by
    /// someone else's answer (where an activation lives) may not be in the ring yet:
    /// see [`Self::host_lost_once_seen`].
    ///
    /// It also completes, with [`Gone::ThisNode`], once this node itself goes Down
    /// (it was on its own ring when the wait began): a call it made no longer counts,
    /// and one an activation here is blocked on would hold that activation, and every
    /// call queued behind it, until the call's timeout.
    pub(crate) fn host_lost(&self, host: SocketAddr) -> impl Future<Output = Gone> + Send + '_ {
        // Not an `async fn` of its own: a wrapper's future would hold the arguments a
        // second time, in every call's and claim's future.
        self.until_gone(host, false)
    }

    /// [`Self::host_lost`] for a host named by someone else's answer (where an
    /// activation lives): one this node's ring does not hold (yet) counts as lost
    /// only once it has entered the ring and left it again. The host comes from its
    /// directory owner, whose ring may be ahead of this node's (a member joined, and
    /// this node has not heard of it yet); taking it for lost at once would resend a
    /// call it received and is handling — the call handled twice. A host that is
    /// really gone is noticed by the transport (the call fails `Unreachable` when its
    /// connection is lost) or at the call's timeout.
    pub(crate) fn host_lost_once_seen(
        &self,
        host: SocketAddr,
    ) -> impl Future<Output = Gone> + Send + '_ {
        self.until_gone(host, true)
    }

    /// Completes once `host` is not in this member's ring (never on a client, see
    /// [`Self::host_lost`]); with `seen_first`, only once it has been in it before.
    /// Or once this node goes Down, if it was on its own ring to begin with.
    async fn until_gone(&self, host: SocketAddr, seen_first: bool) -> Gone {
        if matches!(self.members, Members::Client(_)) {
            return std::future::pending().await;
        }
        let mut changes = self.views.subscribe();
        let mut seen = !seen_first;
        // Only a call begun while this node was on its own ring ends with its Down. A
        // ring read, as for `host` (every remote ask polls this once); the status, which
        // takes the cluster's lock, is read only when the view changes.
        let on_ring_at_start = self.members.is_alive(self.me);
        loop {
            let alive = self.members.is_alive(host);
            if seen && !alive {
                return Gone::Host;
            }
            seen |= alive;
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if on_ring_at_start && self.members.is_down_self() {
                return Gone::ThisNode;
            }
        }
    }
}
