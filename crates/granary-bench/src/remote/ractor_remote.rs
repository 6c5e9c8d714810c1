//! ractor_cluster as a peer: the same `pingpong` and `oneway` between two OS
//! processes on 127.0.0.1, with ractor's own cluster layer.
//!
//! Each process runs a `ractor_cluster::NodeServer` (plain TCP, one shared cookie,
//! isolated connection mode) bound to 127.0.0.1. The peer spawns an `echo` and a
//! `sink` actor and puts them in process groups of those names; ractor_cluster
//! syncs the groups when the nodes connect, so the measuring process finds them as
//! remote actors in `ractor::pg` and talks to them with ordinary `call` (pingpong)
//! and `cast` (oneway). Messages are `#[derive(RactorClusterMessage)]` enums with a
//! `Vec<u8>` payload, ractor_cluster's own encoding.
//!
//! The `current-thread-cast` setup measures `pingpong` without `call`: a [`Pinger`]
//! actor here casts `Bounce` to the echo actor, which casts the payload back to the
//! pinger (found through a process group named after the job), and the pinger casts
//! the next one. No reply port, no task per call on the serving node.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, NodeServerMessage, RactorClusterMessage};

use crate::latency::Latencies;

use super::node::Expected;
use super::peer::Peer;
use super::{Framework, Job, Measured, RemoteError, Sizes, Test, MAX_LATENCY};

const FRAMEWORK: Framework = Framework::RactorCluster;

/// Cookie shared by the two nodes.
const COOKIE: &str = "granary-bench-cookie";

/// Process groups the peer's actors join.
const ECHO_GROUP: &str = "granary-bench.echo";
const SINK_GROUP: &str = "granary-bench.sink";

/// Limit of one `call` inside a measurement.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Round trips before a `pingpong` measurement starts, as for granary.
const WARMUP_ROUND_TRIPS: u64 = 200;

fn failed(operation: &'static str) -> impl Fn(String) -> RemoteError {
    move |reason| RemoteError::framework(FRAMEWORK, operation, reason)
}

/// Messages of the echo actor.
#[derive(RactorClusterMessage)]
pub(crate) enum EchoMsg {
    /// Answer with the same payload.
    #[rpc]
    Ping(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// Whether the pinger of cast ping-pong `id` is known here yet.
    #[rpc]
    Knows(u64, RpcReplyPort<bool>),
    /// Cast the payload back to the pinger of cast ping-pong `id`.
    Bounce(u64, Vec<u8>),
}

/// Messages of the pinger of cast ping-pong.
#[derive(RactorClusterMessage)]
pub(crate) enum PongMsg {
    /// The payload, bounced back by the echo actor.
    Pong(Vec<u8>),
}

/// The process group the pinger of cast ping-pong `id` joins.
fn pinger_group(id: u64) -> String {
    format!("granary-bench.pinger.{id}")
}

/// The remote member of the pinger group of `id`, if the groups have synced.
fn find_pinger(id: u64) -> Option<ActorRef<PongMsg>> {
    ractor::pg::get_members(&pinger_group(id))
        .into_iter()
        .find(|c| !c.get_id().is_local())
        .map(ActorRef::from)
}

/// Messages of the sink actor.
#[derive(RactorClusterMessage)]
pub(crate) enum SinkMsg {
    /// One one-way message.
    Data(Vec<u8>),
}

/// Answers every ping with its payload.
struct Echo;

impl Actor for Echo {
    type Msg = EchoMsg;
    /// The pinger of the current cast ping-pong, looked up once per job.
    type State = Option<(u64, ActorRef<PongMsg>)>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<EchoMsg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(None)
    }

    async fn handle(
        &self,
        _myself: ActorRef<EchoMsg>,
        message: EchoMsg,
        pinger: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            EchoMsg::Ping(payload, reply) => {
                // The caller may have timed out: nothing to do then.
                let _ = reply.send(payload);
            }
            EchoMsg::Knows(id, reply) => {
                if pinger.as_ref().is_none_or(|(known, _)| *known != id) {
                    *pinger = find_pinger(id).map(|actor| (id, actor));
                }
                let _ = reply.send(pinger.is_some());
            }
            EchoMsg::Bounce(id, payload) => match pinger {
                Some((known, actor)) if *known == id => actor.cast(PongMsg::Pong(payload))?,
                // Never asked `Knows` for this id: the pinger's time limit reports it.
                _ => eprintln!("ractor_cluster peer: bounce for unknown pinger {id}"),
            },
        }
        Ok(())
    }
}

