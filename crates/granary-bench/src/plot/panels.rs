//! Drawing: a figure of grouped-bar panels (one panel per test) sharing one legend, so
//! each series keeps one colour in every panel. A panel whose values span more than a
//! decade gets a log y axis; each bar carries its value when there is room for it.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{colour, draw_error, ensure_font, scaled, tick};
use super::PlotError;

/// Figure width in pixels.
const WIDTH: u32 = 1200;
/// Height of one row of panels in pixels.
const PANEL_HEIGHT: u32 = 340;
/// Height of the figure's title in pixels.
const TITLE_HEIGHT: u32 = 40;
/// Pixels between category-label lines under a panel.
const LINE_HEIGHT: u32 = 15;

/// How a panel's y axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// Log when the panel's positive values span more than one decade, else linear.
    Auto,
    /// Always linear from zero (a ratio the eye should see, such as 38× fewer bytes).
    Linear,
}

/// One panel: groups of bars, one group per category, one bar per series with a value.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Title above the panel.
    pub(crate) title: String,
    /// Y axis caption.
    pub(crate) y_label: String,
    /// Y axis scale.
    pub(crate) scale: Scale,
    /// Category names under the groups; `\n` breaks a name into lines.
    pub(crate) categories: Vec<String>,
    /// `values[series][category]`, series indexed as in [`Panels::series`].
    pub(crate) values: Vec<Vec<Option<f64>>>,
}

/// A figure of panels with one legend: series `i` has colour `i` in every panel.
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    /// Title above the figure.
    pub(crate) title: String,
    /// Series names, in legend (and colour) order.
    pub(crate) series: Vec<String>,
    /// The panels, laid out left to right, top to bottom.
    pub(crate) panels: Vec<Panel>,
}

impl Panel {
    /// The drawable values of series `s` (finite; positive on a log axis).
    fn value(&self, s: usize, c: usize, log: bool) -> Option<f64> {
        let v = (*self.values.get(s)?.get(c)?)?;
        scaled(v, log).map(|_| v)
    }

    /// Series with at least one value in this panel, in series order.
    fn present(&self) -> Vec<usize> {
        (0..self.values.len())
            .filter(|&s| (0..self.categories.len()).any(|c| self.value(s, c, false).is_some()))
            .collect()
    }

    /// Whether the y axis is logarithmic: [`Scale::Auto`] and the values are all
    /// positive and span more than one decade.
    pub(crate) fn log(&self) -> bool {
        let values: Vec<f64> = self.values.iter().flatten().flatten().copied().collect();
        let lo = values.iter().copied().fold(f64::MAX, f64::min);
        let hi = values.iter().copied().fold(f64::MIN, f64::max);
        self.scale == Scale::Auto && !values.is_empty() && lo > 0.0 && hi / lo > 10.0
    }

    /// Lines of category `c`'s name.
    fn label_lines(&self, c: usize) -> Vec<&str> {
        self.categories
            .get(c)
            .map(|name| name.split('\n').collect())
            .unwrap_or_default()
    }
}

fn text_width(text: &str, size: f64) -> u32 {
    ("sans-serif", size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.len() as f64 * size * 0.6) as u32)
}

/// Pixels a panel needs across to be readable: room for its widest category label and
/// its bars, plus the y axis.
fn width_needed(panel: &Panel) -> u32 {
    let bars = panel.present().len().max(1) as u32;
    let widest_label = (0..panel.categories.len())
        .flat_map(|c| panel.label_lines(c))
        .map(|line| text_width(line, 13.0))
        .max()
        .unwrap_or(0);
    let per_group = (widest_label + 16).max(bars * 22);
    per_group * panel.categories.len().max(1) as u32 + 110
}

