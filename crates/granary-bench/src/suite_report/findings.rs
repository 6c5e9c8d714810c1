//! The papers' qualitative findings, each checked against the rows of this run:
//! reproduced, not reproduced (and why), or not measured (and why).

use super::{Outcome, ScenarioRun};
use crate::plot::summary::{counter_pairs, options_effects};
use crate::plot::{num, text, Row};

/// What became of one finding here.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Our rows show the same qualitative result.
    Reproduced,
    /// Our rows show otherwise; why we think so.
    NotReproduced(String),
    /// No rows to judge by; why.
    NotMeasured(String),
}

/// One finding of a seed paper beside ours.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// The claim, in a few words.
    pub(crate) claim: &'static str,
    /// The paper's figure, numbers and hardware.
    pub(crate) paper: &'static str,
    /// Our figures from this run.
    pub(crate) ours: String,
    /// The verdict.
    pub(crate) verdict: Verdict,
}

fn rows_of<'a>(runs: &'a [ScenarioRun], name: &str) -> Result<&'a [Row], Verdict> {
    let run = runs
        .iter()
        .find(|r| r.planned.name == name)
        .ok_or_else(|| Verdict::NotMeasured(format!("`{name}` is not in the plan")))?;
    match &run.outcome {
        Outcome::NotAvailable => Err(Verdict::NotMeasured(format!(
            "`{name}` is not available in this build"
        ))),
        Outcome::Skipped => Err(Verdict::NotMeasured(format!(
            "`{name}` was left out of this run"
        ))),
        Outcome::TimedOut if run.rows.is_empty() => Err(Verdict::NotMeasured(format!(
            "`{name}` timed out before its first row"
        ))),
        Outcome::Failed(why) if run.rows.is_empty() => {
            Err(Verdict::NotMeasured(format!("`{name}` failed: {why}")))
        }
        _ if run.rows.is_empty() => Err(Verdict::NotMeasured(format!("`{name}` wrote no rows"))),
        _ => Ok(&run.rows),
    }
}

fn finding(
    claim: &'static str,
    paper: &'static str,
    judged: Result<(String, Verdict), Verdict>,
) -> Finding {
    match judged {
        Ok((ours, verdict)) => Finding {
            claim,
            paper,
            ours,
            verdict,
        },
        Err(verdict) => Finding {
            claim,
            paper,
            ours: "—".into(),
            verdict,
        },
    }
}

/// Mean of `values` (NaN when empty).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Every finding, judged on `runs`; `cores` is this machine's core count.
pub(crate) fn findings(runs: &[ScenarioRun], cores: usize) -> Vec<Finding> {
    vec![
        finding(
            "virtual ≈ distributed for ping-pong",
            "Orleans: virtual grains 1.3× the distributed throughput on average (1.5× at 64 actors); \
             Proto.Actor 1.25× (seed 000 Figs. 9–13; three Raspberry Pi 4B 8 GB workers, Kubernetes)",
            rows_of(runs, "pingpong").map(|rows| mode_ratio(rows, "msgs_per_sec", "virtual ÷ distributed throughput")),
        ),
        finding(
            "virtual sort no slower than distributed",
            "Orleans: virtual sort faster on average; Proto.Actor: virtual equal or faster \
             (seed 000 Figs. 16–17; Raspberry Pi 4 cluster)",
            rows_of(runs, "sort").map(sort_ratio),
        ),
        finding(
            "many-to-many throughput rises with actors up to the core count",
            "big: throughput grows with actors while cores are idle, then flattens under mailbox \
             contention (seed 000 §4; Raspberry Pi 4 cluster, 4 cores per node)",
            rows_of(runs, "big").map(|rows| big_curve(rows, cores)),
        ),
        finding(
            "Partisan's options cut tail latency for 8 MB at 20 ms RTT (echo)",
            "echo: parallelism 4 + named channels + affinity beat Distributed Erlang as concurrency \
             rises, most with 8 MB at 20 ms RTT (seed 002 Figs. 6–7; one 16-vCPU VM, 64 GB)",
            rows_of(runs, "echo").map(|rows| options_cut(rows, "echo")),
        ),
        finding(
            "Partisan's options cut tail latency for 8 MB at 20 ms RTT (kvs)",
            "kvs: the options give lower latency and higher throughput at 20 ms RTT and large \
             objects; at 1 ms RTT Distributed Erlang can win (seed 002 Figs. 9–10; one 16-vCPU VM)",
            rows_of(runs, "kvs").map(|rows| options_cut(rows, "kvs")),
        ),
        finding(
            "the actor counter beats the per-message function by ≥ 5×",
            "serverless actors processed up to 5.95× more messages than AWS Lambda reading and \
             writing DynamoDB per message (seed 001 Fig. 2; AWS Lambda, 3 GB, one warm container)",
            rows_of(runs, "counter").map(counter_ratio),
        ),
        finding(
            "throughput falls smoothly with drop rate and shorter MTTF, never hanging",
            "Aurum IoT: reports/s decrease monotonically towards zero as drop probability rises \
             and as client MTTF shortens, and the system keeps working (seed 003 Tables/Figs. \
             5.3–5.4; Boise State Onyx cluster, 11 servers, 18 client nodes)",
            rows_of(runs, "iot").map(|rows| iot_trend(rows, runs)),
        ),
    ]
}

