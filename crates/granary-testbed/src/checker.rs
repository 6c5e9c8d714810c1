//! The history checker: reads a run's merged history ([`crate::history::read_run`])
//! and reports every anomaly it finds ([`check`] → [`Report`]).
//!
//! What it looks for (definitions in `docs/semantics.md`, "What the checker calls a
//! double activation", and below):
//! - **double activation**: two activations of one identity whose *handling
//!   intervals* overlap. An activation's handling interval runs from the start of the
//!   first operation it handled to the end of the last one. An activation that lives
//!   on without handling (fenced by its host lease, or waiting for `on_deactivate`)
//!   is not a second activation in this sense: the fence's promise is that it handles
//!   nothing, and handling is what the checker sees. A handler already running when
//!   its process paused past its lease (or that waited across a cut past it) is
//!   *fenced* when it applied nothing and its activation ended at once, with
//!   `StateConflict` (the store refused its write) or `HostLeaseLost`: it is left
//!   out of the interval. A handler that applied its op is cut short, for one later
//!   activation, where that activation began handling, if that activation found the op
//!   already applied in the state it loaded (`repeat`): the write came before the
//!   load, and what is left is a return delayed by a pause. Otherwise a handler that
//!   applied anything is never left out.
//! - **placed under a lease**: an activation began handling while an earlier one of
//!   the same identity, on another process and not yet ended, could still admit
//!   messages — its process held its host lease, without a break, from before that
//!   activation's last admission until after the new one began (the lapse's moment
//!   is recorded, to within one poll, [`Event::Lease`]). The owner's fence exists to prevent
//!   this; a double activation needs the earlier one to actually handle something.
//! - **lost acknowledged write**: an increment, register write or transfer
//!   acknowledged ([`Outcome::Ok`]) whose op id is missing from the identity's
//!   [`Event::Final`] (a transfer: from both accounts' finals).
//! - **applied twice**: an op id twice in one final's applied list, or handled with
//!   `applied: true` more than once for one identity.
//! - **stale read**: a register read acknowledged with a version older than a write
//!   acknowledged before the read was invoked.
//! - **invariant**: the saga's (final balances sum to the initial total; every
//!   transfer on both sides or neither, on both if acknowledged, on neither if
//!   refused; each balance equals its initial balance plus its credits minus its
//!   debits) and a missing final state for an identity with acknowledged writes.
//! - **recovery time**: per [`Event::Fault`] and identity, the longest gap between
//!   acknowledgements from the fault until the next fault (or the last
//!   acknowledgement of the run); an identity not answered at all before the next
//!   fault counts from the fault until it answers, so an outage across several
//!   faults counts whole for the fault that began it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{Event, Operation, Outcome, Stamp};

/// How many events an anomaly's excerpt shows at most.
const EXCERPT_EVENTS: usize = 12;

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// One identity handled by two activations in overlapping intervals.
    DoubleActivation,
    /// An identity began handling on one process while an earlier activation of it
    /// lived on another whose host lease held, without a break, from that
    /// activation's last admission until after the new one began: the earlier one
    /// could still have admitted messages (the fence of docs/semantics.md's
    /// "Partitions" and "Host lease" did not hold).
    PlacedUnderLease,
    /// An acknowledged write missing from the final state.
    LostWrite,
    /// An operation applied more than once.
    AppliedTwice,
    /// A read older than a write acknowledged before it.
    StaleRead,
    /// A workload invariant broken (saga sums, one-sidedness, missing finals).
    Invariant,
}

/// One anomaly found, with the events around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What kind.
    pub kind: AnomalyKind,
    /// The identity it concerns.
    pub identity: String,
    /// What exactly, in one sentence.
    pub detail: String,
    /// The history's events about the identity around the anomaly, one JSON line each.
    pub excerpt: Vec<String>,
}

