//! The checks of `failover`: overlapping activations in the activation log, and
//! acknowledged increments missing from the final counts.

use std::collections::HashMap;
use std::net::SocketAddr;

/// One activation from the log: where, which, from when to when (microseconds
/// since the Unix epoch; `u64::MAX` while it is still alive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interval {
    /// The host.
    pub(crate) node: SocketAddr,
    /// The activation id on that host.
    pub(crate) id: u64,
    /// Start.
    pub(crate) start: u64,
    /// End.
    pub(crate) end: u64,
}

/// One `WHAT KEY NODE ID T` line of the activation log.
struct LogLine<'a> {
    what: &'a str,
    key: &'a str,
    node: SocketAddr,
    id: u64,
    t: u64,
}

impl<'a> LogLine<'a> {
    /// The line's fields, if it is one.
    fn parse(line: &'a str) -> Option<Self> {
        let mut words = line.split_whitespace();
        Some(Self {
            what: words.next()?,
            key: words.next()?,
            node: words.next()?.parse().ok()?,
            id: words.next()?.parse().ok()?,
            t: words.next()?.parse().ok()?,
        })
    }
}

/// Builds every identity's activations from `act`/`deact` lines. An activation on
/// `killed` (the node that got `kill -9` at `killed_at`) that never logged its end
/// ended at the kill.
pub(crate) fn activations<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    killed: SocketAddr,
    killed_at: u64,
) -> HashMap<String, Vec<Interval>> {
    let mut open: HashMap<(String, SocketAddr, u64), u64> = HashMap::new();
    let mut all: HashMap<String, Vec<Interval>> = HashMap::new();
    for line in lines {
        let Some(LogLine {
            what,
            key,
            node,
            id,
            t,
        }) = LogLine::parse(line)
        else {
            continue;
        };
        match what {
            "act" => {
                open.insert((key.to_string(), node, id), t);
            }
            "deact" => {
                let start = open.remove(&(key.to_string(), node, id)).unwrap_or(t);
                all.entry(key.to_string()).or_default().push(Interval {
                    node,
                    id,
                    start,
                    end: t,
                });
            }
            _ => {}
        }
    }
    for ((key, node, id), start) in open {
        let end = if node == killed { killed_at } else { u64::MAX };
        all.entry(key).or_default().push(Interval {
            node,
            id,
            start,
            end,
        });
    }
    all
}

/// Activations that started while another activation of the same identity was
/// still alive.
pub(crate) fn duplicates(all: &HashMap<String, Vec<Interval>>) -> Vec<(String, Interval)> {
    let mut found = Vec::new();
    for (key, intervals) in all {
        let mut sorted = intervals.clone();
        sorted.sort_by_key(|i| i.start);
        let mut alive_until = 0u64;
        for interval in sorted {
            if interval.start < alive_until {
                found.push((key.clone(), interval.clone()));
            }
            alive_until = alive_until.max(interval.end);
        }
    }
    found
}

/// The window in which one activation handled messages (from `hdl` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handling {
    /// The host.
    pub(crate) node: SocketAddr,
    /// The activation id on that host.
    pub(crate) id: u64,
    /// The first handled message (microseconds since the Unix epoch).
    pub(crate) first: u64,
    /// The last handled message.
    pub(crate) last: u64,
}

/// Every activation's handling window, by identity, from `hdl` lines.
pub(crate) fn handling<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> HashMap<String, Vec<Handling>> {
    let mut windows: HashMap<(String, SocketAddr, u64), (u64, u64)> = HashMap::new();
    for line in lines {
        let Some(LogLine {
            what: "hdl",
            key,
            node,
            id,
            t,
        }) = LogLine::parse(line)
        else {
            continue;
        };
        let window = windows.entry((key.to_string(), node, id)).or_insert((t, t));
        window.0 = window.0.min(t);
        window.1 = window.1.max(t);
    }
    let mut all: HashMap<String, Vec<Handling>> = HashMap::new();
    for ((key, node, id), (first, last)) in windows {
        all.entry(key).or_default().push(Handling {
            node,
            id,
            first,
            last,
        });
    }
    all
}

/// Pairs of activations of one identity whose handling windows overlap: both
/// handled messages while the other was handling too (the window of each is from
/// its first to its last handled message).
pub(crate) fn handling_overlaps(
    all: &HashMap<String, Vec<Handling>>,
) -> Vec<(String, Handling, Handling)> {
    let mut found = Vec::new();
    for (key, windows) in all {
        let mut sorted = windows.clone();
        sorted.sort_by_key(|w| w.first);
        for (i, a) in sorted.iter().enumerate() {
            for b in &sorted[i + 1..] {
                if b.first <= a.last {
                    found.push((key.clone(), a.clone(), b.clone()));
                }
            }
        }
    }
    found
}

/// The final counts against what clients saw: `(lost, unexplained)` where `lost`
/// sums acknowledged increments missing from the count, and `unexplained` sums
/// counts above acknowledged plus unacknowledged (possibly applied) increments.
pub(crate) fn reconcile(acked: &[u64], unacked: &[u64], counts: &[u64]) -> (u64, u64) {
    let mut lost = 0;
    let mut unexplained = 0;
    for ((&a, &u), &c) in acked.iter().zip(unacked).zip(counts) {
        lost += a.saturating_sub(c);
        unexplained += c.saturating_sub(a + u);
    }
    (lost, unexplained)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_failover_after_the_kill_is_not_a_duplicate() {
        let lines = [
            "act c1 127.0.0.1:1 0 100",
            "act c1 127.0.0.1:2 0 600",
            "listening 127.0.0.1:9",
        ];
        let all = activations(lines, addr(1), 500);
        assert_eq!(all["c1"].len(), 2);
        assert!(duplicates(&all).is_empty());
    }

    #[test]
    fn two_live_activations_of_one_identity_are_a_duplicate() {
        let lines = [
            "act c1 127.0.0.1:1 0 100",
            "act c1 127.0.0.1:2 5 200",
            "act c2 127.0.0.1:2 6 200",
            "deact c2 127.0.0.1:2 6 300",
            "act c2 127.0.0.1:3 0 300",
        ];
        let all = activations(lines, addr(9), 1000);
        let found = duplicates(&all);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "c1");
        assert_eq!(found[0].1.id, 5);
    }

    #[test]
    fn two_activations_handling_at_once_overlap() {
        let lines = [
            "hdl c1 127.0.0.1:1 0 100",
            "hdl c1 127.0.0.1:1 0 900",
            "hdl c1 127.0.0.1:2 7 500",
            "hdl c2 127.0.0.1:1 1 100",
            "hdl c2 127.0.0.1:1 1 200",
            "hdl c2 127.0.0.1:2 8 300",
        ];
        let found = handling_overlaps(&handling(lines));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "c1");
        assert_eq!((found[0].1.id, found[0].2.id), (0, 7));
    }

    #[test]
    fn a_counter_below_its_acknowledged_increments_lost_some() {
        assert_eq!(reconcile(&[5, 3], &[0, 1], &[4, 4]), (1, 0));
        assert_eq!(reconcile(&[5], &[1], &[7]), (0, 1));
        assert_eq!(reconcile(&[5], &[2], &[6]), (0, 0));
    }
}
