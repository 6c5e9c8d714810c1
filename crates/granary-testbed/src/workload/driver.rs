//! The client driver: loads one workload with concurrent tasks at a target rate
//! until told to stop, then finishes what it started and reads every final state.
//!
//! Each task calls one identity of its own (a counter, a register, or the teller of
//! a transfer; [`lanes`]), one call at a time: a call stuck on a failed host holds up
//! that identity only, as with independent callers of a real application. (With
//! tasks drawing any key, a few calls stuck on a paused host stalled every task, and
//! the checker's recovery times measured the client's queue instead of the cluster.)
//!
//! Every operation gets an op id unique in the run (`hash(client name) << 40 | seq`),
//! an [`Event::Invoke`] before it is sent and an [`Event::Complete`] when the client
//! knows how it ended. Every ask has a deadline ([`ASK_DEADLINE`]).
//!
//! How an outcome is classified:
//! - [`Outcome::Ok`]: the kind's reply says it is done (durable).
//! - [`Outcome::Failed`]: only what guarantees no effect: a transfer the debited
//!   account refused, and [`VirtualError::BadKey`] (the key was rejected before
//!   anything was sent).
//! - [`Outcome::Indeterminate`]: everything else. A timeout or a lost connection may
//!   come after the handler ran; `Unavailable`, `NoHost`, `NoMembers`,
//!   `ActivationFailed`, `ShuttingDown` and the others may end a call whose earlier
//!   attempt reached a host (an ask is retried inside the runtime); and a handler's
//!   own error (its state write failed) may follow a write that landed.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use granary::virtual_actors::{Client, VirtualActor, VirtualError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::counter::{Counter, Increment};
use super::register::{Read, Register, Write};
use super::saga::{Account, Teller, Transfer, TransferEnd, INITIAL_BALANCE};
use super::{FinalState, ReadFinal, Workload};
use crate::history::{Event, HistoryWriter, Operation, Outcome, Stamp};

/// The deadline of every ask.
pub const ASK_DEADLINE: Duration = Duration::from_secs(5);
/// How long in-flight operations may take to finish after `stop`.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);
/// How long re-driving transfers and reading final states may take in all.
const FINISH_DEADLINE: Duration = Duration::from_secs(90);
/// The pause between two attempts of a re-drive or a final read.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the client is told to do.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The client's name (in its history and op ids).
    pub name: String,
    /// The address the client listens on.
    pub bind: SocketAddr,
    /// Members to learn the cluster from.
    pub seeds: Vec<SocketAddr>,
    /// The cluster name and secret.
    pub cluster: (String, Vec<u8>),
    /// Which workload.
    pub workload: Workload,
    /// Identities per kind of the workload.
    pub keys: usize,
    /// Concurrent tasks, at least (there is one per key, see [`lanes`]).
    pub concurrency: usize,
    /// Target operations per second over all tasks (0: as fast as they go).
    pub rate: f64,
    /// The history file.
    pub history: PathBuf,
    /// Prepended to every key (`k3` becomes `<prefix>k3`): clients with different
    /// prefixes load disjoint identities, so each one's final reads see only its
    /// own writes (empty: the keys of the other clients without a prefix).
    pub key_prefix: String,
    /// The client's heartbeat interval and timeout (`ClientBuilder::heartbeat`): how
    /// soon it stops sending through a paused or cut-off gateway.
    pub heartbeat: (Duration, Duration),
}

/// What the client did, printed as one JSON line at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Operations invoked (re-drives included).
    pub invoked: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Refused with no effect.
    pub failed: u64,
    /// Unknown.
    pub indeterminate: u64,
}

/// Why the client could not run.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The history file did not open.
    #[error("history file: {0}")]
    History(#[from] std::io::Error),
    /// No seed answered.
    #[error("connect: {0}")]
    Connect(VirtualError),
    /// The options do not describe a workload (`keys` too small, ...).
    #[error("bad options: {0}")]
    BadOptions(String),
}

