//! The device registry: device → [`DeviceRecord`], one replica on every server.
//!
//! It is a delta-state CRDT from granary-crdt, an `ORMap<DeviceId,
//! LWWRegister<DeviceRecord>>`, replicated by granary-crdt's `Replicator` under one
//! name: each server writes only the records of the devices it tracks, concurrent
//! writes (a hand-over) are settled by the register's timestamp, and replicas converge
//! whatever the order, loss or duplication of the messages between them. A write is a
//! local update that returns at once; the replicator pushes its delta to every peer
//! (with acknowledgements, and the full state to a peer too far behind).

use std::collections::BTreeMap;

use granary_crdt::{CrdtHandle, LWWRegister, ORMap, Replicator};
use tokio::sync::watch;

use crate::error::DeviceError;
use crate::id::DeviceId;
use crate::record::DeviceRecord;

/// The replicated type.
pub(crate) type RegistryState = ORMap<DeviceId, LWWRegister<DeviceRecord>>;

/// What subscribers of the CRDT see.
type RegistryValue = BTreeMap<DeviceId, Option<DeviceRecord>>;

/// The registry as one server sees and writes it; clones share it.
#[derive(Clone)]
pub(crate) struct DeviceRegistry {
    handle: CrdtHandle<RegistryState>,
}

impl DeviceRegistry {
    /// Opens the registry named `name` on `replicator`.
    pub(crate) fn open(replicator: &Replicator, name: &str) -> Result<Self, DeviceError> {
        let handle = replicator
            .crdt::<RegistryState>(name)
            .map_err(|e| DeviceError::Registry(e.to_string()))?;
        Ok(Self { handle })
    }

    /// Writes `record` for `device` here; the replicator spreads it.
    pub(crate) fn put(&self, device: &DeviceId, record: DeviceRecord) {
        let written = self.handle.update(|state, me| {
            state.update(me, device.clone(), |register| register.set(me, record))
        });
        if let Err(error) = written {
            // Only a stopped replicator refuses a local write; the server is going away.
            tracing::debug!(%device, %error, "registry write refused");
        }
    }

    pub(crate) fn get(&self, device: &DeviceId) -> Option<DeviceRecord> {
        self.handle
            .with_state(|state| state.get(device).and_then(|r| r.get().cloned()))
            .ok()
            .flatten()
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<DeviceId, DeviceRecord> {
        self.handle
            .with_state(|state| {
                state
                    .iter()
                    .filter_map(|(id, r)| r.get().map(|record| (id.clone(), record.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wakes on every change of the local replica (a local write or a merged one).
    pub(crate) fn changes(&self) -> Result<watch::Receiver<RegistryValue>, DeviceError> {
        self.handle
            .subscribe()
            .map_err(|e| DeviceError::Registry(e.to_string()))
    }
}
