//! The report's `README.md`: findings beside the papers', the scenario table, and a
//! section per scenario with its rows and charts.

use serde_json::Value;

use super::findings::{findings, Verdict};
use super::machine::Machine;
use super::{Outcome, ScenarioRun};
use crate::plot::Row;

/// Everything the README is written from.
pub(crate) struct Report<'a> {
    /// Every scenario of the plan, in order.
    pub(crate) runs: &'a [ScenarioRun],
    /// The machine before the first scenario.
    pub(crate) machine_before: &'a Machine,
    /// The machine after the last one (for its load).
    pub(crate) machine_after: &'a Machine,
    /// Wall time of the whole report.
    pub(crate) total_seconds: f64,
    /// Whether scenarios ran at `--quick` size.
    pub(crate) quick: bool,
    /// This report's own arguments.
    pub(crate) command: String,
}

/// Most rows shown per scenario (all are in `rows/`).
const MAX_TABLE_ROWS: usize = 40;

/// Short text of an outcome.
pub(crate) fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::NotAvailable => "not available in this build".into(),
        Outcome::Skipped => "not run (left out with --only)".into(),
        Outcome::Ok => "ok".into(),
        Outcome::Failed(why) => format!("failed: {why}"),
        Outcome::TimedOut => "timed out (killed at the report's limit)".into(),
    }
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Reproduced => "**reproduced**".into(),
        Verdict::NotReproduced(why) => format!("**not reproduced**: {why}"),
        Verdict::NotMeasured(why) => format!("not measured: {why}"),
    }
}

/// Pipes would end a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => {
                if x.abs() >= 100.0 {
                    format!("{x:.0}")
                } else if x.abs() >= 1.0 {
                    format!("{x:.2}")
                } else {
                    format!("{x:.3}")
                }
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The rows as a markdown table; columns with one value in every row are listed
/// once above it.
fn rows_table(rows: &[Row]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let constant = |c: &str| rows.len() > 1 && rows.iter().all(|r| r.get(c) == rows[0].get(c));
    let (common, shown): (Vec<&str>, Vec<&str>) = columns.into_iter().partition(|c| constant(c));
    let mut out = String::new();
    if !common.is_empty() {
        let pairs: Vec<String> = common
            .iter()
            .filter_map(|c| Some(format!("`{c}`={}", value_text(rows[0].get(*c)?))))
            .collect();
        out.push_str(&format!("All rows: {}.\n\n", pairs.join(", ")));
    }
    out.push_str(&format!("| {} |\n", shown.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(shown.len())));
    for row in rows.iter().take(MAX_TABLE_ROWS) {
        let cells: Vec<String> = shown
            .iter()
            .map(|c| {
                row.get(*c)
                    .map(value_text)
                    .map(|t| cell(&t))
                    .unwrap_or_default()
            })
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if rows.len() > MAX_TABLE_ROWS {
        out.push_str(&format!(
            "\n{} more rows in the rows file.\n",
            rows.len() - MAX_TABLE_ROWS
        ));
    }
    out
}

/// The whole README.
pub(crate) fn readme(report: &Report) -> String {
    let machine = report.machine_before;
    let mut out = String::new();
    out.push_str("# granary benchmark report\n\n");
    out.push_str(&format!(
        "Written by `granary-bench {}` (release build) in {:.0} s{}.\n\n",
        report.command,
        report.total_seconds,
        if report.quick {
            ", every scenario at `--quick` size"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "**Machine**: {}. Load after the run{}. All node processes ran on this one machine \
         over 127.0.0.1; the box is shared, so compare ratios within one run, not absolute \
         numbers across runs.\n\n",
        machine.describe(),
        report.machine_after.load_text()
    ));
    out.push_str(
        "Rerun: `cargo run --release -p granary-bench -- report --out docs/report`. Each \
         scenario's JSON rows are in `rows/`, its stderr in `logs/`; the charts below are drawn \
         from those rows (`granary-bench plot --rows rows/echo.jsonl --out DIR` redraws them).\n\n",
    );

    out.push_str("## Findings: the papers' beside ours\n\n");
    out.push_str(
        "The papers' numbers come from their hardware (named in each row), ours from the \
         machine above; only the qualitative finding is compared.\n\n",
    );
    out.push_str("| finding | paper (hardware) | this run | verdict |\n|---|---|---|---|\n");
    for f in findings(report.runs, machine.cores) {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(f.claim),
            cell(f.paper),
            cell(&f.ours),
            cell(&verdict_text(&f.verdict))
        ));
    }

    out.push_str("\n## Scenarios\n\n| scenario | seed | arguments | outcome | rows | seconds |\n|---|---|---|---|---|---|\n");
    for run in report.runs {
        out.push_str(&format!(
            "| [`{0}`](#{0}) | {1} | `{2}` | {3} | {4} | {5:.0} |\n",
            run.planned.name,
            run.planned.seed,
            if run.args.is_empty() {
                run.planned.args.join(" ")
            } else {
                run.args.join(" ")
            },
            cell(&outcome_text(&run.outcome)),
            run.rows.len(),
            run.seconds
        ));
    }

    for run in report.runs {
        out.push_str(&format!("\n## {}\n\n", run.planned.name));
        match &run.outcome {
            Outcome::NotAvailable | Outcome::Skipped => {
                out.push_str(&format!("{}.\n", outcome_text(&run.outcome)));
                continue;
            }
            outcome => out.push_str(&format!(
                "`granary-bench {} {}` — {}, {:.0} s.\n\n",
                run.planned.name,
                run.args.join(" "),
                cell(&outcome_text(outcome)),
                run.seconds
            )),
        }
        if !run.rows.is_empty() {
            out.push_str(&rows_table(&run.rows));
            out.push('\n');
        }
        for chart in &run.charts {
            out.push_str(&format!("![{chart}]({chart})\n\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_lift_constant_columns_and_escape_pipes() {
        let rows: Vec<Row> = [
            json!({"scenario": "echo", "options": "a|b", "msgs_per_sec": 1234.5}),
            json!({"scenario": "echo", "options": "on", "msgs_per_sec": 0.5}),
        ]
        .into_iter()
        .filter_map(|v| v.as_object().cloned())
        .collect();
        let table = rows_table(&rows);
        assert!(table.starts_with("All rows: `scenario`=echo."), "{table}");
        assert!(table.contains("| options | msgs_per_sec |"));
        assert!(table.contains("| a\\|b | 1234 |"), "{table}");
        assert!(table.contains("| on | 0.500 |"));
    }
}
