//! [`Node`]: a cluster member that hosts virtual actor kinds (an Orleans silo).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use granary_cluster::provider::{MembershipProvider, SeedsProvider, StaticProvider};
use granary_cluster::{Cluster, ClusterConfig, ClusterEvent, MemberEvent, RemoteClusterTransport};
use granary_core::ActorSystem;
use granary_remote::{RemoteNode, TransportConfig};
use granary_storage::StateStore;
use tokio::task::AbortHandle;

use crate::actor::VirtualActor;
use crate::config::{
    resolve, ConfigError, MembershipSettings, NodeConfig, ProviderKind, Secret, StoreSettings,
    TransportSettings,
};
use crate::contract::{ContractRef, VirtualContract};
use crate::error::VirtualError;
use crate::key::Key;
use crate::kind::{ErasedKind, Kind, KindEntry};
use crate::protocol::CONTROL;
use crate::runtime::{ControlInbox, KindSlot, Members, Runtime, RuntimeConfig};
use crate::vref::{VirtualId, VirtualRef};

/// The most identity locations a node or client caches by default
/// ([`NodeBuilder::location_cache`]).
pub const DEFAULT_LOCATION_CACHE: usize = 100_000;

/// Builds a [`Node`].
///
/// Settings a deployment changes live in a [`NodeConfig`] (file, environment:
/// [`NodeBuilder::from_config`]); the methods here set single settings on top, and
/// add what only code can give (the hosted kinds, a store instance, fault injection).
///
/// ```no_run
/// // no_run: binds a socket and writes a store file; tests/ run the same flow.
/// # async fn demo() -> Result<(), granary_virtual::VirtualError> {
/// use granary_virtual::{Kind, Node};
/// # struct Counter;
/// # impl granary_virtual::VirtualActor for Counter {
/// #     const KIND: &'static str = "Counter"; type Key = String; type State = ();
/// #     fn activate(_: &String) -> Self { Counter }
/// # }
/// let node = Node::builder()
///     .bind("127.0.0.1:0".parse().unwrap())
///     .data_dir("./granary-data")
///     .host(Kind::<Counter>::new())
///     .start()
///     .await?;
/// let counter = node.get::<Counter>("user-42".to_string());
/// # Ok(()) }
/// ```
pub struct NodeBuilder {
    settings: NodeConfig,
    store: Option<Arc<dyn StateStore>>,
    kinds: Vec<(&'static str, KindMaker)>,
    cluster: ClusterConfig,
    rpc_timeout: Duration,
    down_margin: Option<Duration>,
    tls: Option<granary_remote::TlsConfig>,
    faults: Option<Arc<granary_remote::faults::FaultInjector>>,
}

/// Erases a hosted kind once the idle timeout overrides are known (at start).
type KindMaker = Box<dyn FnOnce(Option<Duration>) -> Arc<dyn ErasedKind> + Send>;

impl Default for NodeBuilder {
    fn default() -> Self {
        Self::from_config(NodeConfig::default())
    }
}

impl NodeBuilder {
    /// A builder with every setting taken from `config` (see `docs/config.md`).
    ///
    /// ```
    /// let config = granary_virtual::NodeConfig::default();
    /// let builder = granary_virtual::NodeBuilder::from_config(config);
    /// # let _ = builder;
    /// ```
    pub fn from_config(config: NodeConfig) -> Self {
        Self {
            settings: config,
            store: None,
            kinds: Vec::new(),
            cluster: ClusterConfig::default(),
            rpc_timeout: Duration::from_secs(2),
            down_margin: None,
            tls: None,
            faults: None,
        }
    }

    /// Replaces every setting with `config`, keeping the hosted kinds and what was
    /// given as code (store instance, cluster config, TLS config, faults).
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.settings = config;
        self
    }

    /// The settings as they stand.
    pub fn settings(&self) -> &NodeConfig {
        &self.settings
    }

