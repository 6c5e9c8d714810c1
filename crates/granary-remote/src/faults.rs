//! Fault injection at the sending side (Partisan-style interposition, seed 003 §2.11).
//!
//! A [`FaultInjector`] sits between [`Transport::send`](crate::Transport::send) and the
//! connection queues. Rules can be changed while traffic flows:
//!
//! - per link ([`Scope`]: source node, destination node, channel, each optional) a drop
//!   probability and a delay range ([`LinkFaults`]);
//! - partitions that block traffic between two sets of nodes, one way or both ways;
//!   the transport's reader also drops frames that *arrive* over a blocked link
//!   ([`FaultInjector::blocks_arrival`]), so a partition set on one node's injector
//!   cuts both directions of its links without repeating it on the peer.
//!
//! The user's guide, with the bed of real processes for comparison, is
//! `docs/faults.md`.
//!
//! Decisions come from one `SmallRng` seeded at construction, so a run that makes the same
//! sequence of sends makes the same decisions. One injector can be shared by several
//! in-process nodes (rules name nodes by listen address), so one injector can describe
//! a whole test cluster's network; a partition also works set on one node alone.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which traffic a rule applies to; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Sending node's listen address.
    pub from: Option<SocketAddr>,
    /// Receiving node's listen address.
    pub to: Option<SocketAddr>,
    /// Channel name ("control", "data" or a user channel).
    pub channel: Option<String>,
}

impl Scope {
    /// Every link and channel.
    pub fn all() -> Self {
        Self::default()
    }

    /// Traffic towards `peer`.
    pub fn to(peer: SocketAddr) -> Self {
        Self {
            to: Some(peer),
            ..Self::default()
        }
    }

    /// Restrict to one channel.
    pub fn on_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_owned());
        self
    }

    fn matches(&self, from: SocketAddr, to: SocketAddr, channel: &str) -> bool {
        self.from.is_none_or(|f| f == from)
            && self.to.is_none_or(|t| t == to)
            && self.channel.as_deref().is_none_or(|c| c == channel)
    }

    fn specificity(&self) -> usize {
        usize::from(self.from.is_some())
            + usize::from(self.to.is_some())
            + usize::from(self.channel.is_some())
    }
}

/// Faults applied to the traffic of a [`Scope`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability in `[0, 1]` that a frame is silently dropped.
    pub drop_probability: f64,
    /// Each frame is held back for a duration drawn uniformly from this range. Frames of
    /// one connection keep their order (a frame never overtakes an earlier one).
    pub delay: Option<Range<Duration>>,
}

/// Partition direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Block only traffic from the first set to the second.
    OneWay,
    /// Block traffic in both directions.
    BothWays,
}

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it now.
    Deliver,
    /// Drop it (random drop).
    Drop,
    /// Drop it (partition).
    Blocked,
    /// Send it after this delay.
    Delay(Duration),
}

/// Counters of what the injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames examined.
    pub examined: u64,
    /// Frames dropped at random.
    pub dropped: u64,
    /// Frames dropped by a partition when sent.
    pub blocked: u64,
    /// Frames dropped by a partition when they arrived
    /// ([`FaultInjector::blocks_arrival`]).
    pub blocked_on_arrival: u64,
    /// Frames delayed.
    pub delayed: u64,
}

struct State {
    rng: SmallRng,
    rules: Vec<(Scope, LinkFaults)>,
    blocked: HashSet<(SocketAddr, SocketAddr)>,
}

