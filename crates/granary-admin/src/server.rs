//! The management endpoint: an axum server on an address of its own.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use granary_virtual::NodeProbe;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::collector::{status_name, Collector, CounterSource};
use crate::error::AdminError;
use crate::views::{Activations, ClusterInfo, Lookup, MemberInfo, MemberReport, Overview};

/// The member metadata key under which a node advertises its management endpoint
/// (`host:port`), so that one node's dashboard can gather the others' reports.
pub const ADMIN_METADATA_KEY: &str = "granary.admin";

/// Members' endpoints the overview asks at once.
const OVERVIEW_CONCURRENCY: usize = 32;

/// The dashboard page: plain HTML, CSS, JavaScript and SVG, no external resources.
const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// How `/metrics` is served.
#[derive(Clone, Copy)]
enum Export {
    Prometheus(&'static PrometheusHandle),
    Unavailable(&'static str),
}

/// Installs the Prometheus exporter as the process's `metrics` recorder, if no
/// recorder is installed yet; `false` when the application installed its own.
///
/// The crates under a node register their in-path metric handles (per kind, per peer,
/// per node) when the actor, peer or node starts, so call this **before** starting
/// nodes; an [`Admin`] started later serves the same recorder on `/metrics`. Calling
/// it again (or starting an [`Admin`]) is harmless.
pub fn install_prometheus() -> bool {
    prometheus().is_some()
}

/// The process-wide Prometheus recorder this crate installed, if it could (the
/// `metrics` facade has one global recorder; an application that installed its own
/// keeps it).
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// A replicator's counters as metric names and values.
pub(crate) fn replicator_counters(s: &granary_crdt::ReplicatorStats) -> Vec<(&'static str, u64)> {
    vec![
        ("granary_crdt_frames_sent_total", s.frames_sent),
        ("granary_crdt_bytes_sent_total", s.bytes_sent),
        ("granary_crdt_deltas_sent_total", s.deltas_sent),
        ("granary_crdt_delta_bytes_total", s.delta_bytes),
        ("granary_crdt_full_states_sent_total", s.full_states_sent),
        ("granary_crdt_full_state_bytes_total", s.full_state_bytes),
        ("granary_crdt_repairs_sent_total", s.repairs_sent),
        ("granary_crdt_frames_received_total", s.frames_received),
        ("granary_crdt_send_failures_total", s.send_failures),
        ("granary_crdt_decode_errors_total", s.decode_errors),
    ]
}

/// Configures and starts a node's management endpoint ([`Admin::builder`]).
pub struct AdminBuilder {
    probe: NodeProbe,
    sources: Vec<CounterSource>,
    bind: SocketAddr,
    advertise: Option<String>,
    sample_every: Duration,
    history: usize,
    prometheus: bool,
    peer_timeout: Duration,
}

impl std::fmt::Debug for AdminBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBuilder")
            .field("node", &self.probe.addr())
            .field("bind", &self.bind)
            .field("counter_sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl AdminBuilder {
    /// The address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The `host:port` other nodes' dashboards use to reach this endpoint (default:
    /// the bound address, with the node's cluster IP when bound to all interfaces).
    pub fn advertise(mut self, endpoint: impl Into<String>) -> Self {
        self.advertise = Some(endpoint.into());
        self
    }

    /// How often counters are sampled into the metrics and the history (default 1 s).
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every.max(Duration::from_millis(10));
        self
    }

    /// How many samples the history keeps (default 300: five minutes at 1 s).
    pub fn history(mut self, samples: usize) -> Self {
        self.history = samples;
        self
    }

    /// Whether to install the Prometheus recorder as the process's `metrics`
    /// recorder and serve it on `/metrics` (default true). With `false` the
    /// collector still records through the facade into whatever recorder the
    /// application installed, and `/metrics` answers 404.
    pub fn prometheus(mut self, install: bool) -> Self {
        self.prometheus = install;
        self
    }

    /// Exports `replicator`'s counters ([`granary_crdt::ReplicatorStats`]) at every
    /// sample, as `granary_crdt_*_total`.
    pub fn replicator(self, replicator: &granary_crdt::Replicator) -> Self {
        let replicator = replicator.clone();
        self.counters(move || replicator_counters(&replicator.stats()))
    }

    /// Exports counters kept elsewhere in the application (for example
    /// a device's `granary_devices::DeviceStats`) at every sample: `source` returns
    /// `(metric name, value since start)` pairs, recorded as counters with this
    /// node's `node` label.
    pub fn counters(
        mut self,
        source: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// How long the overview waits for another member's endpoint (default 1 s).
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        self.peer_timeout = timeout;
        self
    }

    /// Binds the endpoint, starts the collector and advertises the endpoint in the
    /// node's member metadata.
    pub async fn start(self) -> Result<Admin, AdminError> {
        let export = if self.prometheus {
            match prometheus() {
                Some(handle) => Export::Prometheus(handle),
                None => Export::Unavailable(
                    "the application installed its own metrics recorder; scrape its exporter",
                ),
            }
        } else {
            Export::Unavailable("this endpoint was started without the Prometheus exporter")
        };
        let listener = tokio::net::TcpListener::bind(self.bind)
            .await
            .map_err(|source| AdminError::Bind {
                addr: self.bind,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: self.bind,
            source,
        })?;
        let advertised = self.advertise.clone().unwrap_or_else(|| {
            let ip = if local.ip().is_unspecified() {
                self.probe.addr().ip()
            } else {
                local.ip()
            };
            SocketAddr::new(ip, local.port()).to_string()
        });
        if let Err(e) = self
            .probe
            .cluster()
            .set_metadata(ADMIN_METADATA_KEY, Some(advertised))
        {
            tracing::warn!(error = %e, "cannot advertise the management endpoint");
        }

        let collector = Collector::new(self.probe, self.history, self.sources);
        collector.sample();
        let mut tasks = collector.start(self.sample_every);
        let shared = Arc::new(Shared {
            collector,
            export,
            peer_timeout: self.peer_timeout,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared);
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "management endpoint stopped");
            }
        }));
        tracing::info!(%local, "management endpoint listening");
        Ok(Admin {
            local,
            stop: Some(stop),
            tasks,
        })
    }
}

