//! One connection carried by the broker: the table of open connections and the task
//! that pumps a connection's bytes between the transport's end of an in-process pipe
//! and the broker.
//!
//! Writes of the transport are read from the pipe in pieces of at most `max_message`
//! bytes and each piece is published as one message to the peer's queue, in order
//! (one task per connection, awaiting each publish, on the link's one publishing
//! channel). Messages for the connection that arrive on this node's queue are counted
//! against `max_unconsumed` and written into the pipe by the same task; the router
//! never waits on a connection, so one slow reader never holds up the node's queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, Notify};

use crate::link::Shared;
use crate::message::Kind;

/// Which end of a connection this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// This node opened it.
    Dialled,
    /// Another node opened it.
    Accepted,
}

impl Side {
    fn data_kind(self) -> Kind {
        match self {
            Side::Dialled => Kind::ToAcceptor,
            Side::Accepted => Kind::ToDialler,
        }
    }

    fn close_kind(self) -> Kind {
        match self {
            Side::Dialled => Kind::CloseToAcceptor,
            Side::Accepted => Kind::CloseToDialler,
        }
    }
}

/// What the router hands a connection's task.
pub(crate) enum Inbound {
    /// Bytes from the peer, in order.
    Bytes(Vec<u8>),
    /// The peer closed the connection.
    Closed,
}

/// The router's handle on one open connection.
pub(crate) struct ConnEnd {
    /// The peer's queue.
    pub(crate) peer: Arc<str>,
    tx: mpsc::UnboundedSender<Inbound>,
    /// Bytes handed to the task and not yet written into the pipe.
    pending: Arc<AtomicUsize>,
    /// Ends the task at once (the connection overran its buffer).
    kill: Arc<Notify>,
}

/// The task's side of [`ConnEnd`].
pub(crate) struct ConnTask {
    rx: mpsc::UnboundedReceiver<Inbound>,
    pending: Arc<AtomicUsize>,
    kill: Arc<Notify>,
}

pub(crate) fn pair(peer: Arc<str>) -> (ConnEnd, ConnTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let kill = Arc::new(Notify::new());
    let end = ConnEnd {
        peer,
        tx,
        pending: pending.clone(),
        kill: kill.clone(),
    };
    (end, ConnTask { rx, pending, kill })
}

/// Why a delivery was not handed on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection's (or the link's) unread bytes would exceed their cap: the
    /// connection is being closed.
    Overrun,
}

impl ConnEnd {
    /// Hand `bytes` to the task, unless that takes this connection over `cap` or the
    /// link over `total_cap` unread bytes (`total` counts every connection's).
    pub(crate) fn deliver(
        &self,
        bytes: Vec<u8>,
        cap: usize,
        total: &AtomicUsize,
        total_cap: usize,
    ) -> Result<(), Refused> {
        let len = bytes.len();
        let pending = self.pending.load(Ordering::Acquire);
        if pending + len > cap || total.load(Ordering::Acquire) + len > total_cap {
            self.kill.notify_one();
            return Err(Refused::Overrun);
        }
        self.pending.fetch_add(len, Ordering::AcqRel);
        total.fetch_add(len, Ordering::AcqRel);
        // Fails only when the task ended meanwhile; it gives back what `pending`
        // holds when it forgets this end, under the table lock the caller holds.
        let _ = self.tx.send(Inbound::Bytes(bytes));
        Ok(())
    }

    /// The peer closed the connection.
    pub(crate) fn peer_closed(&self) {
        let _ = self.tx.send(Inbound::Closed);
    }

    fn is(&self, task: &ConnTask) -> bool {
        Arc::ptr_eq(&self.pending, &task.pending)
    }
}

/// Every open connection of a link, by side.
#[derive(Default)]
pub(crate) struct Table {
    /// Connections this node dialled, by connection id.
    pub(crate) dialled: HashMap<u64, ConnEnd>,
    /// Connections other nodes dialled, by (their queue, their connection id).
    pub(crate) accepted: HashMap<(Arc<str>, u64), ConnEnd>,
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.dialled.len() + self.accepted.len()
    }

    /// Removes the end that belongs to `task`, if it is still there.
    fn forget(&mut self, side: Side, peer: &Arc<str>, id: u64, task: &ConnTask) {
        match side {
            Side::Dialled => {
                if self.dialled.get(&id).is_some_and(|e| e.is(task)) {
                    self.dialled.remove(&id);
                }
            }
            Side::Accepted => {
                let key = (peer.clone(), id);
                if self.accepted.get(&key).is_some_and(|e| e.is(task)) {
                    self.accepted.remove(&key);
                }
            }
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The transport dropped or shut its end.
    Local,
    /// The peer sent a close marker.
    Peer,
    /// The router dropped the connection (the link closed or lost the broker).
    Dropped,
    /// More unread bytes arrived than the caps allow.
    Overrun,
    /// Publishing failed: the broker is gone.
    Broker,
}

/// Pump one connection until it ends, then forget it and, unless the peer closed it
/// or the broker is gone, tell the peer with a close marker.
pub(crate) async fn run(
    shared: Arc<Shared>,
    side: Side,
    peer: Arc<str>,
    id: u64,
    pipe: DuplexStream,
    task: ConnTask,
) {
    let (mut rd, mut wr) = tokio::io::split(pipe);
    let ConnTask {
        mut rx,
        pending,
        kill,
    } = task;
    let outbound = async {
        let mut buf = vec![0u8; shared.config.max_message];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return Ended::Local,
                Ok(n) => n,
            };
            if shared
                .publish(&peer, side.data_kind(), id, &buf[..n])
                .await
                .is_err()
            {
                return Ended::Broker;
            }
        }
    };
    let inbound = async {
        while let Some(message) = rx.recv().await {
            match message {
                Inbound::Bytes(bytes) => {
                    let len = bytes.len();
                    if wr.write_all(&bytes).await.is_err() {
                        return Ended::Local;
                    }
                    pending.fetch_sub(len, Ordering::AcqRel);
                    shared.buffered.fetch_sub(len, Ordering::AcqRel);
                }
                Inbound::Closed => return Ended::Peer,
            }
        }
        Ended::Dropped
    };
    let ended = tokio::select! {
        e = outbound => e,
        e = inbound => e,
        () = kill.notified() => Ended::Overrun,
    };
    tracing::debug!(peer = %peer, id, ?side, ?ended, "broker connection ended");
    // Forgotten under the table lock, after which the router adds nothing to
    // `pending`: what is left is given back to the link's budget.
    let task = ConnTask { rx, pending, kill };
    shared.table.lock().forget(side, &peer, id, &task);
    let left = task.pending.swap(0, Ordering::AcqRel);
    shared.buffered.fetch_sub(left, Ordering::AcqRel);
    if ended == Ended::Overrun {
        shared.count_overrun();
    }
    if !matches!(ended, Ended::Peer | Ended::Broker) {
        let _ = shared.publish(&peer, side.close_kind(), id, &[]).await;
    }
    // Dropping both halves ends the transport's stream: end of file for its reader,
    // a broken pipe for its writer.
    drop((rd, wr));
    shared.connection_ended();
}
