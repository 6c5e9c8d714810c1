//! [`Client`]: reaches virtual actors from outside the cluster (Orleans' clients).
//!
//! A client is not a member: it hosts nothing, owns no directory partition and takes
//! no part in gossip. By default it only dials out: it listens nowhere, and the members
//! it reaches answer on the connections it opened (`docs/wire.md`, "Dial-out peers"),
//! so it works from behind a firewall that drops every inbound connection.
//!
//! It keeps connections to a few members only, its *gateways* (`gateways`, default 2;
//! Orleans' gateways, Partisan's client-server overlay), and learns placement from them
//! rather than from the ring: a gateway locates each identity for it (its location
//! cache, else the directory owner, which activates it if needed), and relays the
//! client's messages to the activation's host and the replies back, bodies undecoded.
//! Why not the ring: routing on the client's own ring needs a connection to every
//! directory owner and every host, which is what a client outside the cluster's
//! network should not need; a gateway already has both.
//!
//! Every 500 ms the client asks a gateway for the Up members and re-picks its gateways:
//! a gateway that died (its connection lost, then declared unreachable) is replaced by
//! another member, and meanwhile calls go through the gateways still connected. A call
//! that was waiting on a gateway when its connection dropped fails with `Unreachable`
//! and is resent through another (asks are at least once across such a failure, see
//! [`VirtualRef`](crate::VirtualRef)).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use granary_core::{ActorSystem, RemoteError};
use granary_remote::{PeerEvent, RemoteNode, TransportConfig};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::actor::VirtualActor;
use crate::config::{ClientConfig, Secret};
use crate::contract::{ContractRef, VirtualContract};
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
    /// Fails requests to a gateway the transport lost (see
    /// `runtime::fail_requests_to_lost_peers`).
    lost_peers: AbortHandle,
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

    /// A builder, for a client that needs more than seeds, name and secret (TLS,
    /// gateways, timeouts).
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
        );
        transport.tls = tls;
        transport.heartbeat_interval = Duration::from_millis(settings.heartbeat_interval_ms);
        transport.heartbeat_timeout = Duration::from_millis(settings.heartbeat_timeout_ms);
        let remote = match settings.bind {
            Some(bind) => RemoteNode::start(system.clone(), transport.with_listen(bind)).await,
            None => RemoteNode::start_dial_out(system.clone(), transport).await,
        }
        .map_err(|e| VirtualError::Setup(e.to_string()))?;
        // Subscribed before the first dial, so no refusal of a seed is missed.
        let mut events = remote.transport().subscribe();
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
        if let Err(e) = first_view(&runtime, &seeds, &mut events).await {
            // Stop dialling the seeds: nothing will use this client.
            runtime.remote().shutdown();
            runtime.system().shutdown().await;
            return Err(e);
        }
        let gateways = settings.gateways;
        pick_gateways(&runtime, gateways, &seeds);
        let weak = Arc::downgrade(&runtime);
        let refresh = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                // The gateways first (connections it has), then any member, then seeds.
                let mut known = rt.members.gateways();
                known.extend(rt.members.client_addrs());
                known.extend(seeds.iter().copied());
                let transport = rt.remote().transport();
                // Connected ones first: a dead one would hold the refresh for the RPC
                // timeout. Stable, so the order is otherwise kept.
                known.sort_by_key(|a| !transport.is_connected(*a));
                let mut seen = std::collections::HashSet::new();
                known.retain(|a| seen.insert(*a));
                refresh_view(&rt, &known).await;
                pick_gateways(&rt, gateways, &seeds);
            }
        })
        .abort_handle();
        let lost_peers = crate::runtime::fail_requests_to_lost_peers(&runtime);
        Ok(Client {
            runtime,
            refresh,
            lost_peers,
        })
    }

    /// A ref to the virtual actor `A` with `key`.
    pub fn get<A: VirtualActor>(&self, key: impl Into<A::Key>) -> VirtualRef<A> {
        VirtualRef::new(self.runtime.clone(), key.into())
    }

    /// A ref to the virtual actor with `key` of the kind the contract `C` describes:
    /// it sends exactly the messages of `C`, and the client links the contract's crate
    /// only, not the kind's implementation (see [`ContractRef`]).
    pub fn contract<C: VirtualContract>(&self, key: impl Into<C::Key>) -> ContractRef<C> {
        ContractRef::new(self.runtime.clone(), key.into())
    }

    /// The client's identity on the wire: a made-up address in `0.0.0.0/8` that no
    /// one dials (by default), or the address it listens at (with
    /// [`ClientBuilder::bind`]).
    pub fn addr(&self) -> SocketAddr {
        self.runtime.me
    }

    /// The members the client sends through now (its gateways), in order of
    /// preference.
    pub fn gateways(&self) -> Vec<SocketAddr> {
        self.runtime.members.gateways()
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
        self.lost_peers.abort();
        self.runtime.remote().shutdown();
        self.runtime.system().shutdown().await;
    }
}

