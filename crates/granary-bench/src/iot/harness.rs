//! The harness of the `iot` scenario: runs every server and every client as a child
//! process (this binary's hidden `iot-node` subcommand), kills them with SIGKILL by
//! MTTF and restarts them, and adds up the servers' `counts` lines.
//!
//! Every member is a [`ChildProcess`]: killed when dropped (so every error path cleans
//! up), killed on Ctrl-C, and exiting by itself when its stdin closes.
//!
//! Counting: each server incarnation prints cumulative counts every 100 ms and on a
//! `flush` request; the harness keeps the latest reading of every incarnation, so a
//! window's reports are the sum at its close minus the sum at its open. The window's
//! edges are `flush`es answered by every live server, so they are exact for the servers
//! that live through the window; a killed server's last < 100 ms of reports never
//! reach the collector, as in a real crash.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command as Process;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::chaos::Lifetimes;
use super::totals::{Counts, CountsLine, RoundTrips};
use super::{Config, IotBenchError};
use crate::child_process::ChildProcess;

/// How long a member may take to start (servers: and to see the whole cluster).
const START_LIMIT: Duration = Duration::from_secs(60);

/// How long the servers may take to answer a `flush`.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// A line a member printed: (member, incarnation, text).
type Line = (usize, u64, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Server,
    Client,
}

/// What happens to a member next.
#[derive(Debug, Clone, Copy)]
enum Event {
    Kill,
    Restart,
}

/// One server or client slot, across its incarnations.
struct Member {
    kind: Kind,
    /// A client's device id.
    device: String,
    /// A server's listen address, once known (a restarted server takes it back).
    addr: Option<SocketAddr>,
    process: Option<ChildProcess>,
    incarnation: u64,
    /// When the running process started.
    started: Instant,
    lifetimes: Option<Lifetimes>,
    next: Option<(Instant, Event)>,
    /// What the current incarnation said.
    up: usize,
    ready: bool,
    flushed: u64,
}

/// Kills, restarts and uptime during one row.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ChaosCounts {
    pub(super) client_kills: u64,
    pub(super) server_kills: u64,
    /// Member processes that exited by themselves (a restart that failed).
    pub(super) failed_restarts: u64,
    /// Seconds of client process life inside the window, over every client.
    pub(super) client_alive_secs: f64,
}

/// What one window measured.
pub(super) struct Window {
    pub(super) counts: Counts,
    pub(super) seconds: f64,
    pub(super) round_trips: RoundTrips,
    pub(super) chaos: ChaosCounts,
}

/// The member processes of one row.
pub(super) struct Harness {
    config: Config,
    exe: PathBuf,
    members: Vec<Member>,
    tx: mpsc::UnboundedSender<Line>,
    rx: mpsc::UnboundedReceiver<Line>,
    /// Latest cumulative counts of every (member, incarnation).
    counts: HashMap<(usize, u64), Counts>,
    /// Round trips since the window opened (`None`: not recording).
    round_trips: Option<RoundTrips>,
    window_open: Option<Instant>,
    chaos: ChaosCounts,
    next_flush: u64,
}

impl Harness {
    /// Starts the servers (one cluster), then the clients, and waits until every
    /// device is tracked.
    pub(super) async fn start(config: Config) -> Result<Self, IotBenchError> {
        let exe = std::env::current_exe().map_err(IotBenchError::Runtime)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let member = |kind, device: String| Member {
            kind,
            device,
            addr: None,
            process: None,
            incarnation: 0,
            started: now,
            lifetimes: None,
            next: None,
            up: 0,
            ready: false,
            flushed: 0,
        };
        let mut members: Vec<Member> = (0..config.servers)
            .map(|_| member(Kind::Server, String::new()))
            .collect();
        let devices = config.servers * config.clients_per_server;
        members.extend((0..devices).map(|i| member(Kind::Client, format!("device-{i}"))));
        let mut harness = Self {
            config,
            exe,
            members,
            tx,
            rx,
            counts: HashMap::new(),
            round_trips: None,
            window_open: None,
            chaos: ChaosCounts::default(),
            next_flush: 1,
        };

        // Servers: the first forms the cluster, the others join through it.
        for i in 0..config.servers {
            harness.spawn(i)?;
            harness
                .wait_for(&format!("server {i} to listen"), |h| h.members[i].addr)
                .await?;
        }
        let servers = config.servers;
        harness
            .wait_for("the servers to form one cluster", |h| {
                h.servers().all(|m| m.up == servers).then_some(())
            })
            .await
            .map_err(|e| match e {
                IotBenchError::Timeout(_) => IotBenchError::NoCluster,
                e => e,
            })?;
        // From now on the servers drop client traffic (never each other's).
        let list = harness.server_list().join(",");
        for i in 0..servers {
            harness.send(i, &format!("servers {list}"));
        }

        // Clients: all tracked before the window opens.
        for i in servers..harness.members.len() {
            harness.spawn(i)?;
        }
        harness
            .wait_for("every client to be tracked", |h| {
                h.members
                    .iter()
                    .filter(|m| m.kind == Kind::Client)
                    .all(|m| m.ready)
                    .then_some(())
            })
            .await?;

        // Failure injection by MTTF (seed 003 §5.4).
        let now = Instant::now();
        for (i, member) in harness.members.iter_mut().enumerate() {
            let (mttf, salt) = match member.kind {
                Kind::Server => (config.server_mttf, !config.seed),
                Kind::Client => (config.client_mttf, config.seed),
            };
            if mttf > 0.0 {
                let mut lifetimes =
                    Lifetimes::new(Duration::from_secs_f64(mttf), salt ^ ((i as u64) << 8));
                member.next = Some((now + lifetimes.next(), Event::Kill));
                member.lifetimes = Some(lifetimes);
            }
        }
        Ok(harness)
    }

