//! The actors of `big` (seed 000 §3.3.5–6, Listing 3), in both modes.
//!
//! Every big actor pings every other one; each ping is answered by a pong, and each
//! pong makes its receiver ping that peer again, until the actor has sent every
//! peer its share of pings and had them all answered. Every actor's mailbox takes pings and
//! pongs from all the others: many-to-many contention. The bookkeeping is one piece
//! of logic ([`Mesh`]) used by the plain actors of the distributed mode
//! ([`BigActor`], spread over the nodes explicitly) and by the virtual kind
//! ([`VirtualBig`], placed by the framework).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use granary::prelude::*;
use granary::virtual_actors::NodeBuilder;
use granary_remote::{register_message, RemoteNode, RemoteRef};
use serde::{Deserialize, Serialize};

use crate::suite_node::collect::{Collector, Done, VirtualCollector};

/// A ping from big actor `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BigPing {
    /// The sender's index.
    pub(crate) from: u32,
    /// The payload, returned in the pong.
    pub(crate) payload: Bytes,
}
impl Message for BigPing {
    type Reply = ();
}
register_message!(BigPing, "granary-bench.big.Ping");

/// The answer to a [`BigPing`], from big actor `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BigPong {
    /// The answering actor's index.
    pub(crate) from: u32,
    /// The ping's payload.
    pub(crate) payload: Bytes,
}
impl Message for BigPong {
    type Reply = ();
}
register_message!(BigPong, "granary-bench.big.Pong");

/// One big actor's pings: how many each peer got, how many are outstanding, and
/// the round trips so far. Every peer gets the same number of pings, so fast
/// (co-located) peers cannot use up the quota of slow (remote) ones.
#[derive(Debug)]
pub(crate) struct Mesh {
    me: u32,
    per_peer: u32,
    sent_to: Vec<u32>,
    outstanding: u32,
    sent_at: Vec<Option<Instant>>,
    latencies_us: Vec<u32>,
}

impl Mesh {
    /// Actor `me` of `actors` will send `per_peer` pings to every other actor.
    pub(crate) fn new(me: u32, actors: u32, per_peer: u32) -> Self {
        Self {
            me,
            per_peer,
            sent_to: vec![0; actors as usize],
            outstanding: 0,
            sent_at: vec![None; actors as usize],
            latencies_us: Vec::with_capacity(
                (per_peer as usize).saturating_mul((actors as usize).saturating_sub(1)),
            ),
        }
    }

    fn note_ping(&mut self, to: u32) {
        self.sent_to[to as usize] += 1;
        self.outstanding += 1;
        self.sent_at[to as usize] = Some(Instant::now());
    }

    /// The first round: one ping to every other actor (none if `per_peer` is 0).
    pub(crate) fn opening(&mut self) -> Vec<u32> {
        let me = self.me;
        let targets: Vec<u32> = (0..self.sent_to.len() as u32)
            .filter(|&to| to != me && self.per_peer > 0)
            .collect();
        for &to in &targets {
            self.note_ping(to);
        }
        targets
    }

    /// Peer `from` answered: records the round trip; `Some(from)` if it is to be
    /// pinged again.
    pub(crate) fn answered(&mut self, from: u32) -> Option<u32> {
        let sent_at = self.sent_at.get_mut(from as usize)?.take()?;
        self.outstanding -= 1;
        let micros = sent_at.elapsed().as_micros();
        self.latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        (self.sent_to[from as usize] < self.per_peer).then(|| {
            self.note_ping(from);
            from
        })
    }

    /// Every ping sent and answered (each answer pings again until the peer's
    /// share is reached, so nothing outstanding means nothing left).
    pub(crate) fn finished(&self) -> bool {
        self.outstanding == 0
    }

    /// The latencies recorded.
    pub(crate) fn take_latencies(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.latencies_us)
    }
}

/// Distributed mode: the table of every big actor's ref (a local message, sent once
/// after the node spawned its share).
pub(crate) struct Peers(pub(crate) Vec<ActorRef<BigActor>>);
impl Message for Peers {
    type Reply = ();
}

