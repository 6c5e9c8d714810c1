//! [`Props`]: how to build (and rebuild) an actor, and its mailbox.

use crate::actor::Actor;
use crate::mailbox::MailboxConfig;

/// Builds a fresh instance on restart.
pub(crate) type Factory<A> = Box<dyn Fn() -> A + Send + Sync>;

/// The recipe for spawning an actor: the first instance, an optional factory for
/// restarts, and the mailbox configuration.
///
/// Restart semantics: an actor spawned with a factory ([`Props::from_factory`],
/// `spawn_with`) is restarted with a **fresh instance** from the factory. An actor
/// spawned from a value ([`Props::new`], `spawn`) has no way to be rebuilt, so a
/// restart **reuses the same instance**: [`Actor::restarting`] runs on it (reset
/// your state there if a failure may leave it inconsistent), then
/// [`Actor::started`] runs again.
///
/// ```
/// use granary_core::{MailboxConfig, Props};
/// struct Worker { jobs: u32 }
/// impl granary_core::Actor for Worker {}
/// let props = Props::from_factory(|| Worker { jobs: 0 }).with_mailbox(MailboxConfig::bounded(64));
/// # let _ = props;
/// ```
pub struct Props<A: Actor> {
    pub(crate) actor: A,
    pub(crate) factory: Option<Factory<A>>,
    pub(crate) mailbox: MailboxConfig,
}

impl<A: Actor> Props<A> {
    /// Spawn this instance; restarts reuse it.
    pub fn new(actor: A) -> Self {
        Self {
            actor,
            factory: None,
            mailbox: MailboxConfig::default(),
        }
    }

    /// Build the first instance now (on the caller's thread) and a fresh one from
    /// `factory` on each restart.
    pub fn from_factory<F>(factory: F) -> Self
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        Self {
            actor: factory(),
            factory: Some(Box::new(factory)),
            mailbox: MailboxConfig::default(),
        }
    }

    /// Use this mailbox configuration.
    pub fn with_mailbox(self, mailbox: MailboxConfig) -> Self {
        Self { mailbox, ..self }
    }
}
