//! Activations are reached from the network through one door per hosted kind
//! (issue 13): the remote layer exposes no actor per activation, a remote call finds
//! the activation by its name under the kind's door, and a call that meets an
//! activation closing for passivation is refused with "not here", located again and
//! answered by the next activation once the closing one has stopped.

mod common;

use std::sync::OnceLock;

use common::*;
use granary_core::{BoxError, Message};
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_calls_reach_activations_through_one_door_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| b.host(counter_kind())).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let exposed_before = [a.probe().exposed_actors(), b.probe().exposed_actors()];

    // Random placement: about half of these live on `a` and are called from `b`
    // over the wire.
    let mut on_a = 0;
    for i in 0..40 {
        let counter = b.get::<Counter>(format!("door-{i}"));
        assert_eq!(counter.ask(Add(1)).await.unwrap(), Ok(1));
        let (host, n) = counter.ask(Where).await.unwrap();
        assert_eq!(n, 1);
        if host == a.addr() {
            on_a += 1;
        }
    }
    assert!(on_a > 0, "some activation is remote from the caller");
    assert!(a.probe().activations(Counter::KIND) >= on_a);

    // Nothing exposed per activation: the counts are those of before.
    assert_eq!(a.probe().exposed_actors(), exposed_before[0]);
    assert_eq!(b.probe().exposed_actors(), exposed_before[1]);
    let door = vec![format!("granary.v/{}/", Counter::KIND)];
    assert_eq!(a.probe().doors(), door);
    for node in &nodes {
        node.shutdown().await;
    }
}

/// Each `on_deactivate` takes one permit of this gate; none are given until the
/// test says so.
fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(0))
}

/// One permit per `on_deactivate` that began.
fn deactivating() -> &'static Semaphore {
    static STARTED: OnceLock<Semaphore> = OnceLock::new();
    STARTED.get_or_init(|| Semaphore::new(0))
}

/// A counter whose deactivation waits at the gate: it stays in its node's table,
/// closed, for as long as the test wants.
struct Parked;

impl VirtualActor for Parked {
    const KIND: &'static str = "test.door.Parked";
    type Key = String;
    type State = u64;

    fn activate(_key: &String) -> Self {
        Parked
    }

    async fn on_deactivate(&mut self, _ctx: &mut VirtualContext<'_, Self>) {
        deactivating().add_permits(1);
        gate()
            .acquire()
            .await
            .expect("the gate stays open")
            .forget();
    }
}

#[derive(Clone, Serialize, Deserialize, Debug)]
struct Bump;
impl Message for Bump {
    type Reply = Result<u64, String>;
}
register_message!(Bump, "test.door.Bump");
register_message!(Result<u64, String>, "test.door.BumpReply");

impl VirtualHandler<Bump> for Parked {
    async fn handle(&mut self, _: Bump, ctx: &mut VirtualContext<'_, Self>) -> Result<u64, String> {
        *ctx.state_mut() += 1;
        ctx.write_state()
            .await
            .map_err(|e: VirtualError| e.to_string())?;
        Ok(*ctx.state())
    }
}

#[derive(Clone, Serialize, Deserialize, Debug)]
struct Park;
impl Message for Park {
    type Reply = ();
}
register_message!(Park, "test.door.Park");

impl VirtualHandler<Park> for Parked {
    async fn handle(&mut self, _: Park, ctx: &mut VirtualContext<'_, Self>) {
        ctx.deactivate_on_idle();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_racing_passivation_is_refused_by_the_door_retried_and_answered(
) -> Result<(), BoxError> {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let kind = || {
        Kind::<Parked>::new()
            .handles::<Bump>()
            .handles::<Park>()
            .placement(Placement::PreferLocal)
    };
    let nodes = start_nodes(2, &store, |_, b| b.host(kind())).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    // Activated on `a` (prefer-local), then called once from `b`, which caches the
    // activation's location.
    assert_eq!(a.get::<Parked>("p").ask(Bump).await?, Ok(1));
    assert_eq!(b.get::<Parked>("p").ask(Bump).await?, Ok(2));
    assert_eq!(b.cached_locations(), 1, "b remembers where p lives");

    // The activation closes for passivation and waits in `on_deactivate`: it is
    // still in `a`'s table, but admits nothing.
    a.get::<Parked>("p").ask(Park).await?;
    tokio::time::timeout(WAIT, deactivating().acquire())
        .await
        .expect("on_deactivate begins")?
        .forget();

    // `b` sends to the cached location; the door refuses ("not here"), so `b`
    // forgets the location and looks the identity up again. The owner asks `a`
    // whether the activation is still there, and `a` answers only once it has
    // stopped: a deactivating activation may still write its state, so no second one
    // starts beside it (an ask delivered into it would wait at the gate too).
    let mut ask = {
        let p = b.get::<Parked>("p");
        tokio::spawn(async move { p.ask(Bump).await })
    };
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut ask).await;
    assert!(
        early.is_err(),
        "answered while the old activation was still deactivating: {early:?}"
    );
    assert_eq!(b.probe().activations(Parked::KIND), 0, "nothing placed yet");

    // Once it has stopped, the owner places a new one on `b` (prefer-local), which
    // answers with every acknowledged bump in its state.
    gate().add_permits(1_000);
    let answer = tokio::time::timeout(WAIT, ask)
        .await
        .expect("answered once the old activation stopped")??;
    assert_eq!(answer, Ok(3));
    assert_eq!(b.probe().activations(Parked::KIND), 1);
    assert_eq!(
        b.cached_locations(),
        0,
        "b dropped the refused location (its new activation is local)"
    );
    a.passivated(Parked::KIND, WAIT).await?;
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(())
}