/// `virtual ÷ distributed` of `field` over matching (actors, payload, list) points.
fn mode_ratio(rows: &[Row], field: &str, what: &str) -> (String, Verdict) {
    let ratios = mode_ratios(rows, field, "random");
    if ratios.is_empty() {
        return (
            "no matching virtual/distributed pairs".into(),
            Verdict::NotMeasured("rows lack one of the modes".into()),
        );
    }
    let (lo, hi) = min_max(&ratios);
    let m = mean(&ratios);
    let ours = format!(
        "{what}: mean {m:.2}× over {} points (range {lo:.2}–{hi:.2})",
        ratios.len()
    );
    let verdict = if (0.75..=1.33).contains(&m) || m > 1.33 {
        Verdict::Reproduced
    } else {
        Verdict::NotReproduced(format!(
            "virtual reaches only {m:.2}× the distributed rate: placement lookups and the extra \
             hop to the directory owner cost more than on the papers' runtime"
        ))
    };
    (ours, verdict)
}

/// `virtual ÷ distributed` of `field` at each point the virtual rows of
/// `placement` share with the distributed rows (virtual rows without a placement
/// field count as `random`, the default).
fn mode_ratios(rows: &[Row], field: &str, placement: &str) -> Vec<f64> {
    mode_pairs(rows, field, placement)
        .into_iter()
        .map(|(v, d, _)| v / d)
        .filter(|x| x.is_finite())
        .collect()
}

