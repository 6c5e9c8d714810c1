//! `redis://…`: state in Redis, compare-and-set in Lua scripts.
//!
//! One multiplexed connection (`redis::aio::ConnectionManager`, which reconnects
//! by itself) carries every operation; pipelining makes a pool unnecessary. What is
//! durable is what the Redis server's own persistence settings (AOF `fsync`) make
//! durable.

mod scripts;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use serde::{Deserialize, Serialize};

use self::scripts::Scripts;
use crate::options::within;
use crate::reminder::system_time_to_ms;
use crate::store_url::StoreUrl;
use crate::{Identity, Reminder, StateStore, StorageError, StoreOptions, Stored, UrlPart, Version};

/// The Redis store. Keys start with `<namespace>:`.
///
/// ```no_run
/// # // no_run: needs a Redis server.
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{RedisStore, StoreOptions};
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0", StoreOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    scripts: std::sync::Arc<Scripts>,
    namespace: String,
    endpoint: String,
    op_timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A reminder as stored in Redis.
#[derive(Serialize, Deserialize)]
struct ReminderRecord {
    kind: String,
    key: String,
    name: String,
    partition: i64,
    due_ms: i64,
    period_ms: Option<i64>,
}

impl RedisStore {
    /// Connects to the server `url` names (`redis://[:password@]host:port/db`).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<RedisStore, StorageError> {
        options.validate()?;
        match StoreUrl::parse(url)? {
            StoreUrl::Redis(url) => Self::connect_url(&url, options).await,
            _ => Err(StorageError::url(UrlPart::Scheme, "expected redis://")),
        }
    }

    pub(crate) async fn connect_url(
        url: &url::Url,
        options: StoreOptions,
    ) -> Result<RedisStore, StorageError> {
        let endpoint = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port().unwrap_or(6379)
        );
        let client = redis::Client::open(url.as_str())
            .map_err(|e| StorageError::url(UrlPart::Path, format!("{e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout()))
            .set_response_timeout(Some(options.op_timeout()))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        // Connecting counts as done when the server has answered a PING: a peer
        // that accepts TCP but never speaks is unavailable, not merely slow.
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        let conn = match tokio::time::timeout(options.connect_timeout(), connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StorageError::unavailable(format!(
                    "Redis at {endpoint}: {e}"
                )));
            }
            Err(_) => {
                return Err(StorageError::unavailable(format!(
                    "Redis at {endpoint} did not answer within {:?}",
                    options.connect_timeout()
                )))
            }
        };
        let store = RedisStore {
            conn,
            scripts: std::sync::Arc::new(Scripts::new()),
            namespace: options.namespace().to_owned(),
            endpoint,
            op_timeout: options.op_timeout(),
        };
        Ok(store)
    }

    /// `ns:state:<kind length>:<kind><key>`: unambiguous for any kind and key.
    fn state_key(&self, id: &Identity) -> String {
        format!(
            "{}:state:{}:{}{}",
            self.namespace,
            id.kind().len(),
            id.kind(),
            id.key()
        )
    }

    fn reminder_key(&self, id: &Identity, name: &str) -> String {
        format!(
            "{}:rem:{}:{}{}:{}{}",
            self.namespace,
            id.kind().len(),
            id.kind(),
            id.key().len(),
            id.key(),
            name
        )
    }

    fn due_prefix(&self) -> String {
        format!("{}:due:", self.namespace)
    }

    fn map_redis(&self, operation: &'static str, e: RedisError) -> StorageError {
        match e.code() {
            Some("CORRUPT") => {
                return StorageError::corrupt(format!(
                    "Redis at {}: {}",
                    self.endpoint,
                    e.detail().unwrap_or("")
                ))
            }
            Some("WRONGTYPE") => {
                return StorageError::corrupt(format!(
                    "Redis at {}: a key of this store holds the wrong type: {e}",
                    self.endpoint
                ))
            }
            _ => {}
        }
        if e.is_timeout() {
            return StorageError::Timeout {
                operation,
                after: self.op_timeout,
            };
        }
        match e.kind() {
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
                StorageError::corrupt(format!("Redis at {}: {e}", self.endpoint))
            }
            _ => StorageError::unavailable(format!("Redis at {}: {e}", self.endpoint)),
        }
    }
}

/// `{ok, version}` as the CAS scripts return it (0: no version).
fn cas_outcome(reply: (i64, i64)) -> Result<Option<Version>, StorageError> {
    let (ok, version) = reply;
    let version = if version == 0 {
        None
    } else {
        Some(Version::from_stored(version)?)
    };
    if ok == 1 {
        Ok(version)
    } else {
        Err(StorageError::Conflict { current: version })
    }
}

