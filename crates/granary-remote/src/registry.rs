//! Message type registry: stable names ↔ Rust types, collected at link time.
//!
//! Every type that crosses the wire is registered once under a stable name with
//! [`register_message!`](crate::register_message). The registrations are gathered at link
//! time by the [`inventory`] crate (chosen over `linkme` because it needs no linker-section
//! tricks per platform and is widely used), so libraries and applications add message types
//! without editing a central enum. [`Registry::build`] checks the collected entries and
//! reports every conflict (two types under one name, one type under two names, two names
//! hashing to one tag) as a typed [`RegistryError`].
//!
//! On the wire a type is named by its *tag*: the 64-bit FNV-1a hash of its stable name
//! ([`type_tag`]). Bodies are encoded with `postcard`.

mod entry;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

pub use entry::{type_tag, ErasedMessage, MessageRegistration, MessageType};

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
    by_type: HashMap<TypeId, MessageType>,
    by_tag: HashMap<u64, MessageType>,
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

    /// Number of registered types.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    /// Whether no type is registered.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    /// The entry for a Rust type.
    pub fn by_type_id(&self, type_id: TypeId) -> Option<&MessageType> {
        self.by_type.get(&type_id)
    }

    /// The entry for `T`.
    pub fn by_type<T: Any>(&self) -> Option<&MessageType> {
        self.by_type_id(TypeId::of::<T>())
    }

    /// The entry for a wire tag.
    pub fn by_tag(&self, tag: u64) -> Option<&MessageType> {
        self.by_tag.get(&tag)
    }

    /// The entry for a stable name.
    pub fn by_name(&self, name: &str) -> Option<&MessageType> {
        self.by_tag(type_tag(name))
    }

    /// Encode a typed message: its tag and postcard body.
    pub fn encode<T: Any>(&self, msg: &T) -> Result<(u64, Bytes), CodecError> {
        self.encode_any(msg)
    }

    /// Encode an erased message by its runtime type.
    pub fn encode_any(&self, msg: &dyn Any) -> Result<(u64, Bytes), CodecError> {
        let entry = self
            .by_type_id(msg.type_id())
            .ok_or(CodecError::UnregisteredType)?;
        Ok((entry.tag(), entry.encode(msg)?))
    }

    /// Decode a body by its wire tag into an erased message.
    pub fn decode(&self, tag: u64, body: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        self.by_tag(tag)
            .ok_or(CodecError::UnknownTag(tag))?
            .decode(body)
    }
}

/// Collects registrations and checks them into a [`Registry`].
#[derive(Default)]
pub struct RegistryBuilder {
    entries: Vec<MessageType>,
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
    pub fn register<T>(mut self, name: &'static str) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.entries
            .push(MessageRegistration::new::<T>(name).entry());
        self
    }

    /// Check for conflicts and build the registry; every conflict found is reported.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut conflicts = Vec::new();
        let mut names: HashMap<&'static str, Vec<&MessageType>> = HashMap::new();
        let mut types: HashMap<TypeId, Vec<&MessageType>> = HashMap::new();
        for e in &self.entries {
            names.entry(e.name()).or_default().push(e);
            types.entry(e.type_id()).or_default().push(e);
        }
        for (name, list) in &names {
            if list.len() > 1 {
                conflicts.push(Conflict::DuplicateName {
                    name: (*name).to_owned(),
                    types: list.iter().map(|e| e.type_name().to_owned()).collect(),
                });
            }
        }
        for list in types.values() {
            let mut distinct: Vec<&str> = list.iter().map(|e| e.name()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() > 1 {
                conflicts.push(Conflict::TypeUnderSeveralNames {
                    type_name: list[0].type_name().to_owned(),
                    names: distinct.into_iter().map(str::to_owned).collect(),
                });
            }
        }
        let mut tags: HashMap<u64, Vec<&'static str>> = HashMap::new();
        for name in names.keys() {
            tags.entry(type_tag(name)).or_default().push(name);
        }
        for (tag, list) in tags {
            if list.len() > 1 {
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
        let by_type = self.entries.iter().map(|e| (e.type_id(), *e)).collect();
        let by_tag = self.entries.iter().map(|e| (e.tag(), *e)).collect();
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
    fn one_type_under_two_names_is_reported() {
        let err = Registry::builder()
            .register::<A>("t.One")
            .register::<A>("t.Two")
            .build()
            .unwrap_err();
        assert!(matches!(
            &err.conflicts[..],
            [Conflict::TypeUnderSeveralNames { names, .. }] if names.len() == 2
        ));
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
