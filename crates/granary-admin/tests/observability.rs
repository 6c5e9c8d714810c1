//! In-path metrics and traces across nodes (issue 15, items 1 and 2).
//!
//! The Prometheus recorder and the `tracing` subscriber are process-wide, so both
//! tests share one of each: the recorder is installed before any node starts, the
//! subscriber is a registry with granary's `TraceLayer` and a layer that records every
//! span's name, trace id and node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use granary_admin::Admin;
use granary_cluster::phi::PhiConfig;
use granary_cluster::{ClusterConfig, DowningConfig, MemberStatus};
use granary_core::{BoxError, Message};
use granary_remote::register_message;
use granary_remote::wire::TraceContext;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(30);
const T: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- actors

/// A counter per key whose state is written on every call.
struct Tally;

impl VirtualActor for Tally {
    const KIND: &'static str = "obs.Tally";
    type Key = String;
    type State = u64;

    fn activate(_key: &String) -> Self {
        Tally
    }
}

/// Adds one; answers the node that handled it and the new count.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Add;
impl Message for Add {
    type Reply = (SocketAddr, u64);
}
register_message!(Add, "obs.test.Add");
register_message!((SocketAddr, u64), "obs.test.AddReply");

impl VirtualHandler<Add> for Tally {
    async fn handle(&mut self, _: Add, ctx: &mut VirtualContext<'_, Self>) -> (SocketAddr, u64) {
        *ctx.state_mut() += 1;
        let n = *ctx.state();
        ctx.write_state().await.expect("state written");
        (ctx.node_addr(), n)
    }
}

/// A kind whose activation fails for the key "bad".
struct Flaky;

impl VirtualActor for Flaky {
    const KIND: &'static str = "obs.Flaky";
    type Key = String;
    type State = ();

    fn activate(_key: &String) -> Self {
        Flaky
    }

    async fn on_activate(&mut self, ctx: &mut VirtualContext<'_, Self>) -> Result<(), BoxError> {
        if ctx.key() == "bad" {
            return Err("refused on purpose".into());
        }
        Ok(())
    }
}

/// Answers nothing of interest.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Poke;
impl Message for Poke {
    type Reply = ();
}
register_message!(Poke, "obs.test.Poke");

impl VirtualHandler<Poke> for Flaky {
    async fn handle(&mut self, _: Poke, _ctx: &mut VirtualContext<'_, Self>) {}
}

// ---------------------------------------------------------------- tracing capture

/// One span as the capture layer saw it.
#[derive(Clone, Debug)]
struct SeenSpan {
    name: &'static str,
    trace: String,
    node: Option<String>,
}

/// The node a span runs on: its own `node` field or its nearest ancestor's.
struct NodeOf(Option<String>);

struct NodeField(Option<String>);

impl tracing::field::Visit for NodeField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "node" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Records every span's name, trace id (from `TraceLayer`) and node.
struct Capture;

fn seen() -> &'static Mutex<Vec<SeenSpan>> {
    static SEEN: OnceLock<Mutex<Vec<SeenSpan>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut field = NodeField(None);
        attrs.record(&mut field);
        let node = field.0.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<NodeOf>().and_then(|n| n.0.clone()))
        });
        let trace = span
            .extensions()
            .get::<TraceContext>()
            .map(|cx| cx.trace_id_hex())
            .unwrap_or_default();
        span.extensions_mut().insert(NodeOf(node.clone()));
        seen().lock().unwrap().push(SeenSpan {
            name: span.name(),
            trace,
            node,
        });
    }
}

/// Installs the process's recorder and subscriber once, before any node starts.
fn observe() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        assert!(granary_admin::install_prometheus(), "recorder installed");
        let subscriber = tracing_subscriber::registry()
            .with(granary_remote::trace::TraceLayer)
            .with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
    });
}

// ---------------------------------------------------------------- cluster

fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        vnodes: 32,
        gossip_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        phi: PhiConfig {
            acceptable_heartbeat_pause: Duration::from_millis(200),
            first_heartbeat_estimate: Duration::from_millis(100),
            ..PhiConfig::default()
        },
        downing: DowningConfig {
            stable_after: Duration::from_millis(300),
            ..DowningConfig::default()
        },
        ..ClusterConfig::default()
    }
}

async fn start_node(store: &str, seed: Option<SocketAddr>) -> Node {
    Node::builder()
        .store(store.to_owned())
        .seeds(seed.into_iter().collect::<Vec<_>>())
        .cluster_config(cluster_config())
        .host(Kind::<Tally>::new().handles::<Add>())
        .host(Kind::<Flaky>::new().handles::<Poke>())
        .start()
        .await
        .expect("node starts")
}

/// Polls `check` every 20 ms until it holds or `deadline` passes.
async fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_up(nodes: &[&Node]) {
    for n in nodes {
        let ok = wait_until(WAIT, || {
            n.cluster()
                .members()
                .iter()
                .filter(|m| m.status == MemberStatus::Up)
                .count()
                == nodes.len()
        })
        .await;
        assert!(ok, "{} does not see {} members Up", n.addr(), nodes.len());
    }
}