    /// Runs the failure injection for the warm-up, then measures one window.
    pub(super) async fn measure(&mut self) -> Result<Window, IotBenchError> {
        let warmed = Instant::now() + Duration::from_secs_f64(self.config.warmup);
        self.run_until(warmed).await;
        let open = self.flush().await;
        let opened = Instant::now();
        self.round_trips = Some(RoundTrips::new());
        self.window_open = Some(opened);
        self.chaos = ChaosCounts::default();
        self.run_until(opened + Duration::from_secs_f64(self.config.seconds))
            .await;
        let close = self.flush().await;
        let closed = Instant::now();
        for i in 0..self.members.len() {
            if self.members[i].process.is_some() {
                self.credit(i, closed);
            }
        }
        Ok(Window {
            counts: close.minus(open),
            seconds: (closed - opened).as_secs_f64(),
            round_trips: self.round_trips.take().unwrap_or_else(RoundTrips::new),
            chaos: self.chaos,
        })
    }

    fn servers(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.kind == Kind::Server)
    }

    fn server_list(&self) -> Vec<String> {
        self.servers()
            .filter_map(|m| m.addr.map(|a| a.to_string()))
            .collect()
    }

    /// Starts a new incarnation of member `i`.
    fn spawn(&mut self, i: usize) -> Result<(), IotBenchError> {
        let config = self.config;
        let incarnation = self.members[i].incarnation + 1;
        let seed = config.seed ^ ((i as u64) << 8) ^ (incarnation << 24);
        let mut command = Process::new(&self.exe);
        command.arg("iot-node").arg("--seed").arg(seed.to_string());
        command.arg("--drop").arg(config.drop.to_string());
        command
            .arg("--delay-us")
            .arg(config.delay.as_micros().to_string());
        let server_list = self.server_list();
        let member = &self.members[i];
        match member.kind {
            Kind::Server => {
                command
                    .arg("--role")
                    .arg("server")
                    .arg("--resend-ms")
                    .arg(config.resend.as_millis().to_string());
                match member.addr {
                    // A restart: its old address, joining through the others.
                    Some(addr) => {
                        let others: Vec<String> = server_list
                            .iter()
                            .filter(|a| **a != addr.to_string())
                            .cloned()
                            .collect();
                        command.arg("--listen").arg(addr.to_string());
                        command.arg("--servers").arg(server_list.join(","));
                        if !others.is_empty() {
                            command.arg("--seeds").arg(others.join(","));
                        }
                    }
                    None => {
                        if let Some(first) = server_list.first() {
                            command.arg("--seeds").arg(first);
                        }
                    }
                }
            }
            Kind::Client => {
                command
                    .arg("--role")
                    .arg("client")
                    .arg("--device")
                    .arg(&member.device)
                    .arg("--heartbeat-ms")
                    .arg(config.heartbeat.as_millis().to_string())
                    .arg("--seeds")
                    .arg(server_list.join(","));
            }
        }
        let tx = self.tx.clone();
        let child =
            ChildProcess::spawn(command, move |line| tx.send((i, incarnation, line)).is_ok())
                .map_err(IotBenchError::Spawn)?;
        let member = &mut self.members[i];
        member.process = Some(child);
        member.incarnation = incarnation;
        member.started = Instant::now();
        member.up = 0;
        member.ready = false;
        member.flushed = 0;
        Ok(())
    }

    fn send(&mut self, i: usize, line: &str) {
        if let Some(process) = self.members[i].process.as_mut() {
            // A member that died is noticed by its exit status.
            let _ = process.send(line);
        }
    }

    /// Files one line of a member.
    fn take(&mut self, (i, incarnation, text): Line) {
        if let Some(line) = CountsLine::parse(&text) {
            let entry = self.counts.entry((i, incarnation)).or_default();
            *entry = entry.latest(line.counts);
            if let Some(round_trips) = self.round_trips.as_mut() {
                if !round_trips.add_encoded(line.round_trips) {
                    eprintln!("iot: malformed round trips from member {i}");
                }
            }
            let member = &mut self.members[i];
            if member.incarnation == incarnation {
                member.flushed = member.flushed.max(line.id);
            }
            return;
        }
        let member = &mut self.members[i];
        if member.incarnation != incarnation {
            return;
        }
        if let Some(addr) = text.strip_prefix("listening ") {
            if let Ok(addr) = addr.parse() {
                member.addr = Some(addr);
            }
        } else if let Some(up) = text.strip_prefix("up ") {
            member.up = up.parse().unwrap_or(0);
        } else if text == "ready" {
            member.ready = true;
        } else {
            eprintln!("iot: member {i}: {text}");
        }
    }

    /// Reads lines until `found` gives something; fails after [`START_LIMIT`] or when
    /// a member process exits.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        mut found: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T, IotBenchError> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(value) = found(self) {
                return Ok(value);
            }
            if let Some((i, status)) = self.exited().next() {
                return Err(IotBenchError::Exited {
                    member: i,
                    status,
                    waiting_for: what.to_string(),
                });
            }
            if Instant::now() >= deadline {
                return Err(IotBenchError::Timeout(what.to_string()));
            }
            self.receive((Instant::now() + Duration::from_millis(200)).min(deadline))
                .await;
        }
    }

    /// Files the next lines to arrive, waiting for them until `until` at most.
    async fn receive(&mut self, until: Instant) {
        if let Ok(Some(line)) = tokio::time::timeout_at(until, self.rx.recv()).await {
            self.take(line);
            while let Ok(line) = self.rx.try_recv() {
                self.take(line);
            }
        }
    }

    /// Members whose running process has exited, with its status.
    fn exited(&self) -> impl Iterator<Item = (usize, String)> + '_ {
        self.members.iter().enumerate().filter_map(|(i, m)| {
            let status = m.process.as_ref()?.exit_status()?;
            Some((i, status.to_string()))
        })
    }

    /// Files lines and injects failures until `until`.
    async fn run_until(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            self.reap(now);
            self.due(now);
            if now >= until {
                return;
            }
            let next = self
                .members
                .iter()
                .filter_map(|m| m.next.map(|(at, _)| at))
                .chain([until, now + Duration::from_millis(200)])
                .min()
                .unwrap_or(until);
            self.receive(next).await;
        }
    }

    /// Members that died by themselves (a restarted server that could not bind, a
    /// client that could not register) stay dead until their next life.
    fn reap(&mut self, now: Instant) {
        let dead: Vec<(usize, String)> = self.exited().collect();
        for (i, status) in dead {
            eprintln!(
                "iot: {:?} {i} exited ({status}); it stays down until its next restart",
                self.members[i].kind
            );
            self.credit(i, now);
            self.members[i].process = None;
            self.chaos.failed_restarts += 1;
        }
    }

    /// Kills and restarts whatever is due.
    fn due(&mut self, now: Instant) {
        let restart_delay = Duration::from_secs_f64(self.config.restart_delay);
        for i in 0..self.members.len() {
            let Some((at, event)) = self.members[i].next else {
                continue;
            };
            if at > now {
                continue;
            }
            match event {
                Event::Kill => {
                    if let Some(mut process) = self.members[i].process.take() {
                        process.kill();
                        self.credit(i, now);
                        match self.members[i].kind {
                            Kind::Server => self.chaos.server_kills += 1,
                            Kind::Client => self.chaos.client_kills += 1,
                        }
                    }
                    self.members[i].next = Some((now + restart_delay, Event::Restart));
                }
                Event::Restart => {
                    if self.spawn(i).is_err() {
                        self.chaos.failed_restarts += 1;
                    }
                    let member = &mut self.members[i];
                    let life = member.lifetimes.as_mut().map(Lifetimes::next);
                    member.next = life.map(|life| (now + life, Event::Kill));
                }
            }
        }
    }

    /// Adds member `i`'s life up to `until` inside the window to the client uptime.
    fn credit(&mut self, i: usize, until: Instant) {
        let member = &self.members[i];
        if let (Kind::Client, Some(open)) = (member.kind, self.window_open) {
            let from = member.started.max(open);
            if until > from {
                self.chaos.client_alive_secs += (until - from).as_secs_f64();
            }
        }
    }

    /// Asks every live server for its counts now and waits for the answers; returns
    /// the sum over every incarnation so far.
    async fn flush(&mut self) -> Counts {
        let id = self.next_flush;
        self.next_flush += 1;
        for i in 0..self.members.len() {
            if self.members[i].kind == Kind::Server {
                self.send(i, &format!("flush {id}"));
            }
        }
        let deadline = Instant::now() + FLUSH_LIMIT;
        loop {
            let pending = self.members.iter().any(|m| {
                m.kind == Kind::Server
                    && m.flushed < id
                    && m.process
                        .as_ref()
                        .is_some_and(|p| p.exit_status().is_none())
            });
            if !pending {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("iot: a server did not answer a flush within {FLUSH_LIMIT:?}");
                break;
            }
            self.receive((Instant::now() + Duration::from_millis(100)).min(deadline))
                .await;
        }
        self.counts
            .values()
            .fold(Counts::default(), |sum, c| sum.add(*c))
    }
}
