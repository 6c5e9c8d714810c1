//! The `local` scenario: in-process baselines of granary against ractor, actix and
//! kameo, each written idiomatically with its own tell/ask API and default mailbox.
//!
//! Tests (sizes of a full run; `--quick` shrinks them to seconds):
//! - `tell`: one sender, 2,000,000 `u64` messages to one actor that counts them;
//!   timed from the first send until the actor has counted the last.
//! - `pingpong`: two actors bounce one message 200,000 times; round trips/s and the
//!   latency of every round trip (p50/p99/p99.9/max).
//! - `fanin`: 8 senders, one receiver, 2,000,000 messages in all.
//! - `spawn`: spawn 100,000 actors, ask each one question, stop them all; actors/s
//!   and resident bytes per idle actor (RSS growth while all are idle / count).
//! - `activate` (granary only, virtual actors): 50,000 new identities activated by
//!   their first `ask`, on one node and on three in-process nodes; two rows
//!   (`nodes` 1 and 3), activations/s in `actors_per_sec` (see `local/activate.rs`).
//!
//! Every measurement runs in a fresh child process of this binary (the hidden
//! `local-child` subcommand), so no framework inherits the heap, allocator state
//! or leftover threads of another: the RSS figure of `spawn` stays clean, and the
//! throughput of one framework doesn't depend on which one ran before it.
//! Every test runs `--runs` times (default 3) per framework, interleaved across
//! frameworks so machine noise is spread evenly; each row reports per-field medians.
//! The tokio-based frameworks run on a multi-thread runtime with 2 workers; actix
//! runs on its own `System` plus one extra `Arbiter` thread, as actix users do.
//!
//! Each framework is also measured in its fastest idiomatic configuration ([`Setup`]),
//! as extra rows beside those: granary, ractor and kameo on a tokio current-thread
//! runtime (`#[tokio::main(flavor = "current_thread")]`),
//! actix's `tell` and `fanin` with senders and receiver on the System arbiter (its
//! `pingpong` and `spawn` run there already), and granary's `tell` and `fanin` with the
//! senders on a current-thread runtime and the actor system on a one-worker runtime of
//! its own (`actor-runtime`, two threads: what actix's cross-arbiter setup is). The ratio lines compare each granary
//! setup with the best peer row of each test, whichever setup that came from.

mod activate;
mod actix;
mod granary;
mod kameo;
mod ractor;
mod support;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::latency::{HistogramError, Latencies};
use crate::report::{ReportError, Reporter};
use crate::selection::dedup;
pub(crate) use support::median;

/// Options of `granary-bench local`.
#[derive(Debug, Args)]
pub(crate) struct LocalArgs {
    /// Frameworks to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<Framework>>,
    /// Tests to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    tests: Option<Vec<Test>>,
    /// Runs per test and framework; rows report the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Small sizes (seconds in all), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Worker threads of the tokio runtime that granary, ractor and kameo run on
    /// (actix always runs on its System thread plus one Arbiter thread).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also measure granary with metrics and tracing on (a Prometheus recorder, a
    /// tracing registry with INFO spans filtered out): rows with mode `observe`
    /// beside granary's `local` rows, and their ratio.
    #[arg(long)]
    observe: bool,
}

/// Options of the hidden `local-child` subcommand: one measurement.
#[derive(Debug, Args)]
pub(crate) struct ChildArgs {
    /// The framework to measure.
    #[arg(long)]
    framework: Framework,
    /// The test to run.
    #[arg(long)]
    test: Test,
    /// Use the `--quick` sizes.
    #[arg(long)]
    quick: bool,
    /// Worker threads of the tokio runtime.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: u32,
    /// Metrics and tracing on ([`crate::observe`]).
    #[arg(long)]
    observe: bool,
    /// How the framework is run (default: its first setup, as before setups existed).
    #[arg(long)]
    setup: Option<Setup>,
}

