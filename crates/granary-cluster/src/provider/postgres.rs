//! An Orleans-style membership table in PostgreSQL: each node upserts its own row,
//! refreshes the heartbeat column, and a starting node contacts the rows that are live
//! and fresh. Gossip stays the source of truth for status; the table only answers
//! "whom do I contact" and shows operators who is there.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};

use super::MembershipProvider;
use crate::error::ProviderError;
use crate::membership::{Member, MemberStatus};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS granary_membership (
    cluster     TEXT        NOT NULL,
    address     TEXT        NOT NULL,
    incarnation BIGINT      NOT NULL,
    status      TEXT        NOT NULL,
    roles       TEXT        NOT NULL DEFAULT '',
    heartbeat   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, address)
)";

/// Membership through a PostgreSQL table shared by all nodes of all clusters (rows are
/// keyed by cluster name).
pub struct PostgresProvider {
    client: Client,
    cluster: String,
    ttl: Duration,
}

impl PostgresProvider {
    /// Connects (e.g. `host=127.0.0.1 user=postgres dbname=test`), creates the table if
    /// needed, and scopes rows to `cluster`. Rows whose heartbeat is older than `ttl` are
    /// not offered as contacts.
    pub async fn connect(
        config: &str,
        cluster: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self, ProviderError> {
        let (client, connection) = tokio_postgres::connect(config, NoTls).await?;
        // The connection future does the socket I/O; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres membership connection ended");
            }
        });
        if let Err(error) = client.batch_execute(CREATE).await {
            // Two nodes creating the table at once can collide in the catalog; the
            // table exists afterwards either way.
            let exists: Option<String> = client
                .query_one("SELECT to_regclass('granary_membership')::text", &[])
                .await?
                .get(0);
            if exists.is_none() {
                return Err(error.into());
            }
        }
        Ok(Self {
            client,
            cluster: cluster.into(),
            ttl,
        })
    }

    /// Every row of this cluster as (address, incarnation, status), for operators and tests.
    pub async fn rows(&self) -> Result<Vec<(SocketAddr, u64, String)>, ProviderError> {
        let rows = self
            .client
            .query(
                "SELECT address, incarnation, status FROM granary_membership
                 WHERE cluster = $1 ORDER BY address",
                &[&self.cluster],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let addr: String = r.try_get(0)?;
                let inc: i64 = r.try_get(1)?;
                Ok((parse_addr(&addr)?, inc as u64, r.try_get(2)?))
            })
            .collect()
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, ProviderError> {
    s.parse()
        .map_err(|e: std::net::AddrParseError| ProviderError::Invalid {
            value: s.to_string(),
            reason: e.to_string(),
        })
}

fn status_name(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Joining => "Joining",
        MemberStatus::Up => "Up",
        MemberStatus::Leaving => "Leaving",
        MemberStatus::Exiting => "Exiting",
        MemberStatus::Down => "Down",
        MemberStatus::Removed => "Removed",
    }
}

#[async_trait]
impl MembershipProvider for PostgresProvider {
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError> {
        let rows = self
            .client
            .query(
                "SELECT address FROM granary_membership
                 WHERE cluster = $1 AND status IN ('Joining', 'Up')
                   AND heartbeat > now() - make_interval(secs => $2)
                 ORDER BY address",
                &[&self.cluster, &self.ttl.as_secs_f64()],
            )
            .await?;
        rows.iter().map(|r| parse_addr(r.try_get(0)?)).collect()
    }

    async fn register(&self, member: &Member) -> Result<(), ProviderError> {
        let roles: Vec<&str> = member.roles.iter().map(String::as_str).collect();
        self.client
            .execute(
                "INSERT INTO granary_membership (cluster, address, incarnation, status, roles, heartbeat)
                 VALUES ($1, $2, $3, $4, $5, now())
                 ON CONFLICT (cluster, address) DO UPDATE
                   SET incarnation = EXCLUDED.incarnation, status = EXCLUDED.status,
                       roles = EXCLUDED.roles, heartbeat = now()
                   WHERE granary_membership.incarnation <= EXCLUDED.incarnation",
                &[
                    &self.cluster,
                    &member.id.addr.to_string(),
                    &(member.id.incarnation as i64),
                    &status_name(member.status),
                    &roles.join(","),
                ],
            )
            .await?;
        Ok(())
    }

    async fn unregister(&self, member: &Member) -> Result<(), ProviderError> {
        self.client
            .execute(
                "DELETE FROM granary_membership
                 WHERE cluster = $1 AND address = $2 AND incarnation = $3",
                &[
                    &self.cluster,
                    &member.id.addr.to_string(),
                    &(member.id.incarnation as i64),
                ],
            )
            .await?;
        Ok(())
    }
}
