//! Request/reply over one-way control frames, and the actor that receives them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use granary_core::{Actor, Context, DeadLetter, DeadLetterReason, Handler, RemoteError};
use granary_remote::wire::{FrameHeader, FrameKind, CONTROL_CHANNEL};
use granary_remote::{Registry, SendError as TransportSendError, SendOptions};
use granary_storage::Identity;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::Runtime;
use crate::error::VirtualError;
use crate::protocol::{Body, ControlFrame, Failure, Reply, Request, CONTROL};

/// Pending requests of this node, by correlation id, with the address each went to.
pub(crate) struct Rpc {
    pending: Mutex<HashMap<u64, (SocketAddr, oneshot::Sender<Reply>)>>,
    /// The next request id. Ids only grow, also across a restart on the same address
    /// (they start from the wall clock in nanoseconds): a host orders an owner's
    /// requests by id (`Request::Confirm` refuses the `Activate`s sent before it).
    next: AtomicU64,
}

impl Default for Rpc {
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        Self {
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(now),
        }
    }
}

/// A request of this node's whose answer is awaited: dropped, it is no longer
/// pending (a no-op once its answer has come and taken it out).
struct Unanswered<'a> {
    rpc: &'a Rpc,
    id: u64,
}

impl Unanswered<'_> {
    /// The answer came (or the request was failed): whoever sent it into the channel
    /// took the entry out already, so there is nothing to remove — no second lock per
    /// answered request.
    fn answered(self) {
        std::mem::forget(self);
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.rpc.pending.lock().remove(&self.id);
    }
}

impl Rpc {
    /// Sends `req` to `to` and waits for the reply within the RPC timeout.
    ///
    /// The request is sent when this is called, not when the future is first polled:
    /// the future only waits for the answer, and holds neither the request nor its
    /// frame (it is part of every claim's and lookup's future).
    pub(crate) fn call(
        &self,
        rt: &Arc<Runtime>,
        to: SocketAddr,
        req: Request,
    ) -> impl std::future::Future<Output = Result<Reply, VirtualError>> + Send + '_ {
        self.call_within(rt, to, req, rt.config.rpc_timeout)
    }

    /// [`Rpc::call`] with its own timeout.
    pub(crate) fn call_within(
        &self,
        rt: &Arc<Runtime>,
        to: SocketAddr,
        req: Request,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Reply, VirtualError>> + Send + '_ {
        let sent = self.send(rt, to, req);
        async move {
            let (id, rx) = sent?;
            // However the wait ends (answered, timed out, or dropped unanswered by a
            // `select!` that took another branch), the request is no longer pending.
            let pending = Unanswered { rpc: self, id };
            let answer = tokio::time::timeout(timeout, rx).await;
            if answer.is_ok() {
                pending.answered();
            }
            match answer {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(VirtualError::Unavailable {
                    identity: to.to_string(),
                    attempts: 1,
                    last: format!("the connection to {to} was lost"),
                }),
                Err(_) => Err(VirtualError::Unavailable {
                    identity: to.to_string(),
                    attempts: 1,
                    last: format!("no answer from {to} within {timeout:?}"),
                }),
            }
        }
    }

    /// Sends `req` to `to` as a new request: its id and where its reply will come.
    /// Not part of the waiting future, which then holds neither the request nor its
    /// frame while it waits.
    fn send(
        &self,
        rt: &Runtime,
        to: SocketAddr,
        req: Request,
    ) -> Result<(u64, oneshot::Receiver<Reply>), VirtualError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, (to, tx));
        let frame = ControlFrame {
            from: rt.me,
            id,
            body: Body::Request(req),
        };
        if let Err(e) = send_control(rt, to, &frame) {
            self.pending.lock().remove(&id);
            return Err(VirtualError::Unavailable {
                identity: to.to_string(),
                attempts: 1,
                last: e,
            });
        }
        Ok((id, rx))
    }

    fn complete(&self, id: u64, reply: Reply) {
        if let Some((_, tx)) = self.pending.lock().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    /// Fails every request waiting for `peer` at once (its caller may retry elsewhere);
    /// how many.
    fn fail_to(&self, peer: SocketAddr) -> usize {
        let mut pending = self.pending.lock();
        let before = pending.len();
        pending.retain(|_, (to, _)| *to != peer);
        before - pending.len()
    }
}