/// How a framework is run in one row: its runtime and thread placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Setup {
    /// A tokio multi-thread runtime with `--workers` workers (granary, ractor, kameo).
    MultiThread,
    /// A tokio current-thread runtime: the whole test on one thread (granary, ractor,
    /// kameo).
    CurrentThread,
    /// actix: senders on the System arbiter, the receiver on a second `Arbiter`
    /// thread (`tell`, `fanin`).
    CrossArbiter,
    /// actix: senders and receivers all on the System arbiter, one thread.
    SameArbiter,
    /// granary: senders on the application's current-thread runtime, the actor
    /// system on a runtime of its own with one worker
    /// ([`SystemBuilder::runtime`](::granary::prelude::ActorSystem::builder)): two
    /// threads, as actix's cross-arbiter (`tell`, `fanin`).
    ActorRuntime,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Self::MultiThread => "multi-thread",
            Self::CurrentThread => "current-thread",
            Self::CrossArbiter => "cross-arbiter",
            Self::SameArbiter => "same-arbiter",
            Self::ActorRuntime => "actor-runtime",
        }
    }

    /// Threads doing the work, for the row's `workers` field.
    fn threads(self, workers: u32) -> u32 {
        match self {
            Self::MultiThread | Self::CrossArbiter => workers,
            Self::CurrentThread | Self::SameArbiter => 1,
            Self::ActorRuntime => 2,
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The actor frameworks compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Framework {
    /// granary itself.
    Granary,
    /// ractor (slawlor/ractor).
    Ractor,
    /// actix.
    Actix,
    /// kameo (tqwewe/kameo).
    Kameo,
}

impl Framework {
    const ALL: [Framework; 4] = [Self::Granary, Self::Ractor, Self::Actix, Self::Kameo];

    /// The setups `test` runs this framework in: today's first, then the peer's
    /// fastest idiomatic one. actix's `pingpong` and `spawn` always ran on the
    /// System arbiter, so they have that one setup only.
    fn setups(self, test: Test) -> &'static [Setup] {
        match (self, test) {
            // Virtual actors are measured as users run a node: multi-thread.
            (Self::Granary, Test::Activate) => &[Setup::MultiThread],
            (Self::Granary, Test::Tell | Test::Fanin) => &[
                Setup::MultiThread,
                Setup::CurrentThread,
                Setup::ActorRuntime,
            ],
            (Self::Granary | Self::Ractor | Self::Kameo, _) => {
                &[Setup::MultiThread, Setup::CurrentThread]
            }
            (Self::Actix, Test::Tell | Test::Fanin) => &[Setup::CrossArbiter, Setup::SameArbiter],
            (Self::Actix, _) => &[Setup::SameArbiter],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Granary => "granary",
            Self::Ractor => "ractor",
            Self::Actix => "actix",
            Self::Kameo => "kameo",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The tests of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Test {
    /// One sender, one counting actor.
    Tell,
    /// Two actors bouncing one message.
    Pingpong,
    /// Many senders, one receiver.
    Fanin,
    /// Spawn, ask once, stop.
    Spawn,
    /// New virtual-actor identities activated per second (granary only).
    Activate,
}

impl Test {
    const ALL: [Test; 5] = [
        Self::Tell,
        Self::Pingpong,
        Self::Fanin,
        Self::Spawn,
        Self::Activate,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Tell => "tell",
            Self::Pingpong => "pingpong",
            Self::Fanin => "fanin",
            Self::Spawn => "spawn",
            Self::Activate => "activate",
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// How big each test is, and how long any one run may take before it counts as
/// hung (a lost message or a dead actor).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Messages in `tell`.
    pub(crate) tell: u64,
    /// Round trips in `pingpong`.
    pub(crate) pingpong: u64,
    /// Senders in `fanin`.
    pub(crate) fanin_senders: u64,
    /// Messages in `fanin`, over all senders.
    pub(crate) fanin: u64,
    /// Actors in `spawn`.
    pub(crate) spawn: u64,
    /// New identities in `activate` (each cluster size).
    pub(crate) activate: u64,
    /// Limit for one run of one test.
    pub(crate) timeout: Duration,
}

impl Sizes {
    /// The sizes of a full run, or of a `--quick` one.
    fn for_run(quick: bool) -> Sizes {
        if quick {
            Sizes::QUICK
        } else {
            Sizes::FULL
        }
    }

    const FULL: Sizes = Sizes {
        tell: 2_000_000,
        pingpong: 200_000,
        fanin_senders: 8,
        fanin: 2_000_000,
        spawn: 100_000,
        activate: 50_000,
        timeout: Duration::from_secs(300),
    };
    const QUICK: Sizes = Sizes {
        tell: 20_000,
        pingpong: 2_000,
        fanin_senders: 8,
        fanin: 20_000,
        spawn: 2_000,
        activate: 2_000,
        timeout: Duration::from_secs(60),
    };
}

/// Why the `local` scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    /// The async runtime could not be built.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A framework refused an operation (spawn, send, ask, stop).
    #[error("{framework}: {operation} failed: {reason}")]
    Framework {
        /// The framework under test.
        framework: Framework,
        /// What the harness tried to do.
        operation: &'static str,
        /// The framework's own error, as text.
        reason: String,
    },
    /// A run did not finish in time: a message was lost or an actor died.
    #[error("{framework}: `{test}` did not finish within {after:?} (lost message or dead actor)")]
    Timeout {
        /// The framework under test.
        framework: Framework,
        /// The test that hung.
        test: Test,
        /// The limit that was hit.
        after: Duration,
    },
    /// The counted messages don't add up to what was sent.
    #[error("{framework}: received messages sum to {sum}, sent {expected}")]
    WrongSum {
        /// The framework under test.
        framework: Framework,
        /// What the receiver added up.
        sum: u64,
        /// What the senders sent.
        expected: u64,
    },
    /// The resident set size could not be read from /proc.
    #[error("cannot read the resident set size from /proc/self/status")]
    Rss(#[source] std::io::Error),
    /// /proc/self/status had no parsable `VmRSS` line.
    #[error("no VmRSS line in /proc/self/status")]
    RssMissing,
    /// The task running a test panicked or was cancelled.
    #[error("the test task failed: {0}")]
    Task(String),
    /// The latency histogram could not be created.
    #[error("latency histogram: {0}")]
    Histogram(#[from] HistogramError),
    /// The spawn child process could not be started or failed.
    #[error("{framework}: spawn child process failed: {reason}")]
    Child {
        /// The framework under test.
        framework: Framework,
        /// What went wrong.
        reason: String,
    },
    /// Writing the results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl LocalError {
    /// A framework error, kept as text (peers' error types differ and some are
    /// generic over the unsent message).
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

/// What one spawn run measured (the child prints this as JSON).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct SpawnSample {
    /// Spawn + one ask each + stop all, in seconds.
    pub(crate) seconds: f64,
    /// Of which spawning all actors.
    pub(crate) spawn_seconds: f64,
    /// Of which asking each actor once.
    pub(crate) ask_seconds: f64,
    /// Of which stopping all actors and waiting for their end.
    pub(crate) stop_seconds: f64,
    /// RSS once all actors were spawned and had answered, minus RSS before.
    pub(crate) rss_growth_bytes: i64,
    /// RSS before the first spawn.
    pub(crate) rss_before_bytes: u64,
    /// RSS once every actor has stopped.
    pub(crate) rss_stopped_bytes: u64,
    /// The same after `malloc_trim(0)`.
    pub(crate) rss_trimmed_bytes: u64,
}

/// One measured run of one test, as the child process prints it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Sample {
    /// `tell` / `fanin`: time until the last message was counted.
    Throughput {
        /// Seconds from the first send until the last message was counted.
        seconds: f64,
    },
    /// `pingpong`: total time and the latency of the round trips.
    Latency {
        /// Seconds from the first ping until the last pong.
        seconds: f64,
        /// Round trips recorded.
        round_trips: u64,
        /// Latency percentiles and maximum, in microseconds.
        p50_us: f64,
        /// 99th percentile.
        p99_us: f64,
        /// 99.9th percentile.
        p999_us: f64,
        /// Maximum.
        max_us: f64,
    },
    /// `spawn`.
    Spawn(SpawnSample),
    /// `activate`: rates on one and three nodes and with the file store, and memory.
    Activate(activate::ActivateSample),
}

/// One output row (the fields of `COLUMNS`).
#[derive(Debug, Serialize)]
struct LocalRow {
    scenario: &'static str,
    test: Test,
    framework: Framework,
    /// How the framework ran (runtime flavor, actix arbiters).
    setup: Setup,
    mode: &'static str,
    nodes: u32,
    actors: u64,
    senders: Option<u64>,
    payload_bytes: u32,
    messages: u64,
    runs: u32,
    workers: u32,
    seconds: f64,
    msgs_per_sec: f64,
    round_trips_per_sec: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    max_us: Option<f64>,
    actors_per_sec: Option<f64>,
    bytes_per_actor: Option<f64>,
    spawn_s: Option<f64>,
    ask_s: Option<f64>,
    stop_s: Option<f64>,
    /// `activate`: RSS growth per active virtual actor (state excluded).
    bytes_per_activation: Option<f64>,
    /// `spawn` / `activate` (one node, memory store): RSS before, in MB.
    rss_before_mb: Option<f64>,
    /// `activate`: RSS after a warm-up's identities were activated and passivated
    /// and the heap trimmed (the warm baseline, `local/activate.rs`).
    rss_warm_mb: Option<f64>,
    /// RSS with every actor or identity active.
    rss_active_mb: Option<f64>,
    /// RSS after every actor stopped / every identity passivated.
    rss_after_mb: Option<f64>,
    /// The same after `malloc_trim(0)`.
    rss_after_trim_mb: Option<f64>,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "test",
    "framework",
    "setup",
    "mode",
    "nodes",
    "actors",
    "senders",
    "payload_bytes",
    "messages",
    "runs",
    "workers",
    "seconds",
    "msgs_per_sec",
    "round_trips_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "actors_per_sec",
    "bytes_per_actor",
    "spawn_s",
    "ask_s",
    "stop_s",
    "bytes_per_activation",
    "rss_before_mb",
    "rss_warm_mb",
    "rss_active_mb",
    "rss_after_mb",
    "rss_after_trim_mb",
];

/// Runs `granary-bench local`.
pub(crate) fn run(args: LocalArgs) -> Result<(), LocalError> {
    let frameworks = dedup(args.only.unwrap_or_else(|| Framework::ALL.to_vec()));
    let tests = dedup(args.tests.unwrap_or_else(|| Test::ALL.to_vec()));
    let sizes = Sizes::for_run(args.quick);
    let observed = usize::from(args.observe && frameworks.contains(&Framework::Granary));
    let setups: usize = tests
        .iter()
        .map(|&test| {
            frameworks
                .iter()
                .map(|f| f.setups(test).len())
                .sum::<usize>()
                + observed
        })
        .sum();
    let steps = setups as u64 * u64::from(args.runs);
    let mut reporter = Reporter::new(COLUMNS, args.csv.as_deref(), steps)?;
    let mut rows = Vec::new();
    for &test in &tests {
        // (framework, setup, observe on, samples); granary's observed runs and the
        // peers' other setups interleave with every other run, in alternating order,
        // so machine noise spreads over all of them.
        let mut samples: Vec<(Framework, Setup, bool, Vec<Sample>)> = frameworks
            .iter()
            .filter(|&&f| test != Test::Activate || f == Framework::Granary)
            .flat_map(|&f| {
                let observe = args.observe && f == Framework::Granary && test != Test::Activate;
                f.setups(test)
                    .iter()
                    .map(move |&setup| (f, setup, false, Vec::new()))
                    .chain(observe.then(|| (f, Setup::MultiThread, true, Vec::new())))
            })
            .collect();
        for run in 1..=args.runs {
            // Every other run goes through them backwards, so no measurement always
            // runs right after the same other one (granary on after granary off, say).
            let forward = run % 2 == 1;
            let order: Vec<usize> = if forward {
                (0..samples.len()).collect()
            } else {
                (0..samples.len()).rev().collect()
            };
            for index in order {
                let (framework, setup, observe, runs) = &mut samples[index];
                let label = if *observe { "+observe" } else { "" };
                reporter.progress().set_message(format!(
                    "{test} {framework} ({setup}){label} run {run}/{}",
                    args.runs
                ));
                runs.push(measure_in_child(
                    *framework,
                    *setup,
                    test,
                    args.quick,
                    args.workers,
                    *observe,
                )?);
                reporter.progress().inc(1);
            }
        }
        for (framework, setup, observe, runs) in samples {
            let summaries = if test == Test::Activate {
                Vec::from(summarize_activate(&sizes, args.runs, runs))
            } else {
                vec![summarize(framework, test, &sizes, args.runs, runs)]
            };
            for mut row in summaries {
                if observe {
                    row.mode = "observe";
                }
                row.setup = setup;
                row.workers = setup.threads(args.workers);
                reporter.emit(&row)?;
                rows.push(row);
            }
        }
    }
    reporter.finish();
    eprint!("{}", ratios(&rows));
    eprint!("{}", observe_ratios(&rows));
    Ok(())
}

/// granary with metrics and tracing on, against off, per test (`--observe`).
fn observe_ratios(rows: &[LocalRow]) -> String {
    let mut out = String::new();
    for on in rows.iter().filter(|r| r.mode == "observe") {
        let off = rows.iter().find(|r| {
            r.mode == "local"
                && r.framework == on.framework
                && r.test == on.test
                && r.setup == on.setup
        });
        if let Some(off) = off.filter(|off| off.msgs_per_sec > 0.0) {
            out.push_str(&format!(
                "{} observe/off: {:.0} / {:.0} msgs/s = {:.3}\n",
                on.test,
                on.msgs_per_sec,
                off.msgs_per_sec,
                on.msgs_per_sec / off.msgs_per_sec
            ));
        }
    }
    out
}

/// Runs `granary-bench local-child`: one measurement in this process, printed
/// as one JSON line for the parent.
pub(crate) fn run_child(args: ChildArgs) -> Result<(), LocalError> {
    support::set_workers(args.workers as usize);
    let setup = args
        .setup
        .unwrap_or_else(|| args.framework.setups(args.test)[0]);
    if !args.framework.setups(args.test).contains(&setup) {
        return Err(LocalError::framework(
            args.framework,
            "setup",
            format!("`{}` has no {setup} setup", args.test),
        ));
    }
    // The senders of `actor-runtime` run on the current-thread runtime too.
    support::set_current_thread(matches!(setup, Setup::CurrentThread | Setup::ActorRuntime));
    if args.observe {
        crate::observe::install();
    }
    let sample = measure(
        args.framework,
        setup,
        args.test,
        &Sizes::for_run(args.quick),
    )?;
    let line = serde_json::to_string(&sample).map_err(ReportError::from)?;
    println!("{line}");
    Ok(())
}

/// One framework's implementation of the four tests.
struct Suite {
    tell: fn(u64, Duration) -> Result<Duration, LocalError>,
    pingpong: fn(u64, Duration) -> Result<(Duration, Latencies), LocalError>,
    fanin: fn(u64, u64, Duration) -> Result<Duration, LocalError>,
    spawn: fn(u64, Duration) -> Result<SpawnSample, LocalError>,
}

impl Framework {
    /// The test code written with this framework, for `setup` (the runtime flavor
    /// is set for the whole process by [`run_child`]; actix's arbiters are chosen
    /// here).
    fn suite(self, setup: Setup) -> Suite {
        match self {
            Self::Actix if setup == Setup::SameArbiter => Suite {
                tell: actix::tell_same_arbiter,
                pingpong: actix::pingpong,
                fanin: actix::fanin_same_arbiter,
                spawn: actix::spawn,
            },
            Self::Granary if setup == Setup::ActorRuntime => Suite {
                tell: granary::tell_on_actor_runtime,
                pingpong: granary::pingpong,
                fanin: granary::fanin_on_actor_runtime,
                spawn: granary::spawn,
            },
            Self::Granary => Suite {
                tell: granary::tell,
                pingpong: granary::pingpong,
                fanin: granary::fanin,
                spawn: granary::spawn,
            },
            Self::Ractor => Suite {
                tell: ractor::tell,
                pingpong: ractor::pingpong,
                fanin: ractor::fanin,
                spawn: ractor::spawn,
            },
            Self::Actix => Suite {
                tell: actix::tell,
                pingpong: actix::pingpong,
                fanin: actix::fanin,
                spawn: actix::spawn,
            },
            Self::Kameo => Suite {
                tell: kameo::tell,
                pingpong: kameo::pingpong,
                fanin: kameo::fanin,
                spawn: kameo::spawn,
            },
        }
    }
}

/// Runs one test of one framework in this process.
fn measure(
    framework: Framework,
    setup: Setup,
    test: Test,
    sizes: &Sizes,
) -> Result<Sample, LocalError> {
    let suite = framework.suite(setup);
    let limit = sizes.timeout;
    Ok(match test {
        Test::Tell => Sample::Throughput {
            seconds: (suite.tell)(sizes.tell, limit)?.as_secs_f64(),
        },
        Test::Pingpong => {
            let (elapsed, latencies) = (suite.pingpong)(sizes.pingpong, limit)?;
            let [p50_us, p99_us, p999_us, max_us] = latencies.summary_us();
            Sample::Latency {
                seconds: elapsed.as_secs_f64(),
                round_trips: latencies.len(),
                p50_us,
                p99_us,
                p999_us,
                max_us,
            }
        }
        Test::Fanin => Sample::Throughput {
            seconds: (suite.fanin)(sizes.fanin_senders, sizes.fanin, limit)?.as_secs_f64(),
        },
        Test::Spawn => Sample::Spawn((suite.spawn)(sizes.spawn, limit)?),
        Test::Activate if framework == Framework::Granary => {
            Sample::Activate(activate::activate(sizes.activate, limit)?)
        }
        Test::Activate => {
            return Err(LocalError::framework(
                framework,
                "activate",
                "has no virtual actors",
            ))
        }
    })
}

/// How long past its own time limit a child may take before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(30);

/// Runs one measurement in a fresh process of this same binary, so no
/// framework runs on a heap, thread pool or allocator state another one left
/// behind (within one process, the order of frameworks changed their results by
/// up to 1.5x).
fn measure_in_child(
    framework: Framework,
    setup: Setup,
    test: Test,
    quick: bool,
    workers: u32,
    observe: bool,
) -> Result<Sample, LocalError> {
    let child_err = |reason: String| LocalError::Child { framework, reason };
    let exe = std::env::current_exe().map_err(|e| child_err(format!("no current exe: {e}")))?;
    let mut command = Process::new(exe);
    command
        .arg("local-child")
        .arg("--framework")
        .arg(framework.name())
        .arg("--setup")
        .arg(setup.name())
        .arg("--test")
        .arg(test.name())
        .arg("--workers")
        .arg(workers.to_string());
    if quick {
        command.arg("--quick");
    }
    if observe {
        command.arg("--observe");
    }
    let sizes = Sizes::for_run(quick);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| child_err(format!("cannot start: {e}")))?;
    // The child enforces the time limit itself; this watchdog covers a child
    // that can't (a framework blocking every thread), so the run never hangs.
    let deadline = sizes.timeout + CHILD_GRACE;
    let mut pipe = child
        .stdout
        .take()
        .ok_or_else(|| child_err("no stdout pipe".to_string()))?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let read = pipe.read_to_string(&mut text);
        let _ = done_tx.send(read.map(|_| text));
    });
    let stdout = match done_rx.recv_timeout(deadline) {
        Ok(read) => read.map_err(|e| child_err(format!("cannot read its output: {e}")))?,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(child_err(format!("killed after {deadline:?}")));
        }
    };
    let status = child
        .wait()
        .map_err(|e| child_err(format!("cannot wait for it: {e}")))?;
    if !status.success() {
        return Err(child_err(format!("exited with {status}")));
    }
    let sample: Sample = serde_json::from_str(stdout.trim())
        .map_err(|e| child_err(format!("bad output {stdout:?}: {e}")))?;
    match sample {
        Sample::Latency { round_trips, .. } if round_trips != sizes.pingpong => {
            Err(child_err(format!(
                "recorded {round_trips} round trips, expected {}",
                sizes.pingpong
            )))
        }
        sample => Ok(sample),
    }
}

/// Reduces the runs of one test and framework to one row of per-field medians.
fn summarize(
    framework: Framework,
    test: Test,
    sizes: &Sizes,
    runs: u32,
    samples: Vec<Sample>,
) -> LocalRow {
    let mut row = LocalRow {
        scenario: "local",
        test,
        framework,
        setup: framework.setups(test)[0],
        mode: "local",
        nodes: 1,
        actors: 1,
        senders: None,
        payload_bytes: 8,
        messages: 0,
        runs,
        workers: 2,
        seconds: 0.0,
        msgs_per_sec: 0.0,
        round_trips_per_sec: None,
        p50_us: None,
        p99_us: None,
        p999_us: None,
        max_us: None,
        actors_per_sec: None,
        bytes_per_actor: None,
        spawn_s: None,
        ask_s: None,
        stop_s: None,
        bytes_per_activation: None,
        rss_before_mb: None,
        rss_warm_mb: None,
        rss_active_mb: None,
        rss_after_mb: None,
        rss_after_trim_mb: None,
    };
    let mut seconds = Vec::new();
    let mut latency = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut bytes = Vec::new();
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let mut memory = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for sample in samples {
        match sample {
            Sample::Throughput { seconds: s } => seconds.push(s),
            Sample::Latency {
                seconds: s,
                p50_us,
                p99_us,
                p999_us,
                max_us,
                ..
            } => {
                seconds.push(s);
                for (slot, value) in latency.iter_mut().zip([p50_us, p99_us, p999_us, max_us]) {
                    slot.push(value);
                }
            }
            Sample::Activate(activate) => seconds.push(activate.one_node_seconds),
            Sample::Spawn(spawn) => {
                seconds.push(spawn.seconds);
                bytes.push(spawn.rss_growth_bytes as f64);
                let rss = [
                    spawn.rss_before_bytes as f64,
                    spawn.rss_before_bytes as f64 + spawn.rss_growth_bytes as f64,
                    spawn.rss_stopped_bytes as f64,
                    spawn.rss_trimmed_bytes as f64,
                ];
                for (slot, value) in memory.iter_mut().zip(rss) {
                    slot.push(value);
                }
                let times = [spawn.spawn_seconds, spawn.ask_seconds, spawn.stop_seconds];
                for (slot, value) in phases.iter_mut().zip(times) {
                    slot.push(value);
                }
            }
        }
    }
    row.seconds = median(seconds);
    match test {
        Test::Tell => row.messages = sizes.tell,
        Test::Fanin => {
            row.messages = sizes.fanin;
            row.senders = Some(sizes.fanin_senders);
        }
        Test::Pingpong => {
            row.actors = 2;
            row.messages = 2 * sizes.pingpong;
            row.round_trips_per_sec = Some(sizes.pingpong as f64 / row.seconds);
            let [p50, p99, p999, max] = latency.map(median);
            row.p50_us = Some(p50);
            row.p99_us = Some(p99);
            row.p999_us = Some(p999);
            row.max_us = Some(max);
        }
        Test::Spawn => {
            row.actors = sizes.spawn;
            row.messages = sizes.spawn;
            row.actors_per_sec = Some(sizes.spawn as f64 / row.seconds);
            row.bytes_per_actor = Some(median(bytes) / sizes.spawn as f64);
            let [before, active, after, trimmed] = memory.map(|bytes| Some(median(bytes) / MB));
            row.rss_before_mb = before;
            row.rss_active_mb = active;
            row.rss_after_mb = after;
            row.rss_after_trim_mb = trimmed;
            let [spawn_s, ask_s, stop_s] = phases.map(median);
            row.spawn_s = Some(spawn_s);
            row.ask_s = Some(ask_s);
            row.stop_s = Some(stop_s);
        }
        Test::Activate => {
            row.mode = "virtual";
            row.actors = sizes.activate;
            row.messages = sizes.activate;
            row.actors_per_sec = Some(sizes.activate as f64 / row.seconds);
        }
    }
    row.msgs_per_sec = row.messages as f64 / row.seconds;
    row
}

/// Bytes in a megabyte (10^6, as the report's other memory figures).
const MB: f64 = 1e6;

/// The three rows of `activate`: one node and three nodes with the memory store,
/// one node with the file store. The one-node memory row carries the memory figures.
fn summarize_activate(sizes: &Sizes, runs: u32, samples: Vec<Sample>) -> [LocalRow; 3] {
    let measured: Vec<activate::ActivateSample> = samples
        .into_iter()
        .filter_map(|sample| match sample {
            Sample::Activate(activate) => Some(activate),
            _ => None,
        })
        .collect();
    let row = |nodes: u32, mode: &'static str, seconds: fn(&activate::ActivateSample) -> f64| {
        let times = measured
            .iter()
            .map(|run| Sample::Throughput {
                seconds: seconds(run),
            })
            .collect();
        let mut row = summarize(Framework::Granary, Test::Activate, sizes, runs, times);
        row.nodes = nodes;
        row.mode = mode;
        row
    };
    let mut one = row(1, "virtual", |run| run.one_node_seconds);
    let of_runs = |figure: fn(&activate::ActivateSample) -> f64| {
        Some(median(measured.iter().map(figure).collect()))
    };
    one.bytes_per_activation = Some(median(
        measured
            .iter()
            .map(|run| run.bytes_per_activation(sizes.activate))
            .collect(),
    ));
    one.rss_before_mb = of_runs(|run| run.rss_before_bytes as f64 / MB);
    one.rss_warm_mb = of_runs(|run| run.rss_warm_bytes as f64 / MB);
    one.rss_active_mb = of_runs(|run| run.rss_active_bytes as f64 / MB);
    one.rss_after_mb = of_runs(|run| run.rss_passivated_bytes as f64 / MB);
    one.rss_after_trim_mb = of_runs(|run| run.rss_trimmed_bytes as f64 / MB);
    let three = row(3, "virtual", |run| run.three_nodes_seconds);
    let file = row(1, "virtual-file-store", |run| run.file_one_node_seconds);
    [one, three, file]
}

