//! The file store's single writer thread and its group commit.
//!
//! Every change goes through one queue to one thread that owns the write
//! connection. The thread takes everything that is waiting (up to a cap), runs it
//! in ONE `BEGIN IMMEDIATE … COMMIT` transaction, and only then answers each caller.
//! One fsync thus acknowledges a whole batch: with 16 concurrent writers the cost
//! of durability is shared instead of paid per write. `BEGIN IMMEDIATE` takes
//! SQLite's write lock first, so the version checks inside the transaction see the
//! latest commits of every process sharing the file, which is what makes
//! compare-and-set correct across processes.
//!
//! Right after a batch is answered its callers are busy sending their next
//! writes, so the next batch would start with only the few that were already
//! queued. The writer therefore lingers up to 200 µs, and only while fewer
//! requests are waiting than the last batch held, for them to arrive: with 16
//! writers batches hold ~16 instead of ~10, and a lone writer never waits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::schema::{map_error, Sql};
use crate::{Identity, StorageError, Version};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Longest a batch waits for callers of the previous batch to come back.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);
/// Most payload bytes committed in one transaction (a batch always takes at least one).
const MAX_BATCH_BYTES: usize = 64 << 20;

/// A change for the writer thread.
#[derive(Debug)]
pub(super) enum Change {
    /// Create the tables if missing.
    Migrate,
    /// Compare-and-set write.
    Write {
        identity: Identity,
        data: Bytes,
        expected: Option<Version>,
    },
    /// Compare-and-set clear.
    Clear {
        identity: Identity,
        expected: Option<Version>,
    },
    /// Insert or replace a reminder (times already in milliseconds).
    UpsertReminder {
        identity: Identity,
        name: String,
        partition: u32,
        due_ms: i64,
        period_ms: Option<i64>,
    },
    /// Delete a reminder.
    DeleteReminder { identity: Identity, name: String },
}

impl Change {
    fn payload_len(&self) -> usize {
        match self {
            Change::Write { data, .. } => data.len(),
            _ => 0,
        }
    }
}

/// What a committed change reports back.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The new version of a write.
    Written(Version),
    /// A change with nothing to report.
    Done,
    /// Whether a deleted reminder existed.
    Existed(bool),
}

/// A change and where to send its result.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) change: Change,
    pub(super) reply: oneshot::Sender<Result<Outcome, StorageError>>,
}

