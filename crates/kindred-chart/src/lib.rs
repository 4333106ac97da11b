//! A small SVG chart toolkit for the result report and the server's dashboard: line charts
//! (several series, legend, axes, ticks, title) and grouped bar charts with optional interval
//! whiskers. SVG text only: rasterising to PNG is the report's business.
//!
//! Every chart is a standalone `<svg class="chart" data-title="...">` with its title drawn as
//! visible text, and with all styling in attributes (no CSS), so the same markup renders the
//! same in a browser page and in the PNG rasteriser, which sees no page stylesheet. A chart
//! with no finite data is not drawn at all (`render` returns `None`): an empty frame would
//! pretend there was something to see.

use std::fmt::Write;

/// Width of every chart in SVG user units (pixels at 1x).
const WIDTH: f64 = 760.0;
/// Height of the plotting area.
const PLOT_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 44.0;
/// Room under the plot for tick labels and the x-axis label.
const AXIS_BAND: f64 = 58.0;
const LEGEND_ROW: f64 = 18.0;
/// Legend labels longer than this are shortened (the full label is in the page's tables).
const MAX_LEGEND_CHARS: usize = 90;
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

/// Series colours (Tableau 10: distinct for common colour-vision deficiencies and in print).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// A rendered chart: its title and its standalone SVG markup.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub svg: String,
}

impl Chart {
    /// A file-name-safe form of the title (`ndcg@K curves` -> `ndcg-k-curves`).
    pub fn slug(&self) -> String {
        let mut slug = String::new();
        for c in self.title.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let trimmed = slug.trim_end_matches('-');
        if trimmed.is_empty() {
            "chart".to_owned()
        } else {
            trimmed.chars().take(60).collect()
        }
    }
}

/// Escapes text for HTML and XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 (the rasteriser would reject the chart).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// How a line-chart series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStyle {
    Line,
    DashedLine,
    Markers,
    LineAndMarkers,
}

/// One series of a line chart. Points with a non-finite coordinate are skipped and break the line.
#[derive(Debug, Clone)]
pub struct LineSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: SeriesStyle,
    /// Index into [`PALETTE`] (so that related series can share a colour).
    pub color: usize,
}

/// A chart of numeric x against numeric y with one line (or marker set) per series.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Ticks on whole numbers only (K, epochs, trial numbers).
    pub integer_x: bool,
    pub series: Vec<LineSeries>,
}

/// One series of a grouped bar chart: a value per category, optionally with an interval.
#[derive(Debug, Clone)]
pub struct BarSeries {
    pub name: String,
    /// One entry per category; `None` leaves the slot empty.
    pub values: Vec<Option<f64>>,
    /// Optional interval per category (drawn as a whisker).
    pub intervals: Vec<Option<[f64; 2]>>,
    pub color: usize,
}

/// Bars grouped by category, one bar per series within each group.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
}

/// A linear mapping of a data range onto a pixel range, with "nice" ticks.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    /// An axis covering `[min, max]` with about `target` ticks at 1, 2 or 5 times a power of ten.
    fn nice(min: f64, max: f64, target: usize, integer: bool) -> Axis {
        let (mut min, mut max) = (min, max);
        if (max - min).abs() < 1e-12 {
            // A flat series still gets a readable band around its value.
            let pad = if min.abs() > 1e-12 {
                min.abs() * 0.1
            } else {
                1.0
            };
            min -= pad;
            max += pad;
        }
        let raw = (max - min) / target.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let mut step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        if integer {
            step = step.max(1.0).round();
        }
        Axis {
            lo: (min / step).floor() * step,
            hi: (max / step).ceil() * step,
            step,
        }
    }

    fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(|i| self.lo + i as f64 * self.step).collect()
    }

    /// Position of `v` in `[from, to]` pixels.
    fn map(&self, v: f64, from: f64, to: f64) -> f64 {
        from + (v - self.lo) / (self.hi - self.lo) * (to - from)
    }
}

