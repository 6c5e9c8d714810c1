//! The SQL the PostgreSQL store runs, with the namespace spliced into table names
//! once (the namespace is validated to `[a-z][a-z0-9_]*`, so this is not injectable).

/// Statement texts for one namespace.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) namespace: String,
    pub(super) create: String,
    pub(super) read: String,
    pub(super) current: String,
    pub(super) insert: String,
    pub(super) update: String,
    pub(super) clear: String,
    pub(super) upsert_reminder: String,
    pub(super) delete_reminder: String,
    pub(super) due_reminders: String,
}

impl Sql {
    pub(super) fn new(namespace: &str) -> Sql {
        let state = format!("{namespace}_state");
        let rem = format!("{namespace}_reminders");
        Sql {
            namespace: namespace.to_owned(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {state} (
                     kind TEXT NOT NULL,
                     key TEXT NOT NULL,
                     version BIGINT NOT NULL,
                     data BYTEA,
                     PRIMARY KEY (kind, key));
                 CREATE TABLE IF NOT EXISTS {rem} (
                     kind TEXT NOT NULL,
                     key TEXT NOT NULL,
                     name TEXT NOT NULL,
                     owner_partition BIGINT NOT NULL,
                     due_ms BIGINT NOT NULL,
                     period_ms BIGINT,
                     PRIMARY KEY (kind, key, name));
                 CREATE INDEX IF NOT EXISTS {rem}_due ON {rem} (owner_partition, due_ms);"
            ),
            read: format!(
                "SELECT version, data FROM {state} WHERE kind = $1 AND key = $2 AND data IS NOT NULL"
            ),
            current: format!(
                "SELECT version FROM {state} WHERE kind = $1 AND key = $2 AND data IS NOT NULL"
            ),
            // First write, or first write after a clear (the row is a tombstone):
            // concurrent inserts are serialized by the primary key, and the loser's
            // DO UPDATE finds live data and returns no row.
            insert: format!(
                "INSERT INTO {state} AS s (kind, key, version, data) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (kind, key) DO UPDATE SET version = s.version + 1, data = EXCLUDED.data
                 WHERE s.data IS NULL
                 RETURNING version"
            ),
            // Compare-and-set: in READ COMMITTED a concurrent updater waits for the
            // row lock, then re-checks the WHERE against the committed row.
            update: format!(
                "UPDATE {state} SET version = version + 1, data = $3
                 WHERE kind = $1 AND key = $2 AND version = $4 AND data IS NOT NULL
                 RETURNING version"
            ),
            clear: format!(
                "UPDATE {state} SET version = version + 1, data = NULL
                 WHERE kind = $1 AND key = $2 AND version = $3 AND data IS NOT NULL"
            ),
            upsert_reminder: format!(
                "INSERT INTO {rem} (kind, key, name, owner_partition, due_ms, period_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (kind, key, name) DO UPDATE SET owner_partition = EXCLUDED.owner_partition,
                     due_ms = EXCLUDED.due_ms, period_ms = EXCLUDED.period_ms"
            ),
            delete_reminder: format!("DELETE FROM {rem} WHERE kind = $1 AND key = $2 AND name = $3"),
            due_reminders: format!(
                "SELECT kind, key, name, owner_partition, due_ms, period_ms FROM {rem}
                 WHERE owner_partition = $1 AND due_ms <= $2
                 ORDER BY due_ms, kind COLLATE \"C\", key COLLATE \"C\", name COLLATE \"C\"
                 LIMIT $3"
            ),
        }
    }
}