/// (virtual, distributed, actors) values of `field` at matching points.
fn mode_pairs(rows: &[Row], field: &str, placement: &str) -> Vec<(f64, f64, f64)> {
    let key = |r: &Row| {
        (
            num(r, "actors").map(f64::to_bits),
            num(r, "payload_bytes").map(f64::to_bits),
            num(r, "list_len").map(f64::to_bits),
        )
    };
    rows.iter()
        .filter(|r| text(r, "mode").as_deref() == Some("virtual"))
        .filter(|r| text(r, "placement").as_deref().unwrap_or("random") == placement)
        .filter_map(|v| {
            let d = rows
                .iter()
                .find(|r| text(r, "mode").as_deref() == Some("distributed") && key(r) == key(v))?;
            Some((
                num(v, field)?,
                num(d, field)?,
                num(v, "actors").unwrap_or(0.0),
            ))
        })
        .collect()
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Sort time virtual ÷ distributed for one placement, and the extra time per
/// actor created (µs): `None` without matching rows.
fn sort_cost(rows: &[Row], placement: &str) -> Option<(f64, f64, usize)> {
    let pairs = mode_pairs(rows, "seconds", placement);
    let ratios: Vec<f64> = pairs
        .iter()
        .map(|(v, d, _)| v / d)
        .filter(|x| x.is_finite())
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let extra_us: Vec<f64> = pairs
        .iter()
        .filter(|(_, _, actors)| *actors > 0.0)
        .map(|(v, d, actors)| (v - d) / actors * 1e6)
        .collect();
    Some((mean(&ratios), mean(&extra_us), ratios.len()))
}

fn sort_ratio(rows: &[Row]) -> (String, Verdict) {
    // The paper's Orleans placed new grains at random: that is the one to judge.
    let Some((random, random_us, points)) = sort_cost(rows, "random") else {
        return (
            "no matching pairs".into(),
            Verdict::NotMeasured("rows lack one of the modes".into()),
        );
    };
    let hash = sort_cost(rows, "hash");
    let mut ours = format!(
        "virtual ÷ distributed sort time over {points} list lengths: random placement \
         {random:.2}× ({random_us:+.0} µs per actor created)"
    );
    if let Some((h, h_us, _)) = hash {
        ours.push_str(&format!(
            "; hash placement {h:.2}× ({h_us:+.0} µs per actor)"
        ));
    }
    let verdict = if random <= 1.1 {
        Verdict::Reproduced
    } else {
        let hop = "with random placement a new identity costs a round trip to its directory \
                   owner, which then asks the chosen node to activate it (a second round trip \
                   unless it chose itself) before the first message is sent; a distributed \
                   child costs one spawn request and the message";
        Verdict::NotReproduced(match hash {
            Some((h, _, _)) if h <= 1.1 => format!(
                "virtual sorting takes {random:.2}× as long: {hop}. Hash placement \
                 (activate on the directory owner) folds the two round trips into one and \
                 brings virtual to {h:.2}×, i.e. the paper's finding holds with hash \
                 placement"
            ),
            Some((h, _, _)) => format!(
                "virtual sorting takes {random:.2}× as long: {hop}. Hash placement \
                 (activate on the directory owner) removes that second round trip, so a new \
                 identity costs as many round trips as a distributed child, yet still takes \
                 {h:.2}×: what remains is the virtual runtime's work per activation \
                 (directory entry, activation, then deactivating and unregistering every \
                 finished sorter), not a hop"
            ),
            None => format!("virtual sorting takes {random:.2}× as long: {hop}"),
        })
    };
    (ours, verdict)
}

/// A round trip faster than this never crossed loopback TCP between processes.
const IN_PROCESS_P50_US: f64 = 20.0;

fn big_curve(rows: &[Row], cores: usize) -> (String, Verdict) {
    let mut parts = Vec::new();
    let mut verdicts = Vec::new();
    let mut modes: Vec<String> = rows.iter().filter_map(|r| text(r, "mode")).collect();
    modes.sort();
    modes.dedup();
    for mode in modes {
        let of_mode = rows
            .iter()
            .filter(|r| text(r, "mode").as_deref() == Some(mode.as_str()));
        // Random placement can put every actor of a small run on one node: its pings
        // never leave the process, so that point is not on the network curve.
        let (on_one_node, networked): (Vec<&Row>, Vec<&Row>) =
            of_mode.partition(|r| num(r, "p50_us").is_some_and(|p| p < IN_PROCESS_P50_US));
        let mut points: Vec<(f64, f64)> = networked
            .iter()
            .filter_map(|r| Some((num(r, "actors")?, num(r, "msgs_per_sec")?)))
            .collect();
        if !on_one_node.is_empty() {
            let left_out: Vec<String> = on_one_node
                .iter()
                .filter_map(|r| Some(format!("{} actors", num(r, "actors")?)))
                .collect();
            parts.push(format!(
                "{mode}: left out {} (p50 < {IN_PROCESS_P50_US} µs: all on one node)",
                left_out.join(", ")
            ));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        if points.len() < 2 {
            continue;
        }
        let first = points[0];
        let peak = points
            .iter()
            .copied()
            .fold(first, |p, q| if q.1 > p.1 { q } else { p });
        let last = points[points.len() - 1];
        parts.push(format!(
            "{mode}: {:.0} msgs/s at {} actors, peak {:.0} at {}, {:.0} at {}",
            first.1, first.0, peak.1, peak.0, last.1, last.0
        ));
        verdicts.push(peak.0 > first.0 || last.1 >= 0.9 * first.1);
    }
    if parts.is_empty() {
        return (
            "fewer than two actor counts".into(),
            Verdict::NotMeasured("the sweep had one actor count".into()),
        );
    }
    let verdict = if verdicts.iter().all(|v| *v) {
        Verdict::Reproduced
    } else {
        Verdict::NotReproduced(format!(
            "this machine has {cores} cores, fewer than the smallest actor count, so the rising \
             part of the curve lies below the sweep; beyond it mailbox contention lowers throughput"
        ))
    };
    (parts.join("; "), verdict)
}

fn options_cut(rows: &[Row], scenario: &str) -> (String, Verdict) {
    let effects: Vec<_> = options_effects(rows)
        .into_iter()
        .filter(|e| e.scenario == scenario)
        .collect();
    let target = effects
        .iter()
        .find(|e| e.payload_bytes >= 8.0 * 1048576.0 && e.rtt_ms >= 20.0);
    let all: Vec<String> = effects
        .iter()
        .map(|e| {
            format!(
                "{} MiB/{} ms ×{}: p99 on ÷ off {:.2}, throughput on ÷ off {:.2}",
                e.payload_bytes / 1048576.0,
                e.rtt_ms,
                e.concurrency,
                e.p99_off_on.1 / e.p99_off_on.0,
                e.rate_off_on.1 / e.rate_off_on.0
            )
        })
        .collect();
    let ours = if all.is_empty() {
        "no on/off pairs".to_string()
    } else {
        all.join("; ")
    };
    let verdict = match target {
        None => Verdict::NotMeasured(
            "the sweep had no 8 MiB / 20 ms point with options on and off".into(),
        ),
        Some(e) if e.p99_off_on.1 < e.p99_off_on.0 => Verdict::Reproduced,
        Some(e) => Verdict::NotReproduced(format!(
            "p99 with the options on is {:.2}× off: on loopback the bytes are copied by two \
             shared cores, not queued behind a slow link, so extra connections add work \
             without removing a bottleneck",
            e.p99_off_on.1 / e.p99_off_on.0
        )),
    };
    (ours, verdict)
}

fn counter_ratio(rows: &[Row]) -> (String, Verdict) {
    let pairs = counter_pairs(rows);
    if pairs.is_empty() {
        return (
            "no actor/function pairs".into(),
            Verdict::NotMeasured("rows lack one of the variants".into()),
        );
    }
    let text: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "{} {} K={}: {:.2}×",
                p.store,
                p.variant,
                p.k,
                p.actor / p.function
            )
        })
        .collect();
    let ratios = |variant: &str| -> Vec<f64> {
        pairs
            .iter()
            .filter(|p| p.variant == variant)
            .map(|p| p.actor / p.function)
            .collect()
    };
    // The paper's actor kept its count in memory: that variant is the one to judge.
    let memory = ratios("actor-memory");
    let write_through = ratios("actor");
    let judged = if memory.is_empty() {
        &write_through
    } else {
        &memory
    };
    let (lo, hi) = min_max(judged);
    let verdict = if lo >= 5.0 {
        Verdict::Reproduced
    } else {
        Verdict::NotReproduced(format!(
            "actor ÷ function is {lo:.2}–{hi:.2}×: both are served in-process next to the \
             store, so the gap is the store's read (and, per increment, write) cost, not a \
             Lambda invocation plus a remote DynamoDB round trip as in the paper"
        ))
    };
    let mut ours = text.join("; ");
    if !memory.is_empty() && !write_through.is_empty() {
        let (wlo, whi) = min_max(&write_through);
        ours.push_str(&format!(
            ". Judged on `actor-memory` (the paper's actor: count in memory, checkpointed); \
             with `write_state` on every increment the actor is {wlo:.2}–{whi:.2}× the \
             function, since both then pay one durable write per message"
        ));
    }
    (ours, verdict)
}

