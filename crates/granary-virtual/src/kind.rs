//! [`Kind`]: how a node hosts one virtual actor kind (message types, placement,
//! idle timeout, store).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use granary_core::Message;
use granary_remote::Registry;
use granary_storage::{Identity, StateStore};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use crate::activation;
use crate::actor::{VirtualActor, VirtualHandler};
use crate::contract::{same_name, FulfilledBy};
use crate::door::{door_prefix, KindDoor};
use crate::error::VirtualError;
use crate::key::Key;
use crate::placement::Placement;
use crate::reentrant::{self, ReentrantHandler, ShareFn};
use crate::reminder::{self, FireFn, ReminderFired};
use crate::runtime::{LocalActivation, Runtime};
use crate::tracked::ActivationDoor;
use crate::tracked::{Dispatch, Tracked};

/// Idle time after which an activation is passivated unless configured (Orleans'
/// default).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Per-kind settings.
#[derive(Clone, Debug)]
pub struct KindConfig {
    /// Where new activations go.
    pub placement: Placement,
    /// Idle time before passivation (default 15 minutes; seconds or less are fine).
    pub idle_timeout: Duration,
    /// A store URL for this kind's state instead of the node's store.
    pub store_url: Option<String>,
    /// `Some(pool)`: a stateless worker kind, with up to `pool` activations per
    /// identity on each node, not in the directory.
    pub stateless_workers: Option<usize>,
}

impl Default for KindConfig {
    fn default() -> Self {
        Self {
            placement: Placement::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            store_url: None,
            stateless_workers: None,
        }
    }
}

/// A kind a node hosts: list the message types it accepts with [`Kind::handles`].
///
/// ```
/// use std::time::Duration;
/// use granary_virtual::{Kind, Placement};
/// # struct Counter;
/// # impl granary_virtual::VirtualActor for Counter {
/// #     const KIND: &'static str = "Counter"; type Key = String; type State = ();
/// #     fn activate(_: &String) -> Self { Counter }
/// # }
/// let kind = Kind::<Counter>::new()
///     .placement(Placement::RoundRobin)
///     .idle_timeout(Duration::from_secs(30));
/// assert_eq!(kind.config().idle_timeout, Duration::from_secs(30));
/// ```
pub struct Kind<A: VirtualActor> {
    config: KindConfig,
    dispatch: Dispatch<A>,
    fire: Option<FireFn>,
    share: Option<ShareFn<A>>,
}

impl<A: VirtualActor> Default for Kind<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: VirtualActor> Kind<A> {
    /// A kind with default settings and no message types yet.
    pub fn new() -> Self {
        Self {
            config: KindConfig::default(),
            dispatch: Dispatch::default(),
            fire: None,
            share: None,
        }
    }

    /// Enables durable reminders for this kind: due reminders registered with
    /// [`crate::VirtualContext::register_reminder`] are delivered as
    /// [`ReminderFired`] messages, activating the actor if needed.
    pub fn reminders(mut self) -> Self
    where
        A: VirtualHandler<ReminderFired>,
    {
        self = self.handles::<ReminderFired>();
        self.fire = Some(reminder::fire_fn::<A>());
        self
    }

    /// Accepts `M` (from this node and over the wire). `M` and `M::Reply` must be
    /// registered with `granary_remote::register_message!`. A type already accepted
    /// (by an earlier `handles`, [`Kind::reentrant`] or [`Kind::fulfilling`]) is left
    /// as it is.
    pub fn handles<M>(mut self) -> Self
    where
        A: VirtualHandler<M>,
        M: Message + Serialize + DeserializeOwned,
        M::Reply: Serialize + DeserializeOwned,
    {
        if self.dispatch.has::<M>() {
            return self;
        }
        self.dispatch.add::<M>();
        self
    }

