//! Local watchers of remote actors, notified on `Terminated` or when the node is lost.

use std::net::SocketAddr;
use std::sync::Arc;

use granary_core::{ActorId, StopReason, Terminated};

use super::{remote_actor_id, NodeInner};

/// A remote actor: its node's address and its exposed name.
pub(crate) type WatchKey = (SocketAddr, Arc<str>);

/// Local watchers per remote actor.
pub(crate) type WatchTable = std::collections::HashMap<WatchKey, Vec<LocalWatch>>;

/// One local watcher of a remote actor.
pub(crate) struct LocalWatch {
    watcher: ActorId,
    notify: Box<dyn FnOnce(Terminated) + Send>,
}

/// Add a watcher; `true` if it is the first for this remote actor (send a `Watch`).
pub(crate) fn add(
    node: &NodeInner,
    addr: SocketAddr,
    name: &str,
    watcher: ActorId,
    notify: Box<dyn FnOnce(Terminated) + Send>,
) -> bool {
    let mut watches = node.watches.lock();
    let list = watches.entry((addr, Arc::from(name))).or_default();
    list.push(LocalWatch { watcher, notify });
    list.len() == 1
}

/// Remove a watcher; `true` if none is left for this remote actor (send an `Unwatch`).
pub(crate) fn remove(node: &NodeInner, addr: SocketAddr, name: &str, watcher: ActorId) -> bool {
    let mut watches = node.watches.lock();
    let key = (addr, Arc::from(name));
    let Some(list) = watches.get_mut(&key) else {
        return false;
    };
    list.retain(|w| w.watcher != watcher);
    if list.is_empty() {
        watches.remove(&key);
        return true;
    }
    false
}

/// The remote actor stopped: notify and forget its watchers.
pub(crate) fn terminated(node: &NodeInner, addr: SocketAddr, name: &str, reason: StopReason) {
    let list = node.watches.lock().remove(&(addr, Arc::from(name)));
    for w in list.into_iter().flatten() {
        (w.notify)(Terminated {
            id: remote_actor_id(addr, name),
            reason: reason.clone(),
        });
    }
}

/// The node at `addr` is lost: every watched actor there counts as stopped (`NodeLost`).
pub(crate) fn node_lost(node: &NodeInner, addr: SocketAddr) {
    let lost: Vec<(WatchKey, Vec<LocalWatch>)> = {
        let mut watches = node.watches.lock();
        let keys: Vec<_> = watches
            .keys()
            .filter(|(a, _)| *a == addr)
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| watches.remove(&k).map(|v| (k, v)))
            .collect()
    };
    for ((addr, name), list) in lost {
        for w in list {
            (w.notify)(Terminated {
                id: remote_actor_id(addr, &name),
                reason: StopReason::NodeLost,
            });
        }
    }
}
