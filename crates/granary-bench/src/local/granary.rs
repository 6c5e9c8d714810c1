//! The `local` tests written with granary: `ActorSystem::spawn`, `tell`, `ask` and
//! `stop`, with granary's default (unbounded) mailbox. `spawn` waits for its actors'
//! ends with a latch counted down in their `stopped` hook, as the actix harness does
//! (one counter for all, where `wait_stopped` on each ref would make a oneshot and a
//! watch per actor), and drops each ref as it asks the actor to stop, as the actix
//! harness drops each `Addr` (a ref held past its actor's end keeps the actor's
//! mailbox).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::granary::prelude::{Actor, ActorRef, ActorSystem, Context, Handler, Message};
use tokio::sync::oneshot;

use super::support::{
    actor_runtime, ask_all, check_sum, on_runtime, share, within, Latch, SpawnClock, MAX_LATENCY,
};
use super::{Framework, LocalError, SpawnSample, Test};
use crate::latency::Latencies;

const FRAMEWORK: Framework = Framework::Granary;

fn failed(operation: &'static str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::framework(FRAMEWORK, operation, reason)
}

/// A counted message.
struct Count(u64);

impl Message for Count {
    type Reply = ();
}

/// Counts messages and reports the sum of their values when it has counted
/// `expected` of them.
struct Counter {
    count: u64,
    sum: u64,
    expected: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {}

impl Handler<Count> for Counter {
    async fn handle(&mut self, Count(value): Count, _ctx: &mut Context<Self>) {
        self.count += 1;
        self.sum += value;
        if self.count == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(self.sum);
            }
        }
    }
}

/// Spawns a counter expecting `expected` messages.
fn counter(system: &ActorSystem, expected: u64) -> (ActorRef<Counter>, oneshot::Receiver<u64>) {
    let (done_tx, done_rx) = oneshot::channel();
    let actor = system.spawn(Counter {
        count: 0,
        sum: 0,
        expected,
        done: Some(done_tx),
    });
    (actor, done_rx)
}

/// `tell`: one sender, `messages` tells to one counter.
pub(crate) fn tell(messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move { tell_in(ActorSystem::new(), messages, limit).await })
}

/// `tell` with the counter on an actor system of its own runtime (`actor-runtime`).
pub(crate) fn tell_on_actor_runtime(
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    on_actor_runtime(move |system| tell_in(system, messages, limit))
}

/// Runs `body` on the senders' runtime with an actor system on a runtime of its own.
fn on_actor_runtime<F, Fut>(body: F) -> Result<Duration, LocalError>
where
    F: FnOnce(ActorSystem) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Duration, LocalError>> + Send,
{
    let actors = actor_runtime()?;
    let handle = actors.handle().clone();
    let result =
        on_runtime(async move { body(ActorSystem::builder().runtime(handle).build()).await });
    actors.shutdown_timeout(Duration::from_secs(5));
    result
}

/// The `tell` test body, with the counter spawned on `system`.
async fn tell_in(
    system: ActorSystem,
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    let (actor, done) = counter(&system, messages);
    let started = Instant::now();
    for i in 0..messages {
        actor.tell(Count(i)).map_err(|e| failed("tell", e))?;
    }
    within(FRAMEWORK, Test::Tell, limit, async {
        let sum = done.await.map_err(|e| failed("counting", e))?;
        check_sum(FRAMEWORK, sum, messages, 1)
    })
    .await?;
    let elapsed = started.elapsed();
    system.shutdown().await;
    Ok(elapsed)
}

/// `fanin`: `senders` tasks tell `messages` in all to one counter.
pub(crate) fn fanin(senders: u64, messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move { fanin_in(ActorSystem::new(), senders, messages, limit).await })
}

/// `fanin` with the counter on an actor system of its own runtime (`actor-runtime`).
pub(crate) fn fanin_on_actor_runtime(
    senders: u64,
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    on_actor_runtime(move |system| fanin_in(system, senders, messages, limit))
}

/// The `fanin` test body: sender tasks on the current runtime, the counter on `system`.
async fn fanin_in(
    system: ActorSystem,
    senders: u64,
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    let (actor, done) = counter(&system, messages);
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|index| {
            let actor = actor.clone();
            tokio::spawn(async move {
                for i in 0..share(messages, senders, index) {
                    actor.tell(Count(i)).map_err(|e| failed("tell", e))?;
                }
                Ok::<(), LocalError>(())
            })
        })
        .collect();
    within(FRAMEWORK, Test::Fanin, limit, async {
        for task in tasks {
            task.await.map_err(|e| failed("sender task", e))??;
        }
        let sum = done.await.map_err(|e| failed("counting", e))?;
        check_sum(FRAMEWORK, sum, messages, senders)
    })
    .await?;
    let elapsed = started.elapsed();
    system.shutdown().await;
    Ok(elapsed)
}

/// The ball, going out.
struct Ping(u64);

impl Message for Ping {
    type Reply = ();
}

