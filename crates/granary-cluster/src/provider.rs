//! Membership providers: where a starting node finds the cluster.
//!
//! A provider answers one question, "whom should I contact to join?", and may record the
//! node while it runs (the PostgreSQL table does). Gossip does everything after that, so
//! every provider works with the same protocol.
//!
//! - [`SeedsProvider`]: a few well-known seed addresses (the default, zero set-up);
//! - [`StaticProvider`]: the full, fixed list of members;
//! - `DnsProvider`: A or SRV records, e.g. of a Kubernetes headless Service (feature
//!   `dns`);
//! - `PostgresProvider`: an Orleans-style membership table (feature `postgres`).

#[cfg(feature = "dns")]
mod dns;
#[cfg(feature = "postgres")]
mod postgres;

use std::net::SocketAddr;

use async_trait::async_trait;

#[cfg(feature = "dns")]
pub use dns::{DnsProvider, DnsRecordKind};
#[cfg(feature = "postgres")]
pub use postgres::PostgresProvider;

use crate::error::ProviderError;
use crate::membership::Member;

/// Tells a node whom to contact, and optionally records the node while it runs.
#[async_trait]
pub trait MembershipProvider: Send + Sync + 'static {
    /// Addresses of nodes to ask to join. May include the caller's own address.
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError>;

    /// Records (or refreshes) the local node's row; called when it becomes Up and then
    /// every `provider_refresh_interval`.
    async fn register(&self, _member: &Member) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Removes the local node's record; called after it left or stopped.
    async fn unregister(&self, _member: &Member) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Seed nodes: a few addresses, pinged until one answers.
///
/// ```
/// use granary_cluster::provider::{MembershipProvider, SeedsProvider};
/// # tokio_test_block_on(async {
/// let p = SeedsProvider::new(vec!["127.0.0.1:7000".parse().unwrap()]);
/// assert_eq!(p.discover().await.unwrap().len(), 1);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct SeedsProvider {
    seeds: Vec<SocketAddr>,
}

impl SeedsProvider {
    /// Seeds to contact; an empty list forms a new cluster at once.
    pub fn new(seeds: Vec<SocketAddr>) -> Self {
        Self { seeds }
    }
}

#[async_trait]
impl MembershipProvider for SeedsProvider {
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError> {
        Ok(self.seeds.clone())
    }
}

/// A fixed list of every member. A starting node contacts all of them; the first one
/// that is Up lets it in. Unlike seeds, the list is meant to be complete, so operators
/// can reason about the cluster's size; membership still converges through gossip.
#[derive(Clone, Debug, Default)]
pub struct StaticProvider {
    members: Vec<SocketAddr>,
}

impl StaticProvider {
    /// The complete member list.
    pub fn new(members: Vec<SocketAddr>) -> Self {
        Self { members }
    }
}

#[async_trait]
impl MembershipProvider for StaticProvider {
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError> {
        Ok(self.members.clone())
    }
}