/// Cast ping-pong, the measuring side: warms up, then times `count` round trips,
/// each started by casting the next `Bounce` when the last `Pong` arrived.
struct Pinger;

struct PingerState {
    echo: ActorRef<EchoMsg>,
    id: u64,
    body: Vec<u8>,
    warmup: u64,
    left: u64,
    sent_at: Instant,
    started: Instant,
    latencies: Latencies,
    done: Option<tokio::sync::oneshot::Sender<Result<Measured, String>>>,
}

/// What a pinger is started with.
type PingerArgs = (
    ActorRef<EchoMsg>,
    u64,
    Job,
    Latencies,
    tokio::sync::oneshot::Sender<Result<Measured, String>>,
);

impl Actor for Pinger {
    type Msg = PongMsg;
    type State = PingerState;
    type Arguments = PingerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PongMsg>,
        (echo, id, job, latencies, done): PingerArgs,
    ) -> Result<PingerState, ActorProcessingErr> {
        Ok(PingerState {
            echo,
            id,
            body: vec![0x42u8; job.payload],
            warmup: WARMUP_ROUND_TRIPS.min(job.count),
            left: job.count,
            sent_at: Instant::now(),
            started: Instant::now(),
            latencies,
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PongMsg>,
        PongMsg::Pong(payload): PongMsg,
        state: &mut PingerState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        if payload.len() != state.body.len() {
            if let Some(done) = state.done.take() {
                let _ = done.send(Err(format!(
                    "echo of {} B came back with {} B",
                    state.body.len(),
                    payload.len()
                )));
            }
            return Ok(());
        }
        if state.warmup > 0 {
            state.warmup -= 1;
            if state.warmup == 0 {
                state.started = now;
            }
        } else {
            state.latencies.record(now - state.sent_at);
            state.left -= 1;
            if state.left == 0 {
                if let Some(done) = state.done.take() {
                    let _ = done.send(Ok(Measured {
                        seconds: state.started.elapsed().as_secs_f64(),
                        messages: state.latencies.len(),
                        latency_us: Some(state.latencies.summary_us()),
                        ..Measured::default()
                    }));
                }
                return Ok(());
            }
        }
        state.sent_at = Instant::now();
        // The payload goes out again, as the echo sent it.
        state.echo.cast(EchoMsg::Bounce(state.id, payload))?;
        Ok(())
    }
}

/// Counts one-way messages and prints `done` when the count the parent expects is
/// reached (then starts over).
struct Sink;

impl Actor for Sink {
    type Msg = SinkMsg;
    type State = (u64, Arc<Expected>);
    type Arguments = Arc<Expected>;

    async fn pre_start(
        &self,
        _myself: ActorRef<SinkMsg>,
        expected: Arc<Expected>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, expected))
    }

    async fn handle(
        &self,
        _myself: ActorRef<SinkMsg>,
        _message: SinkMsg,
        (seen, expected): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        *seen += 1;
        if *seen == expected.get() {
            *seen = 0;
            println!("done");
        }
        Ok(())
    }
}

/// A port on 127.0.0.1 that was free a moment ago (ractor_cluster's listener does
/// not report the port it picked for 0).
fn free_port() -> Result<u16, RemoteError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RemoteError::framework(FRAMEWORK, "find a free port", e))
}

/// Starts a node server named `name` on a free port of 127.0.0.1.
async fn start_node(name: &str) -> Result<(ActorRef<NodeServerMessage>, u16), RemoteError> {
    let port = free_port()?;
    let server = NodeServer::new(
        port,
        COOKIE.to_string(),
        format!("{name}_{}", std::process::id()),
        "127.0.0.1".to_string(),
        None,
        None,
    )
    .with_listen_addr([127, 0, 0, 1].into());
    let (node, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| RemoteError::framework(FRAMEWORK, "start the node server", e))?;
    Ok((node, port))
}

/// The peer's node and actors, served until dropped.
pub(crate) struct Server {
    cells: Vec<ActorCell>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for cell in &self.cells {
            cell.stop(None);
        }
    }
}