    /// The address to listen on (port 0 picks one). Default `127.0.0.1:0`. A
    /// wildcard address (`0.0.0.0`) needs [`NodeBuilder::advertise`].
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.settings.bind = addr;
        self
    }

    /// The `host[:port]` members and clients dial this node at (a DNS name is resolved
    /// at start; no port: the bound port). Default: the bind address.
    pub fn advertise(mut self, hostport: impl Into<String>) -> Self {
        self.settings.advertise = Some(hostport.into());
        self
    }

    /// Members to join through (none: form a new cluster); the `seeds` provider.
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.settings.membership.provider = ProviderKind::Seeds;
        self.settings.membership.seeds = seeds.into_iter().map(|a| a.to_string()).collect();
        self
    }

    /// The membership provider and its settings (seeds, static, DNS, PostgreSQL).
    pub fn membership(mut self, membership: MembershipSettings) -> Self {
        self.settings.membership = membership;
        self
    }

    /// Transport settings (channels, parallelism, affinity, bulk lane, queues,
    /// heartbeats).
    pub fn transport(mut self, transport: TransportSettings) -> Self {
        self.settings.transport = transport;
        self
    }

    /// Mutual TLS from PEM text already in memory (instead of the config's files).
    pub fn tls(mut self, tls: granary_remote::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The state store URL (`memory:`, `file:/path`, `postgres://…`, `redis://…`).
    /// Default: the embedded file store `file:<data_dir>/state.db`.
    pub fn store(mut self, url: impl Into<String>) -> Self {
        self.settings.store.url = Some(url.into());
        self
    }

    /// How the default store is opened: namespace, timeouts, pool size.
    pub fn store_options(mut self, store: StoreSettings) -> Self {
        let url = self.settings.store.url.take();
        self.settings.store = store;
        if self.settings.store.url.is_none() {
            self.settings.store.url = url;
        }
        self
    }

    /// An already opened state store as the default store (instead of a URL): a
    /// store of your own, or a wrapper around one (metrics, fault injection).
    pub fn store_instance(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The directory of the default embedded store. Default `./granary-data`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.store.data_dir = dir.into();
        self
    }

    /// The cluster name and shared secret of the transport handshake.
    pub fn cluster_secret(mut self, name: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.settings.cluster_name = name.into();
        self.settings.cluster_secret = Secret::new(secret);
        self
    }

    /// Hosts a kind on this node. An idle timeout for its name in the settings
    /// (`idle_timeouts_ms`) replaces the kind's own.
    pub fn host<A: VirtualActor>(mut self, kind: Kind<A>) -> Self {
        self.kinds.push((
            A::KIND,
            Box::new(move |idle| {
                let kind = match idle {
                    Some(idle) => kind.idle_timeout(idle),
                    None => kind,
                };
                Arc::new(KindEntry::from(kind)) as Arc<dyn ErasedKind>
            }),
        ));
        self
    }

    /// Membership settings (vnodes, gossip and failure-detector timing, the overlay).
    /// The roles are replaced by the hosted kinds; the overlay by the configuration's
    /// `overlay` section when that is not `full-mesh` ([`NodeBuilder::overlay`]).
    pub fn cluster_config(mut self, config: ClusterConfig) -> Self {
        self.cluster = config;
        self
    }

    /// The overlay: which members this node keeps connections to (`docs/overlays.md`).
    /// Default the full mesh. For an overlay of the application's own, set
    /// `ClusterConfig::overlay` in [`NodeBuilder::cluster_config`] instead.
    pub fn overlay(mut self, overlay: crate::config::OverlaySettings) -> Self {
        self.settings.overlay = overlay;
        self
    }

    /// Default timeout of [`VirtualRef::ask`], retries included. Default 10 s.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.settings.ask_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// Attempts per call before [`VirtualError::Unavailable`]. Default 60 (with the
    /// backoff growing to 500 ms, about half a minute: the ask timeout usually ends a
    /// call first).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts;
        self
    }

    /// How long a control request to another member (a directory lookup, an
    /// activation, a registration) waits for its answer. Default 2 s. A request to a
    /// member that goes Down meanwhile does not wait that long where the caller can
    /// ask another (a lookup is sent to the new directory owner at once).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// How often this node scans its reminder partitions for due reminders (the
    /// delivery precision). Default 1 s.
    pub fn reminder_interval(mut self, every: Duration) -> Self {
        self.settings.reminder_interval_ms = every.as_millis() as u64;
        self
    }

    /// How long, after a member departed (went Down or left), the directory waits
    /// at least before placing an identity that may have lived on it: a node cut
    /// off on the minority side of a partition downs itself (and stops hosting)
    /// about as late as the majority downs it, and this margin keeps the two from
    /// hosting one identity at once.
    /// It also sizes the host lease (`downing.stable_after + down_margin`): a node
    /// whose lease a majority has not renewed for that long handles no messages,
    /// however late it notices it was cut off. The directory places a departed
    /// member's identities only once a majority of the members confirmed it is gone
    /// for them, and one lease length after the last renewal they granted it — the
    /// wait that matters after a one-way cut, where the departed node kept renewing
    /// through members that had not yet heard of its Down (docs/semantics.md,
    /// "Partitions" and "Host lease").
    /// Default: the cluster's `downing.stable_after` (1 s unless configured).
    pub fn down_margin(mut self, margin: Duration) -> Self {
        self.down_margin = Some(margin);
        self
    }

    /// The most identity locations this node caches (least recently used out
    /// first; an identity whose activation here ends is forgotten at once). A call
    /// to an identity not cached asks its directory owner. 0 caches nothing.
    /// Default [`DEFAULT_LOCATION_CACHE`].
    pub fn location_cache(mut self, entries: usize) -> Self {
        self.settings.location_cache = entries;
        self
    }

    /// Injects faults (drops, delays, partitions) into this node's transport, for
    /// tests of failures.
    pub fn faults(mut self, faults: Arc<granary_remote::faults::FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Starts the node: checks the settings, opens the stores, binds the transport,
    /// joins the cluster and starts serving. A bad setting is a
    /// [`VirtualError::Config`].
    pub async fn start(self) -> Result<Node, VirtualError> {
        let s = &self.settings;
        s.validate()?;
        let tls = match &self.tls {
            Some(tls) => Some(tls.clone()),
            None => load_tls(&s.tls)?,
        };
        // The advertised address, resolved now (a DNS name in a pod's manifest
        // resolves once the pod has its address); port 0 means "the bound port".
        let advertise = match &s.advertise {
            Some(a) => Some(resolve("advertise", a, 0).await?),
            None => None,
        };
        if let Some(a) = advertise {
            crate::config::refuse_default_secret(&s.cluster_secret, a.ip())?;
        }
        let (url, fallback) = match &s.store.url {
            Some(u) => (u.clone(), false),
            None => {
                std::fs::create_dir_all(&s.store.data_dir)
                    .map_err(|e| VirtualError::Setup(format!("data dir: {e}")))?;
                (
                    format!("file:{}", s.store.data_dir.join("state.db").display()),
                    self.store.is_none(),
                )
            }
        };
        let options = s.store.options();
        let default_store = match &self.store {
            Some(store) => store.clone(),
            None => granary_storage::open_with(&url, options.clone()).await?,
        };
        let mut stores: HashMap<String, Arc<dyn StateStore>> = HashMap::new();
        stores.insert(url.clone(), default_store.clone());
        let mut kinds = HashMap::new();
        for (name, make) in self.kinds {
            let idle = s
                .idle_timeouts_ms
                .get(name)
                .map(|ms| Duration::from_millis(*ms));
            let kind = make(idle);
            let store = match &kind.config().store_url {
                Some(u) => match stores.get(u) {
                    Some(s) => s.clone(),
                    None => {
                        let s = granary_storage::open_with(u, options.clone()).await?;
                        stores.insert(u.clone(), s.clone());
                        s
                    }
                },
                None => default_store.clone(),
            };
            let fire = kind.fire();
            kinds.insert(kind.name(), KindSlot { kind, store, fire });
        }

        let system = ActorSystem::new();
        let mut transport = s.transport.apply(
            TransportConfig::new(s.cluster_name.clone(), s.cluster_secret.expose().to_vec())
                .with_listen(s.bind),
        );
        transport.advertise = advertise;
        transport.tls = tls;
        transport.faults = self.faults.clone();
        let broker = attach_link(s, advertise, &mut transport).await?;
        let tls_on = transport.tls.is_some();
        let remote = RemoteNode::start(system.clone(), transport)
            .await
            .map_err(|e| VirtualError::Setup(e.to_string()))?;
        tracing::info!(
            bind = %s.bind,
            advertise = %remote.local_addr(),
            store = %crate::config::redact(&url),
            namespace = %s.store.namespace,
            provider = %s.membership.describe(),
            tls = if tls_on { "on" } else { "off" },
            link = ?s.transport.link,
            cluster = %s.cluster_name,
            "granary node starting"
        );
        if fallback {
            tracing::warn!(
                store = %url,
                "no store configured: using the embedded file store on this host; state \
                 does not survive losing this host (set GRANARY_STORE_URL)"
            );
        }
        let provider = membership_provider(s, remote.local_addr().port(), broker.as_ref()).await?;
        let slot = Arc::new(OnceLock::new());
        let inbox = system.spawn(ControlInbox {
            runtime: slot.clone(),
        });
        remote
            .expose(CONTROL, &inbox)
            .and_then(|e| e.accept::<crate::protocol::ControlFrame>())
            .map_err(|e| VirtualError::Setup(e.to_string()))?;
        let mut cluster_config = self.cluster.clone();
        cluster_config.roles = kinds.keys().map(|k| k.to_string()).collect::<BTreeSet<_>>();
        // The configuration's overlay, unless it is the default and code chose one
        // (`cluster_config`, e.g. an overlay of the application's own).
        if s.overlay.kind != crate::config::OverlayKind::FullMesh {
            cluster_config.overlay = s.overlay.overlay_config();
        }
        // Membership rides on this node's RemoteNode: one port, one authenticated
        // connection per peer for everything.
        let cluster_transport = RemoteClusterTransport::start(&remote)
            .map_err(|e| VirtualError::Setup(format!("cluster: {e}")))?;
        let cluster = Cluster::start(cluster_config, cluster_transport, provider)
            .await
            .map_err(|e| VirtualError::Setup(format!("cluster: {e}")))?;
        let down_margin = self
            .down_margin
            .unwrap_or(self.cluster.downing.stable_after);
        let runtime = Arc::new(Runtime::new(
            remote,
            Members::cluster(cluster.clone()),
            kinds,
            RuntimeConfig {
                ask_timeout: Duration::from_millis(s.ask_timeout_ms),
                max_attempts: s.max_attempts,
                rpc_timeout: self.rpc_timeout,
                down_margin,
                // A departed member's identities are placed again once a majority
                // confirmed the departure, and one lease length after the last
                // renewal those members granted it (runtime/fence.rs).
                host_lease: self.cluster.downing.stable_after + down_margin,
                location_cache: s.location_cache,
            },
        ));
        let _ = slot.set(Arc::downgrade(&runtime));
        for slot in runtime.kinds.values() {
            slot.kind.open(&runtime);
        }
        let mut tasks = start_background(
            &runtime,
            &cluster,
            Duration::from_millis(s.reminder_interval_ms),
        );
        // The first renewal before this node hosts anything (a lone first node
        // confirms itself), then one every quarter of the lease.
        runtime.renew_lease().await;
        tasks.push(
            tokio::spawn(crate::runtime::renew_loop(Arc::downgrade(&runtime))).abort_handle(),
        );
        Ok(Node {
            runtime,
            cluster,
            tasks: Arc::from(tasks),
        })
    }
}