/// Fails this node's requests to a peer as soon as its transport reports the peer
/// lost (control connection closed, or silent past the heartbeat timeout), instead of
/// leaving each to the RPC timeout: a client's lookup sent to a gateway that was just
/// paused moves on to another gateway at the heartbeat timeout, not 2 s later. Ends
/// with the transport or the runtime.
pub(crate) fn fail_requests_to_lost_peers(rt: &Arc<Runtime>) -> tokio::task::AbortHandle {
    use granary_remote::PeerEvent;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = rt.remote().transport().subscribe();
    let weak = Arc::downgrade(rt);
    tokio::spawn(async move {
        loop {
            let lost = match events.recv().await {
                Ok(PeerEvent::Disconnected { node, .. }) => node.addr(),
                Ok(PeerEvent::Unreachable { addr, .. }) => addr,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let Some(rt) = weak.upgrade() else { return };
            let failed = rt.rpc.fail_to(lost);
            if failed > 0 {
                tracing::debug!(peer = %lost, failed, "requests to a lost peer failed");
            }
        }
    })
    .abort_handle()
}

/// Sends one control frame to the control inbox at `to` on the transport's control
/// channel. Never on a data connection: a data connection's reader can be held back by
/// flow control (a slow activation's full mailbox, `docs/wire.md`), and directory
/// lookups and host-lease renewals must not wait behind it, or a node with one slow
/// activation would lose its lease and fence every activation it hosts. Otherwise it
/// goes as a remote ref's tell would: with the current trace context, and a frame that
/// cannot be sent is published as a dead letter.
fn send_control(rt: &Runtime, to: SocketAddr, frame: &ControlFrame) -> Result<(), String> {
    let registry = Registry::global().map_err(|e| e.to_string())?;
    let (type_tag, body) = registry.encode(frame).map_err(|e| e.to_string())?;
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: CONTROL_CHANNEL,
        type_tag,
        correlation: 0,
        sender: "",
        recipient: CONTROL,
        trace: granary_remote::trace::current(),
    };
    let remote = rt.remote();
    remote
        .transport()
        .send(to, header, body, SendOptions::control())
        .map_err(|e| {
            let error = match &e {
                TransportSendError::Unreachable { .. } => RemoteError::Unreachable,
                TransportSendError::Backpressure { peer } => {
                    RemoteError::Backpressure(peer.to_string())
                }
                TransportSendError::FrameTooLarge { len, max } => RemoteError::FrameTooLarge {
                    len: *len,
                    max: *max,
                },
                other => RemoteError::Other(other.to_string()),
            };
            remote.system().events().publish(DeadLetter {
                recipient: remote.remote_ref::<ControlInbox>(to, CONTROL).id(),
                message_type: std::any::type_name::<ControlFrame>(),
                reason: DeadLetterReason::Remote(error),
            });
            e.to_string()
        })
}

/// The node actor exposed as `granary.virtual.control`. It never waits: requests are
/// served on their own tasks.
pub(crate) struct ControlInbox {
    pub(crate) runtime: Arc<OnceLock<Weak<Runtime>>>,
}

impl Actor for ControlInbox {}

impl Handler<ControlFrame> for ControlInbox {
    async fn handle(&mut self, frame: ControlFrame, _ctx: &mut Context<Self>) {
        let Some(rt) = self.runtime.get().and_then(Weak::upgrade) else {
            return;
        };
        match frame.body {
            Body::Reply(reply) => rt.rpc.complete(frame.id, reply),
            Body::Request(req) => {
                tokio::spawn(async move {
                    let reply = rt.serve(req, frame.from, frame.id).await;
                    let back = ControlFrame {
                        from: rt.me,
                        id: frame.id,
                        body: Body::Reply(reply),
                    };
                    if let Err(e) = send_control(&rt, frame.from, &back) {
                        tracing::debug!(to = %frame.from, error = %e, "control reply not sent");
                    }
                });
            }
        }
    }
}

