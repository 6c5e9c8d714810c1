//! The SQLite side of the file store: connection setup, SQL text, error mapping.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StorageError;

/// The statements the file store runs, with the namespace spliced into table names
/// once (the namespace is validated to `[a-z][a-z0-9_]*`, so this is not injectable).
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) create: String,
    pub(super) select_version: String,
    pub(super) upsert_state: String,
    pub(super) clear_state: String,
    pub(super) read_state: String,
    pub(super) upsert_reminder: String,
    pub(super) delete_reminder: String,
    pub(super) due_reminders: String,
}

impl Sql {
    pub(super) fn new(namespace: &str) -> Sql {
        let state = format!("{namespace}_state");
        let rem = format!("{namespace}_reminders");
        Sql {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {state} (
                     kind TEXT NOT NULL,
                     key TEXT NOT NULL,
                     version INTEGER NOT NULL,
                     data BLOB,
                     PRIMARY KEY (kind, key));
                 CREATE TABLE IF NOT EXISTS {rem} (
                     kind TEXT NOT NULL,
                     key TEXT NOT NULL,
                     name TEXT NOT NULL,
                     owner_partition INTEGER NOT NULL,
                     due_ms INTEGER NOT NULL,
                     period_ms INTEGER,
                     PRIMARY KEY (kind, key, name));
                 CREATE INDEX IF NOT EXISTS {rem}_due ON {rem} (owner_partition, due_ms);"
            ),
            select_version: format!(
                "SELECT version, data IS NOT NULL FROM {state} WHERE kind = ?1 AND key = ?2"
            ),
            upsert_state: format!(
                "INSERT INTO {state} (kind, key, version, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, data = excluded.data"
            ),
            clear_state: format!(
                "UPDATE {state} SET version = ?3, data = NULL WHERE kind = ?1 AND key = ?2"
            ),
            read_state: format!(
                "SELECT version, data FROM {state} WHERE kind = ?1 AND key = ?2 AND data IS NOT NULL"
            ),
            upsert_reminder: format!(
                "INSERT INTO {rem} (kind, key, name, owner_partition, due_ms, period_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, key, name) DO UPDATE SET owner_partition = excluded.owner_partition,
                     due_ms = excluded.due_ms, period_ms = excluded.period_ms"
            ),
            delete_reminder: format!("DELETE FROM {rem} WHERE kind = ?1 AND key = ?2 AND name = ?3"),
            due_reminders: format!(
                "SELECT kind, key, name, owner_partition, due_ms, period_ms FROM {rem}
                 WHERE owner_partition = ?1 AND due_ms <= ?2
                 ORDER BY due_ms, kind, key, name LIMIT ?3"
            ),
        }
    }
}

/// WAL pages (4 KiB each) after which a commit checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4096;

/// Opens one connection to `path` in WAL mode.
///
/// WAL lets readers (in this and other processes) run while one writer commits,
/// and `synchronous = FULL` fsyncs the WAL at every commit, which is what makes an
/// acknowledged write survive `kill -9` and power loss. The busy timeout makes a
/// writer wait for another process's write lock instead of failing at once.
pub(super) fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_error(e, path))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| map_error(e, path))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| map_error(e, path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::unavailable(format!(
            "{}: the file system does not support SQLite WAL mode (got journal_mode={mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| map_error(e, path))?;
    // Checkpoint (copy the WAL back into the database, two more fsyncs) every
    // 16 MiB of WAL instead of SQLite's default 4 MiB: pages rewritten by many
    // commits are copied once, and fewer commits pay for a checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(|e| map_error(e, path))?;
    Ok(conn)
}

/// Turns a SQLite error into the store's error kinds.
pub(super) fn map_error(e: rusqlite::Error, path: &Path) -> StorageError {
    use rusqlite::ErrorCode as C;
    let at = path.display();
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            C::NotADatabase | C::DatabaseCorrupt => {
                StorageError::corrupt(format!("{at} is not a valid SQLite database: {e}"))
            }
            C::DatabaseBusy | C::DatabaseLocked => StorageError::unavailable(format!(
                "{at} stayed locked by another writer past the busy timeout: {e}"
            )),
            _ => StorageError::unavailable(format!("{at}: {e}")),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            StorageError::corrupt(format!("{at}: unexpected stored value: {e}"))
        }
        _ => StorageError::unavailable(format!("{at}: {e}")),
    }
}
