//! The device side of the `iot` scenario: each client is a device on a node of its own
//! (as each client of seed 003 §5.3 is a process of its own), answering report
//! requests with its `Reporter`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use granary::devices::{Device, DeviceConfig, DeviceId};
use granary::remote::faults::FaultInjector;
use granary::remote::RemoteNode;
use granary::ActorSystem;

use super::messages::{ReportRequest, Reporter, REPORTER};
use super::servers::transport;
use super::IotBenchError;

/// How the clients are set up.
#[derive(Clone)]
pub(super) struct ClientSetup {
    pub(super) seeds: Vec<SocketAddr>,
    pub(super) heartbeat: Duration,
    /// Faults of the client's own sends (every one goes to a server).
    pub(super) faults: Arc<FaultInjector>,
}

/// One running client (it runs until its process is killed).
pub(super) struct Client {
    _remote: RemoteNode,
    _device: Device,
}

impl Client {
    /// Starts the device `id` on a new node and waits until a server tracks it.
    pub(super) async fn start(id: &DeviceId, setup: &ClientSetup) -> Result<Self, IotBenchError> {
        let remote = RemoteNode::start(ActorSystem::new(), transport(&setup.faults))
            .await
            .map_err(|e| IotBenchError::Client(e.to_string()))?;
        let config = DeviceConfig {
            heartbeat_interval: setup.heartbeat,
            registration_retry: setup.heartbeat,
            connect_timeout: Duration::from_secs(10),
            transport: transport(&setup.faults),
            ..DeviceConfig::new(id.clone())
        };
        let device = match Device::connect_on(&remote, setup.seeds.iter().copied(), config).await {
            Ok(device) => device,
            Err(e) => {
                shut(&remote).await;
                return Err(IotBenchError::Client(e.to_string()));
            }
        };
        let reporter = remote.system().spawn(Reporter);
        if let Err(e) = device
            .expose(REPORTER, &reporter)
            .and_then(|e| e.accept::<ReportRequest>())
        {
            device.shutdown().await;
            shut(&remote).await;
            return Err(IotBenchError::Client(e.to_string()));
        }
        Ok(Self {
            _remote: remote,
            _device: device,
        })
    }
}

async fn shut(remote: &RemoteNode) {
    remote.shutdown();
    remote.system().shutdown().await;
}
