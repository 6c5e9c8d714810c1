//! Message type registry: stable names ↔ Rust types, collected at link time.
//!
//! Every type that crosses the wire is registered under a stable name, by hand with
//! [`register_message!`](crate::register_message) or by `#[derive(Message)]`
//! (`granary-macros`). The registrations are gathered at link time by the [`inventory`]
//! crate (chosen over `linkme` because it needs no linker-section tricks per platform
//! and is widely used), so libraries and applications add message types without
//! editing a central enum. [`Registry::build`] checks the collected entries and reports
//! every conflict (two types under one name, two names hashing to one tag) as a typed
//! [`RegistryError`].
//!
//! On the wire a type is named by its *tag*: the 64-bit FNV-1a hash of its stable name
//! ([`type_tag`]). Bodies come in two [`Encoding`]s: `postcard` (protocol version 4,
//! system traffic) and the versioned one (protocol version 5: the contract version, then
//! MessagePack with named fields), whose frames carry the name's [`versioned_tag`]. The
//! registry decodes both, by the tag; the sender picks the one the peer negotiated.
//!
//! # Contract versions
//!
//! Each registration carries a contract version (default 1;
//! `register_message!(T, "name", version = N)`, `#[message(version = N)]`). A versioned
//! body carries the sender's; the receiver decodes its own version and the one before
//! and answers [`CodecError::TooNew`] / [`CodecError::TooOld`] otherwise (a postcard body
//! counts as version 1). The version belongs to the *name*: a type registered under
//! several names has one version per name, and the name it is encoded under (below)
//! decides the version it is sent with.
//!
//! # One type, several names
//!
//! A type may be registered more than once: the same (type, name) twice counts once,
//! and one type under several names is accepted (two crates that both register
//! `Result<u64, String>`, under names of their own, link together). Every name decodes
//! to the type; the type is *encoded* under one canonical name, chosen
//! deterministically:
//!
//! 1. a name chosen by hand ([`register_message!`](crate::register_message), a derive's
//!    `name`, [`RegistryBuilder::register`]) before a name derived from the type
//!    ([`MessageRegistration::reply`], what `#[derive(Message)]` registers for a reply
//!    type: its `std::any::type_name`);
//! 2. among names of the same origin, the smallest in byte order.
//!
//! A peer decodes a frame only if it knows the name the sender encoded it under, so
//! binaries that talk to each other should link the same registrations of a type that
//! has several names. Reply types registered by the derive alone need no care: their
//! one name depends on the type only (and on the compiler's `type_name`, so the
//! binaries of a cluster are built by one toolchain).

mod entry;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

pub use entry::{
    type_tag, versioned_tag, Encoding, ErasedMessage, MessageRegistration, MessageType,
};

use entry::Origin;

use crate::error::{CodecError, Conflict, RegistryError};

inventory::collect!(MessageRegistration);

/// The checked set of message types a node can send and receive.
///
/// ```
/// use granary_remote::{register_message, Registry};
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Ping(u32);
/// register_message!(Ping, "doc.Ping");
///
/// let registry = Registry::build().expect("no conflicts");
/// let (tag, body) = registry.encode(&Ping(7)).unwrap();
/// let back = registry.decode(tag, &body).unwrap();
/// assert_eq!(back.downcast_ref::<Ping>(), Some(&Ping(7)));
/// ```
#[derive(Debug)]
pub struct Registry {
    by_type: foldhash::HashMap<TypeId, MessageType>,
    by_tag: foldhash::HashMap<u64, (MessageType, Encoding)>,
}

impl Registry {
    /// Collect every link-time registration and check it for conflicts.
    pub fn build() -> Result<Self, RegistryError> {
        RegistryBuilder::with_inventory().build()
    }

    /// The process-wide registry, built once on first use.
    ///
    /// Call it at start-up so that conflicts are reported before any traffic flows.
    pub fn global() -> Result<&'static Registry, &'static RegistryError> {
        static GLOBAL: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
        GLOBAL.get_or_init(Registry::build).as_ref()
    }

