//! Stateless workers (seed 000 "hot stateless actor scaling"): up to `pool`
//! activations of one identity per node, not recorded in the directory. A node that
//! hosts the kind serves its own calls with local workers; other callers are sent to a
//! host by the directory owner.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use granary_storage::Identity;

use super::Runtime;
use crate::protocol::{Failure, Location, Reply};

impl Runtime {
    /// The pool size if `kind` is a stateless worker kind registered here.
    pub(crate) fn stateless_pool(&self, kind: &str) -> Option<usize> {
        self.kinds
            .get(kind)
            .and_then(|s| s.kind.config().stateless_workers)
    }

    /// A worker of `identity` here: a new one while the pool is not full and every
    /// live worker is busy, else the next live one in turn.
    pub(crate) async fn worker_here(self: &Arc<Self>, identity: &Identity) -> Reply {
        if self.is_shutting_down() || !self.members.is_alive(self.me) {
            return Reply::Failed(Failure::ShuttingDown);
        }
        let (Some(slot), Some(pool)) = (
            self.kinds.get(identity.kind()),
            self.stateless_pool(identity.kind()),
        ) else {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        };
        let pick = |rt: &Self| -> (usize, Option<Arc<str>>) {
            let workers = rt.workers.lock();
            let live: Vec<&Arc<str>> = workers
                .get(identity)
                .map(|ws| {
                    ws.iter()
                        .filter(|w| !w.tracker.is_closed())
                        .map(|w| &w.name)
                        .collect()
                })
                .unwrap_or_default();
            if live.is_empty() {
                return (0, None);
            }
            let turn = rt.round_robin.fetch_add(1, Ordering::Relaxed);
            (live.len(), Some(live[turn % live.len()].clone()))
        };
        let (live, next) = pick(self);
        let idle_one = self.workers.lock().get(identity).and_then(|ws| {
            ws.iter()
                .find(|w| !w.tracker.is_closed() && w.tracker.is_idle())
                .map(|w| w.name.clone())
        });
        let name = match (idle_one, next) {
            (Some(name), _) => name,
            (None, Some(name)) if live >= pool.max(1) => name,
            _ => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let name = crate::door::activation_name(identity, true, seq);
                match slot
                    .kind
                    .start(
                        self.clone(),
                        identity.clone(),
                        name.clone(),
                        slot.store.clone(),
                    )
                    .await
                {
                    Ok(worker) => {
                        let mut workers = self.workers.lock();
                        let ws = workers.entry(identity.clone()).or_default();
                        if ws.iter().filter(|w| !w.tracker.is_closed()).count() >= pool.max(1) {
                            // Another call filled the pool meanwhile: use that one.
                            worker.tracker.close();
                            worker.door.stop();
                            let live = ws.iter().find(|w| !w.tracker.is_closed());
                            match live {
                                Some(w) => w.name.clone(),
                                None => return Reply::Failed(Failure::Other("no worker".into())),
                            }
                        } else {
                            ws.push(worker);
                            name
                        }
                    }
                    Err(e) => return Reply::Failed(Failure::Other(e.to_string())),
                }
            }
        };
        Reply::Located(Location {
            host: self.me,
            name,
        })
    }

    /// Forgets a stopped worker; `true` if `name` was one.
    pub(crate) fn remove_worker(&self, identity: &Identity, name: &str) -> bool {
        let mut workers = self.workers.lock();
        let Some(ws) = workers.get_mut(identity) else {
            return false;
        };
        let before = ws.len();
        ws.retain(|w| *w.name != *name);
        let removed = ws.len() != before;
        if ws.is_empty() {
            workers.remove(identity);
        }
        removed
    }
}
