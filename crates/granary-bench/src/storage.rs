//! The `storage` scenario: read-modify-write throughput and latency of each
//! `StateStore` provider (issue 4).
//!
//! For each store: a fresh set of identities (10,000 by default) is written once
//! (not timed), then every identity gets one read-modify-write (read the state and
//! its version, change a counter in it, write it back with the version read):
//! - `rmw-sequential`: one task, one identity after another;
//! - `rmw-concurrent`: 16 tasks (`--concurrency`), each with its share of the
//!   identities, all at once; for `file:` this is where group commit pays off;
//! - `write-concurrent`: the same 16 tasks write without reading first (each task
//!   remembers the version of its identities), i.e. durable writes only.
//!
//! Every row reports ops/s (`msgs_per_sec`) and per-operation latency (p50, p99,
//! p99.9, max). A final untimed pass checks every identity holds the expected
//! counter and version, so a lost or misapplied write fails the run.
//!
//! `--store all` runs `memory:`, a `file:` store in a temporary directory,
//! PostgreSQL at 127.0.0.1:5432 (database `test`) and Redis at 127.0.0.1:6379;
//! the networked ones are skipped with a note when not reachable. Rows live under
//! namespace `granary_bench` with keys unique to the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use granary::storage::{open_with, Identity, StateStore, StorageError, StoreOptions, Version};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::{ReportError, Reporter};

/// Options of `granary-bench storage`.
#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// Store URL to measure (repeatable), or `all` for memory, file, PostgreSQL
    /// and Redis.
    #[arg(long = "store", required = true)]
    stores: Vec<String>,
    /// Identities per test.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    identities: u64,
    /// Concurrent tasks in the concurrent tests.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Bytes of state per identity.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// 1,000 identities instead of 10,000, for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Why the storage scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageBenchError {
    /// A store operation failed.
    #[error("{store}: {source}")]
    Store {
        /// The store's provider name.
        store: String,
        /// The store's error.
        #[source]
        source: StorageError,
    },
    /// The final check found state that is not what the run wrote.
    #[error("{store}: {detail}")]
    Check {
        /// The store's provider name.
        store: String,
        /// What was wrong.
        detail: String,
    },
    /// The runtime could not be built.
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// The latency histogram could not be made or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A worker task panicked.
    #[error("a worker task failed: {0}")]
    Task(String),
    /// A temporary directory could not be made.
    #[error("cannot create a temporary directory")]
    TempDir(#[source] std::io::Error),
    /// Writing a row failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// The timed tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    RmwSequential,
    RmwConcurrent,
    WriteConcurrent,
}

impl Test {
    const ALL: [Test; 3] = [
        Test::RmwSequential,
        Test::RmwConcurrent,
        Test::WriteConcurrent,
    ];

    fn name(self) -> &'static str {
        match self {
            Test::RmwSequential => "rmw-sequential",
            Test::RmwConcurrent => "rmw-concurrent",
            Test::WriteConcurrent => "write-concurrent",
        }
    }
}