/// A metric compared in the ratio lines: label, how to read it from a row, and
/// whether higher is better.
type Metric = (&'static str, fn(&LocalRow) -> Option<f64>, bool);

/// The "granary / best peer" lines printed after the table: per test and metric,
/// granary against the best row of any peer in any setup (named in the line).
/// `pingpong` also gets issue 18's bar on p99: granary's at most 2× actix's best.
fn ratios(rows: &[LocalRow]) -> String {
    let mut out = String::new();
    let tests = dedup(rows.iter().map(|row| row.test).collect());
    for test in tests {
        let of_test: Vec<&LocalRow> = rows
            .iter()
            .filter(|row| row.test == test && row.mode == "local")
            .collect();
        let peers: Vec<&&LocalRow> = of_test
            .iter()
            .filter(|row| row.framework != Framework::Granary)
            .collect();
        let metrics: &[Metric] = match test {
            Test::Tell | Test::Fanin => &[("msgs/s", |r| Some(r.msgs_per_sec), true)],
            Test::Pingpong => &[
                ("round trips/s", |r| r.round_trips_per_sec, true),
                ("p50 latency", |r| r.p50_us, false),
                ("p99 latency", |r| r.p99_us, false),
            ],
            Test::Spawn => &[
                ("actors/s", |r| r.actors_per_sec, true),
                ("bytes/actor", |r| r.bytes_per_actor, false),
            ],
            // No peer has virtual actors.
            Test::Activate => &[],
        };
        // One set of lines per granary setup (multi-thread first, as before setups).
        for ours in of_test
            .iter()
            .filter(|row| row.framework == Framework::Granary)
        {
            ratio_lines(&mut out, test, ours, &peers, metrics);
        }
    }
    out
}

/// The ratio lines of one granary row (one setup) against the best peer rows.
fn ratio_lines(
    out: &mut String,
    test: Test,
    ours: &LocalRow,
    peers: &[&&LocalRow],
    metrics: &[Metric],
) {
    let ours_label = format!("granary ({})", ours.setup);
    for (label, metric, higher_is_better) in metrics {
        let best = best_of(peers, *metric, *higher_is_better);
        if let (Some(value), Some((peer, best))) = (metric(ours), best) {
            let goal = if *higher_is_better { ">= 1" } else { "<= 1" };
            out.push_str(&format!(
                "ratio {test:<8} {label:<14} {ours_label}/{} = {:.3} (goal {goal})\n",
                peer_label(peer),
                value / best
            ));
        }
    }
    if test == Test::Pingpong {
        let actix: Vec<&&LocalRow> = peers
            .iter()
            .copied()
            .filter(|row| row.framework == Framework::Actix)
            .collect();
        if let (Some(value), Some((peer, best))) =
            (ours.p99_us, best_of(&actix, |r| r.p99_us, false))
        {
            out.push_str(&format!(
                "ratio {test:<8} {:<14} {ours_label}/{} = {:.3} (goal <= 2)\n",
                "p99 latency",
                peer_label(peer),
                value / best
            ));
        }
    }
}

/// "framework (setup)", as the ratio lines name a peer row.
fn peer_label(row: &LocalRow) -> String {
    format!("{} ({})", row.framework, row.setup)
}

/// The row with the best value of `metric` among `rows`, and that value.
fn best_of<'a>(
    rows: &[&&'a LocalRow],
    metric: fn(&LocalRow) -> Option<f64>,
    higher_is_better: bool,
) -> Option<(&'a LocalRow, f64)> {
    rows.iter()
        .filter_map(|row| metric(row).map(|value| (**row, value)))
        .reduce(|a, b| {
            let b_wins = if higher_is_better {
                b.1 > a.1
            } else {
                b.1 < a.1
            };
            if b_wins {
                b
            } else {
                a
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_reports_medians_and_derived_rates() {
        let samples = [3.0, 1.0, 2.0]
            .into_iter()
            .map(|seconds| Sample::Throughput { seconds })
            .collect();
        let row = summarize(Framework::Ractor, Test::Tell, &Sizes::QUICK, 3, samples);
        assert_eq!(row.seconds, 2.0);
        assert_eq!(row.messages, Sizes::QUICK.tell);
        assert_eq!(row.msgs_per_sec, Sizes::QUICK.tell as f64 / 2.0);
        assert!(row.p50_us.is_none() && row.actors_per_sec.is_none());
    }

    #[test]
    fn activate_gives_a_row_per_cluster_size_and_store() {
        let identities = Sizes::QUICK.activate;
        let run = |one: f64, three: f64, file: f64, active_growth: u64| {
            Sample::Activate(activate::ActivateSample {
                one_node_seconds: one,
                three_nodes_seconds: three,
                file_one_node_seconds: file,
                // Cold below warm: the bytes per activation count from the warm one.
                rss_before_bytes: 9_500_000,
                rss_warm_bytes: 10_000_000,
                rss_active_bytes: 10_000_000 + active_growth,
                rss_passivated_bytes: 12_000_000,
                rss_trimmed_bytes: 11_000_000,
            })
        };
        let samples = vec![
            run(1.0, 4.0, 5.0, 1000 * identities),
            run(3.0, 2.0, 6.0, 3000 * identities),
            run(2.0, 8.0, 7.0, 2000 * identities),
        ];
        let [one, three, file] = summarize_activate(&Sizes::QUICK, 3, samples);
        let identities = identities as f64;
        assert_eq!((one.nodes, three.nodes, file.nodes), (1, 3, 1));
        assert_eq!(
            (one.mode, three.mode, file.mode),
            ("virtual", "virtual", "virtual-file-store")
        );
        assert_eq!(
            one.actors_per_sec,
            Some(identities / 2.0),
            "median of 1, 3, 2"
        );
        assert_eq!(
            three.actors_per_sec,
            Some(identities / 4.0),
            "median of 4, 2, 8"
        );
        assert_eq!(file.actors_per_sec, Some(identities / 6.0));
        assert_eq!(one.bytes_per_activation, Some(2000.0));
        assert_eq!(one.rss_before_mb, Some(9.5));
        assert_eq!(one.rss_warm_mb, Some(10.0));
        assert_eq!(one.rss_after_mb, Some(12.0));
        assert_eq!(one.rss_after_trim_mb, Some(11.0));
        assert_eq!(three.bytes_per_activation, None);
    }

    #[test]
    fn ratio_compares_granary_with_the_best_peer_per_direction() {
        let spawn_row = |framework, actors_per_sec: f64, bytes: f64| LocalRow {
            actors_per_sec: Some(actors_per_sec),
            bytes_per_actor: Some(bytes),
            ..summarize(
                framework,
                Test::Spawn,
                &Sizes::QUICK,
                1,
                vec![Sample::Spawn(SpawnSample {
                    seconds: 1.0,
                    spawn_seconds: 0.5,
                    ask_seconds: 0.25,
                    stop_seconds: 0.25,
                    rss_growth_bytes: 0,
                    rss_before_bytes: 0,
                    rss_stopped_bytes: 0,
                    rss_trimmed_bytes: 0,
                })],
            )
        };
        let rows = [
            spawn_row(Framework::Granary, 100.0, 300.0),
            spawn_row(Framework::Ractor, 200.0, 400.0),
        ];
        let text = ratios(&rows);
        assert!(
            text.contains("actors/s       granary (multi-thread)/ractor (multi-thread) = 0.500"),
            "{text}"
        );
        assert!(
            text.contains("bytes/actor    granary (multi-thread)/ractor (multi-thread) = 0.750"),
            "{text}"
        );
    }

    #[test]
    fn ratio_takes_the_best_setup_of_any_peer_and_bars_p99_against_actix() {
        let pingpong = |framework, setup, rate: f64, p99: f64| {
            let mut row = summarize(
                framework,
                Test::Pingpong,
                &Sizes::QUICK,
                1,
                vec![Sample::Latency {
                    seconds: 1.0,
                    round_trips: Sizes::QUICK.pingpong,
                    p50_us: 1.0,
                    p99_us: p99,
                    p999_us: p99,
                    max_us: p99,
                }],
            );
            row.setup = setup;
            row.round_trips_per_sec = Some(rate);
            row
        };
        let rows = [
            pingpong(Framework::Granary, Setup::MultiThread, 100.0, 6.0),
            pingpong(Framework::Granary, Setup::CurrentThread, 800.0, 3.0),
            pingpong(Framework::Ractor, Setup::MultiThread, 50.0, 9.0),
            pingpong(Framework::Ractor, Setup::CurrentThread, 400.0, 4.0),
            pingpong(Framework::Actix, Setup::SameArbiter, 200.0, 2.0),
        ];
        let text = ratios(&rows);
        assert!(
            text.contains("round trips/s  granary (multi-thread)/ractor (current-thread) = 0.250"),
            "{text}"
        );
        assert!(
            text.contains(
                "p99 latency    granary (multi-thread)/actix (same-arbiter) = 3.000 (goal <= 1)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "p99 latency    granary (multi-thread)/actix (same-arbiter) = 3.000 (goal <= 2)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "round trips/s  granary (current-thread)/ractor (current-thread) = 2.000"
            ),
            "{text}"
        );
    }
}
