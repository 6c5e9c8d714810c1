//! Charts of result rows, shaped like the seed papers' figures, for every scenario.
//!
//! One shared entry point, [`plot_rows`], takes a scenario's JSON rows (the output
//! contract of [`crate::report`]) and writes PNG files: scenarios call it for `--plot
//! DIR`, `granary-bench plot --rows FILE.jsonl --out DIR` calls it on saved rows, and
//! `granary-bench report` calls it for its charts. What is drawn depends on the
//! scenario and on which fields its rows carry:
//!
//! | scenario | charts (seed figure) |
//! |---|---|
//! | `pingpong`, `big` | throughput vs actors per payload, lines per mode (and virtual placement); p50/p99 vs actors (000 Figs. 3–4, 7–8) |
//! | `sort` | time vs list length per mode and placement (000 Figs. 5–6) |
//! | `iot` | throughput vs drop rate, vs MTTF, vs clients per server (003 §5.4) |
//! | `echo`, `kvs` | throughput and p50/p99 vs concurrency, options on/off, per payload and RTT (002 Figs. 6–7, 9–10) |
//! | `counter` | messages per second per K, actor vs function per store (001 Fig. 2) |
//! | `local`, `remote`, `storage` | one panel per test, one colour per framework (or store), grouped bars, log y where a panel spans decades |
//! | `crdt` | bytes sent with delta vs full-state gossip, beside bytes per op, convergence and ops/s |
//! | `cluster` | kill → Down per survivor (p50/max the rows carry), join, gossip cost |
//! | `failover` | kill → first answer per identity and request latency, p50/p99/p99.9/max |
//! | `overlay` | bytes sent vs nodes per overlay (002 Fig. 11); peer-to-peer receivers vs nodes killed |
//! | anything else | throughput vs actors when actors vary, else one bar per configuration |
//!
//! plotters draws with its bitmap backend (pure Rust PNG encoding) and a system
//! TrueType font through `ab_glyph`, so nothing native needs to build.

mod chart;
mod compare;
mod panels;
pub(crate) mod summary;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value};

use chart::{BarChart, Line, LineChart};

/// One result row, as a JSON object.
pub(crate) type Row = Map<String, Value>;

/// Why charts could not be drawn.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlotError {
    /// No font to draw text with.
    #[error("{0}")]
    NoFont(String),
    /// The output directory could not be created.
    #[error("cannot create {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A rows file could not be read.
    #[error("cannot read rows from {path}")]
    Rows {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The chart file.
        path: PathBuf,
        /// plotters' error, as text.
        reason: String,
    },
}

