//! One registered message type and its erased encode/decode functions.

use std::any::{Any, TypeId};
use std::fmt;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::CodecError;

/// The wire tag of a stable message name: 64-bit FNV-1a of its UTF-8 bytes.
///
/// Stable across builds, platforms and Rust versions (unlike `TypeId`).
///
/// ```
/// assert_eq!(granary_remote::type_tag(""), 0xcbf2_9ce4_8422_2325);
/// ```
pub const fn type_tag(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A link-time registration, created by [`register_message!`](crate::register_message)
/// (a name chosen by hand) or by `#[derive(Message)]` for a reply type
/// ([`MessageRegistration::reply`], a name derived from the type).
pub struct MessageRegistration {
    entry: MessageType,
    origin: Origin,
}

/// Where a registration's name comes from; it decides which name a type with several
/// names is encoded under (see the [registry's rule](crate::Registry#one-type-several-names)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Origin {
    /// Chosen by hand: `register_message!`, a derive's `name`, `RegistryBuilder::register`.
    Named,
    /// Derived from the type (`std::any::type_name`): a reply type registered by a derive.
    Derived,
}

impl MessageRegistration {
    /// Register `T` under the stable `name` (a `const fn`, usable in statics).
    pub const fn new<T>(name: &'static str) -> Self
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        Self {
            entry: MessageType {
                name,
                tag: type_tag(name),
                type_id: TypeId::of::<T>,
                type_name: std::any::type_name::<T>,
                encode: encode_erased::<T>,
                decode: decode_erased::<T>,
            },
            origin: Origin::Named,
        }
    }

    /// Register `T` as a reply type under a name derived from the type alone: its
    /// `std::any::type_name` (e.g. `core::result::Result<u64, alloc::string::String>`).
    /// Every crate that registers `T` this way registers the same name, so any number
    /// of messages may share one reply type. Used by `#[derive(Message)]`.
    pub const fn reply<T>() -> Self
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let mut registration = Self::new::<T>("");
        registration.origin = Origin::Derived;
        registration
    }

    /// The entry and the origin of its name (a derived name is computed here: the
    /// type's name is not available in a `const fn`).
    pub(crate) fn entry(&self) -> (MessageType, Origin) {
        let mut entry = self.entry;
        if self.origin == Origin::Derived {
            entry.name = (entry.type_name)();
            entry.tag = type_tag(entry.name);
        }
        (entry, self.origin)
    }
}

/// A decoded, type-erased message.
pub type ErasedMessage = Box<dyn Any + Send>;

type DecodeFn = fn(&[u8]) -> Result<ErasedMessage, CodecError>;

/// A registered message type: its name, tag, Rust type and codec functions.
#[derive(Clone, Copy)]
pub struct MessageType {
    name: &'static str,
    tag: u64,
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
    encode: fn(&dyn Any) -> Result<Bytes, CodecError>,
    decode: DecodeFn,
}

impl MessageType {
    /// The stable name it was registered under.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The wire tag ([`type_tag`] of the name).
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The Rust type's id.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }

    /// The Rust type's name (for diagnostics only).
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }

    /// Encode a value of this type; another type is [`CodecError::WrongType`].
    pub fn encode(&self, msg: &dyn Any) -> Result<Bytes, CodecError> {
        (self.encode)(msg)
    }

    /// Decode a body into a boxed value of this type.
    pub fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        (self.decode)(body)
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageType")
            .field("name", &self.name)
            .field("tag", &format_args!("{:#018x}", self.tag))
            .field("type", &self.type_name())
            .finish()
    }
}

fn encode_erased<T: Serialize + 'static>(msg: &dyn Any) -> Result<Bytes, CodecError> {
    let msg = msg.downcast_ref::<T>().ok_or(CodecError::WrongType {
        expected: std::any::type_name::<T>(),
    })?;
    // Most messages are small: start with room for them instead of growing from zero.
    postcard::to_extend(msg, Vec::with_capacity(64))
        .map(Bytes::from)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

fn decode_erased<T: DeserializeOwned + Send + 'static>(
    body: &[u8],
) -> Result<Box<dyn Any + Send>, CodecError> {
    postcard::from_bytes::<T>(body)
        .map(|v| Box::new(v) as Box<dyn Any + Send>)
        .map_err(|e| CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
}
