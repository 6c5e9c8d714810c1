//! The actors of `pingpong` (seed 000 §3.3.1–2, Listing 1), in both modes.
//!
//! A ping actor serves a [`Ball`] to its pong actor, the pong actor sends it back,
//! and the ping actor serves again until it has done its rounds; each round trip's
//! latency is recorded. The rally itself is one piece of logic ([`Rally`]) used by
//! the plain actors of the distributed mode ([`Pinger`], [`Ponger`], placed
//! explicitly: pings on one node, pongs on another) and by the virtual kinds
//! ([`VirtualPinger`], [`VirtualPonger`], placed by the framework).

use std::time::Instant;

use bytes::Bytes;
use granary::prelude::*;
use granary::virtual_actors::NodeBuilder;
use granary_remote::register_message;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::suite_node::collect::{Done, VirtualCollector};

/// The ball: one ping or pong with its payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ball {
    /// The payload, bounced back unchanged.
    pub(crate) payload: Bytes,
}
impl Message for Ball {
    type Reply = ();
}
register_message!(Ball, "granary-bench.pingpong.Ball");

/// A ping actor's rally: how many serves are left and the latencies so far.
#[derive(Debug)]
pub(crate) struct Rally {
    left: u32,
    served_at: Instant,
    latencies_us: Vec<u32>,
}

impl Rally {
    /// A rally of `rounds` round trips; call [`Rally::serve`] for the first.
    pub(crate) fn new(rounds: u32) -> Self {
        Self {
            left: rounds,
            served_at: Instant::now(),
            latencies_us: Vec::with_capacity(rounds as usize),
        }
    }

    /// Notes a serve; `false` when no rounds are left (nothing to serve).
    pub(crate) fn serve(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        self.served_at = Instant::now();
        true
    }

    /// The ball came back: records the round trip.
    pub(crate) fn returned(&mut self) {
        let micros = self.served_at.elapsed().as_micros();
        self.latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }

    /// The latencies recorded, leaving the rally empty.
    pub(crate) fn take_latencies(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.latencies_us)
    }
}

/// Starts a distributed-mode rally (a local message: the driver is on the ping
/// actors' node).
pub(crate) struct Go {
    /// Round trips.
    pub(crate) rounds: u32,
    /// The payload of every ball.
    pub(crate) payload: Bytes,
    /// Gets the latencies when the rally ends.
    pub(crate) done: oneshot::Sender<Vec<u32>>,
}
impl Message for Go {
    type Reply = ();
}

/// Distributed mode: a ping actor with an explicit ref to its pong actor.
pub(crate) struct Pinger {
    pong: ActorRef<Ponger>,
    rally: Rally,
    payload: Bytes,
    done: Option<oneshot::Sender<Vec<u32>>>,
}

impl Pinger {
    /// A ping actor that plays against `pong`.
    pub(crate) fn new(pong: ActorRef<Ponger>) -> Self {
        Self {
            pong,
            rally: Rally::new(0),
            payload: Bytes::new(),
            done: None,
        }
    }

    fn serve_or_finish(&mut self) {
        if self.rally.serve() {
            let ball = Ball {
                payload: self.payload.clone(),
            };
            if self.pong.tell(ball).is_ok() {
                return;
            }
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(self.rally.take_latencies());
        }
    }
}

impl Actor for Pinger {}

impl Handler<Go> for Pinger {
    async fn handle(&mut self, msg: Go, _ctx: &mut Context<Self>) {
        self.rally = Rally::new(msg.rounds);
        self.payload = msg.payload;
        self.done = Some(msg.done);
        self.serve_or_finish();
    }
}

impl Handler<Ball> for Pinger {
    async fn handle(&mut self, _msg: Ball, _ctx: &mut Context<Self>) {
        self.rally.returned();
        self.serve_or_finish();
    }
}

/// Distributed mode: a pong actor with an explicit ref to its ping actor.
pub(crate) struct Ponger {
    ping: ActorRef<Pinger>,
}

impl Ponger {
    /// A pong actor that returns every ball to `ping`.
    pub(crate) fn new(ping: ActorRef<Pinger>) -> Self {
        Self { ping }
    }
}

impl Actor for Ponger {}