/// Reads the TLS files of the settings (`None`: TLS off).
pub(crate) fn load_tls(
    tls: &crate::config::TlsSettings,
) -> Result<Option<granary_remote::TlsConfig>, ConfigError> {
    #[cfg(feature = "tls")]
    {
        tls.load()
    }
    #[cfg(not(feature = "tls"))]
    {
        if tls.enabled() {
            return Err(ConfigError::FeatureDisabled {
                what: "tls",
                feature: "tls",
            });
        }
        Ok(None)
    }
}

/// Resolves seed names (`host:port`); fails when none of a non-empty list resolves
/// (joining nobody would form a second cluster).
pub(crate) async fn resolve_seeds(seeds: &[String]) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::new();
    let mut last = None;
    for seed in seeds {
        match resolve("seed", seed, 0).await {
            Ok(a) if a.port() != 0 => out.push(a),
            Ok(_) => {
                last = Some(ConfigError::Invalid {
                    field: "membership.seeds",
                    reason: format!("{seed:?} has no port"),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "seed skipped");
                last = Some(e);
            }
        }
    }
    match (out.is_empty(), last) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// The broker link of `transport.link = "amqp"`, attached and put in `transport`;
/// `None` for TCP. The node is named by `advertise`, else by `bind` (port 0: a free
/// name on the broker).
#[cfg(feature = "amqp")]
async fn attach_link(
    s: &NodeConfig,
    advertise: Option<SocketAddr>,
    transport: &mut TransportConfig,
) -> Result<Option<BrokerLink>, VirtualError> {
    if s.transport.link != crate::config::LinkKind::Amqp {
        return Ok(None);
    }
    let url = s.transport.amqp_url.clone().unwrap_or_default();
    let config = granary_amqp::AmqpConfig::new(url, s.cluster_name.clone())
        .with_node_addr(advertise.unwrap_or(s.bind));
    let link = granary_amqp::AmqpLink::connect(config)
        .await
        .map_err(|e| VirtualError::Setup(format!("amqp link: {e}")))?;
    transport.link = link.link();
    Ok(Some(link))
}

#[cfg(not(feature = "amqp"))]
async fn attach_link(
    _s: &NodeConfig,
    _advertise: Option<SocketAddr>,
    _transport: &mut TransportConfig,
) -> Result<Option<BrokerLink>, VirtualError> {
    // `NodeConfig::validate` refused `link = "amqp"` in a build without the feature.
    Ok(None)
}

/// The broker a node's connections go through, when they do.
#[cfg(feature = "amqp")]
type BrokerLink = granary_amqp::AmqpLink;
#[cfg(not(feature = "amqp"))]
type BrokerLink = std::convert::Infallible;

async fn membership_provider(
    s: &NodeConfig,
    own_port: u16,
    broker: Option<&BrokerLink>,
) -> Result<Arc<dyn MembershipProvider>, VirtualError> {
    let m = &s.membership;
    Ok(match m.provider {
        #[cfg(feature = "amqp")]
        ProviderKind::Amqp => match broker {
            Some(link) => Arc::new(granary_amqp::AmqpProvider::new(link)),
            None => {
                return Err(ConfigError::Invalid {
                    field: "membership.provider",
                    reason: "the amqp provider needs transport.link = \"amqp\"".into(),
                }
                .into())
            }
        },
        ProviderKind::Seeds => Arc::new(SeedsProvider::new(resolve_seeds(&m.seeds).await?)),
        ProviderKind::Static => Arc::new(StaticProvider::new(resolve_seeds(&m.seeds).await?)),
        #[cfg(feature = "dns")]
        ProviderKind::Dns => {
            use granary_cluster::provider::{DnsProvider, DnsRecordKind};
            let kind = match m.dns_record {
                crate::config::DnsRecord::A => DnsRecordKind::A {
                    port: m.dns_port.unwrap_or(own_port),
                },
                crate::config::DnsRecord::Srv => DnsRecordKind::Srv,
            };
            let name = m.dns_name.clone().unwrap_or_default();
            Arc::new(
                DnsProvider::new(name, kind, m.dns_server)
                    .map_err(|e| VirtualError::Setup(format!("dns provider: {e}")))?,
            )
        }
        #[cfg(feature = "postgres")]
        ProviderKind::Postgres => Arc::new(
            granary_cluster::provider::PostgresProvider::connect(
                m.postgres.as_deref().unwrap_or_default(),
                s.cluster_name.clone(),
                Duration::from_millis(m.postgres_ttl_ms),
            )
            .await
            .map_err(|e| VirtualError::Setup(format!("postgres provider: {e}")))?,
        ),
        #[allow(unreachable_patterns)]
        other => {
            let _ = (own_port, broker);
            let (what, feature) = match other {
                ProviderKind::Dns => ("the dns membership provider", "dns"),
                ProviderKind::Amqp => ("the amqp membership provider", "amqp"),
                _ => ("the postgres membership provider", "postgres"),
            };
            return Err(ConfigError::FeatureDisabled { what, feature }.into());
        }
    })
}

fn start_background(
    runtime: &Arc<Runtime>,
    cluster: &Cluster,
    reminder_interval: Duration,
) -> Vec<AbortHandle> {
    let mut tasks = vec![crate::runtime::fail_requests_to_lost_peers(runtime)];
    // Membership changes: drop dead locations, rebuild directory partitions from the
    // hosts' activation lists, stop hosting when this node is Down.
    // This node Down (declared failed, or on a partition's minority side): stop
    // hosting at once, on a subscription of its own so that it never waits behind the
    // re-registrations of earlier changes (which may wait for unreachable owners).
    let mut own = cluster.subscribe();
    let weak = Arc::downgrade(runtime);
    let me = runtime.me;
    tasks.push(
        tokio::spawn(async move {
            while let Some(event) = own.recv().await {
                let ClusterEvent::Change { event, .. } = event else {
                    continue;
                };
                let m = event.member();
                if m.id.addr == me && !m.status.is_live() {
                    let Some(rt) = weak.upgrade() else { return };
                    if rt.is_shutting_down() {
                        // Leaving on purpose (shutdown): the Down is expected.
                        tracing::info!("this node left: deactivating every activation");
                    } else {
                        tracing::warn!("this node is Down: deactivating every activation");
                    }
                    rt.view_changed();
                    rt.deactivate_all().await;
                }
            }
        })
        .abort_handle(),
    );
    let mut events = cluster.subscribe();
    let weak = Arc::downgrade(runtime);
    tasks.push(
        tokio::spawn(async move {
            let mut previous = Arc::new(granary_cluster::HashRing::new());
            while let Some(event) = events.recv().await {
                let Some(rt) = weak.upgrade() else { return };
                let ring = match &event {
                    ClusterEvent::Snapshot(s) => s.ring.clone(),
                    ClusterEvent::Change { event, ring, .. } => {
                        let m = event.member();
                        if m.id.addr != me && matches!(event, MemberEvent::Down(_)) {
                            rt.note_down(previous.clone(), m.id.addr, m.id.incarnation);
                            // A client's asks relayed through this node to the downed
                            // host would wait for the transport's heartbeat timeout;
                            // their clients resend them to the next activation now.
                            // So would those relayed after the Down: they are refused
                            // until the host is a member again (below).
                            let failed = rt.remote().fail_relayed_to(m.id.addr);
                            if failed > 0 {
                                tracing::debug!(host = %m.id.addr, failed, "relayed asks to a Down host failed");
                            }
                            if ring.contains(m.id.addr) {
                                // A later life of the node already holds the address.
                                rt.remote().relay_to_again(m.id.addr);
                            }
                        }
                        if m.id.addr != me
                            && matches!(
                                event,
                                MemberEvent::Joined(_)
                                    | MemberEvent::Up(_)
                                    | MemberEvent::IncarnationChanged { .. }
                                    | MemberEvent::Removed(_)
                            )
                        {
                            rt.remote().relay_to_again(m.id.addr);
                        }
                        if m.id.addr == me && !m.status.is_live() {
                            // Handled by the task above; nothing to re-register.
                            previous = ring.clone();
                            continue;
                        }
                        ring.clone()
                    }
                };
                rt.on_membership_change().await;
                previous = ring;
            }
        })
        .abort_handle(),
    );
    // Durable reminders of the partitions this node owns.
    if runtime.kinds.values().any(|s| s.fire.is_some()) {
        let weak = Arc::downgrade(runtime);
        tasks.push(
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(reminder_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(rt) = weak.upgrade() else { return };
                    if rt.is_shutting_down() {
                        return;
                    }
                    rt.scan_reminders().await;
                }
            })
            .abort_handle(),
        );
    }
    // Idle passivation.
    let idle_min = runtime
        .kinds
        .values()
        .map(|s| s.kind.config().idle_timeout)
        .min()
        .unwrap_or(Duration::from_secs(60));
    let period = (idle_min / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let weak = Arc::downgrade(runtime);
    tasks.push(
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                rt.sweep_idle();
            }
        })
        .abort_handle(),
    );
    tasks
}

