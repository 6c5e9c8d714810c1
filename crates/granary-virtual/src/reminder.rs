//! Durable reminders: rows in the kind's [`StateStore`] that wake a virtual actor
//! when due, whether it is active, passivated, or the whole cluster restarted since.
//!
//! The reminder table is split into [`PARTITIONS`] partitions by identity hash; each
//! partition is scanned by the node owning `granary.reminders/<p>` on the hash ring,
//! so every due reminder has one scanner while membership is stable. A due reminder
//! is delivered as a [`ReminderFired`] message through the ordinary virtual-actor
//! path (activating the actor if needed), then moved to its next due time or
//! deleted. Delivery is at least once: a scanner that dies between delivering and
//! updating the row lets the next owner deliver it again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use granary_core::Message;
use granary_remote::register_message;
use granary_storage::{Identity, Reminder, StateStore};
use serde::{Deserialize, Serialize};

use crate::actor::VirtualHandler;
use crate::error::VirtualError;
use crate::key::Key;
use crate::runtime::Runtime;
use crate::vref::VirtualRef;

/// Reminder partitions (scan units spread over the ring).
pub const PARTITIONS: u32 = 16;

/// Most reminders delivered per partition per scan.
const BATCH: usize = 256;

/// The message a due reminder delivers. Kinds that use reminders implement
/// `VirtualHandler<ReminderFired>` and register with [`crate::Kind::reminders`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderFired {
    /// The reminder's name.
    pub name: String,
}

impl Message for ReminderFired {
    type Reply = ();
}
register_message!(ReminderFired, "granary.virtual.ReminderFired");

/// The partition an identity's reminders are listed under.
pub(crate) fn partition_of(identity: &Identity) -> u32 {
    // FNV-1a: stable across processes and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in identity.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

/// Delivers one reminder to its actor (type-erased per kind).
pub(crate) type FireFn = Arc<
    dyn Fn(Arc<Runtime>, String, String) -> BoxFuture<'static, Result<(), VirtualError>>
        + Send
        + Sync,
>;

pub(crate) fn fire_fn<A>() -> FireFn
where
    A: VirtualHandler<ReminderFired>,
{
    Arc::new(|rt, key, name| {
        Box::pin(async move {
            let key = A::Key::parse_key(&key)?;
            VirtualRef::<A>::new(rt, key)
                .ask(ReminderFired { name })
                .await
        })
    })
}

/// Registers (or replaces) a reminder.
pub(crate) async fn upsert(
    store: &Arc<dyn StateStore>,
    identity: &Identity,
    name: &str,
    due_in: Duration,
    period: Option<Duration>,
) -> Result<(), VirtualError> {
    let mut r = Reminder::new(
        identity.clone(),
        name,
        partition_of(identity),
        SystemTime::now() + due_in,
    );
    r.period = period;
    store.upsert_reminder(&r).await?;
    Ok(())
}

impl Runtime {
    /// One scan: deliver the due reminders of the partitions this node owns.
    pub(crate) async fn scan_reminders(self: &Arc<Self>) {
        let ring = self.members.ring();
        // Distinct stores of the kinds with reminders (kinds may share one).
        let mut stores: Vec<Arc<dyn StateStore>> = Vec::new();
        for slot in self.kinds.values() {
            if slot.fire.is_some() && !stores.iter().any(|s| Arc::ptr_eq(s, &slot.store)) {
                stores.push(slot.store.clone());
            }
        }
        for p in 0..PARTITIONS {
            let owner = ring.owner(format!("granary.reminders/{p}").as_bytes());
            if owner.map(|o| o.addr) != Some(self.me) {
                continue;
            }
            for store in &stores {
                let due = match store.due_reminders(p, SystemTime::now(), BATCH).await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "reminder scan failed");
                        continue;
                    }
                };
                let deliveries = due.into_iter().map(|r| self.deliver(store.clone(), r));
                futures::future::join_all(deliveries).await;
            }
        }
    }

    async fn deliver(self: &Arc<Self>, store: Arc<dyn StateStore>, r: Reminder) {
        let Some(fire) = self
            .kinds
            .get(r.identity.kind())
            .and_then(|s| s.fire.clone())
        else {
            return;
        };
        let fired = fire(self.clone(), r.identity.key().to_owned(), r.name.clone()).await;
        if let Err(e) = &fired {
            tracing::warn!(identity = %r.identity, reminder = %r.name, error = %e, "reminder not delivered; retried next scan");
            return;
        }
        let updated = match r.period {
            Some(period) => {
                let mut next = r.clone();
                let now = SystemTime::now();
                next.due = r.due + period;
                if next.due <= now {
                    next.due = now + period;
                }
                store.upsert_reminder(&next).await
            }
            None => store
                .delete_reminder(&r.identity, &r.name)
                .await
                .map(|_| ()),
        };
        if let Err(e) = updated {
            tracing::warn!(identity = %r.identity, reminder = %r.name, error = %e, "reminder not advanced");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        let id = Identity::new("Counter", "a");
        assert_eq!(partition_of(&id), partition_of(&id.clone()));
        assert!((0..200).all(|i| partition_of(&Identity::new("K", i.to_string())) < PARTITIONS));
    }
}