/// Recovery times over every (fault, identity) pair, in milliseconds.
///
/// A fault's window runs from the record that applied it (`kill`, `partition`,
/// `cut`, `one-way cut`, `pause`) until the next fault was applied (or the run's last
/// acknowledgement): its heal, resume or restart is inside the window, so a gap that
/// lasts across the heal counts whole. Within the window, each identity's longest
/// time without an acknowledgement is one sample; an identity not answered at all
/// in the window counts until it answers after it (or the run's last
/// acknowledgement), so an outage across several faults is not cut into shorter
/// ones. A wait that began after an answer in the window and is still open when the
/// next fault is applied is cut there: it is the next fault's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// How many (fault, identity) pairs were measured.
    pub samples: usize,
    /// Median longest gap.
    pub p50_ms: f64,
    /// 99th percentile longest gap.
    pub p99_ms: f64,
    /// Largest longest gap.
    pub max_ms: f64,
    /// Per fault, in the order applied.
    #[serde(default)]
    pub faults: Vec<FaultRecovery>,
}

/// The recovery of one fault: its identities' longest acknowledgement gaps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecovery {
    /// The fault record (`kill h2`, `pause h3`, `cut h1-h3 for 6.2 s`, ...).
    pub fault: String,
    /// Its kind: `kill`, `partition`, `cut`, `one-way`, `pause` (or `other`).
    pub kind: String,
    /// When it was applied (monotonic µs).
    pub at_us: u64,
    /// The largest of its identities' longest gaps.
    pub max_ms: f64,
    /// The identity with that gap.
    pub slowest: String,
}

/// The kind of a fault record that applies a fault, `None` for records that heal or
/// follow one (`heal`, `resume`, `restart`, `ready`).
pub fn fault_kind(what: &str) -> Option<&'static str> {
    let first = what.split_whitespace().next().unwrap_or("");
    match first {
        "kill" => Some("kill"),
        // A scatter is a partition into one side per node.
        "partition" | "scatter" => Some("partition"),
        "cut" => Some("cut"),
        "one-way" => Some("one-way"),
        "pause" => Some("pause"),
        "heal" | "resume" | "restart" | "ready" => None,
        _ => Some("other"),
    }
}

/// The checker's verdict on one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Events read.
    pub events: usize,
    /// Operations invoked by clients.
    pub invoked: usize,
    /// Operations acknowledged.
    pub acked: usize,
    /// Faults recorded.
    pub faults: usize,
    /// Every anomaly found, in the order of the checks.
    pub anomalies: Vec<Anomaly>,
    /// Recovery times after faults.
    pub recovery: Recovery,
}

impl Report {
    /// No anomaly of any kind.
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// How many anomalies of `kind` were found.
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }

    /// Double activations found.
    pub fn double_activations(&self) -> usize {
        self.count(AnomalyKind::DoubleActivation)
    }

    /// Activations begun while an earlier one's host still held its lease.
    pub fn placed_under_lease(&self) -> usize {
        self.count(AnomalyKind::PlacedUnderLease)
    }

    /// Acknowledged writes lost.
    pub fn lost_writes(&self) -> usize {
        self.count(AnomalyKind::LostWrite)
    }

    /// Operations applied twice.
    pub fn applied_twice(&self) -> usize {
        self.count(AnomalyKind::AppliedTwice)
    }

    /// Stale reads.
    pub fn stale_reads(&self) -> usize {
        self.count(AnomalyKind::StaleRead)
    }

    /// Workload invariants broken.
    pub fn invariant_violations(&self) -> usize {
        self.count(AnomalyKind::Invariant)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} events, {} invoked, {} acked, {} faults: {} double activations, {} placed under \
             a lease, {} lost writes, {} applied twice, {} stale reads, {} invariant violations; \
             recovery p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} samples",
            self.events,
            self.invoked,
            self.acked,
            self.faults,
            self.double_activations(),
            self.placed_under_lease(),
            self.lost_writes(),
            self.applied_twice(),
            self.stale_reads(),
            self.invariant_violations(),
            self.recovery.p50_ms,
            self.recovery.p99_ms,
            self.recovery.max_ms,
            self.recovery.samples,
        )?;
        for fault in &self.recovery.faults {
            writeln!(
                f,
                "recovery after `{}`: longest gap {:.0} ms ({})",
                fault.fault, fault.max_ms, fault.slowest
            )?;
        }
        for a in &self.anomalies {
            writeln!(f, "{:?} on {}: {}", a.kind, a.identity, a.detail)?;
            for line in &a.excerpt {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Checks a run's history (events in any order; they are sorted by time here).
pub fn check(events: &[Event]) -> Report {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.time());
    let run = Run::index(&sorted);
    let mut report = Report {
        events: events.len(),
        invoked: run.invokes.len(),
        acked: run
            .completes
            .values()
            .filter(|c| matches!(c.0, Outcome::Ok { .. }))
            .count(),
        faults: run.faults.len(),
        ..Report::default()
    };
    let mut found = Vec::new();
    double_activations(&run, &mut found);
    placed_under_lease(&run, &mut found);
    lost_writes(&run, &mut found);
    applied_twice(&run, &mut found);
    stale_reads(&run, &mut found);
    saga_invariants(&run, &mut found);
    report.anomalies = found
        .into_iter()
        .map(|f| Anomaly {
            excerpt: excerpt(&sorted, &run, &f.identity, f.around),
            kind: f.kind,
            identity: f.identity,
            detail: f.detail,
        })
        .collect();
    report.recovery = recovery(&run);
    report
}

/// An anomaly before its excerpt is cut.
struct Found {
    kind: AnomalyKind,
    identity: String,
    detail: String,
    /// The time the excerpt centres on.
    around: Stamp,
}

/// One invocation, as indexed.
struct Invoked<'a> {
    identity: &'a str,
    operation: &'a Operation,
    at: Stamp,
}

