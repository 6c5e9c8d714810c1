//! Failure injection by MTTF (seed 003 §5.4): each member lives a time drawn uniformly
//! from [0.25, 1.75] × MTTF, is killed, and is restarted after a fixed delay, until the
//! run ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::clients::{Client, ClientSetup};
use super::servers::Server;
use super::IotBenchError;

/// Lifetimes of one member.
pub(super) struct Lifetimes {
    mttf: Duration,
    rng: StdRng,
}

impl Lifetimes {
    pub(super) fn new(mttf: Duration, seed: u64) -> Self {
        Self {
            mttf,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next lifetime: uniform in [0.25, 1.75] × MTTF (mean MTTF).
    pub(super) fn next(&mut self) -> Duration {
        self.mttf.mul_f64(self.rng.random_range(0.25..1.75))
    }
}

/// What the run-time of one member needs to kill and restart it.
pub(super) enum Member {
    Client {
        id: granary::devices::DeviceId,
        setup: ClientSetup,
        running: Option<Client>,
    },
    Server {
        restart: Box<
            dyn Fn() -> futures::future::BoxFuture<'static, Result<Server, IotBenchError>> + Send,
        >,
        running: Option<Server>,
    },
}

impl Member {
    /// Kills the member if it runs; true if it did.
    async fn kill(&mut self) -> bool {
        match self {
            Member::Client { setup, running, .. } => match running.take() {
                Some(client) => {
                    client.kill(setup).await;
                    true
                }
                None => false,
            },
            Member::Server { running, .. } => match running.take() {
                Some(server) => {
                    server.kill().await;
                    true
                }
                None => false,
            },
        }
    }

    async fn restart(&mut self) -> bool {
        match self {
            Member::Client { id, setup, running } => match Client::start(id, setup).await {
                Ok(client) => {
                    *running = Some(client);
                    true
                }
                Err(_) => false,
            },
            Member::Server { restart, running } => match restart().await {
                Ok(server) => {
                    *running = Some(server);
                    true
                }
                Err(_) => false,
            },
        }
    }
}

/// Kills and failed restarts, over every member of one kind.
#[derive(Default)]
pub(super) struct ChaosCounts {
    pub(super) kills: AtomicU64,
    pub(super) failed_restarts: AtomicU64,
}

/// Keeps `member` alive until `stop`, killing and restarting it by `lifetimes` if
/// given; kills it at the end.
pub(super) async fn live(
    mut member: Member,
    lifetimes: Option<Lifetimes>,
    restart_delay: Duration,
    counts: Arc<ChaosCounts>,
    mut stop: watch::Receiver<bool>,
) {
    if let Some(mut lifetimes) = lifetimes {
        loop {
            let lifetime = lifetimes.next();
            tokio::select! {
                _ = tokio::time::sleep(lifetime) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if member.kill().await {
                counts.kills.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                _ = tokio::time::sleep(restart_delay) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            // A restart can fail (no server answered); the member then stays dead until
            // its next life.
            let restarted = tokio::select! {
                ok = member.restart() => ok,
                _ = stop.wait_for(|s| *s) => break,
            };
            if !restarted {
                counts.failed_restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    } else {
        let _ = stop.wait_for(|s| *s).await;
    }
    member.kill().await;
}