/// Formats a tick value with no more decimals than the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LEGEND_CHARS {
        label.to_owned()
    } else {
        let head: String = label.chars().take(MAX_LEGEND_CHARS - 1).collect();
        format!("{head}…")
    }
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Opens the SVG, draws background, title and axis labels; returns the markup so far.
fn frame(title: &str, x_label: &str, y_label: &str, legend_rows: usize) -> (String, f64) {
    let height = MARGIN_TOP + PLOT_HEIGHT + AXIS_BAND + legend_rows as f64 * LEGEND_ROW + 10.0;
    let t = escape(title);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-title="{t}" role="img" aria-label="{t}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="12">"#
    );
    let _ = write!(s, "<title>{t}</title>");
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = write!(
        s,
        r##"<text class="chart-title" x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="#222222">{t}</text>"##,
        WIDTH / 2.0
    );
    let plot_bottom = MARGIN_TOP + PLOT_HEIGHT;
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#333333">{}</text>"##,
        MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / 2.0,
        plot_bottom + 44.0,
        escape(x_label)
    );
    let cy = MARGIN_TOP + PLOT_HEIGHT / 2.0;
    let _ = write!(
        s,
        r##"<text x="16" y="{cy}" text-anchor="middle" fill="#333333" transform="rotate(-90 16 {cy})">{}</text>"##,
        escape(y_label)
    );
    (s, height)
}

/// Horizontal grid lines and y tick labels.
fn y_grid(s: &mut String, axis: &Axis) {
    let (top, bottom) = (MARGIN_TOP, MARGIN_TOP + PLOT_HEIGHT);
    for v in axis.ticks() {
        let y = axis.map(v, bottom, top);
        let _ = write!(
            s,
            r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e3e3e3" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444444">{}</text>"##,
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            tick_label(v, axis.step)
        );
    }
}

/// The axis lines along the left and bottom of the plot.
fn axis_lines(s: &mut String) {
    let bottom = MARGIN_TOP + PLOT_HEIGHT;
    let _ = write!(
        s,
        r##"<path d="M{MARGIN_LEFT} {MARGIN_TOP} V{bottom} H{}" fill="none" stroke="#555555" stroke-width="1"/>"##,
        WIDTH - MARGIN_RIGHT
    );
}

/// Legend under the plot, one entry per row.
fn legend(s: &mut String, entries: &[(String, usize, SeriesStyle)]) {
    let top = MARGIN_TOP + PLOT_HEIGHT + AXIS_BAND;
    s.push_str(r#"<g class="legend">"#);
    for (row, (name, c, style)) in entries.iter().enumerate() {
        let y = top + row as f64 * LEGEND_ROW + 8.0;
        let x = MARGIN_LEFT;
        let col = color(*c);
        match style {
            SeriesStyle::Markers => {
                let _ = write!(
                    s,
                    r#"<circle cx="{}" cy="{y}" r="4" fill="{col}"/>"#,
                    x + 10.0
                );
            }
            SeriesStyle::DashedLine => {
                let _ = write!(
                    s,
                    r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{col}" stroke-width="2.5" stroke-dasharray="5 3"/>"#,
                    x + 20.0
                );
            }
            _ => {
                let _ = write!(
                    s,
                    r#"<rect x="{x}" y="{}" width="20" height="10" fill="{col}"/>"#,
                    y - 5.0
                );
            }
        }
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" fill="#222222">{}</text>"##,
            x + 28.0,
            y + 4.0,
            escape(&shorten(name))
        );
    }
    s.push_str("</g>");
}

