//! Timers (`send_after`, `interval`) on tokio's paused clock, their
//! cancellation, and `spawn_blocking` for heavy work.

mod common;

use std::time::Duration;

use common::within;
use granary_core::prelude::*;
use tokio::sync::mpsc;
use tokio::time::Instant;

struct Clock {
    out: mpsc::UnboundedSender<(&'static str, Instant)>,
    timer: Option<granary_core::TimerHandle>,
}
impl Actor for Clock {}

struct Tick(&'static str);
impl Message for Tick {
    type Reply = ();
}
impl Handler<Tick> for Clock {
    async fn handle(&mut self, msg: Tick, _ctx: &mut Context<Self>) {
        let _ = self.out.send((msg.0, Instant::now()));
    }
}

enum Schedule {
    After(Duration, &'static str),
    Every(Duration, &'static str),
    CancelLast,
}
impl Message for Schedule {
    type Reply = ();
}
impl Handler<Schedule> for Clock {
    async fn handle(&mut self, msg: Schedule, ctx: &mut Context<Self>) {
        match msg {
            Schedule::After(d, name) => self.timer = Some(ctx.send_after(d, Tick(name))),
            Schedule::Every(d, name) => self.timer = Some(ctx.interval(d, move || Tick(name))),
            Schedule::CancelLast => {
                if let Some(t) = self.timer.take() {
                    t.cancel();
                }
            }
        }
    }
}

fn clock(
    system: &ActorSystem,
) -> (
    ActorRef<Clock>,
    mpsc::UnboundedReceiver<(&'static str, Instant)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        system.spawn(Clock {
            out: tx,
            timer: None,
        }),
        rx,
    )
}

#[tokio::test(start_paused = true)]
async fn send_after_delivers_once_after_the_delay() {
    let system = ActorSystem::new();
    let (c, mut rx) = clock(&system);
    let t0 = Instant::now();
    c.ask(Schedule::After(Duration::from_millis(500), "once"))
        .await
        .unwrap();
    let (name, at) = rx.recv().await.unwrap();
    assert_eq!(name, "once");
    assert_eq!(at - t0, Duration::from_millis(500));
    // Nothing else arrives (the next event would be far later).
    assert!(tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .is_err());
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn interval_delivers_every_period_until_cancelled() {
    let system = ActorSystem::new();
    let (c, mut rx) = clock(&system);
    let t0 = Instant::now();
    c.ask(Schedule::Every(Duration::from_millis(100), "tick"))
        .await
        .unwrap();
    for i in 1..=3u32 {
        let (_, at) = rx.recv().await.unwrap();
        assert_eq!(at - t0, Duration::from_millis(100) * i);
    }
    c.ask(Schedule::CancelLast).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .is_err());
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timers_are_cancelled_when_the_actor_stops() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let (c, mut rx) = clock(&system);
    c.ask(Schedule::Every(Duration::from_millis(100), "tick"))
        .await
        .unwrap();
    c.ask(Schedule::After(Duration::from_millis(250), "after"))
        .await
        .unwrap();
    rx.recv().await.unwrap();
    c.stop();
    c.wait_stopped().await;
    // The clock's sender is gone with the actor; no timer fires into a dead
    // mailbox (which would publish a dead letter).
    assert!(rx.recv().await.is_none());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(dead.try_recv().is_none(), "a cancelled timer still fired");
    system.shutdown().await;
}

struct Cruncher {
    results: mpsc::UnboundedSender<u64>,
}
impl Actor for Cruncher {}
struct Crunch(u64);
impl Message for Crunch {
    type Reply = ();
}
impl Handler<Crunch> for Cruncher {
    async fn handle(&mut self, msg: Crunch, ctx: &mut Context<Self>) {
        let n = msg.0;
        ctx.spawn_blocking(move || Crunched((1..=n).sum()));
    }
}
struct Crunched(u64);
impl Message for Crunched {
    type Reply = ();
}
impl Handler<Crunched> for Cruncher {
    async fn handle(&mut self, msg: Crunched, _ctx: &mut Context<Self>) {
        let _ = self.results.send(msg.0);
    }
}
struct Ping;
impl Message for Ping {
    type Reply = &'static str;
}
impl Handler<Ping> for Cruncher {
    async fn handle(&mut self, _: Ping, _ctx: &mut Context<Self>) -> &'static str {
        "pong"
    }
}

#[tokio::test]
async fn spawn_blocking_runs_heavy_work_off_the_actor_and_delivers_the_result_as_a_message() {
    let system = ActorSystem::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let c = system.spawn(Cruncher { results: tx });
    c.tell(Crunch(1_000_000)).unwrap();
    // The actor answers while the work runs elsewhere.
    assert_eq!(within(c.ask(Ping)).await.unwrap(), "pong");
    assert_eq!(within(rx.recv()).await.unwrap(), 500_000_500_000);
    within(system.shutdown()).await;
}
