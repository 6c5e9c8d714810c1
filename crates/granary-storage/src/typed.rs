//! Typed state on top of the byte store: serde with a schema version.
//!
//! # Encoding
//! State is stored as JSON in a small envelope, `{"schema":N,"state":{…}}`. JSON is
//! self-describing, which is what schema evolution needs: a field added to the
//! struct with `#[serde(default)]` is simply absent in old records and gets its
//! default, and a field a newer build wrote is ignored by an older one. For
//! changes defaults can't express (renames, type changes), bump
//! [`PersistentState::SCHEMA_VERSION`] and rewrite the old JSON in
//! [`PersistentState::upgrade`]. A compact binary format (bincode, postcard) would
//! be smaller but cannot skip or default fields, so it is not used here.

use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Identity, StateStore, StorageError, Version};

/// A state type that can be stored through [`StateStoreExt`].
///
/// ```
/// use granary_storage::{decode_state, encode_state, PersistentState};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct CounterV1 { count: u64 }
/// impl PersistentState for CounterV1 {}
///
/// // A later build adds a field with a default and bumps the schema.
/// #[derive(Serialize, Deserialize)]
/// struct CounterV2 { count: u64, #[serde(default)] label: String }
/// impl PersistentState for CounterV2 { const SCHEMA_VERSION: u32 = 2; }
///
/// let old = encode_state(&CounterV1 { count: 7 }).unwrap();
/// let new: CounterV2 = decode_state(&old).unwrap();
/// assert_eq!((new.count, new.label.as_str()), (7, ""));
/// ```
pub trait PersistentState: Serialize + DeserializeOwned + Send + Sync {
    /// The schema version this build writes. Bump it when old JSON needs rewriting
    /// in [`upgrade`](Self::upgrade); adding defaulted fields does not need a bump.
    const SCHEMA_VERSION: u32 = 1;

