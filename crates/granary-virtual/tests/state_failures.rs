//! A failed state write is never stored later, and `on_deactivate` runs on every
//! end of an activation with its reason.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use common::{cluster_config, WAIT};
use granary_core::Message;
use granary_remote::register_message;
use granary_storage::{Identity, MemoryStore, Reminder, StateStore, StorageError, Stored, Version};
use granary_virtual::prelude::*;
use granary_virtual::DeactivationReason;
use serde::{Deserialize, Serialize};

/// A memory store whose writes fail with `Unavailable` while `failing` is set.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

#[async_trait]
impl StateStore for FlakyStore {
    fn provider(&self) -> &'static str {
        "flaky-memory"
    }
    async fn migrate(&self) -> Result<(), StorageError> {
        self.inner.migrate().await
    }
    async fn read(&self, identity: &Identity) -> Result<Option<Stored>, StorageError> {
        self.inner.read(identity).await
    }
    async fn write(
        &self,
        identity: &Identity,
        data: Bytes,
        expected: Option<Version>,
    ) -> Result<Version, StorageError> {
        if self.failing.load(Ordering::Acquire) {
            return Err(StorageError::Unavailable {
                reason: "failing on demand".into(),
            });
        }
        self.inner.write(identity, data, expected).await
    }
    async fn clear(
        &self,
        identity: &Identity,
        expected: Option<Version>,
    ) -> Result<(), StorageError> {
        self.inner.clear(identity, expected).await
    }
    async fn upsert_reminder(&self, reminder: &Reminder) -> Result<(), StorageError> {
        self.inner.upsert_reminder(reminder).await
    }
    async fn delete_reminder(&self, identity: &Identity, name: &str) -> Result<bool, StorageError> {
        self.inner.delete_reminder(identity, name).await
    }
    async fn due_reminders(
        &self,
        partition: u32,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Reminder>, StorageError> {
        self.inner.due_reminders(partition, now, limit).await
    }
}

/// Counts increments; records every `on_deactivate` with its reason.
struct Tally;

#[derive(Serialize, Deserialize, Default, Debug)]
struct TallyState {
    n: u64,
}

/// (key, reason, incarnation) of every `on_deactivate`, with a condition to wait on.
type Ends = (
    Mutex<Vec<(String, DeactivationReason, u64)>>,
    tokio::sync::Notify,
);

fn ends() -> &'static Ends {
    static ENDS: OnceLock<Ends> = OnceLock::new();
    ENDS.get_or_init(Default::default)
}

/// Waits (on the log's condition, with a deadline) for `key`'s first `on_deactivate`.
async fn ended(key: &str) -> Option<(DeactivationReason, u64)> {
    let (log, notify) = ends();
    tokio::time::timeout(WAIT, async {
        loop {
            let notified = notify.notified();
            if let Some((_, r, i)) = log.lock().unwrap().iter().find(|(k, ..)| k == key) {
                return (*r, *i);
            }
            notified.await;
        }
    })
    .await
    .ok()
}

/// The incarnation each activation saw when it handled `Incarnation`.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Incarnation;
impl Message for Incarnation {
    type Reply = u64;
}
register_message!(Incarnation, "test.state.Incarnation");

impl VirtualActor for Tally {
    const KIND: &'static str = "test.Tally";
    type Key = String;
    type State = TallyState;
    fn activate(_key: &String) -> Self {
        Tally
    }
    async fn on_deactivate(&mut self, ctx: &mut VirtualContext<'_, Self>) {
        let reason = ctx
            .deactivation_reason()
            .expect("a reason inside on_deactivate");
        let (log, notify) = ends();
        log.lock()
            .unwrap()
            .push((ctx.key().clone(), reason, ctx.node_incarnation()));
        notify.notify_waiters();
    }
}

/// Adds one and writes; the reply is the new count or the error's text.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Incr;
impl Message for Incr {
    type Reply = Result<u64, String>;
}
register_message!(Incr, "test.state.Incr");

