//! Metrics of the virtual-actor layer (activations, state store, directory) through
//! the `metrics` facade; names and labels in `docs/admin.md`.
//!
//! Per-node handles are registered when the node starts, so install the application's
//! recorder (or start `granary-admin`'s with `granary_admin::install_prometheus`)
//! before starting nodes; until one is installed every call is a no-op.

use std::net::SocketAddr;
use std::time::Instant;

use granary_storage::StorageError;
use metrics::Counter;

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

/// An activation of `kind` on `node` was `activated`, `failed` or `passivated`.
pub(crate) fn activation(node: SocketAddr, kind: &str, event: Activation) {
    let name = match event {
        Activation::Activated => "granary_activations_activated_total",
        Activation::Failed => "granary_activations_failed_total",
        Activation::Passivated => "granary_activations_passivated_total",
    };
    metrics::counter!(name, "node" => node.to_string(), "kind" => kind.to_owned()).increment(1);
}

/// What happened to an activation.
pub(crate) enum Activation {
    Activated,
    Failed,
    Passivated,
}

/// One state-store operation (`read` or `write`) of `kind` that started at `start`;
/// a conflicting write also counts in `granary_store_conflicts_total`.
pub(crate) fn store<T>(
    kind: &str,
    op: &'static str,
    start: Instant,
    result: &Result<T, StorageError>,
) {
    let kind = kind.to_owned();
    let name = if op == "read" {
        "granary_store_reads_total"
    } else {
        "granary_store_writes_total"
    };
    let outcome = match result {
        Ok(_) => "ok",
        Err(StorageError::Conflict { .. }) => "conflict",
        Err(_) => "error",
    };
    metrics::counter!(name, "kind" => kind.clone(), "outcome" => outcome).increment(1);
    if op == "write" {
        // Registered by every write, so the family shows (at 0) before a conflict.
        metrics::counter!("granary_store_conflicts_total", "kind" => kind.clone())
            .increment(u64::from(outcome == "conflict"));
    }
    metrics::histogram!("granary_store_seconds", "kind" => kind, "op" => op)
        .record(start.elapsed().as_secs_f64());
}
