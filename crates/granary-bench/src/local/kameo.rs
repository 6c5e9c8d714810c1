//! The `local` tests written with kameo: `#[derive(Actor)]`, `Actor::spawn`
//! (kameo's default mailbox: bounded, capacity 64, so `tell(..).await` waits when
//! it is full), `ask(..).await`, and `stop_gracefully` + `wait_for_shutdown`.

use std::time::{Duration, Instant};

use ::kameo::actor::{ActorRef, Spawn};
use ::kameo::message::{Context, Message};
use ::kameo::Actor;
use tokio::sync::oneshot;

use super::support::{ask_all, check_sum, on_runtime, share, within, SpawnClock, MAX_LATENCY};
use super::{Framework, LocalError, SpawnSample, Test};
use crate::latency::Latencies;

const FRAMEWORK: Framework = Framework::Kameo;

fn failed(operation: &'static str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::framework(FRAMEWORK, operation, reason)
}

/// A counted message.
struct Count(u64);

/// Counts messages and reports when it has counted `expected` of them.
#[derive(Actor)]
struct Counter {
    count: u64,
    sum: u64,
    expected: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Message<Count> for Counter {
    type Reply = ();

    async fn handle(&mut self, Count(value): Count, _ctx: &mut Context<Self, ()>) {
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
fn counter(expected: u64) -> (ActorRef<Counter>, oneshot::Receiver<u64>) {
    let (done_tx, done_rx) = oneshot::channel();
    let actor = Counter::spawn(Counter {
        count: 0,
        sum: 0,
        expected,
        done: Some(done_tx),
    });
    (actor, done_rx)
}

/// Stops `actor` gracefully and waits for it to end.
async fn stop<A: Actor>(actor: &ActorRef<A>) -> Result<(), LocalError> {
    actor
        .stop_gracefully()
        .await
        .map_err(|e| failed("stop", e))?;
    actor.wait_for_shutdown().await;
    Ok(())
}

/// `tell`: one sender, `messages` tells to one counter.
pub(crate) fn tell(messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move {
        let (actor, done) = counter(messages);
        let started = Instant::now();
        within(FRAMEWORK, Test::Tell, limit, async {
            for i in 0..messages {
                actor.tell(Count(i)).await.map_err(|e| failed("tell", e))?;
            }
            let sum = done.await.map_err(|e| failed("counting", e))?;
            check_sum(FRAMEWORK, sum, messages, 1)
        })
        .await?;
        let elapsed = started.elapsed();
        stop(&actor).await?;
        Ok(elapsed)
    })
}

/// `fanin`: `senders` tasks tell `messages` in all to one counter.
pub(crate) fn fanin(senders: u64, messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move {
        let (actor, done) = counter(messages);
        let started = Instant::now();
        let tasks: Vec<_> = (0..senders)
            .map(|index| {
                let actor = actor.clone();
                tokio::spawn(async move {
                    for i in 0..share(messages, senders, index) {
                        actor.tell(Count(i)).await.map_err(|e| failed("tell", e))?;
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
        stop(&actor).await?;
        Ok(elapsed)
    })
}

/// The ball, going out.
struct Ping(u64);

/// The ball, coming back.
struct Pong(u64);

/// Begin bouncing with this partner.
struct Start(ActorRef<Ponger>);

/// Bounces a ball `left` times and times every round trip.
#[derive(Actor)]
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

impl Message<Start> for Pinger {
    type Reply = ();

    async fn handle(&mut self, Start(partner): Start, _ctx: &mut Context<Self, ()>) {
        self.sent_at = Instant::now();
        if let Err(e) = partner.tell(Ping(self.left)).await {
            self.finish(Err(e.to_string()));
        }
        self.partner = Some(partner);
    }
}

impl Message<Pong> for Pinger {
    type Reply = ();

    async fn handle(&mut self, Pong(ball): Pong, _ctx: &mut Context<Self, ()>) {
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
            if let Err(e) = partner.tell(Ping(self.left)).await {
                self.finish(Err(e.to_string()));
            }
        }
    }
}

/// Sends every ball straight back to the pinger.
#[derive(Actor)]
struct Ponger {
    pinger: ActorRef<Pinger>,
}

impl Message<Ping> for Ponger {
    type Reply = ();

    async fn handle(&mut self, Ping(ball): Ping, _ctx: &mut Context<Self, ()>) {
        // A failed send leaves the pinger waiting; the harness's time limit
        // turns that into an error.
        let _ = self.pinger.tell(Pong(ball)).await;
    }
}

/// `pingpong`: two actors bounce one message `round_trips` times.
pub(crate) fn pingpong(
    round_trips: u64,
    limit: Duration,
) -> Result<(Duration, Latencies), LocalError> {
    on_runtime(async move {
        let (done_tx, done_rx) = oneshot::channel();
        let pinger = Pinger::spawn(Pinger {
            partner: None,
            left: round_trips,
            sent_at: Instant::now(),
            latencies: Latencies::new(MAX_LATENCY)?,
            done: Some(done_tx),
        });
        let ponger = Ponger::spawn(Ponger {
            pinger: pinger.clone(),
        });
        let started = Instant::now();
        pinger
            .tell(Start(ponger.clone()))
            .await
            .map_err(|e| failed("tell", e))?;
        let latencies = within(FRAMEWORK, Test::Pingpong, limit, async {
            done_rx
                .await
                .map_err(|e| failed("bouncing", e))?
                .map_err(|e| failed("bouncing", e))
        })
        .await?;
        let elapsed = started.elapsed();
        stop(&pinger).await?;
        stop(&ponger).await?;
        Ok((elapsed, latencies))
    })
}

/// A question for a `spawn` actor: answer with the number plus one.
struct Question(u64);

/// Answers questions; holds no state.
#[derive(Actor)]
struct Responder;

impl Message<Question> for Responder {
    type Reply = u64;

    async fn handle(&mut self, Question(n): Question, _ctx: &mut Context<Self, u64>) -> u64 {
        n + 1
    }
}

/// `spawn`: spawn `actors` responders, ask each once, stop them all.
pub(crate) fn spawn(actors: u64, limit: Duration) -> Result<SpawnSample, LocalError> {
    on_runtime(async move {
        within(FRAMEWORK, Test::Spawn, limit, async move {
            let mut clock = SpawnClock::start()?;
            let refs: Vec<ActorRef<Responder>> =
                (0..actors).map(|_| Responder::spawn(Responder)).collect();
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
            for actor in &refs {
                actor
                    .stop_gracefully()
                    .await
                    .map_err(|e| failed("stop", e))?;
            }
            for actor in &refs {
                actor.wait_for_shutdown().await;
            }
            clock.stopped()
        })
        .await
    })
}
