//! The `local` tests written with actix, run the way actix users run it: a
//! `System` (one thread with its own runtime) plus, where a test has a receiver
//! that should run beside its senders, one extra `Arbiter` thread, so actix also
//! gets two threads on this two-core machine. `tell` and `fanin` also come in a
//! same-arbiter form (`*_same_arbiter`): senders and receiver all on the System
//! arbiter, one thread, actix's fastest idiomatic configuration (no cross-thread
//! wake-up per message). `pingpong` and `spawn` always run on the System arbiter.
//! Tell is `do_send`, ask is `send(..).await`, stop is `ctx.stop()`; actix's
//! default mailbox (`Context::new`) is used throughout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::actix::prelude::*;
use tokio::sync::oneshot;

use super::support::{ask_all, check_sum, share, within, Latch, SpawnClock, MAX_LATENCY};
use super::{Framework, LocalError, SpawnSample, Test};
use crate::latency::Latencies;

const FRAMEWORK: Framework = Framework::Actix;

fn failed(operation: &'static str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::framework(FRAMEWORK, operation, reason)
}

/// Runs `body` inside a fresh actix `System` with one extra `Arbiter`, stops
/// both afterwards and waits for the arbiter's thread.
fn in_system<T, F, Fut>(body: F) -> Result<T, LocalError>
where
    F: FnOnce(ArbiterHandle) -> Fut,
    Fut: std::future::Future<Output = Result<T, LocalError>>,
{
    let system = System::new();
    let (arbiter, result) = system.block_on(async move {
        let arbiter = Arbiter::try_new().map_err(LocalError::Runtime)?;
        let result = body(arbiter.handle()).await;
        Ok::<_, LocalError>((arbiter, result))
    })?;
    arbiter.stop();
    arbiter
        .join()
        .map_err(|_| failed("stop arbiter", "arbiter thread panicked"))?;
    result
}

/// A counted message.
#[derive(Message)]
#[rtype(result = "()")]
struct Count(u64);

/// Counts messages and reports when it has counted `expected` of them.
struct Counter {
    count: u64,
    sum: u64,
    expected: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Count> for Counter {
    type Result = ();

    fn handle(&mut self, Count(value): Count, ctx: &mut Context<Self>) {
        self.count += 1;
        self.sum += value;
        if self.count == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(self.sum);
            }
            ctx.stop();
        }
    }
}

/// Starts a counter on `arbiter`.
fn counter(arbiter: &ArbiterHandle, expected: u64) -> (Addr<Counter>, oneshot::Receiver<u64>) {
    let (done_tx, done_rx) = oneshot::channel();
    let addr = Counter::start_in_arbiter(arbiter, move |_| Counter {
        count: 0,
        sum: 0,
        expected,
        done: Some(done_tx),
    });
    (addr, done_rx)
}

/// Where the counter of `tell` and `fanin` runs.
#[derive(Debug, Clone, Copy)]
enum Receiver {
    /// On the extra `Arbiter` thread: every message crosses threads.
    OwnArbiter,
    /// On the System arbiter, beside its senders: one thread.
    SystemArbiter,
}

impl Receiver {
    fn arbiter(self, extra: &ArbiterHandle) -> ArbiterHandle {
        match self {
            Self::OwnArbiter => extra.clone(),
            Self::SystemArbiter => Arbiter::current(),
        }
    }
}

/// `tell`: the system thread sends `messages` to a counter on the arbiter.
pub(crate) fn tell(messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    tell_to(Receiver::OwnArbiter, messages, limit)
}

/// `tell` with sender and counter on the System arbiter.
pub(crate) fn tell_same_arbiter(messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    tell_to(Receiver::SystemArbiter, messages, limit)
}

fn tell_to(receiver: Receiver, messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    in_system(|arbiter| async move {
        let (addr, done) = counter(&receiver.arbiter(&arbiter), messages);
        let started = Instant::now();
        for i in 0..messages {
            addr.do_send(Count(i));
        }
        within(FRAMEWORK, Test::Tell, limit, async {
            let sum = done.await.map_err(|e| failed("counting", e))?;
            check_sum(FRAMEWORK, sum, messages, 1)
        })
        .await?;
        Ok(started.elapsed())
    })
}

/// `fanin`: `senders` tasks on the system thread, one counter on the arbiter.
pub(crate) fn fanin(senders: u64, messages: u64, limit: Duration) -> Result<Duration, LocalError> {
    fanin_to(Receiver::OwnArbiter, senders, messages, limit)
}

/// `fanin` with the sender tasks and the counter on the System arbiter.
pub(crate) fn fanin_same_arbiter(
    senders: u64,
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    fanin_to(Receiver::SystemArbiter, senders, messages, limit)
}

fn fanin_to(
    receiver: Receiver,
    senders: u64,
    messages: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    in_system(|arbiter| async move {
        let (addr, done) = counter(&receiver.arbiter(&arbiter), messages);
        let started = Instant::now();
        for index in 0..senders {
            let addr = addr.clone();
            actix_rt::spawn(async move {
                for i in 0..share(messages, senders, index) {
                    addr.do_send(Count(i));
                }
            });
        }
        within(FRAMEWORK, Test::Fanin, limit, async {
            let sum = done.await.map_err(|e| failed("counting", e))?;
            check_sum(FRAMEWORK, sum, messages, senders)
        })
        .await?;
        Ok(started.elapsed())
    })
}

