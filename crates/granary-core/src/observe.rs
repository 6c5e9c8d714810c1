//! Metrics and spans on the message path, cheap when nobody listens.
//!
//! Metrics go through the [`metrics`] facade (the application picks the exporter);
//! spans through [`tracing`]. Per message the runner only bumps a local count; it adds
//! the count to the kind's counter when it waits for mail, yields or stops, and it
//! times one message per run (the first after a wait or a yield). A span is captured
//! for a message only while INFO spans are enabled somewhere, so with tracing filtered
//! out a send pays one relaxed atomic load.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use tracing::{Instrument, Span};

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

/// `fut` inside a `granary.handle` span, child of the sender's span, when there is one.
pub(crate) fn handled<'a, F>(parent: Parent, message: &'static str, fut: F) -> BoxFuture<'a, ()>
where
    F: Future<Output = ()> + Send + 'a,
{
    match parent {
        Some(parent) => {
            let span = tracing::info_span!(parent: &*parent, "granary.handle", message);
            Box::pin(fut.instrument(span))
        }
        None => Box::pin(fut),
    }
}

/// Handles of one actor kind's series (`kind` = the actor's Rust type name).
pub(crate) struct KindMeter {
    handled: Counter,
    latency: Histogram,
    depth: Histogram,
}

impl KindMeter {
    /// The meter of kind `kind`, registered on first use.
    pub(crate) fn of(kind: &'static str) -> Arc<KindMeter> {
        static KINDS: OnceLock<RwLock<HashMap<&'static str, Arc<KindMeter>>>> = OnceLock::new();
        let kinds = KINDS.get_or_init(Default::default);
        if let Some(meter) = kinds.read().get(kind) {
            return meter.clone();
        }
        kinds
            .write()
            .entry(kind)
            .or_insert_with(|| {
                Arc::new(KindMeter {
                    handled: metrics::counter!("granary_messages_handled_total", "kind" => kind),
                    latency: metrics::histogram!("granary_message_handling_seconds", "kind" => kind),
                    depth: metrics::histogram!("granary_mailbox_depth", "kind" => kind),
                })
            })
            .clone()
    }
}

/// One actor's local count between flushes (`kind` is passed in, not kept, so an idle
/// actor's task stays small). The first message after a flush is timed.
pub(crate) struct Tally {
    handled: u32,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self { handled: 0 }
    }

    /// The handler future of the next message, timed when it is the first since a
    /// flush.
    #[inline]
    pub(crate) fn wrap<'a>(&self, kind: &'static str, fut: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        if self.handled != 0 {
            return fut;
        }
        Box::pin(async move {
            let start = Instant::now();
            fut.await;
            KindMeter::of(kind)
                .latency
                .record(start.elapsed().as_secs_f64());
        })
    }

    /// After one message was handled.
    #[inline]
    pub(crate) fn after(&mut self) {
        self.handled += 1;
    }

    /// Add the local count to the kind's counter (on a wait, a yield or a stop) and
    /// record the mailbox `depth` the actor just took in, if given.
    pub(crate) fn flush(&mut self, kind: &'static str, depth: Option<usize>) {
        if self.handled == 0 && depth.is_none() {
            return;
        }
        let meter = KindMeter::of(kind);
        if self.handled > 0 {
            meter
                .handled
                .increment(u64::from(std::mem::take(&mut self.handled)));
        }
        if let Some(depth) = depth {
            meter.depth.record(depth as f64);
        }
    }
}

/// Count an ask's outcome and latency (`granary_asks_total{outcome}`,
/// `granary_ask_seconds`).
pub(crate) fn ask_done(start: Instant, outcome: &'static str) {
    metrics::counter!("granary_asks_total", "outcome" => outcome).increment(1);
    metrics::histogram!("granary_ask_seconds", "outcome" => outcome)
        .record(start.elapsed().as_secs_f64());
}
