//! `file:`: the embedded, zero-setup store (SQLite in WAL mode).
//!
//! Why SQLite: several node processes on one machine must share one store file at
//! once, and every acknowledged write must survive `kill -9`. SQLite in WAL mode
//! does both (readers never block the writer, writers of different processes take
//! turns on a file lock), and `rusqlite` with the `bundled` feature needs nothing
//! installed. redb and sled take an exclusive lock on the file, so one process only.

mod readers;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use self::readers::Readers;
use self::schema::{connect, Sql};
use self::writer::{Change, Outcome, Request};
use crate::options::within;
use crate::reminder::system_time_to_ms;
use crate::{Identity, Reminder, StateStore, StorageError, StoreOptions, Stored, Version};

/// Writes waiting for the writer thread before `write` waits for room.
const QUEUE_DEPTH: usize = 8192;

/// The embedded store: one SQLite database file shared by any number of processes.
///
/// Writes go to one writer thread per store that commits them in batches (group
/// commit, see the `writer` module): a write returns only after the transaction
/// holding it is fsynced. Reads run on tokio's blocking pool with their own
/// connections and never wait for the writer.
///
/// ```no_run
/// # // no_run: writes a file under /tmp.
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{FileStore, Identity, StateStore, StoreOptions};
/// let store = FileStore::open("/tmp/granary-demo.db".as_ref(), StoreOptions::default()).await?;
/// let v = store.write(&Identity::new("Counter", "a"), "1".into(), None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileStore {
    queue: mpsc::Sender<Request>,
    readers: Arc<Readers>,
    sql: Arc<Sql>,
    op_timeout: Duration,
}

impl FileStore {
    /// Opens (creating if needed, with parent directories) the database at `path`,
    /// creates the tables, and starts the writer thread.
    ///
    /// A file that is not a SQLite database gives [`StorageError::Corrupt`].
    pub async fn open(path: &Path, options: StoreOptions) -> Result<FileStore, StorageError> {
        options.validate()?;
        let path = path.to_path_buf();
        let busy = options.op_timeout();
        let sql = Arc::new(Sql::new(options.namespace()));
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread_sql = Arc::clone(&sql);
        let thread_path = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            if thread_path.is_dir() {
                // SQLite says only "unable to open database file".
                return Err(StorageError::InvalidUrl {
                    part: crate::UrlPart::Path,
                    reason: format!(
                        "{} is a directory; `file:` names the database file in it, e.g. \
                         file:{}",
                        thread_path.display(),
                        thread_path.join("state.db").display()
                    ),
                });
            }
            if let Some(dir) = thread_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let conn = connect(&thread_path, busy)?;
            std::thread::Builder::new()
                .name("granary-file-writer".to_owned())
                .spawn(move || writer::run(conn, thread_sql, thread_path, rx))
                .map_err(|e| {
                    StorageError::unavailable(format!("cannot start the writer thread: {e}"))
                })?;
            Ok::<(), StorageError>(())
        })
        .await
        .map_err(|e| StorageError::unavailable(format!("open task failed: {e}")))?;
        opened?;
        let store = FileStore {
            queue: tx,
            readers: Arc::new(Readers::new(path, busy, options.pool_size())),
            sql,
            op_timeout: options.op_timeout(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Hands `change` to the writer and waits for its commit.
    async fn submit(
        &self,
        operation: &'static str,
        change: Change,
    ) -> Result<Outcome, StorageError> {
        within(self.op_timeout, operation, async {
            let (reply, answer) = oneshot::channel();
            self.queue
                .send(Request { change, reply })
                .await
                .map_err(|_| {
                    StorageError::unavailable("the file store's writer thread has stopped")
                })?;
            answer.await.map_err(|_| {
                StorageError::unavailable("the file store's writer thread has stopped")
            })?
        })
        .await
    }
}

#[async_trait]
impl StateStore for FileStore {
    fn provider(&self) -> &'static str {
        "file"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        self.submit("migrate", Change::Migrate).await.map(|_| ())
    }

    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError> {
        let sql = Arc::clone(&self.sql);
        let id = identity.clone();
        let row = within(
            self.op_timeout,
            "read",
            self.readers.run(move |conn| {
                conn.prepare_cached(&sql.read_state)?
                    .query_row(params![id.kind(), id.key()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .optional()
            }),
        )
        .await?;
        row.map(|(version, data)| {
            Ok(Stored {
                data: Bytes::from(data),
                version: Version::from_stored(version)?,
            })
        })
        .transpose()
    }

    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        let change = Change::Write {
            identity: identity.clone(),
            data,
            expected,
        };
        match self.submit("write", change).await? {
            Outcome::Written(v) => Ok(v),
            other => Err(StorageError::unavailable(format!(
                "writer answered {other:?} to a write"
            ))),
        }
    }

    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError> {
        let change = Change::Clear {
            identity: identity.clone(),
            expected,
        };
        self.submit("clear", change).await.map(|_| ())
    }

    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError> {
        let change = Change::UpsertReminder {
            identity: reminder.identity.clone(),
            name: reminder.name.clone(),
            partition: reminder.partition,
            due_ms: reminder.due_ms()?,
            period_ms: reminder.period_ms()?,
        };
        self.submit("upsert_reminder", change).await.map(|_| ())
    }

    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError> {
        let change = Change::DeleteReminder {
            identity: identity.clone(),
            name: name.to_owned(),
        };
        match self.submit("delete_reminder", change).await? {
            Outcome::Existed(existed) => Ok(existed),
            other => Err(StorageError::unavailable(format!(
                "writer answered {other:?} to a delete"
            ))),
        }
    }

    async fn due_reminders(
        &self,
        partition: u32,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Reminder>, StorageError> {
        let now_ms = system_time_to_ms(now)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = Arc::clone(&self.sql);
        type Row = (String, String, String, i64, i64, Option<i64>);
        let rows: Vec<Row> = within(
            self.op_timeout,
            "due_reminders",
            self.readers.run(move |conn| {
                let mut stmt = conn.prepare_cached(&sql.due_reminders)?;
                let rows = stmt.query_map(params![i64::from(partition), now_ms, limit], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?;
                rows.collect()
            }),
        )
        .await?;
        rows.into_iter()
            .map(|(kind, key, name, partition, due_ms, period_ms)| {
                Reminder::from_stored(Identity::new(kind, key), name, partition, due_ms, period_ms)
            })
            .collect()
    }
}