/// One activation's observed life.
struct ActivationLife<'a> {
    identity: &'a str,
    process: (&'a str, u64),
    handled_from: Option<Stamp>,
    handled_to: Option<Stamp>,
    /// Every handling.
    handlings: Vec<Handling>,
    /// The ops it found already applied in the state it loaded.
    repeats: HashSet<u64>,
    /// When it admitted its last message (fenced handlers included).
    last_admitted: Option<Stamp>,
    /// How and when it ended, if it was recorded.
    ended: Option<(&'a str, Stamp)>,
}

/// One handled operation.
struct Handling {
    start: Stamp,
    end: Stamp,
    applied: bool,
    op: u64,
}

/// How soon after a refused handler's end its activation must end for the handler
/// to count as fenced: the refusal ends the activation at once (microseconds).
const FENCE_END_WITHIN_US: u64 = 100_000;

impl ActivationLife<'_> {
    /// Sets the handling interval from the handlings, leaving out a *fenced* one:
    /// the last handler of an activation that ended right after it returned,
    /// having applied nothing, either with `StateConflict` (the store refused its
    /// write: a successor had written) or with `HostLeaseLost` (its node's lease
    /// lapsed while it ran). It changed no state and its caller got an error. This
    /// is the in-flight case of the host lease (a process paused mid-handler past
    /// its lease, a handler waiting on a call across a cut that began after it was
    /// admitted): the lease fences *admission*, and a handler already running is
    /// fenced by the store's version check or ends without applying.
    ///
    /// A handler that returned after its process's host lease had lapsed (`lapsed_by`:
    /// the lease's recorded lapse is at or before that moment), applied nothing and was
    /// the last of an activation that ended with `HostLeaseLost` is fenced too, however
    /// long after it the activation ended: the node admits nothing without its lease,
    /// and the activation ends when the node learns it is Down (chaos seed 2933: a
    /// teller's handler waited 2.9 s on calls across a partition that began as it was
    /// admitted, and its node downed itself 0.25 s after it returned).
    fn settle_interval(&mut self, lapsed_by: impl Fn((&str, u64), Stamp) -> bool) {
        self.handlings.sort_by_key(|h| h.start);
        self.last_admitted = self.handlings.last().map(|h| h.start);
        if let (Some((reason @ ("StateConflict" | "HostLeaseLost"), ended_at)), Some(last)) =
            (self.ended, self.handlings.last())
        {
            let ended_for_it = ended_at.mono_us >= last.end.mono_us
                && ended_at.mono_us - last.end.mono_us <= FENCE_END_WITHIN_US;
            let past_its_lease = reason == "HostLeaseLost"
                && ended_at.mono_us >= last.end.mono_us
                && lapsed_by(self.process, last.end);
            if !last.applied && (ended_for_it || past_its_lease) {
                self.handlings.pop();
            }
        }
        self.handled_from = self.handlings.iter().map(|h| h.start).min();
        self.handled_to = self.handlings.iter().map(|h| h.end).max();
    }

    /// The end of this activation's handling as far as `later` is concerned: a
    /// handler that applied an op `later` then found already applied in the state it
    /// loaded made its write before `later` began handling (the load comes first), so
    /// what remains of it after that point is its return, not a second writer (a
    /// process paused between its write and its return). Only a handler that began
    /// before `later` did is cut: one that began after cannot have made the write
    /// `later` loaded.
    fn handled_to_for(&self, later: &ActivationLife<'_>) -> Option<Stamp> {
        let later_from = later.handled_from?;
        (self.handlings.iter())
            .map(|h| {
                if h.applied && h.start < later_from && later.repeats.contains(&h.op) {
                    h.end.min(later_from)
                } else {
                    h.end
                }
            })
            .max()
    }
}

