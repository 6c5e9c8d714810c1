//! Metrics and spans on the message path, cheap when nobody listens.
//!
//! Metrics go through the [`metrics`] facade (the application picks the exporter);
//! spans through [`tracing`]. A system's series carry a `node` label once it has one
//! ([`crate::ActorSystem::set_node_label`]; the remote layer sets the node's address):
//! the label is part of the handles, which an actor looks up on its first flush and
//! keeps, so a message pays nothing for it.
//!
//! Per message the runner only bumps a count local to the actor's task; it adds the
//! count to its kind's counter when it waits for mail, yields or stops. One wake-up in
//! 16 of each actor records the mailbox depth and times the next message, and so does
//! every yield (after 1,024 messages in a row). Nothing here reads thread-local state:
//! with and without a recorder the runner does the same work, and only what the
//! recorder does with a count or a sample differs. A span is captured for a message
//! only while INFO spans are enabled somewhere, so with tracing filtered out a send
//! pays one relaxed atomic load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use metrics::{Counter, Histogram, Label};
use parking_lot::{Mutex, RwLock};
use tracing::{Instrument, Span};

use crate::actor::Actor;
use crate::context::Context;
use crate::handler_future::HandlerFuture;
use crate::id::ActorId;
use crate::system::IdHash;

/// The span a message was sent from, when tracing is on and the sender was in one.
pub(crate) type Parent = Option<Box<Span>>;

/// The sender's current span, if INFO spans are enabled and it is in one.
#[inline]
pub(crate) fn capture() -> Parent {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return None;
    }
    let span = Span::current();
    (!span.is_none()).then(|| Box::new(span))
}

/// The handler future of a message, erased into a recycled block (an envelope's future is
/// type-erased; see `handler_future.rs`), inside
/// a `granary.handle` span that is a child of the sender's span when there is one.
pub(crate) fn handled<'a, F>(parent: Parent, message: &'static str, fut: F) -> HandlerFuture<'a>
where
    F: Future<Output = ()> + Send + 'a,
{
    match parent {
        Some(parent) => {
            let span = tracing::info_span!(parent: &*parent, "granary.handle", message);
            HandlerFuture::new(fut.instrument(span))
        }
        None => HandlerFuture::new(fut),
    }
}

/// The labels of a series: `node` when there is one, then `key = value`.
fn labels(node: Option<&'static str>, key: &'static str, value: &'static str) -> Vec<Label> {
    node.map(|node| Label::from_static_parts("node", node))
        .into_iter()
        .chain([Label::from_static_parts(key, value)])
        .collect()
}

/// The series of one node, or of the process's systems that have no node label: the
/// handles of each actor kind and of each ask outcome.
///
/// Made on first use and kept for the life of the process, as the recorder keeps the
/// series themselves: memory grows with the node labels and actor kinds a process
/// names, never with its messages, actors or systems.
pub(crate) struct NodeMeters {
    node: Option<&'static str>,
    /// Keyed by the kind name's address and length (a type name is a static string).
    /// Two copies of one name only make two handles of the same series.
    kinds: RwLock<HashMap<(usize, usize), &'static KindMeter, IdHash>>,
    asks: [OnceLock<AskMeter>; AskOutcome::ALL.len()],
}

impl NodeMeters {
    fn new(node: Option<&'static str>) -> Self {
        Self {
            node,
            kinds: RwLock::default(),
            asks: Default::default(),
        }
    }

    /// The meters of the systems without a node label.
    fn unlabelled() -> &'static NodeMeters {
        static UNLABELLED: OnceLock<NodeMeters> = OnceLock::new();
        UNLABELLED.get_or_init(|| NodeMeters::new(None))
    }

    /// The meters of node `label`, made on first use.
    fn labelled(label: &str) -> &'static NodeMeters {
        static NODES: OnceLock<Mutex<HashMap<String, &'static NodeMeters>>> = OnceLock::new();
        let mut nodes = NODES.get_or_init(Default::default).lock();
        if let Some(meters) = nodes.get(label) {
            return meters;
        }
        let node: &'static str = Box::leak(label.into());
        let meters: &'static NodeMeters = Box::leak(Box::new(NodeMeters::new(Some(node))));
        nodes.insert(label.to_owned(), meters);
        meters
    }

    /// The handles of actor kind `kind` on this node, registered on first use.
    fn kind(&self, kind: &'static str) -> &'static KindMeter {
        let key = (kind.as_ptr() as usize, kind.len());
        if let Some(meter) = self.kinds.read().get(&key) {
            return meter;
        }
        self.kinds
            .write()
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(KindMeter::new(self.node, kind))))
    }

    /// The handles of asks that ended with `outcome`, registered on first use (so a
    /// scrape lists the outcomes that happened).
    fn ask(&self, outcome: AskOutcome) -> &AskMeter {
        self.asks[outcome as usize].get_or_init(|| {
            let labels = labels(self.node, "outcome", outcome.name());
            AskMeter {
                asks: metrics::counter!("granary_asks_total", labels.clone()),
                seconds: metrics::histogram!("granary_ask_seconds", labels),
            }
        })
    }
}

/// Where an actor system's series go: the meters of its node once it has a label, the
/// unlabelled ones until then.
#[derive(Default)]
pub(crate) struct MeterSlot(OnceLock<&'static NodeMeters>);

impl MeterSlot {
    /// Labels the system's series with `node` from now on; `false` (and nothing
    /// changes) when it had a label already.
    pub(crate) fn label(&self, node: &str) -> bool {
        let mut set = false;
        self.0.get_or_init(|| {
            set = true;
            NodeMeters::labelled(node)
        });
        set
    }

    /// The node label, if set.
    pub(crate) fn node(&self) -> Option<&'static str> {
        self.0.get().and_then(|meters| meters.node)
    }

    /// The meters the system's series go to now.
    pub(crate) fn meters(&self) -> &'static NodeMeters {
        match self.0.get() {
            Some(meters) => meters,
            None => NodeMeters::unlabelled(),
        }
    }
}

