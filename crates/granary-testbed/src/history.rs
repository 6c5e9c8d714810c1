//! The history format: what node and client processes record, one JSON object per
//! line, appended to one file per process (`<run dir>/<host>-<incarnation>.jsonl`).
//!
//! Node processes record [`Event::ActivationStart`], [`Event::Handled`],
//! [`Event::ActivationEnd`] and their host lease's transitions ([`Event::Lease`]); the workload client records [`Event::Invoke`] before it
//! sends an operation and [`Event::Complete`] when it knows the outcome (or gives up).
//! Times are taken from the same kernel by every process, so they compare across
//! namespaces: [`Stamp::mono_us`] (`CLOCK_MONOTONIC`, for ordering and intervals) and
//! [`Stamp::wall_us`] (for humans reading a failing run's report).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// When an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// Microseconds of the machine's monotonic clock (shared by every namespace).
    pub mono_us: u64,
    /// Microseconds since the Unix epoch.
    pub wall_us: u64,
}

impl Stamp {
    /// Now.
    pub fn now() -> Stamp {
        Stamp {
            mono_us: monotonic_us(),
            wall_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or_default(),
        }
    }

    /// A stamp at `mono_us` (for hand-written histories in tests).
    pub fn at(mono_us: u64) -> Stamp {
        Stamp {
            mono_us,
            wall_us: mono_us,
        }
    }
}

/// How often a node process polls its host lease for [`Event::Lease`]: a recorded
/// transition is at most this late.
pub const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Microseconds of `CLOCK_MONOTONIC`: one clock for every process and namespace
/// of the machine (namespaces do not virtualize it), so stamps compare across hosts
/// of the test bed.
fn monotonic_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

/// What a client asked an identity to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Add one to a counter; the operation id makes it idempotent.
    Increment,
    /// Read a counter or register.
    Read,
    /// Set a register to `value`.
    Write {
        /// The value written (unique per write in a run).
        value: u64,
    },
    /// Move `amount` from one account to another through a coordinator identity.
    Transfer {
        /// The account debited (its identity, `tb.Account/<key>`).
        from: String,
        /// The account credited (its identity, `tb.Account/<key>`).
        to: String,
        /// How much.
        amount: u64,
    },
}

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: the effect is durable. `value` is the reply (a count, a read
    /// register value, a balance), when the operation has one.
    Ok {
        /// The reply's value.
        value: Option<u64>,
        /// The register's version after a write, or the version a read saw (a
        /// register's state counts its applied writes); `None` for other kinds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
    },
    /// Refused before it could take effect (a typed error that says so).
    Failed {
        /// The error.
        reason: String,
    },
    /// Unknown: timed out or the connection was lost; it may or may not have applied.
    Indeterminate {
        /// Why the client does not know.
        reason: String,
    },
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// An activation started (its state is loaded; it may now handle messages).
    ActivationStart {
        /// The host (test bed name) the process runs on.
        node: String,
        /// The process's incarnation (distinct across restarts on one address).
        incarnation: u64,
        /// `kind/key`.
        identity: String,
        /// Unique per activation in the run (`node:incarnation:n`).
        activation: String,
        /// When.
        at: Stamp,
    },
    /// An activation ended (after `on_deactivate`, or when its process died: the
    /// checker then closes it at the process's last event).
    ActivationEnd {
        /// See [`Event::ActivationStart`].
        node: String,
        /// See [`Event::ActivationStart`].
        incarnation: u64,
        /// See [`Event::ActivationStart`].
        identity: String,
        /// See [`Event::ActivationStart`].
        activation: String,
        /// Why it ended (`idle`, `conflict`, `shutdown`, ...).
        reason: String,
        /// When.
        at: Stamp,
    },
    /// An activation handled an operation: `start` when the handler began, `end` when
    /// it returned (after any state write).
    Handled {
        /// See [`Event::ActivationStart`].
        node: String,
        /// See [`Event::ActivationStart`].
        incarnation: u64,
        /// See [`Event::ActivationStart`].
        identity: String,
        /// See [`Event::ActivationStart`].
        activation: String,
        /// The client's operation id.
        op: u64,
        /// Whether the handler applied the operation (`false`: a repeat it had seen,
        /// or refused).
        applied: bool,
        /// The handler found the operation already applied in the state its
        /// activation loaded: whichever write made it durable committed before this
        /// activation loaded its state (absent in histories from before it was recorded).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        repeat: bool,
        /// Handler start.
        start: Stamp,
        /// Handler end.
        end: Stamp,
    },
    /// A client is about to send operation `op` to `identity`.
    Invoke {
        /// The client process.
        client: String,
        /// Unique per run.
        op: u64,
        /// `kind/key`.
        identity: String,
        /// What it asks.
        operation: Operation,
        /// When.
        at: Stamp,
    },
    /// A client learnt how operation `op` ended.
    Complete {
        /// The client process.
        client: String,
        /// See [`Event::Invoke`].
        op: u64,
        /// How it ended.
        outcome: Outcome,
        /// When.
        at: Stamp,
    },
    /// The final state of an identity, read by the client after the load stopped and
    /// every fault healed: for counters and accounts, the operation ids applied (in
    /// order) and the value.
    Final {
        /// `kind/key`.
        identity: String,
        /// The value (count, register value, balance).
        value: u64,
        /// The operation ids the state says it applied, in order.
        applied: Vec<u64>,
        /// A register's version (its count of applied writes); `None` for other kinds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
        /// When.
        at: Stamp,
    },
    /// The saga workload's accounts and the balance each starts with, recorded by
    /// the client before its first transfer (the checker's invariant: the final
    /// balances sum to `accounts.len() * initial_balance`).
    Accounts {
        /// The client process.
        client: String,
        /// The accounts' identities (`tb.Account/<key>`).
        accounts: Vec<String>,
        /// Every account's balance before the first transfer.
        initial_balance: u64,
        /// When.
        at: Stamp,
    },
    /// A node process saw its host lease change (granary's `NodeProbe::lease_held`,
    /// polled every [`LEASE_POLL`]): `held` is the new state. The first event of a
    /// process is its first observation. A transition is recorded up to one poll
    /// after it happened; a lapse also carries the moment it happened.
    Lease {
        /// The host (test bed name) the process runs on.
        node: String,
        /// The process's incarnation.
        incarnation: u64,
        /// Whether the lease is held now.
        held: bool,
        /// When it was observed.
        at: Stamp,
        /// For a lapse: when the lease ran out — the deadline the last poll that saw
        /// it held read (`NodeProbe::lease_remaining`), exact however late this poll,
        /// unless a renewal landed between the two polls (then the lapse was later,
        /// by less than one [`LEASE_POLL`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lapsed_at: Option<Stamp>,
    },
    /// A node process saw a member go Down or Up in its cluster view (granary's
    /// membership events): when a fault was detected and resolved, and which side
    /// of a cut went Down. `member` is the member's address; `own` is true when it
    /// is this process's own address (the process itself was downed, or is Up again
    /// in a new cluster incarnation after a rejoin).
    Member {
        /// The host (test bed name) of the observing process.
        node: String,
        /// The observing process's incarnation.
        incarnation: u64,
        /// The member's address (`ip:port`).
        member: String,
        /// Whether the member is the observing process itself.
        own: bool,
        /// `down` or `up`.
        status: String,
        /// When it was observed.
        at: Stamp,
    },
    /// The test bed applied or healed a fault (for recovery times and reports).
    Fault {
        /// What (`kill h2`, `restart h2`, `partition h1,h2|h3,h4,h5`, `heal`, ...).
        what: String,
        /// When.
        at: Stamp,
    },
}

