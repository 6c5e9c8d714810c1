//! `remote --observe`: granary's `oneway` with metrics and tracing off and on,
//! alternately, each measurement in fresh processes.
//!
//! A `metrics` recorder and a `tracing` subscriber cannot be uninstalled, and a
//! process that ran other jobs first carries their heap and threads; so every
//! measurement runs in a new driver process (this binary's hidden `remote-child`
//! subcommand, started with [`measure_in_child`]) that starts its own new peer
//! process, both with `--observe` for the observed measurements. The parent runs
//! them off, on, off, on... for `--rounds` rounds, all sizes in each round, so
//! machine noise falls on both sides alike, and [`summary`] reports per size the
//! median off and on, their ratio and every value.
//!
//! The same driver process measures the `current-thread` setups of `raw-tcp` and
//! `ractor_cluster` (any test but `pairs`): a fresh process whose runtime is a
//! current-thread one, against a new peer started with `--current-thread`.
//!
//! Protocol: the driver process prints one line `measured JSON` (a [`Measured`])
//! once its peer is gone, then exits; it exits at once if its stdin closes (the
//! parent went away), and its peer then exits too.

use std::io::BufRead;
use std::process::Command;
use std::time::Duration;

use clap::Args;

use super::peer::Peer;
use super::{
    granary, ractor_remote, raw, Framework, Job, Measured, RemoteError, Setup, Sizes, Test,
};
use crate::local::median;
use crate::report::ReportError;

/// How much longer than two of its own time limits (start and warm-up, then the
/// measurement) a driver process may take before it counts as hung.
const CHILD_GRACE: Duration = Duration::from_secs(60);

/// A metric every observed `oneway` driver must have recorded (proof that metrics
/// were on).
const OBSERVED_METRIC: &str = "granary_peer_frames_out_total";

/// Options of the hidden `remote-child` subcommand: one measurement (by default
/// granary's `oneway`) against a new peer process.
#[derive(Debug, Args)]
pub(crate) struct ChildArgs {
    /// The framework to measure: `granary`, `raw-tcp` or `ractor_cluster`.
    #[arg(long, default_value = "granary")]
    framework: Framework,
    /// The test: `pingpong` or `oneway`.
    #[arg(long, default_value = "oneway")]
    test: Test,
    /// Run this process and the peer on tokio current-thread runtimes.
    #[arg(long)]
    current_thread: bool,
    /// ractor_cluster `pingpong`: two actors casting to each other instead of `call`.
    #[arg(long, requires = "current_thread")]
    cast: bool,
    /// One-way messages to send.
    #[arg(long)]
    messages: u64,
    /// Payload of each message, in bytes.
    #[arg(long)]
    payload: usize,
    /// Use the `--quick` time limits.
    #[arg(long)]
    quick: bool,
    /// Metrics and tracing on, here and in the peer ([`crate::observe`]).
    #[arg(long)]
    observe: bool,
}

/// Runs `granary-bench remote-child`: one measurement, printed as `measured JSON`.
pub(crate) fn run_child(args: ChildArgs) -> Result<(), RemoteError> {
    let recorder = if args.observe {
        crate::observe::install()
    } else {
        None
    };
    // The parent holds our stdin open; when it closes, the parent is gone.
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        std::process::exit(1);
    });
    let runtime = super::node::runtime(args.current_thread)?;
    let job = Job {
        framework: args.framework,
        test: args.test,
        payload: args.payload,
        count: args.messages,
        pairs: None,
        setup: if args.cast {
            Setup::CurrentThreadCast
        } else if args.current_thread {
            Setup::CurrentThread
        } else {
            Setup::MultiThread
        },
    };
    let sizes = Sizes::for_run(args.quick);
    let measured = runtime.block_on(async {
        // Each session stops (and waits for) its peer before the parent hears back.
        match (args.framework, args.test) {
            (_, Test::Pairs) => Err(RemoteError::framework(
                args.framework,
                "measure in a driver process",
                "`pairs` runs in the main process",
            )),
            (Framework::Granary, _) => {
                let mut session = if args.observe {
                    granary::Session::observing()
                } else {
                    granary::Session::idle_with(args.current_thread)
                };
                let measured = session.measure(&job, &sizes).await;
                session.close();
                measured
            }
            (Framework::RawTcp, _) => {
                let mut session = raw::Session::idle_with(args.current_thread);
                let measured = session.measure(&job, &sizes).await;
                session.close();
                measured
            }
            (Framework::RactorCluster, _) => {
                let mut session = ractor_remote::Session::idle_with(args.current_thread);
                let measured = session.measure(&job, &sizes).await;
                session.close();
                measured
            }
            (other, _) => Err(RemoteError::framework(
                other,
                "measure in a driver process",
                "not supported",
            )),
        }
    })?;
    if args.observe && !recorder.is_some_and(|r| r.render().contains(OBSERVED_METRIC)) {
        return Err(RemoteError::framework(
            Framework::Granary,
            "observe",
            format!("metrics were meant to be on, but nothing recorded {OBSERVED_METRIC}"),
        ));
    }
    let json = serde_json::to_string(&measured).map_err(ReportError::from)?;
    println!("measured {json}");
    Ok(())
}