/// Handles of one actor kind's series on one node (`kind` = the actor's Rust type
/// name).
pub(crate) struct KindMeter {
    /// Whether the series carry a node label (an actor that took unlabelled handles
    /// takes new ones once its system is labelled).
    labelled: bool,
    handled: Counter,
    latency: Histogram,
    depth: Histogram,
}

impl KindMeter {
    fn new(node: Option<&'static str>, kind: &'static str) -> Self {
        let labels = labels(node, "kind", kind);
        Self {
            labelled: node.is_some(),
            handled: metrics::counter!("granary_messages_handled_total", labels.clone()),
            latency: metrics::histogram!("granary_message_handling_seconds", labels.clone()),
            depth: metrics::histogram!("granary_mailbox_depth", labels),
        }
    }
}

/// One wake-up in this many (of each actor) samples the mailbox depth and times the
/// next message.
const SAMPLE_EVERY: u8 = 16;

/// A run this long before a flush is a yield's: the next message is timed.
const YIELD_RUN: u32 = 1024;

/// One actor's local count between flushes, the handles it adds it to, its wake-ups
/// (for sampling) and whether its next message is timed.
pub(crate) struct Tally {
    meter: Option<&'static KindMeter>,
    handled: u32,
    wakes: u8,
    timed: bool,
}

impl Tally {
    /// The tally of actor `id`. Its id staggers its sampled wake-ups against other
    /// actors', so actors that wake only a few times are sampled too, one in 16.
    pub(crate) fn new(id: ActorId) -> Self {
        Self {
            meter: None,
            handled: 0,
            wakes: id.local() as u8,
            timed: false,
        }
    }

    /// The handler future of the next message, timed after a sampled wake-up or a
    /// yield.
    #[inline]
    pub(crate) fn wrap<'a>(&mut self, fut: HandlerFuture<'a>) -> HandlerFuture<'a> {
        if !std::mem::take(&mut self.timed) {
            return fut;
        }
        // `timed` is only set by a flush that took the handles.
        let Some(meter) = self.meter else {
            return fut;
        };
        HandlerFuture::new(async move {
            let start = Instant::now();
            fut.await;
            meter.latency.record(start.elapsed().as_secs_f64());
        })
    }

    /// After one message was handled.
    #[inline]
    pub(crate) fn after(&mut self) {
        self.handled += 1;
    }

    /// Add the local count to the kind's counter (on a wait, a yield or a stop). With
    /// `depth` (the actor just woke up to that many messages), one wake-up in
    /// [`SAMPLE_EVERY`] records it and times the next message; a flush after a full
    /// run (a yield) times the next message too.
    pub(crate) fn flush<A: Actor>(&mut self, ctx: &Context<A>, depth: Option<usize>) {
        let depth = match depth {
            Some(d) => {
                self.wakes = self.wakes.wrapping_add(1);
                let sampled = self.wakes.is_multiple_of(SAMPLE_EVERY);
                self.timed = sampled;
                sampled.then_some(d)
            }
            None => {
                self.timed = self.handled >= YIELD_RUN;
                None
            }
        };
        if self.handled == 0 && depth.is_none() {
            return;
        }
        let meter = self.meter(&ctx.system.inner.meters, std::any::type_name::<A>());
        let handled = std::mem::take(&mut self.handled);
        if handled > 0 {
            meter.handled.increment(u64::from(handled));
        }
        if let Some(depth) = depth {
            meter.depth.record(depth as f64);
        }
    }

    /// The kind's handles, looked up on the first flush and again once if the system
    /// got its node label since.
    fn meter(&mut self, slot: &MeterSlot, kind: &'static str) -> &'static KindMeter {
        match self.meter {
            Some(meter) if meter.labelled || slot.node().is_none() => meter,
            _ => {
                let meter = slot.meters().kind(kind);
                self.meter = Some(meter);
                meter
            }
        }
    }
}

/// How an ask ended, as the `outcome` label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AskOutcome {
    Ok,
    Timeout,
    Panicked,
    Stopped,
    Remote,
    Send,
}

impl AskOutcome {
    const ALL: [AskOutcome; 6] = [
        AskOutcome::Ok,
        AskOutcome::Timeout,
        AskOutcome::Panicked,
        AskOutcome::Stopped,
        AskOutcome::Remote,
        AskOutcome::Send,
    ];

    fn name(self) -> &'static str {
        match self {
            AskOutcome::Ok => "ok",
            AskOutcome::Timeout => "timeout",
            AskOutcome::Panicked => "panicked",
            AskOutcome::Stopped => "stopped",
            AskOutcome::Remote => "remote",
            AskOutcome::Send => "send",
        }
    }
}

/// Handles of one ask outcome's series on one node.
struct AskMeter {
    asks: Counter,
    seconds: Histogram,
}

/// Count an ask's outcome and latency (`granary_asks_total{outcome}`,
/// `granary_ask_seconds`) in the asking system's `meters`, or in the unlabelled ones
/// when that system is not known.
pub(crate) fn ask_done(meters: Option<&'static NodeMeters>, start: Instant, outcome: AskOutcome) {
    let meter = meters.unwrap_or_else(NodeMeters::unlabelled).ask(outcome);
    meter.asks.increment(1);
    meter.seconds.record(start.elapsed().as_secs_f64());
}