    /// A builder that starts empty (useful for tests and for explicit registration).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Number of registered names (a type registered under several names counts once
    /// per name).
    pub fn len(&self) -> usize {
        self.by_tag.len() / 2
    }

    /// Whether no type is registered.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// The entry for a Rust type, under its canonical name (the one it is encoded
    /// under; see [the rule](Registry#one-type-several-names)).
    pub fn by_type_id(&self, type_id: TypeId) -> Option<&MessageType> {
        self.by_type.get(&type_id)
    }

    /// The entry for `T`.
    pub fn by_type<T: Any>(&self) -> Option<&MessageType> {
        self.by_type_id(TypeId::of::<T>())
    }

    /// The entry for a wire tag (any of a type's names, in either encoding).
    pub fn by_tag(&self, tag: u64) -> Option<&MessageType> {
        self.by_tag.get(&tag).map(|(e, _)| e)
    }

    /// The entry for a wire tag and the encoding that tag says its body is in.
    pub fn by_tag_with_encoding(&self, tag: u64) -> Option<(&MessageType, Encoding)> {
        self.by_tag.get(&tag).map(|(e, enc)| (e, *enc))
    }

    /// The entry for a stable name.
    pub fn by_name(&self, name: &str) -> Option<&MessageType> {
        self.by_tag(type_tag(name))
    }

    /// Encode a typed message: its tag and postcard body.
    pub fn encode<T: Any>(&self, msg: &T) -> Result<(u64, Bytes), CodecError> {
        self.encode_any(msg)
    }

    /// Encode an erased message by its runtime type: its tag and postcard body.
    pub fn encode_any(&self, msg: &dyn Any) -> Result<(u64, Bytes), CodecError> {
        self.encode_as(msg, Encoding::Postcard)
    }

    /// Encode an erased message in `encoding`: the tag for that encoding (the
    /// [`versioned_tag`] for [`Encoding::Versioned`]) and the body.
    pub fn encode_as(&self, msg: &dyn Any, encoding: Encoding) -> Result<(u64, Bytes), CodecError> {
        let entry = self
            .by_type_id(msg.type_id())
            .ok_or(CodecError::UnregisteredType)?;
        let tag = match encoding {
            Encoding::Postcard => entry.tag(),
            Encoding::Versioned => entry.versioned_tag(),
        };
        Ok((tag, entry.encode_as(msg, encoding)?))
    }

    /// Decode a body by its wire tag into an erased message; the tag says the encoding.
    pub fn decode(&self, tag: u64, body: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        let (entry, encoding) = self
            .by_tag_with_encoding(tag)
            .ok_or(CodecError::UnknownTag(tag))?;
        entry.decode_as(body, encoding)
    }
}

/// Collects registrations and checks them into a [`Registry`].
#[derive(Default)]
pub struct RegistryBuilder {
    entries: Vec<(MessageType, Origin)>,
}

impl RegistryBuilder {
    /// A builder holding every link-time registration.
    pub fn with_inventory() -> Self {
        let entries = inventory::iter::<MessageRegistration>
            .into_iter()
            .map(MessageRegistration::entry)
            .collect();
        Self { entries }
    }

    /// Register `T` under `name` explicitly.
    pub fn register<T>(self, name: &'static str) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.with(MessageRegistration::new::<T>(name))
    }

