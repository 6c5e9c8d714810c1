//! The workloads: virtual actor kinds that record what they handle, and the client
//! driver that loads them and records what it asked and learnt.
//!
//! - [`counter`]: `tb.Counter`, persisted increments, idempotent by op id.
//! - [`register`]: `tb.Register`, versioned writes and reads.
//! - [`saga`]: `tb.Account` and the coordinator `tb.Teller` (a transfer touches two
//!   accounts through a third identity).
//! - [`driver`]: the client: concurrent tasks at a target rate, every ask with a
//!   deadline, then re-driven transfers and final states.
//!
//! Node processes install a [`Recorder`] ([`install_recorder`]) before they start;
//! every kind records its activations and handled operations through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use granary::virtual_actors::{Kind, NodeBuilder};

use crate::history::{Event, HistoryWriter, Stamp};

/// The version of the application this build is: 1, or 2 with the `app-v2` feature
/// (the counter workload's contract, [`counter`]).
pub const APP_VERSION: u32 = if cfg!(feature = "app-v2") { 2 } else { 1 };

/// The `VirtualActor` impl of a workload kind (`String` keys) whose activations only
/// record their start and end: `$actor` is a struct with one field, `log`.
macro_rules! recorded_kind {
    ($actor:ident, $kind:literal, $state:ty) => {
        $crate::workload::recorded_kind!($actor, $kind, $state, 1);
    };
    ($actor:ident, $kind:literal, $state:ty, $state_version:expr) => {
        impl granary::virtual_actors::VirtualActor for $actor {
            const KIND: &'static str = $kind;
            const STATE_VERSION: u32 = $state_version;
            type Key = String;
            type State = $state;

            fn activate(key: &String) -> Self {
                $actor {
                    log: $crate::workload::ActivationLog::new(Self::KIND, key),
                }
            }

            async fn on_activate(
                &mut self,
                _ctx: &mut granary::virtual_actors::VirtualContext<'_, Self>,
            ) -> Result<(), granary::BoxError> {
                self.log.started();
                Ok(())
            }

            async fn on_deactivate(
                &mut self,
                ctx: &mut granary::virtual_actors::VirtualContext<'_, Self>,
            ) {
                self.log.ended(ctx.deactivation_reason());
            }
        }
    };
}
pub(crate) use recorded_kind;

pub mod counter;
pub mod driver;
pub mod register;
pub mod saga;

/// Which workload a client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Persisted counters ([`counter`]).
    Counters,
    /// A versioned register with reads ([`register`]).
    Register,
    /// Transfers between accounts through a coordinator ([`saga`]).
    Saga,
}

/// How every workload kind places a new activation (`--placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WorkloadPlacement {
    /// A random host that hosts the kind (Orleans' default, and granary's).
    #[default]
    Random,
    /// The identity's directory owner (`Placement::Hash`: a member's first call goes
    /// straight there, without a lookup).
    Hash,
}

impl WorkloadPlacement {
    /// The kinds' placement.
    pub fn placement(self) -> granary::virtual_actors::Placement {
        match self {
            WorkloadPlacement::Random => granary::virtual_actors::Placement::Random,
            WorkloadPlacement::Hash => granary::virtual_actors::Placement::Hash,
        }
    }

    /// The name on the command line and in rows.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadPlacement::Random => "random",
            WorkloadPlacement::Hash => "hash",
        }
    }
}

/// Hosts every workload kind on a node, placed by `placement`.
pub fn host_all(
    builder: NodeBuilder,
    idle_timeout: std::time::Duration,
    placement: WorkloadPlacement,
) -> NodeBuilder {
    let placement = placement.placement();
    builder
        .host(
            counter::kind()
                .idle_timeout(idle_timeout)
                .placement(placement.clone()),
        )
        .host(
            register::kind()
                .idle_timeout(idle_timeout)
                .placement(placement.clone()),
        )
        .host(
            saga::account_kind()
                .idle_timeout(idle_timeout)
                .placement(placement.clone()),
        )
        .host(
            saga::teller_kind()
                .idle_timeout(idle_timeout)
                .placement(placement),
        )
}