/// Appends events to one history file; cheap to share between tasks.
///
/// Each event is one line, flushed as it is written, so a process killed with
/// `kill -9` leaves every event it recorded before the kill (a line cut by the kill
/// is skipped by [`read_history`]).
#[derive(Debug)]
pub struct HistoryWriter {
    out: Mutex<BufWriter<File>>,
}

impl HistoryWriter {
    /// Opens (creating or appending to) the history file at `path`.
    pub fn open(path: &Path) -> std::io::Result<HistoryWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(HistoryWriter {
            out: Mutex::new(BufWriter::new(file)),
        })
    }

    /// Appends `event`.
    pub fn record(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line)?;
        out.flush()
    }
}

/// Reads every whole event of the history file at `path` (a torn last line, left by
/// a killed process, is skipped).
pub fn read_history(path: &Path) -> std::io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        if let Ok(event) = serde_json::from_str(&line) {
            events.push(event);
        }
    }
    Ok(events)
}

/// Reads and merges every `*.jsonl` history in `dir`, ordered by monotonic time.
pub fn read_run(dir: &Path) -> std::io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            events.extend(read_history(&path)?);
        }
    }
    events.sort_by_key(Event::time);
    Ok(events)
}

impl Event {
    /// The event's time (a handled operation's start).
    pub fn time(&self) -> Stamp {
        match self {
            Event::ActivationStart { at, .. }
            | Event::ActivationEnd { at, .. }
            | Event::Invoke { at, .. }
            | Event::Complete { at, .. }
            | Event::Final { at, .. }
            | Event::Accounts { at, .. }
            | Event::Lease { at, .. }
            | Event::Member { at, .. }
            | Event::Fault { at, .. } => *at,
            Event::Handled { start, .. } => *start,
        }
    }

    /// The identity the event is about, if it is about one.
    pub fn identity(&self) -> Option<&str> {
        match self {
            Event::ActivationStart { identity, .. }
            | Event::ActivationEnd { identity, .. }
            | Event::Handled { identity, .. }
            | Event::Invoke { identity, .. }
            | Event::Final { identity, .. } => Some(identity),
            Event::Complete { .. }
            | Event::Accounts { .. }
            | Event::Lease { .. }
            | Event::Member { .. }
            | Event::Fault { .. } => None,
        }
    }

    /// The node process (host and incarnation) that recorded the event, for events
    /// recorded by node processes.
    pub fn process(&self) -> Option<(&str, u64)> {
        match self {
            Event::ActivationStart {
                node, incarnation, ..
            }
            | Event::ActivationEnd {
                node, incarnation, ..
            }
            | Event::Handled {
                node, incarnation, ..
            }
            | Event::Lease {
                node, incarnation, ..
            }
            | Event::Member {
                node, incarnation, ..
            } => Some((node, *incarnation)),
            _ => None,
        }
    }
}
