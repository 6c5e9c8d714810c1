//! Rows to panel figures: the framework comparisons (`local`, `remote`, `storage`: one
//! panel per test, one colour per framework or store), the CRDT finding (bytes sent
//! with and without deltas) and the distributions of `cluster` and `failover`.
//!
//! Series are whatever the rows name, in the order first seen, so a new framework or
//! setup gets its own colour and legend entry without a change here.

use std::path::{Path, PathBuf};

use super::panels::{draw_panels, Panel, Panels, Scale};
use super::{bytes_label, first_field, num, text, PlotError, Row};

/// Numeric fields that describe a configuration rather than measure it: when one of
/// them differs between rows of one series in one test, it splits the test's groups.
const CONFIG_NUMBERS: &[&str] = &[
    "payload_bytes",
    "nodes",
    "actors",
    "parallelism",
    "senders",
    "concurrency",
    "clients",
    "workers",
];

/// Fields that name the series (the first one the rows carry).
const SERIES_FIELDS: &[&str] = &["framework", "store", "variant"];

/// Fields that qualify a series name, `ractor (current-thread)`, when one framework
/// ran with more than one value of them.
const QUALIFIERS: &[&str] = &["setup", "runtime"];

/// Fields never used to split categories (they name the panel or the series, or say
/// which scenario a row is from).
fn fixed(field: &str) -> bool {
    field == "scenario"
        || field == "test"
        || SERIES_FIELDS.contains(&field)
        || QUALIFIERS.contains(&field)
}

/// The series name of `row`: its framework (or store), qualified by [`QUALIFIERS`]
/// that vary for that framework across `rows`.
pub(super) fn series_name(rows: &[Row], row: &Row, field: Option<&str>) -> String {
    let Some(field) = field else {
        return "all".into();
    };
    let base = text(row, field).unwrap_or_else(|| "?".into());
    let mut qualifiers = Vec::new();
    for q in QUALIFIERS {
        let Some(value) = text(row, q) else { continue };
        let varies = rows
            .iter()
            .filter(|r| text(r, field).as_deref() == Some(base.as_str()))
            .any(|r| text(r, q).as_deref() != Some(value.as_str()));
        if varies {
            qualifiers.push(value);
        }
    }
    if qualifiers.is_empty() {
        base
    } else {
        format!("{base} ({})", qualifiers.join(", "))
    }
}

/// The text of one configuration field in a category name.
fn part(row: &Row, field: &str) -> Option<String> {
    let value = row.get(field)?;
    Some(match (field, value) {
        ("payload_bytes", _) => bytes_label(num(row, field)?),
        ("nodes", _) => {
            let n = num(row, field)?;
            format!("{n} node{}", if n == 1.0 { "" } else { "s" })
        }
        (_, serde_json::Value::Bool(true)) => field.replace('_', " "),
        (_, serde_json::Value::Bool(false)) => format!("no {}", field.replace('_', " ")),
        (_, serde_json::Value::Number(_)) => {
            format!("{} {}", field.replace('_', " "), text(row, field)?)
        }
        _ => text(row, field)?,
    })
}

/// Pushes `key` onto `keys` unless it is there; returns its index.
fn index_of(keys: &mut Vec<String>, key: String) -> usize {
    match keys.iter().position(|k| *k == key) {
        Some(i) => i,
        None => {
            keys.push(key);
            keys.len() - 1
        }
    }
}

/// Means of the (series, category) cells of `cells`, as a panel's `values`.
fn means(cells: &[(usize, usize, f64)], series: usize, categories: usize) -> Vec<Vec<Option<f64>>> {
    let mut sums = vec![vec![(0.0, 0u32); categories]; series];
    for &(s, c, v) in cells {
        sums[s][c].0 += v;
        sums[s][c].1 += 1;
    }
    sums.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(sum, n)| (n > 0).then(|| sum / f64::from(n)))
                .collect()
        })
        .collect()
}

