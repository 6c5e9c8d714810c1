//! What replicators say to each other, and the inbox actor that hears it.
//!
//! One message type, [`CrdtFrame`], travels between the inboxes exposed under
//! [`INBOX`] on every node. Payloads (states and deltas) are postcard bytes inside it:
//! the frame itself must not depend on the CRDT types, because one frame carries the
//! updates of every named CRDT for one peer.

use std::net::SocketAddr;

use granary_core::{Actor, Context, Handler, Message};
use granary_remote::register_message;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The name the replicator's inbox is exposed under on every node.
pub(crate) const INBOX: &str = "granary.crdt.replicator";

/// One replicator-to-replicator message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CrdtFrame {
    /// The sender's listen address (where answers go).
    pub(crate) from: SocketAddr,
    /// The sender's session (its node's incarnation): a new session means the sender
    /// restarted with empty state, so what was acknowledged with it no longer counts.
    pub(crate) session: u64,
    /// The peer that relayed this frame (`from` could not reach us directly); answers
    /// go back the same way.
    pub(crate) via: Option<SocketAddr>,
    pub(crate) body: FrameBody,
}

impl Message for CrdtFrame {
    type Reply = ();
}
register_message!(CrdtFrame, "granary.crdt.CrdtFrame");

/// The kinds of frames.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum FrameBody {
    /// Changes made at the sender since what the receiver acknowledged.
    Push(Vec<Update>),
    /// What the receiver now holds of each key's changes from the session `of`.
    Ack { of: u64, acks: Vec<(String, u64)> },
    /// Asks for the full state of `key` (a read at Majority or All).
    Read { id: u64, key: String },
    /// The answer to `Read`: the full state, or `None` when the key is not open here.
    ReadReply { id: u64, state: Option<Vec<u8>> },
    /// Anti-entropy: digests of quiet CRDTs the receiver holds all our changes of.
    Digest(Vec<(String, u64)>),
    /// Full states of CRDTs whose digests differed; `answer` asks the receiver to send
    /// its own state back if it still differs after merging.
    Repair {
        states: Vec<(String, Vec<u8>)>,
        answer: bool,
    },
    /// Full states handed to a new holder of CRDTs replicated to a subset (its old
    /// holders send them when the ring's preference list changes).
    Handoff(Vec<(String, Vec<u8>)>),
    /// The receiver of a `Handoff` merged these keys.
    HandoffAck(Vec<String>),
    /// Asks the receiver to pass `body` on to `to` as if it came from the sender
    /// (pushes the sender could not get through directly, and the answers to them).
    Relay {
        to: SocketAddr,
        body: Box<FrameBody>,
    },
}

/// The changes of one key, made at the sender, numbered `first..=last` in the sender's
/// sequence for that key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Update {
    pub(crate) key: String,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) payload: Payload,
}

/// A delta (the join of the numbered changes) or the sender's whole state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Payload {
    Delta(Vec<u8>),
    Full(Vec<u8>),
}

impl Payload {
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Delta(b) | Payload::Full(b) => b.len(),
        }
    }
}

/// The exposed actor: hands every frame to the replicator's task, never blocking the
/// connection's reader.
pub(crate) struct Inbox {
    pub(crate) tx: mpsc::UnboundedSender<CrdtFrame>,
}

impl Actor for Inbox {}

impl Handler<CrdtFrame> for Inbox {
    async fn handle(&mut self, frame: CrdtFrame, ctx: &mut Context<Self>) {
        if self.tx.send(frame).is_err() {
            // The replicator is gone; free the name.
            ctx.stop();
        }
    }
}
