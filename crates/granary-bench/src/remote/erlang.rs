//! Distributed Erlang as a baseline: `erlang/remote_bench.erl`, compiled with `erlc`
//! into a temp dir at start, one server node kept for the run and one client node
//! per measurement, both named `…@127.0.0.1` with a shared cookie. The distribution
//! listener binds 127.0.0.1 only (`inet_dist_use_interface`), and so does the epmd
//! that `erl` starts (`ERL_EPMD_ADDRESS`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::peer::Peer;
use super::{Framework, Job, Measured, RemoteError, Sizes, Test};

/// The module's source, built into the binary so the bench runs from anywhere.
const SOURCE: &str = include_str!("../../erlang/remote_bench.erl");

/// Cookie shared by the two nodes.
const COOKIE: &str = "granary_bench_cookie";

/// A compiled module and, once started, the server node.
pub(crate) struct Erlang {
    dir: PathBuf,
    server: Option<(Peer, String)>,
    clients: u32,
}

impl Drop for Erlang {
    fn drop(&mut self) {
        self.server = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

impl Erlang {
    /// Compiles the module; `Err` says why Erlang is skipped.
    pub(crate) fn prepare() -> Result<Erlang, String> {
        for program in ["erl", "erlc"] {
            if !on_path(program) {
                return Err(format!("`{program}` is not on PATH (install Erlang/OTP)"));
            }
        }
        let dir = std::env::temp_dir().join(format!("granary-bench-erlang-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let source = dir.join("remote_bench.erl");
        std::fs::write(&source, SOURCE)
            .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
        let output = Command::new("erlc")
            .arg("-o")
            .arg(&dir)
            .arg(&source)
            .output()
            .map_err(|e| format!("cannot run erlc: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "erlc failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Erlang {
            dir,
            server: None,
            clients: 0,
        })
    }

    fn node(&self, name: &str, code: &Path) -> Command {
        let mut command = Command::new("erl");
        command
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .args(["-noshell", "-name"])
            .arg(format!("{name}_{}@127.0.0.1", std::process::id()))
            .args(["-setcookie", COOKIE])
            .args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"])
            .arg("-pa")
            .arg(code);
        command
    }

    /// Measures one job with a fresh client node against the server node.
    pub(crate) async fn measure(
        &mut self,
        job: &Job,
        sizes: &Sizes,
    ) -> Result<Measured, RemoteError> {
        if self.server.is_none() {
            let mut command = self.node("granary_bench_srv", &self.dir);
            command.args(["-run", "remote_bench", "server"]);
            let mut peer = Peer::spawn("the Erlang server node", command)?;
            let name = peer.expect("listening", Duration::from_secs(60)).await?;
            self.server = Some((peer, name));
        }
        let Some((_, server)) = &self.server else {
            return Err(RemoteError::Erlang("the server node is not running".into()));
        };
        let test = match job.test {
            Test::Pingpong => "pingpong",
            Test::Oneway => "oneway",
            Test::Pairs => return Err(RemoteError::Erlang("`pairs` has no Erlang version".into())),
        };
        self.clients += 1;
        let mut command = self.node(&format!("granary_bench_cli{}", self.clients), &self.dir);
        command
            .args(["-run", "remote_bench", "client", server, test])
            .arg(job.payload.to_string())
            .arg(job.count.to_string());
        let mut client = Peer::spawn("an Erlang client node", command)?;
        let line = client
            .expect("result", sizes.timeout + Duration::from_secs(30))
            .await?;
        let numbers: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| RemoteError::PeerProtocol {
                what: "an Erlang client node".into(),
                line: line.clone(),
                expected: "result NUMBERS",
            })?;
        let ns = |i: usize| numbers.get(i).map(|&n| n as f64 / 1e9);
        let us = |i: usize| numbers.get(i).map(|&n| n as f64 / 1e3);
        match (job.test, numbers.len()) {
            (Test::Pingpong, 6) => Ok(Measured {
                seconds: ns(1).unwrap_or_default(),
                messages: numbers[0],
                latency_us: Some([
                    us(2).unwrap_or_default(),
                    us(3).unwrap_or_default(),
                    us(4).unwrap_or_default(),
                    us(5).unwrap_or_default(),
                ]),
                ..Measured::default()
            }),
            (Test::Oneway, 2) => Ok(Measured {
                seconds: ns(1).unwrap_or_default(),
                messages: numbers[0],
                ..Measured::default()
            }),
            _ => Err(RemoteError::framework(
                Framework::Erlang,
                "read the result",
                format!("unexpected `result {line}`"),
            )),
        }
    }
}