/// The shared parts of a running client.
struct Shared {
    client: Client,
    history: HistoryWriter,
    name: String,
    key_prefix: String,
    op_base: u64,
    seq: AtomicU64,
    counts: [AtomicU64; 4],
    /// Transfers that have not ended yet: (teller key, transfer).
    unfinished: Mutex<Vec<(String, Transfer)>>,
}

const INVOKED: usize = 0;
const ACKED: usize = 1;
const FAILED: usize = 2;
const INDETERMINATE: usize = 3;

impl Shared {
    fn next_op(&self) -> u64 {
        self.op_base | self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, event: &Event) {
        if let Err(e) = self.history.record(event) {
            eprintln!("history write failed: {e}");
        }
    }

    fn invoke(&self, op: u64, identity: String, operation: Operation) {
        self.counts[INVOKED].fetch_add(1, Ordering::Relaxed);
        self.record(&Event::Invoke {
            client: self.name.clone(),
            op,
            identity,
            operation,
            at: Stamp::now(),
        });
    }

    fn complete(&self, op: u64, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Ok { .. } => ACKED,
            Outcome::Failed { .. } => FAILED,
            Outcome::Indeterminate { .. } => INDETERMINATE,
        };
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.record(&Event::Complete {
            client: self.name.clone(),
            op,
            outcome,
            at: Stamp::now(),
        });
    }

    fn summary(&self) -> Summary {
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        Summary {
            invoked: c(INVOKED),
            acked: c(ACKED),
            failed: c(FAILED),
            indeterminate: c(INDETERMINATE),
        }
    }
}

/// A connected client, ready to load ([`Driver::run`]).
pub struct Driver {
    shared: Arc<Shared>,
    options: ClientOptions,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("name", &self.options.name)
            .finish_non_exhaustive()
    }
}

/// Opens the history and connects to the cluster.
pub async fn connect(options: ClientOptions) -> Result<Driver, DriverError> {
    if options.keys == 0 || options.concurrency == 0 {
        return Err(DriverError::BadOptions(
            "keys and concurrency must be at least 1".into(),
        ));
    }
    if options.workload == Workload::Saga && options.keys < 2 {
        return Err(DriverError::BadOptions(
            "the saga needs at least 2 keys".into(),
        ));
    }
    let history = HistoryWriter::open(&options.history)?;
    let client = Client::builder()
        .seeds(options.seeds.iter().copied())
        .cluster_secret(options.cluster.0.clone(), options.cluster.1.clone())
        .bind(options.bind)
        .heartbeat(options.heartbeat.0, options.heartbeat.1)
        .connect()
        .await
        .map_err(DriverError::Connect)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    options.name.hash(&mut hasher);
    let shared = Arc::new(Shared {
        client,
        history,
        name: options.name.clone(),
        key_prefix: options.key_prefix.clone(),
        op_base: (hasher.finish() & 0xff_ffff) << 40,
        seq: AtomicU64::new(1),
        counts: Default::default(),
        unfinished: Mutex::new(Vec::new()),
    });
    if options.workload == Workload::Saga {
        shared.record(&Event::Accounts {
            client: options.name.clone(),
            accounts: (0..options.keys)
                .map(|i| format!("tb.Account/{}", shared.account_key(i)))
                .collect(),
            initial_balance: INITIAL_BALANCE,
            at: Stamp::now(),
        });
    }
    Ok(Driver { shared, options })
}

impl Driver {
    /// Loads until `stop` turns `true` (or its sender is dropped), then drains,
    /// re-drives unfinished transfers and reads final states.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Summary {
        let Driver { shared, options } = self;
        load(&shared, &options, stop).await;
        let deadline = Instant::now() + FINISH_DEADLINE;
        if options.workload == Workload::Saga {
            redrive_transfers(&shared, deadline).await;
        }
        read_finals(&shared, options.workload, options.keys, deadline).await;
        let summary = shared.summary();
        match Arc::try_unwrap(shared) {
            Ok(shared) => shared.client.close().await,
            Err(_) => eprintln!("a task still holds the client; not closing it"),
        }
        summary
    }
}

