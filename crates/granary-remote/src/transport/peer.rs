//! One remote node as seen by the dialling side: its lanes and its liveness.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::task::AbortHandle;

use super::lane::{self, Lane};
use super::{Inner, PeerEvent};
use crate::node_id::NodeId;

pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// `groups[channel][index]`, in the order of `Inner::channels`.
    groups: Vec<Vec<Arc<Lane>>>,
    node: Mutex<Option<NodeId>>,
    unreachable: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Peer {
    /// Create the peer and spawn one dialling task per lane; `None` after shutdown.
    pub(crate) fn start(inner: &Arc<Inner>, addr: SocketAddr) -> Option<Arc<Self>> {
        let groups = inner
            .channels
            .iter()
            .map(|c| {
                (0..c.lanes)
                    .map(|_| {
                        Arc::new(Lane::new(
                            inner.config.queue_capacity,
                            inner.config.max_frame,
                            inner.config.chunk_size,
                        ))
                    })
                    .collect()
            })
            .collect();
        let peer = Arc::new(Self {
            addr,
            groups,
            node: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        let mut handles =
            vec![inner.spawn(super::heartbeat::send_loop(inner.clone(), peer.clone()))?];
        for (g, spec) in inner.channels.iter().enumerate() {
            for i in 0..spec.lanes {
                let task = lane::run(inner.clone(), peer.clone(), g, i);
                handles.push(inner.spawn(task)?);
            }
        }
        *peer.tasks.lock() = handles;
        Some(peer)
    }

    pub(crate) fn lane(&self, group: usize, index: usize) -> &Arc<Lane> {
        &self.groups[group][index]
    }

    pub(crate) fn node(&self) -> Option<NodeId> {
        *self.node.lock()
    }

    pub(crate) fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Acquire)
    }

    pub(crate) fn frames_queued(&self) -> u64 {
        self.groups
            .iter()
            .flatten()
            .map(|l| l.queue.frames_queued())
            .sum()
    }

    /// The control connection came up with `node`.
    pub(crate) fn on_connected(&self, inner: &Inner, node: NodeId) {
        let old = self.node.lock().replace(node);
        self.unreachable.store(false, Ordering::Release);
        if let Some(old) = old.filter(|old| *old != node) {
            tracing::info!(%old, new = %node, "peer restarted with a new incarnation");
            inner.emit(PeerEvent::Restarted { old, new: node });
        }
        inner.emit(PeerEvent::Connected { node });
    }

    /// The control connection to `node` was lost.
    pub(crate) fn on_disconnected(&self, inner: &Inner, node: NodeId, reason: String) {
        inner.emit(PeerEvent::Disconnected { node, reason });
    }

    /// The control connection failed too often: drop queued frames, fail sends fast.
    pub(crate) fn on_unreachable(&self, inner: &Inner) {
        if self.unreachable.swap(true, Ordering::AcqRel) {
            return;
        }
        let dropped_bytes = self.groups.iter().flatten().map(|l| l.queue.clear()).sum();
        let node = self.node();
        tracing::warn!(addr = %self.addr, ?node, dropped_bytes, "peer unreachable");
        inner.emit(PeerEvent::Unreachable {
            addr: self.addr,
            node,
            dropped_bytes,
        });
    }

    /// Stop every lane task.
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        for lane in self.groups.iter().flatten() {
            lane.queue.clear();
        }
    }
}