/// The ball, going out.
#[derive(Message)]
#[rtype(result = "()")]
struct Ping(u64);

/// The ball, coming back.
#[derive(Message)]
#[rtype(result = "()")]
struct Pong(u64);

/// Begin bouncing with this partner.
#[derive(Message)]
#[rtype(result = "()")]
struct Start(Addr<Ponger>);

/// Bounces a ball `left` times and times every round trip.
struct Pinger {
    partner: Option<Addr<Ponger>>,
    left: u64,
    sent_at: Instant,
    latencies: Latencies,
    done: Option<oneshot::Sender<Result<Latencies, String>>>,
}

impl Actor for Pinger {
    type Context = Context<Self>;
}

impl Handler<Start> for Pinger {
    type Result = ();

    fn handle(&mut self, Start(partner): Start, _ctx: &mut Context<Self>) {
        self.sent_at = Instant::now();
        partner.do_send(Ping(self.left));
        self.partner = Some(partner);
    }
}

impl Handler<Pong> for Pinger {
    type Result = ();

    fn handle(&mut self, Pong(ball): Pong, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if ball != self.left {
            if let Some(done) = self.done.take() {
                let _ = done.send(Err(format!(
                    "ball {ball} came back, expected {}",
                    self.left
                )));
            }
            ctx.stop();
            return;
        }
        self.latencies.record(now - self.sent_at);
        self.left -= 1;
        if self.left == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(Ok(self.latencies.clone()));
            }
            ctx.stop();
        } else if let Some(partner) = &self.partner {
            self.sent_at = now;
            partner.do_send(Ping(self.left));
        }
    }
}

/// Sends every ball straight back to the pinger.
struct Ponger {
    pinger: Addr<Pinger>,
}

impl Actor for Ponger {
    type Context = Context<Self>;
}

impl Handler<Ping> for Ponger {
    type Result = ();

    fn handle(&mut self, Ping(ball): Ping, _ctx: &mut Context<Self>) {
        self.pinger.do_send(Pong(ball));
    }
}

/// `pingpong`: two actors on the system thread bounce one message.
pub(crate) fn pingpong(
    round_trips: u64,
    limit: Duration,
) -> Result<(Duration, Latencies), LocalError> {
    let latencies = Latencies::new(MAX_LATENCY)?;
    in_system(|_arbiter| async move {
        let (done_tx, done_rx) = oneshot::channel();
        let pinger = Pinger {
            partner: None,
            left: round_trips,
            sent_at: Instant::now(),
            latencies,
            done: Some(done_tx),
        }
        .start();
        let ponger = Ponger {
            pinger: pinger.clone(),
        }
        .start();
        let started = Instant::now();
        pinger.do_send(Start(ponger));
        let latencies = within(FRAMEWORK, Test::Pingpong, limit, async {
            done_rx
                .await
                .map_err(|e| failed("bouncing", e))?
                .map_err(|e| failed("bouncing", e))
        })
        .await?;
        Ok((started.elapsed(), latencies))
    })
}

/// A question for a `spawn` actor: answer with the number plus one.
#[derive(Message)]
#[rtype(result = "u64")]
struct Question(u64);

/// Stop now.
#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// Answers questions; tells the latch when it has stopped (actix offers no
/// handle to await an actor's end).
struct Responder {
    stopped: Arc<Latch>,
}

impl Actor for Responder {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.stopped.count_down();
    }
}

impl Handler<Question> for Responder {
    type Result = u64;

    fn handle(&mut self, Question(n): Question, _ctx: &mut Context<Self>) -> u64 {
        n + 1
    }
}

impl Handler<Stop> for Responder {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// `spawn`: start `actors` responders on the system thread, ask each once, stop
/// them all.
pub(crate) fn spawn(actors: u64, limit: Duration) -> Result<SpawnSample, LocalError> {
    in_system(|_arbiter| {
        within(FRAMEWORK, Test::Spawn, limit, async move {
            let stopped = Latch::new(actors);
            let mut clock = SpawnClock::start()?;
            let addrs: Vec<Addr<Responder>> = (0..actors)
                .map(|_| {
                    Responder {
                        stopped: stopped.clone(),
                    }
                    .start()
                })
                .collect();
            clock.spawned();
            ask_all(
                addrs
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, addr)| async move {
                        match addr.send(Question(i as u64)).await {
                            Ok(n) if n == i as u64 + 1 => Ok(()),
                            Ok(n) => Err(failed("send", format!("wrong answer {n} to {i}"))),
                            Err(e) => Err(failed("send", e)),
                        }
                    }),
            )
            .await?;
            clock.answered()?;
            for addr in addrs {
                addr.do_send(Stop);
            }
            stopped.wait().await;
            clock.stopped()
        })
    })
}
