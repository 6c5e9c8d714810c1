//! A local actor: a supervised counter (no cluster; the cluster quick start is
//! `crates/granary/examples/quickstart.rs`).
//!
//! Run with `cargo run --release --example local_counter`. A counter actor is spawned
//! under a supervisor; it takes `tell`s and `ask`s, then a message makes it panic.
//! The supervisor restarts it from its factory (a fresh instance, count back to 0)
//! and the counter keeps serving.
use std::time::Duration;

use granary::prelude::*;

/// Counts; panics on `Crash`.
struct Counter {
    n: u64,
}

impl Actor for Counter {
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        println!("  counter {} started with n = {}", ctx.id(), self.n);
        Ok(())
    }

    async fn restarting(&mut self, failure: &Failure, _ctx: &mut Context<Self>) {
        println!("  counter restarting after: {failure}");
    }
}

struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.n += msg.0;
        self.n
    }
}

struct Crash;
impl Message for Crash {
    type Reply = ();
}
impl Handler<Crash> for Counter {
    async fn handle(&mut self, _: Crash, _ctx: &mut Context<Self>) {
        panic!("the counter was asked to crash");
    }
}

/// Owns the counter and restarts it (at most 3 times a second, 10 ms apart).
struct Supervisor;

impl Actor for Supervisor {
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one()
            .with_max_restarts(3, Duration::from_secs(1))
            .with_backoff(Backoff::Fixed(Duration::from_millis(10)))
    }
}

struct StartCounter;
impl Message for StartCounter {
    type Reply = ActorRef<Counter>;
}
impl Handler<StartCounter> for Supervisor {
    async fn handle(&mut self, _: StartCounter, ctx: &mut Context<Self>) -> ActorRef<Counter> {
        ctx.spawn_child_with(|| Counter { n: 0 })
    }
}

#[tokio::main]
async fn main() {
    // Keep the demo output readable: report the caught panic ourselves.
    std::panic::set_hook(Box::new(|info| {
        println!("  (panic caught by granary: {info})")
    }));

    let system = ActorSystem::new();
    let supervisor = system.spawn(Supervisor);
    let counter = supervisor
        .ask(StartCounter)
        .await
        .expect("supervisor answers");

    println!("1. tell Add(1) three times, then ask Add(0)");
    for _ in 0..3 {
        counter.tell(Add(1)).expect("counter is alive");
    }
    println!("   count = {}", counter.ask(Add(0)).await.expect("reply"));

    println!("2. ask Crash: the handler panics");
    match counter.ask(Crash).await {
        Err(AskError::ActorPanicked) => println!("   ask returned ActorPanicked (no hang)"),
        other => println!("   unexpected: {other:?}"),
    }

    println!("3. the supervisor restarted the counter from its factory");
    println!(
        "   count = {} (fresh instance)",
        counter.ask(Add(5)).await.expect("reply")
    );

    let report = system.shutdown().await;
    println!("4. shut down ({} actors aborted)", report.aborted);
}