/// Runs the load tasks until `stop`, then waits (bounded) for the in-flight ones.
async fn load(shared: &Arc<Shared>, options: &ClientOptions, mut stop: watch::Receiver<bool>) {
    let lanes = lanes(options);
    let period = (options.rate > 0.0).then(|| Duration::from_secs_f64(lanes as f64 / options.rate));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..lanes {
        let shared = shared.clone();
        let mut stop = stop.clone();
        let (workload, keys) = (options.workload, options.keys);
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(shared.op_base ^ task as u64);
            let mut tick = period.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while !*stop.borrow() {
                if let Some(t) = tick.as_mut() {
                    tokio::select! {
                        _ = t.tick() => {}
                        _ = stop.changed() => continue,
                    }
                }
                one_op(&shared, workload, keys, task % keys, &mut rng).await;
            }
        });
    }
    // Load until told to stop (a dropped sender means stop as well).
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Every ask has its own deadline, so this is a bug; do not hang on it.
        eprintln!("in-flight operations did not finish within {DRAIN_DEADLINE:?}");
        tasks.abort_all();
    }
}

impl Shared {
    fn counter_key(&self, i: usize) -> String {
        format!("{}k{i}", self.key_prefix)
    }

    fn account_key(&self, i: usize) -> String {
        format!("{}a{i}", self.key_prefix)
    }

    fn teller_key(&self, i: usize) -> String {
        format!("{}t{i}", self.key_prefix)
    }
}

/// How many load tasks run: one per identity a task calls (`keys`), and at least
/// `concurrency`.
pub fn lanes(options: &ClientOptions) -> usize {
    options.keys.max(options.concurrency)
}

/// Sends one random operation of the workload to the identity of `lane` (the
/// counter or register `lane`, or the teller `lane` for a transfer between two
/// random accounts) and records it.
async fn one_op(shared: &Shared, workload: Workload, keys: usize, lane: usize, rng: &mut StdRng) {
    let op = shared.next_op();
    match workload {
        Workload::Counters => {
            let key = shared.counter_key(lane);
            shared.invoke(op, format!("tb.Counter/{key}"), Operation::Increment);
            let reply = shared
                .client
                .get::<Counter>(key)
                .ask_timeout(Increment::new(op), ASK_DEADLINE)
                .await;
            shared.complete(op, classify(reply, |n| (Some(n), None)));
        }
        Workload::Register => {
            let key = shared.counter_key(lane);
            let identity = format!("tb.Register/{key}");
            let register = shared.client.get::<Register>(key);
            if rng.random_bool(0.5) {
                shared.invoke(op, identity, Operation::Write { value: op });
                let reply = register
                    .ask_timeout(Write { op, value: op }, ASK_DEADLINE)
                    .await;
                shared.complete(op, classify(reply, |v| (None, Some(v))));
            } else {
                shared.invoke(op, identity, Operation::Read);
                let reply = register.ask_timeout(Read { op }, ASK_DEADLINE).await;
                let outcome = match reply {
                    Ok(r) => Outcome::Ok {
                        value: Some(r.value),
                        version: Some(r.version),
                    },
                    Err(e) => error_outcome(e),
                };
                shared.complete(op, outcome);
            }
        }
        Workload::Saga => {
            let from = rng.random_range(0..keys);
            let to = (from + rng.random_range(1..keys)) % keys;
            let teller = shared.teller_key(lane);
            let transfer = Transfer {
                op,
                from: shared.account_key(from),
                to: shared.account_key(to),
                amount: rng.random_range(1..=100),
            };
            if !drive_transfer(shared, &teller, &transfer).await {
                let mut unfinished = shared.unfinished.lock().unwrap_or_else(|e| e.into_inner());
                unfinished.push((teller, transfer));
            }
        }
    }
}