    /// Accepts every message of the contract `C`, and proves at compile time that
    /// the actor fulfils it: `C: FulfilledBy<A>` holds only when `A` has the
    /// contract's key type and a handler of each of its messages (the error names the
    /// missing one), and a contract whose name is not `A::KIND` fails the build
    /// (a `const` assertion, evaluated when the program is built; `cargo check` alone
    /// does not evaluate it). `#[virtual_actor(contract = C)]` calls it in the
    /// generated `Hosted::kind()`.
    ///
    /// ```
    /// # use granary_core::Message;
    /// # use granary_virtual::{contract, Kind, VirtualActor, VirtualContext, VirtualHandler};
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Ping;
    /// # impl Message for Ping { type Reply = (); }
    /// # granary_remote::register_message!(Ping, "doc.fulfilling.Ping");
    /// contract! {
    ///     /// Answers pings.
    ///     pub contract PingApi { kind = "doc.fulfilling.Pinger"; key = i64; accepts = [Ping]; }
    /// }
    /// struct Pinger;
    /// impl VirtualActor for Pinger {
    ///     const KIND: &'static str = "doc.fulfilling.Pinger";
    ///     type Key = i64;
    ///     type State = ();
    ///     fn activate(_: &i64) -> Self { Pinger }
    /// }
    /// impl VirtualHandler<Ping> for Pinger {
    ///     async fn handle(&mut self, _: Ping, _: &mut VirtualContext<'_, Self>) {}
    /// }
    /// let kind = Kind::<Pinger>::new().fulfilling::<PingApi>();
    /// # let _ = kind;
    /// ```
    ///
    /// A kind named otherwise than its contract does not build (error E0080, the
    /// failed assertion):
    ///
    /// ```compile_fail,E0080
    /// # use granary_core::Message;
    /// # use granary_virtual::{contract, Kind, VirtualActor, VirtualContext, VirtualHandler};
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Ping;
    /// # impl Message for Ping { type Reply = (); }
    /// # contract! {
    /// #     pub contract PingApi { kind = "doc.fulfilling.Pinger"; key = i64; accepts = [Ping]; }
    /// # }
    /// struct Pinger;
    /// impl VirtualActor for Pinger {
    ///     const KIND: &'static str = "doc.fulfilling.Other";
    ///     // ...
    /// #   type Key = i64;
    /// #   type State = ();
    /// #   fn activate(_: &i64) -> Self { Pinger }
    /// }
    /// # impl VirtualHandler<Ping> for Pinger {
    /// #     async fn handle(&mut self, _: Ping, _: &mut VirtualContext<'_, Self>) {}
    /// # }
    /// let kind = Kind::<Pinger>::new().fulfilling::<PingApi>();
    /// ```
    pub fn fulfilling<C: FulfilledBy<A>>(self) -> Self {
        const {
            assert!(
                same_name(C::NAME, A::KIND),
                "the contract's name (`Contract::NAME`) differs from the kind's (`VirtualActor::KIND`)"
            )
        };
        C::host(self)
    }

    /// Accepts `M` as a reentrant message type (Orleans' `[Reentrant]`): its
    /// handler ([`ReentrantHandler`]) runs on `&self` beside other reentrant handlers
    /// of the same activation, so they interleave wherever one awaits. Handlers of
    /// types registered with [`Kind::handles`] still run one at a time and never
    /// beside a reentrant one. Without any `reentrant` type (the default) an
    /// activation handles one message at a time, in arrival order.
    ///
    /// ```
    /// # use granary_core::Message;
    /// # use granary_virtual::{Kind, ReentrantContext, ReentrantHandler, VirtualActor};
    /// # struct Chat;
    /// # impl VirtualActor for Chat {
    /// #     const KIND: &'static str = "Chat"; type Key = String; type State = ();
    /// #     fn activate(_: &String) -> Self { Chat }
    /// # }
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// # struct Poll;
    /// # impl Message for Poll { type Reply = (); }
    /// # granary_remote::register_message!(Poll, "doc.kind.Poll");
    /// # impl ReentrantHandler<Poll> for Chat {
    /// #     async fn handle(&self, _: Poll, _: &ReentrantContext<Self>) {}
    /// # }
    /// let kind = Kind::<Chat>::new().reentrant::<Poll>();
    /// # let _ = kind;
    /// ```
    pub fn reentrant<M>(mut self) -> Self
    where
        A: ReentrantHandler<M>,
        M: Message + Serialize + DeserializeOwned,
        M::Reply: Serialize + DeserializeOwned,
    {
        self.dispatch.add_reentrant::<M>();
        self.share = Some(reentrant::share::<A>);
        self
    }

    /// Sets the placement strategy.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.config.placement = placement;
        self
    }

    /// Sets the idle timeout before passivation.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.config.idle_timeout = idle;
        self
    }

    /// Keeps this kind's state in the store at `url` instead of the node's store.
    pub fn store(mut self, url: impl Into<String>) -> Self {
        self.config.store_url = Some(url.into());
        self
    }

    /// Makes this a stateless worker kind: each node hosting it runs up to `pool`
    /// activations per identity (a new one only when all are busy) and serves its
    /// own calls locally; nothing is recorded in the directory, so several
    /// activations per identity are alive at once. Such kinds should not write state.
    pub fn stateless_worker(mut self, pool: usize) -> Self {
        self.config.stateless_workers = Some(pool.max(1));
        self
    }

    /// The settings.
    pub fn config(&self) -> &KindConfig {
        &self.config
    }
}

