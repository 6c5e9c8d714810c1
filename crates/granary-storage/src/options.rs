//! Options every provider honours: timeouts, namespace, pool size.

use std::future::Future;
use std::time::Duration;

use crate::StorageError;

/// How to open a store. The defaults suit a local node; tests shorten the timeouts.
///
/// ```
/// use std::time::Duration;
/// use granary_storage::StoreOptions;
/// let opts = StoreOptions::default()
///     .with_connect_timeout(Duration::from_millis(500))
///     .with_namespace("myapp");
/// assert_eq!(opts.namespace(), "myapp");
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    connect_timeout: Duration,
    op_timeout: Duration,
    namespace: String,
    pool_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
            namespace: "granary".to_owned(),
            pool_size: 16,
        }
    }
}

impl StoreOptions {
    /// How long opening a connection may take before the store counts as
    /// [`Unavailable`](StorageError::Unavailable). Default 5 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one operation may take before it fails with
    /// [`Timeout`](StorageError::Timeout). For `file:` this is also how long a writer
    /// waits for another process's lock. Default 10 s.
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Prefix of the tables (SQL) or keys (Redis) the store uses, so several
    /// applications or test runs share one database without colliding. Lower-case
    /// ASCII letters, digits and `_`, starting with a letter, at most 40 characters
    /// (checked when the store opens). Default `granary`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Most connections a networked store keeps open, or read connections for
    /// `file:`. Default 16.
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The operation timeout.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pool size.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Checks the namespace is safe to splice into table names and keys.
    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        let ns = &self.namespace;
        let ok = !ns.is_empty()
            && ns.len() <= 40
            && ns.starts_with(|c: char| c.is_ascii_lowercase())
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(StorageError::InvalidInput {
                what: "namespace",
                reason: format!(
                    "{ns:?} must be 1-40 characters of a-z, 0-9 and _, starting with a letter"
                ),
            })
        }
    }
}

/// Runs `fut` with the operation timeout; running out becomes `Timeout`.
pub(crate) async fn within<T>(
    limit: Duration,
    operation: &'static str,
    fut: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(StorageError::Timeout {
            operation,
            after: limit,
        }),
    }
}
