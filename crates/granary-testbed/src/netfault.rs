//! Network faults as nft rules: each host's namespace holds one table of ours,
//! `inet granary_faults`, replaced atomically whenever the set of cut links changes.
//!
//! A cut link `from → to` is one rule in `to`'s input hook: drop what arrives from
//! `from`. The packets leave the sender and vanish on the way, as in a network: the
//! sender gets no error, only silence (a rule on the sender's output hook would fail
//! its `send` at once with `EPERM`, which no real partition does).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::bed::HostId;

/// The nft table the test bed owns in each host namespace.
pub const TABLE: &str = "granary_faults";

/// A directed link between two hosts: packets `from` sends to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// The sender.
    pub from: HostId,
    /// The receiver.
    pub to: HostId,
}

/// The nft script that gives host `me` the rules of `cuts` (and removes any it had
/// before): one transaction, applied with `nft -f -`.
pub(crate) fn render_rules(
    me: HostId,
    cuts: &BTreeSet<Link>,
    addr: impl Fn(HostId) -> Ipv4Addr,
) -> String {
    let receive_from: Vec<String> = cuts
        .iter()
        .filter(|l| l.to == me)
        .map(|l| addr(l.from).to_string())
        .collect();
    // `table ...` then `delete table ...`: creating first makes the delete valid
    // whether or not the table existed; the whole script is one transaction.
    let mut script =
        format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    script.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    if !receive_from.is_empty() {
        let _ = writeln!(
            script,
            "    ip saddr {{ {} }} drop",
            receive_from.join(", ")
        );
    }
    script.push_str("  }\n}\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(h: HostId) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, h.0 as u8 + 1)
    }

    #[test]
    fn a_one_way_cut_drops_at_the_receivers_input_only() {
        let cuts = BTreeSet::from([Link {
            from: HostId(0),
            to: HostId(1),
        }]);
        let sender = render_rules(HostId(0), &cuts, addr);
        let receiver = render_rules(HostId(1), &cuts, addr);
        assert!(!sender.contains("drop"), "{sender}");
        assert!(
            receiver.contains("ip saddr { 10.0.0.1 } drop"),
            "{receiver}"
        );
        assert!(
            receiver.contains("delete table inet granary_faults"),
            "{receiver}"
        );
    }
}