impl Runtime {
    /// Serves one control request, `id`, from the peer `from`.
    ///
    /// Its future is copied into a task per request, and it is as large as its
    /// largest arm: the arms a member's lookups and claims never take (a client's
    /// `Locate`, a re-registration) are boxed, so they cost an allocation when they
    /// run instead of kilobytes on every request.
    pub(crate) async fn serve(self: &Arc<Self>, req: Request, from: SocketAddr, id: u64) -> Reply {
        match req {
            Request::Lookup {
                kind,
                key,
                requester,
                placement,
                stale,
            } => {
                self.serve_lookup(&Identity::new(kind, key), requester, placement, stale)
                    .await
            }
            Request::Activate { kind, key, owner } => {
                let request = (owner == from).then_some(id);
                self.activate_here(&Identity::new(kind, key), owner, request)
                    .await
            }
            Request::Confirm { kind, key } => {
                self.confirm_here(&Identity::new(kind, key), from, id).await
            }
            Request::Rebuilt { ring } => {
                self.note_rebuilt(from, ring);
                Reply::Done
            }
            Request::Worker { kind, key } => self.worker_here(&Identity::new(kind, key)).await,
            Request::Find { kind, key } => {
                self.find_for_owner(&Identity::new(kind, key), from).await
            }
            Request::Has { kind, key, name } => {
                Reply::Bool(self.has_settled(&Identity::new(kind, key), &name).await)
            }
            Request::Register { kind, key, at } => {
                Box::pin(self.serve_register(&Identity::new(kind, key), at)).await
            }
            Request::Unregister { kind, key, at } => {
                self.directory.unregister(&Identity::new(kind, key), &at);
                Reply::Done
            }
            Request::UnregisterAll { ends } => {
                for end in ends {
                    (self.directory).unregister(&Identity::new(end.kind, end.key), &end.at);
                }
                Reply::Done
            }
            Request::Load { kind } => Reply::Count(self.load(&kind)),
            Request::Members => Reply::Members(self.members.views()),
            Request::Locate {
                kind,
                key,
                placement,
                stale,
            } => match Box::pin(self.locate(&Identity::new(kind, key), stale, placement, false))
                .await
            {
                Ok(loc) => Reply::Located(loc),
                Err(VirtualError::NoHost(kind)) => Reply::Failed(Failure::NoHost(kind)),
                Err(VirtualError::ShuttingDown) => Reply::Failed(Failure::ShuttingDown),
                Err(e) => Reply::Failed(Failure::Other(e.to_string())),
            },
            Request::Lease => self.grant_lease(from),
            Request::Departed { host } => self.answer_departed(host),
            Request::Claim {
                kind,
                key,
                name,
                stale,
            } => {
                let identity = Identity::new(kind, key);
                // Only the claimer can say that an activation of its own has ended.
                let stale = stale.filter(|loc| loc.host == from);
                (self.serve_claim(&identity, from, Some(Arc::from(name)), stale)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose waiting future is dropped unanswered (a `select!` took another
    /// branch) is no longer pending: nothing is kept for an answer that may never come.
    #[test]
    fn a_request_dropped_unanswered_is_no_longer_pending() {
        let rpc = Rpc::default();
        let peer: SocketAddr = "10.0.0.1:7000".parse().expect("an address");
        for id in [1, 2] {
            let (tx, _rx) = oneshot::channel();
            rpc.pending.lock().insert(id, (peer, tx));
        }
        drop(Unanswered { rpc: &rpc, id: 1 });
        let pending = rpc.pending.lock();
        assert!(
            !pending.contains_key(&1),
            "the dropped request is forgotten"
        );
        assert!(pending.contains_key(&2), "another request is still pending");
    }
}