/// A running node: hosts its kinds, owns a directory partition, and gives out
/// [`VirtualRef`]s.
///
/// Cheap to clone: every clone is a handle on the same node, usable from any task;
/// [`Node::shutdown`] through any of them stops it for all.
#[derive(Clone)]
pub struct Node {
    runtime: Arc<Runtime>,
    cluster: Cluster,
    tasks: Arc<[AbortHandle]>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.runtime.me)
            .finish()
    }
}

impl Node {
    /// A builder with defaults.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The address peers and clients reach this node at.
    pub fn addr(&self) -> SocketAddr {
        self.runtime.me
    }

    /// The cluster handle (membership, events).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The actor system the activations run in.
    pub fn system(&self) -> &ActorSystem {
        self.runtime.system()
    }

    /// A ref to the virtual actor `A` with `key`; valid on every node.
    pub fn get<A: VirtualActor>(&self, key: impl Into<A::Key>) -> VirtualRef<A> {
        VirtualRef::new(self.runtime.clone(), key.into())
    }

    /// A ref to the virtual actor with `key` of the kind the contract `C` describes,
    /// valid on every node: it sends exactly the messages of `C` and names no actor
    /// type (see [`ContractRef`]).
    pub fn contract<C: VirtualContract>(&self, key: impl Into<C::Key>) -> ContractRef<C> {
        ContractRef::new(self.runtime.clone(), key.into())
    }