impl LineChart {
    /// The chart's SVG, or `None` when no series has a finite point.
    pub fn render(&self) -> Option<Chart> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let all: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(finite).copied())
            .collect();
        if all.is_empty() {
            return None;
        }
        let (x_min, x_max) = min_max(all.iter().map(|p| p.0));
        let (mut y_min, y_max) = min_max(all.iter().map(|p| p.1));
        // Non-negative quantities read best from zero unless they sit in a narrow high band.
        if y_min >= 0.0 && y_min <= 0.3 * y_max {
            y_min = 0.0;
        }
        let x_axis = Axis::nice(x_min, x_max, 10, self.integer_x);
        let y_axis = Axis::nice(y_min, y_max, 6, false);
        let (mut s, _) = frame(&self.title, &self.x_label, &self.y_label, self.series.len());
        y_grid(&mut s, &y_axis);
        let (left, right) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
        let (top, bottom) = (MARGIN_TOP, MARGIN_TOP + PLOT_HEIGHT);
        for v in x_axis.ticks() {
            let x = x_axis.map(v, left, right);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#555555"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#444444">{}</text>"##,
                bottom + 5.0,
                bottom + 20.0,
                tick_label(v, x_axis.step)
            );
        }
        axis_lines(&mut s);
        s.push_str(r#"<g class="marks">"#);
        for series in &self.series {
            let col = color(series.color);
            let draw_line = matches!(
                series.style,
                SeriesStyle::Line | SeriesStyle::DashedLine | SeriesStyle::LineAndMarkers
            );
            let draw_markers = matches!(
                series.style,
                SeriesStyle::Markers | SeriesStyle::LineAndMarkers
            );
            let project = |&(x, y): &(f64, f64)| {
                (
                    x_axis.map(x, left, right),
                    y_axis.map(y, bottom, top),
                    x.is_finite() && y.is_finite(),
                )
            };
            if draw_line {
                let dash = if series.style == SeriesStyle::DashedLine {
                    r#" stroke-dasharray="5 3""#
                } else {
                    ""
                };
                let mut d = String::new();
                let mut pen_down = false;
                for (x, y, ok) in series.points.iter().map(project) {
                    if !ok {
                        pen_down = false;
                        continue;
                    }
                    let _ = write!(d, "{}{x:.1} {y:.1}", if pen_down { " L" } else { " M" });
                    pen_down = true;
                }
                if !d.is_empty() {
                    let _ = write!(
                        s,
                        r#"<path d="{}" fill="none" stroke="{col}" stroke-width="2"{dash}/>"#,
                        d.trim_start()
                    );
                }
            }
            if draw_markers || series.points.iter().filter(finite).count() == 1 {
                for (x, y, ok) in series.points.iter().map(project) {
                    if ok {
                        let _ = write!(
                            s,
                            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{col}"/>"#
                        );
                    }
                }
            }
        }
        s.push_str("</g>");
        let entries: Vec<_> = self
            .series
            .iter()
            .map(|x| (x.name.clone(), x.color, x.style))
            .collect();
        legend(&mut s, &entries);
        s.push_str("</svg>");
        Some(Chart {
            title: self.title.clone(),
            svg: s,
        })
    }
}

impl BarChart {
    /// The chart's SVG, or `None` when there is no finite value to draw.
    pub fn render(&self) -> Option<Chart> {
        let values: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                let intervals = s.intervals.iter().flatten().flat_map(|iv| iv.iter());
                s.values.iter().flatten().chain(intervals).copied()
            })
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() || self.categories.is_empty() {
            return None;
        }
        let (lo, hi) = min_max(values.iter().copied());
        // Bars start at zero, so zero is always inside the axis.
        let y_axis = Axis::nice(lo.min(0.0), hi.max(0.0), 6, false);
        let (mut s, _) = frame(&self.title, &self.x_label, &self.y_label, self.series.len());
        y_grid(&mut s, &y_axis);
        let (left, right) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
        let (top, bottom) = (MARGIN_TOP, MARGIN_TOP + PLOT_HEIGHT);
        let group_width = (right - left) / self.categories.len() as f64;
        let bar_width = group_width * 0.8 / self.series.len().max(1) as f64;
        for (i, category) in self.categories.iter().enumerate() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#444444">{}</text>"##,
                left + (i as f64 + 0.5) * group_width,
                bottom + 20.0,
                escape(&shorten(category))
            );
        }
        axis_lines(&mut s);
        let zero = y_axis.map(0.0, bottom, top);
        s.push_str(r#"<g class="marks">"#);
        for (j, series) in self.series.iter().enumerate() {
            let col = color(series.color);
            for (i, value) in series.values.iter().enumerate() {
                let x = left + i as f64 * group_width + group_width * 0.1 + j as f64 * bar_width;
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    let y = y_axis.map(v, bottom, top);
                    let (y0, h) = if y < zero {
                        (y, zero - y)
                    } else {
                        (zero, y - zero)
                    };
                    // A true zero still shows as a hairline, so that it reads as measured.
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{col}"><title>{}: {}</title></rect>"#,
                        (bar_width - 1.0).max(1.0),
                        h.max(1.0),
                        escape(&series.name),
                        format_value(v)
                    );
                }
                if let Some([a, b]) = series.intervals.get(i).copied().flatten() {
                    if a.is_finite() && b.is_finite() {
                        let cx = x + bar_width / 2.0;
                        let (ya, yb) = (y_axis.map(a, bottom, top), y_axis.map(b, bottom, top));
                        let _ = write!(
                            s,
                            r##"<path d="M{:.1} {ya:.1} H{:.1} M{cx:.1} {ya:.1} V{yb:.1} M{:.1} {yb:.1} H{:.1}" stroke="#222222" stroke-width="1.2" fill="none"/>"##,
                            cx - 3.0,
                            cx + 3.0,
                            cx - 3.0,
                            cx + 3.0
                        );
                    }
                }
            }
        }
        s.push_str("</g>");
        let entries: Vec<_> = self
            .series
            .iter()
            .map(|x| (x.name.clone(), x.color, SeriesStyle::Line))
            .collect();
        legend(&mut s, &entries);
        s.push_str("</svg>");
        Some(Chart {
            title: self.title.clone(),
            svg: s,
        })
    }
}