impl Handler<Ball> for Ponger {
    async fn handle(&mut self, msg: Ball, _ctx: &mut Context<Self>) {
        let _ = self.ping.tell(msg);
    }
}

/// Starts a virtual-mode rally; the ping actor reports to the virtual collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VirtualGo {
    /// Round trips.
    pub(crate) rounds: u32,
    /// Bytes in every ball.
    pub(crate) payload_bytes: usize,
    /// The collector's key.
    pub(crate) collector: String,
    /// Ping actors the collector waits for.
    pub(crate) expected: u32,
}
impl Message for VirtualGo {
    type Reply = ();
}
register_message!(VirtualGo, "granary-bench.pingpong.VirtualGo");

/// Virtual mode: a ping actor; its pong actor has the same key.
pub(crate) struct VirtualPinger {
    rally: Rally,
    payload: Bytes,
    report: Option<(String, u32)>,
    pong: Option<VirtualRef<VirtualPonger>>,
}

impl VirtualActor for VirtualPinger {
    const KIND: &'static str = "granary-bench.Pinger";
    type Key = String;
    type State = ();
    fn activate(_key: &String) -> Self {
        Self {
            rally: Rally::new(0),
            payload: Bytes::new(),
            report: None,
            pong: None,
        }
    }
}

impl VirtualPinger {
    async fn serve_or_finish(&mut self, ctx: &mut VirtualContext<'_, Self>) {
        if self.rally.serve() {
            let pong = self
                .pong
                .get_or_insert_with(|| ctx.get::<VirtualPonger>(ctx.key().clone()));
            let ball = Ball {
                payload: self.payload.clone(),
            };
            if pong.tell(ball).await.is_ok() {
                return;
            }
        }
        if let Some((collector, expected)) = self.report.take() {
            let done = Done {
                expected,
                latencies_us: self.rally.take_latencies(),
            };
            let _ = ctx.get::<VirtualCollector>(collector).tell(done).await;
        }
    }
}

impl VirtualHandler<VirtualGo> for VirtualPinger {
    async fn handle(&mut self, msg: VirtualGo, ctx: &mut VirtualContext<'_, Self>) {
        self.rally = Rally::new(msg.rounds);
        self.payload = Bytes::from(vec![0u8; msg.payload_bytes]);
        self.report = Some((msg.collector, msg.expected));
        self.serve_or_finish(ctx).await;
    }
}

impl VirtualHandler<Ball> for VirtualPinger {
    async fn handle(&mut self, _msg: Ball, ctx: &mut VirtualContext<'_, Self>) {
        self.rally.returned();
        self.serve_or_finish(ctx).await;
    }
}

/// Virtual mode: a pong actor; it returns the ball to the ping actor of its key.
pub(crate) struct VirtualPonger {
    ping: Option<VirtualRef<VirtualPinger>>,
}

impl VirtualActor for VirtualPonger {
    const KIND: &'static str = "granary-bench.Ponger";
    type Key = String;
    type State = ();
    fn activate(_key: &String) -> Self {
        Self { ping: None }
    }
}

impl VirtualHandler<Ball> for VirtualPonger {
    async fn handle(&mut self, msg: Ball, ctx: &mut VirtualContext<'_, Self>) {
        let ping = self
            .ping
            .get_or_insert_with(|| ctx.get::<VirtualPinger>(ctx.key().clone()));
        let _ = ping.tell(msg).await;
    }
}

/// The kinds a virtual node hosts for `pingpong`, placed by `placement`.
pub(crate) fn kinds(builder: NodeBuilder, placement: &Placement) -> NodeBuilder {
    builder
        .host(
            Kind::<VirtualPinger>::new()
                .placement(placement.clone())
                .handles::<VirtualGo>()
                .handles::<Ball>(),
        )
        .host(
            Kind::<VirtualPonger>::new()
                .placement(placement.clone())
                .handles::<Ball>(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rally_serves_its_rounds_and_records_each_return() {
        let mut rally = Rally::new(2);
        assert!(rally.serve());
        rally.returned();
        assert!(rally.serve());
        rally.returned();
        assert!(!rally.serve());
        assert_eq!(rally.take_latencies().len(), 2);
    }
}