    /// Turns a serialized [`VirtualId`] back into a ref.
    pub fn resolve<A: VirtualActor>(
        &self,
        id: &VirtualId<A>,
    ) -> Result<VirtualRef<A>, VirtualError> {
        Ok(VirtualRef::new(
            self.runtime.clone(),
            A::Key::parse_key(&id.key)?,
        ))
    }

    /// Live activations of `kind` on this node.
    pub fn activations(&self, kind: &str) -> usize {
        self.runtime.load(kind) as usize
    }

    /// Identity locations in this node's cache (bounded by
    /// [`NodeBuilder::location_cache`]).
    pub fn cached_locations(&self) -> usize {
        self.runtime.cached_locations()
    }

    /// Completes once this node has joined and is ready to host: it is Up in its
    /// own view of the cluster and holds a host lease (docs/semantics.md). `start`
    /// returns before that on a node joining an existing cluster.
    /// `Err(VirtualError::Timeout)` if it is not ready within `timeout`.
    pub async fn ready(&self, timeout: Duration) -> Result<(), VirtualError> {
        self.runtime.ready(timeout).await
    }

    /// Completes once no activation of `kind` is left on this node: every one has
    /// run `on_deactivate` (and saved) and its directory entry is removed (its
    /// owner acknowledged, or did not answer within the RPC timeout).
    /// `Err(VirtualError::Timeout)` if activations remain after `timeout`.
    /// [`Node::activations`] counts only activations still taking messages.
    pub async fn passivated(&self, kind: &str, timeout: Duration) -> Result<(), VirtualError> {
        self.runtime.settled(kind, timeout).await
    }

