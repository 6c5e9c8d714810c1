//! `memory:`: a store in this process's memory, for tests and single-process demos.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::reminder::system_time_to_ms;
use crate::{Identity, Reminder, StateStore, StorageError, Stored, Version};

/// A store held in memory: nothing survives the process. Same semantics as the
/// durable providers (versions, conflicts, tombstones), so code tested against it
/// behaves the same on `file:` or PostgreSQL. Reminder queries scan all reminders,
/// which is fine for the sizes tests use.
///
/// ```
/// # async fn demo() -> Result<(), granary_storage::StorageError> {
/// use granary_storage::{Identity, MemoryStore, StateStore};
/// let store = MemoryStore::new();
/// let id = Identity::new("Counter", "a");
/// store.write(&id, "1".into(), None).await?;
/// assert_eq!(store.read(&id).await?.unwrap().data, "1");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    states: Mutex<HashMap<Identity, Slot>>,
    reminders: Mutex<HashMap<(Identity, String), Reminder>>,
}

/// One identity's row: its latest version, and its bytes unless cleared.
#[derive(Debug)]
struct Slot {
    version: Version,
    data: Option<Bytes>,
}

impl Slot {
    fn live_version(&self) -> Option<Version> {
        self.data.as_ref().map(|_| self.version)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn provider(&self) -> &'static str {
        "memory"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        Ok(())
    }

    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError> {
        let states = self.states.lock();
        Ok(states.get(identity).and_then(|slot| {
            slot.data.as_ref().map(|data| Stored {
                data: data.clone(),
                version: slot.version,
            })
        }))
    }

    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        let mut states = self.states.lock();
        match states.get_mut(identity) {
            None if expected.is_none() => {
                states.insert(
                    identity.clone(),
                    Slot {
                        version: Version::FIRST,
                        data: Some(data),
                    },
                );
                Ok(Version::FIRST)
            }
            None => Err(StorageError::Conflict { current: None }),
            Some(slot) => {
                let current = slot.live_version();
                if current != expected {
                    return Err(StorageError::Conflict { current });
                }
                slot.version = slot.version.next();
                slot.data = Some(data);
                Ok(slot.version)
            }
        }
    }

    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError> {
        let mut states = self.states.lock();
        let current = states.get(identity).and_then(Slot::live_version);
        if current != expected {
            return Err(StorageError::Conflict { current });
        }
        if let Some(slot) = states.get_mut(identity) {
            if slot.data.take().is_some() {
                // The tombstone keeps the version moving, so versions never repeat.
                slot.version = slot.version.next();
            }
        }
        Ok(())
    }

    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError> {
        // Same range checks as the durable providers.
        reminder.due_ms()?;
        reminder.period_ms()?;
        let mut stored = reminder.clone();
        stored.due = truncate_to_ms(reminder.due)?;
        if let Some(p) = stored.period {
            stored.period = Some(std::time::Duration::from_millis(p.as_millis() as u64));
        }
        self.reminders
            .lock()
            .insert((reminder.identity.clone(), reminder.name.clone()), stored);
        Ok(())
    }

    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError> {
        Ok(self
            .reminders
            .lock()
            .remove(&(identity.clone(), name.to_owned()))
            .is_some())
    }

    async fn due_reminders(
        &self,
        partition: u32,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Reminder>, StorageError> {
        let now = truncate_to_ms(now)?;
        let mut due: Vec<Reminder> = self
            .reminders
            .lock()
            .values()
            .filter(|r| r.partition == partition && r.due <= now)
            .cloned()
            .collect();
        due.sort_by(|a, b| (a.due, &a.identity, &a.name).cmp(&(b.due, &b.identity, &b.name)));
        due.truncate(limit);
        Ok(due)
    }
}

/// Drops sub-millisecond precision, as the durable providers do.
fn truncate_to_ms(t: SystemTime) -> Result<SystemTime, StorageError> {
    let ms = system_time_to_ms(t)?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64))
}
