//! granary-remote: everything a message needs to cross a process boundary.
//!
//! - [`NodeId`]: a node's listen address plus an incarnation chosen at start.
//! - [`Registry`]: message types registered under stable names at link time with
//!   [`register_message!`], mapped name ↔ `TypeId` with encode/decode functions in two
//!   [`Encoding`]s (postcard; the versioned one: a contract version, then MessagePack
//!   with named fields, so fields can be added between versions of an application).
//! - [`wire`]: length-prefixed frames with a versioned header (`docs/wire.md`).
//! - [`Transport`]: TCP (optionally TLS) connections per peer, with a control channel kept
//!   apart from the data channels, P parallel data connections, affinity by (sender,
//!   recipient), user-named channels, batched vectored writes, large frames cut into
//!   chunks that small frames pass, bounded queues, heartbeats on the control channel,
//!   reconnect with backoff and restart detection; every connection starts with an
//!   authenticated handshake (cluster name, protocol version negotiated in a range so a
//!   cluster upgrades one node at a time, HMAC challenge–response; `docs/wire.md`,
//!   `docs/upgrade.md`).
//! - [`faults`]: drop probability, delays and partitions injected at run time, seeded.
//! - [`RemoteNode`]: remote actors on top of all that. [`RemoteNode::expose`] serves a
//!   local actor under a name; `ActorRef::<A>::remote(&node, addr, name)`
//!   ([`ActorRefRemoteExt`]) forges a typed ref that plugs into `granary-core`'s
//!   `RemoteTarget` hook, so `tell`/`ask`/`stop`/`watch` work as locally; [`RemoteRef`]
//!   carries a ref inside messages.
//! - Contracts ([`Contract`], [`Accepts`], [`ServedBy`]): an actor's public face apart
//!   from its code; [`RemoteNode::contract_ref`] gives a [`ContractActorRef`] that sends
//!   exactly the contract's messages, [`RemoteNode::expose_contract`] proves the actor
//!   serves them (`docs/contracts.md`).
//!
//! This crate must not know about clustering, membership, placement or virtual actors
//! (those live in `granary-cluster` and `granary-virtual`, above it). It sits on
//! `granary-core` (local actors); the layers below it never see the network.
//!
//! Well-kept crates do the infrastructure: `tokio` for I/O, `bytes` for zero-copy buffers,
//! `postcard` for system bodies and version-4 peers (compact, maintained; bincode is
//! not), `rmp-serde` for the versioned bodies (MessagePack: self-describing, so readers
//! skip unknown and default missing fields; measured against CBOR and postcard in
//! `docs/BENCHMARKS.md`), `inventory` for link-time
//! registration, `hmac`/`sha2` for the challenge–response, `rustls`/`tokio-rustls` for TLS
//! (feature `tls`, on by default),
//! `rand` for seeded fault injection.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod contract;
mod error;
pub mod faults;
mod handshake;
mod node_id;
mod random;
mod registry;
mod remote;
mod tls;
pub mod trace;
mod transport;
pub mod wire;

pub use contract::{Accepts, Contract, ServedBy};
pub use error::{
    CodecError, Conflict, FrameError, HandshakeError, RegistryError, SendError, TlsConfigError,
    TransportError,
};
pub use node_id::NodeId;
pub use registry::{
    type_tag, versioned_tag, Encoding, ErasedMessage, MessageRegistration, MessageType, Registry,
    RegistryBuilder,
};
pub use remote::{
    Acceptance, ActorRefRemoteExt, ContractActorRef, Exposure, RemoteNode, RemoteRef,
    RemoteSetupError,
};
pub use tls::TlsConfig;
pub use transport::{
    ChannelConfig, InboundHandler, PeerEvent, QueueDepth, SendOptions, Stall, Transport,
    TransportConfig, TransportStats,
};

/// Register a message type under a stable wire name, collected at link time.
///
/// The type must implement `serde::Serialize`, `serde::Deserialize` and be `Send + 'static`.
/// Conflicts (two types under one name, ...) are reported by [`Registry::build`].
/// `version = N` gives the message's contract version (default 1; see the
/// [registry](Registry#contract-versions)).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Ping;
/// granary_remote::register_message!(Ping, "example.Ping");
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Put { key: String, #[serde(default)] ttl: Option<u64> }
/// granary_remote::register_message!(Put, "example.Put", version = 2);
/// ```
#[macro_export]
macro_rules! register_message {
    ($ty:ty, $name:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::MessageRegistration::new::<$ty>($name)
        }
    };
    ($ty:ty, $name:expr, version = $version:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::MessageRegistration::new::<$ty>($name).with_version($version)
        }
    };
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod __fuzz {
    use crate::HandshakeError;

    /// Run the acceptor's side of a handshake (cluster "fuzz", secret "fuzz") against
    /// `input` as everything the dialer sends.
    pub fn handshake_accept(input: &[u8]) -> Result<(), HandshakeError> {
        crate::handshake::run_against(input, false)
    }

    /// A complete handshake Hello frame (length prefix included) naming `cluster`, of any
    /// size: what an attacker or a fuzz seed sends first.
    pub fn hello_frame(cluster: &str) -> Vec<u8> {
        crate::handshake::hello_frame(cluster)
    }

    /// Run the dialer's side of a handshake against `input` as everything the acceptor
    /// sends.
    pub fn handshake_dial(input: &[u8]) -> Result<(), HandshakeError> {
        crate::handshake::run_against(input, true)
    }

    /// The committed corpus of fuzz target `target` (`fuzz/corpus/<target>` below the
    /// workspace root `root`), one input per file, sorted by file name; what the corpus
    /// replay tests of every crate feed their decoders.
    pub fn corpus(root: &std::path::Path, target: &str) -> std::io::Result<Vec<Vec<u8>>> {
        let dir = root.join("fuzz/corpus").join(target);
        let mut files = std::fs::read_dir(&dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?;
        files.sort();
        files.iter().map(std::fs::read).collect()
    }

    /// Feeds `count` seeded mutations of `inputs` to `run`: each a random input with
    /// one to four random byte changes, truncations or random tails, the same for a
    /// given `seed` on every run. `inputs` must not be empty.
    pub fn mutations(inputs: &[Vec<u8>], seed: u64, count: usize, mut run: impl FnMut(&[u8])) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        for _ in 0..count {
            let mut data = inputs[rng.random_range(0..inputs.len())].clone();
            for _ in 0..rng.random_range(1..5) {
                match rng.random_range(0..3) {
                    0 if !data.is_empty() => {
                        let i = rng.random_range(0..data.len());
                        data[i] = rng.random();
                    }
                    1 if !data.is_empty() => data.truncate(rng.random_range(0..data.len())),
                    _ => data.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>())),
                }
            }
            run(&data);
        }
    }
}

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
