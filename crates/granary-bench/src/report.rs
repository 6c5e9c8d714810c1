//! The output contract shared by every scenario.
//!
//! A scenario builds a [`Reporter`] with the columns its rows may carry, then calls
//! [`Reporter::emit`] once per measured configuration. Each row goes to stdout at
//! once as one JSON object on one line (so a crashed run keeps what it measured),
//! and, with `--csv FILE`, is appended to that file as CSV. [`Reporter::finish`]
//! prints all rows as a readable table on stderr. The progress bar
//! ([`Reporter::progress`]) also draws on stderr, so stdout stays machine-readable.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a row could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    /// Writing a JSON row to stdout failed.
    #[error("cannot write to stdout")]
    Stdout(#[source] io::Error),
    /// The CSV file could not be opened, read or written.
    #[error("cannot write CSV file {path}")]
    CsvIo {
        /// The file given with `--csv`.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The CSV writer failed.
    #[error("cannot write CSV file {path}")]
    Csv {
        /// The file given with `--csv`.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: csv::Error,
    },
    /// The CSV file already holds rows with other columns; appending would mix them.
    #[error("CSV file {path} has columns `{found}`, this scenario writes `{expected}`")]
    CsvColumns {
        /// The file given with `--csv`.
        path: PathBuf,
        /// The header line found in the file.
        found: String,
        /// The header this scenario writes.
        expected: String,
    },
    /// A row did not serialize to a JSON object.
    #[error("a result row is not a JSON object")]
    NotAnObject,
    /// A row has a field that is not one of the scenario's columns.
    #[error("a result row has field `{0}`, which is not one of the scenario's columns")]
    UnknownColumn(String),
    /// Serializing a row failed.
    #[error("cannot serialize a result row")]
    Json(#[from] serde_json::Error),
}

/// The fields every row of the seeds' scenarios starts with, in this order (the
/// output contract of `/docs/BENCHMARKS.md`).
pub(crate) const CONTRACT_COLUMNS: [&str; 12] = [
    "scenario",
    "mode",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "seconds",
    "msgs_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
];

/// [`CONTRACT_COLUMNS`] followed by a scenario's own columns.
pub(crate) fn contract_columns(own: &[&'static str]) -> Vec<&'static str> {
    CONTRACT_COLUMNS.iter().chain(own).copied().collect()
}

/// Writes result rows to stdout (JSON lines), an optional CSV file and, at the end,
/// a table on stderr.
pub(crate) struct Reporter {
    columns: Vec<&'static str>,
    csv: Option<(PathBuf, csv::Writer<File>)>,
    rows: Vec<Map<String, Value>>,
    progress: ProgressBar,
}

impl Reporter {
    /// A reporter for rows with (a subset of) `columns`, in that order, and a
    /// progress bar of `steps` steps. With `csv_path`, rows are appended to that
    /// file; a header is written if the file is new or empty, and an existing file
    /// must have exactly this header.
    pub(crate) fn new(
        columns: &[&'static str],
        csv_path: Option<&Path>,
        steps: u64,
    ) -> Result<Self, ReportError> {
        let csv = match csv_path {
            Some(path) => Some((path.to_path_buf(), open_csv(path, columns)?)),
            None => None,
        };
        let progress = ProgressBar::new(steps);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Ok(Self {
            columns: columns.to_vec(),
            csv,
            rows: Vec::new(),
            progress,
        })
    }

    /// The progress bar (on stderr). Use `println` on it for log lines while it is
    /// drawn, so they don't tear the bar.
    pub(crate) fn progress(&self) -> &ProgressBar {
        &self.progress
    }

    /// Writes one result row: a JSON line on stdout and, with `--csv`, a CSV line.
    /// Fields that are `null` are left out of the JSON and empty in the CSV.
    pub(crate) fn emit<R: Serialize>(&mut self, row: &R) -> Result<(), ReportError> {
        let Value::Object(mut map) = serde_json::to_value(row)? else {
            return Err(ReportError::NotAnObject);
        };
        map.retain(|_, value| !value.is_null());
        if let Some(key) = map.keys().find(|key| !self.columns.contains(&key.as_str())) {
            return Err(ReportError::UnknownColumn(key.clone()));
        }
        let line = serde_json::to_string(&map)?;
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(ReportError::Stdout)?;
        if let Some((path, writer)) = &mut self.csv {
            let record = self.columns.iter().map(|column| match map.get(*column) {
                Some(Value::String(text)) => text.clone(),
                Some(value) => value.to_string(),
                None => String::new(),
            });
            writer
                .write_record(record)
                .and_then(|()| writer.flush().map_err(csv::Error::from))
                .map_err(|source| ReportError::Csv {
                    path: path.clone(),
                    source,
                })?;
        }
        self.rows.push(map);
        Ok(())
    }

    /// [`Self::finish`], handing back every row emitted, in order (for `--plot`).
    pub(crate) fn finish_rows(self) -> Vec<Map<String, Value>> {
        let rows = self.rows.clone();
        self.finish();
        rows
    }

    /// Clears the progress bar and prints every row emitted so far as a table on
    /// stderr (only the columns that some row has).
    pub(crate) fn finish(self) {
        self.progress.finish_and_clear();
        eprint!("{}", render_table(&self.columns, &self.rows));
    }
}

impl Drop for Reporter {
    /// A scenario that fails half way drops its reporter without `finish`: clear
    /// the bar so the error message that follows stands on a clean line.
    fn drop(&mut self) {
        self.progress.finish_and_clear();
    }
}

/// Opens `path` for appending, checking or writing the header.
fn open_csv(path: &Path, columns: &[&str]) -> Result<csv::Writer<File>, ReportError> {
    let io_err = |source| ReportError::CsvIo {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io_err)?;
    let mut first_line = String::new();
    BufReader::new(&file)
        .read_line(&mut first_line)
        .map_err(io_err)?;
    let expected = columns.join(",");
    let found = first_line.trim_end_matches(['\r', '\n']);
    let needs_header = found.is_empty();
    if !needs_header && found != expected {
        return Err(ReportError::CsvColumns {
            path: path.to_path_buf(),
            found: found.to_string(),
            expected,
        });
    }
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(file);
    if needs_header {
        writer
            .write_record(columns)
            .and_then(|()| writer.flush().map_err(csv::Error::from))
            .map_err(|source| ReportError::Csv {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(writer)
}

/// Formats rows as an aligned text table. Columns no row has are left out;
/// columns every row has with the same value (with more than one row) are printed
/// once above the table instead of in every line.
fn render_table(columns: &[&str], rows: &[Map<String, Value>]) -> String {
    let present: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|column| rows.iter().any(|row| row.contains_key(*column)))
        .collect();
    let constant = |column: &str| {
        rows.len() > 1
            && rows
                .iter()
                .all(|row| row.get(column) == rows[0].get(column))
    };
    let (common, shown): (Vec<&str>, Vec<&str>) =
        present.into_iter().partition(|column| constant(column));
    let mut out = String::new();
    if !common.is_empty() {
        let pairs: Vec<String> = common
            .iter()
            .map(|column| format!("{column}={}", format_cell(&rows[0][*column])))
            .collect();
        out.push_str(&pairs.join(" "));
        out.push('\n');
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            shown
                .iter()
                .map(|column| row.get(*column).map(format_cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = shown
        .iter()
        .enumerate()
        .map(|(i, column)| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut push_line = |values: &mut dyn Iterator<Item = &str>| {
        let line: Vec<String> = values
            .zip(&widths)
            .map(|(value, width)| format!("{value:>width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_line(&mut shown.iter().copied());
    for row in &cells {
        push_line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A cell: strings as they are, large numbers without decimals, small ones with a
/// few significant digits.
fn format_cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(x) if number.is_f64() => format_float(x),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}

fn format_float(x: f64) -> String {
    let magnitude = x.abs();
    if magnitude >= 1000.0 {
        format!("{x:.0}")
    } else if magnitude >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[&str] = &["test", "framework", "seconds", "p50_us"];

    #[derive(Serialize)]
    struct Row {
        test: &'static str,
        framework: &'static str,
        seconds: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        p50_us: Option<f64>,
    }

    #[test]
    fn table_hides_empty_columns_lifts_constant_ones_and_aligns_the_rest() {
        let rows: Vec<Map<String, Value>> = [
            Row {
                test: "tell",
                framework: "granary",
                seconds: 0.5,
                p50_us: None,
            },
            Row {
                test: "tell",
                framework: "ractor",
                seconds: 12345.678,
                p50_us: None,
            },
        ]
        .iter()
        .map(|row| match serde_json::to_value(row) {
            Ok(Value::Object(map)) => map,
            other => panic!("row is not an object: {other:?}"),
        })
        .collect();
        let table = render_table(COLUMNS, &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(!table.contains("p50_us"), "empty column shown: {table}");
        assert_eq!(lines[0], "test=tell");
        assert_eq!(lines[1], "framework  seconds");
        assert_eq!(lines[2], "  granary    0.500");
        assert_eq!(lines[3], "   ractor    12346");
    }

    #[test]
    fn csv_append_refuses_a_file_with_other_columns() {
        let dir = std::env::temp_dir().join(format!("granary-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("other.csv");
        std::fs::write(&path, "a,b\n1,2\n").expect("write csv");
        let err = Reporter::new(COLUMNS, Some(&path), 1).err();
        assert!(
            matches!(err, Some(ReportError::CsvColumns { .. })),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn csv_rows_are_appended_under_one_header() {
        let dir = std::env::temp_dir().join(format!("granary-bench-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("rows.csv");
        let _ = std::fs::remove_file(&path);
        for seconds in [1.5, 2.5] {
            let mut reporter = Reporter::new(COLUMNS, Some(&path), 1).expect("reporter");
            reporter
                .emit(&Row {
                    test: "pingpong",
                    framework: "kameo",
                    seconds,
                    p50_us: Some(3.0),
                })
                .expect("emit");
            reporter.progress().finish_and_clear();
        }
        let text = std::fs::read_to_string(&path).expect("read csv");
        assert_eq!(
            text,
            "test,framework,seconds,p50_us\npingpong,kameo,1.5,3.0\npingpong,kameo,2.5,3.0\n"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn emit_rejects_a_field_outside_the_columns() {
        #[derive(Serialize)]
        struct Odd {
            surprise: u8,
        }
        let mut reporter = Reporter::new(COLUMNS, None, 1).expect("reporter");
        let err = reporter.emit(&Odd { surprise: 1 }).err();
        assert!(matches!(err, Some(ReportError::UnknownColumn(ref c)) if c == "surprise"));
        reporter.progress().finish_and_clear();
    }
}
