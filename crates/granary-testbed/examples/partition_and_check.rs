//! The test bed as a library, the way a user's test drives it: three hosts running
//! granary nodes, a fourth running a load client, a partition that isolates one node,
//! the heal, and the history checker's verdict. Needs root (network namespaces) and
//! the `ip`, `nft`, `tc` tools; without them it prints why and exits 0.
//!
//! ```sh
//! cargo build -p granary-testbed --bins --examples
//! sudo target/debug/examples/partition_and_check [NODE_PROGRAM]
//! ```
//!
//! `NODE_PROGRAM` defaults to `granary-testbed-node` next to the example (or
//! `GRANARY_TESTBED_NODE`). Your own node binary works too if it takes the same
//! arguments and appends the same history events (`granary_testbed::history`); the
//! only contract the bed itself has is "print a line to say you are ready".
//!
//! For a whole run with a schedule of faults in one call, see
//! `granary_testbed::run::run_schedule` (fixed faults) and `run_chaos` (drawn from a
//! seed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use granary_testbed::checker::check;
use granary_testbed::history::{read_history, read_run, Event, HistoryWriter, Outcome, Stamp};
use granary_testbed::process::{Launch, Process};
use granary_testbed::run::find_node_program;
use granary_testbed::{available, HostId, Testbed};

type Error = Box<dyn std::error::Error>;

const PORT: u16 = 7100;
/// How long the isolated node stays cut off: longer than failure detection and the
/// host lease, so the majority takes its identities over.
const HOLD: Duration = Duration::from_secs(6);
/// The longest any wait of the example may take.
const DEADLINE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    if let Err(reason) = available() {
        println!("skipped: this machine cannot host the test bed: {reason}");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("partition_and_check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Error> {
    let program = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => find_node_program()?,
    };
    // Four hosts: h1..h3 for nodes, h4 for the client. Dropping `bed` (also on an
    // early return or a panic) kills every process on it and removes the namespaces.
    let bed = Testbed::new(4)?;
    let nodes = [HostId(0), HostId(1), HostId(2)];
    let client_host = HostId(3);
    let dir = bed.run_dir().to_path_buf();
    let addr = |h: HostId| -> Result<SocketAddr, Error> {
        Ok(SocketAddr::new(bed.host(h)?.addr.into(), PORT))
    };
    // What the bed did, in the history too: the checker's recovery times use it.
    let faults = HistoryWriter::open(&dir.join("faults.jsonl"))?;
    let note = |what: &str| {
        faults.record(&Event::Fault {
            what: what.into(),
            at: Stamp::now(),
        })
    };

    // The nodes: h1 forms the cluster, h2 and h3 join it.
    let mut processes: Vec<Process> = Vec::new();
    for &h in &nodes {
        let name = bed.host(h)?.name.clone();
        let mut args: Vec<String> = vec![
            "node".into(),
            "--name".into(),
            name.clone(),
            "--incarnation".into(),
            "0".into(),
            "--bind".into(),
            addr(h)?.to_string(),
            "--store".into(),
            format!("file:{}", dir.join("state.db").display()),
            "--history".into(),
            dir.join(format!("{name}-0.jsonl")).display().to_string(),
        ];
        if h != nodes[0] {
            args.extend(["--seed".into(), addr(nodes[0])?.to_string()]);
        }
        let mut node = bed.spawn(h, &Launch::new(format!("{name}-0"), &program, args))?;
        node.wait_for_line("ready", DEADLINE)?;
        println!("{name} ready at {}", addr(h)?);
        processes.push(node);
    }

    // The client: counters with operation ids, 100 operations a second.
    let client_history = dir.join("c1-0.jsonl");
    let mut args: Vec<String> = vec![
        "client".into(),
        "--name".into(),
        "c1".into(),
        "--bind".into(),
        SocketAddr::new(bed.host(client_host)?.addr.into(), 0).to_string(),
        "--workload".into(),
        "counters".into(),
        "--keys".into(),
        "8".into(),
        "--rate".into(),
        "100".into(),
        "--history".into(),
        client_history.display().to_string(),
    ];
    for &h in &nodes {
        args.extend(["--seed".into(), addr(h)?.to_string()]);
    }
    let mut client = bed.spawn(client_host, &Launch::new("c1-0", &program, args))?;
    client.wait_for_line("started", DEADLINE)?;
    let before = wait_for_acks(&client_history, 100)?;
    println!("load running: {before} operations acknowledged");

    // h1 alone on one side; h2, h3 and the client on the other.
    note("partition h1|rest")?;
    bed.partition(&[vec![nodes[0]], vec![nodes[1], nodes[2], client_host]])?;
    println!("partitioned h1 off for {HOLD:?}");
    std::thread::sleep(HOLD);
    bed.heal()?;
    note("heal")?;
    let healed = Instant::now();
    // Wait for progress after the heal instead of sleeping: 300 more acknowledgements.
    let after = wait_for_acks(&client_history, before + 300)?;
    println!(
        "healed; {after} acknowledged ({:.1} s after the heal)",
        healed.elapsed().as_secs_f64()
    );

    // Stop the load: the client reads every counter's final state and prints a summary.
    client.send_line("stop")?;
    let summary = client.wait_for_line("{", DEADLINE)?;
    println!("client summary: {{{summary}");
    client.wait(DEADLINE)?;
    for node in &mut processes {
        node.close_stdin(); // graceful shutdown
        node.wait(DEADLINE)?;
    }

    // The verdict over every process's history.
    let report = check(&read_run(&dir)?);
    println!("{report}");
    if !report.is_clean() {
        bed.keep_run_dir();
        println!("run directory kept: {}", dir.display());
    }
    Ok(report.is_clean())
}

/// Polls the client's history until it holds `n` acknowledgements (bounded).
fn wait_for_acks(history: &Path, n: usize) -> Result<usize, Error> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let acked = read_history(history)?
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Complete {
                        outcome: Outcome::Ok { .. },
                        ..
                    }
                )
            })
            .count();
        if acked >= n {
            return Ok(acked);
        }
        if Instant::now() > deadline {
            return Err(format!("only {acked} of {n} acknowledgements within {DEADLINE:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
