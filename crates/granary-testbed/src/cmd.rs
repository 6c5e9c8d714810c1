//! Running the system tools the test bed drives (`ip`, `nft`, `tc`), each with a
//! deadline, and the one error type of the test bed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one `ip`/`nft`/`tc` invocation may take before it is killed.
pub(crate) const TOOL_DEADLINE: Duration = Duration::from_secs(10);
/// How often a bounded wait looks at the condition it waits for.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// Everything that can go wrong in the test bed.
#[derive(Debug, thiserror::Error)]
pub enum BedError {
    /// The machine cannot host a test bed (not root, a tool missing, no namespaces).
    #[error("the test bed is not available here: {0}")]
    Unavailable(String),
    /// A tool could not be started.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr (the first 2 KiB).
        stderr: String,
    },
    /// A tool or process did not finish within its deadline (it was killed).
    #[error("`{command}` did not finish within {deadline:?}")]
    Timeout {
        /// The command line, or what was awaited.
        command: String,
        /// The deadline it missed.
        deadline: Duration,
    },
    /// A file of the run directory could not be created, written or read.
    #[error("cannot use {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A signal could not be sent to a process.
    #[error("cannot signal process {pid}")]
    Signal {
        /// The process id.
        pid: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A process exited before printing the line it was expected to print.
    #[error("process `{name}` ended before printing `{expected}` (see {log})")]
    EndedEarly {
        /// The process's name in the test bed.
        name: String,
        /// The line prefix awaited.
        expected: String,
        /// Its log file.
        log: PathBuf,
    },
    /// A host name, index or address was not one of this test bed's.
    #[error("no host `{0}` in this test bed")]
    NoSuchHost(String),
    /// A request that makes no sense (zero hosts, a host in two partition groups, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A command line for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion within [`TOOL_DEADLINE`], with `input` on its stdin,
/// and returns its stdout; a non-zero exit is a [`BedError::Tool`].
pub(crate) fn run_tool(command: &mut Command, input: Option<&str>) -> Result<String, BedError> {
    let text = describe(command);
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BedError::Spawn {
            command: text.clone(),
            source,
        })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits early closes its stdin; its exit status tells why.
        let _ = stdin.write_all(input.as_bytes());
    }
    // The outputs of these tools are small (well under a pipe's buffer), so reading
    // them after the exit cannot dead-lock.
    let status = wait_with_deadline(&mut child, TOOL_DEADLINE, &text)?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    if !status.success() {
        let mut cut = stderr.len().min(2048);
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        stderr.truncate(cut);
        return Err(BedError::Tool {
            command: text,
            status,
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(stdout)
}

/// Waits for `child` to exit within `deadline`; past it, kills it and says so.
pub(crate) fn wait_with_deadline(
    child: &mut Child,
    deadline: Duration,
    what: &str,
) -> Result<ExitStatus, BedError> {
    let until = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BedError::Timeout {
                    command: what.to_string(),
                    deadline,
                });
            }
            Err(source) => {
                return Err(BedError::Spawn {
                    command: what.to_string(),
                    source,
                })
            }
        }
    }
}

/// `ip` with `args`.
pub(crate) fn ip(args: &[&str]) -> Result<String, BedError> {
    run_tool(Command::new("ip").args(args), None)
}