/// Options of `granary-bench plot`.
#[derive(Debug, Args)]
pub(crate) struct PlotArgs {
    /// JSON-lines files of result rows (a scenario's stdout), repeatable. Lines that
    /// are not JSON objects are skipped.
    #[arg(long, required = true)]
    rows: Vec<PathBuf>,
    /// Directory the PNG charts are written to.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `granary-bench plot`: charts for every scenario found in the rows.
pub(crate) fn run(args: PlotArgs) -> Result<(), PlotError> {
    let mut rows = Vec::new();
    for path in &args.rows {
        rows.extend(read_rows(path)?);
    }
    let mut by_scenario: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for row in rows {
        let scenario = text(&row, "scenario").unwrap_or_else(|| "unnamed".into());
        by_scenario.entry(scenario).or_default().push(row);
    }
    for (scenario, rows) in &by_scenario {
        for path in plot_rows(scenario, rows, &args.out)? {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The JSON objects among the lines of `path`.
pub(crate) fn read_rows(path: &Path) -> Result<Vec<Row>, PlotError> {
    let file = std::fs::File::open(path).map_err(|source| PlotError::Rows {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| PlotError::Rows {
            path: path.to_path_buf(),
            source,
        })?;
        if let Ok(Value::Object(row)) = serde_json::from_str(&line) {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// A field as a number (numbers, and numeric strings).
pub(crate) fn num(row: &Row, field: &str) -> Option<f64> {
    match row.get(field)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A field as text.
pub(crate) fn text(row: &Row, field: &str) -> Option<String> {
    match row.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The first of `candidates` that some row has.
fn first_field<'a>(rows: &[Row], candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .find(|field| rows.iter().any(|row| num(row, field).is_some()))
}

/// Fields of `candidates` whose value differs between rows.
fn varying<'a>(rows: &[Row], candidates: &[&'a str]) -> Vec<&'a str> {
    candidates
        .iter()
        .copied()
        .filter(|field| {
            let first = rows.first().and_then(|r| r.get(*field));
            rows.iter().any(|row| row.get(*field) != first)
        })
        .collect()
}

/// A readable label of `fields`' values in `row` (`mode=virtual payload=512`).
fn label(row: &Row, fields: &[&str]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|field| {
            let value = text(row, field)?;
            Some(match *field {
                "payload_bytes" => bytes_label(num(row, field).unwrap_or(0.0)),
                "rtt_ms" => format!("RTT {value} ms"),
                "bandwidth_mbit" => format!("link {value} Mbit/s"),
                "options" => format!("options {value}"),
                _ => value,
            })
        })
        .collect();
    if parts.is_empty() {
        "all".to_string()
    } else {
        parts.join(" ")
    }
}

fn bytes_label(bytes: f64) -> String {
    if bytes >= 1048576.0 && bytes % 1048576.0 == 0.0 {
        format!("{} MiB", bytes / 1048576.0)
    } else if bytes >= 1024.0 && bytes % 1024.0 == 0.0 {
        format!("{} KiB", bytes / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// A file-name-safe form of `text`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A line chart family: one chart per facet value, one line per series value.
struct Spec<'a> {
    /// File name part and title.
    name: &'a str,
    /// X field.
    x: &'a str,
    /// Y field (ignored for latency charts, which draw p50 and p99).
    y: &'a str,
    /// Fields whose values make the lines.
    series: Vec<&'a str>,
    /// Fields whose values make separate charts.
    facets: Vec<&'a str>,
    log_x: bool,
    log_y: bool,
    /// Draw p50 (thin) and p99 (thick) instead of `y`.
    latency: bool,
}

/// Caption of a field on an axis.
fn axis_label(field: &str) -> String {
    match field {
        "msgs_per_sec" => "messages / s".into(),
        "seconds" => "seconds".into(),
        "actors" => "actors".into(),
        "concurrency" => "concurrent requests".into(),
        "list_len" => "list length".into(),
        other => other.replace('_', " "),
    }
}

/// Groups `rows` by the label of `fields`, in first-seen order.
fn group<'r>(rows: &'r [Row], fields: &[&str]) -> Vec<(String, Vec<&'r Row>)> {
    let mut groups: Vec<(String, Vec<&Row>)> = Vec::new();
    for row in rows {
        let key = label(row, fields);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    groups
}

/// The mean `y` at each `x` of `rows` (rows without either are left out).
fn points(rows: &[&Row], x: &str, y: &str) -> Vec<(f64, f64)> {
    let mut sums: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
    for row in rows {
        if let (Some(xv), Some(yv)) = (num(row, x), num(row, y)) {
            let entry = sums.entry(xv.to_bits()).or_insert((xv, 0.0, 0.0));
            entry.1 += yv;
            entry.2 += 1.0;
        }
    }
    sums.into_values().map(|(x, sum, n)| (x, sum / n)).collect()
}

fn line_charts(
    scenario: &str,
    rows: &[Row],
    spec: &Spec,
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let rows: Vec<Row> = rows
        .iter()
        .filter(|row| num(row, spec.x).is_some())
        .cloned()
        .collect();
    let mut written = Vec::new();
    for (facet, members) in group(&rows, &spec.facets) {
        let members: Vec<Row> = members.into_iter().cloned().collect();
        let mut lines = Vec::new();
        for (colour, (series, rows)) in group(&members, &spec.series).into_iter().enumerate() {
            if spec.latency {
                for (percentile, field, width) in [("p50", "p50_us", 1), ("p99", "p99_us", 3)] {
                    lines.push(Line {
                        label: format!("{series} {percentile}"),
                        points: points(&rows, spec.x, field),
                        colour,
                        width,
                    });
                }
            } else {
                lines.push(Line {
                    label: series,
                    points: points(&rows, spec.x, spec.y),
                    colour,
                    width: 2,
                });
            }
        }
        if lines.iter().all(|line| line.points.is_empty()) {
            continue;
        }
        let facet_part = if spec.facets.is_empty() {
            String::new()
        } else {
            format!(", {facet}")
        };
        let chart = LineChart {
            title: format!("{scenario}: {}{facet_part}", spec.name),
            x_label: axis_label(spec.x),
            y_label: if spec.latency {
                "latency, µs (thin p50, thick p99)".into()
            } else {
                axis_label(spec.y)
            },
            log_x: spec.log_x,
            log_y: spec.log_y,
            lines,
        };
        let file = if spec.facets.is_empty() {
            format!("{scenario}-{}.png", slug(spec.name))
        } else {
            format!("{scenario}-{}-{}.png", slug(spec.name), slug(&facet))
        };
        written.push(chart::draw_lines(&dir.join(file), &chart)?);
    }
    Ok(written)
}

/// Writes the charts of `scenario` drawn from `rows` into `dir`; returns the files.
/// Rows of other scenarios are ignored; no rows, no charts.
pub(crate) fn plot_rows(
    scenario: &str,
    rows: &[Row],
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let rows: Vec<Row> = rows
        .iter()
        .filter(|row| text(row, "scenario").is_none_or(|s| s == scenario))
        .cloned()
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let has_latency = rows.iter().any(|row| num(row, "p99_us").is_some());
    let mut specs: Vec<Spec> = Vec::new();
    match scenario {
        "pingpong" | "big" => {
            specs.push(Spec {
                name: "throughput vs actors",
                x: "actors",
                y: "msgs_per_sec",
                series: vec!["mode", "placement"],
                facets: vec!["payload_bytes"],
                log_x: false,
                log_y: false,
                latency: false,
            });
            specs.push(Spec {
                name: "latency vs actors",
                x: "actors",
                y: "p99_us",
                series: vec!["mode", "placement"],
                facets: vec!["payload_bytes"],
                log_x: false,
                log_y: true,
                latency: true,
            });
        }
        "sort" => specs.push(Spec {
            name: "time vs list length",
            x: "list_len",
            y: "seconds",
            series: vec!["mode", "placement"],
            facets: vec![],
            log_x: false,
            log_y: false,
            latency: false,
        }),
        "echo" | "kvs" => {
            let x = first_field(&rows, &["concurrency", "actors"]).unwrap_or("actors");
            specs.push(Spec {
                name: "throughput vs concurrency",
                x,
                y: "msgs_per_sec",
                series: vec!["options"],
                facets: vec!["payload_bytes", "rtt_ms", "bandwidth_mbit"],
                log_x: false,
                log_y: false,
                latency: false,
            });
            specs.push(Spec {
                name: "latency vs concurrency",
                x,
                y: "p99_us",
                series: vec!["options"],
                facets: vec!["payload_bytes", "rtt_ms", "bandwidth_mbit"],
                log_x: false,
                log_y: true,
                latency: true,
            });
        }
        "chaos" => return chaos_bars(&rows, dir),
        "iot" => return iot_charts(&rows, dir),
        "counter" => return counter_bars(&rows, dir),
        "local" | "remote" | "storage" => return compare::comparison(scenario, &rows, dir),
        "crdt" => return compare::crdt(&rows, dir),
        "cluster" => return compare::cluster(&rows, dir),
        "failover" => return compare::failover(&rows, dir),
        "overlay" => return overlay_charts(&rows, dir),
        _ => {
            let distinct_actors = {
                let mut seen: Vec<u64> = rows
                    .iter()
                    .filter_map(|row| num(row, "actors").map(f64::to_bits))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len()
            };
            let fields: Vec<&str> = rows
                .iter()
                .flat_map(|row| row.iter())
                .filter(|(k, v)| (v.is_string() || v.is_boolean()) && k.as_str() != "scenario")
                .map(|(k, _)| k.as_str())
                .collect();
            let mut candidates: Vec<&str> = Vec::new();
            for field in fields {
                if !candidates.contains(&field) {
                    candidates.push(field);
                }
            }
            let mut labels = varying(&rows, &candidates);
            if distinct_actors >= 2 && rows.iter().any(|r| num(r, "msgs_per_sec").is_some()) {
                labels.extend(varying(&rows, &["payload_bytes"]));
                specs.push(Spec {
                    name: "throughput vs actors",
                    x: "actors",
                    y: "msgs_per_sec",
                    series: labels,
                    facets: vec![],
                    log_x: false,
                    log_y: false,
                    latency: false,
                });
            } else {
                labels.extend(varying(&rows, &["payload_bytes", "nodes", "actors"]));
                return generic_bars(scenario, &rows, &labels, dir);
            }
        }
    }
    let mut written = Vec::new();
    for spec in &specs {
        if spec.latency && !has_latency {
            continue;
        }
        written.extend(line_charts(scenario, &rows, spec, dir)?);
    }
    Ok(written)
}

/// `overlay`: bytes sent vs nodes, one line per overlay (seed 002 Fig. 11), from the
/// rows without kills; and, for peer-to-peer, the fraction of survivors receiving
/// updates vs the fraction of nodes killed, one line per size.
fn overlay_charts(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let (steady, killed): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| num(r, "killed_fraction").is_none_or(|k| k == 0.0));
    let mut written = line_charts(
        "overlay",
        &steady,
        &Spec {
            name: "bytes sent vs nodes",
            x: "nodes",
            y: "bytes_sent",
            series: vec!["mode"],
            facets: vec![],
            log_x: true,
            log_y: true,
            latency: false,
        },
        dir,
    )?;
    let mut reach: Vec<Row> = rows
        .iter()
        .filter(|r| text(r, "mode").as_deref() == Some("peer-to-peer"))
        .cloned()
        .collect();
    if !killed.is_empty() {
        reach.retain(|r| num(r, "receivers_fraction_min").is_some());
        written.extend(line_charts(
            "overlay",
            &reach,
            &Spec {
                name: "peer-to-peer receivers vs nodes killed",
                x: "killed_fraction",
                y: "receivers_fraction_min",
                series: vec!["nodes"],
                facets: vec![],
                log_x: false,
                log_y: false,
                latency: false,
            },
            dir,
        )?);
    }
    Ok(written)
}

/// Whether a row of `iot` had no failure of `kind` (`drop_probability`, an MTTF):
/// the field is absent or 0 (an MTTF of 0 means no kills).
fn without(row: &Row, kind: &str) -> bool {
    num(row, kind).is_none_or(|v| v == 0.0)
}

/// `iot`: reports per second vs drop probability (rows without kills) and vs client
/// and server MTTF (rows without drops, the other MTTF off), one line per clients
/// per server.
fn iot_charts(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let y = first_field(rows, &["reports_per_sec", "msgs_per_sec"]).unwrap_or("msgs_per_sec");
    let series = varying(rows, &["clients_per_server", "servers", "mode"]);
    let mut written = Vec::new();
    let axes: [(&str, &str, &[&str]); 3] = [
        (
            "throughput vs drop probability",
            "drop_probability",
            &["client_mttf_s", "server_mttf_s"],
        ),
        (
            "throughput vs client MTTF",
            "client_mttf_s",
            &["drop_probability", "server_mttf_s"],
        ),
        (
            "throughput vs server MTTF",
            "server_mttf_s",
            &["drop_probability", "client_mttf_s"],
        ),
    ];
    for (name, x, others) in axes {
        let selected: Vec<Row> = rows
            .iter()
            .filter(|r| others.iter().all(|o| without(r, o)))
            // An MTTF of 0 is "no kills", not a point at zero on the MTTF axis.
            .filter(|r| x == "drop_probability" || num(r, x).is_some_and(|v| v > 0.0))
            .cloned()
            .collect();
        if selected.len() < 2 {
            continue;
        }
        let spec = Spec {
            name,
            x,
            y,
            series: series.clone(),
            facets: vec![],
            log_x: false,
            log_y: false,
            latency: false,
        };
        written.extend(line_charts("iot", &selected, &spec, dir)?);
    }
    Ok(written)
}

/// `counter`: messages per second for each K, one bar per variant and store.
fn counter_bars(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut categories: Vec<f64> = rows.iter().filter_map(|r| num(r, "messages")).collect();
    categories.sort_by(f64::total_cmp);
    categories.dedup();
    let series: Vec<(String, Vec<Option<f64>>)> = group(rows, &["variant", "store"])
        .into_iter()
        .map(|(name, members)| {
            let values = categories
                .iter()
                .map(|k| {
                    members
                        .iter()
                        .find(|r| num(r, "messages") == Some(*k))
                        .and_then(|r| num(r, "msgs_per_sec"))
                })
                .collect();
            (name, values)
        })
        .collect();
    let chart = BarChart {
        title: "counter: increments per second, actor vs function (K messages)".into(),
        y_label: "messages / s".into(),
        categories: categories.iter().map(|k| format!("K={k}")).collect(),
        series,
    };
    Ok(vec![chart::draw_bars(
        &dir.join("counter-throughput.png"),
        &chart,
    )?])
}

/// `chaos`: per run (seed), the longest acknowledgement gap after each kind of fault
/// (0 = none of that kind in the run), and the anomalies the checker counted.
fn chaos_bars(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    // Too many bars are unreadable: the first 24 runs.
    let shown: Vec<&Row> = rows.iter().take(24).collect();
    let categories: Vec<String> = shown
        .iter()
        .map(|r| {
            let seed = num(r, "seed").unwrap_or(0.0);
            match text(r, "workload") {
                Some(w) if w != "counters" => format!("{w} {seed}"),
                _ => format!("{seed}"),
            }
        })
        .collect();
    let per_kind = [
        ("kill -9 + restart", "recover_kill_ms"),
        ("partition", "recover_partition_ms"),
        ("A-C cut", "recover_cut_ms"),
        ("one-way cut", "recover_one_way_ms"),
        ("pause", "recover_pause_ms"),
    ];
    let recovery = BarChart {
        title: "chaos: longest gap without an acknowledgement per fault kind, per run (seed)"
            .into(),
        y_label: "seconds".into(),
        categories: categories.clone(),
        series: per_kind
            .iter()
            .map(|(name, field)| {
                let values = shown
                    .iter()
                    .map(|r| num(r, field).filter(|v| *v > 0.0).map(|v| v / 1000.0))
                    .collect();
                (name.to_string(), values)
            })
            .collect(),
    };
    let kinds = [
        ("lost writes", "lost"),
        ("applied twice", "duplicates"),
        ("stale reads", "stale_reads"),
        ("double activations", "double_handled"),
        ("placed under a lease", "placed_under_lease"),
        ("invariants broken", "invariant_violations"),
    ];
    let anomalies = BarChart {
        title: "chaos: anomalies per run (seed); the bar: none".into(),
        y_label: "count".into(),
        categories,
        series: kinds
            .iter()
            .map(|(name, field)| {
                let values = shown
                    .iter()
                    .map(|r| Some(num(r, field).unwrap_or(0.0)))
                    .collect();
                (name.to_string(), values)
            })
            .collect(),
    };
    Ok(vec![
        chart::draw_bars(&dir.join("chaos-recovery-per-fault-kind.png"), &recovery)?,
        chart::draw_bars(&dir.join("chaos-anomalies.png"), &anomalies)?,
    ])
}

/// Any other scenario: one bar of messages per second per configuration.
fn generic_bars(
    scenario: &str,
    rows: &[Row],
    labels: &[&str],
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let y = first_field(rows, &["msgs_per_sec", "ops_per_sec", "seconds"]);
    let Some(y) = y else {
        return Ok(Vec::new());
    };
    // Too many bars are unreadable: the first 24 configurations.
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| num(r, y).is_some())
        .take(24)
        .collect();
    let chart = BarChart {
        title: format!("{scenario}: {}", axis_label(y)),
        y_label: axis_label(y),
        categories: shown.iter().map(|r| label(r, labels)).collect(),
        series: vec![(axis_label(y), shown.iter().map(|r| num(r, y)).collect())],
    };
    Ok(vec![chart::draw_bars(
        &dir.join(format!("{scenario}-{}.png", slug(y))),
        &chart,
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: Value) -> Row {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn labels_slugs_and_points_are_readable() {
        let a = row(
            serde_json::json!({"scenario": "echo", "payload_bytes": 1048576, "rtt_ms": 20.0, "concurrency": 4, "msgs_per_sec": 10.0}),
        );
        let b = row(
            serde_json::json!({"scenario": "echo", "payload_bytes": 1048576, "rtt_ms": 20.0, "concurrency": 4, "msgs_per_sec": 20.0}),
        );
        assert_eq!(label(&a, &["payload_bytes", "rtt_ms"]), "1 MiB RTT 20.0 ms");
        assert_eq!(slug("1 MiB RTT 20.0 ms"), "1-mib-rtt-20-0-ms");
        // Two rows at one x: their mean.
        assert_eq!(
            points(&[&a, &b], "concurrency", "msgs_per_sec"),
            vec![(4.0, 15.0)]
        );
        assert_eq!(
            varying(&[a.clone(), b], &["msgs_per_sec", "rtt_ms"]),
            vec!["msgs_per_sec"]
        );
        assert!(plot_rows("echo", &[], Path::new("/nonexistent"))
            .expect("no rows")
            .is_empty());
    }

    #[test]
    fn comparison_draws_unknown_labels_and_decade_spanning_panels() {
        let rows: Vec<Row> = [
            serde_json::json!({"scenario": "local", "test": "tell", "framework": "granary", "msgs_per_sec": 8.0e6}),
            serde_json::json!({"scenario": "local", "test": "tell", "framework": "actix (same arbiter)", "msgs_per_sec": 2.0e4}),
            serde_json::json!({"scenario": "local", "test": "tell", "framework": "ractor", "setup": "current-thread", "msgs_per_sec": 3.0e5}),
            serde_json::json!({"scenario": "local", "test": "tell", "framework": "ractor", "setup": "multi-thread", "msgs_per_sec": 2.0e6}),
            serde_json::json!({"scenario": "local", "test": "spawn", "framework": "blocking std socket", "payload_bytes": 16, "msgs_per_sec": 9.0}),
            serde_json::json!({"scenario": "local", "test": "spawn", "framework": "blocking std socket", "payload_bytes": 1024, "msgs_per_sec": 900.0}),
        ]
        .into_iter()
        .map(row)
        .collect();
        let names: Vec<String> = rows
            .iter()
            .map(|r| compare::series_name(&rows, r, Some("framework")))
            .collect();
        assert_eq!(names[1], "actix (same arbiter)");
        assert_eq!(names[2], "ractor (current-thread)");
        assert_eq!(names[3], "ractor (multi-thread)");
        let dir = std::env::temp_dir().join(format!("granary-plot-test-{}", std::process::id()));
        let written = match plot_rows("local", &rows, &dir) {
            Err(PlotError::NoFont(why)) => {
                eprintln!("skipped: {why}");
                return;
            }
            other => other.expect("drawn"),
        };
        assert_eq!(written, vec![dir.join("local-throughput-per-test.png")]);
        assert!(std::fs::metadata(&written[0]).expect("written").len() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
