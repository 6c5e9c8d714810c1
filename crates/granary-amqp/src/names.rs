//! Names on the broker: one queue per node, one membership exchange per cluster.
//!
//! A node's queue is `granary.<cluster>.node.<ip:port>`, so a peer's queue follows from
//! the address in its `NodeId`, and the address of a message's sender follows from the
//! queue it names in `reply_to`.

use std::net::SocketAddr;

/// The longest cluster name: queue names are AMQP short strings (255 bytes), and the
/// rest of a queue name takes at most 67 (`granary.` + `.node.` + `[v6]:port`).
pub(crate) const MAX_CLUSTER: usize = 160;

/// The queue of the node named `addr` in `cluster`.
pub(crate) fn node_queue(cluster: &str, addr: SocketAddr) -> String {
    format!("granary.{cluster}.node.{addr}")
}

/// The fanout exchange every node's queue is bound to, for membership announcements.
pub(crate) fn members_exchange(cluster: &str) -> String {
    format!("granary.{cluster}.members")
}

/// The node address a queue name of `cluster` names; `None` for any other name.
pub(crate) fn node_of_queue(cluster: &str, queue: &str) -> Option<SocketAddr> {
    let rest = queue.strip_prefix("granary.")?.strip_prefix(cluster)?;
    rest.strip_prefix(".node.")?.parse().ok()
}

/// The URL without its user and password, for logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_name_gives_back_its_node_address_only_in_its_cluster() {
        let addr: SocketAddr = "127.0.0.1:7100".parse().unwrap();
        let queue = node_queue("c1", addr);
        assert_eq!(node_of_queue("c1", &queue), Some(addr));
        assert_eq!(node_of_queue("c2", &queue), None);
        assert_eq!(node_of_queue("c1", "granary.c1.node.nonsense"), None);
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(node_of_queue("c1", &node_queue("c1", v6)), Some(v6));
    }

    #[test]
    fn redacted_urls_keep_no_credentials() {
        let shown = redact("amqp://guest:secret@127.0.0.1:5672/%2f");
        assert!(!shown.contains("secret"));
        assert!(shown.contains("127.0.0.1:5672"));
    }
}
