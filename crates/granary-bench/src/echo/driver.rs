//! The echo load (seed 002 §6.2.2): `concurrency` workers each generate a binary
//! object, send it to a uniformly chosen partition's owner and wait for the echo
//! before the next request, for a fixed duration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_cluster::HashRing;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::wire::{Wire, ECHO};
use crate::latency::Latencies;

/// Partitions of the ring, as Riak Core's default ring size.
pub(crate) const PARTITIONS: u64 = 64;

/// The longest round trip recorded exactly.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// The size of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Bytes per object.
    pub(crate) payload: usize,
    /// Workers, each with one request outstanding.
    pub(crate) concurrency: usize,
    /// How long requests are started.
    pub(crate) duration: Duration,
    /// Limit of one request.
    pub(crate) timeout: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Every request's round trip.
    pub(crate) latencies: Latencies,
    /// From the first request to the last answer.
    pub(crate) seconds: f64,
}

/// The owner of `partition` on `ring`.
pub(crate) fn partition_owner(ring: &HashRing, partition: u64) -> Option<SocketAddr> {
    let width = u64::MAX / PARTITIONS;
    ring.owner_of_position(partition * width).map(|id| id.addr)
}

/// Runs `load` worker tasks with `work` (one request per call, returning its size
/// check) and merges their latencies.
pub(crate) async fn run_workers<F, Fut>(load: Load, work: F) -> Result<Measured, String>
where
    F: Fn(usize, StdRng) -> Fut,
    Fut: std::future::Future<Output = Result<Latencies, String>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|worker| {
            let rng = StdRng::seed_from_u64(0x5eed ^ worker as u64);
            tokio::spawn(work(worker, rng))
        })
        .collect();
    let mut all = Latencies::new(MAX_LATENCY).map_err(|e| e.to_string())?;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(latencies)) => all.merge(&latencies).map_err(|e| e.to_string())?,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("a worker failed: {e}"));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Measured {
            latencies: all,
            seconds: start.elapsed().as_secs_f64(),
        }),
    }
}

/// Runs the echo load from this node.
pub(crate) async fn run(
    wire: Arc<Wire>,
    ring: Arc<HashRing>,
    load: Load,
) -> Result<Measured, String> {
    let me = wire.local_addr().ok_or("the node has no transport")?;
    let deadline = Instant::now() + load.duration;
    run_workers(load, move |_, mut rng| {
        let wire = wire.clone();
        let ring = ring.clone();
        async move {
            let body = Bytes::from(vec![0x42; load.payload]);
            let mut latencies = Latencies::new(MAX_LATENCY).map_err(|e| e.to_string())?;
            while Instant::now() < deadline {
                let partition = rng.random_range(0..PARTITIONS);
                let owner = partition_owner(&ring, partition).ok_or("the ring is empty")?;
                let t0 = Instant::now();
                let reply = if owner == me {
                    // A partition this node owns: served here, as Riak Core would.
                    body.clone()
                } else {
                    wire.request(owner, ECHO, partition, body.clone(), load.timeout)
                        .await
                        .map_err(|e| e.to_string())?
                };
                if reply.len() != body.len() {
                    return Err(format!(
                        "echo of {} B came back with {} B",
                        body.len(),
                        reply.len()
                    ));
                }
                latencies.record(t0.elapsed());
            }
            Ok(latencies)
        }
    })
    .await
}
