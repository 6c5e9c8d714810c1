//! The key-value load (seed 002 §6.2.3): each worker draws a key from a normal
//! distribution over 10,000 keys, sends the get (10 of 11) or put (1 of 11) to the
//! key's 3 replicas on the hash ring (its owner and the next two distinct nodes
//! clockwise) and completes once 2 have answered, merging reads last-writer-wins.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use granary_cluster::ring::key_position;
use granary_cluster::HashRing;
use rand::rngs::StdRng;
use rand::Rng;

use super::replica::{decode_answer, Operation, GET, PUT};
use crate::echo::driver::{run_workers, Load, Measured, PARTITIONS};
use crate::echo::wire::{Wire, KVS};
use crate::latency::Latencies;

/// Keys of the store.
pub(crate) const KEYS: u32 = 10_000;
/// Replicas per key.
pub(crate) const REPLICAS: usize = 3;
/// Answers a request waits for.
pub(crate) const QUORUM: usize = 2;
/// Reads per write.
pub(crate) const READS_PER_WRITE: u32 = 10;

/// A key drawn from a normal distribution centred on the key space, with 3 standard
/// deviations to either end (Box–Muller; redrawn when it falls outside).
pub(crate) fn normal_key(rng: &mut StdRng) -> u32 {
    let mean = f64::from(KEYS) / 2.0;
    let sd = f64::from(KEYS) / 6.0;
    loop {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let key = (mean + sd * z).round();
        if (0.0..f64::from(KEYS)).contains(&key) {
            return key as u32;
        }
    }
}

/// Write timestamps: wall clock in microseconds, made strictly increasing per node.
struct Clock(AtomicU64);

impl Clock {
    fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        // Two writes in one microsecond still get distinct timestamps.
        let step = |last: u64| now.max(last + 1);
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(step(last))
            })
            .map_or(now, step)
    }
}

/// Runs of this process so far: each run uses its own 10,000 keys, so a read never
/// finds a value of another run's payload size.
static RUNS: AtomicU32 = AtomicU32::new(0);

/// One replica's answer: local replicas are served in this process.
async fn ask_replica(
    wire: &Wire,
    me: SocketAddr,
    replica: SocketAddr,
    partition: u64,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, String> {
    if replica == me {
        Ok(wire.replica().serve(&body).await)
    } else {
        wire.request(replica, KVS, partition, body, timeout)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Runs the key-value load from this node (the coordinator of every request).
pub(crate) async fn run(
    wire: Arc<Wire>,
    ring: Arc<HashRing>,
    load: Load,
) -> Result<Measured, String> {
    let me = wire.local_addr().ok_or("the node has no transport")?;
    let deadline = Instant::now() + load.duration;
    let clock = Arc::new(Clock(AtomicU64::new(0)));
    let key_offset = RUNS.fetch_add(1, Ordering::Relaxed) * KEYS;
    run_workers(load, move |_, mut rng| {
        let wire = wire.clone();
        let ring = ring.clone();
        let clock = clock.clone();
        async move {
            let value = Bytes::from(vec![0x76; load.payload]);
            let mut latencies =
                Latencies::new(Duration::from_secs(60)).map_err(|e| e.to_string())?;
            while Instant::now() < deadline {
                let key = key_offset + normal_key(&mut rng);
                let write = rng.random_range(0..=READS_PER_WRITE) == 0;
                let operation = Operation {
                    op: if write { PUT } else { GET },
                    key,
                    timestamp: if write { clock.next() } else { 0 },
                    len: load.payload as u32,
                };
                let body = operation.encode(&value);
                let position = key_position(&key.to_le_bytes());
                let partition = position / (u64::MAX / PARTITIONS);
                let replicas = ring.preference_list(&key.to_le_bytes(), REPLICAS);
                if replicas.len() < QUORUM {
                    return Err(format!("only {} replicas on the ring", replicas.len()));
                }
                let t0 = Instant::now();
                let mut answers: FuturesUnordered<_> = replicas
                    .iter()
                    .map(|replica| {
                        ask_replica(
                            &wire,
                            me,
                            replica.addr,
                            partition,
                            body.clone(),
                            load.timeout,
                        )
                    })
                    .collect();
                let mut newest: Option<(u64, usize)> = None;
                let mut answered = 0;
                while answered < QUORUM {
                    let answer = answers
                        .next()
                        .await
                        .ok_or("fewer answers than the quorum")??;
                    let decoded = decode_answer(&answer).ok_or("a malformed replica answer")?;
                    // Last writer wins: keep the answer with the newest timestamp.
                    if newest.is_none_or(|(t, _)| decoded.0 > t) {
                        newest = Some(decoded);
                    }
                    answered += 1;
                }
                latencies.record(t0.elapsed());
                // The third replica's answer is not waited for: its future is dropped
                // here and its late reply finds no pending request.
                drop(answers);
                if let Some((timestamp, len)) = newest {
                    if write && timestamp < operation.timestamp {
                        return Err(format!(
                            "a put of key {key} read back an older timestamp {timestamp}"
                        ));
                    }
                    if !write && timestamp > 0 && len != load.payload {
                        return Err(format!("a get of key {key} returned {len} B"));
                    }
                }
            }
            Ok(latencies)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_are_normal_around_the_middle_and_inside_the_key_space() {
        let mut rng = StdRng::seed_from_u64(1);
        let keys: Vec<u32> = (0..20_000).map(|_| normal_key(&mut rng)).collect();
        assert!(keys.iter().all(|k| *k < KEYS));
        let mean = keys.iter().map(|k| f64::from(*k)).sum::<f64>() / keys.len() as f64;
        assert!((mean - 5000.0).abs() < 50.0, "mean {mean}");
        // About 68 % within one standard deviation.
        let sd = f64::from(KEYS) / 6.0;
        let near = keys
            .iter()
            .filter(|k| (f64::from(**k) - 5000.0).abs() <= sd)
            .count() as f64
            / keys.len() as f64;
        assert!((0.64..0.72).contains(&near), "within 1 sd: {near}");
    }

    #[test]
    fn timestamps_strictly_increase() {
        let clock = Clock(AtomicU64::new(0));
        let mut last = 0;
        for _ in 0..10_000 {
            let t = clock.next();
            assert!(t > last);
            last = t;
        }
    }
}