/// `local`, `remote`, `storage`: one panel per test, one bar per framework (or store)
/// in each group; groups split by whatever configuration differs within a series
/// (payload, nodes, parallelism...). Writes `{scenario}-throughput-per-test.png`.
pub(super) fn comparison(
    scenario: &str,
    rows: &[Row],
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let Some(y) = first_field(rows, &["msgs_per_sec", "ops_per_sec"]) else {
        return Ok(Vec::new());
    };
    let owned: Vec<Row> = rows
        .iter()
        .filter(|r| num(r, y).is_some())
        .cloned()
        .collect();
    let series_field = SERIES_FIELDS
        .iter()
        .copied()
        .find(|f| owned.iter().any(|r| text(r, f).is_some()));
    let names: Vec<String> = owned
        .iter()
        .map(|r| series_name(&owned, r, series_field))
        .collect();
    let mut series: Vec<String> = Vec::new();
    for name in &names {
        index_of(&mut series, name.clone());
    }
    let mut tests: Vec<String> = Vec::new();
    for row in &owned {
        index_of(
            &mut tests,
            text(row, "test").unwrap_or_else(|| scenario.to_string()),
        );
    }
    let mut panels = Vec::new();
    for test in &tests {
        let members: Vec<usize> = (0..owned.len())
            .filter(|&i| text(&owned[i], "test").unwrap_or_else(|| scenario.to_string()) == *test)
            .collect();
        // Candidate fields: every text or flag field, and the configuration numbers.
        let mut fields: Vec<&str> = Vec::new();
        for &i in &members {
            for (k, v) in owned[i].iter() {
                let config =
                    v.is_string() || v.is_boolean() || CONFIG_NUMBERS.contains(&k.as_str());
                if config && !fixed(k) && !fields.contains(&k.as_str()) {
                    fields.push(k.as_str());
                }
            }
        }
        // A field splits the groups when two rows of one series differ in it (a field
        // that only differs between series says nothing the colour does not).
        let splitting: Vec<&str> = fields
            .into_iter()
            .filter(|f| {
                members.iter().any(|&i| {
                    members
                        .iter()
                        .any(|&j| names[i] == names[j] && owned[i].get(*f) != owned[j].get(*f))
                })
            })
            .collect();
        let mut categories: Vec<String> = Vec::new();
        let mut cells = Vec::new();
        for &i in &members {
            let parts: Vec<String> = splitting
                .iter()
                .filter_map(|f| part(&owned[i], f))
                .collect();
            let category = index_of(&mut categories, parts.join("\n"));
            let s = series.iter().position(|n| *n == names[i]).unwrap_or(0);
            if let Some(v) = num(&owned[i], y) {
                cells.push((s, category, v));
            }
        }
        let per_actor = members
            .iter()
            .all(|&i| num(&owned[i], "actors_per_sec").is_some());
        panels.push(Panel {
            title: test.clone(),
            y_label: if per_actor {
                "actors / s".into()
            } else {
                super::axis_label(y)
            },
            scale: Scale::Auto,
            values: means(&cells, series.len(), categories.len()),
            categories,
        });
    }
    let what = match series_field {
        Some("store") => "store",
        Some(field) => field,
        None => "configuration",
    };
    let figure = Panels {
        title: format!("{scenario}: throughput per test, one colour per {what} (higher is better)"),
        series,
        panels,
    };
    let path = dir.join(format!("{scenario}-throughput-per-test.png"));
    Ok(vec![draw_panels(&path, &figure)?])
}

/// `crdt`: the finding is the bytes each gossip mode sent for the same operations
/// (linear axis, so 38× fewer looks like it), beside bytes per operation, the time to
/// converge and operations per second (which barely differ). Writes `crdt-bytes-sent.png`.
pub(super) fn crdt(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut series: Vec<String> = Vec::new();
    for row in rows {
        index_of(
            &mut series,
            text(row, "gossip").unwrap_or_else(|| "all".into()),
        );
    }
    let category = rows
        .first()
        .map(|r| {
            let nodes = num(r, "nodes")
                .map(|n| format!("{n} nodes"))
                .unwrap_or_default();
            let ops = num(r, "messages")
                .map(|n| format!("{n} operations"))
                .unwrap_or_default();
            format!("{nodes}\n{ops}").trim().to_string()
        })
        .unwrap_or_default();
    let panel = |title: &str, y_label: &str, field: &str, scale: Scale| {
        let cells: Vec<(usize, usize, f64)> = rows
            .iter()
            .filter_map(|r| {
                let name = text(r, "gossip").unwrap_or_else(|| "all".into());
                let s = series.iter().position(|n| *n == name)?;
                Some((s, 0, num(r, field)?))
            })
            .collect();
        Panel {
            title: title.into(),
            y_label: y_label.into(),
            scale,
            categories: vec![category.clone()],
            values: means(&cells, series.len(), 1),
        }
    };
    let bytes = |mode: &str| {
        rows.iter()
            .find(|r| text(r, "gossip").as_deref() == Some(mode))
            .and_then(|r| num(r, "bytes_sent"))
    };
    let title = match (bytes("delta"), bytes("full_state")) {
        (Some(delta), Some(full)) if delta > 0.0 => format!(
            "crdt: bytes sent for the same operations: full-state gossip sends {:.1}× what deltas send",
            full / delta
        ),
        _ => "crdt: gossip cost per mode (the rows carry no byte counts for both modes)".into(),
    };
    let figure = Panels {
        title,
        panels: vec![
            panel("bytes sent", "bytes", "bytes_sent", Scale::Linear),
            panel(
                "bytes per operation",
                "bytes",
                "bytes_per_op",
                Scale::Linear,
            ),
            panel("time to converge", "ms", "converge_ms", Scale::Linear),
            panel(
                "operations / s",
                "operations / s",
                "msgs_per_sec",
                Scale::Linear,
            ),
        ],
        series,
    };
    Ok(vec![draw_panels(
        &dir.join("crdt-bytes-sent.png"),
        &figure,
    )?])
}

/// Percentile series shared by the distribution charts, with their field suffixes.
const PERCENTILES: [(&str, &str); 4] = [
    ("p50", "p50"),
    ("p99", "p99"),
    ("p99.9", "p999"),
    ("max", "max"),
];

