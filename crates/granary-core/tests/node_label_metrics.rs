//! granary-core's series carry the node label of their actor system
//! (`ActorSystem::set_node_label`): two nodes in one process record two series, a
//! system without a label records its own, and an actor whose system gets its label
//! while it runs counts on under the label.
//!
//! The recorder is process-wide, so this file's tests share one (installed once) and
//! each uses its own labels and actor kinds.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::within;
use granary_core::prelude::*;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Samples of one histogram.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// A recorder that keeps every counter and histogram by its key (name and labels).
#[derive(Default)]
struct Kept {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
}

impl Recorder for Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(key.clone()).or_default().clone())
    }
}

/// Labels of a series as sorted `(key, value)` pairs.
fn labels_of(key: &Key) -> Vec<(String, String)> {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    labels
}

impl Kept {
    /// The process's recorder, installed on first use (before any actor runs).
    fn installed() -> &'static Kept {
        static KEPT: OnceLock<&'static Kept> = OnceLock::new();
        KEPT.get_or_init(|| {
            let kept: &'static Kept = Box::leak(Box::default());
            metrics::set_global_recorder(kept).expect("the only recorder");
            kept
        })
    }

    /// The counter `name` whose labels are exactly `labels` (sorted), if registered.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let want = sorted(labels);
        let counters = self.counters.lock().unwrap();
        counters
            .iter()
            .find(|(k, _)| k.name() == name && labels_of(k) == want)
            .map(|(_, v)| v.load(Ordering::SeqCst))
    }

    /// How many samples the histogram `name` with exactly `labels` holds.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Option<usize> {
        let want = sorted(labels);
        let histograms = self.histograms.lock().unwrap();
        histograms
            .iter()
            .find(|(k, _)| k.name() == name && labels_of(k) == want)
            .map(|(_, v)| v.0.lock().unwrap().len())
    }

    /// Every label set of counter `name` that has `label` among its labels.
    fn series_with(&self, name: &str, label: (&str, &str)) -> Vec<Vec<(String, String)>> {
        let counters = self.counters.lock().unwrap();
        counters
            .keys()
            .filter(|k| k.name() == name)
            .map(labels_of)
            .filter(|l| l.iter().any(|(k, v)| k == label.0 && v == label.1))
            .collect()
    }
}

fn sorted(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<_> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    labels
}

/// A counted message.
struct Bump;
impl Message for Bump {
    type Reply = u64;
}

/// Counts what it handled (the kind of the first test).
#[derive(Default)]
struct Tallied(u64);
impl Actor for Tallied {}
impl Handler<Bump> for Tallied {
    async fn handle(&mut self, _: Bump, _ctx: &mut Context<Self>) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// The same, the kind of the second test.
#[derive(Default)]
struct Relabelled(u64);
impl Actor for Relabelled {}
impl Handler<Bump> for Relabelled {
    async fn handle(&mut self, _: Bump, _ctx: &mut Context<Self>) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Tells `tells` bumps, asks one more (which answers once all were handled), stops
/// the actor and waits until it stopped: its count is flushed by then. Returns the
/// ask's answer (what the actor counted in all).
async fn load<A: Actor + Handler<Bump>>(actor: &ActorRef<A>, tells: u64) -> u64 {
    for _ in 0..tells {
        actor.tell(Bump).unwrap();
    }
    let counted = actor.ask(Bump).await.unwrap();
    actor.stop();
    actor.wait_stopped().await;
    counted
}

const HANDLED: &str = "granary_messages_handled_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_record_two_series_and_a_plain_system_its_own() {
    let kept = Kept::installed();
    let kind = std::any::type_name::<Tallied>();
    let (a, b, plain) = (ActorSystem::new(), ActorSystem::new(), ActorSystem::new());
    assert!(a.set_node_label("10.0.0.1:7000"));
    assert!(b.set_node_label("10.0.0.2:7000"));
    assert!(!a.set_node_label("10.0.0.9:7000"), "a label is set once");
    assert_eq!(a.node_label(), Some("10.0.0.1:7000"));
    assert_eq!(plain.node_label(), None);

    within(async {
        // Two actors on a, so a's series adds up both.
        assert_eq!(load(&a.spawn(Tallied::default()), 100).await, 101);
        assert_eq!(load(&a.spawn(Tallied::default()), 20).await, 21);
        assert_eq!(load(&b.spawn(Tallied::default()), 50).await, 51);
        assert_eq!(load(&plain.spawn(Tallied::default()), 7).await, 8);
    })
    .await;

    let on_a = [("node", "10.0.0.1:7000"), ("kind", kind)];
    let on_b = [("node", "10.0.0.2:7000"), ("kind", kind)];
    assert_eq!(kept.counter(HANDLED, &on_a), Some(101 + 21));
    assert_eq!(kept.counter(HANDLED, &on_b), Some(51));
    assert_eq!(kept.counter(HANDLED, &[("kind", kind)]), Some(8));
    assert_eq!(
        kept.series_with(HANDLED, ("kind", kind)).len(),
        3,
        "one series per node and one without a node"
    );
    assert_eq!(
        kept.series_with(HANDLED, ("node", "10.0.0.9:7000")),
        Vec::<Vec<(String, String)>>::new(),
        "the refused label names no series"
    );
    // Asks count per node and outcome; each actor's first wake-up to mail may or may
    // not be sampled, but its ask is always counted and timed.
    let ok_a = [("node", "10.0.0.1:7000"), ("outcome", "ok")];
    let ok_b = [("node", "10.0.0.2:7000"), ("outcome", "ok")];
    assert_eq!(kept.counter("granary_asks_total", &ok_a), Some(2));
    assert_eq!(kept.counter("granary_asks_total", &ok_b), Some(1));
    assert_eq!(kept.samples("granary_ask_seconds", &ok_a), Some(2));
    assert_eq!(kept.samples("granary_ask_seconds", &ok_b), Some(1));

    a.shutdown().await;
    b.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_counts_under_the_label_its_system_gets_while_it_runs() {
    let kept = Kept::installed();
    let kind = std::any::type_name::<Relabelled>();
    let system = ActorSystem::new();
    let actor = system.spawn(Relabelled::default());
    let unlabelled = [("kind", kind)];
    let labelled = [("node", "10.0.0.3:7000"), ("kind", kind)];

    within(async {
        for _ in 0..3 {
            actor.tell(Bump).unwrap();
        }
        assert_eq!(actor.ask(Bump).await.unwrap(), 4);
        // The actor adds its count when it waits for mail again, after the ask's
        // reply: wait for it (bounded by `within`).
        while kept.counter(HANDLED, &unlabelled) != Some(4) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(system.set_node_label("10.0.0.3:7000"));
        assert_eq!(load(&actor, 5).await, 10);
    })
    .await;

    assert_eq!(kept.counter(HANDLED, &unlabelled), Some(4));
    assert_eq!(kept.counter(HANDLED, &labelled), Some(6));
    system.shutdown().await;
}
