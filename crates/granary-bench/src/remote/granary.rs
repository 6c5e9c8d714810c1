//! granary's side of the `remote` scenario: the actors on both nodes and the
//! measurements, all through the public API of `granary` and `granary-remote`.
//!
//! Every measurement is driven by an actor on this node ([`Driver`]) that asks or
//! tells an actor exposed on the peer, through a forged `ActorRef::remote`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary::prelude::*;
use granary::RemoteError as WireError;
use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::latency::Latencies;

use super::node::{Expected, GranaryConfig};
use super::peer::Peer;
use super::{Framework, Job, Measured, RemoteError, Sizes, Test, BULK_BYTES, MAX_LATENCY};

/// Limit of one remote ask inside a measurement.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// Round trips before a `pingpong` measurement starts (connections, caches).
const WARMUP_ROUND_TRIPS: u64 = 200;

/// Cluster name and secret shared by both nodes.
const CLUSTER: &str = "granary-bench";
const SECRET: &[u8] = b"granary-bench-cookie";

/// A request whose reply is its own payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct Ping(Bytes);
impl Message for Ping {
    type Reply = Pong;
}
register_message!(Ping, "granary-bench.remote.Ping");

/// The reply to a [`Ping`]: the same payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct Pong(Bytes);
register_message!(Pong, "granary-bench.remote.Pong");

/// A one-way message.
#[derive(Serialize, Deserialize)]
pub(crate) struct Oneway(Bytes);
impl Message for Oneway {
    type Reply = ();
}
register_message!(Oneway, "granary-bench.remote.Oneway");

/// Answers every [`Ping`] with its payload.
pub(crate) struct Echo;
impl Actor for Echo {}
impl Handler<Ping> for Echo {
    async fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> Pong {
        Pong(msg.0)
    }
}

/// Counts [`Oneway`] messages and prints `done` when the count the parent expects
/// is reached (then starts over).
pub(crate) struct Sink {
    seen: u64,
    expected: Arc<Expected>,
}
impl Actor for Sink {}
impl Handler<Oneway> for Sink {
    async fn handle(&mut self, _msg: Oneway, _ctx: &mut Context<Self>) {
        self.seen += 1;
        if self.seen == self.expected.get() {
            self.seen = 0;
            println!("done");
        }
    }
}

/// Drops [`Oneway`] messages: the receiving end of the 1 MiB stream in `pairs`.
pub(crate) struct Drain;
impl Actor for Drain {}
impl Handler<Oneway> for Drain {
    async fn handle(&mut self, _msg: Oneway, _ctx: &mut Context<Self>) {}
}

fn transport_config(config: GranaryConfig) -> TransportConfig {
    TransportConfig::new(CLUSTER, SECRET.to_vec())
        .with_parallelism(config.parallelism)
        .with_affinity(config.affinity)
        .with_bulk_lane(config.bulk_lane)
        .with_max_protocol(config.max_protocol)
}

fn setup_error(
    operation: &'static str,
) -> impl Fn(granary_remote::RemoteSetupError) -> RemoteError {
    move |e| RemoteError::framework(Framework::Granary, operation, e)
}

/// The peer's actors, served until dropped.
pub(crate) struct Server {
    node: RemoteNode,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.node.shutdown();
    }
}

/// Starts the peer node: `echo`, `echo-0`..`echo-{pairs-1}`, `sink` and `bulk`;
/// prints `listening ADDR`.
pub(crate) async fn serve(
    config: GranaryConfig,
    pairs: usize,
    expected: Arc<Expected>,
) -> Result<Server, RemoteError> {
    let node = RemoteNode::start(ActorSystem::new(), transport_config(config))
        .await
        .map_err(setup_error("start the peer node"))?;
    let expose_echo = |name: &str| -> Result<(), RemoteError> {
        let echo = node.system().spawn(Echo);
        node.expose(name, &echo)
            .and_then(|e| e.accept::<Ping>())
            .map_err(setup_error("expose an echo actor"))?;
        Ok(())
    };
    expose_echo("echo")?;
    for i in 0..pairs {
        expose_echo(&format!("echo-{i}"))?;
    }
    let sink = node.system().spawn(Sink { seen: 0, expected });
    node.expose("sink", &sink)
        .and_then(|e| e.accept::<Oneway>())
        .map_err(setup_error("expose the sink"))?;
    let drain = node.system().spawn(Drain);
    node.expose("bulk", &drain)
        .and_then(|e| e.accept::<Oneway>())
        .map_err(setup_error("expose the bulk sink"))?;
    println!("listening {}", node.local_addr());
    Ok(Server { node })
}

