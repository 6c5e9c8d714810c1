//! The `remote` scenario: two OS processes on 127.0.0.1, granary against a raw TCP
//! baseline, ractor_cluster and Distributed Erlang.
//!
//! The measuring process is this one; the peer is this same binary re-executed with
//! the hidden `remote-node` subcommand ([`peer`] starts it, kills it on drop, on
//! failure and on Ctrl-C; the peer also exits when its stdin closes, so it never
//! outlives the parent). The peer prints `listening ADDR`, takes `expect N` on stdin
//! and prints `done` when its receiving actor has counted N one-way messages, so
//! one-way throughput is counted at the receiver.
//!
//! Tests (full sizes; `--quick` shrinks them to seconds):
//! - `pingpong`: 20,000 round trips of 0 B, 1 KiB and 64 KiB payloads; an actor here
//!   asks an echo actor there and records every round trip in an HDR histogram.
//! - `oneway`: 1,000,000 messages of 16 B and 200,000 of 1 KiB, actor to remote actor
//!   (granary: `send().await`, which waits while the transport's queue is full; the
//!   peers: their one-way send); timed until the remote actor has counted the last one.
//! - `pairs`: 64 pairs ping-pong 16 B at once with P = 1, 2, 4 data connections and
//!   affinity on/off (bulk lane on; P = 1 and 4 with affinity also with it off), while one extra pair streams 1 MiB messages: the small pairs'
//!   p99 shows head-of-line blocking (seed 002 §4, Figs. 2–5).
//!
//! Baselines in the same run: `std-tcp` (blocking `std::net` echo and one-way
//! stream, a thread per connection, no runtime: the floor issue 18 measures against),
//! `raw-tcp` (the same frames over tokio TCP, no actors), `ractor_cluster`
//! (ractor's cluster layer, `pingpong` and `oneway`) and `erlang` (two Distributed
//! Erlang nodes, `erlang/remote_bench.erl`; skipped with a printed reason when `erl`
//! is missing). `raw-tcp` and `ractor_cluster` run twice: on 2-worker multi-thread
//! runtimes like granary, and with both processes on tokio current-thread runtimes
//! (each such measurement in a new driver process, [`child`], and a new peer), the
//! row's `setup`; ractor_cluster's `pingpong` also as two actors casting to each other
//! on current-thread runtimes (`current-thread-cast`, no `call`).
//!
//! `--observe` (issue 15) then measures granary's `oneway` sizes with metrics and
//! tracing off and on, alternately for `--rounds` rounds, each measurement in a new
//! driver process and a new peer ([`child`]).

mod child;
mod erlang;
mod granary;
mod node;
mod peer;
mod ractor_remote;
mod raw;
mod std_tcp;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::latency::HistogramError;
use crate::report::{ReportError, Reporter};
use crate::selection::dedup;
pub(crate) use child::{run_child, ChildArgs};
pub(crate) use node::{run_node, NodeArgs};

/// The largest round trip the `remote` scenario records exactly (one minute);
/// longer ones are clamped to it.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Options of `granary-bench remote`.
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// Frameworks to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<Framework>>,
    /// Tests to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    tests: Option<Vec<Test>>,
    /// Small sizes (seconds in all), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// After the other jobs, measure granary's `oneway` off and on alternately with
    /// metrics and tracing on in both processes (a Prometheus recorder, a tracing
    /// registry with INFO spans filtered out), each measurement in a new driver
    /// process and a new peer: rows with mode `observe-off` and `observe`, and per
    /// size the medians, their ratio and every value.
    #[arg(long)]
    observe: bool,
    /// With `--observe`: rounds of off/on measurements per `oneway` size.
    #[arg(long, default_value_t = 5, requires = "observe",
          value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// The frameworks compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Framework {
    /// granary-remote.
    Granary,
    /// Plain tokio TCP, no actors.
    RawTcp,
    /// Blocking `std::net` TCP, a thread per connection: no runtime, no actors.
    StdTcp,
    /// ractor with ractor_cluster, two node servers.
    #[serde(rename = "ractor_cluster")]
    #[value(name = "ractor_cluster")]
    RactorCluster,
    /// Distributed Erlang (OTP), two `erl` nodes.
    Erlang,
}

