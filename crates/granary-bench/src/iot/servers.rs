//! The cluster side of the `iot` scenario: a server is a granary node (a `RemoteNode`,
//! a `Cluster` on it and a `DeviceServer`) plus the business logic of seed 003 §5.3:
//! for every device the server is responsible for, ask for a report, sum it, ask again
//! at once; a request unanswered within the device's resend timeout ([`Rto`]) is sent
//! again. Each server runs in a process of its own (see `node`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use granary::cluster::{Cluster, ClusterConfig};
use granary::crdt::{Replicator, ReplicatorConfig};
use granary::devices::{DeviceId, DeviceServer, ServerConfig, TrackingEvent};
use granary::remote::faults::{FaultInjector, LinkFaults, Scope};
use granary::remote::{RemoteNode, TransportConfig};
use granary::ActorSystem;
use tokio::task::AbortHandle;

use super::messages::{ReportRequest, Reporter, REPORTER, REPORT_SUM};
use super::rto::Rto;
use super::totals::Totals;
use super::IotBenchError;

/// The cluster name and secret of every node of the scenario.
pub(super) fn transport(faults: &Arc<FaultInjector>) -> TransportConfig {
    TransportConfig::new("granary-bench-iot", b"granary-bench-iot".to_vec())
        .with_faults(faults.clone())
}

/// One running server.
pub(super) struct Server {
    remote: RemoteNode,
    cluster: Cluster,
    _replicator: Replicator,
    _devices: Arc<DeviceServer>,
}

impl Server {
    /// Starts a server listening on `listen` (port 0: any) that joins through `seeds`.
    pub(super) async fn start(
        listen: SocketAddr,
        seeds: Vec<SocketAddr>,
        faults: &Arc<FaultInjector>,
        totals: &Arc<Totals>,
        resend_cap: Duration,
    ) -> Result<Self, IotBenchError> {
        let remote = bind(listen, faults).await?;
        let cluster = match Cluster::start_on_remote(ClusterConfig::default(), &remote, seeds).await
        {
            Ok(cluster) => cluster,
            Err(e) => {
                remote.shutdown();
                return Err(IotBenchError::Server(e.to_string()));
            }
        };
        let replicator = match Replicator::start(&remote, &cluster, ReplicatorConfig::default()) {
            Ok(replicator) => replicator,
            Err(e) => {
                cluster.stop().await;
                remote.shutdown();
                return Err(IotBenchError::Server(e.to_string()));
            }
        };
        let devices =
            match DeviceServer::start(&remote, &cluster, &replicator, ServerConfig::default()) {
                Ok(devices) => Arc::new(devices),
                Err(e) => {
                    replicator.stop();
                    cluster.stop().await;
                    remote.shutdown();
                    return Err(IotBenchError::Server(e.to_string()));
                }
            };
        tokio::spawn(business_logic(devices.clone(), totals.clone(), resend_cap));
        Ok(Self {
            remote,
            cluster,
            _replicator: replicator,
            _devices: devices,
        })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.remote.local_addr()
    }

    pub(super) fn up_members(&self) -> usize {
        self.cluster.up_members().len()
    }
}

/// The channel whose frames `--drop` drops: the one actor messages travel on. The
/// transport's own frames (handshakes, its connection heartbeats on "control") are
/// left alone, as the paper dropped actor messages, not its transport's keepalives.
pub(super) const DROPPED_CHANNEL: &str = "data";

/// The faults of the actor messages between a client and a server: `drop` of them
/// dropped, each delayed by `delay` (a simulated one-way network latency).
pub(super) fn client_link(drop: f64, delay: Duration) -> Option<LinkFaults> {
    (drop > 0.0 || !delay.is_zero()).then(|| LinkFaults {
        drop_probability: drop,
        delay: (!delay.is_zero()).then_some(delay..delay),
    })
}

/// Applies `faults` to this server's messages to clients: every peer but the
/// `servers` (server ↔ server traffic is never dropped nor delayed, as in the paper).
pub(super) fn fault_client_traffic(
    faults: &FaultInjector,
    servers: &[SocketAddr],
    link: Option<LinkFaults>,
) {
    // More specific than the rule for everyone, so it wins.
    for &server in servers {
        faults.set(
            Scope::to(server).on_channel(DROPPED_CHANNEL),
            LinkFaults::default(),
        );
    }
    if let Some(link) = link {
        faults.set(Scope::all().on_channel(DROPPED_CHANNEL), link);
    }
}

/// Binds a node at `listen`; a restarted server takes its old port back, which the
/// kernel may refuse for a moment, so binding is retried for up to two seconds.
async fn bind(
    listen: SocketAddr,
    faults: &Arc<FaultInjector>,
) -> Result<RemoteNode, IotBenchError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match RemoteNode::start(ActorSystem::new(), transport(faults).with_listen(listen)).await {
            Ok(remote) => return Ok(remote),
            Err(e) if Instant::now() >= deadline => {
                return Err(IotBenchError::Server(e.to_string()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The report loops of one server, stopped when dropped (the logic task was aborted).
struct Loops(HashMap<DeviceId, AbortHandle>);

impl Drop for Loops {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

/// Follows the devices this server tracks and runs one report loop per device.
async fn business_logic(devices: Arc<DeviceServer>, totals: Arc<Totals>, resend_cap: Duration) {
    let mut events = devices.subscribe();
    let mut loops = Loops(HashMap::new());
    while let Some(event) = events.recv().await {
        match event {
            TrackingEvent::Assigned { device, .. } => {
                // A device registering again may have a new address: restart its loop.
                let task = tokio::spawn(report_loop(
                    devices.clone(),
                    device.clone(),
                    totals.clone(),
                    resend_cap,
                ));
                if let Some(old) = loops.0.insert(device, task.abort_handle()) {
                    old.abort();
                }
            }
            TrackingEvent::Released { device } | TrackingEvent::Lost { device } => {
                if let Some(task) = loops.0.remove(&device) {
                    task.abort();
                    totals.untracked();
                }
            }
        }
    }
}

/// Asks one device for reports, one at a time, for as long as this server tracks it;
/// the resend timeout follows the device's measured round trip ([`Rto`]).
async fn report_loop(
    devices: Arc<DeviceServer>,
    device: DeviceId,
    totals: Arc<Totals>,
    resend_cap: Duration,
) {
    let Ok(reporter) = devices.device_ref::<Reporter>(&device, REPORTER) else {
        return;
    };
    let mut rto = Rto::new(resend_cap);
    loop {
        let timeout = rto.timeout();
        let asked = Instant::now();
        match reporter.ask_timeout(ReportRequest, timeout).await {
            Ok(report) => {
                let round_trip = asked.elapsed();
                rto.answered(round_trip);
                if report.0.iter().sum::<i64>() == REPORT_SUM {
                    totals.report(round_trip);
                } else {
                    totals.corrupt();
                }
            }
            Err(_) => {
                rto.lost();
                totals.resend();
                // A refused request (the device's node is gone) fails at once: wait out
                // the timeout anyway, so a dead device is not asked in a busy loop.
                let waited = asked.elapsed();
                if waited < timeout {
                    tokio::time::sleep(timeout - waited).await;
                }
            }
        }
    }
}
