//! An in-process network for tests and simulations, with per-link faults.
//!
//! Every message is really encoded (postcard) on send and decoded on receive, so the
//! byte counts match what a binary wire format would carry and every message type is
//! proven to round-trip through serde. Links can drop a fraction of messages, add a
//! delay, or be cut (one direction or as a partition between groups).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::ClusterTransport;
use crate::error::TransportError;
use crate::message::Envelope;

/// Faults applied to messages on a link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability in [0, 1] that a message is dropped.
    pub drop_probability: f64,
    /// Delay added to every delivered message.
    pub delay: Duration,
}

pub use super::TrafficStats;

#[derive(Default)]
struct Inner {
    endpoints: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    cut: HashSet<(SocketAddr, SocketAddr)>,
    links: HashMap<(SocketAddr, SocketAddr), LinkFaults>,
    default_faults: LinkFaults,
    stats: HashMap<SocketAddr, TrafficStats>,
}

/// A simulated network shared by many [`MemoryTransport`] endpoints.
///
/// ```
/// use granary_cluster::transport::memory::MemoryNetwork;
/// let net = MemoryNetwork::new(7);
/// let a = net.bind("127.0.0.1:1".parse().unwrap()).unwrap();
/// assert!(net.bind("127.0.0.1:1".parse().unwrap()).is_err());
/// drop(a);
/// assert!(net.bind("127.0.0.1:1".parse().unwrap()).is_ok());
/// ```
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Inner>>,
    rng: Arc<Mutex<SmallRng>>,
}

