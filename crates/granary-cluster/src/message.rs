//! The control messages the cluster protocol exchanges. They are plain serde types, so
//! any transport can carry them (the in-memory one encodes them with postcard to count
//! bytes the way a real wire would).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::membership::{DigestEntry, Member};
use crate::node_id::NodeId;

/// One protocol message with its sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node (its current incarnation).
    pub from: NodeId,
    /// The message.
    pub message: ClusterMessage,
}

/// The cluster protocol's messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClusterMessage {
    /// A node asks to join; carries its own `Joining` row.
    JoinRequest {
        /// The joiner's row.
        member: Member,
    },
    /// A member accepts a join and hands over its whole table.
    JoinAccept {
        /// Every row the accepting member knows.
        members: Vec<Member>,
    },
    /// A gossip round: recent changes plus the hash of the sender's whole table.
    Gossip {
        /// Order-independent hash of the sender's table.
        state_hash: u64,
        /// Rows that changed recently (infection-style dissemination).
        deltas: Vec<Member>,
    },
    /// Anti-entropy: the sender's digest, sent when the tables differ but no deltas flow.
    SyncDigest {
        /// One entry per row the sender knows.
        digest: Vec<DigestEntry>,
    },
    /// Anti-entropy answer: rows the receiver lacks, and the addresses the sender wants.
    SyncRows {
        /// Rows newer than the receiver's digest.
        rows: Vec<Member>,
        /// Addresses for which the receiver holds newer rows and should send them.
        wanted: Vec<SocketAddr>,
    },
    /// Failure-detector probe from a monitor.
    Heartbeat {
        /// Probe sequence number, echoed in the ack.
        seq: u64,
    },
    /// Answer to [`ClusterMessage::Heartbeat`].
    HeartbeatAck {
        /// The probe's sequence number.
        seq: u64,
    },
    /// One message of the node's overlay (`ClusterConfig::overlay`), encoded by it
    /// (`granary_overlay::DynOverlay`). Only sent when an overlay other than the full
    /// mesh is configured, so full-mesh clusters never carry it (`docs/wire.md`).
    Overlay {
        /// The overlay's encoded message.
        frame: Vec<u8>,
    },
}