/// A metric value with four significant decimals, without float noise.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            title: "ndcg@K <test> & \"more\"".into(),
            x_label: "K".into(),
            y_label: "ndcg".into(),
            integer_x: true,
            series: vec![LineSeries {
                name: "svd:factors=<10>".into(),
                points,
                style: SeriesStyle::Line,
                color: 0,
            }],
        }
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1}b"), "a\u{fffd}b");
    }

    #[test]
    fn nice_axis_on_hand_computed_ranges() {
        // Range 0..0.37 in 6 steps: raw 0.0617 -> step 0.1, axis 0..0.4.
        let a = Axis::nice(0.0, 0.37, 6, false);
        assert!((a.step - 0.1).abs() < 1e-12);
        assert_eq!(a.lo, 0.0);
        assert!((a.hi - 0.4).abs() < 1e-12);
        assert_eq!(a.ticks().len(), 5);
        // K = 1..50 in 10 steps: raw 4.9 -> step 5, axis 0..50.
        let k = Axis::nice(1.0, 50.0, 10, true);
        assert_eq!((k.lo, k.hi, k.step), (0.0, 50.0, 5.0));
        // A flat series still gets a non-empty range.
        let flat = Axis::nice(2.0, 2.0, 6, false);
        assert!(flat.lo < 2.0 && flat.hi > 2.0);
        assert_eq!(a.map(0.2, 100.0, 0.0), 50.0);
    }

    #[test]
    fn tick_labels_use_the_step_precision() {
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(0.05, 0.05), "0.05");
        assert_eq!(tick_label(15.0, 5.0), "15");
        assert_eq!(tick_label(-1e-17, 0.1), "0.0");
    }

    #[test]
    fn line_chart_escapes_and_breaks_at_gaps() {
        let chart = line(vec![(1.0, 0.1), (2.0, f64::NAN), (3.0, 0.3), (4.0, 0.35)])
            .render()
            .unwrap();
        assert!(chart.svg.contains(r#"class="chart""#));
        assert!(chart
            .svg
            .contains("data-title=\"ndcg@K &lt;test&gt; &amp; &quot;more&quot;\""));
        assert!(chart.svg.contains("svd:factors=&lt;10&gt;"));
        assert!(!chart.svg.contains("<test>"));
        // Two pen-down moves: the NaN splits the line.
        let path = chart.svg.split("<g class=\"marks\">").nth(1).unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
    }

    #[test]
    fn empty_charts_are_not_drawn() {
        assert!(line(vec![]).render().is_none());
        assert!(line(vec![(1.0, f64::NAN)]).render().is_none());
        let bars = BarChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            categories: vec!["a".into()],
            series: vec![BarSeries {
                name: "m".into(),
                values: vec![None],
                intervals: vec![None],
                color: 0,
            }],
        };
        assert!(bars.render().is_none());
    }

    #[test]
    fn bars_have_one_rect_per_value_and_whiskers_per_interval() {
        let chart = BarChart {
            title: "coverage@10".into(),
            x_label: "model".into(),
            y_label: "coverage".into(),
            categories: vec!["a".into(), "b".into(), "c".into()],
            series: vec![
                BarSeries {
                    name: "m1".into(),
                    values: vec![Some(0.2), None, Some(0.0)],
                    intervals: vec![Some([0.1, 0.3]), None, None],
                    color: 0,
                },
                BarSeries {
                    name: "m2".into(),
                    values: vec![Some(0.5), Some(0.4), Some(0.1)],
                    intervals: vec![],
                    color: 1,
                },
            ],
        }
        .render()
        .unwrap();
        let marks = chart.svg.split("<g class=\"marks\">").nth(1).unwrap();
        let marks = marks.split("</g>").next().unwrap();
        assert_eq!(marks.matches("<rect").count(), 5);
        assert_eq!(marks.matches("<path").count(), 1);
        assert_eq!(chart.slug(), "coverage-10");
    }

    #[test]
    fn values_format_readably() {
        assert_eq!(format_value(0.123456), "0.1235");
        assert_eq!(format_value(1234.5), "1234.5");
        assert_eq!(format_value(0.00001234), "1.234e-5");
        assert_eq!(format_value(0.0), "0.0000");
        assert_eq!(format_value(f64::NAN), "n/a");
    }
}