/// Distributed mode: start pinging; report to the collector on the driving node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BigGo {
    /// Pings to send to every other actor.
    pub(crate) per_peer: u32,
    /// Bytes in every ping.
    pub(crate) payload_bytes: usize,
    /// Actors the collector waits for.
    pub(crate) expected: u32,
    /// The collector.
    pub(crate) collector: RemoteRef<Collector>,
}
impl Message for BigGo {
    type Reply = ();
}
register_message!(BigGo, "granary-bench.big.Go");

/// Distributed mode: a big actor with explicit refs to all the others.
pub(crate) struct BigActor {
    me: u32,
    remote: RemoteNode,
    peers: Vec<ActorRef<BigActor>>,
    mesh: Mesh,
    payload: Bytes,
    report: Option<(ActorRef<Collector>, u32)>,
}

impl BigActor {
    /// Actor `me`; its peers come with [`Peers`].
    pub(crate) fn new(me: u32, remote: RemoteNode) -> Self {
        Self {
            me,
            remote,
            peers: Vec::new(),
            mesh: Mesh::new(me, 0, 0),
            payload: Bytes::new(),
            report: None,
        }
    }

    fn ping(&self, to: u32) {
        if let Some(peer) = self.peers.get(to as usize) {
            let _ = peer.tell(BigPing {
                from: self.me,
                payload: self.payload.clone(),
            });
        }
    }

    fn report_if_finished(&mut self) {
        if self.mesh.finished() {
            if let Some((collector, expected)) = self.report.take() {
                let _ = collector.tell(Done {
                    expected,
                    latencies_us: self.mesh.take_latencies(),
                });
            }
        }
    }
}

impl Actor for BigActor {}

impl Handler<Peers> for BigActor {
    async fn handle(&mut self, msg: Peers, _ctx: &mut Context<Self>) {
        self.peers = msg.0;
    }
}

impl Handler<BigGo> for BigActor {
    async fn handle(&mut self, msg: BigGo, _ctx: &mut Context<Self>) {
        self.mesh = Mesh::new(self.me, self.peers.len() as u32, msg.per_peer);
        self.payload = Bytes::from(vec![0u8; msg.payload_bytes]);
        self.report = Some((msg.collector.resolve(&self.remote), msg.expected));
        for to in self.mesh.opening() {
            self.ping(to);
        }
        self.report_if_finished();
    }
}

impl Handler<BigPing> for BigActor {
    async fn handle(&mut self, msg: BigPing, _ctx: &mut Context<Self>) {
        if let Some(peer) = self.peers.get(msg.from as usize) {
            let _ = peer.tell(BigPong {
                from: self.me,
                payload: msg.payload,
            });
        }
    }
}

impl Handler<BigPong> for BigActor {
    async fn handle(&mut self, msg: BigPong, _ctx: &mut Context<Self>) {
        if let Some(to) = self.mesh.answered(msg.from) {
            self.ping(to);
        }
        self.report_if_finished();
    }
}

/// Virtual mode: start pinging; report to the virtual collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VirtualBigGo {
    /// Big actors in all.
    pub(crate) actors: u32,
    /// Pings to send to every other actor.
    pub(crate) per_peer: u32,
    /// Bytes in every ping.
    pub(crate) payload_bytes: usize,
    /// The collector's key.
    pub(crate) collector: String,
}
impl Message for VirtualBigGo {
    type Reply = ();
}
register_message!(VirtualBigGo, "granary-bench.big.VirtualGo");

/// The key of big actor `index` of `run`.
pub(crate) fn big_key(run: u64, index: u32) -> String {
    format!("big-{run}-{index}")
}

/// Virtual mode: a big actor; its key is `big-RUN-INDEX` and its peers are the
/// same kind with the other indexes.
pub(crate) struct VirtualBig {
    run: u64,
    me: u32,
    peers: HashMap<u32, VirtualRef<VirtualBig>>,
    mesh: Mesh,
    payload: Bytes,
    report: Option<(String, u32)>,
}