/// A running management endpoint of one node.
///
/// Routes: `/` (the dashboard), `/healthz`, `/readyz`, `/metrics`, `/cluster`,
/// `/activations` (`?kind=K&key=k` for where one identity lives), `/api/node`
/// and `/api/overview` (the dashboard's data). See `docs/admin.md`.
#[derive(Debug)]
pub struct Admin {
    local: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Admin {
    /// A builder for `probe`'s node ([`granary_virtual::Node::probe`]).
    pub fn builder(probe: NodeProbe) -> AdminBuilder {
        AdminBuilder {
            probe,
            sources: Vec::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            sample_every: Duration::from_secs(1),
            history: 300,
            prometheus: true,
            peer_timeout: Duration::from_secs(1),
        }
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the endpoint: closes idle connections, waits up to `grace` for requests
    /// in flight, then stops everything.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.tasks.pop() {
            let abort = server.abort_handle();
            if tokio::time::timeout(grace, server).await.is_err() {
                abort.abort();
            }
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Shared {
    collector: Arc<Collector>,
    export: Export,
    peer_timeout: Duration,
}

type AppState = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/cluster", get(cluster))
        .route("/activations", get(activations))
        .route("/api/node", get(node_report))
        .route("/api/overview", get(overview))
        .with_state(shared)
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The answer of `/readyz`.
#[derive(Serialize)]
struct Readiness {
    ready: bool,
    joined: bool,
    lease_held: bool,
    store_reachable: bool,
    store_error: Option<String>,
}

async fn readyz(State(shared): AppState) -> Response {
    let probe = shared.collector.probe();
    let joined = probe.cluster().local_status() == Some(granary_cluster::MemberStatus::Up);
    let lease_held = probe.lease_held();
    let store = probe.check_stores().await;
    let ready = joined && lease_held && store.is_ok();
    let body = Readiness {
        ready,
        joined,
        lease_held,
        store_reachable: store.is_ok(),
        store_error: store.err().map(|e| e.to_string()),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(shared): AppState) -> Response {
    match shared.export {
        Export::Prometheus(handle) => {
            handle.run_upkeep();
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
        Export::Unavailable(why) => (StatusCode::NOT_FOUND, why).into_response(),
    }
}

fn cluster_info(probe: &NodeProbe) -> ClusterInfo {
    let shares = probe.cluster().ring().shares();
    let mut members: Vec<MemberInfo> = probe
        .cluster()
        .members()
        .into_iter()
        .map(|m| MemberInfo {
            addr: m.id.addr,
            incarnation: m.id.incarnation,
            status: status_name(m.status),
            roles: m.roles.iter().cloned().collect(),
            vnodes: m.vnodes,
            ring_share: shares.get(&m.id).copied().unwrap_or(0.0),
            admin: m.metadata.get(ADMIN_METADATA_KEY).cloned(),
        })
        .collect();
    members.sort_by_key(|m| m.addr);
    ClusterInfo {
        local: probe.addr(),
        members,
    }
}

async fn cluster(State(shared): AppState) -> Json<ClusterInfo> {
    Json(cluster_info(shared.collector.probe()))
}

/// `/activations` query: both or neither.
#[derive(Deserialize)]
struct LookupQuery {
    kind: Option<String>,
    key: Option<String>,
}

async fn activations(State(shared): AppState, Query(q): Query<LookupQuery>) -> Response {
    let probe = shared.collector.probe();
    match (q.kind, q.key) {
        (None, None) => Json(Activations {
            node: probe.addr(),
            kinds: probe
                .kinds()
                .into_iter()
                .map(|k| (k.to_owned(), probe.activations(k)))
                .collect(),
        })
        .into_response(),
        (Some(kind), Some(key)) => {
            let found = probe.where_is(&kind, &key).await;
            Json(Lookup {
                kind,
                key,
                directory_owner: found.directory_owner,
                host: found.host,
            })
            .into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "give both kind and key (/activations?kind=K&key=k), or neither\n",
        )
            .into_response(),
    }
}

async fn node_report(State(shared): AppState) -> Json<crate::views::NodeReport> {
    Json(shared.collector.report())
}

async fn overview(State(shared): AppState) -> Json<Overview> {
    let cluster = cluster_info(shared.collector.probe());
    let local = cluster.local;
    let fetches = cluster.members.clone().into_iter().map(|member| {
        let shared = shared.clone();
        async move {
            let (report, error) = if member.addr == local {
                (Some(shared.collector.report()), None)
            } else if matches!(member.status.as_str(), "Down" | "Removed") {
                (None, Some(member.status.clone()))
            } else if let Some(endpoint) = &member.admin {
                match crate::client::get_json(endpoint, "/api/node", shared.peer_timeout).await {
                    Ok(report) => (Some(report), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, Some("no management endpoint".to_owned()))
            };
            MemberReport {
                addr: member.addr,
                report,
                error,
            }
        }
    });
    // A bounded number of member requests at once, answers in member order.
    let nodes = futures::stream::iter(fetches)
        .buffered(OVERVIEW_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    Json(Overview { cluster, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replicator_counter_has_its_own_metric() {
        let stats = granary_crdt::ReplicatorStats {
            frames_sent: 1,
            bytes_sent: 2,
            deltas_sent: 3,
            delta_bytes: 4,
            full_states_sent: 5,
            full_state_bytes: 6,
            repairs_sent: 7,
            frames_received: 8,
            send_failures: 9,
            decode_errors: 10,
        };
        let pairs = replicator_counters(&stats);
        let names: std::collections::BTreeSet<_> = pairs.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), pairs.len(), "a name is used twice");
        let values: Vec<u64> = pairs.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, (1..=10).collect::<Vec<_>>());
        assert!(names
            .iter()
            .all(|n| n.starts_with("granary_crdt_") && n.ends_with("_total")));
    }
}
