//! Stores for the integration tests, one fresh namespace (or file) per test.
//!
//! PostgreSQL and Redis: with `CI=true` a missing server fails the test loudly;
//! without it, the test is skipped with a printed reason. The servers' URLs come
//! from `GRANARY_TEST_POSTGRES_URL` / `GRANARY_TEST_REDIS_URL`, defaulting to the
//! local ones `.ci/run` starts.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granary_storage::{open_with, StateStore, StorageError, StoreOptions};
use tempfile::TempDir;

pub const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS_DEFAULT: &str = "redis://127.0.0.1:6379/0";

/// A store plus what must be cleaned up after the test.
pub struct Fixture {
    pub store: Arc<dyn StateStore>,
    pub url: String,
    pub options: StoreOptions,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    Dir(#[allow(dead_code)] TempDir),
    Postgres { url: String, namespace: String },
    Redis { url: String, namespace: String },
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn postgres_url() -> String {
    std::env::var("GRANARY_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned())
}

pub fn redis_url() -> String {
    std::env::var("GRANARY_TEST_REDIS_URL").unwrap_or_else(|_| REDIS_DEFAULT.to_owned())
}

/// A namespace no other test (in this or another run) uses.
pub fn unique_namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

pub fn test_options() -> StoreOptions {
    StoreOptions::default()
        .with_connect_timeout(Duration::from_secs(5))
        .with_op_timeout(Duration::from_secs(30))
        .with_namespace(unique_namespace())
}

pub async fn memory() -> Option<Fixture> {
    let options = test_options();
    Some(Fixture {
        store: open_with("memory:", options.clone())
            .await
            .expect("memory: opens"),
        url: "memory:".into(),
        options,
        cleanup: Cleanup::None,
    })
}

pub async fn file() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("file:{}", dir.path().join("state.db").display());
    let options = test_options();
    Some(Fixture {
        store: open_with(&url, options.clone())
            .await
            .expect("file: store opens"),
        url,
        options,
        cleanup: Cleanup::Dir(dir),
    })
}

/// Opens a networked store, or decides between failing (CI) and skipping.
async fn networked(name: &str, url: String) -> Option<(Arc<dyn StateStore>, StoreOptions, String)> {
    let options = test_options();
    match open_with(&url, options.clone()).await {
        Ok(store) => Some((store, options, url)),
        Err(e @ (StorageError::Unavailable { .. } | StorageError::Timeout { .. })) => {
            if in_ci() {
                panic!("CI=true but {name} is not reachable at {url}: {e}");
            }
            eprintln!(
                "skipping: {name} is not reachable at {url} ({e}); set CI=true to require it"
            );
            None
        }
        Err(e) => panic!("opening {name} at {url} failed: {e}"),
    }
}

pub async fn postgres() -> Option<Fixture> {
    let (store, options, url) = networked("PostgreSQL", postgres_url()).await?;
    Some(Fixture {
        store,
        cleanup: Cleanup::Postgres {
            url: url.clone(),
            namespace: options.namespace().to_owned(),
        },
        url,
        options,
    })
}

pub async fn redis() -> Option<Fixture> {
    let (store, options, url) = networked("Redis", redis_url()).await?;
    Some(Fixture {
        store,
        cleanup: Cleanup::Redis {
            url: url.clone(),
            namespace: options.namespace().to_owned(),
        },
        url,
        options,
    })
}

impl Fixture {
    /// Drops the test's tables or keys (best effort: a leftover only costs space).
    pub async fn cleanup(self) {
        match self.cleanup {
            Cleanup::None | Cleanup::Dir(_) => {}
            Cleanup::Postgres { url, namespace } => {
                use deadpool_postgres::tokio_postgres::{self, NoTls};
                if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP TABLE IF EXISTS {namespace}_state; DROP TABLE IF EXISTS {namespace}_reminders;"
                        ))
                        .await;
                }
            }
            Cleanup::Redis { url, namespace } => {
                if let Ok(client) = redis::Client::open(url.as_str()) {
                    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{namespace}:*"))
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        if !keys.is_empty() {
                            let _: Result<(), _> =
                                redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                        }
                    }
                }
            }
        }
    }
}