/// The ball, coming back.
struct Pong(u64);

impl Message for Pong {
    type Reply = ();
}

/// Begin bouncing with this partner.
struct Start(ActorRef<Ponger>);

impl Message for Start {
    type Reply = ();
}

/// Bounces a ball `left` times and times every round trip.
struct Pinger {
    partner: Option<ActorRef<Ponger>>,
    left: u64,
    sent_at: Instant,
    latencies: Latencies,
    done: Option<oneshot::Sender<Result<Latencies, String>>>,
}

impl Pinger {
    fn finish(&mut self, result: Result<Latencies, String>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

impl Actor for Pinger {}

impl Handler<Start> for Pinger {
    async fn handle(&mut self, Start(partner): Start, _ctx: &mut Context<Self>) {
        self.sent_at = Instant::now();
        if let Err(e) = partner.tell(Ping(self.left)) {
            self.finish(Err(e.to_string()));
        }
        self.partner = Some(partner);
    }
}

impl Handler<Pong> for Pinger {
    async fn handle(&mut self, Pong(ball): Pong, _ctx: &mut Context<Self>) {
        let now = Instant::now();
        if ball != self.left {
            let expected = self.left;
            self.finish(Err(format!("ball {ball} came back, expected {expected}")));
            return;
        }
        self.latencies.record(now - self.sent_at);
        self.left -= 1;
        if self.left == 0 {
            let latencies = self.latencies.clone();
            self.finish(Ok(latencies));
        } else if let Some(partner) = &self.partner {
            self.sent_at = now;
            if let Err(e) = partner.tell(Ping(self.left)) {
                self.finish(Err(e.to_string()));
            }
        }
    }
}

/// Sends every ball straight back to the pinger.
struct Ponger {
    pinger: ActorRef<Pinger>,
}

impl Actor for Ponger {}

impl Handler<Ping> for Ponger {
    async fn handle(&mut self, Ping(ball): Ping, _ctx: &mut Context<Self>) {
        // A failed send leaves the pinger waiting; the harness's time limit
        // turns that into an error.
        let _ = self.pinger.tell(Pong(ball));
    }
}

/// `pingpong`: two actors bounce one message `round_trips` times.
pub(crate) fn pingpong(
    round_trips: u64,
    limit: Duration,
) -> Result<(Duration, Latencies), LocalError> {
    on_runtime(async move {
        let system = ActorSystem::new();
        let (done_tx, done_rx) = oneshot::channel();
        let pinger = system.spawn(Pinger {
            partner: None,
            left: round_trips,
            sent_at: Instant::now(),
            latencies: Latencies::new(MAX_LATENCY)?,
            done: Some(done_tx),
        });
        let ponger = system.spawn(Ponger {
            pinger: pinger.clone(),
        });
        let started = Instant::now();
        pinger.tell(Start(ponger)).map_err(|e| failed("tell", e))?;
        let latencies = within(FRAMEWORK, Test::Pingpong, limit, async {
            done_rx
                .await
                .map_err(|e| failed("bouncing", e))?
                .map_err(|e| failed("bouncing", e))
        })
        .await?;
        let elapsed = started.elapsed();
        system.shutdown().await;
        Ok((elapsed, latencies))
    })
}

/// A question for a `spawn` actor: answer with the number plus one.
struct Question(u64);

impl Message for Question {
    type Reply = u64;
}

/// Answers questions; tells the latch when it has stopped.
struct Responder {
    stopped: Arc<Latch>,
}

impl Actor for Responder {
    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.stopped.count_down();
    }
}

impl Handler<Question> for Responder {
    async fn handle(&mut self, Question(n): Question, _ctx: &mut Context<Self>) -> u64 {
        n + 1
    }
}

/// `spawn`: spawn `actors` responders, ask each once, stop them all.
pub(crate) fn spawn(actors: u64, limit: Duration) -> Result<SpawnSample, LocalError> {
    on_runtime(async move {
        within(FRAMEWORK, Test::Spawn, limit, async move {
            let system = ActorSystem::new();
            let stopped = Latch::new(actors);
            let mut clock = SpawnClock::start()?;
            let refs: Vec<ActorRef<Responder>> = (0..actors)
                .map(|_| {
                    system.spawn(Responder {
                        stopped: stopped.clone(),
                    })
                })
                .collect();
            clock.spawned();
            ask_all(
                refs.iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, actor)| async move {
                        match actor.ask(Question(i as u64)).await {
                            Ok(n) if n == i as u64 + 1 => Ok(()),
                            Ok(n) => Err(failed("ask", format!("wrong answer {n} to {i}"))),
                            Err(e) => Err(failed("ask", e)),
                        }
                    }),
            )
            .await?;
            clock.answered()?;
            for actor in refs {
                actor.stop();
            }
            stopped.wait().await;
            let sample = clock.stopped()?;
            system.shutdown().await;
            Ok(sample)
        })
        .await
    })
}