/// Measures `job` in a new driver process against a new peer process, both with
/// metrics and tracing on if `observe` (granary), both on current-thread runtimes
/// if the job's setup says so; waits until both exited.
pub(crate) async fn measure_in_child(
    job: &Job,
    sizes: &Sizes,
    quick: bool,
    observe: bool,
) -> Result<Measured, RemoteError> {
    let what = format!(
        "the {}{} driver process",
        if observe { "observed " } else { "" },
        job.label()
    );
    let what = what.as_str();
    let exe = std::env::current_exe().map_err(|source| RemoteError::Spawn {
        what: what.into(),
        source,
    })?;
    let mut command = Command::new(exe);
    command
        .arg("remote-child")
        .arg("--framework")
        .arg(job.framework.name())
        .arg("--test")
        .arg(job.test.to_string())
        .arg("--messages")
        .arg(job.count.to_string())
        .arg("--payload")
        .arg(job.payload.to_string());
    if quick {
        command.arg("--quick");
    }
    if observe {
        command.arg("--observe");
    }
    if job.setup.current_thread() {
        command.arg("--current-thread");
    }
    if job.setup == Setup::CurrentThreadCast {
        command.arg("--cast");
    }
    let mut child = Peer::spawn(what, command)?;
    let json = child
        .expect("measured", 2 * sizes.timeout + CHILD_GRACE)
        .await?;
    // Dropping the child waits for it to exit (its peer is already gone).
    drop(child);
    match serde_json::from_str::<Measured>(&json) {
        Ok(measured) if measured.messages == job.count && measured.seconds > 0.0 => Ok(measured),
        _ => Err(RemoteError::PeerProtocol {
            what: what.into(),
            line: format!("measured {json}"),
            expected: "`measured` with the job's message count and a positive time",
        }),
    }
}

/// The off and on throughputs (msgs/s) of one `oneway` size, in measurement order.
#[derive(Debug, Clone, Default)]
pub(crate) struct OnOff {
    /// Payload of each message, in bytes.
    pub(crate) payload: usize,
    /// Metrics and tracing off.
    pub(crate) off: Vec<f64>,
    /// Metrics and tracing on.
    pub(crate) on: Vec<f64>,
}

/// One line per size: the median off and on msgs/s, on ÷ off, and every value.
pub(crate) fn summary(sizes: &[OnOff]) -> String {
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    for size in sizes
        .iter()
        .filter(|s| !s.off.is_empty() && !s.on.is_empty())
    {
        let off = median(size.off.clone());
        let on = median(size.on.clone());
        out.push_str(&format!(
            "oneway {} B observe/off: median {on:.0} / {off:.0} msgs/s = {:.3} \
             ({} rounds; off {}; on {})\n",
            size.payload,
            on / off.max(f64::MIN_POSITIVE),
            size.off.len().min(size.on.len()),
            list(&size.off),
            list(&size.on)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_medians_their_ratio_and_every_value() {
        let sizes = [
            OnOff {
                payload: 16,
                off: vec![100.0, 300.0, 200.0],
                on: vec![190.0, 90.0, 400.0],
            },
            OnOff {
                payload: 1024,
                off: Vec::new(),
                on: Vec::new(),
            },
        ];
        assert_eq!(
            summary(&sizes),
            "oneway 16 B observe/off: median 190 / 200 msgs/s = 0.950 \
             (3 rounds; off 100, 300, 200; on 190, 90, 400)\n"
        );
    }
}