/// One output row (the fields of `COLUMNS`).
#[derive(Debug, Serialize)]
struct StorageRow {
    scenario: &'static str,
    test: &'static str,
    store: String,
    mode: &'static str,
    nodes: u32,
    actors: u64,
    payload_bytes: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "test",
    "store",
    "mode",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "seconds",
    "msgs_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
];

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Runs the scenario.
pub(crate) fn run(args: StorageArgs) -> Result<(), StorageBenchError> {
    let identities = if args.quick { 1_000 } else { args.identities };
    let temp = std::env::temp_dir().join(format!("granary-bench-storage-{}", std::process::id()));
    let mut urls = Vec::new();
    let mut optional = Vec::new();
    for store in &args.stores {
        if store == "all" {
            urls.push("memory:".to_owned());
            urls.push(format!("file:{}", temp.join("state.db").display()));
            urls.push(POSTGRES_URL.to_owned());
            urls.push(REDIS_URL.to_owned());
            optional.extend([POSTGRES_URL.to_owned(), REDIS_URL.to_owned()]);
        } else {
            urls.push(store.clone());
        }
    }
    std::fs::create_dir_all(&temp).map_err(StorageBenchError::TempDir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(StorageBenchError::Runtime)?;
    let mut reporter = Reporter::new(
        COLUMNS,
        args.csv.as_deref(),
        (urls.len() * Test::ALL.len()) as u64,
    )?;
    let result = runtime.block_on(async {
        for url in &urls {
            let options = StoreOptions::default()
                .with_namespace("granary_bench")
                .with_connect_timeout(Duration::from_secs(3))
                .with_op_timeout(Duration::from_secs(30))
                .with_pool_size(args.concurrency as usize);
            let store = match open_with(url, options).await {
                Ok(store) => store,
                Err(e @ StorageError::Unavailable { .. }) if optional.contains(url) => {
                    reporter.progress().println(format!("skipping {url}: {e}"));
                    reporter.progress().inc(Test::ALL.len() as u64);
                    continue;
                }
                Err(source) => {
                    return Err(StorageBenchError::Store {
                        store: url.clone(),
                        source,
                    })
                }
            };
            let bench = Bench::new(store, identities, args.concurrency, args.payload_bytes)?;
            bench.load().await?;
            for test in Test::ALL {
                reporter.progress().set_message(format!(
                    "{} {}",
                    bench.store.provider(),
                    test.name()
                ));
                let sample = bench.run(test).await?;
                reporter.emit(&sample.row(test, &bench))?;
                reporter.progress().inc(1);
            }
            bench.check().await?;
        }
        Ok(())
    });
    reporter.finish();
    let _ = std::fs::remove_dir_all(&temp);
    result
}

/// One store under test and the identities of this run.
struct Bench {
    store: Arc<dyn StateStore>,
    ids: Arc<Vec<Identity>>,
    concurrency: u64,
    payload_bytes: usize,
    /// An empty latency record each task starts from.
    empty: Histogram<u64>,
}

/// What a timed test measured.
struct Sample {
    elapsed: Duration,
    latencies: Histogram<u64>,
}

impl Sample {
    fn row(&self, test: Test, bench: &Bench) -> StorageRow {
        let ops = self.latencies.len();
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let seconds = self.elapsed.as_secs_f64();
        StorageRow {
            scenario: "storage",
            test: test.name(),
            store: bench.store.provider().to_owned(),
            mode: "local",
            nodes: 1,
            actors: if test == Test::RmwSequential {
                1
            } else {
                bench.concurrency
            },
            payload_bytes: bench.payload_bytes,
            messages: ops,
            seconds,
            msgs_per_sec: ops as f64 / seconds,
            p50_us: us(self.latencies.value_at_quantile(0.5)),
            p99_us: us(self.latencies.value_at_quantile(0.99)),
            p999_us: us(self.latencies.value_at_quantile(0.999)),
            max_us: us(self.latencies.max()),
        }
    }
}

/// The state of one identity: a counter followed by filler up to the payload size.
fn payload(counter: u64, size: usize) -> Vec<u8> {
    let mut data = counter.to_le_bytes().to_vec();
    data.resize(size.max(8), 0xAB);
    data
}

fn counter_of(data: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(..8)?.try_into().ok()?))
}

