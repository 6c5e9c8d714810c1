//! Placement: which node activates an identity the directory has no entry for.
//!
//! Only Up members that host the kind are candidates. The directory owner applies the
//! strategy of its own registration of the kind (all nodes hosting a kind should
//! register it alike); a custom strategy is a [`PlacementStrategy`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use granary_storage::Identity;
use serde::{Deserialize, Serialize};

/// What a placement strategy knows when it chooses.
#[derive(Debug, Clone)]
pub struct PlacementRequest<'a> {
    /// The identity being activated.
    pub identity: &'a Identity,
    /// Up members hosting the kind (never empty), sorted by address.
    pub candidates: &'a [SocketAddr],
    /// The node whose call caused the activation (prefer-local places there).
    pub requester: SocketAddr,
    /// The directory owner deciding (hash placement places there).
    pub owner: SocketAddr,
}

/// A user-defined placement.
///
/// ```
/// use std::net::SocketAddr;
/// use granary_virtual::{PlacementRequest, PlacementStrategy};
/// /// Always the lowest address.
/// struct First;
/// impl PlacementStrategy for First {
///     fn place(&self, req: &PlacementRequest<'_>) -> SocketAddr { req.candidates[0] }
/// }
/// ```
pub trait PlacementStrategy: Send + Sync + 'static {
    /// Picks one of `req.candidates` (anything else is replaced by a random candidate).
    fn place(&self, req: &PlacementRequest<'_>) -> SocketAddr;
}

/// The placement of one kind.
#[derive(Clone, Default)]
pub enum Placement {
    /// A random candidate (Orleans' default). A member that hosts the kind picks it
    /// itself and sends its first ask of an identity straight there; that host
    /// claims the identity at its directory owner and activates it once granted (or
    /// refuses the call if it lives elsewhere): the call and one claim, no lookup.
    #[default]
    Random,
    /// Candidates in turn, per directory owner (Proto.Actor's default).
    RoundRobin,
    /// The requesting node if it hosts the kind, else random (local affinity).
    PreferLocal,
    /// The directory owner if it hosts the kind, else random (saves a hop). A
    /// member that hosts the kind sends its first call to an identity straight to
    /// the owner, which finds or activates it there: one round trip, no lookup.
    Hash,
    /// Power of two choices: the less loaded (by live activations of the kind) of
    /// two random candidates.
    LeastLoaded,
    /// A user-defined strategy.
    Custom(Arc<dyn PlacementStrategy>),
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Random => "Random",
            Placement::RoundRobin => "RoundRobin",
            Placement::PreferLocal => "PreferLocal",
            Placement::Hash => "Hash",
            Placement::LeastLoaded => "LeastLoaded",
            Placement::Custom(_) => "Custom",
        })
    }
}

/// The placement named on the wire when the directory owner does not know the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PlacementTag {
    Random,
    RoundRobin,
    PreferLocal,
    Hash,
    LeastLoaded,
}

impl Placement {
    pub(crate) fn tag(&self) -> PlacementTag {
        match self {
            Placement::Random | Placement::Custom(_) => PlacementTag::Random,
            Placement::RoundRobin => PlacementTag::RoundRobin,
            Placement::PreferLocal => PlacementTag::PreferLocal,
            Placement::Hash => PlacementTag::Hash,
            Placement::LeastLoaded => PlacementTag::LeastLoaded,
        }
    }

    pub(crate) fn from_tag(tag: PlacementTag) -> Placement {
        match tag {
            PlacementTag::Random => Placement::Random,
            PlacementTag::RoundRobin => Placement::RoundRobin,
            PlacementTag::PreferLocal => Placement::PreferLocal,
            PlacementTag::Hash => Placement::Hash,
            PlacementTag::LeastLoaded => Placement::LeastLoaded,
        }
    }
}

thread_local! {
    /// Random placement's generator: xoshiro, seeded once per thread from the operating
    /// system (a placement needs no cryptographic generator).
    static PLACEMENT_RNG: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_os_rng());
}

pub(crate) fn random(candidates: &[SocketAddr]) -> SocketAddr {
    use rand::Rng;
    let index = PLACEMENT_RNG.with(|rng| rng.borrow_mut().random_range(0..candidates.len()));
    candidates[index]
}
