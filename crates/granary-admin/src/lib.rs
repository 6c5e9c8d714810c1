//! granary-admin: a node's management endpoint and the `granary` command-line tool.
//!
//! An [`Admin`] serves, on an address of its own (off unless started):
//!
//! - `/healthz`: the process answers;
//! - `/readyz`: the node is Up, holds its host lease and reaches its stores (JSON, 503
//!   when not ready);
//! - `/metrics`: Prometheus text from the `metrics` facade;
//! - `/cluster`: members, status, incarnation, ring share, endpoints (JSON);
//! - `/activations`: live activations per kind here; `?kind=K&key=k`: where one
//!   identity lives (JSON);
//! - `/`: a live dashboard (no external resources), fed by `/api/overview`.
//!
//! A collector samples the node's counters every second into the `metrics` facade
//! (metric names in `docs/admin.md`), so an application that installs another
//! exporter gets the same series.
//!
//! ```no_run
//! # async fn demo(node: granary_virtual::Node) -> Result<(), granary_admin::AdminError> {
//! let admin = granary_admin::Admin::builder(node.probe())
//!     .bind("127.0.0.1:9000".parse().unwrap())
//!     .start()
//!     .await?;
//! println!("dashboard on http://{}/", admin.local_addr());
//! # Ok(()) }
//! ```
//!
//! It sits on granary-virtual (a node's [`granary_virtual::NodeProbe`]) and
//! granary-cluster (membership and the ring); nothing below it knows it exists.

#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod client;
mod collector;
mod error;
mod server;
pub mod views;

pub use client::get_json;
pub use error::AdminError;
pub use server::{install_prometheus, Admin, AdminBuilder, ADMIN_METADATA_KEY};