impl VirtualHandler<Incr> for Tally {
    async fn handle(&mut self, _: Incr, ctx: &mut VirtualContext<'_, Self>) -> Result<u64, String> {
        ctx.state_mut().n += 1;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok(ctx.state().n)
    }
}

/// Adds one without writing, then panics if asked to.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct IncrUnwritten {
    panic: bool,
}
impl Message for IncrUnwritten {
    type Reply = u64;
}
register_message!(IncrUnwritten, "test.state.IncrUnwritten");

impl VirtualHandler<IncrUnwritten> for Tally {
    async fn handle(&mut self, msg: IncrUnwritten, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        ctx.state_mut().n += 1;
        if msg.panic {
            panic!("handler fails after changing the state");
        }
        ctx.state().n
    }
}

/// Deactivates once idle.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Rest;
impl Message for Rest {
    type Reply = ();
}
register_message!(Rest, "test.state.Rest");

impl VirtualHandler<Rest> for Tally {
    async fn handle(&mut self, _: Rest, ctx: &mut VirtualContext<'_, Self>) {
        ctx.deactivate_on_idle();
    }
}

impl VirtualHandler<Incarnation> for Tally {
    async fn handle(&mut self, _: Incarnation, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        ctx.node_incarnation()
    }
}

fn tally_kind() -> Kind<Tally> {
    Kind::<Tally>::new()
        .handles::<Incr>()
        .handles::<IncrUnwritten>()
        .handles::<Rest>()
        .handles::<Incarnation>()
}

async fn one_node(store: Arc<dyn StateStore>, kind: Kind<Tally>) -> Node {
    Node::builder()
        .store_instance(store)
        .cluster_config(cluster_config())
        .host(kind)
        .start()
        .await
        .expect("node starts")
}

