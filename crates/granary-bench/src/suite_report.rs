//! `granary-bench report`: a short sweep of every scenario this build has, written up
//! as `README.md` with tables, charts, the machine it ran on and, beside our figures,
//! the seed papers' findings with the papers' hardware named.
//!
//! Each scenario runs as a child process of this same binary (so one that fails or
//! hangs is reported, not fatal): its JSON rows go to `rows/SCENARIO.jsonl`, its
//! stderr to `logs/SCENARIO.log`, and a scenario still running after its time limit
//! is killed and reported as timed out. Scenarios of the plan that this build has no
//! subcommand for are listed as "not available in this build"; the list of
//! subcommands is read from the command line definition at run time. Charts come
//! from [`crate::plot::plot_rows`], the same function `--plot` uses.
//!
//! The sweep is sized to finish within 15 minutes on a 2-core machine; `--quick`
//! runs every scenario at its `--quick` size instead (for smoke tests).

mod findings;
mod machine;
mod markdown;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{read_rows, Row};

/// Options of `granary-bench report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Directory for README.md, charts, rows and logs.
    #[arg(long, default_value = "docs/report")]
    out: PathBuf,
    /// Run every scenario at its `--quick` size (a smoke test of the report).
    #[arg(long)]
    quick: bool,
    /// Only these scenarios, comma-separated (default: the whole plan).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Limit per scenario in seconds; a scenario still running is killed.
    #[arg(long, default_value_t = 240)]
    scenario_timeout: u64,
}

/// Why the report could not be written (a failing scenario is not such a reason).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SuiteReportError {
    /// A file or directory could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// This binary's own path is unknown, so no scenario can be started.
    #[error("cannot find this binary to run the scenarios")]
    Exe(#[source] std::io::Error),
}

/// One scenario of the plan: its subcommand and the arguments of its short sweep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned {
    /// The subcommand.
    pub(crate) name: &'static str,
    /// The seed and section it reproduces ("—" for granary's own baselines).
    pub(crate) seed: &'static str,
    /// Arguments of the report's sweep.
    pub(crate) args: &'static [&'static str],
}

/// The plan, in report order.
pub(crate) const PLAN: &[Planned] = &[
    Planned {
        name: "pingpong",
        seed: "000 §3.3.1–2",
        args: &[
            "--actors",
            "3,6,12,24,48,64",
            "--payload",
            "0,2048",
            "--messages",
            "150000",
        ],
    },
    Planned {
        name: "sort",
        seed: "000 §3.3.3–4",
        args: &[
            "--len",
            "1000,2000,4000,8000,12000",
            "--placement",
            "random,hash",
            "--repeat",
            "5",
        ],
    },
    Planned {
        name: "big",
        seed: "000 §3.3.5–6",
        args: &[
            "--actors",
            "3,6,12,24,48,64",
            "--payload",
            "0,2048",
            "--messages",
            "200000",
        ],
    },
    // iot with a simulated 1 ms one-way delay between devices and servers: the
    // paper's devices ran on machines of their own, so a device's loop waited on the
    // network; with every process on two shared cores and no delay, the cores are
    // saturated and a killed client only frees CPU for the others (the MTTF axis
    // then does not fall; measured, docs/BENCHMARKS.md "iot").
    Planned {
        name: "iot",
        seed: "003 §5.3–5.4",
        args: &[
            "--delay-ms",
            "1",
            "--clients-per-server",
            "2",
            "--drop",
            "0,0.1,0.3,0.5",
            "--client-mttf",
            "0,4,2,1",
            "--restart-delay",
            "0.5",
            "--seconds",
            "2",
        ],
    },
    Planned {
        name: "echo",
        seed: "002 §6.2.2",
        args: &[
            "--payload",
            "1048576,8388608",
            "--rtt-ms",
            "1,20",
            "--concurrency",
            "1,4,8",
            "--options",
            "off,on",
            "--seconds",
            "1.5",
        ],
    },
    Planned {
        name: "kvs",
        seed: "002 §6.2.3",
        args: &[
            "--payload",
            "1048576,8388608",
            "--rtt-ms",
            "1,20",
            "--concurrency",
            "1,4,8",
            "--options",
            "off,on",
            "--seconds",
            "1.5",
        ],
    },
    Planned {
        name: "counter",
        seed: "001 §5",
        args: &["--messages", "100,400,700,2000"],
    },
    Planned {
        name: "failover",
        seed: "000 §2.2 (failover)",
        args: &["--quick"],
    },
    Planned {
        name: "chaos",
        seed: "— (issue 12)",
        // Two 5-host runs of five mixed faults each (every kind appears), 10 s of
        // load after the last: ~2.5 min, needs root (else the row says why).
        args: &[
            "--hosts",
            "5",
            "--runs",
            "2",
            "--fault-count",
            "5",
            "--settle",
            "10",
        ],
    },
    // The overlays' scalability experiment: ~2 min at these sizes; the paper's full
    // range is `--sizes 32,64,128,256,512,1024` (docs/report/README.md, "overlay").
    Planned {
        name: "overlay",
        seed: "002 §6.3",
        args: &["--sizes", "32,128,512", "--rounds", "4"],
    },
    Planned {
        name: "crdt",
        seed: "003 §3",
        args: &["--quick"],
    },
    Planned {
        name: "local",
        seed: "—",
        args: &["--quick"],
    },
    Planned {
        name: "remote",
        seed: "—",
        args: &["--quick"],
    },
    Planned {
        name: "cluster",
        seed: "—",
        args: &["--quick"],
    },
    Planned {
        name: "storage",
        seed: "—",
        args: &["--store", "all", "--quick"],
    },
];