/// Seeded, run-time changeable fault injection.
///
/// ```
/// use granary_remote::faults::{FaultInjector, LinkFaults, Scope, Verdict};
/// let faults = FaultInjector::new(7);
/// let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
/// faults.set(Scope::to(b), LinkFaults { drop_probability: 1.0, delay: None });
/// assert_eq!(faults.decide(a, b, "data"), Verdict::Drop);
/// faults.clear();
/// assert_eq!(faults.decide(a, b, "data"), Verdict::Deliver);
/// ```
pub struct FaultInjector {
    active: AtomicBool,
    state: Mutex<State>,
    examined: AtomicU64,
    dropped: AtomicU64,
    blocked: AtomicU64,
    blocked_on_arrival: AtomicU64,
    delayed: AtomicU64,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// An injector with no rules whose random decisions follow `seed`.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            active: AtomicBool::new(false),
            state: Mutex::new(State {
                rng: SmallRng::seed_from_u64(seed),
                rules: Vec::new(),
                blocked: HashSet::new(),
            }),
            examined: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            blocked_on_arrival: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        })
    }

    /// Set (or replace) the faults of a scope. The most specific matching scope wins.
    pub fn set(&self, scope: Scope, faults: LinkFaults) {
        let mut s = self.state.lock();
        s.rules.retain(|(sc, _)| *sc != scope);
        s.rules.push((scope, faults));
        s.rules
            .sort_by_key(|(sc, _)| std::cmp::Reverse(sc.specificity()));
        self.refresh(&s);
    }

    /// Remove the faults of a scope.
    pub fn remove(&self, scope: &Scope) {
        let mut s = self.state.lock();
        s.rules.retain(|(sc, _)| sc != scope);
        self.refresh(&s);
    }

    /// Block traffic from every node of `a` to every node of `b` (and back if `BothWays`).
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr], direction: Direction) {
        let mut s = self.state.lock();
        for &x in a {
            for &y in b {
                s.blocked.insert((x, y));
                if direction == Direction::BothWays {
                    s.blocked.insert((y, x));
                }
            }
        }
        self.refresh(&s);
    }

    /// Remove every partition.
    pub fn heal(&self) {
        let mut s = self.state.lock();
        s.blocked.clear();
        self.refresh(&s);
    }

    /// Remove every rule and partition.
    pub fn clear(&self) {
        let mut s = self.state.lock();
        s.blocked.clear();
        s.rules.clear();
        self.refresh(&s);
    }

    fn refresh(&self, s: &State) {
        let active = !s.blocked.is_empty() || !s.rules.is_empty();
        self.active.store(active, Ordering::Release);
    }

    /// Decide the fate of one frame from `from` to `to` on `channel`.
    pub fn decide(&self, from: SocketAddr, to: SocketAddr, channel: &str) -> Verdict {
        // Fast path: no rules, no lock.
        if !self.active.load(Ordering::Acquire) {
            return Verdict::Deliver;
        }
        self.examined.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        if s.blocked.contains(&(from, to)) {
            self.blocked.fetch_add(1, Ordering::Relaxed);
            return Verdict::Blocked;
        }
        let Some(rule) = s
            .rules
            .iter()
            .find(|(sc, _)| sc.matches(from, to, channel))
            .map(|(_, f)| f.clone())
        else {
            return Verdict::Deliver;
        };
        if rule.drop_probability > 0.0 && s.rng.random_bool(rule.drop_probability.min(1.0)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        }
        match rule.delay {
            Some(range) if !range.is_empty() => {
                self.delayed.fetch_add(1, Ordering::Relaxed);
                Verdict::Delay(s.rng.random_range(range))
            }
            Some(range) if range.start > Duration::ZERO => {
                self.delayed.fetch_add(1, Ordering::Relaxed);
                Verdict::Delay(range.start)
            }
            _ => Verdict::Deliver,
        }
    }

    /// Whether a frame that arrived at `to` from `from` must be dropped: a partition
    /// that blocks `from → to` (set with [`FaultInjector::partition`]) cuts what
    /// arrives as well as what is sent, so `partition(a, b, BothWays)` on node `a`'s
    /// injector alone also silences what `b` sends to `a`, and a `OneWay` partition
    /// stays one way. Drop probabilities and delays ([`FaultInjector::set`]) act on
    /// sends only. Counted as [`FaultStats::blocked_on_arrival`].
    pub fn blocks_arrival(&self, from: SocketAddr, to: SocketAddr) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let blocked = self.state.lock().blocked.contains(&(from, to));
        if blocked {
            self.blocked_on_arrival.fetch_add(1, Ordering::Relaxed);
        }
        blocked
    }

    /// What the injector has done so far.
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            examined: self.examined.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            blocked_on_arrival: self.blocked_on_arrival.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn drop_rate_stays_within_statistical_bounds() {
        let f = FaultInjector::new(42);
        f.set(
            Scope::all(),
            LinkFaults {
                drop_probability: 0.3,
                delay: None,
            },
        );
        let n = 100_000;
        let dropped = (0..n)
            .filter(|_| f.decide(addr(1), addr(2), "data") == Verdict::Drop)
            .count() as f64;
        // Binomial(n, 0.3): sd = sqrt(n p (1-p)) ~ 145; allow 5 sd.
        let sd = (n as f64 * 0.3 * 0.7).sqrt();
        assert!(
            (dropped - 0.3 * n as f64).abs() < 5.0 * sd,
            "dropped {dropped}"
        );
    }

    #[test]
    fn same_seed_gives_same_decisions() {
        let run = |seed| {
            let f = FaultInjector::new(seed);
            f.set(
                Scope::all(),
                LinkFaults {
                    drop_probability: 0.5,
                    delay: Some(Duration::from_millis(1)..Duration::from_millis(20)),
                },
            );
            (0..1000)
                .map(|_| f.decide(addr(1), addr(2), "data"))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn most_specific_scope_wins_per_peer_and_channel() {
        let f = FaultInjector::new(1);
        let drop_all = LinkFaults {
            drop_probability: 1.0,
            delay: None,
        };
        f.set(Scope::to(addr(2)), drop_all);
        f.set(
            Scope::to(addr(2)).on_channel("control"),
            LinkFaults::default(),
        );
        assert_eq!(f.decide(addr(1), addr(2), "data"), Verdict::Drop);
        assert_eq!(f.decide(addr(1), addr(2), "control"), Verdict::Deliver);
        assert_eq!(f.decide(addr(1), addr(3), "data"), Verdict::Deliver);
    }

    #[test]
    fn one_way_partition_blocks_one_direction_until_healed() {
        let f = FaultInjector::new(1);
        f.partition(&[addr(1)], &[addr(2), addr(3)], Direction::OneWay);
        assert_eq!(f.decide(addr(1), addr(3), "data"), Verdict::Blocked);
        assert_eq!(f.decide(addr(3), addr(1), "data"), Verdict::Deliver);
        f.partition(&[addr(1)], &[addr(2)], Direction::BothWays);
        assert_eq!(f.decide(addr(2), addr(1), "data"), Verdict::Blocked);
        f.heal();
        assert_eq!(f.decide(addr(1), addr(3), "data"), Verdict::Deliver);
        assert_eq!(f.stats().blocked, 2);
    }

    #[test]
    fn arrivals_over_a_blocked_link_are_dropped_one_way_stays_one_way() {
        let f = FaultInjector::new(1);
        assert!(!f.blocks_arrival(addr(2), addr(1)));
        f.partition(&[addr(1)], &[addr(2)], Direction::OneWay);
        assert!(f.blocks_arrival(addr(1), addr(2)));
        assert!(!f.blocks_arrival(addr(2), addr(1)));
        f.partition(&[addr(1)], &[addr(2)], Direction::BothWays);
        assert!(f.blocks_arrival(addr(2), addr(1)));
        f.heal();
        assert!(!f.blocks_arrival(addr(2), addr(1)));
        assert_eq!(f.stats().blocked_on_arrival, 2);
        assert_eq!(f.stats().blocked, 0);
    }
}
