//! What the harness and a node process of the virtual-actor suite say to each other.
//!
//! The harness writes one [`Request`] per line on the node's stdin (JSON); the node
//! answers each with one line `reply ID JSON` (a [`Reply`]). Activation-log lines of
//! the `failover` scenario (`act ...`, `deact ...`) and the start line
//! (`listening ADDR`) travel on the same stdout.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A command for one node process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Virtual mode: answer once this node sees `members` Up members.
    AwaitMembers {
        /// How many Up members to wait for (this node included).
        members: usize,
    },
    /// Distributed `pingpong`: spawn and expose `actors` pong actors here, each
    /// answering the ping actor of the same index on `ping_node`.
    PingpongPongs {
        /// Run number (part of every actor name).
        run: u64,
        /// How many pong actors.
        actors: u32,
        /// The node the ping actors live on.
        ping_node: SocketAddr,
    },
    /// `pingpong` from this node: `actors` ping actors, `rounds` round trips each.
    /// `pong_node: Some` is the distributed mode (pings here, pongs there); `None`
    /// the virtual mode (the framework places both kinds).
    PingpongRun {
        /// Run number.
        run: u64,
        /// Ping actors (and as many pong actors).
        actors: u32,
        /// Bytes in every ping and pong.
        payload: usize,
        /// Round trips per ping actor.
        rounds: u32,
        /// Distributed mode: where the pong actors are.
        pong_node: Option<SocketAddr>,
    },
    /// `sort` from this node: sort `len` random integers with sort actors.
    /// `nodes: Some` is the distributed mode (each node's sort actors create their
    /// children on the two other nodes); `None` the virtual mode.
    SortRun {
        /// Run number.
        run: u64,
        /// List length.
        len: usize,
        /// Distributed mode: every node, this one included.
        nodes: Option<Vec<SocketAddr>>,
    },
    /// Distributed `big`: spawn and expose this node's share of the `actors` big
    /// actors (index i lives on `nodes[i % nodes.len()]`).
    BigSpawn {
        /// Run number.
        run: u64,
        /// Big actors in all.
        actors: u32,
        /// Every node, in placement order.
        nodes: Vec<SocketAddr>,
    },
    /// `big` from this node: start every big actor, wait until each has sent
    /// `rounds` pings and had them answered. `nodes: Some` is the distributed mode
    /// (after `BigSpawn` on every node); `None` the virtual mode.
    BigRun {
        /// Run number.
        run: u64,
        /// Big actors in all.
        actors: u32,
        /// Bytes in every ping and pong.
        payload: usize,
        /// Pings each actor sends to every other one.
        rounds: u32,
        /// Distributed mode: every node, in placement order.
        nodes: Option<Vec<SocketAddr>>,
    },
}

/// A command with the number its reply will carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    /// Matches the reply to the request.
    pub(crate) id: u64,
    /// What to do.
    pub(crate) command: Command,
}

/// What one measured command produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// Messages (round trips, or actors created for `sort`) in the measured part.
    pub(crate) messages: u64,
    /// Wall time of the measured part, seconds.
    pub(crate) seconds: f64,
    /// p50, p99, p99.9 and max latency in microseconds, where latency is defined.
    pub(crate) latency_us: Option<[f64; 4]>,
}

/// A node's answer to one [`Request`]: what it measured, or why it failed.
pub(crate) type Reply = Result<Measured, String>;

/// The stdout line of a reply.
pub(crate) fn reply_line(id: u64, reply: &Reply) -> String {
    let json = serde_json::to_string(reply)
        .unwrap_or_else(|e| format!("{{\"Err\":\"cannot encode the reply: {e}\"}}"));
    format!("reply {id} {json}")
}

/// Parses a `reply ID JSON` line (without the `reply ` prefix).
pub(crate) fn parse_reply(rest: &str) -> Option<(u64, Reply)> {
    let (id, json) = rest.split_once(' ')?;
    Some((id.parse().ok()?, serde_json::from_str(json).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_line_round_trips() {
        let measured = Measured {
            messages: 7,
            seconds: 0.5,
            latency_us: Some([1.0, 2.0, 3.0, 4.0]),
        };
        let line = reply_line(42, &Ok(measured));
        let rest = line.strip_prefix("reply ").expect("prefix");
        let (id, reply) = parse_reply(rest).expect("parses");
        assert_eq!(id, 42);
        assert_eq!(reply.expect("ok").messages, 7);
        let line = reply_line(3, &Err("boom".into()));
        let (_, reply) = parse_reply(line.strip_prefix("reply ").expect("prefix")).expect("parses");
        assert_eq!(reply.err().as_deref(), Some("boom"));
        assert!(parse_reply("x {}").is_none());
    }
}