/// The history recorder of a node process: who the process is and where it writes.
#[derive(Debug)]
pub struct Recorder {
    node: String,
    incarnation: u64,
    next_activation: AtomicU64,
    out: HistoryWriter,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

static HANDLER_DELAY: OnceLock<std::time::Duration> = OnceLock::new();

/// Makes every counter increment of this process wait `delay` between updating its
/// state in memory and writing it (a slow handler: a pause or a kill then catches
/// handlers in flight). Set once, before the node starts; `false` if already set.
pub fn set_handler_delay(delay: std::time::Duration) -> bool {
    HANDLER_DELAY.set(delay).is_ok()
}

/// The delay of [`set_handler_delay`] (zero unless set).
pub(crate) fn handler_delay() -> std::time::Duration {
    HANDLER_DELAY.get().copied().unwrap_or_default()
}

/// Installs the process's recorder (once; `false` if one was already installed).
/// Kinds record nothing until it is installed.
pub fn install_recorder(node: String, incarnation: u64, out: HistoryWriter) -> bool {
    RECORDER
        .set(Recorder {
            node,
            incarnation,
            next_activation: AtomicU64::new(0),
            out,
        })
        .is_ok()
}

/// One activation's handle on the recorder: its id and identity.
#[derive(Debug, Clone)]
pub(crate) struct ActivationLog {
    identity: String,
    activation: String,
}

impl ActivationLog {
    /// A new activation of `identity` (records nothing yet).
    pub(crate) fn new(kind: &str, key: &str) -> ActivationLog {
        let activation = match RECORDER.get() {
            Some(r) => format!(
                "{}:{}:{}",
                r.node,
                r.incarnation,
                r.next_activation.fetch_add(1, Ordering::Relaxed)
            ),
            None => "unrecorded".into(),
        };
        ActivationLog {
            identity: format!("{kind}/{key}"),
            activation,
        }
    }

    /// Records [`Event::ActivationStart`].
    pub(crate) fn started(&self) {
        record(|r| Event::ActivationStart {
            node: r.node.clone(),
            incarnation: r.incarnation,
            identity: self.identity.clone(),
            activation: self.activation.clone(),
            at: Stamp::now(),
        });
    }

    /// Records [`Event::ActivationEnd`] with the runtime's reason (`Idle`,
    /// `StateConflict`, `HostLeaseLost`, ...; `unknown` if it gave none).
    pub(crate) fn ended(&self, reason: Option<granary::virtual_actors::DeactivationReason>) {
        let reason = reason.map_or_else(|| "unknown".to_owned(), |r| format!("{r:?}"));
        record(|r| Event::ActivationEnd {
            node: r.node.clone(),
            incarnation: r.incarnation,
            identity: self.identity.clone(),
            activation: self.activation.clone(),
            reason,
            at: Stamp::now(),
        });
    }

    /// Records [`Event::Handled`] for `op`, handled from `start` until now.
    pub(crate) fn handled(&self, op: u64, applied: bool, start: Stamp) {
        self.record_handled(op, applied, false, start);
    }

    /// Records [`Event::Handled`] for `op`, found already applied in the state.
    pub(crate) fn repeated(&self, op: u64, start: Stamp) {
        self.record_handled(op, false, true, start);
    }

    fn record_handled(&self, op: u64, applied: bool, repeat: bool, start: Stamp) {
        record(|r| Event::Handled {
            node: r.node.clone(),
            incarnation: r.incarnation,
            identity: self.identity.clone(),
            activation: self.activation.clone(),
            op,
            applied,
            repeat,
            start,
            end: Stamp::now(),
        });
    }
}

/// Records [`Event::Lease`]: the node process's host lease is now `held` (or not;
/// then `lapsed_at` is when it ran out, if known).
pub fn record_lease(held: bool, lapsed_at: Option<Stamp>) {
    record(|r| Event::Lease {
        node: r.node.clone(),
        incarnation: r.incarnation,
        held,
        at: Stamp::now(),
        lapsed_at,
    });
}

/// Records [`Event::Member`]: the process saw `member` go `status` (`down` or
/// `up`) in its cluster view; `own` when `member` is the process itself.
pub fn record_member(member: String, own: bool, status: &str) {
    record(|r| Event::Member {
        node: r.node.clone(),
        incarnation: r.incarnation,
        member,
        own,
        status: status.to_owned(),
        at: Stamp::now(),
    });
}

/// Records an event built from the installed recorder, if there is one. A failed
/// write is reported on stderr (the process's log) and the run goes on: the
/// checker then sees a gap, never an invented event.
fn record(event: impl FnOnce(&Recorder) -> Event) {
    if let Some(r) = RECORDER.get() {
        if let Err(e) = r.out.record(&event(r)) {
            eprintln!("history write failed: {e}");
        }
    }
}

/// What an identity's state says at the end of a run (the reply of every kind's
/// `ReadFinal`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FinalState {
    /// The count, register value or balance.
    pub value: u64,
    /// The op ids applied, in order.
    pub applied: Vec<u64>,
    /// A register's version.
    pub version: Option<u64>,
}

/// Reads the final state of an identity (recorded as a handled op with
/// `applied: false`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReadFinal {
    /// The client's op id for this read.
    pub op: u64,
}

impl granary::Message for ReadFinal {
    type Reply = FinalState;
}
granary::register_message!(ReadFinal, "tb.ReadFinal");
granary::register_message!(FinalState, "tb.FinalState");

/// A kind whose every message is registered: the workload kinds' common setup.
pub(crate) fn with_final<A>(kind: Kind<A>) -> Kind<A>
where
    A: granary::virtual_actors::VirtualHandler<ReadFinal>,
{
    kind.handles::<ReadFinal>()
}

// `Result<u64, String>` is the reply of both `Increment` and `Write`: one wire name.
granary::register_message!(Result<u64, String>, "tb.NumberReply");
