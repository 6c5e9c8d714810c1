//! Relaying: a node passes tells and asks from a peer it cannot be dialled by (a dial-out
//! client, `docs/wire.md`, "Dial-out peers") on to the node that hosts the recipient, and
//! the replies back.
//!
//! The client addresses the frame to the gateway with the recipient name
//! `via/<host>/<name>` ([`RemoteNode::remote_ref_via`](crate::RemoteNode::remote_ref_via)).
//! The gateway sends it on to `<host>` as `<name>`, body untouched (it is decoded once, on
//! the host); an ask gets a correlation of the gateway's own, remembered with the
//! client's, so the host's reply (or failure) goes back to the client on the connection
//! it opened. The host never learns of the client and never dials it.
//!
//! Between nodes of different protocol versions (a rolling upgrade) the body is the one
//! exception to "untouched": a versioned body for a next hop that agreed on version 4
//! (postcard only) is decoded and encoded again in postcard ([`transcode`]), so a
//! client of either version can go through a gateway to a host of either version. A
//! postcard body goes on as it is: version 5 reads both (and system bodies such as a
//! reply failure are postcard by design).
//!
//! An ask whose host becomes unreachable is answered at once with
//! `RemoteError::Unreachable`, as is one whose host the gateway's owner declares gone
//! ([`RemoteNode::fail_relayed_to`](crate::RemoteNode::fail_relayed_to): a cluster's
//! Down verdict, usually much sooner than the transport's heartbeat timeout) — waiting
//! or sent later, until the owner says the host is back
//! ([`RemoteNode::relay_to_again`](crate::RemoteNode::relay_to_again)); one never
//! answered is forgotten after the serve timeout.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use granary_core::RemoteError;
use tokio::time::Instant;

use super::exposed::ReplyTo;
use super::protocol::ReplyFailure;
use super::NodeInner;
use crate::node_id::NodeId;
use crate::registry::Encoding;
use crate::transport::SendOptions;
use crate::wire::{Frame, FrameHeader, FrameKind, CONTROL_CHANNEL};

/// The recipient name that makes a gateway relay to `name` on `host`.
pub(crate) fn via_name(host: SocketAddr, name: &str) -> String {
    crate::transport::via_name(host, name, 0)
}

/// `(host, name, relays passed so far)` of a relayed recipient, `None` for any other
/// name.
pub(crate) fn parse(recipient: &str) -> Option<(SocketAddr, &str, u8)> {
    crate::transport::parse_via(recipient)
}

/// One relayed ask waiting for its host's reply.
pub(crate) struct Relay {
    /// The client and its correlation.
    client: SocketAddr,
    correlation: u64,
    /// The host asked.
    host: SocketAddr,
    responder: String,
    since: Instant,
}

/// Relayed asks by the gateway's correlation, and the hosts this node's owner declared
/// gone (nothing is relayed to them until they are back).
#[derive(Default)]
pub(crate) struct Relays {
    asks: HashMap<u64, Relay>,
    last_sweep: Option<Instant>,
    /// Hosts declared gone ([`host_down`]) and not yet back ([`host_back`]): at most
    /// one entry per member the owner's cluster downed.
    down: HashSet<SocketAddr>,
}

impl Relays {
    /// Forget asks older than `ttl` (their client gave up long ago), at most once a
    /// second.
    fn sweep(&mut self, ttl: Duration) {
        let now = Instant::now();
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.asks.retain(|_, r| now.duration_since(r.since) < ttl);
    }
}

/// The failure reply to the client's ask `correlation`.
fn reply_to(node: &NodeInner, client: SocketAddr, correlation: u64, responder: &str) -> ReplyTo {
    ReplyTo {
        transport: node.transport().clone(),
        registry: node.registry,
        to: client,
        correlation,
        responder: responder.to_owned(),
    }
}

/// Relay a tell or ask that `from` sent to `name` on `host` (`host` is not this node),
/// which has passed `relayed` relays before this one: straight to `host`, or on through
/// this node's router (`transport/route.rs`), on the channel it came on.
pub(crate) fn forward(
    node: &NodeInner,
    from: NodeId,
    frame: &Frame,
    host: SocketAddr,
    name: &str,
    relayed: u8,
) {
    let is_ask = frame.kind == FrameKind::Ask;
    let correlation = {
        // One lock for the check and, for an ask, its entry.
        let mut relays = node.relays.lock();
        if relays.down.contains(&host) {
            drop(relays);
            // Declared gone: sent on, an ask would wait for the transport to give up
            // on the host (its heartbeat timeout) although its client would resend it
            // to the next activation at once.
            tracing::debug!(%from, %host, recipient = name, "not relayed: host is down");
            if is_ask {
                reply_to(node, from.addr(), frame.correlation, name)
                    .fail(ReplyFailure::Remote(RemoteError::Unreachable));
            }
            return;
        }
        if is_ask {
            let ours = node.next_correlation();
            relays.sweep(node.serve_timeout);
            relays.asks.insert(
                ours,
                Relay {
                    client: from.addr(),
                    correlation: frame.correlation,
                    host,
                    responder: name.to_owned(),
                    since: Instant::now(),
                },
            );
            ours
        } else {
            0
        }
    };
    let (type_tag, body) = transcode(node, frame.type_tag, &frame.body, host);
    let header = FrameHeader {
        kind: frame.kind,
        channel: 0,
        type_tag,
        correlation,
        sender: frame.sender(),
        recipient: name,
        trace: frame.trace,
    };
    let options = if frame.channel == CONTROL_CHANNEL {
        SendOptions::control()
    } else {
        SendOptions::data()
    };
    let hops = relayed.saturating_add(1);
    if let Err(e) = node
        .transport()
        .send_relayed(host, header, body, options, hops)
    {
        let error = node.send_error(host, e);
        tracing::debug!(%from, %host, recipient = name, %error, "not relayed");
        if is_ask {
            node.relays.lock().asks.remove(&correlation);
            reply_to(node, from.addr(), frame.correlation, name).fail(ReplyFailure::Remote(error));
        }
    }
}