/// Starts the peer node with `echo` and `sink`; prints `listening ADDR`.
pub(crate) async fn serve(expected: Arc<Expected>) -> Result<Server, RemoteError> {
    let (node, port) = start_node("granary_bench_srv").await?;
    let (echo, _) = Actor::spawn(None, Echo, ())
        .await
        .map_err(|e| RemoteError::framework(FRAMEWORK, "spawn the echo actor", e))?;
    let (sink, _) = Actor::spawn(None, Sink, expected)
        .await
        .map_err(|e| RemoteError::framework(FRAMEWORK, "spawn the sink actor", e))?;
    ractor::pg::join(ECHO_GROUP.to_string(), vec![echo.get_cell()]);
    ractor::pg::join(SINK_GROUP.to_string(), vec![sink.get_cell()]);
    println!("listening 127.0.0.1:{port}");
    Ok(Server {
        cells: vec![echo.get_cell(), sink.get_cell(), node.get_cell()],
    })
}

/// The measuring side: one peer process and this process's node, connected.
struct Connected {
    peer: Peer,
    node: ActorRef<NodeServerMessage>,
    echo: ActorRef<EchoMsg>,
    sink: ActorRef<SinkMsg>,
}

/// The measuring side of ractor_cluster: one peer for all its jobs.
pub(crate) struct Session {
    connected: Option<Connected>,
    /// Start the peer on a current-thread runtime.
    current_thread: bool,
    /// Jobs of cast ping-pong so far (each gets its own pinger group).
    cast_jobs: u64,
}

