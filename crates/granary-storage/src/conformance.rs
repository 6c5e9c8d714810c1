//! The conformance suite: the behaviour every [`StateStore`] provider must show.
//!
//! granary's own providers run these checks from their tests (`tests/conformance.rs`),
//! and a third-party provider can do the same: call each check with a fresh store
//! and fail the test on `Err`. Each check uses identities and reminder partitions
//! no other call uses (process id, time and a counter), so the checks can run in
//! parallel and repeatedly against one persistent database.
//!
//! ```
//! # async fn demo() -> Result<(), granary_storage::conformance::Violation> {
//! use std::sync::Arc;
//! use granary_storage::{conformance, MemoryStore, StateStore};
//! let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
//! conformance::run_all(store).await?;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::{Identity, Reminder, StateStore, StorageError, Version};

/// A provider did something the [`StateStore`] contract forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance violation: {}", self.0)
    }
}

impl std::error::Error for Violation {}

/// The result of one check.
pub type Check = Result<(), Violation>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($msg)+)));
        }
    };
}

/// Converts a store error in a step that must succeed into a violation.
fn step<T>(what: &str, r: Result<T, StorageError>) -> Result<T, Violation> {
    r.map_err(|e| Violation(format!("{what} failed: {e}")))
}

/// Requires `r` to be a conflict reporting `current`.
fn expect_conflict<T: fmt::Debug>(
    what: &str,
    r: Result<T, StorageError>,
    current: Option<Version>,
) -> Check {
    match r {
        Err(StorageError::Conflict { current: got }) if got == current => Ok(()),
        other => Err(Violation(format!(
            "{what}: expected Conflict {{ current: {current:?} }}, got {other:?}"
        ))),
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A value no other call in any process returns (pid, clock, counter).
fn unique() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    nanos ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// An identity no other check uses.
pub fn fresh_identity(kind: &str) -> Identity {
    Identity::new(kind, format!("{:016x}", unique()))
}

/// Runs every check once on `store`.
pub async fn run_all(store: Arc<dyn StateStore>) -> Check {
    round_trip(&*store).await?;
    stale_version_conflicts(&*store).await?;
    concurrent_writers_one_wins_each_round(Arc::clone(&store), 32, 3).await?;
    empty_and_large_values(&*store).await?;
    clear_removes_state_and_keeps_versions_moving(&*store).await?;
    reminders_due_by_partition_and_time(&*store).await?;
    Ok(())
}

/// Nothing before the first write; each write returns a new version; a read gives
/// back exactly the last bytes written and their version.
pub async fn round_trip(store: &dyn StateStore) -> Check {
    let id = fresh_identity("RoundTrip");
    ensure!(
        step("read of a new identity", store.read(&id).await)?.is_none(),
        "a never-written identity must read as None"
    );
    let v1 = step(
        "first write",
        store.write(&id, Bytes::from_static(b"one"), None).await,
    )?;
    let got = step("read after write", store.read(&id).await)?;
    ensure!(
        got.as_ref().map(|s| (&s.data[..], s.version)) == Some((&b"one"[..], v1)),
        "read after the first write returned {got:?}, expected \"one\" at {v1}"
    );
    let v2 = step(
        "second write",
        store.write(&id, Bytes::from_static(b"two"), Some(v1)).await,
    )?;
    ensure!(v2 > v1, "versions must grow: {v1} then {v2}");
    let got = step("read after second write", store.read(&id).await)?;
    ensure!(
        got.as_ref().map(|s| (&s.data[..], s.version)) == Some((&b"two"[..], v2)),
        "read after the second write returned {got:?}, expected \"two\" at {v2}"
    );
    let other = fresh_identity("RoundTrip");
    ensure!(
        step("read of another identity", store.read(&other).await)?.is_none(),
        "writing one identity must not create another"
    );
    Ok(())
}

/// A write or clear with a stale or wrong expected version is refused with the
/// current version and changes nothing.
pub async fn stale_version_conflicts(store: &dyn StateStore) -> Check {
    let id = fresh_identity("Stale");
    let v1 = step(
        "first write",
        store.write(&id, Bytes::from_static(b"a"), None).await,
    )?;
    let v2 = step(
        "second write",
        store.write(&id, Bytes::from_static(b"b"), Some(v1)).await,
    )?;
    expect_conflict(
        "write with a stale version",
        store
            .write(&id, Bytes::from_static(b"stale"), Some(v1))
            .await,
        Some(v2),
    )?;
    expect_conflict(
        "write expecting no state when state exists",
        store.write(&id, Bytes::from_static(b"stale"), None).await,
        Some(v2),
    )?;
    expect_conflict(
        "clear with a stale version",
        store.clear(&id, Some(v1)).await,
        Some(v2),
    )?;
    let got = step("read after conflicts", store.read(&id).await)?;
    ensure!(
        got.as_ref().map(|s| (&s.data[..], s.version)) == Some((&b"b"[..], v2)),
        "a refused write changed the state: {got:?}"
    );
    let absent = fresh_identity("Stale");
    expect_conflict(
        "write expecting a version on an absent identity",
        store
            .write(&absent, Bytes::from_static(b"x"), Some(v1))
            .await,
        None,
    )?;
    ensure!(
        step("read absent", store.read(&absent).await)?.is_none(),
        "a refused write created state"
    );
    Ok(())
}

/// `writers` tasks race to write one identity from the same version, `rounds`
/// times: each round exactly one wins and all others get `Conflict` naming the
/// winner's version.
pub async fn concurrent_writers_one_wins_each_round(
    store: Arc<dyn StateStore>,
    writers: usize,
    rounds: usize,
) -> Check {
    let id = fresh_identity("Race");
    let mut expected: Option<Version> = None;
    for round in 0..rounds {
        let mut tasks = Vec::with_capacity(writers);
        for w in 0..writers {
            let store = Arc::clone(&store);
            let id = id.clone();
            let data = Bytes::from(format!("round {round} writer {w}"));
            tasks.push(tokio::spawn(async move {
                (w, store.write(&id, data, expected).await)
            }));
        }
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            let (w, result) = task
                .await
                .map_err(|e| Violation(format!("writer task panicked: {e}")))?;
            match result {
                Ok(v) => winners.push((w, v)),
                Err(StorageError::Conflict { current }) => conflicts.push(current),
                Err(e) => return Err(Violation(format!("round {round}: writer {w} failed: {e}"))),
            }
        }
        ensure!(
            winners.len() == 1,
            "round {round}: {} of {writers} writers won (must be exactly one): {winners:?}",
            winners.len()
        );
        let (winner, version) = winners[0];
        ensure!(
            conflicts.iter().all(|c| *c == Some(version)),
            "round {round}: conflicts must report the winner's version {version}, got {conflicts:?}"
        );
        let got = step("read after the race", store.read(&id).await)?;
        let want = format!("round {round} writer {winner}");
        ensure!(
            got.as_ref().map(|s| (&s.data[..], s.version)) == Some((want.as_bytes(), version)),
            "round {round}: stored {got:?}, but the winner was writer {winner} at {version}"
        );
        expected = Some(version);
    }
    Ok(())
}

/// Empty values are state (not absence), and 8 MiB values come back byte for byte.
pub async fn empty_and_large_values(store: &dyn StateStore) -> Check {
    let id = fresh_identity("Empty");
    let v = step(
        "write of 0 bytes",
        store.write(&id, Bytes::new(), None).await,
    )?;
    let got = step("read of 0 bytes", store.read(&id).await)?;
    ensure!(
        got.as_ref().map(|s| (s.data.len(), s.version)) == Some((0, v)),
        "an empty value must read back as empty live state at {v}, got {got:?}"
    );

    let id = fresh_identity("Large");
    let big: Bytes = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let v = step("write of 8 MiB", store.write(&id, big.clone(), None).await)?;
    let got = step("read of 8 MiB", store.read(&id).await)?;
    match got {
        Some(s) if s.version == v && s.data == big => {}
        Some(s) => {
            return Err(Violation(format!(
                "8 MiB value came back as {} bytes at {} (wrote {} at {v}), equal: {}",
                s.data.len(),
                s.version,
                big.len(),
                s.data == big
            )))
        }
        None => return Err(Violation("8 MiB value read back as None".into())),
    }
    let v2 = step(
        "overwrite 8 MiB with 1 byte",
        store.write(&id, Bytes::from_static(b"x"), Some(v)).await,
    )?;
    let got = step("read after shrinking", store.read(&id).await)?;
    ensure!(
        got.as_ref().map(|s| (&s.data[..], s.version)) == Some((&b"x"[..], v2)),
        "after shrinking got {got:?}"
    );
    Ok(())
}

/// Clear needs the current version, removes the state, is a no-op for absent state
/// with `expected = None`, and the next write gets a version higher than any
/// before, so a writer holding a pre-clear version still conflicts.
pub async fn clear_removes_state_and_keeps_versions_moving(store: &dyn StateStore) -> Check {
    let id = fresh_identity("Clear");
    step(
        "clear of absent state with None",
        store.clear(&id, None).await,
    )?;
    let v1 = step(
        "write",
        store.write(&id, Bytes::from_static(b"a"), None).await,
    )?;
    expect_conflict(
        "clear expecting no state",
        store.clear(&id, None).await,
        Some(v1),
    )?;
    step(
        "clear with current version",
        store.clear(&id, Some(v1)).await,
    )?;
    ensure!(
        step("read after clear", store.read(&id).await)?.is_none(),
        "state must read as None after clear"
    );
    expect_conflict(
        "second clear with the old version",
        store.clear(&id, Some(v1)).await,
        None,
    )?;
    expect_conflict(
        "write with the pre-clear version",
        store
            .write(&id, Bytes::from_static(b"stale"), Some(v1))
            .await,
        None,
    )?;
    let v2 = step(
        "write after clear",
        store.write(&id, Bytes::from_static(b"b"), None).await,
    )?;
    ensure!(
        v2 > v1,
        "the version after a clear must exceed the one before it: {v1} then {v2}"
    );
    expect_conflict(
        "write with the pre-clear version after a re-create",
        store
            .write(&id, Bytes::from_static(b"stale"), Some(v1))
            .await,
        Some(v2),
    )?;
    Ok(())
}

/// Reminders: listed per partition, due at or before `now`, earliest first, up to
/// `limit`; upsert replaces (also moving partitions); delete reports existence.
pub async fn reminders_due_by_partition_and_time(store: &dyn StateStore) -> Check {
    let p = (unique() % u64::from(u32::MAX - 1)) as u32;
    let q = p + 1;
    let t0 = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let a = fresh_identity("Remind");
    let b = fresh_identity("Remind");
    let r1 = Reminder::new(a.clone(), "first", p, at(10));
    let r2 = Reminder::new(b.clone(), "second", p, at(20)).with_period(Duration::from_secs(60));
    let r3 = Reminder::new(a.clone(), "third", p, at(30));
    let r4 = Reminder::new(b.clone(), "elsewhere", q, at(5));
    for r in [&r3, &r1, &r4, &r2] {
        step("upsert_reminder", store.upsert_reminder(r).await)?;
    }
    let names = |rs: Vec<Reminder>| rs.into_iter().map(|r| r.name).collect::<Vec<_>>();

    let due = step("due at 20", store.due_reminders(p, at(20), 100).await)?;
    ensure!(
        due == vec![r1.clone(), r2.clone()],
        "due at t0+20 in partition {p}: expected [first, second] with all fields, got {due:?}"
    );
    let due = names(step(
        "due before any",
        store.due_reminders(p, at(9), 100).await,
    )?);
    ensure!(due.is_empty(), "nothing is due before t0+10, got {due:?}");
    let due = names(step(
        "due with limit",
        store.due_reminders(p, at(1000), 2).await,
    )?);
    ensure!(
        due == ["first", "second"],
        "limit 2 must give the two earliest, got {due:?}"
    );
    let due = names(step(
        "due in other partition",
        store.due_reminders(q, at(1000), 100).await,
    )?);
    ensure!(
        due == ["elsewhere"],
        "partition {q} must list only its own, got {due:?}"
    );

    // Upsert replaces: push "first" later and move "third" to the other partition.
    step(
        "reschedule",
        store
            .upsert_reminder(&Reminder::new(a.clone(), "first", p, at(40)))
            .await,
    )?;
    step(
        "move",
        store
            .upsert_reminder(&Reminder::new(a.clone(), "third", q, at(1)))
            .await,
    )?;
    let due = names(step(
        "due after upserts",
        store.due_reminders(p, at(1000), 100).await,
    )?);
    ensure!(
        due == ["second", "first"],
        "after upserts partition {p} must list [second, first], got {due:?}"
    );
    let due = names(step(
        "due in other after move",
        store.due_reminders(q, at(1000), 100).await,
    )?);
    ensure!(
        due == ["third", "elsewhere"],
        "after the move partition {q} must list [third, elsewhere], got {due:?}"
    );

    ensure!(
        step("delete existing", store.delete_reminder(&b, "second").await)?,
        "deleting an existing reminder must report true"
    );
    ensure!(
        !step("delete again", store.delete_reminder(&b, "second").await)?,
        "deleting a missing reminder must report false"
    );
    let due = names(step(
        "due after delete",
        store.due_reminders(p, at(1000), 100).await,
    )?);
    ensure!(
        due == ["first"],
        "after delete partition {p} must list [first], got {due:?}"
    );
    Ok(())
}
