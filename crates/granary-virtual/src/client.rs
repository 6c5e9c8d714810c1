//! [`Client`]: reaches virtual actors from outside the cluster (Orleans' clients).
//!
//! A client is not a member: it hosts nothing, owns no directory partition and takes
//! no part in gossip. It asks a member for the Up members and their kinds, builds the
//! same hash ring from them, and sends lookups straight to each identity's directory
//! owner, then messages straight to the activation. The view is refreshed every
//! `refresh` interval from any member it knows.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use granary_core::ActorSystem;
use granary_remote::{RemoteNode, TransportConfig};
use tokio::task::AbortHandle;

use crate::actor::VirtualActor;
use crate::config::{ClientConfig, Secret};
use crate::error::VirtualError;
use crate::protocol::{ControlFrame, Reply, Request, CONTROL};
use crate::runtime::{ControlInbox, Members, Runtime, RuntimeConfig};
use crate::vref::VirtualRef;

/// An external client of a granary cluster.
///
/// ```no_run
/// // no_run: needs a running cluster; tests/client.rs runs the same flow.
/// # async fn demo() -> Result<(), granary_virtual::VirtualError> {
/// # struct Counter;
/// # impl granary_virtual::VirtualActor for Counter {
/// #     const KIND: &'static str = "Counter"; type Key = String; type State = ();
/// #     fn activate(_: &String) -> Self { Counter }
/// # }
/// let client = granary_virtual::Client::connect(["127.0.0.1:7000".parse().unwrap()]).await?;
/// let counter = client.get::<Counter>("user-42".to_string());
/// # Ok(()) }
/// ```
pub struct Client {
    runtime: Arc<Runtime>,
    refresh: AbortHandle,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.runtime.me)
            .finish()
    }
}

impl Client {
    /// Connects through `seeds` with the default cluster name and secret.
    pub async fn connect(
        seeds: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Client, VirtualError> {
        Self::connect_with(seeds, "granary", crate::DEFAULT_SECRET.as_bytes().to_vec()).await
    }

    /// Connects through `seeds` to the cluster `name` with `secret`.
    pub async fn connect_with(
        seeds: impl IntoIterator<Item = SocketAddr>,
        name: &str,
        secret: Vec<u8>,
    ) -> Result<Client, VirtualError> {
        Client::builder()
            .seeds(seeds)
            .cluster_secret(name, secret)
            .connect()
            .await
    }

    /// A builder, for a client that needs more than seeds, name and secret (its
    /// own bind address).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    async fn start(builder: ClientBuilder) -> Result<Client, VirtualError> {
        let ClientBuilder { settings, tls } = builder;
        settings.validate()?;
        let tls = match tls {
            Some(tls) => Some(tls),
            None => crate::node::load_tls(&settings.tls)?,
        };
        let seeds = crate::node::resolve_seeds(&settings.seeds).await?;
        let system = ActorSystem::new();
        let mut transport = TransportConfig::new(
            settings.cluster_name.clone(),
            settings.cluster_secret.expose().to_vec(),
        )
        .with_listen(settings.bind);
        transport.tls = tls;
        let remote = RemoteNode::start(system.clone(), transport)
            .await
            .map_err(|e| VirtualError::Setup(e.to_string()))?;
        let slot = Arc::new(OnceLock::new());
        let inbox = system.spawn(ControlInbox {
            runtime: slot.clone(),
        });
        remote
            .expose(CONTROL, &inbox)
            .and_then(|e| e.accept::<ControlFrame>())
            .map_err(|e| VirtualError::Setup(e.to_string()))?;
        let runtime = Arc::new(Runtime::new(
            remote,
            Members::Client(Default::default()),
            Default::default(),
            RuntimeConfig {
                ask_timeout: Duration::from_millis(settings.ask_timeout_ms),
                max_attempts: 60,
                rpc_timeout: Duration::from_secs(2),
                // A client owns no directory partition and places nothing.
                down_margin: Duration::ZERO,
                // Hosts nothing, so holds no lease.
                host_lease: Duration::ZERO,
                location_cache: crate::node::DEFAULT_LOCATION_CACHE,
            },
        ));
        let _ = slot.set(Arc::downgrade(&runtime));
        if !refresh_view(&runtime, &seeds).await {
            return Err(VirtualError::Setup(format!(
                "no member answered among {seeds:?}"
            )));
        }
        let weak = Arc::downgrade(&runtime);
        let refresh = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                let mut known = rt.members.client_addrs();
                known.extend(seeds.iter().copied());
                refresh_view(&rt, &known).await;
            }
        })
        .abort_handle();
        Ok(Client { runtime, refresh })
    }

    /// A ref to the virtual actor `A` with `key`.
    pub fn get<A: VirtualActor>(&self, key: impl Into<A::Key>) -> VirtualRef<A> {
        VirtualRef::new(self.runtime.clone(), key.into())
    }

    /// The address members reach this client at.
    pub fn addr(&self) -> SocketAddr {
        self.runtime.me
    }

    /// The members the client currently knows.
    pub fn members(&self) -> Vec<SocketAddr> {
        let mut m = self.runtime.members.client_addrs();
        m.sort();
        m
    }

    /// Disconnects.
    pub async fn close(self) {
        self.refresh.abort();
        self.runtime.remote().shutdown();
        self.runtime.system().shutdown().await;
    }
}