impl MemoryNetwork {
    /// A network with no faults; `seed` drives the random drops.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
        }
    }

    /// Binds an endpoint at `addr`.
    pub fn bind(&self, addr: SocketAddr) -> Result<MemoryTransport, TransportError> {
        let mut inner = self.inner.lock();
        if inner.endpoints.contains_key(&addr) {
            return Err(TransportError::AddrInUse(addr));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.endpoints.insert(addr, tx);
        Ok(MemoryTransport {
            addr,
            network: self.clone(),
            incoming: rx,
        })
    }

    /// Cuts every link between nodes of different groups, both directions.
    pub fn partition(&self, groups: &[&[SocketAddr]]) {
        let mut inner = self.inner.lock();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            inner.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the one-way link `from → to`.
    pub fn cut(&self, from: SocketAddr, to: SocketAddr) {
        self.inner.lock().cut.insert((from, to));
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.inner.lock().cut.clear();
    }

    /// Sets the faults of the one-way link `from → to`.
    pub fn set_link_faults(&self, from: SocketAddr, to: SocketAddr, faults: LinkFaults) {
        self.inner.lock().links.insert((from, to), faults);
    }

    /// Sets the faults of every link without its own setting.
    pub fn set_default_faults(&self, faults: LinkFaults) {
        self.inner.lock().default_faults = faults;
    }

    /// Traffic counters of `addr`.
    pub fn stats(&self, addr: SocketAddr) -> TrafficStats {
        self.inner
            .lock()
            .stats
            .get(&addr)
            .copied()
            .unwrap_or_default()
    }

    /// Sum of all addresses' traffic counters.
    pub fn total_stats(&self) -> TrafficStats {
        let inner = self.inner.lock();
        inner
            .stats
            .values()
            .fold(TrafficStats::default(), |mut acc, s| {
                acc.sent_messages += s.sent_messages;
                acc.sent_bytes += s.sent_bytes;
                acc.received_messages += s.received_messages;
                acc.dropped_messages += s.dropped_messages;
                acc
            })
    }

    fn deliver(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    ) -> Result<(), TransportError> {
        let (target, faults) = {
            let mut inner = self.inner.lock();
            let len = bytes.len() as u64;
            let stats = inner.stats.entry(from).or_default();
            stats.sent_messages += 1;
            stats.sent_bytes += len;
            let faults = inner
                .links
                .get(&(from, to))
                .copied()
                .unwrap_or(inner.default_faults);
            let target = if inner.cut.contains(&(from, to)) {
                None
            } else {
                inner.endpoints.get(&to).cloned()
            };
            if target.is_none() {
                inner.stats.entry(from).or_default().dropped_messages += 1;
            }
            (target, faults)
        };
        let Some(target) = target else {
            return Err(TransportError::Unreachable(to));
        };
        if faults.drop_probability > 0.0
            && self
                .rng
                .lock()
                .random_bool(faults.drop_probability.min(1.0))
        {
            self.inner
                .lock()
                .stats
                .entry(from)
                .or_default()
                .dropped_messages += 1;
            return Ok(());
        }
        let network = self.clone();
        let count = move || {
            network
                .inner
                .lock()
                .stats
                .entry(to)
                .or_default()
                .received_messages += 1;
        };
        if faults.delay.is_zero() {
            if target.send(bytes).is_ok() {
                count();
            }
        } else {
            // A delayed message is delivered by its own task, so the sender never waits.
            tokio::spawn(async move {
                tokio::time::sleep(faults.delay).await;
                if target.send(bytes).is_ok() {
                    count();
                }
            });
        }
        Ok(())
    }
}

/// One endpoint of a [`MemoryNetwork`]; unbinds its address when dropped.
pub struct MemoryTransport {
    addr: SocketAddr,
    network: MemoryNetwork,
    incoming: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl ClusterTransport for MemoryTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn send(&self, to: SocketAddr, envelope: Envelope) -> Result<(), TransportError> {
        let bytes =
            postcard::to_allocvec(&envelope).map_err(|e| TransportError::Encode(e.to_string()))?;
        self.network.deliver(self.addr, to, bytes)
    }

    async fn recv(&mut self) -> Option<Envelope> {
        loop {
            let bytes = self.incoming.recv().await?;
            match postcard::from_bytes(&bytes) {
                Ok(envelope) => return Some(envelope),
                Err(error) => tracing::warn!(%error, "undecodable cluster message dropped"),
            }
        }
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.network.inner.lock().endpoints.remove(&self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ClusterMessage;
    use crate::node_id::NodeId;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn hb(from: SocketAddr, seq: u64) -> Envelope {
        Envelope {
            from: NodeId::new(from, 1),
            message: ClusterMessage::Heartbeat { seq },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_and_counts_bytes() {
        let net = MemoryNetwork::new(1);
        let a = net.bind(addr(1)).unwrap();
        let mut b = net.bind(addr(2)).unwrap();
        a.send(addr(2), hb(addr(1), 7)).unwrap();
        assert_eq!(b.recv().await, Some(hb(addr(1), 7)));
        let s = net.stats(addr(1));
        assert_eq!(s.sent_messages, 1);
        assert!(s.sent_bytes > 0);
        assert_eq!(net.stats(addr(2)).received_messages, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn partition_cuts_both_directions_until_healed() {
        let net = MemoryNetwork::new(1);
        let mut a = net.bind(addr(1)).unwrap();
        let mut b = net.bind(addr(2)).unwrap();
        net.partition(&[&[addr(1)], &[addr(2)]]);
        assert!(a.send(addr(2), hb(addr(1), 1)).is_err());
        assert!(b.send(addr(1), hb(addr(2), 1)).is_err());
        net.heal();
        a.send(addr(2), hb(addr(1), 2)).unwrap();
        b.send(addr(1), hb(addr(2), 2)).unwrap();
        assert_eq!(b.recv().await, Some(hb(addr(1), 2)));
        assert_eq!(a.recv().await, Some(hb(addr(2), 2)));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_holds_messages_back() {
        let net = MemoryNetwork::new(1);
        let a = net.bind(addr(1)).unwrap();
        let mut b = net.bind(addr(2)).unwrap();
        let delay = Duration::from_millis(500);
        net.set_link_faults(
            addr(1),
            addr(2),
            LinkFaults {
                drop_probability: 0.0,
                delay,
            },
        );
        let start = tokio::time::Instant::now();
        a.send(addr(2), hb(addr(1), 1)).unwrap();
        assert!(b.recv().await.is_some());
        assert!(start.elapsed() >= delay);
    }

    #[tokio::test(start_paused = true)]
    async fn full_drop_probability_loses_everything() {
        let net = MemoryNetwork::new(1);
        let a = net.bind(addr(1)).unwrap();
        let mut b = net.bind(addr(2)).unwrap();
        net.set_default_faults(LinkFaults {
            drop_probability: 1.0,
            delay: Duration::ZERO,
        });
        for i in 0..10 {
            a.send(addr(2), hb(addr(1), i)).unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(1), b.recv()).await;
        assert!(got.is_err());
        assert_eq!(net.stats(addr(1)).dropped_messages, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn sending_to_an_unbound_address_is_an_error() {
        let net = MemoryNetwork::new(1);
        let a = net.bind(addr(1)).unwrap();
        assert_eq!(
            a.send(addr(9), hb(addr(1), 1)),
            Err(TransportError::Unreachable(addr(9)))
        );
    }
}
