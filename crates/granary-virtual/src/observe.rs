//! Metrics of the virtual-actor layer (activations, state store, directory) through
//! the `metrics` facade; names and labels in `docs/admin.md`.
//!
//! Per-node handles are registered when the node starts, so install the application's
//! recorder (or start `granary-admin`'s with `granary_admin::install_prometheus`)
//! before starting nodes; until one is installed every call is a no-op.

use std::net::SocketAddr;
use std::time::Instant;

use granary_storage::StorageError;
use metrics::{Counter, Histogram};

/// This node's directory counters, registered once.
pub(crate) struct DirectoryMeters {
    lookups: Counter,
    cache_hits: Counter,
    handoffs: Counter,
}

impl DirectoryMeters {
    pub(crate) fn new(node: SocketAddr) -> Self {
        let node = node.to_string();
        Self {
            lookups: metrics::counter!("granary_directory_lookups_total", "node" => node.clone()),
            cache_hits: metrics::counter!("granary_directory_cache_hits_total", "node" => node.clone()),
            handoffs: metrics::counter!("granary_directory_handoffs_total", "node" => node),
        }
    }

    /// A `locate` that found the identity in the location cache.
    pub(crate) fn cache_hit(&self) {
        self.cache_hits.increment(1);
    }

    /// A `locate` that asked the identity's directory owner.
    pub(crate) fn lookup(&self) {
        self.lookups.increment(1);
    }

    /// A live activation registered with a new directory owner after the ring moved.
    pub(crate) fn handoff(&self) {
        self.handoffs.increment(1);
    }
}

/// What happened to an activation.
pub(crate) enum Activation {
    Activated,
    Failed,
    Passivated,
}

/// A state-store operation.
#[derive(Clone, Copy)]
pub(crate) enum StoreOp {
    Read,
    Write,
}

/// The counters of one store operation by outcome (`ok`, `conflict`, `error`), and
/// its latency.
struct StoreMeters {
    ok: Counter,
    conflict: Counter,
    error: Counter,
    seconds: Histogram,
}

impl StoreMeters {
    fn new(name: &'static str, kind: &str, op: &'static str) -> Self {
        let by = |outcome: &'static str| metrics::counter!(name, "kind" => kind.to_owned(), "outcome" => outcome);
        Self {
            ok: by("ok"),
            conflict: by("conflict"),
            error: by("error"),
            seconds: metrics::histogram!("granary_store_seconds", "kind" => kind.to_owned(), "op" => op),
        }
    }
}

/// One hosted kind's counters on this node, registered once when the node starts
/// (an activation then costs an increment, not a label built per event).
pub(crate) struct KindMeters {
    activated: Counter,
    failed: Counter,
    passivated: Counter,
    reads: StoreMeters,
    writes: StoreMeters,
    conflicts: Counter,
}

impl KindMeters {
    pub(crate) fn new(node: SocketAddr, kind: &str) -> Self {
        let node = node.to_string();
        let activations = |name: &'static str| metrics::counter!(name, "node" => node.clone(), "kind" => kind.to_owned());
        Self {
            activated: activations("granary_activations_activated_total"),
            failed: activations("granary_activations_failed_total"),
            passivated: activations("granary_activations_passivated_total"),
            reads: StoreMeters::new("granary_store_reads_total", kind, "read"),
            writes: StoreMeters::new("granary_store_writes_total", kind, "write"),
            // Registered with the kind, so the family shows (at 0) before a conflict.
            conflicts: metrics::counter!("granary_store_conflicts_total", "kind" => kind.to_owned()),
        }
    }

    /// An activation of this kind was `activated`, `failed` or `passivated`.
    pub(crate) fn activation(&self, event: Activation) {
        match event {
            Activation::Activated => &self.activated,
            Activation::Failed => &self.failed,
            Activation::Passivated => &self.passivated,
        }
        .increment(1);
    }

    /// One state-store operation of this kind that started at `start`; a conflicting
    /// write also counts in `granary_store_conflicts_total`.
    pub(crate) fn store<T>(&self, op: StoreOp, start: Instant, result: &Result<T, StorageError>) {
        let meters = match op {
            StoreOp::Read => &self.reads,
            StoreOp::Write => &self.writes,
        };
        match result {
            Ok(_) => meters.ok.increment(1),
            Err(StorageError::Conflict { .. }) => {
                meters.conflict.increment(1);
                if let StoreOp::Write = op {
                    self.conflicts.increment(1);
                }
            }
            Err(_) => meters.error.increment(1),
        }
        meters.seconds.record(start.elapsed().as_secs_f64());
    }
}
