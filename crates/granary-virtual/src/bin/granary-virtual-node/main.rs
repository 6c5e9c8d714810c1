//! A node process hosting the demo `demo.Counter` kind: the program the Kubernetes kit
//! (`deploy/kubernetes/`) runs, and the node of the multi-process tests.
//!
//! Its whole configuration comes from the environment (`GRANARY_…`, see
//! `docs/config.md`; `GRANARY_CONFIG` names an optional TOML file read first). Flags
//! override single settings for tests and demos:
//! `granary-virtual-node [--bind ADDR] [--seed ADDR]… [--store URL] [--watch-stdin]`.
//!
//! - Prints `listening <addr>` once started, and `ready` once joined (Up in its own
//!   view, holding a host lease).
//! - Readiness for an orchestrator, only once joined: `GRANARY_READY_FILE` (a file
//!   written then, removed when leaving) and `GRANARY_READY_ADDR` (a TCP port that
//!   accepts connections from then until leaving).
//! - SIGTERM or SIGINT (and, with `--watch-stdin`, the end of standard input): a
//!   graceful leave — readiness withdrawn, every activation deactivated and its state
//!   saved, the cluster left — then exit 0.
//! - A bad setting: one line on standard error naming it, exit 2.
//! - glibc's mmap threshold is pinned at its default before anything else runs
//!   (`granary_core::memory`): memory freed after mass passivation goes back to the
//!   system. `MALLOC_MMAP_THRESHOLD_` in the environment wins.

mod demo_counter;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use demo_counter::{Counter, Increment};
use granary_virtual::prelude::*;
use granary_virtual::{NodeBuilder, NodeConfig, ProviderKind, VirtualError};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

/// Settings of this program (not of the node), read from the environment.
struct Program {
    ready_file: Option<PathBuf>,
    ready_addr: Option<SocketAddr>,
    watch_stdin: bool,
}

fn main() -> ExitCode {
    granary_core::memory::pin_malloc_mmap_threshold();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("granary-virtual-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(node_main())
}

async fn node_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let (config, program) = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("granary-virtual-node: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config, program).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(VirtualError::Config(e)) => {
            eprintln!("granary-virtual-node: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("granary-virtual-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn settings() -> Result<(NodeConfig, Program), String> {
    let mut config = NodeConfig::load().map_err(|e| e.to_string())?;
    let env_addr = |var: &str| -> Result<Option<SocketAddr>, String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map(Some)
                .map_err(|e| format!("environment variable {var}={v:?}: {e}")),
            _ => Ok(None),
        }
    };
    let mut program = Program {
        ready_file: std::env::var_os("GRANARY_READY_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        ready_addr: env_addr("GRANARY_READY_ADDR")?,
        watch_stdin: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--watch-stdin" {
            program.watch_stdin = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bind" => config.bind = value.parse().map_err(|e| format!("--bind: {e}"))?,
            "--seed" => {
                config.membership.provider = ProviderKind::Seeds;
                config.membership.seeds.push(value);
            }
            "--store" => config.store.url = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok((config, program))
}

async fn run(config: NodeConfig, program: Program) -> Result<(), VirtualError> {
    let setup = |what: &str, e: std::io::Error| VirtualError::Setup(format!("{what}: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(|e| setup("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| setup("SIGINT handler", e))?;
    let node = NodeBuilder::from_config(config)
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await?;
    say(&format!("listening {}", node.addr()));

    // Ready only once joined; a stop signal while waiting still leaves cleanly.
    let joined = async {
        loop {
            match node.ready(Duration::from_secs(30)).await {
                Ok(()) => return,
                Err(_) => tracing::warn!("not joined after 30 s; still trying"),
            }
        }
    };
    let mut readiness = None;
    tokio::select! {
        _ = joined => {
            readiness = Some(signal_ready(&program).await?);
            say("ready");
        }
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    if readiness.is_some() {
        let stdin_closed = async {
            if !program.watch_stdin {
                return std::future::pending().await;
            }
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: leaving the cluster"),
            _ = int.recv() => tracing::info!("SIGINT: leaving the cluster"),
            _ = stdin_closed => tracing::info!("standard input closed: leaving the cluster"),
        }
    }
    // Withdraw readiness first, so no new traffic is routed here while leaving.
    if let Some(listener) = readiness.flatten() {
        listener.abort();
    }
    if let Some(path) = &program.ready_file {
        let _ = std::fs::remove_file(path);
    }
    node.shutdown().await;
    tracing::info!("left the cluster; activations saved");
    Ok(())
}

/// One line on standard output; a reader that went away (a closed pipe) is not an
/// error for a node.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Writes the readiness file and opens the readiness port; returns the port's task.
async fn signal_ready(program: &Program) -> Result<Option<tokio::task::AbortHandle>, VirtualError> {
    if let Some(path) = &program.ready_file {
        std::fs::write(path, b"ready\n").map_err(|e| {
            VirtualError::Setup(format!("GRANARY_READY_FILE {}: {e}", path.display()))
        })?;
    }
    let Some(addr) = program.ready_addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| VirtualError::Setup(format!("GRANARY_READY_ADDR {addr}: {e}")))?;
    let open = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %open, "ready: readiness port open");
    // Accept and close at once: a TCP probe only needs the connection to succeed.
    Ok(Some(
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        })
        .abort_handle(),
    ))
}