/// Legend entries laid out in rows across the figure: (series, x, row).
fn legend_layout(series: &[(usize, &str)]) -> Vec<(usize, u32, u32)> {
    let mut out = Vec::new();
    let (mut x, mut row) = (20u32, 0u32);
    for &(s, name) in series {
        let width = 14 + 6 + text_width(name, 15.0) + 26;
        if x + width > WIDTH - 20 && x > 20 {
            x = 20;
            row += 1;
        }
        out.push((s, x, row));
        x += width;
    }
    out
}

/// Draws `figure` to `path` (PNG); panels without values are left out.
pub(crate) fn draw_panels(path: &Path, figure: &Panels) -> Result<PathBuf, PlotError> {
    ensure_font()?;
    let err = draw_error(path);
    let panels: Vec<&Panel> = figure
        .panels
        .iter()
        .filter(|p| !p.present().is_empty())
        .collect();
    let needed = panels.iter().map(|p| width_needed(p)).max().unwrap_or(0);
    let fit = (1..=3usize.min(panels.len().max(1)))
        .rev()
        .find(|&c| WIDTH / c as u32 >= needed)
        .unwrap_or(1);
    // As few rows as `fit` allows, with the panels spread evenly over them (four
    // panels as 2 × 2, not 3 + 1).
    let columns = panels
        .len()
        .max(1)
        .div_ceil(panels.len().max(1).div_ceil(fit));
    let panel_rows = panels.len().div_ceil(columns).max(1);
    let shown: Vec<(usize, &str)> = figure
        .series
        .iter()
        .enumerate()
        .filter(|(s, _)| panels.iter().any(|p| p.present().contains(s)))
        .map(|(s, name)| (s, name.as_str()))
        .collect();
    let legend = legend_layout(&shown);
    let legend_height = legend.last().map_or(0, |(_, _, row)| (row + 1) * 24 + 8);
    let head = TITLE_HEIGHT + legend_height;
    let size = (WIDTH, head + panel_rows as u32 * PANEL_HEIGHT);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let centre_top = Pos::new(HPos::Center, VPos::Top);
    root.draw(&Text::new(
        figure.title.clone(),
        (WIDTH as i32 / 2, 10),
        TextStyle::from(("sans-serif", 22).into_font()).pos(centre_top),
    ))
    .map_err(|e| err(e.to_string()))?;
    for &(s, x, row) in &legend {
        let y = (TITLE_HEIGHT + row * 24 + 4) as i32;
        let x = x as i32;
        root.draw(&Rectangle::new(
            [(x, y + 1), (x + 14, y + 15)],
            colour(s).filled(),
        ))
        .map_err(|e| err(e.to_string()))?;
        root.draw(&Text::new(
            figure.series[s].clone(),
            (x + 20, y),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| err(e.to_string()))?;
    }
    let (_, body) = root.split_vertically(head);
    let areas = body.split_evenly((panel_rows, columns));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(&root, area, panel).map_err(&err)?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(path.to_path_buf())
}

/// The y range of `panel` in axis units, and where bars start.
fn y_axis(panel: &Panel, log: bool) -> (f64, f64, f64) {
    let values: Vec<f64> = (0..panel.values.len())
        .flat_map(|s| (0..panel.categories.len()).filter_map(move |c| panel.value(s, c, log)))
        .collect();
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    if log {
        let lo = values.iter().copied().fold(f64::MAX, f64::min);
        let bottom = lo.log10().floor();
        // Headroom above the tallest bar for its value label.
        let top = hi.log10() + 0.12 * (hi.log10() - bottom).max(1.0);
        (bottom, top, bottom)
    } else {
        let top = if hi > 0.0 { hi * 1.12 } else { 1.0 };
        (0.0, top, 0.0)
    }
}

fn draw_panel(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let log = panel.log();
    let (y0, y1, base) = y_axis(panel, log);
    let groups = panel.categories.len().max(1);
    let lines = (0..groups)
        .map(|c| panel.label_lines(c).len())
        .max()
        .unwrap_or(1) as u32;
    let title = if log {
        format!("{} (log scale)", panel.title)
    } else {
        panel.title.clone()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 17))
        .margin(10)
        .margin_right(18)
        .x_label_area_size(lines * LINE_HEIGHT + 12)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..groups as f64, y0..y1)
        .map_err(|e| e.to_string())?;
    let y_ticks = move |v: &f64| {
        // On a log axis only whole decades are labelled, so every label is 10^n.
        if log && (v - v.round()).abs() > 1e-9 {
            String::new()
        } else {
            tick(*v, log)
        }
    };
    let decades = (y1 - y0).ceil() as usize;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&|_| String::new())
        .y_labels(if log { (decades * 2 + 1).min(30) } else { 6 })
        .y_desc(&panel.y_label)
        .y_label_formatter(&y_ticks)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let present = panel.present();
    let width = 0.8 / present.len().max(1) as f64;
    let bar_pixels = {
        let (a, _) = chart.backend_coord(&(0.0, y0));
        let (b, _) = chart.backend_coord(&(width, y0));
        (b - a).max(0) as u32
    };
    let value_font = ("sans-serif", 11).into_font();
    for (slot, &s) in present.iter().enumerate() {
        let fill = colour(s).filled();
        for c in 0..panel.categories.len() {
            let Some(v) = panel.value(s, c, log) else {
                continue;
            };
            let top = scaled(v, log).unwrap_or(base);
            let x = c as f64 + 0.1 + slot as f64 * width;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, base), (x + width * 0.9, top)],
                    fill,
                )))
                .map_err(|e| e.to_string())?;
            let label = tick(v, false);
            if text_width(&label, 11.0) <= bar_pixels + 8 {
                let (px, py) = chart.backend_coord(&(x + width * 0.45, top));
                root.draw(&Text::new(
                    label,
                    (px, py - 2),
                    TextStyle::from(value_font.clone()).pos(Pos::new(HPos::Center, VPos::Bottom)),
                ))
                .map_err(|e| e.to_string())?;
            }
        }
    }
    let label_font = ("sans-serif", 13).into_font();
    for c in 0..panel.categories.len() {
        let (px, py) = chart.backend_coord(&(c as f64 + 0.5, y0));
        for (i, line) in panel.label_lines(c).into_iter().enumerate() {
            root.draw(&Text::new(
                line.to_string(),
                (px, py + 6 + (i as u32 * LINE_HEIGHT) as i32),
                TextStyle::from(label_font.clone()).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(values: Vec<Vec<Option<f64>>>, scale: Scale) -> Panel {
        Panel {
            title: "t".into(),
            y_label: "y".into(),
            scale,
            categories: vec!["a\nb".into(), "c".into()],
            values,
        }
    }

    #[test]
    fn log_only_when_values_span_a_decade() {
        let wide = vec![vec![Some(5.0), Some(900.0)]];
        assert!(panel(wide.clone(), Scale::Auto).log());
        assert!(!panel(wide, Scale::Linear).log());
        assert!(!panel(vec![vec![Some(5.0), Some(40.0)]], Scale::Auto).log());
        // A zero cannot sit on a log axis: stay linear.
        assert!(!panel(vec![vec![Some(0.0), Some(900.0)]], Scale::Auto).log());
        let p = panel(vec![vec![None, Some(2.0)], vec![None, None]], Scale::Auto);
        assert_eq!(p.present(), vec![0]);
        assert_eq!(p.label_lines(0), vec!["a", "b"]);
    }

    #[test]
    fn legend_wraps_inside_the_figure() {
        let names: Vec<String> = (0..30).map(|i| format!("framework number {i}")).collect();
        let series: Vec<(usize, &str)> = names.iter().map(String::as_str).enumerate().collect();
        let layout = legend_layout(&series);
        assert_eq!(layout.len(), 30);
        assert!(
            layout.last().expect("entries").2 > 0,
            "wrapped to a second row"
        );
        assert!(layout.iter().all(|(_, x, _)| *x < WIDTH));
    }
}