fn iot_trend(rows: &[Row], runs: &[ScenarioRun]) -> (String, Verdict) {
    let y = if rows.iter().any(|r| num(r, "reports_per_sec").is_some()) {
        "reports_per_sec"
    } else {
        "msgs_per_sec"
    };
    let mut parts = Vec::new();
    let mut monotone = true;
    let without = |r: &Row, field: &str| num(r, field).is_none_or(|v| v == 0.0);
    // Beside each point what explains it: resends per report along the drop axis, the
    // fraction of time the clients were up along the MTTF axis.
    for (axis, x, others, falling_when, note) in [
        (
            "drop probability",
            "drop_probability",
            ["client_mttf_s", "server_mttf_s"],
            1.0,
            "resends_per_report",
        ),
        (
            "client MTTF",
            "client_mttf_s",
            ["drop_probability", "server_mttf_s"],
            -1.0,
            "client_uptime",
        ),
    ] {
        let mut points: Vec<(f64, f64, Option<f64>)> = rows
            .iter()
            .filter(|r| others.iter().all(|o| without(r, o)))
            .filter_map(|r| Some((num(r, x)?, num(r, y)?, num(r, note))))
            // An MTTF of 0 means no kills: the mildest point, as if infinite.
            .map(|(x, y, n)| {
                if falling_when < 0.0 && x == 0.0 {
                    (f64::INFINITY, y, n)
                } else {
                    (x, y, n)
                }
            })
            .collect();
        if points.len() < 2 {
            continue;
        }
        // Order from mild to harsh: drop probability up, MTTF down.
        points.sort_by(|a, b| (falling_when * a.0).total_cmp(&(falling_when * b.0)));
        let falls = points.windows(2).all(|w| w[1].1 <= w[0].1 * 1.1);
        monotone &= falls;
        parts.push(format!(
            "{axis}: {}",
            points
                .iter()
                .map(|(x, y, n)| {
                    let x = if x.is_infinite() {
                        "none".to_string()
                    } else {
                        x.to_string()
                    };
                    match n {
                        Some(n) if note == "client_uptime" => {
                            format!("{x} → {y:.0}/s (clients up {:.0} %)", n * 100.0)
                        }
                        Some(n) => format!("{x} → {y:.0}/s ({n:.2} resends/report)"),
                        None => format!("{x} → {y:.0}/s"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let hung = runs
        .iter()
        .any(|r| r.planned.name == "iot" && matches!(r.outcome, Outcome::TimedOut));
    if parts.is_empty() {
        return (
            "no drop or MTTF sweep".into(),
            Verdict::NotMeasured("the rows have fewer than two drop or MTTF points".into()),
        );
    }
    let verdict = if hung {
        Verdict::NotReproduced("the scenario hit the report's time limit".into())
    } else if monotone {
        Verdict::Reproduced
    } else {
        Verdict::NotReproduced(
            "throughput is not monotone within 10 % noise at this short size".into(),
        )
    };
    (parts.join("; "), verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite_report::PLAN;
    use serde_json::json;

    fn run_with(name: &str, rows: Vec<serde_json::Value>) -> ScenarioRun {
        ScenarioRun {
            planned: *PLAN.iter().find(|p| p.name == name).expect("planned"),
            outcome: Outcome::Ok,
            rows: rows
                .into_iter()
                .filter_map(|v| v.as_object().cloned())
                .collect(),
            charts: Vec::new(),
            seconds: 1.0,
            args: Vec::new(),
        }
    }

    #[test]
    fn counter_below_five_times_is_not_reproduced_and_says_why() {
        let runs = [run_with(
            "counter",
            vec![
                json!({"variant": "function", "store": "file", "messages": 100, "msgs_per_sec": 100.0}),
                json!({"variant": "actor", "store": "file", "messages": 100, "msgs_per_sec": 200.0}),
            ],
        )];
        let all = findings(&runs, 2);
        let counter = all
            .iter()
            .find(|f| f.claim.contains("counter"))
            .expect("finding");
        assert!(
            matches!(counter.verdict, Verdict::NotReproduced(_)),
            "{counter:?}"
        );
        assert!(counter.ours.contains("2.00×"));
        // Scenarios without a run are not measured, not failed.
        let pingpong = all
            .iter()
            .find(|f| f.claim.contains("ping-pong"))
            .expect("finding");
        assert!(matches!(pingpong.verdict, Verdict::NotMeasured(_)));
    }

    #[test]
    fn sort_is_judged_on_random_placement_and_reports_hash_beside_it() {
        let row = |mode: &str, placement: Option<&str>, seconds: f64| {
            let mut row = json!({"mode": mode, "actors": 1000, "payload_bytes": 0,
                "list_len": 1000, "seconds": seconds});
            if let Some(p) = placement {
                row["placement"] = json!(p);
            }
            row
        };
        let runs = [run_with(
            "sort",
            vec![
                row("distributed", None, 0.1),
                row("virtual", Some("random"), 0.2),
                row("virtual", Some("hash"), 0.105),
            ],
        )];
        let all = findings(&runs, 2);
        let sort = all
            .iter()
            .find(|f| f.claim.contains("sort"))
            .expect("finding");
        assert!(
            sort.ours.contains("random placement 2.00×"),
            "{}",
            sort.ours
        );
        assert!(sort.ours.contains("+100 µs per actor"), "{}", sort.ours);
        assert!(sort.ours.contains("hash placement 1.05×"), "{}", sort.ours);
        match &sort.verdict {
            Verdict::NotReproduced(why) => assert!(why.contains("holds with hash"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_big_point_placed_all_on_one_node_is_left_out_of_the_curve() {
        let row = |mode: &str, actors: u32, rate: f64, p50: f64| {
            json!({"mode": mode, "actors": actors, "payload_bytes": 0,
                "msgs_per_sec": rate, "p50_us": p50})
        };
        let runs = [run_with(
            "big",
            vec![
                row("virtual", 3, 400_000.0, 2.0),
                row("virtual", 6, 100_000.0, 40.0),
                row("virtual", 12, 200_000.0, 300.0),
            ],
        )];
        let all = findings(&runs, 2);
        let big = all
            .iter()
            .find(|f| f.claim.contains("many-to-many"))
            .expect("finding");
        assert_eq!(big.verdict, Verdict::Reproduced, "{}", big.ours);
        assert!(big.ours.contains("left out 3 actors"), "{}", big.ours);
    }

    #[test]
    fn pingpong_pairs_are_matched_by_actors_and_payload() {
        let runs = [run_with(
            "pingpong",
            vec![
                json!({"mode": "distributed", "actors": 3, "payload_bytes": 0, "msgs_per_sec": 100.0}),
                json!({"mode": "virtual", "actors": 3, "payload_bytes": 0, "msgs_per_sec": 90.0}),
                json!({"mode": "virtual", "actors": 6, "payload_bytes": 0, "msgs_per_sec": 1.0}),
            ],
        )];
        let all = findings(&runs, 2);
        let pingpong = all
            .iter()
            .find(|f| f.claim.contains("ping-pong"))
            .expect("finding");
        assert_eq!(pingpong.verdict, Verdict::Reproduced);
        assert!(pingpong.ours.contains("0.90×"), "{}", pingpong.ours);
    }
}
