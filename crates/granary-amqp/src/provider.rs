//! Membership through the broker: the cluster's fanout exchange, bound to every node's
//! queue, is the "single queue ... subscribed to by all nodes" of seed 002 §3.6.

use std::net::SocketAddr;

use async_trait::async_trait;
use granary_cluster::provider::MembershipProvider;
use granary_cluster::{Member, ProviderError};

use crate::{AmqpError, AmqpLink};

/// A [`MembershipProvider`] over an [`AmqpLink`]: `discover` asks the members on the
/// membership exchange to announce themselves and returns those heard
/// ([`AmqpLink::discover`]); `register` announces this node (the cluster calls it when
/// the node is Up and every `provider_refresh_interval`); `unregister` says it left.
/// Gossip, failure detection and downing then run over the link's connections as over
/// TCP.
///
/// ```no_run
/// // no_run: needs a broker; the integration tests run the same thing.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use granary_amqp::{AmqpConfig, AmqpLink, AmqpProvider};
/// use granary_cluster::provider::MembershipProvider;
///
/// let link = AmqpLink::connect(AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "c"))
///     .await?;
/// let provider: Arc<dyn MembershipProvider> = Arc::new(AmqpProvider::new(&link));
/// let contacts = provider.discover().await?;
/// # let _ = contacts;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AmqpProvider {
    link: AmqpLink,
}

impl AmqpProvider {
    /// Finds members through `link`'s broker.
    pub fn new(link: &AmqpLink) -> Self {
        Self { link: link.clone() }
    }
}

fn provider_error(e: AmqpError) -> ProviderError {
    ProviderError::Broker(e.to_string())
}

#[async_trait]
impl MembershipProvider for AmqpProvider {
    async fn discover(&self) -> Result<Vec<SocketAddr>, ProviderError> {
        self.link.discover().await.map_err(provider_error)
    }

    async fn register(&self, _member: &Member) -> Result<(), ProviderError> {
        self.link.announce().await.map_err(provider_error)
    }

    async fn unregister(&self, _member: &Member) -> Result<(), ProviderError> {
        self.link.leave().await.map_err(provider_error)
    }
}
