//! Read connections for the file store, reused across reads.
//!
//! In WAL mode every reader sees the last committed transaction without blocking
//! the writer, so reads skip the writer queue entirely: each one borrows an idle
//! connection on a blocking thread, runs one query and gives the connection back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::schema::{connect, map_error};
use crate::StorageError;

/// Idle read connections, opened on demand, at most `max_idle` kept.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout: Duration, max_idle: usize) -> Readers {
        Readers {
            path,
            busy_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `query` on a read connection on tokio's blocking pool.
    ///
    /// If the caller's future is dropped the blocking task still runs to the end and
    /// returns its connection, so cancelling a read never leaks one.
    pub(super) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = match this.idle.lock().pop() {
                Some(conn) => conn,
                None => connect(&this.path, this.busy_timeout)?,
            };
            let result = query(&conn).map_err(|e| map_error(e, &this.path));
            let mut idle = this.idle.lock();
            if idle.len() < this.max_idle {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StorageError::unavailable(format!("read task failed: {e}")))?
    }
}