/// Builds a [`Client`]: seeds, cluster name and secret, TLS, how many gateways.
///
/// ```no_run
/// // no_run: needs a running cluster; tests/client_and_placement.rs runs the same flow.
/// # async fn demo() -> Result<(), granary_virtual::VirtualError> {
/// let client = granary_virtual::Client::builder()
///     .seeds(["10.0.0.2:7100".parse().unwrap()])
///     .cluster_secret("granary", b"our-cluster-secret".to_vec())
///     .gateways(3)
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
    /// `granary` and the development secret, as [`Client::connect`] (refused with a
    /// non-loopback seed address or bind).
    pub fn cluster_secret(mut self, name: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.settings.cluster_name = name.into();
        self.settings.cluster_secret = Secret::new(secret);
        self
    }

    /// Opt-in: listen on `addr` (port 0 picks one) and let members dial the client
    /// back there, instead of answering on the connections it opened. Only for a
    /// client the members can reach; by default a client listens nowhere.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.settings.bind = Some(addr);
        self
    }

    /// How many members the client keeps connections to and sends through. Default
    /// 2; at least 1.
    pub fn gateways(mut self, count: usize) -> Self {
        self.settings.gateways = count;
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

    /// How often the client sends heartbeats, and how long a silent gateway may stay
    /// before the client drops it and sends through another. Default 1 s and 5 s; the
    /// timeout must be longer than the interval. A shorter timeout moves calls off a
    /// paused or cut-off member sooner (and drops a gateway on a shorter stall).
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.settings.heartbeat_interval_ms = interval.as_millis() as u64;
        self.settings.heartbeat_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// Connects: checks the settings, asks the seeds for the members, picks the
    /// gateways, starts refreshing the view.
    ///
    /// A seed that refuses the client (a wrong secret or cluster name, a certificate
    /// from another CA, TLS expected and plain TCP sent or the other way round) is
    /// [`VirtualError::Remote`]`(`[`RemoteError::Unauthorized`]`)` with its reason once
    /// no seed answered.
    pub async fn connect(self) -> Result<Client, VirtualError> {
        Client::start(self).await
    }
}

/// Asks the seeds, in order, for the member list. A seed that refuses the client's
/// connection is left at once (and no longer dialled); if none answered and one
/// refused, the refusal is the error.
async fn first_view(
    rt: &Arc<Runtime>,
    seeds: &[SocketAddr],
    events: &mut broadcast::Receiver<PeerEvent>,
) -> Result<(), VirtualError> {
    let mut refused: Option<String> = None;
    for &seed in seeds {
        let refusal = async {
            loop {
                match events.recv().await {
                    Ok(PeerEvent::Refused {
                        addr,
                        reason,
                        inbound: false,
                    }) if addr == seed => return reason,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        tokio::select! {
            reply = rt.rpc.call(rt, seed, Request::Members) => {
                if let Ok(Reply::Members(views)) = reply {
                    if !views.is_empty() {
                        rt.members.set_client_view(views);
                        rt.view_changed();
                        return Ok(());
                    }
                }
            }
            reason = refusal => {
                // The transport logged the refusal once already.
                tracing::debug!(%seed, %reason, "seed refused the client");
                rt.remote().transport().disconnect(seed);
                refused = Some(format!("{seed}: {reason}"));
            }
        }
    }
    Err(match refused {
        Some(reason) => VirtualError::Remote(RemoteError::Unauthorized(reason)),
        None => VirtualError::Setup(format!("no member answered among {seeds:?}")),
    })
}

/// Keeps `count` gateways: those still Up members and not unreachable, topped up
/// with other members in an order of the client's own (rendezvous hashing, so clients
/// spread over the members), and stops dialling every other member and seed.
fn pick_gateways(rt: &Arc<Runtime>, count: usize, seeds: &[SocketAddr]) {
    let transport = rt.remote().transport();
    let members = rt.members.client_addrs();
    let usable = |g: &SocketAddr| members.contains(g) && !transport.is_unreachable(*g);
    let mut gateways: Vec<SocketAddr> = rt.members.gateways();
    gateways.retain(usable);
    let mut candidates: Vec<SocketAddr> = (members.iter().copied())
        .filter(|m| !gateways.contains(m))
        .collect();
    let me = rt.me.to_string();
    candidates.sort_by_key(|m| {
        let (usable, score) = (usable(m), rendezvous(&me, &m.to_string()));
        (!usable, score)
    });
    for m in candidates {
        if gateways.len() >= count {
            break;
        }
        gateways.push(m);
    }
    for addr in members.iter().chain(seeds) {
        if !gateways.contains(addr) {
            transport.disconnect(*addr);
        }
    }
    for g in &gateways {
        // Dial now, so the gateway's connection is up before calls need it.
        let _ = transport.connect(*g);
    }
    if gateways != rt.members.gateways() {
        tracing::info!(?gateways, "client gateways");
        rt.members.set_gateways(gateways);
    }
}

/// FNV-1a of the client's and the member's addresses.
fn rendezvous(client: &str, member: &str) -> u64 {
    (client.bytes().chain([0xff]).chain(member.bytes())).fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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