fn expected_arg(expected: Option<Version>) -> String {
    expected.map(|v| v.get().to_string()).unwrap_or_default()
}

#[async_trait]
impl StateStore for RedisStore {
    fn provider(&self) -> &'static str {
        "redis"
    }

    /// Redis needs no schema; this checks the server answers.
    async fn migrate(&self) -> Result<(), StorageError> {
        within(self.op_timeout, "migrate", async {
            let mut conn = self.conn.clone();
            redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.map_redis("migrate", e))
        })
        .await
    }

    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError> {
        let key = self.state_key(identity);
        let (v, d): (Option<Vec<u8>>, Option<Vec<u8>>) = within(self.op_timeout, "read", async {
            let mut conn = self.conn.clone();
            redis::cmd("HMGET")
                .arg(&key)
                .arg("v")
                .arg("d")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.map_redis("read", e))
        })
        .await?;
        let Some(data) = d else { return Ok(None) };
        let version = v
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
            .and_then(Version::from_raw)
            .ok_or_else(|| {
                StorageError::corrupt(format!("{key}: missing or malformed version field"))
            })?;
        Ok(Some(Stored {
            data: Bytes::from(data),
            version,
        }))
    }

    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        let key = self.state_key(identity);
        let reply = within(self.op_timeout, "write", async {
            let mut conn = self.conn.clone();
            self.scripts
                .write
                .key(&key)
                .arg(expected_arg(expected))
                .arg(data.as_ref())
                .invoke_async::<(i64, i64)>(&mut conn)
                .await
                .map_err(|e| self.map_redis("write", e))
        })
        .await?;
        cas_outcome(reply)?.ok_or_else(|| StorageError::corrupt("write script returned no version"))
    }

    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError> {
        let key = self.state_key(identity);
        let reply = within(self.op_timeout, "clear", async {
            let mut conn = self.conn.clone();
            self.scripts
                .clear
                .key(&key)
                .arg(expected_arg(expected))
                .invoke_async::<(i64, i64)>(&mut conn)
                .await
                .map_err(|e| self.map_redis("clear", e))
        })
        .await?;
        cas_outcome(reply).map(|_| ())
    }

    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError> {
        let record = ReminderRecord {
            kind: reminder.identity.kind().to_owned(),
            key: reminder.identity.key().to_owned(),
            name: reminder.name.clone(),
            partition: i64::from(reminder.partition),
            due_ms: reminder.due_ms()?,
            period_ms: reminder.period_ms()?,
        };
        let json = serde_json::to_string(&record).map_err(|e| StorageError::Encode {
            reason: e.to_string(),
        })?;
        let key = self.reminder_key(&reminder.identity, &reminder.name);
        let set = format!("{}{}", self.due_prefix(), reminder.partition);
        within(self.op_timeout, "upsert_reminder", async {
            let mut conn = self.conn.clone();
            self.scripts
                .upsert_reminder
                .key(&key)
                .key(&set)
                .arg(reminder.partition)
                .arg(record.due_ms)
                .arg(&json)
                .arg(self.due_prefix())
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| self.map_redis("upsert_reminder", e))
        })
        .await
    }

    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError> {
        let key = self.reminder_key(identity, name);
        within(self.op_timeout, "delete_reminder", async {
            let mut conn = self.conn.clone();
            self.scripts
                .delete_reminder
                .key(&key)
                .arg(self.due_prefix())
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|n| n == 1)
                .map_err(|e| self.map_redis("delete_reminder", e))
        })
        .await
    }

    async fn due_reminders(
        &self,
        partition: u32,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Reminder>, StorageError> {
        let now_ms = system_time_to_ms(now)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let set = format!("{}{}", self.due_prefix(), partition);
        let rows: Vec<Vec<u8>> = within(self.op_timeout, "due_reminders", async {
            let mut conn = self.conn.clone();
            self.scripts
                .due_reminders
                .key(&set)
                .arg(now_ms)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.map_redis("due_reminders", e))
        })
        .await?;
        rows.iter()
            .map(|json| {
                let r: ReminderRecord = serde_json::from_slice(json)
                    .map_err(|e| StorageError::corrupt(format!("reminder record: {e}")))?;
                Reminder::from_stored(
                    Identity::new(r.kind, r.key),
                    r.name,
                    r.partition,
                    r.due_ms,
                    r.period_ms,
                )
            })
            .collect()
    }
}
