//! Where the actors of a run report when they are done, in both modes.
//!
//! Every participant sends one [`Done`] with its round-trip latencies. In the
//! distributed mode the collector is a plain actor ([`Collector`]) on the driving
//! node, exposed so participants on other nodes reach it. In the virtual mode it is
//! a virtual actor ([`VirtualCollector`]) placed `PreferLocal`, so the driver's own
//! first message activates it on the driver's node; it hands the result over
//! through a process-local table ([`expect_virtual`]). Both count with one
//! [`Tally`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use granary::prelude::*;
use granary_remote::register_message;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// One participant finished: its round-trip latencies in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Done {
    /// How many participants the collector waits for.
    pub(crate) expected: u32,
    /// Round-trip latencies, microseconds.
    pub(crate) latencies_us: Vec<u32>,
}
impl Message for Done {
    type Reply = ();
}
register_message!(Done, "granary-bench.suite.Done");

/// Counts [`Done`] reports until the expected number arrived.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    reports: u32,
    latencies_us: Vec<u32>,
}

impl Tally {
    /// Adds a report; the merged latencies once the last expected one arrived.
    pub(crate) fn add(&mut self, done: Done) -> Option<Vec<u32>> {
        self.reports += 1;
        self.latencies_us.extend(done.latencies_us);
        (self.reports >= done.expected).then(|| std::mem::take(&mut self.latencies_us))
    }
}

/// The distributed-mode collector: a plain actor that answers `done` when the
/// last report arrived.
pub(crate) struct Collector {
    tally: Tally,
    done: Option<oneshot::Sender<Vec<u32>>>,
}

impl Collector {
    /// A collector that sends the merged latencies to `done`.
    pub(crate) fn new(done: oneshot::Sender<Vec<u32>>) -> Self {
        Self {
            tally: Tally::default(),
            done: Some(done),
        }
    }
}

impl Actor for Collector {}

impl Handler<Done> for Collector {
    async fn handle(&mut self, msg: Done, _ctx: &mut Context<Self>) {
        if let Some(all) = self.tally.add(msg) {
            if let Some(done) = self.done.take() {
                let _ = done.send(all);
            }
        }
    }
}

/// Results the virtual collectors of this process hand over, by collector key.
static WAITING: Mutex<Option<HashMap<String, oneshot::Sender<Vec<u32>>>>> = Mutex::new(None);

/// Registers the driver's wait for the virtual collector `key`; the receiver gets
/// the merged latencies once every participant reported.
pub(crate) fn expect_virtual(key: &str) -> oneshot::Receiver<Vec<u32>> {
    let (tx, rx) = oneshot::channel();
    WAITING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(key.to_string(), tx);
    rx
}

fn hand_over(key: &str, all: Vec<u32>) -> bool {
    let waiting = WAITING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .and_then(|table| table.remove(key));
    waiting.is_some_and(|tx| tx.send(all).is_ok())
}

/// The virtual-mode collector kind (`PreferLocal`: it lives where the driver is).
pub(crate) struct VirtualCollector {
    tally: Tally,
}

impl VirtualActor for VirtualCollector {
    const KIND: &'static str = "granary-bench.Collector";
    type Key = String;
    type State = ();
    fn activate(_key: &String) -> Self {
        Self {
            tally: Tally::default(),
        }
    }
}

/// Activates a virtual collector (the driver sends it first, so it is placed on
/// the driver's node); answers whether the driver waits on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Open;
impl Message for Open {
    type Reply = bool;
}
register_message!(Open, "granary-bench.suite.Open");

impl VirtualHandler<Open> for VirtualCollector {
    async fn handle(&mut self, _msg: Open, ctx: &mut VirtualContext<'_, Self>) -> bool {
        WAITING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|table| table.contains_key(ctx.key()))
    }
}

impl VirtualHandler<Done> for VirtualCollector {
    async fn handle(&mut self, msg: Done, ctx: &mut VirtualContext<'_, Self>) {
        if let Some(all) = self.tally.add(msg) {
            hand_over(ctx.key(), all);
            // One collector per run: it has nothing more to do.
            ctx.deactivate_on_idle();
        }
    }
}

/// The collector kind as a node hosts it.
pub(crate) fn collector_kind() -> Kind<VirtualCollector> {
    Kind::<VirtualCollector>::new()
        .placement(Placement::PreferLocal)
        .handles::<Open>()
        .handles::<Done>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_answers_once_every_participant_reported() {
        let mut tally = Tally::default();
        let done = |v: u32| Done {
            expected: 2,
            latencies_us: vec![v],
        };
        assert_eq!(tally.add(done(1)), None);
        assert_eq!(tally.add(done(2)), Some(vec![1, 2]));
    }

    #[test]
    fn a_virtual_result_reaches_the_waiting_driver_only() {
        let mut rx = expect_virtual("collect-test");
        assert!(!hand_over("someone-else", vec![1]));
        assert!(hand_over("collect-test", vec![5]));
        assert_eq!(rx.try_recv().ok(), Some(vec![5]));
    }
}
