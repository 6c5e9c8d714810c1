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
    fnv1a(0xcbf2_9ce4_8422_2325, name.as_bytes())
}

/// The wire tag of a stable message name in the [versioned encoding](crate::Encoding):
/// FNV-1a of the name followed by `"#v"`. A frame's tag says which encoding its body
/// is in, so a node decodes bodies of both encodings whatever it negotiated, and a
/// node of protocol version 4 that is sent a versioned body refuses it as an unknown
/// type (a typed error) instead of misreading it.
///
/// ```
/// use granary_remote::{type_tag, versioned_tag};
/// assert_ne!(versioned_tag("a.Ping"), type_tag("a.Ping"));
/// ```
pub const fn versioned_tag(name: &str) -> u64 {
    fnv1a(type_tag(name), b"#v")
}

const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
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
                version: 1,
                type_id: TypeId::of::<T>,
                type_name: std::any::type_name::<T>,
                encode: encode_erased::<T>,
                decode: decode_erased::<T>,
                encode_versioned: encode_versioned::<T>,
                decode_versioned: decode_versioned::<T>,
            },
            origin: Origin::Named,
        }
    }

    /// The same registration with contract version `version` (default 1; 0 is read as
    /// 1). A node decodes a message of its own version and of the one before and
    /// answers [`CodecError::TooNew`] or [`CodecError::TooOld`] for any other
    /// (`docs/wire.md`, "Versioned messages"). Used by
    /// [`register_message!`](crate::register_message)`(T, "name", version = N)` and by
    /// `#[message(version = N)]`.
    pub const fn with_version(mut self, version: u32) -> Self {
        self.entry.version = if version == 0 { 1 } else { version };
        self
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
type EncodeFn = fn(&dyn Any) -> Result<Bytes, CodecError>;
type DecodeVersionedFn = fn(&MessageType, &[u8]) -> Result<ErasedMessage, CodecError>;
type EncodeVersionedFn = fn(&MessageType, &dyn Any) -> Result<Bytes, CodecError>;

/// A registered message type: its name, tag, Rust type and codec functions.
#[derive(Clone, Copy)]
pub struct MessageType {
    name: &'static str,
    tag: u64,
    version: u32,
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
    encode: EncodeFn,
    decode: DecodeFn,
    encode_versioned: EncodeVersionedFn,
    decode_versioned: DecodeVersionedFn,
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

    /// The wire tag of a body in the versioned encoding ([`versioned_tag`] of the name).
    pub fn versioned_tag(&self) -> u64 {
        fnv1a(self.tag, b"#v")
    }

    /// The contract version this node speaks for the type (1 unless registered with
    /// [`MessageRegistration::with_version`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether a peer's body of contract version `theirs` may be decoded here: our own
    /// version and the one before are; others are [`CodecError::TooNew`] or
    /// [`CodecError::TooOld`].
    pub fn check_version(&self, theirs: u32) -> Result<(), CodecError> {
        let ours = self.version;
        if theirs > ours {
            Err(CodecError::TooNew {
                name: self.name,
                theirs,
                ours,
            })
        } else if theirs + 1 < ours {
            Err(CodecError::TooOld {
                name: self.name,
                theirs,
                ours,
            })
        } else {
            Ok(())
        }
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

    /// Decode a postcard body into a boxed value of this type. A postcard body carries
    /// no contract version: it is read as version 1 (what every build before the
    /// versioned encoding spoke), so a type at version 3 or more refuses it as
    /// [`CodecError::TooOld`].
    pub fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        self.check_version(1)?;
        (self.decode)(body)
    }

    /// Encode a value of this type in `encoding`.
    pub fn encode_as(&self, msg: &dyn Any, encoding: Encoding) -> Result<Bytes, CodecError> {
        match encoding {
            Encoding::Postcard => (self.encode)(msg),
            Encoding::Versioned => (self.encode_versioned)(self, msg),
        }
    }

    /// Decode a body in `encoding` into a boxed value of this type, checking the
    /// contract version a versioned body carries.
    pub fn decode_as(
        &self,
        body: &[u8],
        encoding: Encoding,
    ) -> Result<Box<dyn Any + Send>, CodecError> {
        match encoding {
            Encoding::Postcard => self.decode(body),
            Encoding::Versioned => (self.decode_versioned)(self, body),
        }
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageType")
            .field("name", &self.name)
            .field("tag", &format_args!("{:#018x}", self.tag))
            .field("version", &self.version)
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

/// How a message body is encoded on the wire; chosen per peer by the protocol version
/// the handshake negotiated (`docs/wire.md`, "Versioned messages").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// postcard: compact, not self-describing; both ends must have the same type. What
    /// protocol version 4 speaks, and what system traffic uses.
    Postcard,
    /// The contract version (unsigned LEB128), then MessagePack with named fields
    /// (`rmp-serde`'s `to_vec_named`): a struct is a map from field names, so a reader
    /// skips fields it does not know and fills missing `#[serde(default)]` ones. Since
    /// protocol version 5; the frame's tag is the [`versioned_tag`].
    Versioned,
}

/// Most LEB128 bytes a u32 takes.
const MAX_LEB128: usize = 5;

fn encode_versioned<T: Serialize + 'static>(
    entry: &MessageType,
    msg: &dyn Any,
) -> Result<Bytes, CodecError> {
    let msg = msg.downcast_ref::<T>().ok_or(CodecError::WrongType {
        expected: std::any::type_name::<T>(),
    })?;
    let mut buf = Vec::with_capacity(64);
    let mut v = entry.version;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            break;
        }
        buf.push(byte | 0x80);
    }
    rmp_serde::encode::write_named(&mut buf, msg).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(Bytes::from(buf))
}

/// Split the contract version off a versioned body.
fn read_version(body: &[u8]) -> Option<(u32, &[u8])> {
    let mut version: u32 = 0;
    for (i, byte) in body.iter().take(MAX_LEB128).enumerate() {
        let bits = u32::from(byte & 0x7f);
        version |= bits.checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((version, &body[i + 1..]));
        }
    }
    None
}

fn decode_versioned<T: DeserializeOwned + Send + 'static>(
    entry: &MessageType,
    body: &[u8],
) -> Result<Box<dyn Any + Send>, CodecError> {
    let decode_error = |reason: String| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason,
    };
    let (theirs, rest) =
        read_version(body).ok_or_else(|| decode_error("bad contract version".into()))?;
    entry.check_version(theirs)?;
    rmp_serde::from_slice::<T>(rest)
        .map(|v| Box::new(v) as Box<dyn Any + Send>)
        .map_err(|e| decode_error(e.to_string()))
}