    /// Rewrites state stored with schema `from` (older than `SCHEMA_VERSION`) into
    /// the current shape. The default leaves it as is, which is right for added
    /// fields with defaults. An `Err` message becomes [`StorageError::Corrupt`].
    fn upgrade(from: u32, state: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = from;
        Ok(state)
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    schema: u32,
    state: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    schema: u32,
    state: serde_json::Value,
}

/// Encodes `state` with its schema version.
pub fn encode_state<T: PersistentState>(state: &T) -> Result<Bytes, StorageError> {
    serde_json::to_vec(&EnvelopeOut {
        schema: T::SCHEMA_VERSION,
        state,
    })
    .map(Bytes::from)
    .map_err(|e| StorageError::Encode {
        reason: e.to_string(),
    })
}

/// Decodes state written by [`encode_state`] with this or an older schema.
///
/// Bytes that are not such an envelope give [`StorageError::Corrupt`]; a schema
/// newer than `T::SCHEMA_VERSION` gives [`StorageError::SchemaTooNew`].
pub fn decode_state<T: PersistentState>(bytes: &[u8]) -> Result<T, StorageError> {
    let envelope: EnvelopeIn = serde_json::from_slice(bytes)
        .map_err(|e| StorageError::corrupt(format!("state is not a schema envelope: {e}")))?;
    if envelope.schema > T::SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            stored: envelope.schema,
            supported: T::SCHEMA_VERSION,
        });
    }
    let state = if envelope.schema < T::SCHEMA_VERSION {
        T::upgrade(envelope.schema, envelope.state).map_err(|e| {
            StorageError::corrupt(format!(
                "upgrading state from schema {}: {e}",
                envelope.schema
            ))
        })?
    } else {
        envelope.state
    };
    serde_json::from_value(state).map_err(|e| {
        StorageError::corrupt(format!(
            "state does not fit {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Encodes `state` for a store that builds of an older release also read (a rolling
/// upgrade): at schema version 1 as plain JSON, the state alone, which is what such
/// builds wrote and read; from version 2 in the envelope of [`encode_state`]. Read it
/// back with [`decode_state_compat`].
pub fn encode_state_compat<T: PersistentState>(state: &T) -> Result<Bytes, StorageError> {
    if T::SCHEMA_VERSION <= 1 {
        serde_json::to_vec(state)
            .map(Bytes::from)
            .map_err(|e| StorageError::Encode {
                reason: e.to_string(),
            })
    } else {
        encode_state(state)
    }
}

/// Decodes state written by [`encode_state_compat`], [`encode_state`] or a build that
/// stored plain JSON, for a cluster whose nodes run two versions of `T` during a rolling
/// upgrade:
///
/// - plain JSON (not an object with exactly the keys `schema` and `state`) is schema 1;
/// - an older schema goes through [`PersistentState::upgrade`];
/// - a newer schema (written by an upgraded node, read by one not yet upgraded) is read
///   as it is when it fits `T` (fields it added are skipped, as JSON allows), and is
///   [`StorageError::SchemaTooNew`] only when it does not.
///
/// ```
/// use granary_storage::{decode_state_compat, encode_state_compat, PersistentState};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct V1 { count: u64 }
/// impl PersistentState for V1 {}
/// #[derive(Serialize, Deserialize)]
/// struct V2 { count: u64, #[serde(default)] label: String }
/// impl PersistentState for V2 { const SCHEMA_VERSION: u32 = 2; }
///
/// let old = encode_state_compat(&V1 { count: 7 }).unwrap();
/// assert_eq!(&old[..], br#"{"count":7}"#);
/// let new: V2 = decode_state_compat(&old).unwrap();
/// assert_eq!(new.count, 7);
/// let newer = encode_state_compat(&V2 { count: 8, label: "x".into() }).unwrap();
/// let back: V1 = decode_state_compat(&newer).unwrap();
/// assert_eq!(back.count, 8);
/// ```
pub fn decode_state_compat<T: PersistentState>(bytes: &[u8]) -> Result<T, StorageError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| StorageError::corrupt(format!("state is not JSON: {e}")))?;
    let (schema, state) = split_envelope(value);
    let does_not_fit = |e: serde_json::Error| {
        StorageError::corrupt(format!(
            "state does not fit {}: {e}",
            std::any::type_name::<T>()
        ))
    };
    if schema > T::SCHEMA_VERSION {
        return serde_json::from_value(state).map_err(|_| StorageError::SchemaTooNew {
            stored: schema,
            supported: T::SCHEMA_VERSION,
        });
    }
    let state = if schema < T::SCHEMA_VERSION {
        T::upgrade(schema, state).map_err(|e| {
            StorageError::corrupt(format!("upgrading state from schema {schema}: {e}"))
        })?
    } else {
        state
    };
    serde_json::from_value(state).map_err(does_not_fit)
}

/// `(schema, state)` of an envelope; anything else is plain state of schema 1.
fn split_envelope(value: serde_json::Value) -> (u32, serde_json::Value) {
    match value {
        serde_json::Value::Object(mut map)
            if map.len() == 2
                && map.contains_key("state")
                && map
                    .get("schema")
                    .and_then(serde_json::Value::as_u64)
                    .is_some_and(|s| u32::try_from(s).is_ok()) =>
        {
            let schema = map
                .get("schema")
                .and_then(serde_json::Value::as_u64)
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(1);
            let state = map.remove("state").unwrap_or_default();
            (schema, state)
        }
        plain => (1, plain),
    }
}

/// Typed reads and writes on any [`StateStore`].
///
/// ```
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{open, Identity, PersistentState, StateStoreExt};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Counter { count: u64 }
/// impl PersistentState for Counter {}
///
/// let store = open("memory:").await?;
/// let id = Identity::new("Counter", "a");
/// let v = store.write_typed(&id, &Counter { count: 1 }, None).await?;
/// let (c, v2) = store.read_typed::<Counter>(&id).await?.unwrap();
/// assert_eq!((c.count, v2), (1, v));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[async_trait]
pub trait StateStoreExt: StateStore {
    /// Reads and decodes the state of `identity`.
    async fn read_typed<T: PersistentState>(
        &self,
        identity: &Identity,
    ) -> Result<Option<(T, Version)>, StorageError> {
        match self.read(identity).await? {
            Some(stored) => Ok(Some((decode_state(&stored.data)?, stored.version))),
            None => Ok(None),
        }
    }

    /// Encodes and writes the state of `identity` (see [`StateStore::write`]).
    async fn write_typed<T: PersistentState>(
        &self,
        identity: &Identity,
        state: &T,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        let bytes = encode_state(state)?;
        self.write(identity, bytes, expected).await
    }
}

impl<S: StateStore + ?Sized> StateStoreExt for S {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct CartV1 {
        items: Vec<String>,
    }
    impl PersistentState for CartV1 {}

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct CartV2 {
        items: Vec<String>,
        #[serde(default)]
        coupon: Option<String>,
        #[serde(default = "default_currency")]
        currency: String,
    }
    fn default_currency() -> String {
        "EUR".into()
    }
    impl PersistentState for CartV2 {
        const SCHEMA_VERSION: u32 = 2;
    }

    /// Schema 3 renamed `items` to `lines`; `upgrade` rewrites older JSON.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct CartV3 {
        lines: Vec<String>,
    }
    impl PersistentState for CartV3 {
        const SCHEMA_VERSION: u32 = 3;
        fn upgrade(from: u32, mut state: serde_json::Value) -> Result<serde_json::Value, String> {
            if from < 3 {
                let obj = state.as_object_mut().ok_or("state is not an object")?;
                let items = obj.remove("items").ok_or("no items")?;
                obj.insert("lines".into(), items);
            }
            Ok(state)
        }
    }

    #[test]
    fn old_state_loads_into_a_newer_struct_with_defaulted_fields() {
        let old = encode_state(&CartV1 {
            items: vec!["apple".into()],
        })
        .unwrap();
        let new: CartV2 = decode_state(&old).unwrap();
        assert_eq!(
            new,
            CartV2 {
                items: vec!["apple".into()],
                coupon: None,
                currency: "EUR".into()
            }
        );
    }

    #[test]
    fn upgrade_rewrites_state_from_an_older_schema() {
        let old = encode_state(&CartV1 {
            items: vec!["pear".into()],
        })
        .unwrap();
        let new: CartV3 = decode_state(&old).unwrap();
        assert_eq!(new.lines, ["pear"]);
        // Current-schema state is not passed through upgrade.
        let current = encode_state(&new).unwrap();
        assert_eq!(decode_state::<CartV3>(&current).unwrap(), new);
    }

    #[test]
    fn state_from_a_newer_schema_is_refused_not_misread() {
        let newer = encode_state(&CartV2 {
            items: vec![],
            coupon: None,
            currency: "USD".into(),
        })
        .unwrap();
        match decode_state::<CartV1>(&newer) {
            Err(StorageError::SchemaTooNew {
                stored: 2,
                supported: 1,
            }) => {}
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn corrupted_state_bytes_are_corrupt() {
        for bytes in [
            &b"\xff\x00garbage"[..],
            b"{\"schema\":1}",
            b"{\"schema\":1,\"state\":{\"items\":7}}",
            b"",
        ] {
            match decode_state::<CartV1>(bytes) {
                Err(StorageError::Corrupt { .. }) => {}
                other => panic!("{bytes:?}: expected Corrupt, got {other:?}"),
            }
        }
    }
}