    /// Register `T` as a reply type under the name derived from it, as
    /// `#[derive(Message)]` does ([`MessageRegistration::reply`]).
    pub fn register_reply<T>(self) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.with(MessageRegistration::reply::<T>())
    }

    /// Add a registration (with its contract version, if it has one).
    pub fn with(mut self, registration: MessageRegistration) -> Self {
        self.entries.push(registration.entry());
        self
    }

    /// Check for conflicts and build the registry; every conflict found is reported.
    ///
    /// A conflict is two types under one name, or two names with one tag. One type
    /// under several names is not: see [the rule](Registry#one-type-several-names).
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut conflicts = Vec::new();
        // The same (name, type) registered twice (a reply type shared by several
        // messages) is one registration; a hand-chosen origin wins.
        let mut unique: HashMap<(&'static str, TypeId), (MessageType, Origin)> = HashMap::new();
        for (e, origin) in &self.entries {
            let slot = unique
                .entry((e.name(), e.type_id()))
                .or_insert((*e, *origin));
            slot.1 = slot.1.min(*origin);
        }
        let mut names: HashMap<&'static str, Vec<&MessageType>> = HashMap::new();
        for (e, _) in unique.values() {
            names.entry(e.name()).or_default().push(e);
        }
        for (name, list) in &names {
            if list.len() > 1 {
                let mut types: Vec<String> =
                    list.iter().map(|e| e.type_name().to_owned()).collect();
                types.sort_unstable();
                conflicts.push(Conflict::DuplicateName {
                    name: (*name).to_owned(),
                    types,
                });
            }
        }
        let mut tags: HashMap<u64, Vec<&'static str>> = HashMap::new();
        for name in names.keys() {
            tags.entry(type_tag(name)).or_default().push(name);
            tags.entry(versioned_tag(name)).or_default().push(name);
        }
        for (tag, mut list) in tags {
            if list.len() > 1 {
                list.sort_unstable();
                conflicts.push(Conflict::TagCollision {
                    tag,
                    names: list.into_iter().map(str::to_owned).collect(),
                });
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort_by_key(|c| c.to_string());
            return Err(RegistryError { conflicts });
        }
        // The canonical name of each type: hand-chosen first, then the smallest.
        let mut by_type: HashMap<TypeId, (Origin, MessageType)> = HashMap::new();
        for (e, origin) in unique.values() {
            let candidate = (*origin, *e);
            by_type
                .entry(e.type_id())
                .and_modify(|best| {
                    if (candidate.0, candidate.1.name()) < (best.0, best.1.name()) {
                        *best = candidate;
                    }
                })
                .or_insert(candidate);
        }
        let by_type = by_type.into_iter().map(|(id, (_, e))| (id, e)).collect();
        let by_tag = unique
            .values()
            .flat_map(|(e, _)| {
                [
                    (e.tag(), (*e, Encoding::Postcard)),
                    (e.versioned_tag(), (*e, Encoding::Versioned)),
                ]
            })
            .collect();
        Ok(Registry { by_type, by_tag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct A(u8);
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct B {
        text: String,
    }

    #[test]
    fn registry_maps_names_types_and_tags_both_ways() {
        let reg = Registry::builder()
            .register::<A>("t.A")
            .register::<B>("t.B")
            .build()
            .unwrap();
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.by_type::<A>().unwrap().name(), "t.A");
        assert_eq!(reg.by_name("t.B").unwrap().type_id(), TypeId::of::<B>());
        let (tag, body) = reg.encode(&B { text: "hi".into() }).unwrap();
        assert_eq!(tag, type_tag("t.B"));
        let back = reg.decode(tag, &body).unwrap();
        assert_eq!(back.downcast_ref::<B>().unwrap().text, "hi");
    }

    #[test]
    fn two_types_under_one_name_are_reported() {
        let err = Registry::builder()
            .register::<A>("t.Same")
            .register::<B>("t.Same")
            .build()
            .unwrap_err();
        assert!(matches!(
            &err.conflicts[..],
            [Conflict::DuplicateName { name, types }] if name == "t.Same" && types.len() == 2
        ));
    }

    #[test]
    fn one_type_under_two_names_decodes_under_both_and_encodes_under_the_smallest() {
        let reg = Registry::builder()
            .register::<A>("t.Two")
            .register::<A>("t.One")
            .build()
            .expect("one type under two names is no conflict");
        assert_eq!(reg.by_type::<A>().unwrap().name(), "t.One");
        let (tag, body) = reg.encode(&A(3)).unwrap();
        assert_eq!(tag, type_tag("t.One"));
        for name in ["t.One", "t.Two"] {
            let back = reg.decode(type_tag(name), &body).unwrap();
            assert_eq!(back.downcast_ref::<A>(), Some(&A(3)));
        }
    }

    #[test]
    fn a_reply_type_shared_by_several_messages_is_registered_once() {
        // What two `#[derive(Message)]`s with `reply = u64` (in any crates) submit.
        let reg = Registry::builder()
            .register::<A>("t.Add")
            .register::<B>("t.Sub")
            .register_reply::<u64>()
            .register_reply::<u64>()
            .build()
            .expect("the same reply registration twice is one");
        let name = std::any::type_name::<u64>();
        assert_eq!(reg.by_type::<u64>().unwrap().name(), name);
        assert_eq!(reg.len(), 3);
        let (tag, body) = reg.encode(&7u64).unwrap();
        assert_eq!(tag, type_tag(name));
        assert_eq!(reg.decode(tag, &body).unwrap().downcast_ref(), Some(&7u64));
    }

    #[test]
    fn a_hand_chosen_name_is_canonical_over_a_derived_one() {
        let reg = Registry::builder()
            .register_reply::<A>()
            .register::<A>("z.A")
            .build()
            .unwrap();
        assert_eq!(reg.by_type::<A>().unwrap().name(), "z.A");
        assert!(reg.by_name(std::any::type_name::<A>()).is_some());
    }

    #[test]
    fn unknown_tag_and_bad_body_are_typed_errors() {
        let reg = Registry::builder().register::<B>("t.B").build().unwrap();
        assert!(matches!(
            reg.decode(42, b""),
            Err(CodecError::UnknownTag(42))
        ));
        let bad = reg.decode(type_tag("t.B"), &[0xff, 0xff, 0xff]);
        assert!(matches!(bad, Err(CodecError::Decode { .. })));
        assert!(matches!(
            reg.encode(&7u64),
            Err(CodecError::UnregisteredType)
        ));
    }
}

/// Two builds of one contract: `v1` is what the older build links, `v2` what the newer
/// one links, under the same wire names. What the versioned encoding lets change.
#[cfg(test)]
mod versioned_tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    mod v1 {
        use super::*;
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        pub(super) struct Put {
            pub(super) key: String,
            pub(super) value: u64,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        pub(super) enum Op {
            Add(u64),
            Reset,
            /// What an old reader makes of a variant it does not know (unit variants).
            #[serde(other)]
            Unknown,
        }
    }

    mod v2 {
        use super::*;
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        pub(super) struct Put {
            pub(super) key: String,
            pub(super) value: u64,
            /// Added in version 2: absent from a version-1 body, so it needs a default.
            #[serde(default)]
            pub(super) ttl: Option<u64>,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        pub(super) enum Op {
            Add(u64),
            Reset,
            /// Added in version 2.
            Freeze,
            #[serde(other)]
            Unknown,
        }
    }

    fn builds() -> (Registry, Registry) {
        let old = Registry::builder()
            .with(MessageRegistration::new::<v1::Put>("t.Put"))
            .with(MessageRegistration::new::<v1::Op>("t.Op"))
            .build()
            .unwrap();
        let new = Registry::builder()
            .with(MessageRegistration::new::<v2::Put>("t.Put").with_version(2))
            .with(MessageRegistration::new::<v2::Op>("t.Op").with_version(2))
            .build()
            .unwrap();
        (old, new)
    }

    fn cross<T: Any>(from: &Registry, to: &Registry, msg: &dyn Any) -> Result<T, CodecError> {
        let (tag, body) = from.encode_as(msg, Encoding::Versioned)?;
        to.decode(tag, &body).map(|b| {
            *b.downcast::<T>()
                .expect("the registry decodes to the registered type")
        })
    }

    #[test]
    fn a_new_reader_fills_an_added_field_from_its_default() {
        let (old, new) = builds();
        let put = v1::Put {
            key: "k".into(),
            value: 3,
        };
        let read: v2::Put = cross(&old, &new, &put).unwrap();
        assert_eq!(
            read,
            v2::Put {
                key: "k".into(),
                value: 3,
                ttl: None
            }
        );
    }

    #[test]
    fn an_old_reader_skips_a_field_it_does_not_know() {
        let (old, new) = builds();
        let put = v2::Put {
            key: "k".into(),
            value: 3,
            ttl: Some(9),
        };
        // A version-2 body is too new for a version-1 node...
        assert!(matches!(
            cross::<v1::Put>(&new, &old, &put),
            Err(CodecError::TooNew {
                theirs: 2,
                ours: 1,
                ..
            })
        ));
        // ...so the skipping is what a version-2 reader does with a body from a
        // version-3 writer that added one more field; shown here with version-2 code
        // reading a body its newer peer wrote at its own version.
        let newer = Registry::builder()
            .with(MessageRegistration::new::<v2::Put>("t.Put").with_version(1))
            .build()
            .unwrap();
        let read: v1::Put = cross(&newer, &old, &put).unwrap();
        assert_eq!(
            read,
            v1::Put {
                key: "k".into(),
                value: 3
            }
        );
    }

    #[test]
    fn unknown_unit_variants_become_the_other_variant_and_known_ones_cross_both_ways() {
        let (old, new) = builds();
        let same_version = Registry::builder()
            .with(MessageRegistration::new::<v2::Op>("t.Op"))
            .build()
            .unwrap();
        let read: v1::Op = cross(&same_version, &old, &v2::Op::Freeze).unwrap();
        assert_eq!(read, v1::Op::Unknown);
        let read: v1::Op = cross(&same_version, &old, &v2::Op::Add(4)).unwrap();
        assert_eq!(read, v1::Op::Add(4));
        let read: v2::Op = cross(&old, &new, &v1::Op::Reset).unwrap();
        assert_eq!(read, v2::Op::Reset);
    }

    #[test]
    fn a_version_two_behind_is_too_old_and_postcard_counts_as_version_1() {
        let older = Registry::builder()
            .with(MessageRegistration::new::<v1::Put>("t.Put"))
            .build()
            .unwrap();
        let v3 = Registry::builder()
            .with(MessageRegistration::new::<v2::Put>("t.Put").with_version(3))
            .build()
            .unwrap();
        let put = v1::Put {
            key: "k".into(),
            value: 1,
        };
        assert!(matches!(
            cross::<v2::Put>(&older, &v3, &put),
            Err(CodecError::TooOld {
                theirs: 1,
                ours: 3,
                ..
            })
        ));
        let (tag, body) = older.encode_as(&put, Encoding::Postcard).unwrap();
        assert_eq!(tag, type_tag("t.Put"));
        assert!(matches!(
            v3.decode(tag, &body),
            Err(CodecError::TooOld {
                theirs: 1,
                ours: 3,
                ..
            })
        ));
        let err = v3.decode(tag, &body).unwrap_err().to_remote();
        assert!(matches!(
            err,
            granary_core::RemoteError::MessageTooOld {
                theirs: 1,
                ours: 3,
                ..
            }
        ));
    }

    #[test]
    fn both_encodings_decode_by_tag_and_a_bad_envelope_is_a_typed_error() {
        let (_, new) = builds();
        let put = v2::Put {
            key: "k".into(),
            value: 2,
            ttl: Some(1),
        };
        for encoding in [Encoding::Postcard, Encoding::Versioned] {
            let (tag, body) = new.encode_as(&put, encoding).unwrap();
            if encoding == Encoding::Postcard {
                // A postcard body is version 1, accepted by a version-2 reader.
                assert_eq!(tag, type_tag("t.Put"));
            } else {
                assert_eq!(tag, versioned_tag("t.Put"));
                assert_eq!(body[0], 2, "the contract version leads the body");
            }
            let back = new.decode(tag, &body).unwrap();
            assert_eq!(back.downcast_ref::<v2::Put>(), Some(&put));
        }
        let tag = versioned_tag("t.Put");
        for bad in [&[][..], &[0x80; 6][..], &[2, 0xc1][..]] {
            assert!(
                matches!(new.decode(tag, bad), Err(CodecError::Decode { .. })),
                "{bad:?}"
            );
        }
    }
}
