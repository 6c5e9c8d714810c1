//! Fault schedules: which faults a chaos run applies, in which order, to which
//! hosts and for how long — drawn from a seed, so printing the seed is enough to
//! replay a run's schedule.

use std::fmt;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bed::HostId;

/// One fault of a schedule. Node hosts are `HostId(0)..HostId(nodes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the node on `host`; restart it on the same address with the next
    /// incarnation after `down_for`, its program starting `slow_start` later still.
    KillRestart {
        /// The host.
        host: HostId,
        /// Time between the kill and the restart.
        down_for: Duration,
        /// Delay between the restarted process's creation and its program's start.
        slow_start: Duration,
    },
    /// Split the node hosts into two groups (`minority` and the rest) for `hold`;
    /// the client stays with the majority.
    Partition {
        /// The smaller group.
        minority: Vec<HostId>,
        /// How long the partition lasts.
        hold: Duration,
    },
    /// Cut `a` from `c` both ways for `hold` while every other host reaches both.
    PartialCut {
        /// One side.
        a: HostId,
        /// The other side.
        c: HostId,
        /// How long.
        hold: Duration,
    },
    /// Drop what `from` sends to `to` for `hold`.
    OneWay {
        /// The sender whose packets vanish.
        from: HostId,
        /// The receiver.
        to: HostId,
        /// How long.
        hold: Duration,
    },
    /// `kill -9` the node on `host`; after `down_for`, drop what `silent` sends to
    /// `host` and restart it (next incarnation); heal `hold` after it is ready. The
    /// restarted node takes its directory ranges back while one host of their
    /// activations cannot answer it: a join behind a one-way cut.
    RejoinBehindCut {
        /// The host killed and restarted.
        host: HostId,
        /// The host whose packets to the restarted node vanish.
        silent: HostId,
        /// Time between the kill and the restart.
        down_for: Duration,
        /// How long the cut stays after the restarted node is ready.
        hold: Duration,
    },
    /// Cut every node host from every other for `hold` (the client still reaches
    /// each): every node is a minority of one and downs itself, so when the cut heals
    /// no member is Up to let the others back in — the rejoiners must form the
    /// cluster again. Drawn only by the `scatter` mix.
    Scatter {
        /// How long.
        hold: Duration,
    },
    /// `SIGSTOP` the node on `host` for `hold`, then `SIGCONT`.
    Pause {
        /// The host.
        host: HostId,
        /// How long it is stopped.
        hold: Duration,
    },
    /// One step of a rolling upgrade: stop the node on `host` gracefully (its stdin
    /// closes: it hands its activations off and leaves), then start `program` (another
    /// build of the node binary) on the same address with the next incarnation and
    /// wait until it is ready. Never drawn from a seed; named by a test's schedule.
    Upgrade {
        /// The host.
        host: HostId,
        /// The node binary of the new version.
        program: std::path::PathBuf,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = |id: &HostId| format!("h{}", id.0 + 1);
        match self {
            Fault::KillRestart {
                host,
                down_for,
                slow_start,
            } => write!(
                f,
                "kill -9 {} (restart after {:.1} s, slow start {:.1} s)",
                h(host),
                down_for.as_secs_f64(),
                slow_start.as_secs_f64()
            ),
            Fault::Partition { minority, hold } => {
                let names: Vec<String> = minority.iter().map(h).collect();
                write!(
                    f,
                    "partition {}|rest for {:.1} s",
                    names.join(","),
                    hold.as_secs_f64()
                )
            }
            Fault::PartialCut { a, c, hold } => {
                write!(f, "cut {}-{} for {:.1} s", h(a), h(c), hold.as_secs_f64())
            }
            Fault::OneWay { from, to, hold } => {
                write!(
                    f,
                    "one-way cut {}->{} for {:.1} s",
                    h(from),
                    h(to),
                    hold.as_secs_f64()
                )
            }
            Fault::RejoinBehindCut {
                host,
                silent,
                down_for,
                hold,
            } => write!(
                f,
                "kill -9 {} (restart after {:.1} s behind a one-way cut {}->{} held {:.1} s more)",
                h(host),
                down_for.as_secs_f64(),
                h(silent),
                h(host),
                hold.as_secs_f64()
            ),
            Fault::Pause { host, hold } => {
                write!(f, "pause {} for {:.1} s", h(host), hold.as_secs_f64())
            }
            Fault::Scatter { hold } => {
                write!(f, "scatter every node for {:.1} s", hold.as_secs_f64())
            }
            Fault::Upgrade { host, program } => {
                let name = program.file_name().unwrap_or(program.as_os_str());
                write!(f, "upgrade {} to {}", h(host), name.to_string_lossy())
            }
        }
    }
}

/// Which faults a schedule draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMix {
    /// Kill -9 + restart, 2|3 partition, A–C cut, pause (the mix), plus
    /// one-way cuts, slow starts and restarts behind a one-way cut.
    Mixed,
    /// Only kill -9 + restart.
    Kills,
    /// Only network faults (partitions and cuts).
    Network,
    /// Only pauses.
    Pauses,
    /// Only scatters: every node cut from every other (see [`Fault::Scatter`]).
    Scatter,
    /// No faults (a baseline run).
    None,
}