    /// Entries in the directory partition this node owns.
    pub fn directory_entries(&self) -> usize {
        self.runtime.directory.len()
    }

    /// The counters of the node's transport (frames, writes, backpressure, dials).
    pub fn transport_stats(&self) -> granary_remote::TransportStats {
        self.runtime.remote().transport().stats()
    }

    /// A cloneable read-only handle for management tools (health, metrics, where an
    /// identity lives).
    pub fn probe(&self) -> crate::NodeProbe {
        crate::NodeProbe::new(self.runtime.clone(), self.cluster.clone())
    }

    /// Graceful shutdown: stop taking activations, deactivate every activation
    /// (`on_deactivate`, then modified state is written), remove their directory
    /// entries, leave the cluster, close the transport. Stops the node for every
    /// clone of this handle.
    pub async fn shutdown(&self) {
        self.runtime.begin_shutdown();
        self.runtime.deactivate_all().await;
        if let Err(e) = self.cluster.leave().await {
            tracing::debug!(error = %e, "leave failed; stopping");
            self.cluster.stop().await;
        }
        self.stop_everything().await;
    }

    /// Stops the node abruptly, as a crash would: no state is saved, nobody is told;
    /// the others notice through failure detection. For failover tests and demos.
    pub async fn kill(&self) {
        self.runtime.mark_crashed();
        self.cluster.stop().await;
        self.runtime.remote().shutdown();
        self.runtime.deactivate_all().await;
        self.stop_everything().await;
    }

    async fn stop_everything(&self) {
        for t in self.tasks.iter() {
            t.abort();
        }
        self.runtime.remote().shutdown();
        self.runtime.system().shutdown().await;
    }
}