impl Framework {
    const ALL: [Framework; 5] = [
        Self::Granary,
        Self::StdTcp,
        Self::RawTcp,
        Self::RactorCluster,
        Self::Erlang,
    ];

    /// The setups this framework is measured in by default: `raw-tcp` and
    /// `ractor_cluster` also with both processes on current-thread runtimes.
    fn setups(self) -> &'static [Setup] {
        match self {
            Self::RawTcp => &[Setup::MultiThread, Setup::CurrentThread],
            Self::RactorCluster => &[
                Setup::MultiThread,
                Setup::CurrentThread,
                Setup::CurrentThreadCast,
            ],
            Self::StdTcp => &[Setup::Blocking],
            // The versioned encoding (the default) and postcard side by side, and
            // both processes on current-thread runtimes.
            Self::Granary => &[Setup::MultiThread, Setup::Postcard, Setup::CurrentThread],
            Self::Erlang => &[Setup::Beam],
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Granary => "granary",
            Self::RawTcp => "raw-tcp",
            Self::StdTcp => "std-tcp",
            Self::RactorCluster => "ractor_cluster",
            Self::Erlang => "erlang",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// How a framework runs in both processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Setup {
    /// tokio multi-thread runtimes with 2 workers.
    MultiThread,
    /// tokio current-thread runtimes: each process does its work on one thread.
    CurrentThread,
    /// ractor_cluster's `pingpong` as two actors casting to each other (no `call`,
    /// no reply port), on current-thread runtimes. `pingpong` only.
    CurrentThreadCast,
    /// Blocking sockets, a thread per connection, no runtime (`std-tcp`).
    Blocking,
    /// The Erlang VM's own schedulers.
    Beam,
    /// granary on multi-thread runtimes with both nodes offering protocol version 4
    /// only: postcard bodies, as before the versioned encoding (the `multi-thread` row
    /// of granary is the versioned encoding, the default). `pingpong` and `oneway`.
    Postcard,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Self::MultiThread => "multi-thread",
            Self::CurrentThread => "current-thread",
            Self::CurrentThreadCast => "current-thread-cast",
            Self::Blocking => "blocking",
            Self::Beam => "beam",
            Self::Postcard => "postcard",
        }
    }
}

impl Setup {
    /// Whether both processes run on current-thread runtimes.
    pub(crate) fn current_thread(self) -> bool {
        matches!(self, Self::CurrentThread | Self::CurrentThreadCast)
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The tests of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Test {
    /// Round trips with one echo actor.
    Pingpong,
    /// One-way messages counted at the receiver.
    Oneway,
    /// 64 small pairs beside one 1 MiB stream (head-of-line blocking).
    Pairs,
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Pingpong => "pingpong",
            Self::Oneway => "oneway",
            Self::Pairs => "pairs",
        })
    }
}

/// How big each test is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Round trips per payload in `pingpong`.
    pub(crate) pingpong: u64,
    /// Payloads of `pingpong`, in bytes.
    pub(crate) pingpong_payloads: &'static [usize],
    /// (messages, payload bytes) runs of `oneway`.
    pub(crate) oneway: &'static [(u64, usize)],
    /// Small pairs in `pairs`.
    pub(crate) pairs: usize,
    /// Round trips per small pair in `pairs`.
    pub(crate) pair_round_trips: u64,
    /// Limit for one measurement before it counts as hung.
    pub(crate) timeout: Duration,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        pingpong: 20_000,
        pingpong_payloads: &[0, 1024, 64 * 1024],
        oneway: &[(1_000_000, 16), (200_000, 1024)],
        pairs: 64,
        pair_round_trips: 300,
        timeout: Duration::from_secs(180),
    };
    const QUICK: Sizes = Sizes {
        pingpong: 500,
        pingpong_payloads: &[0, 1024, 64 * 1024],
        oneway: &[(20_000, 16), (4_000, 1024)],
        pairs: 64,
        pair_round_trips: 10,
        timeout: Duration::from_secs(30),
    };

    fn for_run(quick: bool) -> Sizes {
        if quick {
            Sizes::QUICK
        } else {
            Sizes::FULL
        }
    }
}