impl std::str::FromStr for FaultMix {
    type Err = String;
    fn from_str(s: &str) -> Result<FaultMix, String> {
        match s {
            "mixed" => Ok(FaultMix::Mixed),
            "kills" => Ok(FaultMix::Kills),
            "network" => Ok(FaultMix::Network),
            "pauses" => Ok(FaultMix::Pauses),
            "scatter" => Ok(FaultMix::Scatter),
            "none" => Ok(FaultMix::None),
            other => Err(format!(
                "unknown fault mix `{other}` (mixed, kills, network, pauses, scatter, none)"
            )),
        }
    }
}

/// How long faults last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultTimes {
    /// Longest hold of a partition or cut (each draws 50–100 % of it).
    pub max_hold: Duration,
    /// How long a pause lasts (the issue: 5 s; the CI test: shorter).
    pub pause: Duration,
    /// Longest time a killed node stays down (each draws 25–100 % of it).
    pub max_down: Duration,
    /// Longest slow start of a restarted node (each draws 0–100 % of it).
    pub max_slow_start: Duration,
}

impl Default for FaultTimes {
    fn default() -> FaultTimes {
        FaultTimes {
            max_hold: Duration::from_secs(8),
            pause: Duration::from_secs(5),
            max_down: Duration::from_secs(4),
            max_slow_start: Duration::from_secs(2),
        }
    }
}

/// `count` faults on `nodes` node hosts, drawn from `seed`. A mixed schedule
/// cycles through the kinds in a shuffled order, so a few faults already cover
/// kill, partition, cut and pause.
pub fn draw(seed: u64, nodes: usize, mix: FaultMix, count: usize, times: FaultTimes) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kinds: &[u8] = match mix {
        FaultMix::Mixed => &[0, 1, 2, 3, 4, 5],
        FaultMix::Kills => &[0],
        FaultMix::Network => &[1, 2, 4],
        FaultMix::Pauses => &[3],
        FaultMix::Scatter => &[6],
        FaultMix::None => return Vec::new(),
    };
    if nodes < 2 {
        return Vec::new();
    }
    let mut order: Vec<u8> = Vec::new();
    let mut faults = Vec::with_capacity(count);
    let fraction =
        |rng: &mut ChaCha8Rng, max: Duration, low: f64| max.mul_f64(rng.random_range(low..=1.0));
    for _ in 0..count {
        if order.is_empty() {
            order = kinds.to_vec();
            order.shuffle(&mut rng);
        }
        let kind = order.pop().unwrap_or(0);
        let host = HostId(rng.random_range(0..nodes));
        let other = HostId((host.0 + rng.random_range(1..nodes)) % nodes);
        faults.push(match kind {
            0 => Fault::KillRestart {
                host,
                down_for: fraction(&mut rng, times.max_down, 0.25),
                slow_start: fraction(&mut rng, times.max_slow_start, 0.0),
            },
            1 => {
                let mut hosts: Vec<HostId> = (0..nodes).map(HostId).collect();
                hosts.shuffle(&mut rng);
                // 2|3 of five; in general the smaller half.
                hosts.truncate(nodes / 2);
                hosts.sort();
                Fault::Partition {
                    minority: hosts,
                    hold: fraction(&mut rng, times.max_hold, 0.5),
                }
            }
            2 => Fault::PartialCut {
                a: host,
                c: other,
                hold: fraction(&mut rng, times.max_hold, 0.5),
            },
            3 => Fault::Pause {
                host,
                hold: times.pause,
            },
            4 => Fault::OneWay {
                from: host,
                to: other,
                hold: fraction(&mut rng, times.max_hold, 0.5),
            },
            6 => Fault::Scatter {
                hold: fraction(&mut rng, times.max_hold, 0.5),
            },
            _ => Fault::RejoinBehindCut {
                host,
                silent: other,
                down_for: fraction(&mut rng, times.max_down, 0.25),
                hold: fraction(&mut rng, times.max_hold, 0.5),
            },
        });
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule_and_another_seed_differs() {
        let a = draw(7, 5, FaultMix::Mixed, 10, FaultTimes::default());
        let b = draw(7, 5, FaultMix::Mixed, 10, FaultTimes::default());
        let c = draw(8, 5, FaultMix::Mixed, 10, FaultTimes::default());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_scatter_schedule_draws_only_scatters_and_the_mixed_one_none() {
        let times = FaultTimes::default();
        let scatter = draw(3, 5, FaultMix::Scatter, 4, times);
        assert_eq!(scatter.len(), 4);
        for f in &scatter {
            assert!(
                matches!(f, Fault::Scatter { hold } if *hold <= times.max_hold),
                "{f}"
            );
        }
        let mixed = draw(3, 5, FaultMix::Mixed, 12, times);
        assert!(!mixed.iter().any(|f| matches!(f, Fault::Scatter { .. })));
    }

    #[test]
    fn a_mixed_schedule_of_six_has_every_kind_and_partitions_are_two_of_five() {
        let faults = draw(1, 5, FaultMix::Mixed, 6, FaultTimes::default());
        assert!(faults
            .iter()
            .any(|f| matches!(f, Fault::KillRestart { .. })));
        assert!(faults
            .iter()
            .any(|f| matches!(f, Fault::PartialCut { a, c, .. } if a != c)));
        assert!(faults.iter().any(|f| matches!(f, Fault::Pause { .. })));
        assert!(faults.iter().any(|f| matches!(f, Fault::OneWay { .. })));
        assert!(faults
            .iter()
            .any(|f| matches!(f, Fault::RejoinBehindCut { host, silent, .. } if host != silent)));
        for f in &faults {
            if let Fault::Partition { minority, .. } = f {
                assert_eq!(minority.len(), 2, "{f}");
            }
        }
    }
}
