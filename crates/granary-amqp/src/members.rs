//! The members heard from on the membership exchange: a bounded table of addresses
//! with the time each last announced itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) struct MemberTable {
    entries: Mutex<HashMap<SocketAddr, Entry>>,
    /// Woken whenever a member is heard.
    heard: Notify,
    ttl: Duration,
    cap: usize,
}

/// What the table knows of one address.
#[derive(Clone, Copy)]
struct Entry {
    /// When it was last heard (announced or left).
    at: Instant,
    /// The highest epoch heard from it (see [`MemberTable::heard`]).
    epoch: u64,
    /// It left at `epoch`: kept as a tombstone until the TTL, so that an announcement
    /// it sent before leaving (an answer to a `discover` still on its way) cannot bring
    /// it back.
    left: bool,
}

impl MemberTable {
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            heard: Notify::new(),
            ttl,
            cap,
        }
    }

    /// `addr` announced itself now, at `epoch`: a node numbers its announcements and
    /// its leave from one counter that only grows (seeded from the wall clock, so a
    /// restarted node goes on growing), and an announcement at or before the epoch of a
    /// leave heard from it is ignored — it was sent before the leave and arrived after
    /// it. Epoch 0 is a node that does not number them: always taken.
    ///
    /// A new member over the cap is forgotten (after the expired ones are dropped to
    /// make room), so announcements never grow the table beyond `cap`.
    pub(crate) fn heard(&self, addr: SocketAddr, epoch: u64) {
        let now = Instant::now();
        {
            let mut entries = self.entries.lock();
            let known = match entries.get(&addr).copied() {
                Some(e) if e.left && epoch != 0 && epoch <= e.epoch => return,
                Some(e) => e.epoch,
                None if self.make_room(&mut entries, now) => 0,
                None => return,
            };
            entries.insert(
                addr,
                Entry {
                    at: now,
                    epoch: known.max(epoch),
                    left: false,
                },
            );
        }
        self.heard.notify_waiters();
    }

    /// `addr` left, at `epoch` (0: not numbered, nothing to hold back).
    pub(crate) fn left(&self, addr: SocketAddr, epoch: u64) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if epoch == 0 {
            entries.remove(&addr);
            return;
        }
        let known = entries.get(&addr).map(|e| e.epoch);
        if known.is_none() && !self.make_room(&mut entries, now) {
            return;
        }
        let known = known.unwrap_or(0);
        entries.insert(
            addr,
            Entry {
                at: now,
                epoch: known.max(epoch),
                left: true,
            },
        );
    }

    /// Whether a new address fits: drops expired entries when the table is full.
    fn make_room(&self, entries: &mut HashMap<SocketAddr, Entry>, now: Instant) -> bool {
        if entries.len() >= self.cap {
            entries.retain(|_, e| now.duration_since(e.at) < self.ttl);
        }
        entries.len() < self.cap
    }

    /// Members heard within the TTL, other than `me`.
    pub(crate) fn fresh(&self, me: SocketAddr) -> Vec<SocketAddr> {
        let now = Instant::now();
        let mut out: Vec<SocketAddr> = (self.entries.lock().iter())
            .filter(|(addr, e)| **addr != me && !e.left && now.duration_since(e.at) < self.ttl)
            .map(|(addr, _)| *addr)
            .collect();
        out.sort();
        out
    }

    pub(crate) fn notify(&self) -> &Notify {
        &self.heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_forgets_expired_members() {
        let table = MemberTable::new(Duration::from_secs(10), 2);
        table.heard(addr(1), 1);
        table.heard(addr(2), 1);
        table.heard(addr(3), 1); // over the cap, nothing expired: not kept
        assert_eq!(table.fresh(addr(9)), vec![addr(1), addr(2)]);
        assert_eq!(table.fresh(addr(1)), vec![addr(2)]);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(table.fresh(addr(9)).is_empty());
        table.heard(addr(3), 1); // the expired ones made room
        assert_eq!(table.fresh(addr(9)), vec![addr(3)]);
        table.left(addr(3), 2);
        assert!(table.fresh(addr(9)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_announcement_sent_before_a_leave_does_not_bring_the_member_back() {
        let table = MemberTable::new(Duration::from_secs(10), 3);
        table.heard(addr(1), 5);
        table.left(addr(1), 6);
        // An answer to a discover, sent at epoch 5 (or 6, racing the leave), arrives late.
        table.heard(addr(1), 5);
        table.heard(addr(1), 6);
        assert!(table.fresh(addr(9)).is_empty(), "the leave wins");
        // Announcing again takes a new epoch: back.
        table.heard(addr(1), 7);
        assert_eq!(table.fresh(addr(9)), vec![addr(1)]);
        // A node that does not number its messages (epoch 0) behaves as before.
        table.left(addr(2), 0);
        table.heard(addr(2), 0);
        assert_eq!(table.fresh(addr(9)), vec![addr(1), addr(2)]);
        table.left(addr(2), 0);
        assert_eq!(table.fresh(addr(9)), vec![addr(1)]);
        // Tombstones count against the cap and expire with the TTL.
        table.left(addr(3), 1);
        table.left(addr(4), 1);
        table.heard(addr(5), 1); // full: 1, 3 and 4 are held
        assert_eq!(table.fresh(addr(9)), vec![addr(1)]);
        tokio::time::advance(Duration::from_secs(11)).await;
        table.heard(addr(5), 1);
        assert_eq!(table.fresh(addr(9)), vec![addr(5)]);
    }
}
