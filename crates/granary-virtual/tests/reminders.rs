//! Durable reminders wake a passivated actor and survive a restart of the whole
//! cluster.

mod common;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use granary_virtual::ReminderFired;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// (key, node it fired on, count after firing)
type Fired = (String, SocketAddr, u64);

fn fired_tx() -> &'static Mutex<Vec<mpsc::UnboundedSender<Fired>>> {
    static TX: OnceLock<Mutex<Vec<mpsc::UnboundedSender<Fired>>>> = OnceLock::new();
    TX.get_or_init(Default::default)
}

fn subscribe() -> mpsc::UnboundedReceiver<Fired> {
    let (tx, rx) = mpsc::unbounded_channel();
    fired_tx().lock().unwrap().push(tx);
    rx
}

async fn next_for(rx: &mut mpsc::UnboundedReceiver<Fired>, key: &str) -> Fired {
    tokio::time::timeout(WAIT, async {
        loop {
            let f = rx.recv().await.expect("channel open");
            if f.0 == key {
                return f;
            }
        }
    })
    .await
    .expect("the reminder fired in time")
}

struct Alarm;

impl VirtualActor for Alarm {
    const KIND: &'static str = "test.Alarm";
    type Key = String;
    type State = CounterState;
    fn activate(_: &String) -> Self {
        Alarm
    }
}

/// Registers a one-shot reminder due after the given milliseconds, then rests.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Arm(u64);
impl Message for Arm {
    type Reply = Result<(), String>;
}
register_message!(Arm, "test.virtual.Arm");
register_message!(Result<(), String>, "test.virtual.ArmReply");

impl VirtualHandler<Arm> for Alarm {
    async fn handle(&mut self, msg: Arm, ctx: &mut VirtualContext<'_, Self>) -> Result<(), String> {
        ctx.register_reminder("wake", Duration::from_millis(msg.0), None)
            .await
            .map_err(|e| e.to_string())?;
        ctx.deactivate_on_idle();
        Ok(())
    }
}

impl VirtualHandler<ReminderFired> for Alarm {
    async fn handle(&mut self, msg: ReminderFired, ctx: &mut VirtualContext<'_, Self>) {
        assert_eq!(msg.name, "wake");
        ctx.state_mut().n += 1;
        ctx.write_state().await.expect("state written");
        let fired = (ctx.key().clone(), ctx.node_addr(), ctx.state().n);
        for tx in fired_tx().lock().unwrap().iter() {
            let _ = tx.send(fired.clone());
        }
        ctx.deactivate_on_idle();
    }
}

fn alarm_kind() -> Kind<Alarm> {
    Kind::<Alarm>::new().handles::<Arm>().reminders()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_wakes_a_passivated_actor() {
    let mut rx = subscribe();
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| {
        b.host(alarm_kind())
            .reminder_interval(Duration::from_millis(50))
    })
    .await;
    let r = nodes[0].get::<Alarm>("wake-1".to_string());
    r.ask(Arm(300)).await.unwrap().unwrap();
    let (_, _, n) = next_for(&mut rx, "wake-1").await;
    assert_eq!(n, 1, "the reminder ran the handler on the stored state");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_survives_a_full_cluster_restart() {
    let mut rx = subscribe();
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let first = start_nodes(2, &store, |_, b| {
        b.host(alarm_kind())
            .reminder_interval(Duration::from_millis(50))
    })
    .await;
    first[0]
        .get::<Alarm>("restart-1".to_string())
        .ask(Arm(1500))
        .await
        .unwrap()
        .unwrap();
    let old: Vec<SocketAddr> = first.iter().map(|n| n.addr()).collect();
    for n in first {
        n.shutdown().await;
    }
    // A brand-new cluster on the same store.
    let second = start_nodes(2, &store, |_, b| {
        b.host(alarm_kind())
            .reminder_interval(Duration::from_millis(50))
    })
    .await;
    let (_, on, n) = next_for(&mut rx, "restart-1").await;
    assert!(!old.contains(&on), "fired on the new cluster");
    assert!(second.iter().any(|n| n.addr() == on));
    assert_eq!(n, 1);
    for n in second {
        n.shutdown().await;
    }
}