/// The (P, affinity, bulk lane) settings `pairs` sweeps.
const PAIRS_CONFIGS: [(usize, bool, bool); 8] = [
    (1, true, true),
    (2, true, true),
    (4, true, true),
    (1, false, true),
    (2, false, true),
    (4, false, true),
    (1, true, false),
    (4, true, false),
];

/// Issue 3's bar for `pairs`: the small pairs' p99 with P=4 + affinity at most this
/// fraction of P=1's.
const PAIRS_BAR: f64 = 0.5;

/// Size of each message of the bulk pair in `pairs`.
pub(crate) const BULK_BYTES: usize = 1 << 20;

/// Payload of the small pairs in `pairs`.
pub(crate) const PAIR_PAYLOAD: usize = 16;

/// Why the `remote` scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The async runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A peer process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which peer.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A peer process ended or closed its output before it answered.
    #[error("{what} exited while the bench waited for `{waiting_for}`{detail}")]
    PeerExited {
        /// Which peer.
        what: String,
        /// The line that was expected.
        waiting_for: String,
        /// Its exit status, when known.
        detail: String,
    },
    /// A peer did not answer in time: lost messages or a dead node.
    #[error("{what} did not print `{waiting_for}` within {after:?} (lost message or dead node)")]
    PeerTimeout {
        /// Which peer.
        what: String,
        /// The line that was expected.
        waiting_for: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A peer printed something the bench does not understand.
    #[error("{what} printed `{line}`, expected {expected}")]
    PeerProtocol {
        /// Which peer.
        what: String,
        /// What it printed.
        line: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Talking to a peer over its stdin failed.
    #[error("cannot write to {what}")]
    PeerStdin {
        /// Which peer.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A framework refused an operation.
    #[error("{framework}: {operation} failed: {reason}")]
    Framework {
        /// The framework under test.
        framework: Framework,
        /// What the harness tried to do.
        operation: &'static str,
        /// The framework's error, as text.
        reason: String,
    },
    /// A measurement did not finish in time.
    #[error("{framework}: `{test}` did not finish within {after:?}")]
    Timeout {
        /// The framework under test.
        framework: Framework,
        /// The test that hung.
        test: Test,
        /// The limit that was hit.
        after: Duration,
    },
    /// A raw TCP baseline (`raw-tcp`, `std-tcp`) failed.
    #[error("raw TCP baseline: {operation} failed")]
    RawIo {
        /// What the baseline did.
        operation: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The latency histogram could not be created.
    #[error("latency histogram: {0}")]
    Histogram(#[from] HistogramError),
    /// Preparing the Erlang side (temp dir, compiling the module) failed.
    #[error("erlang: {0}")]
    Erlang(String),
    /// Writing the results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl RemoteError {
    /// A framework error, kept as text.
    pub(crate) fn framework(
        framework: Framework,
        operation: &'static str,
        reason: impl fmt::Display,
    ) -> Self {
        Self::Framework {
            framework,
            operation,
            reason: reason.to_string(),
        }
    }
}

/// What one measurement produced.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// Seconds from the first send until the last message was received.
    pub(crate) seconds: f64,
    /// Messages (one-way) or round trips.
    pub(crate) messages: u64,
    /// p50, p99, p99.9, max latency in microseconds, for round-trip tests.
    pub(crate) latency_us: Option<[f64; 4]>,
    /// 1 MiB messages the bulk pair got out during `pairs`.
    pub(crate) bulk_messages: Option<u64>,
}

/// One output row.
#[derive(Debug, Clone, Serialize)]
struct RemoteRow {
    scenario: &'static str,
    test: Test,
    framework: Framework,
    /// How the framework ran in both processes.
    setup: Setup,
    mode: &'static str,
    nodes: u32,
    actors: u64,
    payload_bytes: u64,
    messages: u64,
    parallelism: Option<u64>,
    affinity: Option<bool>,
    bulk_lane: Option<bool>,
    seconds: f64,
    msgs_per_sec: f64,
    round_trips_per_sec: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    max_us: Option<f64>,
    bulk_mib: Option<u64>,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "test",
    "framework",
    "setup",
    "mode",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "parallelism",
    "affinity",
    "bulk_lane",
    "seconds",
    "msgs_per_sec",
    "round_trips_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "bulk_mib",
];

/// One configuration to measure: which framework, which test, which sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    /// The framework.
    pub(crate) framework: Framework,
    /// The test.
    pub(crate) test: Test,
    /// Payload of each message (small pairs' payload for `pairs`).
    pub(crate) payload: usize,
    /// Messages or round trips (per pair for `pairs`).
    pub(crate) count: u64,
    /// `pairs`: data connections, affinity and bulk lane.
    pub(crate) pairs: Option<(usize, bool, bool)>,
    /// How the framework runs in both processes.
    pub(crate) setup: Setup,
}

impl Job {
    /// "framework" or "framework (setup)" when the framework has several setups.
    fn label(&self) -> String {
        if self.framework.setups().len() > 1 {
            format!("{} ({})", self.framework, self.setup)
        } else {
            self.framework.to_string()
        }
    }
}

impl RemoteRow {
    /// "framework" or "framework (setup)" when the framework has several setups.
    fn label(&self) -> String {
        if self.framework.setups().len() > 1 {
            format!("{} ({})", self.framework, self.setup)
        } else {
            self.framework.to_string()
        }
    }
}

impl Job {
    fn row(&self, measured: &Measured, sizes: &Sizes) -> RemoteRow {
        let round_trip = matches!(self.test, Test::Pingpong | Test::Pairs);
        let per_sec = measured.messages as f64 / measured.seconds.max(f64::MIN_POSITIVE);
        let latency = measured.latency_us;
        RemoteRow {
            scenario: "remote",
            test: self.test,
            framework: self.framework,
            setup: self.setup,
            mode: "distributed",
            nodes: 2,
            actors: match self.test {
                Test::Pairs => 2 * (sizes.pairs as u64 + 1),
                _ => 2,
            },
            payload_bytes: self.payload as u64,
            messages: measured.messages,
            parallelism: self.pairs.map(|(p, _, _)| p as u64),
            affinity: self.pairs.map(|(_, a, _)| a),
            bulk_lane: self.pairs.map(|(_, _, b)| b),
            seconds: measured.seconds,
            // A round trip is two messages.
            msgs_per_sec: if round_trip { 2.0 * per_sec } else { per_sec },
            round_trips_per_sec: round_trip.then_some(per_sec),
            p50_us: latency.map(|l| l[0]),
            p99_us: latency.map(|l| l[1]),
            p999_us: latency.map(|l| l[2]),
            max_us: latency.map(|l| l[3]),
            bulk_mib: measured.bulk_messages,
        }
    }
}

/// The jobs of a run, in order.
fn jobs(frameworks: &[Framework], tests: &[Test], sizes: &Sizes) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &test in tests {
        for (framework, setup) in frameworks
            .iter()
            .flat_map(|&f| f.setups().iter().map(move |&s| (f, s)))
        {
            match test {
                Test::Pingpong => jobs.extend(sizes.pingpong_payloads.iter().map(|&payload| Job {
                    framework,
                    test,
                    payload,
                    count: sizes.pingpong,
                    pairs: None,
                    setup,
                })),
                // A one-way message is a cast in every setup.
                Test::Oneway if setup == Setup::CurrentThreadCast => {}
                Test::Oneway => jobs.extend(sizes.oneway.iter().map(|&(count, payload)| Job {
                    framework,
                    test,
                    payload,
                    count,
                    pairs: None,
                    setup,
                })),
                // Parallel connections and affinity are granary-remote's knobs; the
                // baselines have no equivalent.
                Test::Pairs if framework == Framework::Granary && setup == Setup::MultiThread => {
                    jobs.extend(PAIRS_CONFIGS.iter().map(|&config| Job {
                        framework,
                        test,
                        payload: PAIR_PAYLOAD,
                        count: sizes.pair_round_trips,
                        pairs: Some(config),
                        setup,
                    }))
                }
                Test::Pairs => {}
            }
        }
    }
    jobs
}

/// Runs `granary-bench remote`.
pub(crate) fn run(args: RemoteArgs) -> Result<(), RemoteError> {
    let frameworks = dedup(args.only.unwrap_or_else(|| Framework::ALL.to_vec()));
    let tests = dedup(
        args.tests
            .unwrap_or_else(|| vec![Test::Pingpong, Test::Oneway, Test::Pairs]),
    );
    let sizes = Sizes::for_run(args.quick);
    let jobs = jobs(&frameworks, &tests, &sizes);
    // `--observe`: granary's `oneway` jobs again, off and on, in fresh processes (the
    // default setup only: the overhead of metrics does not depend on the body encoding).
    let observed: Vec<Job> = jobs
        .iter()
        .filter(|j| {
            args.observe
                && j.framework == Framework::Granary
                && j.setup == Setup::MultiThread
                && j.test == Test::Oneway
        })
        .copied()
        .collect();
    let steps = jobs.len() + 2 * observed.len() * args.rounds as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?;
    runtime.block_on(async move {
        peer::kill_children_on_ctrl_c();
        let mut reporter = Reporter::new(COLUMNS, args.csv.as_deref(), steps as u64)?;
        let mut rows = Vec::new();
        let mut erlang = if frameworks.contains(&Framework::Erlang) {
            match erlang::Erlang::prepare() {
                Ok(erlang) => Some(erlang),
                Err(reason) => {
                    reporter
                        .progress()
                        .println(format!("erlang: skipped: {reason}"));
                    None
                }
            }
        } else {
            None
        };
        // One peer process per framework (and per `pairs` configuration), reused by
        // the jobs that follow while they need the same peer.
        let mut granary = granary::Session::idle();
        let mut raw = raw::Session::idle();
        let mut std_tcp = std_tcp::Session::idle();
        let mut ractor = ractor_remote::Session::idle();
        for job in &jobs {
            reporter.progress().set_message(format!(
                "{} {} {} B",
                job.label(),
                job.test,
                job.payload
            ));
            let measured = match job.framework {
                // Both processes on current-thread runtimes: a new driver process
                // (this one runs on a multi-thread runtime) and a new peer.
                _ if job.setup.current_thread() => {
                    Some(child::measure_in_child(job, &sizes, args.quick, false).await?)
                }
                Framework::Granary => Some(granary.measure(job, &sizes).await?),
                Framework::RawTcp => Some(raw.measure(job, &sizes).await?),
                Framework::StdTcp => Some(std_tcp.measure(job, &sizes).await?),
                Framework::RactorCluster => Some(ractor.measure(job, &sizes).await?),
                Framework::Erlang => match &mut erlang {
                    Some(erlang) => Some(erlang.measure(job, &sizes).await?),
                    None => None,
                },
            };
            if let Some(measured) = measured {
                let row = job.row(&measured, &sizes);
                reporter.emit(&row)?;
                rows.push(row);
            }
            reporter.progress().inc(1);
        }
        granary.close();
        raw.close();
        std_tcp.close();
        ractor.close();
        if args.observe && observed.is_empty() {
            reporter
                .progress()
                .println("observe: skipped: needs granary and the oneway test");
        }
        // Off, on, off, on...: every size in every round, each measurement in a new
        // driver process and a new peer (a recorder cannot be uninstalled).
        let mut on_off: Vec<child::OnOff> = observed
            .iter()
            .map(|job| child::OnOff {
                payload: job.payload,
                ..child::OnOff::default()
            })
            .collect();
        for round in 1..=args.rounds {
            for (job, values) in observed.iter().zip(&mut on_off) {
                for observe in [false, true] {
                    let (mode, values) = if observe {
                        ("observe", &mut values.on)
                    } else {
                        ("observe-off", &mut values.off)
                    };
                    reporter.progress().set_message(format!(
                        "{} {} {} B {mode} round {round}/{}",
                        job.framework, job.test, job.payload, args.rounds
                    ));
                    let measured =
                        child::measure_in_child(job, &sizes, args.quick, observe).await?;
                    let mut row = job.row(&measured, &sizes);
                    row.mode = mode;
                    values.push(row.msgs_per_sec);
                    reporter.emit(&row)?;
                    rows.push(row);
                    reporter.progress().inc(1);
                }
            }
        }
        reporter.finish();
        eprint!("{}", ratios(&rows));
        eprint!("{}", child::summary(&on_off));
        Ok(())
    })
}

/// Issue 18's bar: granary's 0 B round trip p50 at most this multiple of the
/// blocking-socket floor's, measured in the same run.
const FLOOR_BAR: f64 = 2.0;

/// Issue 18's bar: granary's one-way rate of 16 B messages, msgs/s.
const ONEWAY_BAR: f64 = 2_000_000.0;

/// The verdict lines of issue 18's remote bar (only for what this run measured).
fn floor_bars(rows: &[RemoteRow]) -> String {
    let distributed = |framework: Framework, test: Test, payload: u64| {
        rows.iter().find(|row| {
            row.framework == framework
                && row.test == test
                && row.payload_bytes == payload
                && row.mode == "distributed"
        })
    };
    let verdict = |met: bool| if met { "bar met" } else { "bar missed" };
    let mut out = String::new();
    // One set of lines per granary setup (versioned encoding, postcard, current-thread).
    let granary = |test: Test, payload: u64| {
        rows.iter().filter(move |row| {
            row.framework == Framework::Granary
                && row.test == test
                && row.payload_bytes == payload
                && row.mode == "distributed"
        })
    };
    for payload in [0, 1024, 64 * 1024] {
        let floor = distributed(Framework::StdTcp, Test::Pingpong, payload);
        for ours in granary(Test::Pingpong, payload) {
            let Some(floor) = floor else { break };
            for (label, value, base) in [
                ("p50", ours.p50_us, floor.p50_us),
                ("p99", ours.p99_us, floor.p99_us),
            ] {
                if let (Some(value), Some(base)) = (value, base) {
                    let ratio = value / base;
                    let bar = if payload == 0 && label == "p50" {
                        format!("; {} (<= {FLOOR_BAR:.1}x)", verdict(ratio <= FLOOR_BAR))
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        "floor: pingpong {payload} B {label} {}/std-tcp = {ratio:.2} \
                         ({value:.1} us vs {base:.1} us){bar}\n",
                        ours.label()
                    ));
                }
            }
        }
    }
    for payload in [16, 1024] {
        let floor = distributed(Framework::StdTcp, Test::Oneway, payload);
        for ours in granary(Test::Oneway, payload) {
            let Some(floor) = floor else { break };
            out.push_str(&format!(
                "floor: oneway {payload} B {}/std-tcp = {:.3} ({:.0} vs {:.0} msgs/s)\n",
                ours.label(),
                ours.msgs_per_sec / floor.msgs_per_sec,
                ours.msgs_per_sec,
                floor.msgs_per_sec
            ));
        }
    }
    for ours in granary(Test::Oneway, 16) {
        out.push_str(&format!(
            "bar: oneway 16 B {} {:.0} msgs/s; {} (>= {ONEWAY_BAR:.0})\n",
            ours.label(),
            ours.msgs_per_sec,
            verdict(ours.msgs_per_sec >= ONEWAY_BAR)
        ));
    }
    out
}

