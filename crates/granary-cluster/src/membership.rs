//! Membership state: one [`Member`] row per node address and the rules that merge them.
//!
//! Rows merge like a CRDT (commutative, associative, idempotent), so gossip may deliver
//! them in any order, any number of times: for one address the row with the higher
//! incarnation wins, then the later status (Joining < Up < Leaving < Exiting < Down <
//! Removed), then the higher version. Each node is the only writer of its own row's
//! version, except that others may declare it Down, which outranks every live status.
//!
//! The rows' suspicion sets together form the [`Reachability`] table that the downing
//! rule reads.

mod member;
mod reachability;
mod table;

pub use member::{Member, MemberStatus};
pub use reachability::Reachability;
pub use table::{DigestEntry, MembershipTable};
