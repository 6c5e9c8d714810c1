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
//!   `docs/upgrade.md`). A [`Link::Broker`] carries the same connections through a
//!   message broker ([`BrokerLink`], implemented by `granary-amqp`) instead of TCP.
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
mod waiters;
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
    Acceptance, ActorRefRemoteExt, ContractActorRef, Delivery, Door, DoorCredit, Exposure, Opened,
    Refused, RemoteNode, RemoteRef, RemoteSetupError, Replier,
};
pub use tls::TlsConfig;
pub use transport::{
    BrokerConnection, BrokerLink, ChannelConfig, InboundHandler, Link, LinkFuture, PeerEvent,
    QueueDepth, Router, SendOptions, Stall, Transport, TransportConfig, TransportStats, MAX_HOPS,
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

    /// Decode `input` as a versioned message body from a peer, as a node decodes a
    /// frame's body: the first byte picks one of a few registered types (a struct with an
    /// added optional field at contract version 3, an enum with a fallback variant, bytes,
    /// a nested struct), the rest is the body. It ends in the type or a typed
    /// [`CodecError`](crate::CodecError) (malformed, too new, too old), never a panic.
    pub fn versioned_body(input: &[u8]) -> Result<(), crate::CodecError> {
        let Some((&pick, body)) = input.split_first() else {
            return Ok(());
        };
        let names = versioned::NAMES;
        let name = names[usize::from(pick) % names.len()];
        versioned::registry()
            .decode(crate::versioned_tag(name), body)
            .map(|_| ())
    }

    /// Inputs of [`versioned_body`]: one valid body of each type, and the struct's body
    /// with a contract version too new (9) and too old (1); the fuzz target's seeds.
    pub fn versioned_body_seeds() -> Vec<Vec<u8>> {
        let registry = versioned::registry();
        let encode = |pick: u8, msg: &dyn std::any::Any| {
            let (_, body) = registry
                .encode_as(msg, crate::Encoding::Versioned)
                .expect("the fuzz types encode");
            let mut input = vec![pick];
            input.extend_from_slice(&body);
            input
        };
        let put = encode(
            0,
            &versioned::Put {
                key: "k".into(),
                value: 7,
                ttl: Some(30),
            },
        );
        let mut seeds = vec![
            put.clone(),
            encode(1, &versioned::Op::Add(3)),
            encode(1, &versioned::Op::Reset),
            encode(2, &versioned::Blob(vec![1, 2, 3, 255])),
            encode(
                3,
                &versioned::Nested {
                    puts: vec![versioned::Put {
                        key: String::new(),
                        value: u64::MAX,
                        ttl: None,
                    }],
                    op: Some(versioned::Op::Reset),
                },
            ),
        ];
        for version in [9, 1] {
            let mut other = put.clone();
            other[1] = version; // the contract version leads the body
            seeds.push(other);
        }
        seeds
    }

    /// The types [`versioned_body`] decodes.
    mod versioned {
        use std::sync::OnceLock;

        use serde::{Deserialize, Serialize};

        use crate::{MessageRegistration, Registry};

        /// Their wire names, in the order the first input byte picks them.
        pub(super) const NAMES: [&str; 4] = ["fuzz.Put", "fuzz.Op", "fuzz.Blob", "fuzz.Nested"];

        #[derive(Serialize, Deserialize)]
        pub(super) struct Put {
            pub(super) key: String,
            pub(super) value: u64,
            #[serde(default)]
            pub(super) ttl: Option<u64>,
        }

        #[derive(Serialize, Deserialize)]
        pub(super) enum Op {
            Add(u64),
            Reset,
            #[serde(other)]
            Unknown,
        }

        #[derive(Serialize, Deserialize)]
        pub(super) struct Blob(pub(super) Vec<u8>);

        #[derive(Serialize, Deserialize)]
        pub(super) struct Nested {
            pub(super) puts: Vec<Put>,
            pub(super) op: Option<Op>,
        }

        pub(super) fn registry() -> &'static Registry {
            static REGISTRY: OnceLock<Registry> = OnceLock::new();
            REGISTRY.get_or_init(|| {
                Registry::builder()
                    .with(MessageRegistration::new::<Put>(NAMES[0]).with_version(3))
                    .with(MessageRegistration::new::<Op>(NAMES[1]))
                    .with(MessageRegistration::new::<Blob>(NAMES[2]))
                    .with(MessageRegistration::new::<Nested>(NAMES[3]))
                    .build()
                    .expect("the fuzz types do not conflict")
            })
        }
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