/// Series of the distribution charts: the percentiles, then a single measured value.
fn distribution_series() -> Vec<String> {
    PERCENTILES
        .iter()
        .map(|(name, _)| (*name).to_string())
        .chain(["one value".to_string()])
        .collect()
}

/// The percentiles of `{prefix}_{p}_{unit}` in `row`, scaled by `factor`, as the
/// column `category` of a panel's cells.
fn percentile_cells(
    row: &Row,
    prefix: &str,
    unit: &str,
    factor: f64,
    category: usize,
) -> Vec<(usize, usize, f64)> {
    PERCENTILES
        .iter()
        .enumerate()
        .filter_map(|(s, (_, suffix))| {
            let field = if prefix.is_empty() {
                format!("{suffix}_{unit}")
            } else {
                format!("{prefix}_{suffix}_{unit}")
            };
            Some((s, category, num(row, &field)? * factor))
        })
        .collect()
}

/// `cluster`: the time from a kill to Down as the survivors saw it (the percentiles
/// the rows carry; the per-survivor times are not in the rows), beside the simulated
/// cluster's detection time; joins; gossip cost. Writes `cluster-membership.png`.
pub(super) fn cluster(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let series = distribution_series();
    let single = PERCENTILES.len();
    let name = |r: &Row| {
        let test = text(r, "test").unwrap_or_else(|| "run".into());
        let mut second = Vec::new();
        if let Some(n) = num(r, "nodes") {
            second.push(format!("{n} nodes"));
        }
        second.extend(text(r, "transport"));
        if test == "sim" {
            second.push("model".into());
        }
        format!("{test}\n{}", second.join(", "))
    };
    let mut down = (Vec::new(), Vec::new());
    let mut join = (Vec::new(), Vec::new());
    let mut gossip = (Vec::new(), Vec::new());
    for row in rows {
        let label = name(row);
        let cells = percentile_cells(row, "down", "ms", 1.0, 0);
        if !cells.is_empty() || num(row, "failure_ms").is_some() {
            let c = index_of(&mut down.0, label.clone());
            down.1.extend(cells.into_iter().map(|(s, _, v)| (s, c, v)));
            if let Some(v) = num(row, "failure_ms") {
                down.1.push((single, c, v));
            }
        }
        if let Some(v) = num(row, "join_up_ms").or_else(|| num(row, "join_ms")) {
            let c = index_of(&mut join.0, label.clone());
            join.1.push((single, c, v));
        }
        if let Some(v) = num(row, "gossip_bytes_per_node_per_sec") {
            let c = index_of(&mut gossip.0, label.clone());
            gossip.1.push((single, c, v));
        }
    }
    let panel =
        |title: &str,
         y_label: &str,
         (categories, cells): (Vec<String>, Vec<(usize, usize, f64)>)| Panel {
            title: title.into(),
            y_label: y_label.into(),
            scale: Scale::Auto,
            values: means(&cells, series.len(), categories.len()),
            categories,
        };
    let figure = Panels {
        title: "cluster: kill to Down per survivor (percentiles in the rows), join, gossip cost"
            .into(),
        panels: vec![
            panel("kill → Down, per survivor", "ms", down),
            panel("join → Up", "ms", join),
            panel("gossip per node (idle)", "bytes / s", gossip),
        ],
        series: series.clone(),
    };
    Ok(vec![draw_panels(
        &dir.join("cluster-membership.png"),
        &figure,
    )?])
}

/// `failover`: recovery per identity after the kill and request latency, as the
/// percentiles the rows carry, per run. Writes `failover-recovery.png`.
pub(super) fn failover(rows: &[Row], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let series = distribution_series();
    let mut categories = Vec::new();
    let mut recovery = Vec::new();
    let mut latency = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let run = num(row, "run").map_or(format!("run {}", i + 1), |r| format!("run {r}"));
        let c = index_of(&mut categories, run);
        recovery.extend(percentile_cells(row, "recover", "ms", 1.0, c));
        latency.extend(percentile_cells(row, "", "us", 1e-3, c));
    }
    let sum = |field: &str| rows.iter().filter_map(|r| num(r, field)).sum::<f64>();
    let title = format!(
        "failover: {} identities, one of {} nodes killed; lost {}, duplicates {}",
        rows.first().and_then(|r| num(r, "actors")).unwrap_or(0.0),
        rows.first().and_then(|r| num(r, "nodes")).unwrap_or(0.0),
        sum("lost"),
        sum("duplicates"),
    );
    let figure = Panels {
        title,
        panels: vec![
            Panel {
                title: "kill → first answer, per identity".into(),
                y_label: "ms".into(),
                scale: Scale::Auto,
                values: means(&recovery, series.len(), categories.len()),
                categories: categories.clone(),
            },
            Panel {
                title: "request latency during the run".into(),
                y_label: "ms".into(),
                scale: Scale::Auto,
                values: means(&latency, series.len(), categories.len()),
                categories,
            },
        ],
        series,
    };
    Ok(vec![draw_panels(
        &dir.join("failover-recovery.png"),
        &figure,
    )?])
}