/// A virtual actor that knows every message type it handles, so a node hosts it with
/// all of them: `Node::builder().host(Counter::kind())`.
///
/// `#[virtual_actor]` (crate `granary-macros`, re-exported by the facade) implements
/// it from the actor's handlers, so a handler can no longer be left out of the
/// [`Kind::handles`] list. By hand:
///
/// ```
/// # use granary_core::Message;
/// # use granary_virtual::{Hosted, Kind, VirtualActor, VirtualContext, VirtualHandler};
/// # struct Counter;
/// # impl VirtualActor for Counter {
/// #     const KIND: &'static str = "doc.hosted.Counter"; type Key = String; type State = ();
/// #     fn activate(_: &String) -> Self { Counter }
/// # }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Add(u64);
/// # impl Message for Add { type Reply = u64; }
/// # impl VirtualHandler<Add> for Counter {
/// #     async fn handle(&mut self, m: Add, _: &mut VirtualContext<'_, Self>) -> u64 { m.0 }
/// # }
/// impl Hosted for Counter {
///     fn kind() -> Kind<Self> {
///         Kind::new().handles::<Add>()
///     }
/// }
/// let kind = Counter::kind().idle_timeout(std::time::Duration::from_secs(30));
/// # let _ = kind;
/// ```
pub trait Hosted: VirtualActor {
    /// The kind with every message type the actor handles, and default settings
    /// (chain [`Kind`]'s setters to change them).
    fn kind() -> Kind<Self>;
}

/// A kind with its type erased, as the node keeps it.
pub(crate) trait ErasedKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn config(&self) -> &KindConfig;
    fn fire(&self) -> Option<FireFn>;
    /// Opens the kind's network door on this member before any activation, so a
    /// call sent straight to a host (`door.rs`, "`<key>#*`") finds it; an error
    /// (an unregistered message type) is kept and returned by every [`Self::start`].
    fn open(&self, runtime: &Arc<Runtime>);
    fn start(
        &self,
        runtime: Arc<Runtime>,
        identity: Identity,
        name: Arc<str>,
        store: Arc<dyn StateStore>,
    ) -> BoxFuture<'static, Result<LocalActivation, VirtualError>>;
}

pub(crate) struct KindEntry<A: VirtualActor> {
    fire: Option<FireFn>,
    share: Option<ShareFn<A>>,
    config: KindConfig,
    dispatch: Arc<Dispatch<A>>,
    /// The kind's network door on this node, opened when the member starts (a
    /// client, which hosts nothing, opens none); `Err` says why it could not be, and
    /// every activation fails with it.
    door: OnceLock<Result<(), String>>,
}

impl<A: VirtualActor> KindEntry<A> {
    /// Opens the kind's door on this node once: every activation of the kind is
    /// reached from the network through it (`door.rs`). Checks first that every
    /// accepted message type and its reply are registered for the wire.
    fn open_door(&self, runtime: &Arc<Runtime>) -> Result<(), VirtualError> {
        let opened = self.door.get_or_init(|| {
            let registry = Registry::global().map_err(|e| e.to_string())?;
            if let Some(name) = self.dispatch.unregistered(registry) {
                return Err(format!(
                    "type {name} is not registered with register_message!"
                ));
            }
            let prefix = door_prefix(A::KIND, self.config.stateless_workers.is_some());
            let door = Arc::new(KindDoor::<A>::new(runtime, &prefix));
            runtime
                .remote()
                .expose_door(&prefix, door)
                .map_err(|e| e.to_string())
        });
        opened
            .clone()
            .map_err(|e| VirtualError::Setup(format!("cannot open the door of {}: {e}", A::KIND)))
    }
}

impl<A: VirtualActor> From<Kind<A>> for KindEntry<A> {
    fn from(k: Kind<A>) -> Self {
        Self {
            fire: k.fire,
            share: k.share,
            config: k.config,
            dispatch: Arc::new(k.dispatch),
            door: OnceLock::new(),
        }
    }
}

impl<A: VirtualActor> ErasedKind for KindEntry<A> {
    fn name(&self) -> &'static str {
        A::KIND
    }

    fn config(&self) -> &KindConfig {
        &self.config
    }

    fn fire(&self) -> Option<FireFn> {
        self.fire.clone()
    }

    fn open(&self, runtime: &Arc<Runtime>) {
        // Kept in the entry: the first activation reports it.
        let _ = self.open_door(runtime);
    }

    fn start(
        &self,
        runtime: Arc<Runtime>,
        identity: Identity,
        name: Arc<str>,
        store: Arc<dyn StateStore>,
    ) -> BoxFuture<'static, Result<LocalActivation, VirtualError>> {
        let dispatch = self.dispatch.clone();
        let door = self.open_door(&runtime);
        let share = self.share;
        Box::pin(async move {
            door?;
            let key = A::Key::parse_key(identity.key())?;
            let activation::Started {
                local,
                tracker,
                shared,
            } = activation::start::<A>(
                runtime.clone(),
                key,
                identity.clone(),
                name.clone(),
                store,
                share,
            )
            .instrument(
                tracing::info_span!("granary.activate", node = %runtime.me, identity = %identity),
            )
            .await?;
            let door: Arc<dyn ActivationDoor> = Arc::new(Tracked {
                local,
                tracker: tracker.clone(),
                dispatch,
                shared,
                watches: Mutex::new(Vec::new()),
                system: runtime.system().clone(),
            });
            Ok(LocalActivation {
                name,
                tracker,
                registered_with: None,
                door,
            })
        })
    }
}