/// Drives measurements from this node.
struct Driver;
impl Actor for Driver {}

/// Round trips with one echo actor; replies the latencies and the time taken.
struct RunPingpong {
    target: ActorRef<Echo>,
    warmup: u64,
    count: u64,
    payload: Bytes,
}
impl Message for RunPingpong {
    type Reply = Result<(Latencies, Duration), String>;
}
impl Handler<RunPingpong> for Driver {
    async fn handle(
        &mut self,
        msg: RunPingpong,
        _ctx: &mut Context<Self>,
    ) -> Result<(Latencies, Duration), String> {
        let round_trip = || async {
            let reply = msg
                .target
                .ask_timeout(Ping(msg.payload.clone()), ASK_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            if reply.0.len() == msg.payload.len() {
                Ok(())
            } else {
                Err(format!(
                    "echo of {} B came back with {} B",
                    msg.payload.len(),
                    reply.0.len()
                ))
            }
        };
        for _ in 0..msg.warmup {
            round_trip().await?;
        }
        let mut latencies =
            Latencies::new(MAX_LATENCY).map_err(|e| RemoteError::from(e).to_string())?;
        let start = Instant::now();
        for _ in 0..msg.count {
            let t0 = Instant::now();
            round_trip().await?;
            latencies.record(t0.elapsed());
        }
        Ok((latencies, start.elapsed()))
    }
}

/// Whether a failed tell was refused for backpressure (and so may be retried).
fn backpressure<M>(err: SendError<M>) -> Result<M, String> {
    match err {
        SendError::Remote {
            error: WireError::Backpressure(_),
            message: Some(back),
        } => Ok(back),
        other => Err(other.to_string()),
    }
}

/// `count` one-way messages to the sink with `ActorRef::send`, which waits while the
/// transport's queue to the peer is full (backpressure) instead of failing: the
/// sender is held to the pace the network and the receiver take, and does not spin
/// on retries that take a core from the receiver on a 2-core machine (sessions 15-26
/// drove this with `tell` and a retry loop; a run with many retries then measured
/// the spinning).
struct RunOneway {
    target: ActorRef<Sink>,
    count: u64,
    payload: Bytes,
}
impl Message for RunOneway {
    type Reply = Result<(), String>;
}
impl Handler<RunOneway> for Driver {
    async fn handle(&mut self, msg: RunOneway, _ctx: &mut Context<Self>) -> Result<(), String> {
        for i in 0..msg.count {
            (msg.target.send(Oneway(msg.payload.clone())).await).map_err(|e| e.to_string())?;
            // Let the connection writers run on this 2-worker runtime.
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
}

/// 1 MiB tells to the bulk sink until `stop`; `started` fires after the first few.
/// Replies the messages sent.
struct RunBulk {
    target: ActorRef<Drain>,
    stop: Arc<AtomicBool>,
    started: oneshot::Sender<()>,
}
impl Message for RunBulk {
    type Reply = Result<u64, String>;
}
impl Handler<RunBulk> for Driver {
    async fn handle(&mut self, msg: RunBulk, _ctx: &mut Context<Self>) -> Result<u64, String> {
        let body = Bytes::from(vec![0x5a; BULK_BYTES]);
        let mut started = Some(msg.started);
        let mut sent = 0u64;
        while !msg.stop.load(Ordering::Relaxed) {
            match msg.target.tell(Oneway(body.clone())) {
                Ok(()) => sent += 1,
                Err(err) => {
                    backpressure(err)?;
                    // The queue holds 16 MiB: pace the retry instead of spinning a core.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            if sent >= 4 {
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
            }
            tokio::task::yield_now().await;
        }
        Ok(sent)
    }
}

/// A granary peer process and this side's node, configured alike.
struct Connected {
    config: GranaryConfig,
    peer: Peer,
    node: RemoteNode,
    peer_addr: SocketAddr,
}

/// The measuring side: one peer at a time, restarted when the configuration changes.
pub(crate) struct Session {
    connected: Option<Connected>,
    /// Start peers with `--observe` (metrics and tracing on).
    observe: bool,
    /// Start peers on a current-thread runtime (this side's runtime is the caller's).
    current_thread: bool,
}

impl Session {
    /// No peer yet.
    pub(crate) fn idle() -> Self {
        Self::idle_with(false)
    }

    /// No peer yet; peers will run on a current-thread runtime if asked.
    pub(crate) fn idle_with(current_thread: bool) -> Self {
        Self {
            connected: None,
            observe: false,
            current_thread,
        }
    }

    /// No peer yet; peers start with metrics and tracing on.
    pub(crate) fn observing() -> Self {
        Self {
            observe: true,
            ..Self::idle()
        }
    }

    /// Stops the peer and this side's node.
    pub(crate) fn close(&mut self) {
        if let Some(connected) = self.connected.take() {
            connected.node.shutdown();
            drop(connected.peer);
        }
    }

    async fn connect(
        &mut self,
        config: GranaryConfig,
        sizes: &Sizes,
    ) -> Result<&mut Connected, RemoteError> {
        if self.connected.as_ref().is_some_and(|c| {
            c.config.parallelism != config.parallelism
                || c.config.affinity != config.affinity
                || c.config.bulk_lane != config.bulk_lane
                || c.config.max_protocol != config.max_protocol
        }) {
            self.close();
        }
        if self.connected.is_none() {
            let mut args: Vec<String> = ["--framework", "granary", "--pairs"]
                .into_iter()
                .map(String::from)
                .collect();
            args.push(sizes.pairs.to_string());
            args.extend(config.args());
            if self.observe {
                args.push("--observe".into());
            }
            if self.current_thread {
                args.push("--current-thread".into());
            }
            let (peer, peer_addr) =
                super::peer::start_remote_node("the granary peer", args).await?;
            let node = RemoteNode::start(ActorSystem::new(), transport_config(config))
                .await
                .map_err(setup_error("start this node"))?;
            self.connected = Some(Connected {
                config,
                peer,
                node,
                peer_addr,
            });
        }
        self.connected
            .as_mut()
            .ok_or_else(|| RemoteError::framework(Framework::Granary, "connect", "no peer"))
    }

    /// Measures one job.
    pub(crate) async fn measure(
        &mut self,
        job: &Job,
        sizes: &Sizes,
    ) -> Result<Measured, RemoteError> {
        let max_protocol = if job.setup == super::Setup::Postcard {
            4
        } else {
            granary_remote::wire::PROTOCOL_VERSION
        };
        let config = job
            .pairs
            .map(|(parallelism, affinity, bulk_lane)| GranaryConfig {
                parallelism,
                affinity,
                bulk_lane,
                max_protocol,
            })
            .unwrap_or_else(|| {
                let defaults = TransportConfig::new(CLUSTER, SECRET.to_vec());
                GranaryConfig {
                    parallelism: defaults.parallelism,
                    affinity: defaults.affinity,
                    bulk_lane: defaults.bulk_lane,
                    max_protocol,
                }
            });
        let connected = self.connect(config, sizes).await?;
        let timeout = sizes.timeout;
        match job.test {
            Test::Pingpong => {
                let driver = connected.node.system().spawn(Driver);
                let target = ActorRef::<Echo>::remote(&connected.node, connected.peer_addr, "echo");
                let run = driver.ask_timeout(
                    RunPingpong {
                        target,
                        warmup: WARMUP_ROUND_TRIPS.min(job.count),
                        count: job.count,
                        payload: Bytes::from(vec![0x42; job.payload]),
                    },
                    timeout,
                );
                let (latencies, elapsed) = within(run, job.test, timeout)
                    .await?
                    .map_err(|e| RemoteError::framework(Framework::Granary, "ask the driver", e))?
                    .map_err(|e| RemoteError::framework(Framework::Granary, "pingpong", e))?;
                driver.stop();
                Ok(Measured {
                    seconds: elapsed.as_secs_f64(),
                    messages: latencies.len(),
                    latency_us: Some(latencies.summary_us()),
                    ..Measured::default()
                })
            }
            Test::Oneway => {
                let driver = connected.node.system().spawn(Driver);
                let target = ActorRef::<Sink>::remote(&connected.node, connected.peer_addr, "sink");
                // Connect and handshake before the clock starts.
                let echo = ActorRef::<Echo>::remote(&connected.node, connected.peer_addr, "echo");
                echo.ask_timeout(Ping(Bytes::new()), ASK_TIMEOUT)
                    .await
                    .map_err(|e| RemoteError::framework(Framework::Granary, "warm up", e))?;
                connected.peer.send(&format!("expect {}", job.count))?;
                connected.peer.expect("ready", timeout).await?;
                let start = Instant::now();
                within(
                    driver.ask_timeout(
                        RunOneway {
                            target,
                            count: job.count,
                            payload: Bytes::from(vec![0x42; job.payload]),
                        },
                        timeout,
                    ),
                    job.test,
                    timeout,
                )
                .await?
                .map_err(|e| RemoteError::framework(Framework::Granary, "ask the driver", e))?
                .map_err(|e| RemoteError::framework(Framework::Granary, "oneway", e))?;
                connected.peer.expect("done", timeout).await?;
                let seconds = start.elapsed().as_secs_f64();
                driver.stop();
                Ok(Measured {
                    seconds,
                    messages: job.count,
                    ..Measured::default()
                })
            }
            Test::Pairs => {
                let measured = pairs(connected, job, sizes).await;
                // The bulk stream leaves up to a full queue behind: start clean next time.
                self.close();
                measured
            }
        }
    }
}

/// `fut` within `timeout`, or a [`RemoteError::Timeout`] for `test`.
async fn within<T>(
    fut: impl std::future::Future<Output = T>,
    test: Test,
    timeout: Duration,
) -> Result<T, RemoteError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| RemoteError::Timeout {
            framework: Framework::Granary,
            test,
            after: timeout,
        })
}

/// `pairs`: `sizes.pairs` drivers ping-pong with `echo-i` while one more streams
/// 1 MiB messages to `bulk`.
async fn pairs(
    connected: &mut Connected,
    job: &Job,
    sizes: &Sizes,
) -> Result<Measured, RemoteError> {
    let node = &connected.node;
    let fail =
        |operation| move |e: String| RemoteError::framework(Framework::Granary, operation, e);
    let drivers: Vec<(ActorRef<Driver>, ActorRef<Echo>)> = (0..sizes.pairs)
        .map(|i| {
            (
                node.system().spawn(Driver),
                ActorRef::<Echo>::remote(node, connected.peer_addr, &format!("echo-{i}")),
            )
        })
        .collect();
    let payload = Bytes::from(vec![0x42; job.payload]);
    // Warm up every pair (connections, handshakes) before the bulk stream starts.
    for (driver, target) in &drivers {
        let warm = RunPingpong {
            target: target.clone(),
            warmup: 2,
            count: 0,
            payload: payload.clone(),
        };
        driver
            .ask_timeout(warm, sizes.timeout)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(fail("warm up a pair"))?;
    }
    let bulk_driver = node.system().spawn(Driver);
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = oneshot::channel();
    let bulk = {
        let run = RunBulk {
            target: ActorRef::<Drain>::remote(node, connected.peer_addr, "bulk"),
            stop: stop.clone(),
            started: started_tx,
        };
        let driver = bulk_driver.clone();
        let timeout = sizes.timeout * 2;
        tokio::spawn(async move {
            driver
                .ask_timeout(run, timeout)
                .await
                .map_err(|e| e.to_string())
        })
    };
    tokio::time::timeout(sizes.timeout, started_rx)
        .await
        .map_err(|_| RemoteError::Timeout {
            framework: Framework::Granary,
            test: Test::Pairs,
            after: sizes.timeout,
        })?
        .map_err(|_| {
            RemoteError::framework(Framework::Granary, "start the bulk pair", "it ended")
        })?;
    let start = Instant::now();
    let runs = drivers.iter().map(|(driver, target)| {
        driver.ask_timeout(
            RunPingpong {
                target: target.clone(),
                warmup: 0,
                count: job.count,
                payload: payload.clone(),
            },
            sizes.timeout,
        )
    });
    let results = futures::future::join_all(runs).await;
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let bulk_sent = bulk
        .await
        .map_err(|e| RemoteError::framework(Framework::Granary, "bulk pair", e))?
        .and_then(|r| r)
        .map_err(fail("bulk pair"))?;
    let mut all = Latencies::new(MAX_LATENCY)?;
    for result in results {
        let (latencies, _) = result
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(fail("small pair"))?;
        all.merge(&latencies)?;
    }
    for (driver, _) in &drivers {
        driver.stop();
    }
    bulk_driver.stop();
    Ok(Measured {
        seconds,
        messages: all.len(),
        latency_us: Some(all.summary_us()),
        bulk_messages: Some(bulk_sent),
    })
}
