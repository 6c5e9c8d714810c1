//! `open(url)`: one constructor for every provider.

use std::sync::Arc;

use crate::store_url::StoreUrl;
use crate::{StateStore, StorageError, StoreOptions};

/// Opens the store `url` names with default [`StoreOptions`].
///
/// | URL | provider |
/// |---|---|
/// | `memory:` | [`MemoryStore`](crate::MemoryStore), a fresh empty store per call |
/// | `file:/path/state.db` (also `file:///…`, `file:relative`) | [`FileStore`](crate::FileStore), SQLite in WAL mode |
/// | `postgres://user:pass@host:port/db` | `PostgresStore` (feature `postgres`) |
/// | `redis://[:pass@]host:port/db` | `RedisStore` (feature `redis`) |
///
/// The store is connected and its schema created before this returns, so an
/// unreachable database fails here with [`StorageError::Unavailable`] within the
/// connect timeout, and a malformed URL with [`StorageError::InvalidUrl`] naming the
/// wrong part.
///
/// ```
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// let store = granary_storage::open("memory:").await?;
/// assert_eq!(store.provider(), "memory");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn StateStore>, StorageError> {
    open_with(url, StoreOptions::default()).await
}

/// Opens the store `url` names with the given options (timeouts, namespace, pool).
pub async fn open_with(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn StateStore>, StorageError> {
    options.validate()?;
    match StoreUrl::parse(url)? {
        StoreUrl::Memory => Ok(Arc::new(crate::MemoryStore::new())),
        StoreUrl::File(path) => Ok(Arc::new(crate::FileStore::open(&path, options).await?)),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(url) => Ok(Arc::new(
            crate::PostgresStore::connect_url(&url, options).await?,
        )),
        #[cfg(feature = "redis")]
        StoreUrl::Redis(url) => Ok(Arc::new(
            crate::RedisStore::connect_url(&url, options).await?,
        )),
    }
}