async fn stored_count(store: &dyn StateStore, key: &str) -> u64 {
    match store.read(&Identity::new(Tally::KIND, key)).await.unwrap() {
        Some(s) => serde_json::from_slice::<TallyState>(&s.data).unwrap().n,
        None => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_failed_is_not_stored_by_a_later_write_or_the_deactivation() {
    let store = Arc::new(FlakyStore::default());
    let node = one_node(store.clone(), tally_kind()).await;
    let key = "flaky-1".to_string();
    let r = node.get::<Tally>(key.clone());
    assert_eq!(r.ask(Incr).await.unwrap(), Ok(1));

    store.failing.store(true, Ordering::Release);
    let failed = r.ask(Incr).await.unwrap();
    assert!(failed.is_err(), "the write failed: {failed:?}");
    assert_eq!(
        ended(&key).await.map(|(r, _)| r),
        Some(DeactivationReason::StorageFailure),
        "the activation whose write failed ends, with the reason"
    );
    store.failing.store(false, Ordering::Release);

    // The next increment starts from what is stored: the failed one is not in it.
    assert_eq!(r.ask(Incr).await.unwrap(), Ok(2));
    node.shutdown().await;
    assert_eq!(
        stored_count(store.as_ref(), &key).await,
        2,
        "two increments acknowledged, two stored; the failed one stored 0 times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panicked_after_changing_the_state_leaves_nothing_stored() {
    let store = Arc::new(FlakyStore::default());
    let node = one_node(store.clone(), tally_kind()).await;
    let key = "panics-1".to_string();
    let r = node.get::<Tally>(key.clone());
    assert_eq!(r.ask(Incr).await.unwrap(), Ok(1));
    assert!(r.ask(IncrUnwritten { panic: true }).await.is_err());
    assert_eq!(
        ended(&key).await.map(|(r, _)| r),
        Some(DeactivationReason::HandlerPanicked)
    );
    assert_eq!(
        r.ask(Incr).await.unwrap(),
        Ok(2),
        "the panicked change is gone"
    );
    node.shutdown().await;
    assert_eq!(stored_count(store.as_ref(), &key).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_deactivate_runs_after_a_state_conflict_and_saves_nothing() {
    let store = Arc::new(FlakyStore::default());
    let node = one_node(store.clone(), tally_kind()).await;
    let key = "conflict-1".to_string();
    let r = node.get::<Tally>(key.clone());
    assert_eq!(r.ask(Incr).await.unwrap(), Ok(1));
    // Another writer moves the stored version behind the activation's back.
    let id = Identity::new(Tally::KIND, key.as_str());
    let v = store.read(&id).await.unwrap().unwrap().version;
    store
        .write(&id, Bytes::from_static(br#"{"n":100}"#), Some(v))
        .await
        .unwrap();
    let stale = r.ask(IncrUnwritten { panic: false }).await.unwrap();
    assert_eq!(stale, 2, "the stale copy changed in memory only");
    let conflict = r.ask(Incr).await.unwrap();
    assert!(conflict.is_err(), "{conflict:?}");
    assert_eq!(
        ended(&key).await.map(|(r, _)| r),
        Some(DeactivationReason::StateConflict),
        "on_deactivate ran after the conflict"
    );
    assert_eq!(r.ask(Incr).await.unwrap(), Ok(101));
    node.shutdown().await;
    assert_eq!(stored_count(store.as_ref(), &key).await, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_deactivate_is_told_requested_idle_and_node_shutdown_and_sees_the_incarnation() {
    let store = Arc::new(FlakyStore::default());
    let node = one_node(
        store.clone(),
        tally_kind().idle_timeout(Duration::from_millis(300)),
    )
    .await;
    let incarnation = node.cluster().local_id().incarnation;

    let requested = "reason-requested".to_string();
    node.get::<Tally>(requested.clone())
        .ask(Rest)
        .await
        .unwrap();
    assert_eq!(
        ended(&requested).await,
        Some((DeactivationReason::Requested, incarnation)),
        "the context gives the node's incarnation"
    );

    let idle = "reason-idle".to_string();
    let r = node.get::<Tally>(idle.clone());
    assert_eq!(r.ask(Incarnation).await.unwrap(), incarnation);
    assert_eq!(
        ended(&idle).await.map(|(r, _)| r),
        Some(DeactivationReason::Idle)
    );

    let shutdown = "reason-shutdown".to_string();
    node.get::<Tally>(shutdown.clone())
        .ask(IncrUnwritten { panic: false })
        .await
        .unwrap();
    node.shutdown().await;
    assert_eq!(
        ended(&shutdown).await.map(|(r, _)| r),
        Some(DeactivationReason::NodeShutdown)
    );
    assert_eq!(
        stored_count(store.as_ref(), &shutdown).await,
        1,
        "unwritten changes are saved on a graceful shutdown"
    );
}

fn chattr(flag: &str, paths: &[std::path::PathBuf]) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("chattr")
        .arg(flag)
        .args(paths)
        .stderr(std::process::Stdio::null())
        .status()
}

/// Why this machine cannot make a file read-only to its owner for the bar test, if
/// it cannot. The test runs as root, whom permission bits do not stop, so it sets the
/// immutable flag (`chattr +i`), which stops root too, on the file store's files. It
/// must also stop writes through a descriptor opened before (SQLite keeps its files
/// open): ext4 does, tmpfs does not. (A read-only remount is not an option: the kernel
/// refuses it, `EBUSY`, while SQLite holds the database open for writing, and a
/// read-only bind mount only applies to descriptors opened through it.)
fn immutable_flag_unavailable(dir: &std::path::Path) -> Option<String> {
    use std::io::Write;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Some(format!(
            "needs root for chattr +i (effective uid {})",
            euid.as_deref().unwrap_or("unknown")
        ));
    }
    let probe = dir.join("probe");
    let mut open = match std::fs::File::create(&probe) {
        Ok(f) => f,
        Err(e) => return Some(format!("cannot create {}: {e}", probe.display())),
    };
    let paths = [probe.clone()];
    match chattr("+i", &paths) {
        Ok(s) if s.success() => {}
        Ok(_) => return Some(format!("chattr +i fails on {}", dir.display())),
        Err(e) => return Some(format!("chattr does not run: {e}")),
    }
    let written = open.write_all(b"x").and_then(|()| open.sync_all());
    let _ = chattr("-i", &paths);
    let _ = std::fs::remove_file(&probe);
    written.is_ok().then(|| {
        format!(
            "the immutable flag does not stop writes to an open file on {}",
            dir.display()
        )
    })
}

/// The file store's directory and files made immutable; writable again when dropped,
/// also when the test fails, so that the temporary directory can be removed.
struct ReadOnly {
    paths: Vec<std::path::PathBuf>,
}

impl ReadOnly {
    fn set(dir: &std::path::Path) -> Self {
        // SQLite's `-shm` index is shared memory mapped from a file: were it immutable,
        // a page the kernel cannot back kills the process with SIGBUS (seen in 1 of 4
        // runs). A disk gone read-only keeps mapped pages; the fault under test is that
        // the database and its write-ahead log take no writes.
        let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with("-shm"))
            .collect();
        paths.push(dir.to_path_buf());
        let this = ReadOnly { paths };
        let status = chattr("+i", &this.paths).expect("chattr runs");
        assert!(status.success(), "chattr +i {:?}", this.paths);
        this
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        match chattr("-i", &self.paths) {
            Ok(s) if s.success() => {}
            other => eprintln!("chattr -i {:?} failed: {other:?}", self.paths),
        }
    }
}

/// The issue's bar: the embedded file store read-only for 5 s under increments.
/// Every acknowledged increment is stored once, every failed one 0 times. Needs root
/// and a file system whose immutable flag stops writes (see
/// [`immutable_flag_unavailable`]): required under `CI=true`, skipped with the reason
/// printed elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_store_under_increments_stores_exactly_the_acknowledged_ones() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(why) = immutable_flag_unavailable(dir.path()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "required under CI=true: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let url = format!("file:{}", dir.path().join("state.db").display());
    let store = granary_storage::open(&url).await.unwrap();
    let node = one_node(store.clone(), tally_kind()).await;
    const KEYS: usize = 20;
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let failed: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for k in 0..KEYS {
        let key = format!("ro-{k}");
        let r = node.get::<Tally>(key.clone());
        let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let outcome = r.ask_timeout(Incr, Duration::from_secs(5)).await;
                let tally = if matches!(outcome, Ok(Ok(_))) {
                    &acked
                } else {
                    &failed
                };
                *tally.lock().unwrap().entry(key.clone()).or_default() += 1;
            }
        }));
    }
    let total = |m: &Arc<Mutex<HashMap<String, u64>>>| m.lock().unwrap().values().sum::<u64>();
    let wait_for = |what: &'static str, m: Arc<Mutex<HashMap<String, u64>>>, at_least: u64| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        while m.lock().unwrap().values().sum::<u64>() < at_least {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} increments"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for("acknowledged", acked.clone(), 200).await;
    let read_only = ReadOnly::set(dir.path());
    // The bar's 5 s: a fixed period of the fault, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(read_only);
    let failed_during = total(&failed);
    let acked_before = total(&acked);
    wait_for("acknowledged", acked.clone(), acked_before + 200).await;
    stop.store(true, Ordering::Release);
    for c in callers {
        c.await.unwrap();
    }
    node.shutdown().await;
    assert!(failed_during > 0, "the read-only store failed some writes");
    let reopened = granary_storage::open(&url).await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let mut stored_total = 0;
    for (key, n) in &acked {
        let stored = stored_count(reopened.as_ref(), key).await;
        stored_total += stored;
        assert_eq!(stored, *n, "{key}: acknowledged = stored");
    }
    eprintln!(
        "acknowledged {} = stored {stored_total}; failed {} (stored 0 times)",
        acked.values().sum::<u64>(),
        total(&failed)
    );
}
