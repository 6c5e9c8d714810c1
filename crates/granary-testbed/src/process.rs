//! Processes on the test bed's hosts: launched with `ip netns exec` (which execs,
//! so the pid is the program's), stdout and stderr kept in a log file of the run
//! directory, stdout lines also readable with a deadline ([`Process::wait_for_line`]).
//! `kill -9`, `SIGSTOP`/`SIGCONT` pauses and a delayed start are the faults a
//! process can suffer.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TrySendError};
use std::time::{Duration, Instant};

use crate::bed::{HostId, Testbed};
use crate::cmd::{describe, wait_with_deadline, BedError};

/// How many unread stdout lines a process may have queued; past it, lines are
/// only in the log (a chatty process cannot grow the test bed's memory).
const LINE_QUEUE: usize = 1024;
/// How long a signalled process may take to be reported stopped or running.
pub const SIGNAL_DEADLINE: Duration = Duration::from_secs(2);
/// How long a killed process may take to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);

/// What to launch on a host.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The process's name in the run (its log is `<run dir>/<name>.log`).
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long to wait before the program starts (a node slow to start): the
    /// process exists at once (a shell that sleeps, then execs the program, so
    /// the pid stays the same).
    pub start_delay: Duration,
}

impl Launch {
    /// `program args...`, named `name`, started at once.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, args: Vec<String>) -> Launch {
        Launch {
            name: name.into(),
            program: program.into(),
            args,
            start_delay: Duration::ZERO,
        }
    }

    /// The same, started after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Launch {
        self.start_delay = delay;
        self
    }
}

/// A process running on a host of the test bed. Dropping it kills it (`SIGKILL`)
/// and reaps it.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Testbed {
    /// Launches `launch` inside `host`'s namespace; its stdout and stderr go to
    /// `<run dir>/<name>.log` (appended: a restart keeps the earlier lines).
    pub fn spawn(&self, host: HostId, launch: &Launch) -> Result<Process, BedError> {
        let namespace = &self.host(host)?.namespace;
        let log = self.run_dir().join(format!("{}.log", launch.name));
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|source| BedError::File {
                    path: log.clone(),
                    source,
                })
        };
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]);
        if !launch.start_delay.is_zero() {
            command.args([
                "sh",
                "-c",
                r#"sleep "$0" && exec "$@""#,
                &format!("{:.3}", launch.start_delay.as_secs_f64()),
            ]);
        }
        command
            .arg(&launch.program)
            .args(&launch.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(open_log()?);
        let mut child = command.spawn().map_err(|source| BedError::Spawn {
            command: describe(&command),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (send, lines) = sync_channel(LINE_QUEUE);
        let mut log_file = open_log()?;
        if let Some(stdout) = stdout {
            std::thread::Builder::new()
                .name(format!("testbed-out-{}", launch.name))
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let _ = writeln!(log_file, "{line}");
                        match send.try_send(line) {
                            Ok(()) | Err(TrySendError::Full(_)) => {}
                            Err(TrySendError::Disconnected(_)) => {}
                        }
                    }
                })
                .map_err(|source| BedError::Spawn {
                    command: "a stdout reader thread".into(),
                    source,
                })?;
        }
        Ok(Process {
            name: launch.name.clone(),
            child,
            stdin,
            lines,
            log,
            exit: None,
        })
    }
}

impl Process {
    /// The process's name in the run.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid (the program's: `ip netns exec` and the delay shell exec it).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Its log file (stdout and stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Waits up to `deadline` for a stdout line starting with `prefix` (earlier
    /// lines are skipped; they stay in the log) and returns the rest of it, trimmed.
    pub fn wait_for_line(&mut self, prefix: &str, deadline: Duration) -> Result<String, BedError> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(BedError::Timeout {
                        command: format!(
                            "`{prefix}` from {} (see {})",
                            self.name,
                            self.log.display()
                        ),
                        deadline,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(BedError::EndedEarly {
                        name: self.name.clone(),
                        expected: prefix.to_string(),
                        log: self.log.clone(),
                    })
                }
            }
        }
    }

    /// Writes `line` (and a newline) to the process's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<(), BedError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(BedError::Invalid(format!(
                "the stdin of {} is closed",
                self.name
            )));
        };
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|source| BedError::File {
                path: PathBuf::from(format!("stdin of {}", self.name)),
                source,
            })
    }

    /// Closes the process's stdin (a node process then shuts down gracefully).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// `kill -9`, then reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus, BedError> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        self.signal(rustix::process::Signal::KILL)?;
        self.wait(REAP_DEADLINE)
    }

    /// Stops the process (`SIGSTOP`): it runs no instruction until [`Self::resume`].
    /// Returns once the kernel reports it stopped (signals are delivered
    /// asynchronously), or [`BedError::Timeout`] after [`SIGNAL_DEADLINE`].
    pub fn pause(&self) -> Result<(), BedError> {
        self.signal(rustix::process::Signal::STOP)?;
        self.await_stopped(true)
    }

    /// Continues a paused process (`SIGCONT`).
    /// Returns once the kernel reports it running again.
    pub fn resume(&self) -> Result<(), BedError> {
        self.signal(rustix::process::Signal::CONT)?;
        self.await_stopped(false)
    }

    fn await_stopped(&self, stopped: bool) -> Result<(), BedError> {
        let until = Instant::now() + SIGNAL_DEADLINE;
        while self.is_stopped() != stopped {
            if Instant::now() >= until {
                return Err(BedError::Timeout {
                    command: format!(
                        "{} to be {}",
                        self.name,
                        if stopped { "stopped" } else { "running" }
                    ),
                    deadline: SIGNAL_DEADLINE,
                });
            }
            std::thread::sleep(crate::cmd::POLL);
        }
        Ok(())
    }

    /// Whether the kernel has the process stopped (state `T` in `/proc/<pid>/stat`).
    pub fn is_stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .ok()
            .and_then(|stat| {
                // `pid (comm) S ...`: the state follows the last `)`.
                let after = &stat[stat.rfind(')')? + 1..];
                after
                    .split_whitespace()
                    .next()
                    .map(|s| s == "T" || s == "t")
            })
            .unwrap_or(false)
    }

    /// Waits up to `deadline` for the process to exit; past it, kills it and
    /// returns [`BedError::Timeout`].
    pub fn wait(&mut self, deadline: Duration) -> Result<ExitStatus, BedError> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let status =
            wait_with_deadline(&mut self.child, deadline, &format!("exit of {}", self.name))?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    fn signal(&self, signal: rustix::process::Signal) -> Result<(), BedError> {
        if self.exit.is_some() {
            return Err(BedError::Invalid(format!(
                "{} has already exited",
                self.name
            )));
        }
        let pid = self.pid();
        let target = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| BedError::Invalid(format!("{} has no valid pid ({pid})", self.name)))?;
        rustix::process::kill_process(target, signal).map_err(|errno| BedError::Signal {
            pid,
            source: errno.into(),
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = wait_with_deadline(&mut self.child, REAP_DEADLINE, &self.name);
        }
    }
}
