//! `postgres://…`: state in PostgreSQL, for clusters.
//!
//! A version column carries the ETag: `UPDATE … WHERE version = $expected
//! RETURNING version` is the compare-and-set, so concurrent writers are ordered by
//! PostgreSQL's row locks and exactly one of them wins. Connections come from a
//! `deadpool-postgres` pool whose create and wait timeouts give "unreachable" and
//! "overloaded" as typed errors instead of hangs.

mod sql;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::tokio_postgres::types::ToSql;
use deadpool_postgres::tokio_postgres::{self, NoTls, Row};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};

use self::sql::Sql;
use crate::options::within;
use crate::reminder::system_time_to_ms;
use crate::store_url::StoreUrl;
use crate::{Identity, Reminder, StateStore, StorageError, StoreOptions, Stored, UrlPart, Version};

/// The PostgreSQL store. Tables `<namespace>_state` and `<namespace>_reminders` are
/// created on first use (by [`open`](crate::open)) and by [`StateStore::migrate`].
///
/// ```no_run
/// # // no_run: needs a PostgreSQL server.
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{PostgresStore, StateStore, StoreOptions};
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test", StoreOptions::default()).await?;
/// store.migrate().await?; // already done by connect; idempotent
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    sql: Sql,
    endpoint: String,
    op_timeout: Duration,
    connect_timeout: Duration,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/db`)
    /// and creates the schema if missing.
    ///
    /// The user defaults to `postgres` and the database to the user's name. Query
    /// parameters: `sslmode=disable|prefer` (TLS is not built in) and
    /// `application_name`; anything else is [`StorageError::InvalidUrl`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<PostgresStore, StorageError> {
        options.validate()?;
        match StoreUrl::parse(url)? {
            StoreUrl::Postgres(url) => Self::connect_url(&url, options).await,
            _ => Err(StorageError::url(UrlPart::Scheme, "expected postgres://")),
        }
    }

    pub(crate) async fn connect_url(
        url: &url::Url,
        options: StoreOptions,
    ) -> Result<PostgresStore, StorageError> {
        let config = pg_config(url, &options)?;
        let endpoint = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port().unwrap_or(5432)
        );
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.op_timeout()))
            .create_timeout(Some(options.connect_timeout()))
            .recycle_timeout(Some(options.connect_timeout()))
            .build()
            .map_err(|e| StorageError::unavailable(format!("building the connection pool: {e}")))?;
        let store = PostgresStore {
            pool,
            sql: Sql::new(options.namespace()),
            endpoint,
            op_timeout: options.op_timeout(),
            connect_timeout: options.connect_timeout(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A pooled connection, with pool errors mapped to the store's kinds.
    async fn client(&self, operation: &'static str) -> Result<Object, StorageError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => StorageError::Timeout {
                operation,
                after: self.op_timeout,
            },
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
                StorageError::unavailable(format!(
                    "PostgreSQL at {} did not accept a connection within {:?}",
                    self.endpoint, self.connect_timeout
                ))
            }
            PoolError::Backend(e) => self.map_pg(e),
            other => StorageError::unavailable(format!("PostgreSQL pool: {other}")),
        })
    }

    /// Runs the cached statement `sql`, returning at most one row.
    async fn query_opt(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StorageError> {
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.map_pg(e))?;
        client
            .query_opt(&stmt, params)
            .await
            .map_err(|e| self.map_pg(e))
    }

    /// Runs the cached statement `sql`, returning every row.
    async fn query(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.map_pg(e))?;
        client
            .query(&stmt, params)
            .await
            .map_err(|e| self.map_pg(e))
    }

    /// Runs the cached statement `sql`, returning the number of rows it changed.
    async fn execute(
        &self,
        client: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.map_pg(e))?;
        client
            .execute(&stmt, params)
            .await
            .map_err(|e| self.map_pg(e))
    }

    /// The live version of `identity`, for the `current` of a conflict.
    async fn live_version(
        &self,
        client: &Object,
        identity: &Identity,
    ) -> Result<Option<Version>, StorageError> {
        let row = self
            .query_opt(
                client,
                &self.sql.current,
                &[&identity.kind(), &identity.key()],
            )
            .await?;
        row.map(|r| version_of(&r)).transpose()
    }

    /// Maps a PostgreSQL error by its SQLSTATE class.
    fn map_pg(&self, e: tokio_postgres::Error) -> StorageError {
        let Some(db) = e.as_db_error() else {
            // The driver's own message is generic ("error connecting to server");
            // the cause (connection refused, timed out, ...) is in the source chain.
            let mut text = format!("PostgreSQL at {}: {e}", self.endpoint);
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            return StorageError::unavailable(text);
        };
        let code = db.code().code();
        let text = format!("PostgreSQL at {} ({code}): {}", self.endpoint, db.message());
        match code {
            "XX001" | "XX002" => StorageError::corrupt(text),
            c if c.starts_with("22") => StorageError::InvalidInput {
                what: "value",
                reason: text,
            },
            _ => StorageError::unavailable(text),
        }
    }
}

/// Builds the driver's config from a checked URL.
fn pg_config(
    url: &url::Url,
    options: &StoreOptions,
) -> Result<tokio_postgres::Config, StorageError> {
    let decode = |part: UrlPart, s: &str| {
        percent_decode(s).ok_or_else(|| {
            StorageError::url(part, format!("{s:?} is not valid percent-encoded UTF-8"))
        })
    };
    let mut config = tokio_postgres::Config::new();
    match url.host() {
        Some(url::Host::Domain(d)) => config.host(d),
        Some(url::Host::Ipv4(ip)) => config.host(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => config.host(ip.to_string()),
        None => return Err(StorageError::url(UrlPart::Host, "no host")),
    };
    config.port(url.port().unwrap_or(5432));
    let user = if url.username().is_empty() {
        "postgres".to_owned()
    } else {
        decode(UrlPart::Credentials, url.username())?
    };
    config.user(&user);
    if let Some(password) = url.password() {
        config.password(decode(UrlPart::Credentials, password)?);
    }
    let db = url.path().trim_start_matches('/');
    if db.contains('/') {
        return Err(StorageError::url(
            UrlPart::Path,
            format!("{db:?} is not a database name"),
        ));
    }
    config.dbname(if db.is_empty() {
        user.clone()
    } else {
        decode(UrlPart::Path, db)?
    });
    for (key, value) in url.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("sslmode", "disable" | "prefer") => {}
            ("application_name", name) => {
                config.application_name(name);
            }
            (key, value) => {
                return Err(StorageError::url(
                    UrlPart::Query,
                    format!("unsupported parameter {key}={value} (TLS is not built in)"),
                ))
            }
        }
    }
    config.connect_timeout(options.connect_timeout());
    Ok(config)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn version_of(row: &tokio_postgres::Row) -> Result<Version, StorageError> {
    let raw: i64 = row
        .try_get(0)
        .map_err(|e| StorageError::corrupt(format!("version column: {e}")))?;
    Version::from_stored(raw)
}

#[async_trait]
impl StateStore for PostgresStore {
    fn provider(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        within(self.op_timeout, "migrate", async {
            let mut client = self.client("migrate").await?;
            let tx = client.transaction().await.map_err(|e| self.map_pg(e))?;
            // CREATE … IF NOT EXISTS races with itself in PostgreSQL; a lock per
            // namespace lets concurrent nodes migrate one after another.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&self.sql.namespace],
            )
            .await
            .map_err(|e| self.map_pg(e))?;
            tx.batch_execute(&self.sql.create)
                .await
                .map_err(|e| self.map_pg(e))?;
            tx.commit().await.map_err(|e| self.map_pg(e))
        })
        .await
    }

    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError> {
        within(self.op_timeout, "read", async {
            let client = self.client("read").await?;
            let row = self
                .query_opt(
                    &client,
                    &self.sql.read,
                    &[&identity.kind(), &identity.key()],
                )
                .await?;
            row.map(|r| {
                let data: Vec<u8> = r
                    .try_get(1)
                    .map_err(|e| StorageError::corrupt(format!("data column: {e}")))?;
                Ok(Stored {
                    data: Bytes::from(data),
                    version: version_of(&r)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        within(self.op_timeout, "write", async {
            let client = self.client("write").await?;
            let data: &[u8] = &data;
            let (kind, key) = (identity.kind(), identity.key());
            let row = match expected {
                None => {
                    self.query_opt(&client, &self.sql.insert, &[&kind, &key, &data])
                        .await?
                }
                Some(v) => {
                    let v = v.to_stored();
                    self.query_opt(&client, &self.sql.update, &[&kind, &key, &data, &v])
                        .await?
                }
            };
            match row {
                Some(row) => version_of(&row),
                None => Err(StorageError::Conflict {
                    current: self.live_version(&client, identity).await?,
                }),
            }
        })
        .await
    }

    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError> {
        within(self.op_timeout, "clear", async {
            let client = self.client("clear").await?;
            let Some(v) = expected else {
                return match self.live_version(&client, identity).await? {
                    None => Ok(()),
                    current => Err(StorageError::Conflict { current }),
                };
            };
            let n = self
                .execute(
                    &client,
                    &self.sql.clear,
                    &[&identity.kind(), &identity.key(), &v.to_stored()],
                )
                .await?;
            if n == 1 {
                Ok(())
            } else {
                Err(StorageError::Conflict {
                    current: self.live_version(&client, identity).await?,
                })
            }
        })
        .await
    }

    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError> {
        let due_ms = reminder.due_ms()?;
        let period_ms = reminder.period_ms()?;
        within(self.op_timeout, "upsert_reminder", async {
            let client = self.client("upsert_reminder").await?;
            self.execute(
                &client,
                &self.sql.upsert_reminder,
                &[
                    &reminder.identity.kind(),
                    &reminder.identity.key(),
                    &reminder.name,
                    &i64::from(reminder.partition),
                    &due_ms,
                    &period_ms,
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError> {
        within(self.op_timeout, "delete_reminder", async {
            let client = self.client("delete_reminder").await?;
            let n = self
                .execute(
                    &client,
                    &self.sql.delete_reminder,
                    &[&identity.kind(), &identity.key(), &name],
                )
                .await?;
            Ok(n > 0)
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        within(self.op_timeout, "due_reminders", async {
            let client = self.client("due_reminders").await?;
            let rows = self
                .query(
                    &client,
                    &self.sql.due_reminders,
                    &[&i64::from(partition), &now_ms, &limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let get = |e: tokio_postgres::Error| {
                        StorageError::corrupt(format!("reminder row: {e}"))
                    };
                    Reminder::from_stored(
                        Identity::new(
                            r.try_get::<_, String>(0).map_err(get)?,
                            r.try_get::<_, String>(1).map_err(get)?,
                        ),
                        r.try_get(2).map_err(get)?,
                        r.try_get(3).map_err(get)?,
                        r.try_get(4).map_err(get)?,
                        r.try_get(5).map_err(get)?,
                    )
                })
                .collect()
        })
        .await
    }
}
