//! The device side of the `iot` scenario: each client is a device on a node of its own
//! (as each client of seed 003 §5.3 is a process of its own), answering report
//! requests with its `Reporter`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use granary::devices::{Device, DeviceConfig, DeviceId};
use granary::remote::faults::{FaultInjector, LinkFaults, Scope};
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
    /// Faults of the clients' own sends (every one goes to a server).
    pub(super) client_faults: Arc<FaultInjector>,
    /// Faults of the servers' sends; a rule per client address drops server → client
    /// traffic only, never server ↔ server.
    pub(super) server_faults: Arc<FaultInjector>,
    pub(super) drop_probability: f64,
}

/// One running client.
pub(super) struct Client {
    remote: RemoteNode,
    device: Device,
}

impl Client {
    /// Starts the device `id` on a new node and waits until a server tracks it.
    pub(super) async fn start(id: &DeviceId, setup: &ClientSetup) -> Result<Self, IotBenchError> {
        let remote = RemoteNode::start(ActorSystem::new(), transport(&setup.client_faults))
            .await
            .map_err(|e| IotBenchError::Client(e.to_string()))?;
        if setup.drop_probability > 0.0 {
            setup.server_faults.set(
                Scope::to(remote.local_addr()),
                LinkFaults {
                    drop_probability: setup.drop_probability,
                    delay: None,
                },
            );
        }
        let config = DeviceConfig {
            heartbeat_interval: setup.heartbeat,
            registration_retry: setup.heartbeat,
            connect_timeout: Duration::from_secs(10),
            transport: transport(&setup.client_faults),
            ..DeviceConfig::new(id.clone())
        };
        let device = match Device::connect_on(&remote, setup.seeds.iter().copied(), config).await {
            Ok(device) => device,
            Err(e) => {
                shut(&remote, setup).await;
                return Err(IotBenchError::Client(e.to_string()));
            }
        };
        let reporter = remote.system().spawn(Reporter);
        if let Err(e) = device
            .expose(REPORTER, &reporter)
            .and_then(|e| e.accept::<ReportRequest>())
        {
            device.shutdown().await;
            shut(&remote, setup).await;
            return Err(IotBenchError::Client(e.to_string()));
        }
        Ok(Self { remote, device })
    }

    /// Crashes the client: its node closes every connection at once.
    pub(super) async fn kill(self, setup: &ClientSetup) {
        self.device.shutdown().await;
        shut(&self.remote, setup).await;
    }
}

async fn shut(remote: &RemoteNode, setup: &ClientSetup) {
    setup.server_faults.remove(&Scope::to(remote.local_addr()));
    remote.shutdown();
    remote.system().shutdown().await;
}