/// The first member of a process group that lives on another node, polled until
/// `deadline` (ractor_cluster syncs groups asynchronously after the handshake).
async fn remote_member(group: &str, deadline: Instant) -> Result<ActorCell, RemoteError> {
    loop {
        if let Some(cell) = ractor::pg::get_members(&group.to_string())
            .into_iter()
            .find(|c| !c.get_id().is_local())
        {
            return Ok(cell);
        }
        if Instant::now() >= deadline {
            return Err(RemoteError::framework(
                FRAMEWORK,
                "find the peer's actors",
                format!("group {group} has no remote member after the nodes connected"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Session {
    /// No peer yet.
    pub(crate) fn idle() -> Self {
        Self::idle_with(false)
    }

    /// No peer yet; the peer will run on a current-thread runtime if asked.
    pub(crate) fn idle_with(current_thread: bool) -> Self {
        Self {
            connected: None,
            current_thread,
            cast_jobs: 0,
        }
    }

    /// Stops the peer and this side's node.
    pub(crate) fn close(&mut self) {
        if let Some(connected) = self.connected.take() {
            connected.node.stop(None);
            drop(connected.peer);
        }
    }

    async fn connect(&mut self) -> Result<&mut Connected, RemoteError> {
        if self.connected.is_none() {
            let exe = std::env::current_exe().map_err(|source| RemoteError::Spawn {
                what: "the ractor_cluster peer".into(),
                source,
            })?;
            let mut command = Command::new(exe);
            command.args(["remote-node", "--framework", FRAMEWORK.name()]);
            if self.current_thread {
                command.arg("--current-thread");
            }
            let mut peer = Peer::spawn("the ractor_cluster peer", command)?;
            let line = peer.expect("listening", Duration::from_secs(30)).await?;
            let addr: SocketAddr = line.parse().map_err(|_| RemoteError::PeerProtocol {
                what: "the ractor_cluster peer".into(),
                line: line.clone(),
                expected: "listening ADDR",
            })?;
            let (node, _) = start_node("granary_bench_cli").await?;
            ractor_cluster::client_connect(&node, addr)
                .await
                .map_err(|e| RemoteError::framework(FRAMEWORK, "connect", format!("{e:?}")))?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let echo = remote_member(ECHO_GROUP, deadline).await?.into();
            let sink = remote_member(SINK_GROUP, deadline).await?.into();
            self.connected = Some(Connected {
                peer,
                node,
                echo,
                sink,
            });
        }
        self.connected
            .as_mut()
            .ok_or_else(|| RemoteError::framework(FRAMEWORK, "connect", "no peer"))
    }

    /// Measures one job (`pairs` is granary's own experiment).
    pub(crate) async fn measure(
        &mut self,
        job: &Job,
        sizes: &Sizes,
    ) -> Result<Measured, RemoteError> {
        let timeout = sizes.timeout;
        let timed_out = |_| RemoteError::Timeout {
            framework: FRAMEWORK,
            test: job.test,
            after: timeout,
        };
        self.cast_jobs += 1;
        let id = self.cast_jobs;
        let connected = self.connect().await?;
        match job.test {
            Test::Pingpong if job.setup == super::Setup::CurrentThreadCast => {
                tokio::time::timeout(timeout, cast_pingpong(&connected.echo, id, job))
                    .await
                    .map_err(timed_out)?
            }
            Test::Pingpong => tokio::time::timeout(timeout, pingpong(&connected.echo, job))
                .await
                .map_err(timed_out)?,
            Test::Oneway => {
                // One round trip first: the session is up and warm before the clock.
                round_trip(&connected.echo, Vec::new()).await?;
                connected.peer.send(&format!("expect {}", job.count))?;
                connected.peer.expect("ready", timeout).await?;
                let start = Instant::now();
                tokio::time::timeout(timeout, oneway(&connected.sink, job))
                    .await
                    .map_err(timed_out)??;
                connected.peer.expect("done", timeout).await?;
                Ok(Measured {
                    seconds: start.elapsed().as_secs_f64(),
                    messages: job.count,
                    ..Measured::default()
                })
            }
            Test::Pairs => Err(RemoteError::framework(
                FRAMEWORK,
                "pairs",
                "no ractor_cluster equivalent",
            )),
        }
    }
}

/// One `call` to the echo actor; checks the payload came back whole.
async fn round_trip(echo: &ActorRef<EchoMsg>, payload: Vec<u8>) -> Result<(), RemoteError> {
    let len = payload.len();
    match echo
        .call(|port| EchoMsg::Ping(payload, port), Some(CALL_TIMEOUT))
        .await
        .map_err(|e| failed("call")(e.to_string()))?
    {
        CallResult::Success(back) if back.len() == len => Ok(()),
        CallResult::Success(back) => Err(failed("call")(format!(
            "echo of {len} B came back with {} B",
            back.len()
        ))),
        CallResult::Timeout => Err(failed("call")(format!("no reply within {CALL_TIMEOUT:?}"))),
        CallResult::SenderError => Err(failed("call")("the reply port was dropped".into())),
    }
}

async fn pingpong(echo: &ActorRef<EchoMsg>, job: &Job) -> Result<Measured, RemoteError> {
    let body = vec![0x42u8; job.payload];
    for _ in 0..WARMUP_ROUND_TRIPS.min(job.count) {
        round_trip(echo, body.clone()).await?;
    }
    let mut latencies = Latencies::new(MAX_LATENCY)?;
    let start = Instant::now();
    for _ in 0..job.count {
        let t0 = Instant::now();
        round_trip(echo, body.clone()).await?;
        latencies.record(t0.elapsed());
    }
    Ok(Measured {
        seconds: start.elapsed().as_secs_f64(),
        messages: latencies.len(),
        latency_us: Some(latencies.summary_us()),
        ..Measured::default()
    })
}

/// Cast ping-pong: spawns a pinger in its own group, waits until the echo actor
/// knows it, bounces the first payload and waits for the pinger's result.
async fn cast_pingpong(
    echo: &ActorRef<EchoMsg>,
    id: u64,
    job: &Job,
) -> Result<Measured, RemoteError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let latencies = Latencies::new(MAX_LATENCY)?;
    let (pinger, handle) = Actor::spawn(None, Pinger, (echo.clone(), id, *job, latencies, done_tx))
        .await
        .map_err(|e| failed("spawn the pinger")(e.to_string()))?;
    ractor::pg::join(pinger_group(id), vec![pinger.get_cell()]);
    let result = async {
        // ractor_cluster syncs the group to the peer asynchronously.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let known = echo
                .call(|port| EchoMsg::Knows(id, port), Some(CALL_TIMEOUT))
                .await
                .map_err(|e| failed("call")(e.to_string()))?;
            match known {
                CallResult::Success(true) => break,
                _ if Instant::now() >= deadline => {
                    return Err(failed("find the pinger")(format!(
                        "the peer never saw group {}",
                        pinger_group(id)
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        echo.cast(EchoMsg::Bounce(id, vec![0x42u8; job.payload]))
            .map_err(|e| failed("cast")(e.to_string()))?;
        done_rx
            .await
            .map_err(|e| failed("pinger")(e.to_string()))?
            .map_err(failed("pinger"))
    }
    .await;
    pinger.stop(None);
    let _ = handle.await;
    result
}

async fn oneway(sink: &ActorRef<SinkMsg>, job: &Job) -> Result<(), RemoteError> {
    let body = vec![0x42u8; job.payload];
    for i in 0..job.count {
        sink.cast(SinkMsg::Data(body.clone()))
            .map_err(|e| failed("cast")(e.to_string()))?;
        // Let the session's writer run on this 2-worker runtime, as granary's driver does.
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}
