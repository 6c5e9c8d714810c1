//! [`SystemBuilder`]: actor system settings.

use std::sync::Arc;
use std::time::Duration;

use crate::supervision::SupervisorStrategy;
use crate::system::{ActorSystem, SystemConfig, SystemInner};

/// Builds an [`ActorSystem`] with non-default settings.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use granary_core::ActorSystem;
/// let system = ActorSystem::builder()
///     .ask_timeout(Duration::from_secs(1))
///     .shutdown_timeout(Duration::from_secs(2))
///     .build();
/// # let _ = system;
/// # }
/// ```
#[derive(Default)]
pub struct SystemBuilder {
    config: SystemConfig,
    runtime: Option<tokio::runtime::Handle>,
}

impl SystemBuilder {
    /// The timeout of `ask` (default 5 s).
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.config.ask_timeout = timeout;
        self
    }

    /// How long `shutdown` waits before aborting actors that did not stop
    /// (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// The strategy that supervises top-level actors (default: one-for-one,
    /// restart, at most 10 restarts in 10 s). Escalation at the top stops the actor.
    pub fn root_strategy(mut self, strategy: SupervisorStrategy) -> Self {
        self.config.root_strategy = strategy;
        self
    }

    /// How many events a slow subscriber may fall behind before it lags
    /// (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity;
        self
    }

    /// Run actors on this runtime instead of the current one.
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the system.
    ///
    /// # Panics
    /// When no runtime was given and this is called outside a tokio runtime.
    pub fn build(self) -> ActorSystem {
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle,
                Err(_) => panic!(
                    "ActorSystem must be built inside a tokio runtime \
                     (or given one with SystemBuilder::runtime)"
                ),
            },
        };
        ActorSystem {
            inner: Arc::new(SystemInner::new(self.config, runtime)),
        }
    }
}