impl VirtualActor for VirtualBig {
    const KIND: &'static str = "granary-bench.Big";
    type Key = String;
    type State = ();
    fn activate(key: &String) -> Self {
        // Keys the bench did not make get index 0 of run 0; they never finish a run.
        let mut parts = key.rsplitn(2, '-');
        let me = parts.next().and_then(|i| i.parse().ok()).unwrap_or(0);
        let run = parts
            .next()
            .and_then(|r| r.strip_prefix("big-"))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        Self {
            run,
            me,
            peers: HashMap::new(),
            mesh: Mesh::new(me, 0, 0),
            payload: Bytes::new(),
            report: None,
        }
    }
}

impl VirtualBig {
    fn peer(&mut self, index: u32, ctx: &VirtualContext<'_, Self>) -> VirtualRef<VirtualBig> {
        let run = self.run;
        self.peers
            .entry(index)
            .or_insert_with(|| ctx.get::<VirtualBig>(big_key(run, index)))
            .clone()
    }

    async fn ping(&mut self, to: u32, ctx: &VirtualContext<'_, Self>) {
        let ping = BigPing {
            from: self.me,
            payload: self.payload.clone(),
        };
        let _ = self.peer(to, ctx).tell(ping).await;
    }

    async fn report_if_finished(&mut self, ctx: &VirtualContext<'_, Self>) {
        if self.mesh.finished() {
            if let Some((collector, expected)) = self.report.take() {
                let done = Done {
                    expected,
                    latencies_us: self.mesh.take_latencies(),
                };
                let _ = ctx.get::<VirtualCollector>(collector).tell(done).await;
            }
        }
    }
}

impl VirtualHandler<VirtualBigGo> for VirtualBig {
    async fn handle(&mut self, msg: VirtualBigGo, ctx: &mut VirtualContext<'_, Self>) {
        self.mesh = Mesh::new(self.me, msg.actors, msg.per_peer);
        self.payload = Bytes::from(vec![0u8; msg.payload_bytes]);
        self.report = Some((msg.collector, msg.actors));
        for to in self.mesh.opening() {
            self.ping(to, ctx).await;
        }
        self.report_if_finished(ctx).await;
    }
}

impl VirtualHandler<BigPing> for VirtualBig {
    async fn handle(&mut self, msg: BigPing, ctx: &mut VirtualContext<'_, Self>) {
        let pong = BigPong {
            from: self.me,
            payload: msg.payload,
        };
        let _ = self.peer(msg.from, ctx).tell(pong).await;
    }
}

impl VirtualHandler<BigPong> for VirtualBig {
    async fn handle(&mut self, msg: BigPong, ctx: &mut VirtualContext<'_, Self>) {
        if let Some(to) = self.mesh.answered(msg.from) {
            self.ping(to, ctx).await;
        }
        self.report_if_finished(ctx).await;
    }
}

/// The kind a virtual node hosts for `big`, placed by `placement`.
pub(crate) fn kinds(builder: NodeBuilder, placement: &Placement) -> NodeBuilder {
    builder.host(
        Kind::<VirtualBig>::new()
            .placement(placement.clone())
            .handles::<VirtualBigGo>()
            .handles::<BigPing>()
            .handles::<BigPong>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mesh_pings_every_peer_its_share_however_fast_each_answers() {
        let mut mesh = Mesh::new(1, 3, 2);
        assert_eq!(mesh.opening(), vec![0, 2]);
        assert_eq!(mesh.answered(2), Some(2), "second ping to 2");
        assert_eq!(mesh.answered(2), None, "2 had its share");
        assert!(!mesh.finished(), "0 still owes an answer");
        assert_eq!(mesh.answered(7), None, "unknown peers are ignored");
        assert_eq!(mesh.answered(0), Some(0));
        assert_eq!(mesh.answered(0), None);
        assert!(mesh.finished());
        assert_eq!(mesh.take_latencies().len(), 4);
    }

    #[test]
    fn a_virtual_big_actor_reads_its_run_and_index_from_its_key() {
        let actor = VirtualBig::activate(&big_key(12, 5));
        assert_eq!((actor.run, actor.me), (12, 5));
    }
}
