//! The `local` tests written with ractor: `Actor::spawn`, `cast` for tell,
//! `call` with an `RpcReplyPort` for ask, `stop` + the join handle for stop.
//! ractor's default mailbox is unbounded.

use std::time::{Duration, Instant};

use ::ractor::rpc::CallResult;
use ::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use super::support::{ask_all, check_sum, on_runtime, share, within, SpawnClock, MAX_LATENCY};
use super::{Framework, LocalError, SpawnSample, Test};
use crate::latency::Latencies;

const FRAMEWORK: Framework = Framework::Ractor;

fn failed(operation: &'static str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::framework(FRAMEWORK, operation, reason)
}

/// Counts `u64` messages and reports when it has counted `expected` of them.
struct Counter;

struct CounterState {
    count: u64,
    sum: u64,
    expected: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {
    type Msg = u64;
    type State = CounterState;
    type Arguments = (u64, oneshot::Sender<u64>);

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        (expected, done): Self::Arguments,
    ) -> Result<CounterState, ActorProcessingErr> {
        Ok(CounterState {
            count: 0,
            sum: 0,
            expected,
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        value: u64,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        state.count += 1;
        state.sum += value;
        if state.count == state.expected {
            if let Some(done) = state.done.take() {
                let _ = done.send(state.sum);
            }
        }
        Ok(())
    }
}

/// Spawns a counter expecting `expected` messages.
async fn counter(
    expected: u64,
) -> Result<
    (
        ActorRef<u64>,
        oneshot::Receiver<u64>,
        tokio::task::JoinHandle<()>,
    ),
    LocalError,
> {
    let (done_tx, done_rx) = oneshot::channel();
    let (actor, handle) = Actor::spawn(None, Counter, (expected, done_tx))
        .await
        .map_err(|e| failed("spawn", e))?;
    Ok((actor, done_rx, handle))
}

/// Stops `actor` and waits for it to end.
async fn stop(actor: ActorRef<u64>, handle: tokio::task::JoinHandle<()>) -> Result<(), LocalError> {
    actor.stop(None);
    handle.await.map_err(|e| failed("stop", e))
}

/// `tell`: one sender, `messages` casts to one counter.
pub(crate) fn tell(messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move {
        let (actor, done, handle) = counter(messages).await?;
        let started = Instant::now();
        for i in 0..messages {
            actor.cast(i).map_err(|e| failed("cast", e))?;
        }
        within(FRAMEWORK, Test::Tell, limit, async {
            let sum = done.await.map_err(|e| failed("counting", e))?;
            check_sum(FRAMEWORK, sum, messages, 1)
        })
        .await?;
        let elapsed = started.elapsed();
        stop(actor, handle).await?;
        Ok(elapsed)
    })
}

/// `fanin`: `senders` tasks cast `messages` in all to one counter.
pub(crate) fn fanin(senders: u64, messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    on_runtime(async move {
        let (actor, done, handle) = counter(messages).await?;
        let started = Instant::now();
        let tasks: Vec<_> = (0..senders)
            .map(|index| {
                let actor = actor.clone();
                tokio::spawn(async move {
                    for i in 0..share(messages, senders, index) {
                        actor.cast(i).map_err(|e| failed("cast", e))?;
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
        stop(actor, handle).await?;
        Ok(elapsed)
    })
}

/// Messages of the ping side of `pingpong`.
enum PingMsg {
    /// Begin bouncing with this partner.
    Start(ActorRef<u64>),
    /// The partner bounced the ball back.
    Pong(u64),
}

// ractor's `cluster` feature (on for the `remote` scenario's ractor_cluster peer)
// drops the blanket `Message` impl: local-only messages say so explicitly.
impl ::ractor::Message for PingMsg {}

/// Bounces a ball `round_trips` times and times every round trip.
struct Pinger;

struct PingerState {
    partner: Option<ActorRef<u64>>,
    left: u64,
    sent_at: Instant,
    latencies: Latencies,
    done: Option<oneshot::Sender<Latencies>>,
}

impl Actor for Pinger {
    type Msg = PingMsg;
    type State = PingerState;
    type Arguments = (u64, Latencies, oneshot::Sender<Latencies>);

    async fn pre_start(
        &self,
        _myself: ActorRef<PingMsg>,
        (round_trips, latencies, done): Self::Arguments,
    ) -> Result<PingerState, ActorProcessingErr> {
        Ok(PingerState {
            partner: None,
            left: round_trips,
            sent_at: Instant::now(),
            latencies,
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PingMsg>,
        message: PingMsg,
        state: &mut PingerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PingMsg::Start(partner) => {
                state.sent_at = Instant::now();
                partner.cast(state.left)?;
                state.partner = Some(partner);
            }
            PingMsg::Pong(ball) => {
                let now = Instant::now();
                if ball != state.left {
                    return Err(format!("ball {ball} came back, expected {}", state.left).into());
                }
                state.latencies.record(now - state.sent_at);
                state.left -= 1;
                if state.left == 0 {
                    if let Some(done) = state.done.take() {
                        let _ = done.send(state.latencies.clone());
                    }
                } else if let Some(partner) = &state.partner {
                    state.sent_at = now;
                    partner.cast(state.left)?;
                }
            }
        }
        Ok(())
    }
}

/// Sends every ball straight back to the pinger.
struct Ponger;

impl Actor for Ponger {
    type Msg = u64;
    type State = ActorRef<PingMsg>;
    type Arguments = ActorRef<PingMsg>;

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        pinger: ActorRef<PingMsg>,
    ) -> Result<ActorRef<PingMsg>, ActorProcessingErr> {
        Ok(pinger)
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        ball: u64,
        pinger: &mut ActorRef<PingMsg>,
    ) -> Result<(), ActorProcessingErr> {
        pinger.cast(PingMsg::Pong(ball))?;
        Ok(())
    }
}

/// `pingpong`: two actors bounce one message `round_trips` times.
pub(crate) fn pingpong(
    round_trips: u64,
    limit: Duration,
) -> Result<(Duration, Latencies), LocalError> {
    on_runtime(async move {
        let (done_tx, done_rx) = oneshot::channel();
        let (pinger, ping_handle) = Actor::spawn(
            None,
            Pinger,
            (round_trips, Latencies::new(MAX_LATENCY)?, done_tx),
        )
        .await
        .map_err(|e| failed("spawn", e))?;
        let (ponger, pong_handle) = Actor::spawn(None, Ponger, pinger.clone())
            .await
            .map_err(|e| failed("spawn", e))?;
        let started = Instant::now();
        pinger
            .cast(PingMsg::Start(ponger.clone()))
            .map_err(|e| failed("cast", e))?;
        let latencies = within(FRAMEWORK, Test::Pingpong, limit, async {
            done_rx.await.map_err(|e| failed("bouncing", e))
        })
        .await?;
        let elapsed = started.elapsed();
        pinger.stop(None);
        ponger.stop(None);
        ping_handle.await.map_err(|e| failed("stop", e))?;
        pong_handle.await.map_err(|e| failed("stop", e))?;
        Ok((elapsed, latencies))
    })
}

/// A question for a `spawn` actor: answer with the number plus one.
struct Question(u64, RpcReplyPort<u64>);

impl ::ractor::Message for Question {}

/// Answers questions; holds no state.
struct Responder;

impl Actor for Responder {
    type Msg = Question;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Question>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Question>,
        Question(n, reply): Question,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        reply.send(n + 1)?;
        Ok(())
    }
}

/// `spawn`: spawn `actors` responders, ask each once, stop them all.
pub(crate) fn spawn(actors: u64, limit: Duration) -> Result<SpawnSample, LocalError> {
    on_runtime(async move {
        within(FRAMEWORK, Test::Spawn, limit, async move {
            let mut clock = SpawnClock::start()?;
            let mut refs = Vec::with_capacity(actors as usize);
            let mut handles = Vec::with_capacity(actors as usize);
            for _ in 0..actors {
                let (actor, handle) = Actor::spawn(None, Responder, ())
                    .await
                    .map_err(|e| failed("spawn", e))?;
                refs.push(actor);
                handles.push(handle);
            }
            clock.spawned();
            ask_all(
                refs.iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, actor)| async move {
                        let answer = actor
                            .call(|reply| Question(i as u64, reply), None)
                            .await
                            .map_err(|e| failed("call", e))?;
                        match answer {
                            CallResult::Success(n) if n == i as u64 + 1 => Ok(()),
                            CallResult::Success(n) => {
                                Err(failed("call", format!("wrong answer {n} to {i}")))
                            }
                            CallResult::Timeout => Err(failed("call", "timed out")),
                            CallResult::SenderError => Err(failed("call", "reply port dropped")),
                        }
                    }),
            )
            .await?;
            clock.answered()?;
            for actor in &refs {
                actor.stop(None);
            }
            for handle in handles {
                handle.await.map_err(|e| failed("stop", e))?;
            }
            clock.stopped()
        })
        .await
    })
}