/// Runs the writer loop until every sender is gone (the store was dropped).
pub(super) fn run(
    conn: Connection,
    sql: Arc<Sql>,
    path: PathBuf,
    mut queue: mpsc::Receiver<Request>,
) {
    // A one-thread runtime only to wait on the queue with a deadline (see linger).
    let waiter = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            tracing::warn!("file store writer runs without lingering: {e}");
            None
        }
    };
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let mut last_size = 0usize;
    while let Some(first) = queue.blocking_recv() {
        let mut bytes = first.change.payload_len();
        batch.push(first);
        // Take whatever queued up while the last batch was committing.
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.change.payload_len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // Linger: the callers just answered are usually about to send their next
        // write. If fewer requests are here than in the last batch, wait a little
        // (at most LINGER) for them, so one fsync covers them too instead of the
        // next one. A lone writer (last batch of 1) never waits.
        if let Some(rt) = &waiter {
            if batch.len() < last_size {
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < last_size.min(MAX_BATCH) && bytes < MAX_BATCH_BYTES {
                    let next = rt
                        .block_on(async { tokio::time::timeout_at(deadline, queue.recv()).await });
                    match next {
                        Ok(Some(next)) => {
                            bytes += next.change.payload_len();
                            batch.push(next);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        let size = batch.len();
        last_size = size;
        let started = std::time::Instant::now();
        commit(&conn, &sql, &path, &mut batch);
        tracing::trace!(
            size,
            micros = started.elapsed().as_micros() as u64,
            "group commit"
        );
    }
    tracing::debug!(path = %path.display(), "file store writer stopped");
}

/// Applies `batch` in one transaction, then answers every request in it.
fn commit(conn: &Connection, sql: &Sql, path: &Path, batch: &mut Vec<Request>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = map_error(e, path);
        for req in batch.drain(..) {
            let _ = req.reply.send(Err(clone_error(&err)));
        }
        return;
    }
    let mut results: Vec<Option<Result<Outcome, StorageError>>> = Vec::with_capacity(batch.len());
    let mut aborted: Option<StorageError> = None;
    for req in batch.iter() {
        // A caller that gave up (dropped its future, timed out) is skipped: its
        // change then never happens, which is one of the two allowed outcomes.
        if req.reply.is_closed() {
            results.push(None);
            continue;
        }
        match apply(conn, sql, &req.change) {
            Ok(result) => results.push(Some(result)),
            Err(e) => {
                let err = map_error(e, path);
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (I/O error, disk
                    // full): nothing in this batch is committed.
                    aborted = Some(err);
                    break;
                }
                // Only this statement failed; it changed nothing.
                results.push(Some(Err(err)));
            }
        }
    }
    if aborted.is_none() {
        if let Err(e) = conn.execute_batch("COMMIT") {
            aborted = Some(map_error(e, path));
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    match aborted {
        Some(err) => {
            for req in batch.drain(..) {
                let _ = req.reply.send(Err(clone_error(&err)));
            }
        }
        None => {
            for (req, result) in batch.drain(..).zip(results) {
                if let Some(result) = result {
                    let _ = req.reply.send(result);
                }
            }
        }
    }
}

/// Applies one change inside the open transaction. The outer error is SQLite's;
/// the inner result is the change's own (for example a version conflict).
fn apply(
    conn: &Connection,
    sql: &Sql,
    change: &Change,
) -> rusqlite::Result<Result<Outcome, StorageError>> {
    match change {
        Change::Migrate => {
            conn.execute_batch(&sql.create)?;
            Ok(Ok(Outcome::Done))
        }
        Change::Write {
            identity,
            data,
            expected,
        } => {
            let row = current(conn, sql, identity)?;
            let live = row.and_then(|(v, live)| live.then_some(v));
            if live != *expected {
                return Ok(Err(StorageError::Conflict { current: live }));
            }
            let new = row.map_or(Version::FIRST, |(v, _)| v.next());
            conn.prepare_cached(&sql.upsert_state)?.execute(params![
                identity.kind(),
                identity.key(),
                new.to_stored(),
                data.as_ref()
            ])?;
            Ok(Ok(Outcome::Written(new)))
        }
        Change::Clear { identity, expected } => {
            let row = current(conn, sql, identity)?;
            let live = row.and_then(|(v, live)| live.then_some(v));
            if live != *expected {
                return Ok(Err(StorageError::Conflict { current: live }));
            }
            if let Some(v) = live {
                // Keep a tombstone with the next version so versions never repeat.
                conn.prepare_cached(&sql.clear_state)?.execute(params![
                    identity.kind(),
                    identity.key(),
                    v.next().to_stored()
                ])?;
            }
            Ok(Ok(Outcome::Done))
        }
        Change::UpsertReminder {
            identity,
            name,
            partition,
            due_ms,
            period_ms,
        } => {
            conn.prepare_cached(&sql.upsert_reminder)?.execute(params![
                identity.kind(),
                identity.key(),
                name,
                i64::from(*partition),
                due_ms,
                period_ms
            ])?;
            Ok(Ok(Outcome::Done))
        }
        Change::DeleteReminder { identity, name } => {
            let n = conn.prepare_cached(&sql.delete_reminder)?.execute(params![
                identity.kind(),
                identity.key(),
                name
            ])?;
            Ok(Ok(Outcome::Existed(n > 0)))
        }
    }
}

/// The row's version and whether it holds live state (`false`: a tombstone).
fn current(
    conn: &Connection,
    sql: &Sql,
    identity: &Identity,
) -> rusqlite::Result<Option<(Version, bool)>> {
    let row: Option<(i64, bool)> = conn
        .prepare_cached(&sql.select_version)?
        .query_row(params![identity.kind(), identity.key()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((raw, live)) => match Version::from_stored(raw) {
            Ok(v) => Ok(Some((v, live))),
            Err(_) => Err(rusqlite::Error::IntegralValueOutOfRange(0, raw)),
        },
    }
}

/// The same error for every request of a failed batch.
fn clone_error(err: &StorageError) -> StorageError {
    match err {
        StorageError::Corrupt { reason } => StorageError::corrupt(reason.clone()),
        StorageError::Unavailable { reason } => StorageError::unavailable(reason.clone()),
        other => StorageError::unavailable(other.to_string()),
    }
}