/// `--quick` plus the planned arguments a scenario cannot run without (`storage`
/// needs its `--store`) or that choose what is compared (`--placement`).
fn quick_args(planned: &[&str]) -> Vec<String> {
    let mut args = vec!["--quick".to_string()];
    for pair in planned.windows(2) {
        if pair[0] == "--store" || pair[0] == "--placement" {
            args.extend([pair[0].to_string(), pair[1].to_string()]);
        }
    }
    args
}

/// How a scenario's run ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// This build has no such subcommand.
    NotAvailable,
    /// Left out by `--only`.
    Skipped,
    /// Exited with success.
    Ok,
    /// Exited with an error; the last lines of its stderr.
    Failed(String),
    /// Killed after the time limit.
    TimedOut,
}

/// A scenario's run: outcome, rows, charts, time taken, the command line.
#[derive(Debug, Clone)]
pub(crate) struct ScenarioRun {
    /// The plan entry.
    pub(crate) planned: Planned,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Its rows.
    pub(crate) rows: Vec<Row>,
    /// Chart files, relative to the report directory.
    pub(crate) charts: Vec<String>,
    /// Wall time.
    pub(crate) seconds: f64,
    /// The arguments it ran with.
    pub(crate) args: Vec<String>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SuiteReportError + '_ {
    move |source| SuiteReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The running child, for the Ctrl-C handler.
type Running = Arc<Mutex<Option<Child>>>;

/// Runs `granary-bench report`; `available` are this build's subcommands.
pub(crate) fn run(args: ReportArgs, available: &[String]) -> Result<(), SuiteReportError> {
    let exe = std::env::current_exe().map_err(SuiteReportError::Exe)?;
    let rows_dir = args.out.join("rows");
    let logs_dir = args.out.join("logs");
    for dir in [&args.out, &rows_dir, &logs_dir] {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let machine_before = machine::Machine::read();
    let running: Running = Arc::new(Mutex::new(None));
    install_ctrl_c(running.clone());
    let progress = ProgressBar::new(PLAN.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut runs = Vec::new();
    for planned in PLAN {
        progress.set_message(planned.name);
        let selected = args
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == planned.name));
        let run = if !selected {
            skipped(planned, Outcome::Skipped)
        } else if !available.iter().any(|a| a == planned.name) {
            skipped(planned, Outcome::NotAvailable)
        } else {
            run_scenario(&exe, planned, &args, &running)?
        };
        progress.println(format!(
            "{}: {} ({} rows, {:.0} s)",
            planned.name,
            markdown::outcome_text(&run.outcome),
            run.rows.len(),
            run.seconds
        ));
        runs.push(run);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let machine_after = machine::Machine::read();
    let text = markdown::readme(&markdown::Report {
        runs: &runs,
        machine_before: &machine_before,
        machine_after: &machine_after,
        total_seconds: started.elapsed().as_secs_f64(),
        quick: args.quick,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    });
    let readme = args.out.join("README.md");
    std::fs::write(&readme, text).map_err(io_error(&readme))?;
    eprintln!("report: {}", readme.display());
    Ok(())
}

fn skipped(planned: &Planned, outcome: Outcome) -> ScenarioRun {
    ScenarioRun {
        planned: *planned,
        outcome,
        rows: Vec::new(),
        charts: Vec::new(),
        seconds: 0.0,
        args: Vec::new(),
    }
}

/// Kills the running scenario on Ctrl-C and exits with 130.
fn install_ctrl_c(running: Running) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                if let Some(child) = running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                eprintln!("granary-bench report: interrupted; the running scenario was killed");
                std::process::exit(130);
            }
        });
    });
}