// ---------------------------------------------------------------- scraping

async fn metrics_text(endpoint: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(endpoint).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut body))
        .await
        .expect("metrics answered in time")
        .unwrap();
    assert!(body.contains(" 200 "), "{}", &body[..body.len().min(200)]);
    body
}

/// The sum over every sample of `family` (exact name before `{` or ` `) whose labels
/// contain every one of `labels`; `None` when the family has no such sample.
fn total(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Scrapes `endpoint` every 100 ms until each `(family, labels)` of `nonzero` reads
/// above zero, or [`WAIT`] has passed; returns the last scrape, whose assertions then
/// say what never came.
async fn scrape_until_nonzero(endpoint: &str, nonzero: &[(&str, &[&str])]) -> String {
    let deadline = Instant::now() + WAIT;
    let mut text = metrics_text(endpoint).await;
    while Instant::now() < deadline
        && nonzero
            .iter()
            .any(|(family, labels)| total(&text, family, labels).is_none_or(|v| v == 0.0))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = metrics_text(endpoint).await;
    }
    text
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scrape_after_load_lists_every_in_path_family() {
    observe();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("state.db").display());
    let a = start_node(&store, None).await;
    let admin = Admin::builder(a.probe())
        .sample_every(Duration::from_millis(100))
        .start()
        .await
        .expect("endpoint starts");
    let endpoint = admin.local_addr().to_string();
    let b = start_node(&store, Some(a.addr())).await;
    let b_label = format!("node=\"{}\"", b.addr());
    all_up(&[&a, &b]).await;

    // Load: every key from both nodes, so calls cross the wire both ways, activate,
    // read and write state, hit and miss the location cache.
    let mut hosts = BTreeSet::new();
    for round in 0..20 {
        for k in 0..16 {
            for n in [&a, &b] {
                let (host, count) = n
                    .get::<Tally>(format!("k{k}"))
                    .ask(Add)
                    .await
                    .expect("answered");
                assert!(count > round);
                hosts.insert(host);
            }
        }
    }
    assert_eq!(hosts.len(), 2, "both nodes host keys: {hosts:?}");
    // A failing activation.
    assert!(a.get::<Flaky>("bad").ask(Poke).await.is_err());
    // Live activations, read while a still holds its lease: once b has left and c is
    // killed, a is one of two members and its lease (a majority's confirmation) lapses,
    // which deactivates everything on it, so the gauge is 0 by the final scrape.
    let a_label = format!("node=\"{}\"", a.addr());
    let loaded = metrics_text(&endpoint).await;
    assert!(
        total(&loaded, "granary_activations", &[&a_label]).is_some_and(|v| v > 0.0),
        "live activations on a under load\n---\n{loaded}"
    );

    // A third node moves ring ranges: live activations re-register (hand-offs).
    let c = start_node(&store, Some(a.addr())).await;
    all_up(&[&a, &b, &c]).await;
    // The re-registrations run after the view change, not before `all_up` returns:
    // wait for them before b leaves, or a loaded machine may see b leave and a's lease
    // lapse (deactivating everything on it) before any activation was handed off.
    scrape_until_nonzero(&endpoint, &[("granary_directory_handoffs_total", &[])]).await;
    // A graceful stop passivates b's activations; killing c makes a suspect it and
    // take it Down.
    b.shutdown().await;
    c.kill().await;

    let text = scrape_until_nonzero(
        &endpoint,
        &[
            ("granary_directory_handoffs_total", &[]),
            ("granary_cluster_suspicions_total", &[&a_label]),
            ("granary_cluster_downs_total", &[&a_label]),
        ],
    )
    .await;

    let activation = "kind=\"granary_virtual::activation::Activation<observability::Tally>\"";
    // (family, labels, must be non-zero)
    let expected: &[(&str, &[&str], bool)] = &[
        // per kind: messages, handling latency, mailbox depth
        ("granary_messages_handled_total", &[activation], true),
        (
            "granary_message_handling_seconds_count",
            &[activation],
            true,
        ),
        ("granary_mailbox_depth_count", &[activation], true),
        // asks with latency and outcome
        ("granary_asks_total", &["outcome=\"ok\""], true),
        ("granary_ask_seconds_count", &["outcome=\"ok\""], true),
        // activations
        (
            "granary_activations_activated_total",
            &["kind=\"obs.Tally\""],
            true,
        ),
        (
            "granary_activations_failed_total",
            &["kind=\"obs.Flaky\""],
            true,
        ),
        (
            "granary_activations_passivated_total",
            &["kind=\"obs.Tally\""],
            true,
        ),
        // (non-zero under load: checked above, before the lease could lapse)
        ("granary_activations", &[&a_label], false),
        // dead letters by reason (the collector, from the event stream)
        ("granary_dead_letters_total", &[&a_label], false),
        // per peer and channel
        (
            "granary_peer_frames_out_total",
            &[&a_label, "channel=\"data\""],
            true,
        ),
        (
            "granary_peer_bytes_out_total",
            &[&a_label, "channel=\"data\""],
            true,
        ),
        (
            "granary_peer_frames_in_total",
            &[&a_label, "channel=\"data\""],
            true,
        ),
        (
            "granary_peer_bytes_in_total",
            &[&a_label, "channel=\"data\""],
            true,
        ),
        (
            "granary_peer_queue_bytes",
            &[&a_label, "channel=\"data\""],
            false,
        ),
        ("granary_peer_backpressure_total", &[&a_label], false),
        ("granary_peer_reconnects_total", &[&a_label], false),
        // membership
        (
            "granary_cluster_members",
            &[&a_label, "status=\"Up\""],
            true,
        ),
        ("granary_cluster_suspicions_total", &[&a_label], true),
        ("granary_cluster_downs_total", &[&a_label], true),
        // store
        ("granary_store_reads_total", &["kind=\"obs.Tally\""], true),
        (
            "granary_store_writes_total",
            &["kind=\"obs.Tally\"", "outcome=\"ok\""],
            true,
        ),
        (
            "granary_store_conflicts_total",
            &["kind=\"obs.Tally\""],
            false,
        ),
        ("granary_store_seconds_count", &["op=\"write\""], true),
        // directory
        ("granary_directory_lookups_total", &[&a_label], true),
        ("granary_directory_cache_hits_total", &[&a_label], true),
        ("granary_directory_handoffs_total", &[], true),
    ];
    let mut missing = Vec::new();
    for (family, labels, nonzero) in expected {
        match total(&text, family, labels) {
            None => missing.push(format!("{family} {labels:?}: absent")),
            Some(v) if *nonzero && v <= 0.0 => missing.push(format!("{family} {labels:?}: 0")),
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "{missing:#?}\n---\n{text}");
    // Every answered ask was handled once: the kind's handled count covers them.
    let handled = total(&text, "granary_messages_handled_total", &[activation]).unwrap();
    assert!(handled >= 2.0 * 20.0 * 16.0, "handled {handled}");
    // Two nodes in one process: granary-core's series carry each node's label, so a
    // and b (both hosted keys and asked) have a series each.
    for node in [&a_label, &b_label] {
        let on_node = total(&text, "granary_messages_handled_total", &[activation, node]);
        assert!(
            on_node.is_some_and(|v| v > 0.0),
            "handled on {node}\n---\n{text}"
        );
        let asks = total(&text, "granary_asks_total", &[node, "outcome=\"ok\""]);
        assert!(asks.is_some_and(|v| v > 0.0), "asks on {node}\n---\n{text}");
    }

    admin.shutdown(Duration::from_secs(2)).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_ask_through_two_nodes_is_one_trace_with_spans_from_both() {
    observe();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("state.db").display());
    let a = start_node(&store, None).await;
    let b = start_node(&store, Some(a.addr())).await;
    all_up(&[&a, &b]).await;

    // A key that lives on b (activated from b, untraced).
    let mut key = None;
    for k in 0..64 {
        let (host, _) = b.get::<Tally>(format!("t{k}")).ask(Add).await.unwrap();
        if host == b.addr() {
            key = Some(format!("t{k}"));
            break;
        }
    }
    let key = key.expect("some key lives on b");

    // The client's ask, from a, inside a root span.
    let root = tracing::info_span!("client.request", node = %a.addr());
    let trace = granary_remote::trace::context_of(&root)
        .expect("TraceLayer gave the root a context")
        .trace_id_hex();
    let (host, _) = a
        .get::<Tally>(key.clone())
        .ask(Add)
        .instrument(root)
        .await
        .unwrap();
    assert_eq!(host, b.addr(), "the ask went through a to b");

    let spans: Vec<SeenSpan> = seen()
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace == trace)
        .cloned()
        .collect();
    let mut by_node: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for s in &spans {
        by_node
            .entry(s.node.clone().unwrap_or_default())
            .or_default()
            .insert(s.name);
    }
    let on = |n: &Node| {
        by_node
            .get(&n.addr().to_string())
            .cloned()
            .unwrap_or_default()
    };
    let (on_a, on_b) = (on(&a), on(&b));
    assert!(
        on_a.contains("client.request") && on_a.contains("granary.send"),
        "spans of the trace: {by_node:#?}"
    );
    assert!(
        on_b.contains("granary.receive")
            && on_b.contains("granary.handle")
            && on_b.contains("granary.store_write"),
        "spans of the trace: {by_node:#?}"
    );
    assert_eq!(
        by_node.len(),
        2,
        "every span of the trace is on a or b: {by_node:#?}"
    );

    b.shutdown().await;
    a.shutdown().await;
}
