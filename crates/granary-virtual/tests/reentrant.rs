//! Reentrancy: messages of a kind's reentrant types interleave while a handler
//! awaits; without reentrancy an activation handles one message at a time, in
//! order. One node, TCP on 127.0.0.1, `memory:` store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use granary_virtual::{ReentrantContext, ReentrantHandler};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What the handlers of one identity did, and the signals between them.
#[derive(Default)]
struct Probe {
    events: Mutex<Vec<&'static str>>,
    started: Notify,
    opened: Notify,
}

impl Probe {
    fn record(&self, event: &'static str) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<&'static str> {
        self.events.lock().unwrap().clone()
    }
}

fn probe(key: &str) -> Arc<Probe> {
    static PROBES: OnceLock<Mutex<HashMap<String, Arc<Probe>>>> = OnceLock::new();
    PROBES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .clone()
}

/// Waits until `Open` arrives, for at most the given time; replies whether it came.
#[derive(Clone, Serialize, Deserialize)]
struct Wait(Duration);
impl Message for Wait {
    type Reply = bool;
}
register_message!(Wait, "test.reentrant.Wait");

/// Opens the gate the `Wait` handler awaits.
#[derive(Clone, Serialize, Deserialize)]
struct Open;
impl Message for Open {
    type Reply = ();
}
register_message!(Open, "test.reentrant.Open");

async fn wait(key: &str, limit: Duration) -> bool {
    let probe = probe(key);
    probe.record("wait started");
    probe.started.notify_one();
    let opened = tokio::time::timeout(limit, probe.opened.notified())
        .await
        .is_ok();
    probe.record(if opened {
        "wait saw the gate open"
    } else {
        "wait gave up"
    });
    opened
}

fn open(key: &str) {
    let probe = probe(key);
    probe.record("open");
    probe.opened.notify_one();
}

/// Both message types reentrant.
struct Interleaving;

impl VirtualActor for Interleaving {
    const KIND: &'static str = "test.Interleaving";
    type Key = String;
    type State = ();
    fn activate(_: &String) -> Self {
        Interleaving
    }
}

impl ReentrantHandler<Wait> for Interleaving {
    async fn handle(&self, msg: Wait, ctx: &ReentrantContext<Self>) -> bool {
        wait(ctx.key(), msg.0).await
    }
}

impl ReentrantHandler<Open> for Interleaving {
    async fn handle(&self, _: Open, ctx: &ReentrantContext<Self>) {
        open(ctx.key());
    }
}

/// The default: one message at a time.
struct OneAtATime;

impl VirtualActor for OneAtATime {
    const KIND: &'static str = "test.OneAtATime";
    type Key = String;
    type State = ();
    fn activate(_: &String) -> Self {
        OneAtATime
    }
}

impl VirtualHandler<Wait> for OneAtATime {
    async fn handle(&mut self, msg: Wait, ctx: &mut VirtualContext<'_, Self>) -> bool {
        wait(ctx.key(), msg.0).await
    }
}

impl VirtualHandler<Open> for OneAtATime {
    async fn handle(&mut self, _: Open, ctx: &mut VirtualContext<'_, Self>) {
        open(ctx.key());
    }
}

async fn node() -> Node {
    Node::builder()
        .store("memory:")
        .host(
            Kind::<Interleaving>::new()
                .reentrant::<Wait>()
                .reentrant::<Open>(),
        )
        .host(
            Kind::<OneAtATime>::new()
                .handles::<Wait>()
                .handles::<Open>(),
        )
        .start()
        .await
        .expect("node starts")
}

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentrant_messages_interleave_while_a_handler_awaits() {
    let node = node().await;
    let key = "interleave".to_string();
    let gate = node.get::<Interleaving>(key.clone());
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.ask_timeout(Wait(LIMIT), LIMIT).await }
    });
    tokio::time::timeout(LIMIT, probe(&key).started.notified())
        .await
        .expect("the wait handler started");
    // The wait handler is still awaiting: a reentrant `Open` runs beside it.
    gate.ask_timeout(Open, LIMIT)
        .await
        .expect("open runs while wait awaits");
    let opened = waiting.await.unwrap().expect("wait answers");
    assert!(opened, "wait saw the gate open");
    assert_eq!(
        probe(&key).events(),
        ["wait started", "open", "wait saw the gate open"]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reentrancy_messages_are_handled_one_at_a_time_in_order() {
    let node = node().await;
    let key = "strict".to_string();
    let gate = node.get::<OneAtATime>(key.clone());
    // The wait handler gives up after 300 ms; `Open` may only run after that.
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move {
            gate.ask_timeout(Wait(Duration::from_millis(300)), LIMIT)
                .await
        }
    });
    tokio::time::timeout(LIMIT, probe(&key).started.notified())
        .await
        .expect("the wait handler started");
    gate.ask_timeout(Open, LIMIT)
        .await
        .expect("open runs after wait");
    let opened = waiting.await.unwrap().expect("wait answers");
    assert!(!opened, "wait never saw the gate open");
    assert_eq!(
        probe(&key).events(),
        ["wait started", "wait gave up", "open"]
    );
    node.shutdown().await;
}
