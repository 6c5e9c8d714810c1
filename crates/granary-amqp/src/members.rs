//! The members heard from on the membership exchange: a bounded table of addresses
//! with the time each last announced itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) struct MemberTable {
    entries: Mutex<HashMap<SocketAddr, Instant>>,
    /// Woken whenever a member is heard.
    heard: Notify,
    ttl: Duration,
    cap: usize,
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

    /// `addr` announced itself now. A new member over the cap is forgotten (after the
    /// expired ones are dropped to make room), so announcements never grow the table
    /// beyond `cap`.
    pub(crate) fn heard(&self, addr: SocketAddr) {
        let now = Instant::now();
        {
            let mut entries = self.entries.lock();
            if !entries.contains_key(&addr) && entries.len() >= self.cap {
                entries.retain(|_, at| now.duration_since(*at) < self.ttl);
                if entries.len() >= self.cap {
                    return;
                }
            }
            entries.insert(addr, now);
        }
        self.heard.notify_waiters();
    }

    /// `addr` left.
    pub(crate) fn left(&self, addr: SocketAddr) {
        self.entries.lock().remove(&addr);
    }

    /// Members heard within the TTL, other than `me`.
    pub(crate) fn fresh(&self, me: SocketAddr) -> Vec<SocketAddr> {
        let now = Instant::now();
        let mut out: Vec<SocketAddr> = (self.entries.lock().iter())
            .filter(|(addr, at)| **addr != me && now.duration_since(**at) < self.ttl)
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
        table.heard(addr(1));
        table.heard(addr(2));
        table.heard(addr(3)); // over the cap, nothing expired: not kept
        assert_eq!(table.fresh(addr(9)), vec![addr(1), addr(2)]);
        assert_eq!(table.fresh(addr(1)), vec![addr(2)]);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(table.fresh(addr(9)).is_empty());
        table.heard(addr(3)); // the expired ones made room
        assert_eq!(table.fresh(addr(9)), vec![addr(3)]);
        table.left(addr(3));
        assert!(table.fresh(addr(9)).is_empty());
    }
}