/// An empty latency record: 1 ns to 1 hour at 3 significant digits.
fn histogram() -> Result<Histogram<u64>, StorageBenchError> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| StorageBenchError::Histogram(e.to_string()))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Bench {
    fn new(
        store: Arc<dyn StateStore>,
        identities: u64,
        concurrency: u64,
        payload_bytes: usize,
    ) -> Result<Bench, StorageBenchError> {
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let ids = (0..identities)
            .map(|i| Identity::new("BenchCounter", format!("{}-{run}-{i}", std::process::id())))
            .collect();
        Ok(Bench {
            store,
            ids: Arc::new(ids),
            concurrency,
            payload_bytes,
            empty: histogram()?,
        })
    }

    fn error(&self, source: StorageError) -> StorageBenchError {
        StorageBenchError::Store {
            store: self.store.provider().to_owned(),
            source,
        }
    }

    /// Runs `work(task, store, ids of the task)` on `tasks` tasks and merges what they measured.
    async fn fan_out<F, Fut>(&self, tasks: u64, work: F) -> Result<Sample, StorageBenchError>
    where
        F: Fn(Arc<dyn StateStore>, Vec<Identity>, Histogram<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<Histogram<u64>, StorageError>> + Send + 'static,
    {
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let ids: Vec<Identity> = self
                .ids
                .iter()
                .skip(t as usize)
                .step_by(tasks as usize)
                .cloned()
                .collect();
            handles.push(tokio::spawn(work(
                Arc::clone(&self.store),
                ids,
                self.empty.clone(),
            )));
        }
        let mut latencies = self.empty.clone();
        for handle in handles {
            let part = handle
                .await
                .map_err(|e| StorageBenchError::Task(e.to_string()))?
                .map_err(|e| self.error(e))?;
            latencies
                .add(&part)
                .map_err(|e| StorageBenchError::Histogram(e.to_string()))?;
        }
        Ok(Sample {
            elapsed: started.elapsed(),
            latencies,
        })
    }

    /// Writes every identity once (counter 0).
    async fn load(&self) -> Result<(), StorageBenchError> {
        let size = self.payload_bytes;
        self.fan_out(self.concurrency, move |store, ids, empty| async move {
            for id in ids {
                store.write(&id, payload(0, size).into(), None).await?;
            }
            Ok(empty)
        })
        .await
        .map(|_| ())
    }

    async fn run(&self, test: Test) -> Result<Sample, StorageBenchError> {
        let size = self.payload_bytes;
        let tasks = if test == Test::RmwSequential {
            1
        } else {
            self.concurrency
        };
        match test {
            Test::RmwSequential | Test::RmwConcurrent => {
                self.fan_out(tasks, move |store, ids, mut latencies| async move {
                    for id in ids {
                        let op = Instant::now();
                        let stored =
                            store
                                .read(&id)
                                .await?
                                .ok_or_else(|| StorageError::Corrupt {
                                    reason: format!("{id} vanished"),
                                })?;
                        let counter = counter_of(&stored.data).unwrap_or(0);
                        store
                            .write(&id, payload(counter + 1, size).into(), Some(stored.version))
                            .await?;
                        latencies.saturating_record(nanos(op.elapsed()));
                    }
                    Ok(latencies)
                })
                .await
            }
            Test::WriteConcurrent => {
                // Versions are read before the clock starts: this test times writes only.
                let mut known = Vec::with_capacity(self.ids.len());
                for id in self.ids.iter() {
                    let v = self.store.read(id).await.map_err(|e| self.error(e))?;
                    known.push(v.map(|s| s.version));
                }
                let known: Arc<std::collections::HashMap<Identity, Option<Version>>> =
                    Arc::new(self.ids.iter().cloned().zip(known).collect());
                self.fan_out(tasks, move |store, ids, mut latencies| {
                    let known = Arc::clone(&known);
                    async move {
                        for id in ids {
                            let op = Instant::now();
                            let expected = known.get(&id).copied().flatten();
                            store.write(&id, payload(3, size).into(), expected).await?;
                            latencies.saturating_record(nanos(op.elapsed()));
                        }
                        Ok(latencies)
                    }
                })
                .await
            }
        }
    }

    /// Every identity must hold counter 3 at version 4 (load, two RMW passes, one write).
    async fn check(&self) -> Result<(), StorageBenchError> {
        for id in self.ids.iter() {
            let stored = self.store.read(id).await.map_err(|e| self.error(e))?;
            let got = stored
                .as_ref()
                .map(|s| (counter_of(&s.data), s.version.get()));
            if got != Some((Some(3), 4)) {
                return Err(StorageBenchError::Check {
                    store: self.store.provider().to_owned(),
                    detail: format!("{id}: expected counter 3 at v4, found {got:?}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary::storage::MemoryStore;

    fn on_runtime<T>(body: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(body)
    }

    #[test]
    fn every_test_measures_one_op_per_identity_and_the_check_passes() {
        on_runtime(async {
            let bench = Bench::new(Arc::new(MemoryStore::new()), 200, 16, 64).unwrap();
            bench.load().await.unwrap();
            for test in Test::ALL {
                let sample = bench.run(test).await.unwrap();
                let row = sample.row(test, &bench);
                assert_eq!(row.messages, 200, "{}", test.name());
                assert!(row.msgs_per_sec > 0.0 && row.p50_us <= row.p99_us);
            }
            bench.check().await.unwrap();
        });
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: StorageArgs,
    }

    #[test]
    fn quick_run_over_memory_and_file_stores_succeeds() {
        use clap::Parser;
        let dir =
            std::env::temp_dir().join(format!("granary-bench-storage-test-{}", std::process::id()));
        let file = format!("file:{}", dir.join("state.db").display());
        let cli =
            Cli::try_parse_from(["storage", "--store", "memory:", "--store", &file, "--quick"])
                .expect("arguments parse");
        assert_eq!(cli.args.stores, ["memory:", file.as_str()]);
        let result = run(cli.args);
        let _ = std::fs::remove_dir_all(&dir);
        result.expect("quick storage run");
    }

    #[test]
    fn the_check_catches_a_write_that_went_missing() {
        on_runtime(async {
            let bench = Bench::new(Arc::new(MemoryStore::new()), 50, 4, 64).unwrap();
            bench.load().await.unwrap();
            for test in Test::ALL {
                bench.run(test).await.unwrap();
            }
            // Roll one identity back by clearing and rewriting it.
            let id = &bench.ids[7];
            let v = bench.store.read(id).await.unwrap().unwrap().version;
            bench.store.clear(id, Some(v)).await.unwrap();
            bench
                .store
                .write(id, payload(2, 64).into(), None)
                .await
                .unwrap();
            assert!(matches!(
                bench.check().await,
                Err(StorageBenchError::Check { .. })
            ));
        });
    }
}
