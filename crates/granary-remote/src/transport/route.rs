//! Routing: a send to a node this transport keeps no connection to goes through another
//! node, as an overlay decides (granary-cluster installs one; `docs/overlays.md`).
//!
//! The [`Router`] names the next hop for a destination. A Tell or Ask for a destination
//! it routes is sent to the next hop with the recipient name `via/<host>/<name>` (the
//! gateway name of `docs/wire.md`, "Dial-out peers"), and the next hop relays it
//! (`remote/relay.rs`): to the host itself when it is connected to it, or on through
//! its own router, as `via+<k>/<host>/<name>` where `k` counts the relays passed so
//! far. A frame that has passed [`MAX_HOPS`] relays is not sent on (a loop guard: a
//! route may loop for a moment while the overlay repairs itself). Replies go back hop
//! by hop, each relay remembering the ask it passed on, so they need no route.
//! Replies, system messages (watch, stop) and handshakes are never routed: they go to
//! the node that sent the frame they answer, which is a connection.
//!
//! Without a router (full mesh) the send path pays one relaxed atomic load.

use std::net::SocketAddr;

/// Decides where a frame for a node goes next.
pub trait Router: Send + Sync + 'static {
    /// The node a frame for `to` is sent to: `None` (or `to` itself) sends it straight
    /// to `to`; any other node relays it.
    fn next_hop(&self, to: SocketAddr) -> Option<SocketAddr>;
}

/// The most relays one frame passes.
pub const MAX_HOPS: u8 = 16;

/// The recipient prefix of a frame relayed no time yet.
const VIA: &str = "via/";

/// The recipient prefix of a frame already relayed (followed by the count and `/`).
const VIA_HOPS: &str = "via+";

/// The recipient name that makes the receiving node relay to `name` on `host`, on a
/// frame that has passed `relayed` relays so far.
pub(crate) fn via_name(host: SocketAddr, name: &str, relayed: u8) -> String {
    if relayed == 0 {
        format!("{VIA}{host}/{name}")
    } else {
        format!("{VIA_HOPS}{relayed}/{host}/{name}")
    }
}

/// `(host, name, relays passed)` of a relayed recipient, `None` for any other name.
pub(crate) fn parse_via(recipient: &str) -> Option<(SocketAddr, &str, u8)> {
    let (relayed, rest) = match recipient.strip_prefix(VIA) {
        Some(rest) => (0, rest),
        None => {
            let rest = recipient.strip_prefix(VIA_HOPS)?;
            let (count, rest) = rest.split_once('/')?;
            (count.parse().ok()?, rest)
        }
    };
    let (host, name) = rest.split_once('/')?;
    Some((host.parse().ok()?, name, relayed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_names_round_trip_with_their_hop_count() {
        let host: SocketAddr = "10.0.0.2:7100".parse().unwrap();
        assert_eq!(via_name(host, "a/b", 0), "via/10.0.0.2:7100/a/b");
        for relayed in [0, 1, 7, MAX_HOPS] {
            assert_eq!(
                parse_via(&via_name(host, "Counter/a/b", relayed)),
                Some((host, "Counter/a/b", relayed))
            );
        }
        assert_eq!(parse_via("via+x/10.0.0.2:7100/a"), None);
        assert_eq!(parse_via("via+300/10.0.0.2:7100/a"), None);
        assert_eq!(parse_via("via+2/10.0.0.2:7100"), None);
        assert_eq!(parse_via("Counter/a"), None);
    }
}