/// Sends a transfer once; `true` if it ended (done or refused).
async fn drive_transfer(shared: &Shared, teller: &str, t: &Transfer) -> bool {
    shared.invoke(
        t.op,
        format!("tb.Teller/{teller}"),
        Operation::Transfer {
            from: format!("tb.Account/{}", t.from),
            to: format!("tb.Account/{}", t.to),
            amount: t.amount,
        },
    );
    let reply = shared
        .client
        .get::<Teller>(teller.to_owned())
        .ask_timeout(t.clone(), ASK_DEADLINE)
        .await;
    let outcome = match reply {
        Ok(Ok(TransferEnd::Done)) => Outcome::Ok {
            value: None,
            version: None,
        },
        Ok(Ok(TransferEnd::Refused)) => Outcome::Failed {
            reason: "refused: the debited account's balance is too low".into(),
        },
        Ok(Err(reason)) => Outcome::Indeterminate { reason },
        Err(e) => error_outcome(e),
    };
    let ended = !matches!(outcome, Outcome::Indeterminate { .. });
    shared.complete(t.op, outcome);
    ended
}

/// Re-drives every transfer that has not ended, with the same op id, until each
/// ends or the deadline passes.
async fn redrive_transfers(shared: &Shared, deadline: Instant) {
    let mut unfinished =
        std::mem::take(&mut *shared.unfinished.lock().unwrap_or_else(|e| e.into_inner()));
    while !unfinished.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (teller, t) in unfinished {
            if Instant::now() >= deadline || !drive_transfer(shared, &teller, &t).await {
                still.push((teller, t));
            }
        }
        unfinished = still;
        if !unfinished.is_empty() {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    if !unfinished.is_empty() {
        eprintln!(
            "{} transfers did not end before the deadline",
            unfinished.len()
        );
    }
}

/// Reads and records every identity's final state, retrying each until the deadline.
async fn read_finals(shared: &Shared, workload: Workload, keys: usize, deadline: Instant) {
    let mut identities: Vec<(&str, String)> = Vec::new();
    for i in 0..keys {
        match workload {
            Workload::Counters => identities.push((Counter::KIND, shared.counter_key(i))),
            Workload::Register => identities.push((Register::KIND, shared.counter_key(i))),
            Workload::Saga => {
                identities.push((Account::KIND, shared.account_key(i)));
                identities.push((Teller::KIND, shared.teller_key(i)));
            }
        }
    }
    for (kind, key) in identities {
        loop {
            let op = shared.next_op();
            let reply = match kind {
                k if k == Counter::KIND => ask_final::<Counter>(shared, &key, op).await,
                k if k == Register::KIND => ask_final::<Register>(shared, &key, op).await,
                k if k == Account::KIND => ask_final::<Account>(shared, &key, op).await,
                _ => ask_final::<Teller>(shared, &key, op).await,
            };
            match reply {
                Ok(state) => {
                    shared.record(&Event::Final {
                        identity: format!("{kind}/{key}"),
                        value: state.value,
                        applied: state.applied,
                        version: state.version,
                        at: Stamp::now(),
                    });
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("final read of {kind}/{key}: {e}; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => {
                    eprintln!("final read of {kind}/{key}: {e}; giving up at the deadline");
                    break;
                }
            }
        }
    }
}

async fn ask_final<A>(shared: &Shared, key: &str, op: u64) -> Result<FinalState, VirtualError>
where
    A: granary::virtual_actors::VirtualHandler<ReadFinal, Key = String>,
{
    shared
        .client
        .get::<A>(key.to_owned())
        .ask_timeout(ReadFinal { op }, ASK_DEADLINE)
        .await
}

/// The outcome of a reply `Result<T, String>` (the handler's own error is
/// indeterminate: its state write may have landed).
fn classify<T>(
    reply: Result<Result<T, String>, VirtualError>,
    ok: impl FnOnce(T) -> (Option<u64>, Option<u64>),
) -> Outcome {
    match reply {
        Ok(Ok(t)) => {
            let (value, version) = ok(t);
            Outcome::Ok { value, version }
        }
        Ok(Err(reason)) => Outcome::Indeterminate { reason },
        Err(e) => error_outcome(e),
    }
}

/// The outcome of a runtime error: `Failed` only when nothing can have been sent.
fn error_outcome(e: VirtualError) -> Outcome {
    match e {
        VirtualError::BadKey { .. } => Outcome::Failed {
            reason: e.to_string(),
        },
        e => Outcome::Indeterminate {
            reason: e.to_string(),
        },
    }
}
