//! One-line comparisons of rows from the same run, printed after a scenario and
//! quoted by the report: Partisan's options on vs off (`echo`, `kvs`) and the actor
//! counter vs the function counter (`counter`).

use super::{bytes_label, num, text, Row};

/// Options `on` against `off` at the highest concurrency both ran, per payload and RTT.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptionsEffect {
    /// `echo` or `kvs`.
    pub(crate) scenario: String,
    /// Payload in bytes.
    pub(crate) payload_bytes: f64,
    /// Simulated round trip, ms.
    pub(crate) rtt_ms: f64,
    /// The tbf limit on the test bed's links, Mbit/s (`None`: unlimited or loopback).
    pub(crate) bandwidth_mbit: Option<f64>,
    /// Concurrency compared.
    pub(crate) concurrency: f64,
    /// p99 latency with options off and on, µs.
    pub(crate) p99_off_on: (f64, f64),
    /// Requests per second with options off and on.
    pub(crate) rate_off_on: (f64, f64),
}

/// The comparisons [`OptionsEffect`] of `rows`.
pub(crate) fn options_effects(rows: &[Row]) -> Vec<OptionsEffect> {
    let mut out = Vec::new();
    let find = |key: &Key, options: &str, concurrency: f64| {
        rows.iter().find(|r| {
            text(r, "scenario").as_deref() == Some(key.0.as_str())
                && text(r, "options").as_deref() == Some(options)
                && num(r, "payload_bytes") == Some(key.1)
                && num(r, "rtt_ms") == Some(key.2)
                && num(r, "bandwidth_mbit") == key.3
                && num(r, "concurrency") == Some(concurrency)
        })
    };
    // Scenario, payload, RTT, bandwidth.
    type Key = (String, f64, f64, Option<f64>);
    let mut keys: Vec<Key> = Vec::new();
    for r in rows {
        if let (Some(s), Some(p), Some(t)) = (
            text(r, "scenario"),
            num(r, "payload_bytes"),
            num(r, "rtt_ms"),
        ) {
            let key = (s, p, t, num(r, "bandwidth_mbit"));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    for key in keys {
        let best = rows
            .iter()
            .filter_map(|r| num(r, "concurrency"))
            .filter(|&c| find(&key, "off", c).is_some() && find(&key, "on", c).is_some())
            .fold(None, |acc: Option<f64>, c| {
                Some(acc.map_or(c, |a| a.max(c)))
            });
        let Some(concurrency) = best else { continue };
        let (Some(off), Some(on)) = (
            find(&key, "off", concurrency),
            find(&key, "on", concurrency),
        ) else {
            continue;
        };
        let get = |r: &Row, f| num(r, f).unwrap_or(f64::NAN);
        let (scenario, payload_bytes, rtt_ms, bandwidth_mbit) = key;
        out.push(OptionsEffect {
            scenario,
            payload_bytes,
            rtt_ms,
            bandwidth_mbit,
            concurrency,
            p99_off_on: (get(off, "p99_us"), get(on, "p99_us")),
            rate_off_on: (get(off, "msgs_per_sec"), get(on, "msgs_per_sec")),
        });
    }
    out
}

/// [`options_effects`] as text, one line each.
pub(crate) fn options_effect(rows: &[Row]) -> String {
    options_effects(rows)
        .iter()
        .map(|e| {
            format!(
                "{} {} RTT {} ms{} x{}: p99 options on {:.0} us vs off {:.0} us ({:.2}x); \
                 requests/s on {:.1} vs off {:.1} ({:.2}x)\n",
                e.scenario,
                bytes_label(e.payload_bytes),
                e.rtt_ms,
                e.bandwidth_mbit
                    .map_or(String::new(), |m| format!(" link {m} Mbit/s")),
                e.concurrency,
                e.p99_off_on.1,
                e.p99_off_on.0,
                e.p99_off_on.1 / e.p99_off_on.0,
                e.rate_off_on.1,
                e.rate_off_on.0,
                e.rate_off_on.1 / e.rate_off_on.0,
            )
        })
        .collect()
}

/// One actor variant against the function on the same store and K.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CounterPair {
    /// Store provider.
    pub(crate) store: String,
    /// `actor` or `actor-memory`.
    pub(crate) variant: String,
    /// Increments.
    pub(crate) k: f64,
    /// The actor's messages per second.
    pub(crate) actor: f64,
    /// The function's messages per second.
    pub(crate) function: f64,
}

/// Every actor row of `counter` paired with its `function` row.
pub(crate) fn counter_pairs(rows: &[Row]) -> Vec<CounterPair> {
    rows.iter()
        .filter(|r| text(r, "variant").is_some_and(|v| v.starts_with("actor")))
        .filter_map(|actor| {
            let store = text(actor, "store")?;
            let k = num(actor, "messages")?;
            let function = rows.iter().find(|r| {
                text(r, "variant").as_deref() == Some("function")
                    && text(r, "store").as_deref() == Some(store.as_str())
                    && num(r, "messages") == Some(k)
            })?;
            Some(CounterPair {
                store,
                variant: text(actor, "variant")?,
                k,
                actor: num(actor, "msgs_per_sec")?,
                function: num(function, "msgs_per_sec")?,
            })
        })
        .collect()
}

/// [`counter_pairs`] as text, one line each.
pub(crate) fn counter_ratios(rows: &[Row]) -> String {
    counter_pairs(rows)
        .iter()
        .map(|p| {
            format!(
                "counter {} K={}: {} {:.0} msgs/s vs function {:.0} msgs/s = {:.2}x\n",
                p.store,
                p.k,
                p.variant,
                p.actor,
                p.function,
                p.actor / p.function
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(values: Vec<serde_json::Value>) -> Vec<Row> {
        values
            .into_iter()
            .filter_map(|v| v.as_object().cloned())
            .collect()
    }

    #[test]
    fn options_are_compared_at_the_highest_shared_concurrency() {
        let rows = rows(vec![
            json!({"scenario": "echo", "options": "off", "payload_bytes": 8, "rtt_ms": 20, "concurrency": 4, "p99_us": 100.0, "msgs_per_sec": 10.0}),
            json!({"scenario": "echo", "options": "on", "payload_bytes": 8, "rtt_ms": 20, "concurrency": 4, "p99_us": 50.0, "msgs_per_sec": 20.0}),
            json!({"scenario": "echo", "options": "off", "payload_bytes": 8, "rtt_ms": 20, "concurrency": 8, "p99_us": 1.0, "msgs_per_sec": 1.0}),
        ]);
        let effects = options_effects(&rows);
        assert_eq!(effects.len(), 1);
        assert_eq!(effects[0].concurrency, 4.0);
        assert_eq!(effects[0].p99_off_on, (100.0, 50.0));
        assert!(options_effect(&rows).contains("(0.50x)"));
    }

    #[test]
    fn counter_pairs_match_store_and_k() {
        let rows = rows(vec![
            json!({"variant": "function", "store": "file", "messages": 100, "msgs_per_sec": 10.0}),
            json!({"variant": "actor", "store": "file", "messages": 100, "msgs_per_sec": 60.0}),
            json!({"variant": "actor", "store": "postgres", "messages": 100, "msgs_per_sec": 60.0}),
        ]);
        let pairs = counter_pairs(&rows);
        assert_eq!(pairs.len(), 1);
        assert_eq!(
            (
                pairs[0].store.as_str(),
                pairs[0].k,
                pairs[0].actor,
                pairs[0].function
            ),
            ("file", 100.0, 60.0, 10.0)
        );
        assert!(counter_ratios(&rows).contains("6.00x"));
    }
}
