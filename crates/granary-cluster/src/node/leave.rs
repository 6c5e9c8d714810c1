//! Graceful leave: Leaving (off the ring, hand-off runs) → Exiting → Removed.

use super::{Mode, NodeCore, Notice};
use crate::membership::{Member, MemberStatus};
use crate::message::ClusterMessage;

impl NodeCore {
    /// Marks this node Leaving; returns false when it is not an active member.
    pub(crate) fn begin_leave(&mut self) -> bool {
        if !matches!(self.mode, Mode::Active) {
            return false;
        }
        match self.own_status() {
            Some(MemberStatus::Joining | MemberStatus::Up) => {
                self.update_own(|row| row.status = MemberStatus::Leaving);
                // Tell every peer at once, so the ring moves before the hand-off runs.
                let leaving: Vec<Member> = self.own_row().cloned().into_iter().collect();
                self.push_to_all_peers(leaving);
                true
            }
            Some(MemberStatus::Leaving) => true,
            _ => false,
        }
    }

    /// After the hand-off: Exiting, then Removed, told to every live peer directly, then stop.
    pub(crate) fn finish_leave(&mut self) {
        if !matches!(self.mode, Mode::Active) {
            return;
        }
        self.update_own(|row| row.status = MemberStatus::Exiting);
        let exiting = self.own_row().cloned();
        self.update_own(|row| row.status = MemberStatus::Removed);
        let removed = self.own_row().cloned();
        self.push_to_all_peers(exiting.into_iter().chain(removed).collect());
        self.mode = Mode::Stopped;
        self.detectors.clear();
        self.notices.push(Notice::Stopped);
    }

    /// Sends `deltas` directly to every live peer: leaving is rare, and a prompt, ordered
    /// Leaving → Exiting → Removed matters more than the O(N) fan-out.
    fn push_to_all_peers(&mut self, deltas: Vec<Member>) {
        let state_hash = self.table.state_hash();
        let peers: Vec<_> = self
            .table
            .iter()
            .filter(|m| m.status.is_live() && m.id.addr != self.me.addr)
            .map(|m| m.id.addr)
            .collect();
        for p in peers {
            let deltas = deltas.clone();
            self.send(p, ClusterMessage::Gossip { state_hash, deltas });
        }
    }
}
