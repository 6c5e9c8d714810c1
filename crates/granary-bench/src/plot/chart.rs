//! Drawing: line charts and grouped bar charts as PNG files, with plotters' bitmap
//! backend. Values on a log axis are drawn as their log10 on a linear axis and the
//! ticks are labelled with the real values, so one code path serves both scales.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::PlotError;

/// Chart size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// Fonts tried in order (any TrueType file works; `GRANARY_BENCH_FONT` goes first).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font as plotters' "sans-serif" once per process.
pub(super) fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var("GRANARY_BENCH_FONT").ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // plotters keeps fonts for the whole process; so does this binary.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
        Err(format!(
            "no TrueType font found (tried $GRANARY_BENCH_FONT and {}); install fonts-dejavu-core \
             or set GRANARY_BENCH_FONT",
            FONT_CANDIDATES.join(", ")
        ))
    })
    .clone()
    .map_err(PlotError::NoFont)
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Legend text.
    pub(crate) label: String,
    /// (x, y) points, drawn in x order.
    pub(crate) points: Vec<(f64, f64)>,
    /// Colour index (lines with one index share a colour).
    pub(crate) colour: usize,
    /// Stroke width in pixels (p50 thin, p99 thick in latency charts).
    pub(crate) width: u32,
}

/// A line chart.
#[derive(Debug, Clone)]
pub(crate) struct LineChart {
    /// Title above the plot.
    pub(crate) title: String,
    /// X axis caption.
    pub(crate) x_label: String,
    /// Y axis caption.
    pub(crate) y_label: String,
    /// Logarithmic x axis.
    pub(crate) log_x: bool,
    /// Logarithmic y axis.
    pub(crate) log_y: bool,
    /// The lines.
    pub(crate) lines: Vec<Line>,
}

/// A grouped bar chart: one group per category, one bar per series.
#[derive(Debug, Clone)]
pub(crate) struct BarChart {
    /// Title above the plot.
    pub(crate) title: String,
    /// Y axis caption.
    pub(crate) y_label: String,
    /// Category names along the x axis.
    pub(crate) categories: Vec<String>,
    /// (series label, one value per category).
    pub(crate) series: Vec<(String, Vec<Option<f64>>)>,
}

/// The colour of series `index`: ten well-separated colours first, then hues a golden
/// angle apart, so a chart with any number of series never repeats a colour.
pub(super) fn colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    if let Some(colour) = PALETTE.get(index) {
        return *colour;
    }
    let n = (index - PALETTE.len()) as f64;
    // Alternate lightness too, so neighbouring extra hues differ twice over.
    let lightness = if index.is_multiple_of(2) { 0.38 } else { 0.55 };
    let (r, g, b) = HSLColor((0.05 + n * 0.618_034) % 1.0, 0.7, lightness).rgb();
    RGBColor(r, g, b)
}

pub(super) fn draw_error(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    }
}

/// Axis value: log10 on a log axis (non-positive values are dropped there).
pub(super) fn scaled(value: f64, log: bool) -> Option<f64> {
    match (log, value.is_finite()) {
        (_, false) => None,
        (true, _) if value <= 0.0 => None,
        (true, _) => Some(value.log10()),
        (false, _) => Some(value),
    }
}

/// Tick text for an axis value.
pub(super) fn tick(value: f64, log: bool) -> String {
    let real = if log { 10f64.powf(value) } else { value };
    let magnitude = real.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", real / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.0}k", real / 1e3)
    } else if magnitude >= 10.0 || real == real.round() {
        format!("{real:.0}")
    } else {
        format!("{real:.2}")
    }
}

/// The range of `values` with a margin (a flat range gets a width of its own).
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    if from_zero && lo > 0.0 {
        lo = 0.0;
    }
    if (hi - lo).abs() < f64::EPSILON {
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let pad = (hi - lo) * 0.05;
    (if from_zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad)
}

/// Draws `chart` to `path` (PNG).
pub(crate) fn draw_lines(path: &Path, chart: &LineChart) -> Result<PathBuf, PlotError> {
    ensure_font()?;
    let err = draw_error(path);
    let lines: Vec<(&Line, Vec<(f64, f64)>)> = chart
        .lines
        .iter()
        .map(|line| {
            let mut points: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter_map(|&(x, y)| Some((scaled(x, chart.log_x)?, scaled(y, chart.log_y)?)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (line, points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let all = || lines.iter().flat_map(|(_, p)| p.iter().copied());
    let (x0, x1) = range(all().map(|p| p.0), false);
    let (y0, y1) = range(all().map(|p| p.1), !chart.log_y);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(e.to_string()))?;
    let (log_x, log_y) = (chart.log_x, chart.log_y);
    let x_ticks = |v: &f64| tick(*v, log_x);
    let y_ticks = |v: &f64| tick(*v, log_y);
    plot.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (line, points) in &lines {
        let style = colour(line.colour).stroke_width(line.width);
        let marker = colour(line.colour).filled();
        plot.draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(|e| err(e.to_string()))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        plot.draw_series(points.iter().map(|&p| Circle::new(p, 3, marker)))
            .map_err(|e| err(e.to_string()))?;
    }
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(path.to_path_buf())
}

/// Draws `chart` to `path` (PNG).
pub(crate) fn draw_bars(path: &Path, chart: &BarChart) -> Result<PathBuf, PlotError> {
    ensure_font()?;
    let err = draw_error(path);
    let groups = chart.categories.len().max(1);
    let per_group = chart.series.len().max(1);
    let top = chart
        .series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..groups as f64, 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    let categories = chart.categories.clone();
    let category_label = move |v: &f64| {
        let i = v.floor() as usize;
        // One label per group, at its centre.
        if (v - (i as f64 + 0.5)).abs() < 1e-6 {
            categories.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    plot.configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&category_label)
        .y_desc(&chart.y_label)
        .y_label_formatter(&|v| tick(*v, false))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let width = 0.8 / per_group as f64;
    for (s, (label, values)) in chart.series.iter().enumerate() {
        let fill = colour(s).filled();
        let bars = values.iter().enumerate().filter_map(|(g, v)| {
            let v = (*v)?;
            let x = g as f64 + 0.1 + s as f64 * width;
            Some(Rectangle::new([(x, 0.0), (x + width * 0.9, v)], fill))
        });
        plot.draw_series(bars)
            .map_err(|e| err(e.to_string()))?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill));
    }
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_show_real_values_on_log_axes() {
        assert_eq!(tick(3.0, true), "1000");
        assert_eq!(tick(5.0, true), "100k");
        assert_eq!(tick(2.5, false), "2.50");
        assert_eq!(tick(7.0, true), "10.0M");
        assert_eq!(scaled(0.0, true), None);
        assert_eq!(scaled(100.0, true), Some(2.0));
    }

    #[test]
    fn ranges_never_collapse() {
        let (lo, hi) = range([5.0, 5.0].into_iter(), false);
        assert!(lo < 5.0 && hi > 5.0);
        let (lo, _) = range([3.0, 9.0].into_iter(), true);
        assert_eq!(lo, 0.0);
        assert_eq!(range(std::iter::empty(), false), (0.0, 1.0));
    }
}