/// A reply to a relayed ask: send it back to its client. `false` if `frame` answers
/// no relayed ask.
pub(crate) fn reply(node: &NodeInner, frame: &Frame) -> bool {
    let Some(relay) = node.relays.lock().asks.remove(&frame.correlation) else {
        return false;
    };
    let (type_tag, body) = transcode(node, frame.type_tag, &frame.body, relay.client);
    let header = FrameHeader {
        kind: FrameKind::Reply,
        channel: 0,
        type_tag,
        correlation: relay.correlation,
        sender: frame.sender(),
        recipient: "",
        trace: None,
    };
    if let Err(e) = node
        .transport()
        .send(relay.client, header, body, SendOptions::data())
    {
        tracing::debug!(client = %relay.client, error = %e, "relayed reply not sent");
    }
    true
}

/// The node at `addr` is gone: answer the asks relayed to it with `Unreachable`, and
/// forget those of a client at `addr`.
pub(crate) fn node_lost(node: &NodeInner, addr: SocketAddr) {
    let lost = take(node, |r| r.host == addr || r.client == addr);
    fail_all(node, lost.into_iter().filter(|r| r.client != addr));
}

/// The host at `host` is considered gone by someone who knows better than the
/// transport (a cluster's Down verdict): answer the asks relayed to it with
/// `Unreachable` now, and those that come later until [`host_back`]; returns how many
/// were waiting.
pub(crate) fn host_down(node: &NodeInner, host: SocketAddr) -> usize {
    node.relays.lock().down.insert(host);
    let lost = take(node, |r| r.host == host);
    let n = lost.len();
    fail_all(node, lost);
    n
}

/// `host` is a member again (it rejoined, or its row was removed): relay to it again.
pub(crate) fn host_back(node: &NodeInner, host: SocketAddr) {
    node.relays.lock().down.remove(&host);
}

/// Removes and returns the relayed asks `which` selects.
fn take(node: &NodeInner, which: impl Fn(&Relay) -> bool) -> Vec<Relay> {
    let mut relays = node.relays.lock();
    let ids: Vec<u64> = (relays.asks.iter())
        .filter(|(_, r)| which(r))
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter()
        .filter_map(|id| relays.asks.remove(&id))
        .collect()
}

/// Answers each of `lost` to its client with `Unreachable`.
fn fail_all(node: &NodeInner, lost: impl IntoIterator<Item = Relay>) {
    for r in lost {
        reply_to(node, r.client, r.correlation, &r.responder)
            .fail(ReplyFailure::Remote(RemoteError::Unreachable));
    }
}

/// The tag and body of a relayed frame for `to`: a versioned body for a next hop that
/// reads postcard only is decoded and encoded again in postcard; anything else goes on
/// as it came (a type not registered here cannot be re-encoded either).
fn transcode(node: &NodeInner, tag: u64, body: &Bytes, to: SocketAddr) -> (u64, Bytes) {
    let Some((entry, encoding)) = node.registry.by_tag_with_encoding(tag) else {
        return (tag, body.clone());
    };
    let wanted = node.transport().encoding_for(to);
    if encoding != Encoding::Versioned || wanted != Encoding::Postcard {
        return (tag, body.clone());
    }
    let again = entry
        .decode_as(body, encoding)
        .and_then(|msg| node.registry.encode_as(&*msg, wanted));
    match again {
        Ok(encoded) => encoded,
        Err(e) => {
            // Sent as it came: the next hop answers with its own decode error.
            tracing::debug!(%to, error = %e, "relayed body not re-encoded");
            (tag, body.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_names_round_trip_and_others_are_not_relayed() {
        let host: SocketAddr = "10.0.0.2:7100".parse().unwrap();
        let name = via_name(host, "Counter/a/b");
        assert_eq!(parse(&name), Some((host, "Counter/a/b", 0)));
        let v6: SocketAddr = "[::1]:7100".parse().unwrap();
        assert_eq!(parse(&via_name(v6, "x")), Some((v6, "x", 0)));
        assert_eq!(parse("Counter/a"), None);
        assert_eq!(parse("via/not-an-addr/x"), None);
        assert_eq!(parse("via/10.0.0.2:7100"), None);
    }
}
