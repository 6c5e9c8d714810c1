//! Metrics and spans on the message path, cheap when nobody listens.
//!
//! Metrics go through the [`metrics`] facade (the application picks the exporter);
//! spans through [`tracing`]. Per message the runner only bumps a local count; it adds
//! the count to the kind's counter when it waits for mail, yields or stops. One
//! wake-up in 16 (per thread) records the mailbox depth and times the next message, and
//! so does every yield (after 1,024 messages in a row). A span is captured
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
    /// Runs `f` on the meter of kind `kind`, registered on first use. Each thread
    /// keeps the meters it used last at hand, so a wake-up takes no lock and no
    /// reference count.
    pub(crate) fn with<R>(kind: &'static str, f: impl FnOnce(&KindMeter) -> R) -> R {
        thread_local! {
            static NEAR: std::cell::RefCell<Vec<(usize, usize, Arc<KindMeter>)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        // A type name is a static string: its address and length identify the kind.
        let key = (kind.as_ptr() as usize, kind.len());
        NEAR.with(|near| {
            let mut near = near.borrow_mut();
            if let Some((_, _, meter)) = near.iter().find(|(p, l, _)| (*p, *l) == key) {
                return f(meter);
            }
            let meter = Self::registered(kind);
            if near.len() == NEAR_KINDS {
                near.remove(0);
            }
            near.push((key.0, key.1, meter.clone()));
            f(&meter)
        })
    }

    fn registered(kind: &'static str) -> Arc<KindMeter> {
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

/// Kinds whose meters a thread keeps at hand.
const NEAR_KINDS: usize = 8;

/// One wake-up in this many (per thread) samples the mailbox depth and times the
/// next message.
const SAMPLE_EVERY: u32 = 16;

/// A run this long before a flush is a yield's: the next message is timed.
const YIELD_RUN: u32 = 1024;

/// Whether this wake-up is sampled.
fn sample_wake() -> bool {
    thread_local! {
        static WAKES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    WAKES.with(|w| {
        let n = w.get().wrapping_add(1);
        w.set(n);
        n % SAMPLE_EVERY == 1
    })
}

/// One actor's local count between flushes (`kind` is passed in, not kept, so an idle
/// actor's task stays small) and whether its next message is timed.
pub(crate) struct Tally {
    handled: u32,
    timed: bool,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            handled: 0,
            timed: false,
        }
    }

    /// The handler future of the next message, timed after a sampled wake-up or a
    /// yield.
    #[inline]
    pub(crate) fn wrap<'a>(
        &mut self,
        kind: &'static str,
        fut: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, ()> {
        if !std::mem::take(&mut self.timed) {
            return fut;
        }
        Box::pin(async move {
            let start = Instant::now();
            fut.await;
            let elapsed = start.elapsed().as_secs_f64();
            KindMeter::with(kind, |m| m.latency.record(elapsed));
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
    pub(crate) fn flush(&mut self, kind: &'static str, depth: Option<usize>) {
        let depth = match depth {
            Some(d) if sample_wake() => {
                self.timed = true;
                Some(d)
            }
            Some(_) => None,
            None => {
                self.timed = self.handled >= YIELD_RUN;
                None
            }
        };
        if self.handled == 0 && depth.is_none() {
            return;
        }
        let handled = std::mem::take(&mut self.handled);
        KindMeter::with(kind, |meter| {
            if handled > 0 {
                meter.handled.increment(u64::from(handled));
            }
            if let Some(depth) = depth {
                meter.depth.record(depth as f64);
            }
        });
    }
}

/// Count an ask's outcome and latency (`granary_asks_total{outcome}`,
/// `granary_ask_seconds`).
pub(crate) fn ask_done(start: Instant, outcome: &'static str) {
    metrics::counter!("granary_asks_total", "outcome" => outcome).increment(1);
    metrics::histogram!("granary_ask_seconds", "outcome" => outcome)
        .record(start.elapsed().as_secs_f64());
}
