//! The `StateStore` trait every provider implements.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Identity, Reminder, StorageError, Stored, Version};

/// A place to keep actor state, with optimistic concurrency, and durable reminders.
///
/// # Versions
/// Every identity's state carries a [`Version`] (an ETag). `write` and `clear` take
/// the version the caller last saw (`None`: "I saw no state") and succeed only if it
/// is still current; otherwise they return [`StorageError::Conflict`] with the
/// current version and change nothing. So of many writers that read the same
/// version, exactly one wins, and a stale activation can never overwrite newer
/// state.
///
/// # Durability
/// When `write`, `clear`, `upsert_reminder` or `delete_reminder` returns `Ok`, the
/// change is committed by the backing store (for `file:`, on disk and fsynced).
///
/// # Cancellation
/// Every method is cancel-safe in the sense that matters for state: dropping the
/// future never leaves a half-applied change. A dropped (or timed out) write either
/// committed whole or not at all; read the identity to find out which.
///
/// ```
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{open, Identity, StorageError};
/// let store = open("memory:").await?;
/// let id = Identity::new("Counter", "a");
/// let v1 = store.write(&id, "1".into(), None).await?;
/// let v2 = store.write(&id, "2".into(), Some(v1)).await?;
/// // A writer still holding v1 loses:
/// let stale = store.write(&id, "x".into(), Some(v1)).await;
/// assert!(matches!(stale, Err(StorageError::Conflict { current: Some(v) }) if v == v2));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The provider's short name: `"memory"`, `"file"`, `"postgres"` or `"redis"`.
    fn provider(&self) -> &'static str;

    /// Creates or upgrades the schema (tables, indexes). Idempotent; [`open`](crate::open)
    /// already calls it, so call it yourself only to prepare a database ahead of time.
    async fn migrate(&self) -> Result<(), StorageError>;

    /// The live state of `identity` and its version, or `None` if it has none (never
    /// written, or cleared).
    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError>;

    /// Replaces the state of `identity` with `data` if its current version is
    /// `expected` (`None`: it has no live state). Returns the new version.
    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError>;

    /// Removes the live state of `identity` if its current version is `expected`.
    /// Clearing with `expected = None` succeeds when there is no live state. The
    /// version sequence continues after a clear (a later write gets a higher
    /// version than any before it).
    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError>;

    /// Inserts or replaces the reminder keyed by `(reminder.identity, reminder.name)`.
    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError>;

    /// Deletes the reminder `(identity, name)`; `true` if it existed.
    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError>;

    /// Up to `limit` reminders of `partition` due at or before `now`, earliest first.
    async fn due_reminders(
        &self,
        partition: u32,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Reminder>, StorageError>;
}