/// Builds a [`Client`]: seeds, cluster name and secret, and the address it listens
/// on (members dial the client back at that address with replies, so it must be one
/// they can reach).
///
/// ```no_run
/// // no_run: needs a running cluster; tests/client_and_placement.rs runs the same flow.
/// # async fn demo() -> Result<(), granary_virtual::VirtualError> {
/// let client = granary_virtual::Client::builder()
///     .seeds(["10.0.0.2:7100".parse().unwrap()])
///     .cluster_secret("granary", b"our-cluster-secret".to_vec())
///     .bind("10.0.0.9:0".parse().unwrap())
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ClientBuilder {
    settings: ClientConfig,
    tls: Option<granary_remote::TlsConfig>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and keys stay out of logs (ClientConfig's Debug redacts them).
        f.debug_struct("ClientBuilder")
            .field("settings", &self.settings)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ClientBuilder {
    /// A builder with every setting taken from `config` (see `docs/config.md`).
    pub fn from_config(config: ClientConfig) -> Self {
        Self {
            settings: config,
            tls: None,
        }
    }

    /// Members to learn the cluster from (at least one must answer).
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.settings.seeds = seeds.into_iter().map(|a| a.to_string()).collect();
        self
    }

    /// The cluster name and shared secret of the transport handshake. Default:
    /// `granary` and the development secret, as [`Client::connect`] (refused on a
    /// non-loopback bind).
    pub fn cluster_secret(mut self, name: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.settings.cluster_name = name.into();
        self.settings.cluster_secret = Secret::new(secret);
        self
    }

    /// The address the client listens on (port 0 picks one); members send replies
    /// there. Default `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.settings.bind = addr;
        self
    }

    /// Mutual TLS from PEM text already in memory (instead of the config's files).
    pub fn tls(mut self, tls: granary_remote::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Default timeout of a call, retries included. Default 10 s.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.settings.ask_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// Connects: checks the settings, binds, asks the seeds for the members, starts
    /// refreshing the view.
    pub async fn connect(self) -> Result<Client, VirtualError> {
        Client::start(self).await
    }
}

/// Asks the given members, in order, for the member list; `true` once one answered.
async fn refresh_view(rt: &Arc<Runtime>, ask: &[SocketAddr]) -> bool {
    for addr in ask {
        if let Ok(Reply::Members(views)) = rt.rpc.call(rt, *addr, Request::Members).await {
            if !views.is_empty() {
                rt.members.set_client_view(views);
                rt.view_changed();
                return true;
            }
        }
    }
    false
}
