//! The `counter` scenario (seed 001 §5): K increments to one counter, sent one after
//! another (the paper's single concurrent lambda), two ways over the same store.
//!
//! - `actor`: a virtual actor holds the count in memory; the framework loads it on
//!   activation and every increment is persisted with `write_state` before the answer.
//! - `actor-memory`: the same actor as the paper ran it, the count "in the actor's local
//!   memory": it is persisted with `write_state` every `--checkpoint-every` increments
//!   (default 100) instead of on each one, so a crash loses at most that many minus one.
//! - `function`: a stateless worker (granary-virtual's `Kind::stateless_worker`, the
//!   closest thing to a warm FaaS container) keeps nothing: every message reads the
//!   count from the store, adds one and writes it back with the version it read.
//!
//! Both are called the same way, from an external `Client` over loopback TCP to one
//! granary node in this process, so the difference is only where the state lives.
//! Stores: the embedded file store (default, in a temp dir) and PostgreSQL
//! (`--store postgres://postgres@127.0.0.1:5432/test`); an unreachable PostgreSQL is
//! skipped with a printed reason, unless `CI=true`, where it is an error. The final
//! count of each run is checked against K. Each actor row carries
//! `actor_over_function`, its messages per second over the `function` row's for the
//! same store and K (seed 001 saw up to 5.95× on AWS Lambda + DynamoDB).
//!
//! Example: `granary-bench counter --messages 100,700,10000`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use granary::prelude::*;
use granary::register_message;
use granary::storage::{Identity, StateStore, StorageError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::latency::Latencies;
use crate::report::{contract_columns, ReportError, Reporter};
use crate::selection::dedup;

/// Options of `granary-bench counter`.
#[derive(Debug, Args)]
pub(crate) struct CounterArgs {
    /// Increments per run, comma-separated (default 100,200,...,700,10000; `--quick`: 50).
    #[arg(long, value_delimiter = ',')]
    messages: Option<Vec<u64>>,
    /// State store URL, repeatable (default: the embedded file store in a temp dir).
    /// `file` names the embedded store.
    #[arg(long)]
    store: Vec<String>,
    /// `actor-memory` persists its count every this many increments.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Small sizes (seconds), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw PNG charts of the rows into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Why `counter` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CounterError {
    /// The async runtime or the temp dir could not be had.
    #[error("cannot start: {0}")]
    Setup(String),
    /// The store could not be opened.
    #[error("store {url}: {source}")]
    Store {
        /// The store URL.
        url: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// The node or client failed.
    #[error("{0}")]
    Virtual(#[from] VirtualError),
    /// An increment failed or the final count is wrong.
    #[error("{variant}: {reason}")]
    Run {
        /// `actor` or `function`.
        variant: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Writing results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Drawing the charts failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// The persisted count of the `actor` variant.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Count {
    n: u64,
}

/// Add one; answers the count after it. The actor persists its state when the new
/// count is a multiple of `checkpoint_every` (1: on every increment); the function
/// ignores it (it has no memory to keep the count in).
#[derive(Clone, Serialize, Deserialize)]
struct Increment {
    checkpoint_every: u64,
}
impl Message for Increment {
    type Reply = Counted;
}
register_message!(Increment, "granary-bench.counter.Increment");

/// The count after an increment, or why it failed.
#[derive(Serialize, Deserialize)]
struct Counted(Result<u64, String>);
register_message!(Counted, "granary-bench.counter.Counted");

/// The counter as a virtual actor: state in memory, persisted by the framework.
struct CounterActor;

impl VirtualActor for CounterActor {
    const KIND: &'static str = "granary-bench.counter.Actor";
    type Key = String;
    type State = Count;

    fn activate(_key: &String) -> Self {
        CounterActor
    }
}

impl VirtualHandler<Increment> for CounterActor {
    async fn handle(&mut self, msg: Increment, ctx: &mut VirtualContext<'_, Self>) -> Counted {
        ctx.state_mut().n += 1;
        let n = ctx.state().n;
        if !n.is_multiple_of(msg.checkpoint_every.max(1)) {
            return Counted(Ok(n));
        }
        Counted(
            ctx.write_state()
                .await
                .map(|()| n)
                .map_err(|e| e.to_string()),
        )
    }

    // What the checkpoints left unsaved, the framework saves when the activation ends.
}

/// The store the `function` variant reads and writes on every message. Opened once
/// per store, as a warm FaaS container keeps its database client between calls;
/// stores are measured one after another, each replacing the last.
static FUNCTION_STORE: Mutex<Option<Arc<dyn StateStore>>> = Mutex::new(None);

fn function_store() -> Option<Arc<dyn StateStore>> {
    FUNCTION_STORE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The counter as a stateless function: nothing kept between messages.
struct CounterFunction;

impl VirtualActor for CounterFunction {
    const KIND: &'static str = "granary-bench.counter.Function";
    type Key = String;
    type State = ();

    fn activate(_key: &String) -> Self {
        CounterFunction
    }
}

/// Where the function keeps a counter's count.
fn function_identity(key: &str) -> Identity {
    Identity::new("granary-bench.counter.FunctionCount", key)
}

impl VirtualHandler<Increment> for CounterFunction {
    async fn handle(&mut self, _msg: Increment, ctx: &mut VirtualContext<'_, Self>) -> Counted {
        let Some(store) = function_store() else {
            return Counted(Err("the function's store is not open".into()));
        };
        let identity = function_identity(ctx.key());
        let result = async {
            let stored = store.read(&identity).await.map_err(|e| e.to_string())?;
            let (n, version) = match stored {
                Some(stored) => {
                    let count: Count =
                        serde_json::from_slice(&stored.data).map_err(|e| e.to_string())?;
                    (count.n, Some(stored.version))
                }
                None => (0, None),
            };
            let n = n + 1;
            let data = serde_json::to_vec(&Count { n }).map_err(|e| e.to_string())?;
            store
                .write(&identity, data.into(), version)
                .await
                .map_err(|e| e.to_string())?;
            Ok(n)
        }
        .await;
        Counted(result)
    }
}

/// One output row.
#[derive(Debug, Clone, Serialize)]
struct CounterRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: u32,
    actors: u32,
    payload_bytes: u32,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    variant: &'static str,
    store: String,
    actor_over_function: Option<f64>,
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &["variant", "store", "actor_over_function"];

/// Limit of one increment.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// The provider name of a store URL, for rows and charts.
fn store_name(url: &str) -> String {
    url.split(':').next().unwrap_or(url).to_string()
}

/// Whether an unreachable PostgreSQL must fail the run (CI) or be skipped.
fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs `granary-bench counter`.
pub(crate) fn run(args: CounterArgs) -> Result<(), CounterError> {
    let messages = dedup(args.messages.clone().unwrap_or_else(|| {
        if args.quick {
            vec![50]
        } else {
            vec![100, 200, 300, 400, 500, 600, 700, 10_000]
        }
    }));
    let temp = std::env::temp_dir().join(format!("granary-bench-counter-{}", std::process::id()));
    std::fs::create_dir_all(&temp).map_err(|e| CounterError::Setup(e.to_string()))?;
    let file_url = format!("file:{}", temp.join("counter.db").display());
    let stores: Vec<String> = if args.store.is_empty() {
        vec![file_url.clone()]
    } else {
        let mut urls: Vec<String> = Vec::new();
        for store in &args.store {
            let url = if store == "file" {
                file_url.clone()
            } else {
                store.clone()
            };
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CounterError::Setup(e.to_string()))?;
    let result = runtime.block_on(run_stores(&stores, &messages, &args));
    let _ = std::fs::remove_dir_all(&temp);
    let rows = result?;
    eprint!("{}", crate::plot::summary::counter_ratios(&rows));
    if let Some(dir) = &args.plot {
        for path in crate::plot::plot_rows("counter", &rows, dir)? {
            eprintln!("chart: {}", path.display());
        }
    }
    Ok(())
}

async fn run_stores(
    stores: &[String],
    messages: &[u64],
    args: &CounterArgs,
) -> Result<Vec<Map<String, Value>>, CounterError> {
    let mut reporter = Reporter::new(
        &contract_columns(OWN_COLUMNS),
        args.csv.as_deref(),
        (stores.len() * messages.len() * 3) as u64,
    )?;
    let mut rows = Vec::new();
    for url in stores {
        let store = match granary::storage::open(url).await {
            Ok(store) => store,
            Err(e @ StorageError::Unavailable { .. })
                if url.starts_with("postgres") && !services_required() =>
            {
                reporter.progress().println(format!(
                    "counter: skipping {url}: {e} (set CI=true to require it)"
                ));
                reporter.progress().inc((messages.len() * 3) as u64);
                continue;
            }
            Err(source) => {
                return Err(CounterError::Store {
                    url: url.clone(),
                    source,
                })
            }
        };
        *FUNCTION_STORE
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(store);
        let secret = b"granary-bench-counter".to_vec();
        let node = Node::builder()
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .cluster_secret("granary-bench-counter", secret.clone())
            .store(url.as_str())
            .host(Kind::<CounterActor>::new().handles::<Increment>())
            .host(
                Kind::<CounterFunction>::new()
                    .handles::<Increment>()
                    .stateless_worker(1),
            )
            .start()
            .await?;
        let client = Client::connect_with([node.addr()], "granary-bench-counter", secret).await?;
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let outcome = async {
            for &k in messages {
                reporter
                    .progress()
                    .set_message(format!("{} x{k}", store_name(url)));
                let key = format!("{run_id}-{k}");
                let function =
                    measure("function", client.get::<CounterFunction>(key.clone()), k, 1).await?;
                reporter.progress().inc(1);
                let actor = measure("actor", client.get::<CounterActor>(key.clone()), k, 1).await?;
                reporter.progress().inc(1);
                let memory = measure(
                    "actor-memory",
                    client.get::<CounterActor>(format!("{key}-memory")),
                    k,
                    args.checkpoint_every,
                )
                .await?;
                reporter.progress().inc(1);
                let function_rate = function.1;
                for (variant, (latencies, rate, seconds)) in [
                    ("function", function),
                    ("actor", actor),
                    ("actor-memory", memory),
                ] {
                    let [p50, p99, p999, max] = latencies.summary_us();
                    let row = CounterRow {
                        scenario: "counter",
                        mode: "virtual",
                        nodes: 1,
                        actors: 1,
                        payload_bytes: 0,
                        messages: k,
                        seconds,
                        msgs_per_sec: rate,
                        p50_us: p50,
                        p99_us: p99,
                        p999_us: p999,
                        max_us: max,
                        variant,
                        store: store_name(url),
                        actor_over_function: (variant != "function").then(|| rate / function_rate),
                    };
                    reporter.emit(&row)?;
                    if let Ok(Value::Object(map)) = serde_json::to_value(&row) {
                        rows.push(map);
                    }
                }
            }
            Ok::<_, CounterError>(())
        }
        .await;
        client.close().await;
        node.shutdown().await;
        outcome?;
    }
    reporter.finish();
    Ok(rows)
}

/// Sends `k` increments one after another; checks the final count is `k`.
/// Returns the latencies, messages per second and seconds.
async fn measure<A>(
    variant: &'static str,
    counter: VirtualRef<A>,
    k: u64,
    checkpoint_every: u64,
) -> Result<(Latencies, f64, f64), CounterError>
where
    A: VirtualActor + VirtualHandler<Increment>,
{
    let fail = |reason: String| CounterError::Run { variant, reason };
    let mut latencies = Latencies::new(ASK_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    let start = Instant::now();
    let mut last = 0;
    for _ in 0..k {
        let t0 = Instant::now();
        let Counted(reply) = counter
            .ask_timeout(Increment { checkpoint_every }, ASK_TIMEOUT)
            .await
            .map_err(|e| fail(e.to_string()))?;
        last = reply.map_err(fail)?;
        latencies.record(t0.elapsed());
    }
    let seconds = start.elapsed().as_secs_f64();
    if last != k {
        return Err(fail(format!("final count {last}, expected {k}")));
    }
    Ok((
        latencies,
        k as f64 / seconds.max(f64::MIN_POSITIVE),
        seconds,
    ))
}