/// The comparisons the bar of issue 3 asks for, as text.
fn ratios(rows: &[RemoteRow]) -> String {
    let find =
        |test: Test, framework: Framework, payload: u64, pairs: Option<(u64, bool, bool)>| {
            rows.iter().find(|row| {
                row.test == test
                    && row.framework == framework
                    && row.payload_bytes == payload
                    && pairs.is_none_or(|(p, a, b)| {
                        row.parallelism == Some(p)
                            && row.affinity == Some(a)
                            && row.bulk_lane == Some(b)
                    })
            })
        };
    let mut out = String::new();
    // The `--observe` rows have their own summary.
    for row in rows
        .iter()
        .filter(|row| row.framework == Framework::Granary && row.mode == "distributed")
    {
        // Every baseline row of the same test and payload, in run order.
        let baselines = rows.iter().filter(|base| {
            base.framework != Framework::Granary
                && base.mode == "distributed"
                && base.test == row.test
                && base.payload_bytes == row.payload_bytes
        });
        match row.test {
            Test::Oneway => {
                for base in baselines {
                    out.push_str(&format!(
                        "oneway {} B: {} {:.0} msgs/s = {:.2}x {}\n",
                        row.payload_bytes,
                        row.label(),
                        row.msgs_per_sec,
                        row.msgs_per_sec / base.msgs_per_sec,
                        base.label()
                    ));
                }
            }
            Test::Pingpong => {
                for base in baselines {
                    if let (Some(p50), Some(base_p50)) = (row.p50_us, base.p50_us) {
                        out.push_str(&format!(
                            "pingpong {} B: {} p50 {p50:.1} us = {:.2}x {} \
                             ({base_p50:.1} us); round trips/s {:.2}x\n",
                            row.payload_bytes,
                            row.label(),
                            p50 / base_p50,
                            base.label(),
                            row.round_trips_per_sec.unwrap_or(0.0)
                                / base.round_trips_per_sec.unwrap_or(f64::MAX)
                        ));
                    }
                }
            }
            Test::Pairs => {}
        }
    }
    out.push_str(&floor_bars(rows));
    let p99 = |p, affinity, bulk| {
        find(
            Test::Pairs,
            Framework::Granary,
            PAIR_PAYLOAD as u64,
            Some((p, affinity, bulk)),
        )
        .and_then(|row| row.p99_us)
    };
    let on_off = |b: bool| if b { "on" } else { "off" };
    let verdict = |ratio: f64| {
        if ratio <= PAIRS_BAR {
            "bar met"
        } else {
            "bar missed"
        }
    };
    for bulk in [true, false] {
        for affinity in [true, false] {
            if let (Some(one), Some(four)) = (p99(1, affinity, bulk), p99(4, affinity, bulk)) {
                let ratio = four / one;
                out.push_str(&format!(
                    "pairs (affinity {}, bulk lane {}): small pairs' p99 with P=4 is {ratio:.2}x P=1 \
                     ({four:.0} us vs {one:.0} us){}\n",
                    on_off(affinity),
                    on_off(bulk),
                    if affinity {
                        format!("; {} (<= {PAIRS_BAR:.2}x)", verdict(ratio))
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    // The bulk lane gives P=1 a second connection too: against one shared connection.
    if let (Some(one), Some(four)) = (p99(1, true, false), p99(4, true, true)) {
        let ratio = four / one;
        out.push_str(&format!(
            "pairs: P=4 + affinity + bulk lane is {ratio:.2}x P=1 with one shared connection \
             (bulk lane off) ({four:.0} us vs {one:.0} us); {} (<= {PAIRS_BAR:.2}x)\n",
            verdict(ratio)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pingpong(framework: Framework, setup: Setup, p50_us: f64) -> RemoteRow {
        let job = Job {
            framework,
            test: Test::Pingpong,
            payload: 0,
            count: 1000,
            pairs: None,
            setup,
        };
        let measured = Measured {
            seconds: 1.0,
            messages: 1000,
            latency_us: Some([p50_us, 2.0 * p50_us, 3.0 * p50_us, 4.0 * p50_us]),
            bulk_messages: None,
        };
        job.row(&measured, &Sizes::for_run(true))
    }

    /// Every granary setup gets its own verdict against the one blocking-socket floor.
    #[test]
    fn the_floor_bar_is_judged_for_each_granary_setup() {
        let rows = [
            pingpong(Framework::Granary, Setup::MultiThread, 60.0),
            pingpong(Framework::Granary, Setup::CurrentThread, 30.0),
            pingpong(Framework::StdTcp, Setup::Blocking, 20.0),
        ];
        let text = floor_bars(&rows);
        assert!(
            text.contains(
                "floor: pingpong 0 B p50 granary (multi-thread)/std-tcp = 3.00 \
                 (60.0 us vs 20.0 us); bar missed"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "floor: pingpong 0 B p50 granary (current-thread)/std-tcp = 1.50 \
                 (30.0 us vs 20.0 us); bar met"
            ),
            "{text}"
        );
    }
}