/// Runs one scenario as a child process with its rows and log in files.
fn run_scenario(
    exe: &Path,
    planned: &Planned,
    args: &ReportArgs,
    running: &Running,
) -> Result<ScenarioRun, SuiteReportError> {
    let rows_path = args
        .out
        .join("rows")
        .join(format!("{}.jsonl", planned.name));
    let log_path = args.out.join("logs").join(format!("{}.log", planned.name));
    let stdout = std::fs::File::create(&rows_path).map_err(io_error(&rows_path))?;
    let stderr = std::fs::File::create(&log_path).map_err(io_error(&log_path))?;
    let scenario_args: Vec<String> = if args.quick {
        quick_args(planned.args)
    } else {
        planned.args.iter().map(ToString::to_string).collect()
    };
    let started = Instant::now();
    let child = Command::new(exe)
        .arg(planned.name)
        .args(&scenario_args)
        // Children must not inherit our stdin: they would wait on it.
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    let outcome = match child {
        Err(e) => Outcome::Failed(format!("could not start: {e}")),
        Ok(child) => {
            *running.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
            let limit = Duration::from_secs(args.scenario_timeout);
            wait_with_limit(running, limit, &log_path)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let rows = read_rows(&rows_path).unwrap_or_default();
    let charts = match crate::plot::plot_rows(planned.name, &rows, &args.out) {
        Ok(paths) => paths
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        Err(e) => {
            eprintln!("{}: charts not drawn: {e}", planned.name);
            Vec::new()
        }
    };
    Ok(ScenarioRun {
        planned: *planned,
        outcome,
        rows,
        charts,
        seconds,
        args: scenario_args,
    })
}

/// Waits for the running child until `limit` (polling its exit status every 100 ms
/// against a deadline); kills it at the limit.
fn wait_with_limit(running: &Running, limit: Duration, log_path: &Path) -> Outcome {
    let deadline = Instant::now() + limit;
    loop {
        let mut slot = running.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(child) = slot.as_mut() else {
            return Outcome::Failed("the child vanished".into());
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                slot.take();
                return if status.success() {
                    Outcome::Ok
                } else {
                    Outcome::Failed(format!("{status}: {}", log_tail(log_path)))
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                slot.take();
                return Outcome::TimedOut;
            }
            Ok(None) => {}
            Err(e) => {
                slot.take();
                return Outcome::Failed(format!("cannot wait for it: {e}"));
            }
        }
        drop(slot);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last error lines of a scenario's log (progress-bar noise left out).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("granary-bench: error"))
        .unwrap_or(lines.len().saturating_sub(3));
    lines[start..]
        .iter()
        .take(6)
        .copied()
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_runs_keep_the_store_a_scenario_requires() {
        assert_eq!(
            quick_args(&["--store", "all", "--quick"]),
            ["--quick", "--store", "all"]
        );
        assert_eq!(quick_args(&["--messages", "30000"]), ["--quick"]);
        assert_eq!(
            quick_args(&["--len", "1000", "--placement", "random,hash"]),
            ["--quick", "--placement", "random,hash"]
        );
    }

    #[test]
    fn every_planned_storage_run_names_a_store() {
        let storage = PLAN.iter().find(|p| p.name == "storage").unwrap();
        assert!(quick_args(storage.args).contains(&"--store".to_string()));
    }
}