/// An identity's final state, as recorded.
struct FinalSeen<'a> {
    value: u64,
    applied: &'a [u64],
    at: Stamp,
}

/// The history indexed for the checks.
struct Run<'a> {
    invokes: HashMap<u64, Invoked<'a>>,
    /// op → (outcome, completion time); the last completion wins.
    completes: HashMap<u64, (&'a Outcome, Stamp)>,
    /// identity → its last final.
    finals: HashMap<&'a str, FinalSeen<'a>>,
    /// activation id → life, in order of first appearance.
    activations: BTreeMap<&'a str, ActivationLife<'a>>,
    /// (identity, op) → times handled with `applied: true`, with the activation.
    applied: HashMap<(&'a str, u64), Vec<(&'a str, Stamp)>>,
    accounts: Option<(&'a [String], u64, Stamp)>,
    faults: Vec<(&'a str, Stamp)>,
    /// Each node process's lease transitions in time order: (when, held).
    leases: HashMap<(&'a str, u64), Vec<(Stamp, bool)>>,
}

impl<'a> Run<'a> {
    fn index(sorted: &[&'a Event]) -> Run<'a> {
        let mut run = Run {
            invokes: HashMap::new(),
            completes: HashMap::new(),
            finals: HashMap::new(),
            activations: BTreeMap::new(),
            applied: HashMap::new(),
            accounts: None,
            faults: Vec::new(),
            leases: HashMap::new(),
        };
        for e in sorted {
            match e {
                Event::Invoke {
                    op,
                    identity,
                    operation,
                    at,
                    ..
                } => {
                    run.invokes.entry(*op).or_insert(Invoked {
                        identity,
                        operation,
                        at: *at,
                    });
                }
                Event::Complete {
                    op, outcome, at, ..
                } => {
                    run.completes.insert(*op, (outcome, *at));
                }
                Event::Final {
                    identity,
                    value,
                    applied,
                    at,
                    ..
                } => {
                    let seen = FinalSeen {
                        value: *value,
                        applied,
                        at: *at,
                    };
                    run.finals.insert(identity, seen);
                }
                Event::ActivationStart {
                    node,
                    incarnation,
                    identity,
                    activation,
                    ..
                } => {
                    run.life(activation, identity, (node, *incarnation));
                }
                Event::ActivationEnd {
                    node,
                    incarnation,
                    identity,
                    activation,
                    reason,
                    at,
                } => {
                    run.life(activation, identity, (node, *incarnation)).ended =
                        Some((reason.as_str(), *at));
                }
                Event::Lease {
                    node,
                    incarnation,
                    held,
                    at,
                    lapsed_at,
                } => {
                    // A lapse counts from when the lease ran out, if recorded.
                    let when = if *held { *at } else { lapsed_at.unwrap_or(*at) };
                    run.leases
                        .entry((node, *incarnation))
                        .or_default()
                        .push((when, *held));
                }
                Event::Member { .. } => {}
                Event::Handled {
                    node,
                    incarnation,
                    identity,
                    activation,
                    op,
                    applied,
                    repeat,
                    start,
                    end,
                } => {
                    let life = run.life(activation, identity, (node, *incarnation));
                    life.handlings.push(Handling {
                        start: *start,
                        end: *end,
                        applied: *applied,
                        op: *op,
                    });
                    if *repeat {
                        life.repeats.insert(*op);
                    }
                    if *applied {
                        run.applied
                            .entry((identity, *op))
                            .or_default()
                            .push((activation, *start));
                    }
                }
                Event::Accounts {
                    accounts,
                    initial_balance,
                    at,
                    ..
                } => run.accounts = Some((accounts, *initial_balance, *at)),
                Event::Fault { what, at } => run.faults.push((what, *at)),
            }
        }
        for transitions in run.leases.values_mut() {
            transitions.sort_by_key(|(when, _)| *when);
        }
        let leases = &run.leases;
        let lapsed_by = |process: (&str, u64), at: Stamp| {
            let last = leases.get(&process).and_then(|t| lease_at(t, at));
            last.is_some_and(|(&(_, held), _)| !held)
        };
        for life in run.activations.values_mut() {
            life.settle_interval(lapsed_by);
        }
        run
    }

    fn life(
        &mut self,
        activation: &'a str,
        identity: &'a str,
        process: (&'a str, u64),
    ) -> &mut ActivationLife<'a> {
        self.activations
            .entry(activation)
            .or_insert(ActivationLife {
                identity,
                process,
                handled_from: None,
                handled_to: None,
                handlings: Vec::new(),
                repeats: HashSet::new(),
                last_admitted: None,
                ended: None,
            })
    }

    fn acked(&self, op: u64) -> Option<(Option<u64>, Option<u64>, Stamp)> {
        match self.completes.get(&op) {
            Some((Outcome::Ok { value, version }, at)) => Some((*value, *version, *at)),
            _ => None,
        }
    }

    /// The activations `keep` accepts, by identity: (activation id, life).
    fn lives_by_identity(
        &self,
        keep: impl Fn(&ActivationLife<'a>) -> bool,
    ) -> BTreeMap<&'a str, Vec<(&'a str, &ActivationLife<'a>)>> {
        let mut by_identity: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for (id, life) in &self.activations {
            if keep(life) {
                by_identity
                    .entry(life.identity)
                    .or_default()
                    .push((*id, life));
            }
        }
        by_identity
    }

    /// The stretch of `process`'s lease around `at`, if it was held then and a lapse
    /// after `at` was recorded: (held since, lapsed at).
    fn lease_around(&self, process: (&str, u64), at: Stamp) -> Option<(Stamp, Stamp)> {
        let (&(held_from, held), next) = lease_at(self.leases.get(&process)?, at)?;
        let &(lapsed, still_held) = next?;
        (held && !still_held).then_some((held_from, lapsed))
    }

    fn refused(&self, op: u64) -> bool {
        matches!(self.completes.get(&op), Some((Outcome::Failed { .. }, _)))
    }
}

/// One lease transition: when, and whether the lease is held from then on.
type LeaseTransition = (Stamp, bool);

/// In a process's lease transitions (time order), the last one at or before `at`, and
/// the one after it.
fn lease_at(
    transitions: &[LeaseTransition],
    at: Stamp,
) -> Option<(&LeaseTransition, Option<&LeaseTransition>)> {
    let after = transitions.partition_point(|(when, _)| *when <= at);
    Some((transitions[..after].last()?, transitions.get(after)))
}

/// Pairs of activations of one identity whose handling intervals overlap.
fn double_activations(run: &Run<'_>, found: &mut Vec<Found>) {
    for (identity, mut lives) in run.lives_by_identity(|life| life.handled_from.is_some()) {
        lives.sort_by_key(|(_, l)| l.handled_from);
        for (i, (a_id, a)) in lives.iter().enumerate() {
            for (b_id, b) in &lives[i + 1..] {
                let (Some(a_from), Some(a_to), Some(b_from), Some(b_to)) =
                    (a.handled_from, a.handled_to, b.handled_from, b.handled_to)
                else {
                    continue;
                };
                if b_from >= a_to {
                    // Sorted by start: no later activation overlaps `a` either.
                    break;
                }
                let a_to = a.handled_to_for(b).unwrap_or(a_to);
                if b_from >= a_to {
                    continue;
                }
                let overlap_ms = (a_to.min(b_to).mono_us - b_from.mono_us) as f64 / 1000.0;
                found.push(Found {
                    kind: AnomalyKind::DoubleActivation,
                    identity: identity.to_owned(),
                    detail: format!(
                        "activation {a_id} ({}#{}) handled from {} to {} µs and activation \
                         {b_id} ({}#{}) from {} to {} µs: {overlap_ms:.1} ms both handling",
                        a.process.0,
                        a.process.1,
                        a_from.mono_us,
                        a_to.mono_us,
                        b.process.0,
                        b.process.1,
                        b_from.mono_us,
                        b_to.mono_us,
                    ),
                    around: b_from,
                });
            }
        }
    }
}

/// Activations that began handling while an earlier activation of the identity,
/// on another process and not yet ended, could still admit messages: its process
/// held its host lease from before that activation's last admission until after
/// the new one began. (A process killed while holding its lease recorded no lapse,
/// and is not counted: it admitted nothing after its death.)
fn placed_under_lease(run: &Run<'_>, found: &mut Vec<Found>) {
    for (identity, lives) in run.lives_by_identity(|life| life.last_admitted.is_some()) {
        for (b_id, b) in &lives {
            let Some(b_from) = b.handled_from else {
                continue;
            };
            for (a_id, a) in &lives {
                let Some(a_admitted) = a.last_admitted else {
                    continue;
                };
                if a.process == b.process
                    || a_admitted >= b_from
                    || a.ended.is_some_and(|(_, ended)| ended <= b_from)
                {
                    continue;
                }
                let Some((held_from, lapsed)) = run.lease_around(a.process, b_from) else {
                    continue;
                };
                if held_from > a_admitted || lapsed <= b_from {
                    continue;
                }
                found.push(Found {
                    kind: AnomalyKind::PlacedUnderLease,
                    identity: identity.to_owned(),
                    detail: format!(
                        "activation {b_id} ({}#{}) began handling at {} µs while activation \
                         {a_id} ({}#{}), last admitting at {} µs, lived on under a lease held \
                         from {} until {} µs",
                        b.process.0,
                        b.process.1,
                        b_from.mono_us,
                        a.process.0,
                        a.process.1,
                        a_admitted.mono_us,
                        held_from.mono_us,
                        lapsed.mono_us,
                    ),
                    around: b_from,
                });
            }
        }
    }
}

/// Acknowledged increments, writes and transfers missing from a final state.
fn lost_writes(run: &Run<'_>, found: &mut Vec<Found>) {
    let mut ops: Vec<(&u64, &Invoked<'_>)> = run.invokes.iter().collect();
    ops.sort_by_key(|(op, _)| **op);
    for (op, inv) in ops {
        let Some((_, _, acked_at)) = run.acked(*op) else {
            continue;
        };
        let sides: Vec<&str> = match inv.operation {
            Operation::Increment | Operation::Write { .. } => vec![inv.identity],
            Operation::Transfer { from, to, .. } => vec![from, to],
            Operation::Read => continue,
        };
        for side in sides {
            let detail = match run.finals.get(side) {
                None => format!("op {op} acknowledged, but no final state of {side} was read"),
                Some(f) if !f.applied.contains(op) => format!(
                    "op {op} ({:?}) acknowledged at {} µs, missing from the final applied list \
                     ({} ops)",
                    inv.operation,
                    acked_at.mono_us,
                    f.applied.len()
                ),
                Some(_) => continue,
            };
            found.push(Found {
                kind: AnomalyKind::LostWrite,
                identity: side.to_owned(),
                detail,
                around: acked_at,
            });
        }
    }
}

/// Op ids twice in one final, or applied by more than one handling.
fn applied_twice(run: &Run<'_>, found: &mut Vec<Found>) {
    let mut finals: Vec<_> = run.finals.iter().collect();
    finals.sort_by_key(|(id, _)| **id);
    for (identity, f) in finals {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for op in f.applied {
            *seen.entry(*op).or_default() += 1;
        }
        let mut twice: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
        twice.sort();
        for (op, n) in twice {
            found.push(Found {
                kind: AnomalyKind::AppliedTwice,
                identity: (*identity).to_owned(),
                detail: format!("op {op} appears {n} times in the final applied list"),
                around: f.at,
            });
        }
    }
    let mut handled: Vec<_> = run.applied.iter().filter(|(_, v)| v.len() > 1).collect();
    handled.sort_by_key(|((id, op), _)| (*id, *op));
    for ((identity, op), times) in handled {
        let by: Vec<&str> = times.iter().map(|(a, _)| *a).collect();
        found.push(Found {
            kind: AnomalyKind::AppliedTwice,
            identity: (*identity).to_owned(),
            detail: format!(
                "op {op} handled with applied=true {} times, by {by:?}",
                times.len()
            ),
            around: times[1].1,
        });
    }
}

/// Register reads older than a write acknowledged before the read was invoked.
fn stale_reads(run: &Run<'_>, found: &mut Vec<Found>) {
    // identity → acknowledged writes (ack time, version, op), sorted by ack time.
    let mut writes: HashMap<&str, Vec<(Stamp, u64, u64)>> = HashMap::new();
    let mut reads = Vec::new();
    for (op, inv) in &run.invokes {
        let Some((_, version, acked_at)) = run.acked(*op) else {
            continue;
        };
        match (inv.operation, version) {
            (Operation::Write { .. }, Some(v)) => writes
                .entry(inv.identity)
                .or_default()
                .push((acked_at, v, *op)),
            (Operation::Read, Some(v)) => reads.push((*op, inv, v)),
            _ => {}
        }
    }
    for w in writes.values_mut() {
        w.sort();
    }
    reads.sort_by_key(|(op, _, _)| *op);
    for (op, inv, read_version) in reads {
        let Some(ws) = writes.get(inv.identity) else {
            continue;
        };
        let newest = ws
            .iter()
            .take_while(|(acked_at, _, _)| *acked_at < inv.at)
            .max_by_key(|(_, v, _)| *v);
        if let Some((acked_at, v, write_op)) = newest {
            if *v > read_version {
                found.push(Found {
                    kind: AnomalyKind::StaleRead,
                    identity: inv.identity.to_owned(),
                    detail: format!(
                        "read {op} invoked at {} µs returned version {read_version}, but write \
                         {write_op} was acknowledged at version {v} at {} µs",
                        inv.at.mono_us, acked_at.mono_us
                    ),
                    around: inv.at,
                });
            }
        }
    }
}

/// The saga's invariants, when the history has an [`Event::Accounts`].
fn saga_invariants(run: &Run<'_>, found: &mut Vec<Found>) {
    let Some((accounts, initial, setup_at)) = run.accounts else {
        return;
    };
    let mut expected: HashMap<&str, i128> = accounts
        .iter()
        .map(|a| (a.as_str(), initial as i128))
        .collect();
    let mut transfers: Vec<(&u64, &Invoked<'_>)> = run
        .invokes
        .iter()
        .filter(|(_, i)| matches!(i.operation, Operation::Transfer { .. }))
        .collect();
    transfers.sort_by_key(|(op, _)| **op);
    let on = |account: &str, op: u64| -> usize {
        run.finals
            .get(account)
            .map_or(0, |f| f.applied.iter().filter(|o| **o == op).count())
    };
    for (op, inv) in transfers {
        let Operation::Transfer { from, to, amount } = inv.operation else {
            continue;
        };
        let (debited, credited) = (on(from, *op), on(to, *op));
        let problem = if debited != credited {
            Some(format!(
                "transfer {op} is on {from} {debited} time(s) and on {to} {credited} time(s)"
            ))
        } else if debited == 1 && run.refused(*op) {
            Some(format!(
                "transfer {op} was refused yet applied on both sides"
            ))
        } else {
            None
        };
        if let Some(detail) = problem {
            found.push(Found {
                kind: AnomalyKind::Invariant,
                identity: inv.identity.to_owned(),
                detail,
                around: inv.at,
            });
        }
        if let Some(b) = expected.get_mut(from.as_str()) {
            *b -= (debited as i128) * (*amount as i128);
        }
        if let Some(b) = expected.get_mut(to.as_str()) {
            *b += (credited as i128) * (*amount as i128);
        }
    }
    let mut total: u128 = 0;
    for account in accounts {
        let Some(FinalSeen {
            value: balance, at, ..
        }) = run.finals.get(account.as_str())
        else {
            found.push(Found {
                kind: AnomalyKind::Invariant,
                identity: account.clone(),
                detail: "no final balance was read".into(),
                around: setup_at,
            });
            continue;
        };
        total += *balance as u128;
        let want = expected[account.as_str()];
        if *balance as i128 != want {
            found.push(Found {
                kind: AnomalyKind::Invariant,
                identity: account.clone(),
                detail: format!(
                    "final balance {balance}, but the initial {initial} plus its applied \
                     credits minus its applied debits is {want}"
                ),
                around: *at,
            });
        }
    }
    let want_total = accounts.len() as u128 * initial as u128;
    if total != want_total {
        found.push(Found {
            kind: AnomalyKind::Invariant,
            identity: "tb.Account/*".into(),
            detail: format!("final balances sum to {total}, the initial total was {want_total}"),
            around: setup_at,
        });
    }
}

/// The longest acknowledgement gap per (fault, identity), as percentiles, and the
/// largest per fault (see [`Recovery`] for the windows).
fn recovery(run: &Run<'_>) -> Recovery {
    let mut acks: HashMap<&str, Vec<u64>> = HashMap::new();
    for (op, inv) in &run.invokes {
        if let Some((_, _, at)) = run.acked(*op) {
            acks.entry(inv.identity).or_default().push(at.mono_us);
        }
    }
    let Some(last_ack) = acks.values().flatten().max().copied() else {
        return Recovery::default();
    };
    for a in acks.values_mut() {
        a.sort_unstable();
    }
    let applied: Vec<(&str, &'static str, Stamp)> = run
        .faults
        .iter()
        .filter_map(|(what, at)| fault_kind(what).map(|kind| (*what, kind, *at)))
        .collect();
    let mut gaps = Vec::new();
    let mut per_fault = Vec::new();
    for (i, (what, kind, fault_at)) in applied.iter().enumerate() {
        let from = fault_at.mono_us;
        let until = applied
            .get(i + 1)
            .map_or(last_ack, |(_, _, next)| next.mono_us.min(last_ack));
        if until <= from {
            continue;
        }
        let mut slowest = (0, "");
        for (identity, times) in &acks {
            let mut previous = from;
            let mut longest = 0;
            for t in times.iter().filter(|t| **t > from && **t <= until) {
                longest = longest.max(t - previous);
                previous = *t;
            }
            longest = longest.max(if previous == from {
                // Not answered at all before the next fault: the outage this fault
                // began lasts until the identity's next acknowledgement (or the
                // run's last), not cut where the next fault began.
                let answered = times.iter().find(|t| **t > until);
                answered.map_or(last_ack, |t| *t) - from
            } else {
                // Answered since: a wait open when the next fault began is that
                // fault's (its window measures it from its own start).
                until - previous
            });
            gaps.push(longest as f64 / 1000.0);
            if longest > slowest.0 || (longest == slowest.0 && *identity < slowest.1) {
                slowest = (longest, identity);
            }
        }
        per_fault.push(FaultRecovery {
            fault: what.to_string(),
            kind: kind.to_string(),
            at_us: from,
            max_ms: slowest.0 as f64 / 1000.0,
            slowest: slowest.1.to_string(),
        });
    }
    if gaps.is_empty() {
        return Recovery::default();
    }
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
    Recovery {
        samples: gaps.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: gaps[gaps.len() - 1],
        faults: per_fault,
    }
}

/// The events about `identity` (its operations' completions and the faults included)
/// nearest `around`, at most
/// [`EXCERPT_EVENTS`], as JSON lines in time order.
fn excerpt(sorted: &[&Event], run: &Run<'_>, identity: &str, around: Stamp) -> Vec<String> {
    let about = |e: &Event| match e {
        Event::Fault { .. } => true,
        Event::Complete { op, .. } => run.invokes.get(op).is_some_and(|i| i.identity == identity),
        Event::Accounts { .. } | Event::Lease { .. } | Event::Member { .. } => false,
        other => other.identity() == Some(identity),
    };
    let mut near: Vec<(u64, usize)> = sorted
        .iter()
        .enumerate()
        .filter(|(_, e)| about(e))
        .map(|(i, e)| (e.time().mono_us.abs_diff(around.mono_us), i))
        .collect();
    near.sort_unstable();
    let mut picked: Vec<usize> = near
        .into_iter()
        .take(EXCERPT_EVENTS)
        .map(|(_, i)| i)
        .collect();
    picked.sort_unstable();
    picked
        .into_iter()
        .filter_map(|i| serde_json::to_string(sorted[i]).ok())
        .collect()
}
