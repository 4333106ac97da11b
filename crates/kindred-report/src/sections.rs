//! What the report shows: one [`Section`] per topic (summary, metrics, comparisons, metric@K
//! curves, segments, popularity bias, coverage and diversity, learning curves, `auto`'s model
//! selection, tuning), each
//! with its HTML body, its charts, and a plain "not available" note when the results lack its
//! data. Nothing here is drawn from data that is not in the files.

use std::collections::BTreeMap;
use std::fmt::Write;

use kindred_eval::segments::SegmentRow;

use crate::{entries, primary_metric, Entry, Source};
use kindred_chart::{
    escape, format_value, BarChart, BarSeries, Chart, LineChart, LineSeries, SeriesStyle,
};

/// One part of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Anchor id in the page.
    pub id: &'static str,
    pub heading: &'static str,
    /// HTML (already escaped) shown before the charts.
    pub body: String,
    pub charts: Vec<Chart>,
}

impl Section {
    fn new(id: &'static str, heading: &'static str) -> Self {
        Section {
            id,
            heading,
            body: String::new(),
            charts: Vec::new(),
        }
    }

    fn unavailable(mut self, why: &str) -> Self {
        let _ = write!(
            self.body,
            r#"<p class="na">Not available in these results: {}</p>"#,
            escape(why)
        );
        self
    }

    fn push_chart(&mut self, chart: Option<Chart>) {
        self.charts.extend(chart);
    }
}

/// Every section of the report, in page order.
pub fn build_sections(sources: &[Source]) -> Vec<Section> {
    let entries = entries(sources);
    vec![
        summary(sources, &entries),
        metrics_table(sources, &entries),
        comparisons(sources),
        curves(&entries),
        segments(sources, &entries),
        popularity_bias(&entries),
        coverage_diversity(sources, &entries),
        learning_curves(&entries),
        selection(sources),
        tuning(sources),
    ]
}

/// Results that can be compared with each other: same dataset, protocol and cut-off.
fn comparable_groups<'a>(
    sources: &[Source],
    entries: &'a [Entry<'a>],
) -> Vec<(String, Vec<&'a Entry<'a>>)> {
    let mut groups: Vec<(String, Vec<&Entry>)> = Vec::new();
    for e in entries {
        let r = &sources[e.source].report;
        let key = format!("{} under {} (k = {})", r.dataset.name, r.protocol, r.k);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    groups
}

fn percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// The header facts and a short reading of what is certain in the results.
fn summary(sources: &[Source], entries: &[Entry]) -> Section {
    let mut s = Section::new("summary", "Summary");
    s.body.push_str(
        "<table><thead><tr><th>file</th><th>dataset</th><th>interactions</th><th>users</th>\
         <th>items</th><th>protocol</th><th>k</th><th>models</th><th>kindred</th></tr></thead><tbody>",
    );
    for src in sources {
        let r = &src.report;
        let _ = write!(
            s.body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&src.path.display().to_string()),
            escape(&r.dataset.name),
            r.dataset.interactions,
            r.dataset.users,
            r.dataset.items,
            escape(&r.protocol),
            r.k,
            r.results.len(),
            escape(r.versions.get("kindred").map(String::as_str).unwrap_or("?")),
        );
    }
    s.body.push_str("</tbody></table>");

    let mut findings: Vec<String> = Vec::new();
    let groups = comparable_groups(sources, entries);
    if groups.len() > 1 {
        findings.push(
            "The files cover different datasets, protocols or cut-offs: results are compared only \
             within each of them."
                .to_owned(),
        );
    }
    for (key, group) in &groups {
        let scored: Vec<(&Entry, String, bool, f64)> = group
            .iter()
            .filter_map(|e| {
                let (metric, lower) = primary_metric(&sources[e.source].report, e.result)?;
                let v = *e.result.metrics.get(&metric)?;
                v.is_finite().then_some((*e, metric, lower, v))
            })
            .collect();
        if scored.len() < 2 || scored.iter().any(|x| x.1 != scored[0].1) {
            continue;
        }
        let lower = scored[0].2;
        let mut order: Vec<&(&Entry, String, bool, f64)> = scored.iter().collect();
        order.sort_by(|a, b| {
            let c = a.3.total_cmp(&b.3);
            if lower {
                c
            } else {
                c.reverse()
            }
        });
        let (best, runner) = (order[0], order[1]);
        let metric = &best.1;
        if best.3 == runner.3 {
            findings.push(format!(
                "On {key}, {} and {} tie on {metric} ({}).",
                best.0.label,
                runner.0.label,
                format_value(best.3)
            ));
            continue;
        }
        let mut line = format!(
            "On {key}, {} has the best {metric} ({}), ahead of {} ({}).",
            best.0.label,
            format_value(best.3),
            runner.0.label,
            format_value(runner.3)
        );
        let ci = |e: &Entry| e.result.metrics_ci.get(metric).copied();
        if let (Some(a), Some(b)) = (ci(best.0), ci(runner.0)) {
            if a[0] <= b[1] && b[0] <= a[1] {
                line.push_str(
                    " Their 95% confidence intervals overlap, so this order is not established \
                     by the intervals alone (see the paired comparisons).",
                );
            } else {
                line.push_str(" Their 95% confidence intervals do not overlap.");
            }
        }
        findings.push(line);
    }
    for e in entries {
        if let Some(pb) = &e.result.popularity_bias {
            if let (Some(rec), Some(test), Some(bucket)) =
                (pb.recommended.first(), pb.test.first(), pb.buckets.first())
            {
                findings.push(format!(
                    "{} places {} of its recommendations in the most popular bucket ({bucket}), \
                     which holds {} of the test interactions.",
                    e.label,
                    percent(*rec),
                    percent(*test)
                ));
            }
        }
    }
    if !findings.is_empty() {
        s.body.push_str(r#"<ul class="findings">"#);
        for f in findings {
            let _ = write!(s.body, "<li>{}</li>", escape(&f));
        }
        s.body.push_str("</ul>");
    }
    s
}

/// Metric columns in display order: the order metrics.rs defines them in, then any others alphabetically.
fn metric_columns(sources: &[Source], entries: &[Entry]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut ks: Vec<usize> = sources.iter().map(|s| s.report.k).collect();
    ks.dedup();
    order.extend(["rmse".to_owned(), "mae".to_owned()]);
    for base in [
        "ndcg",
        "precision",
        "recall",
        "map",
        "mrr",
        "hit",
        "auc",
        "coverage",
        "diversity",
        "novelty",
        "popularity",
    ] {
        if base == "auc" {
            order.push("auc".to_owned());
            continue;
        }
        for k in &ks {
            order.push(format!("{base}@{k}"));
        }
    }
    let present = |m: &String| entries.iter().any(|e| e.result.metrics.contains_key(m));
    let mut columns: Vec<String> = order.iter().filter(|m| present(m)).cloned().collect();
    let mut rest: Vec<String> = entries
        .iter()
        .flat_map(|e| e.result.metrics.keys())
        .filter(|m| !order.contains(m))
        .cloned()
        .collect();
    rest.sort();
    rest.dedup();
    columns.extend(rest);
    columns
}

fn metrics_table(sources: &[Source], entries: &[Entry]) -> Section {
    let s = Section::new("metrics", "Metrics");
    if entries.is_empty() {
        return s.unavailable("the files hold no model results.");
    }
    let mut s = s;
    let columns = metric_columns(sources, entries);
    let several_files = sources.len() > 1;
    s.body.push_str(
        "<p>Mean over folds; <span class=\"std\">± standard deviation over folds</span> where \
         there are several folds; <span class=\"ci\">[95% confidence interval]</span> where the \
         results hold one.</p><div class=\"scroll\"><table class=\"metrics\"><thead><tr><th>model</th>",
    );
    if several_files {
        s.body.push_str("<th>file</th>");
    }
    for c in &columns {
        let _ = write!(s.body, "<th>{}</th>", escape(c));
    }
    s.body
        .push_str("<th>fit s</th><th>test s</th></tr></thead><tbody>");
    for e in entries {
        let r = e.result;
        let _ = write!(s.body, "<tr><td class=\"label\">{}</td>", escape(&e.label));
        if several_files {
            let _ = write!(s.body, "<td>{}</td>", escape(&sources[e.source].stem()));
        }
        for c in &columns {
            match r.metrics.get(c) {
                None => s.body.push_str("<td class=\"missing\">–</td>"),
                Some(v) => {
                    let _ = write!(s.body, "<td>{}", format_value(*v));
                    if let Some(sd) = r.metrics_std.get(c) {
                        let _ = write!(
                            s.body,
                            " <span class=\"std\">± {}</span>",
                            format_value(*sd)
                        );
                    }
                    if let Some([lo, hi]) = r.metrics_ci.get(c) {
                        let _ = write!(
                            s.body,
                            "<br><span class=\"ci\">[{}, {}]</span>",
                            format_value(*lo),
                            format_value(*hi)
                        );
                    }
                    s.body.push_str("</td>");
                }
            }
        }
        let _ = write!(
            s.body,
            "<td>{:.3}</td><td>{:.3}</td></tr>",
            r.fit_seconds, r.predict_seconds
        );
    }
    s.body.push_str("</tbody></table></div>");
    s
}

fn comparisons(sources: &[Source]) -> Section {
    let s = Section::new("comparisons", "Paired comparisons");
    let all: Vec<_> = sources
        .iter()
        .flat_map(|src| src.report.comparisons.iter())
        .collect();
    if all.is_empty() {
        return s.unavailable(
            "no paired comparisons (they need two or more models and bootstrap resamples).",
        );
    }
    let mut s = s;
    s.body.push_str("<ul class=\"comparisons\">");
    for c in all {
        let direction = if c.lower_is_better {
            "lower is better"
        } else {
            "higher is better"
        };
        let line = format!(
            "{} vs {} on {} ({direction}): difference {:+.4}, {:.0}% CI [{}, {}], p = {} ({}), n = {}",
            c.model,
            c.baseline,
            c.metric,
            c.difference,
            c.level * 100.0,
            format_value(c.ci[0]),
            format_value(c.ci[1]),
            format_p(c.p_value),
            c.test,
            c.n
        );
        let class = match c.verdict.as_str() {
            "better" => "better",
            "worse" => "worse",
            _ => "same",
        };
        let _ = write!(
            s.body,
            "<li>{} — <strong class=\"{class}\">{}</strong></li>",
            escape(&line),
            escape(&c.verdict)
        );
    }
    s.body.push_str("</ul>");
    s
}

fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".to_owned()
    } else {
        format!("{p:.4}")
    }
}

/// Curve metric names in display order.
fn curve_metrics(entries: &[Entry]) -> Vec<String> {
    let preferred = ["ndcg", "recall", "precision", "map", "mrr", "hit"];
    let mut names: Vec<String> = entries
        .iter()
        .flat_map(|e| e.result.curves.keys().cloned())
        .collect();
    names.sort_by_key(|n| {
        (
            preferred.iter().position(|p| p == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names.dedup();
    names
}

fn curves(entries: &[Entry]) -> Section {
    let mut s = Section::new("curves", "Metric@K curves");
    for metric in curve_metrics(entries) {
        let series: Vec<LineSeries> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let values = e.result.curves.get(&metric)?;
                Some(LineSeries {
                    name: e.label.clone(),
                    points: values
                        .iter()
                        .enumerate()
                        .map(|(k, v)| ((k + 1) as f64, *v))
                        .collect(),
                    style: SeriesStyle::Line,
                    color: i,
                })
            })
            .collect();
        s.push_chart(
            LineChart {
                title: format!("{metric}@K"),
                x_label: "K (length of the recommendation list)".to_owned(),
                y_label: metric.clone(),
                integer_x: true,
                series,
            }
            .render(),
        );
    }
    if s.charts.is_empty() {
        return s.unavailable(
            "no metric@K curves (ranking protocols record them with `kindred eval --curve-k N`).",
        );
    }
    s
}

/// Sort key of a segment label: activity buckets by their lower bound (`1-9` < `10-19` <
/// `500+`), popularity buckets cold < tail < head, anything else after, by name.
fn segment_order(label: &str) -> (u64, String) {
    match label {
        "cold" => (0, String::new()),
        "tail" => (1, String::new()),
        "head" => (2, String::new()),
        _ => {
            let digits: String = label.chars().take_while(|c| c.is_ascii_digit()).collect();
            match digits.parse::<u64>() {
                Ok(n) => (n, String::new()),
                Err(_) => (u64::MAX, label.to_owned()),
            }
        }
    }
}

/// A grouped bar chart of `metric` over segments, one series per entry that has it.
fn segment_chart(
    title: String,
    x_label: &str,
    metric: &str,
    entries: &[(usize, &Entry, &[SegmentRow])],
) -> Option<Chart> {
    let mut categories: Vec<String> = entries
        .iter()
        .flat_map(|(_, _, rows)| rows.iter().map(|r| r.segment.clone()))
        .collect();
    categories.sort_by_key(|c| segment_order(c));
    categories.dedup();
    let series: Vec<BarSeries> = entries
        .iter()
        .filter(|(_, _, rows)| rows.iter().any(|r| r.metrics.contains_key(metric)))
        .map(|(i, e, rows)| BarSeries {
            name: e.label.clone(),
            values: categories
                .iter()
                .map(|c| {
                    rows.iter()
                        .find(|r| &r.segment == c)
                        .and_then(|r| r.metrics.get(metric).copied())
                })
                .collect(),
            intervals: Vec::new(),
            color: *i,
        })
        .collect();
    BarChart {
        title,
        x_label: x_label.to_owned(),
        y_label: metric.to_owned(),
        categories,
        series,
    }
    .render()
}

fn segments(sources: &[Source], entries: &[Entry]) -> Section {
    let mut s = Section::new("segments", "Segments");
    // Charts per headline metric, so that rating and ranking results are never mixed on an axis.
    let mut by_metric: BTreeMap<String, Vec<(usize, &Entry)>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.result.segments.is_none() {
            continue;
        }
        if let Some((metric, _)) = primary_metric(&sources[e.source].report, e.result) {
            by_metric.entry(metric).or_default().push((i, e));
        }
    }
    for (metric, group) in &by_metric {
        let with = |pick: &dyn Fn(&kindred_eval::segments::Segments) -> &[SegmentRow]| {
            group
                .iter()
                .filter_map(|(i, e)| Some((*i, *e, pick(e.result.segments.as_ref()?))))
                .collect::<Vec<_>>()
        };
        let users = with(&|seg| &seg.user_activity);
        s.push_chart(segment_chart(
            format!("{metric} by user activity"),
            "training interactions of the user (0 = cold user)",
            metric,
            &users,
        ));
        // Item buckets carry recall (a per-bucket ndcg is not defined) for ranking results.
        let item_metric = if metric == "rmse" {
            metric.clone()
        } else {
            metric.replacen("ndcg", "recall", 1)
        };
        let items = with(&|seg| &seg.item_popularity);
        s.push_chart(segment_chart(
            format!("{item_metric} by item popularity"),
            "item bucket: cold (no training data), tail, head (top 20% by popularity)",
            &item_metric,
            &items,
        ));
        s.push_chart(segment_chart(
            "Share of recommendations by item popularity".to_owned(),
            "item bucket: cold (no training data), tail, head (top 20% by popularity)",
            "share_of_recommendations",
            &items,
        ));
        let mut columns: Vec<&String> = group
            .iter()
            .filter_map(|(_, e)| e.result.segments.as_ref())
            .flat_map(|seg| seg.user_features.keys())
            .collect();
        columns.sort();
        columns.dedup();
        for column in columns {
            let rows: Vec<_> = group
                .iter()
                .filter_map(|(i, e)| {
                    let rows = e.result.segments.as_ref()?.user_features.get(column)?;
                    Some((*i, *e, rows.as_slice()))
                })
                .collect();
            s.push_chart(segment_chart(
                format!("{metric} by user {column}"),
                column,
                metric,
                &rows,
            ));
        }
    }
    if s.charts.is_empty() {
        return s.unavailable(
            "no per-segment breakdowns (`kindred eval` without --no-segments writes them).",
        );
    }
    s.body.push_str(
        "<p>Users are bucketed by their number of training interactions; test items by their \
         training popularity. A group the model serves badly shows here rather than being \
         averaged away.</p>",
    );
    s
}

/// Popularity bucket labels and the (entry index, entry) pairs that use them.
type BucketLayout<'a> = (Vec<String>, Vec<(usize, &'a Entry<'a>)>);

fn popularity_bias(entries: &[Entry]) -> Section {
    let mut s = Section::new("popularity", "Popularity bias");
    // One chart per bucket layout (files with different bucketings are not mixed).
    let mut layouts: Vec<BucketLayout> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(pb) = &e.result.popularity_bias {
            match layouts.iter_mut().find(|(b, _)| *b == pb.buckets) {
                Some((_, group)) => group.push((i, e)),
                None => layouts.push((pb.buckets.clone(), vec![(i, e)])),
            }
        }
    }
    let several = layouts.len() > 1;
    for (n, (buckets, group)) in layouts.iter().enumerate() {
        let mut series: Vec<BarSeries> = Vec::new();
        let mut tests: Vec<&Vec<f64>> = Vec::new();
        for (i, e) in group {
            let Some(pb) = &e.result.popularity_bias else {
                continue;
            };
            series.push(BarSeries {
                name: format!("{} (recommended)", e.label),
                values: pb.recommended.iter().map(|v| Some(*v)).collect(),
                intervals: Vec::new(),
                color: *i,
            });
            if !tests.contains(&&pb.test) {
                tests.push(&pb.test);
            }
        }
        for (t, test) in tests.iter().enumerate() {
            let name = if tests.len() > 1 {
                format!("test interactions (actual), split {}", t + 1)
            } else {
                "test interactions (actual)".to_owned()
            };
            series.push(BarSeries {
                name,
                values: test.iter().map(|v| Some(*v)).collect(),
                intervals: Vec::new(),
                // The last palette colour (grey) is kept for the reference distribution.
                color: 9 - t.min(1),
            });
        }
        let title = if several {
            format!("Recommended vs actual popularity ({})", n + 1)
        } else {
            "Recommended vs actual popularity".to_owned()
        };
        s.push_chart(
            BarChart {
                title,
                x_label: "items by training popularity (most popular first)".to_owned(),
                y_label: "share of recommendations / test interactions".to_owned(),
                categories: buckets.clone(),
                series,
            }
            .render(),
        );
    }
    if s.charts.is_empty() {
        return s.unavailable(
            "no popularity distribution of the recommendations (ranking protocols record it).",
        );
    }
    s.body.push_str(
        "<p>Share of recommended slots in each popularity bucket of the catalog, next to the share \
         of test interactions there. Bars far above the test share in the first buckets mean the \
         model leans on popular items; bars in the later buckets show how far it reaches into the \
         long tail.</p>",
    );
    s
}

fn coverage_diversity(sources: &[Source], entries: &[Entry]) -> Section {
    let mut s = Section::new("beyond-accuracy", "Coverage, diversity and novelty");
    let described = [
        ("coverage", "share of the catalog recommended to anyone"),
        ("diversity", "mean pairwise dissimilarity within a list"),
        (
            "novelty",
            "mean self-information of recommended items, bits",
        ),
    ];
    let mut ks: Vec<usize> = sources.iter().map(|s| s.report.k).collect();
    ks.sort_unstable();
    ks.dedup();
    for (base, meaning) in described {
        for k in &ks {
            let metric = format!("{base}@{k}");
            let series: Vec<BarSeries> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let v = *e.result.metrics.get(&metric)?;
                    Some(BarSeries {
                        name: e.label.clone(),
                        values: vec![Some(v)],
                        intervals: vec![e.result.metrics_ci.get(&metric).copied()],
                        color: i,
                    })
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            s.push_chart(
                BarChart {
                    title: metric.clone(),
                    x_label: meaning.to_owned(),
                    y_label: metric,
                    categories: vec![String::new()],
                    series,
                }
                .render(),
            );
        }
    }
    if s.charts.is_empty() {
        return s
            .unavailable("no coverage, diversity or novelty (ranking protocols measure them).");
    }
    s
}

fn learning_curves(entries: &[Entry]) -> Section {
    let mut s = Section::new("learning", "Learning curves");
    let with: Vec<(usize, &Entry)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.result.learning_curve.is_empty())
        .collect();
    // One model: every fold; several: each model's first fold, so the chart stays readable.
    let single = with.len() == 1;
    let mut loss: Vec<LineSeries> = Vec::new();
    let mut validation: Vec<LineSeries> = Vec::new();
    for (i, e) in &with {
        let mut folds: Vec<usize> = e.result.learning_curve.iter().map(|p| p.fold).collect();
        folds.sort_unstable();
        folds.dedup();
        if !single {
            folds.truncate(1);
        }
        for (f, fold) in folds.iter().enumerate() {
            let points: Vec<_> = e
                .result
                .learning_curve
                .iter()
                .filter(|p| p.fold == *fold)
                .collect();
            let name = format!("{} (fold {})", e.label, fold + 1);
            let color = if single { f } else { *i };
            loss.push(LineSeries {
                name: name.clone(),
                points: points.iter().map(|p| (p.epoch as f64, p.loss)).collect(),
                style: SeriesStyle::LineAndMarkers,
                color,
            });
            if points.iter().any(|p| p.validation.is_some()) {
                validation.push(LineSeries {
                    name,
                    points: points
                        .iter()
                        .map(|p| (p.epoch as f64, p.validation.unwrap_or(f64::NAN)))
                        .collect(),
                    style: SeriesStyle::LineAndMarkers,
                    color,
                });
            }
        }
    }
    s.push_chart(
        LineChart {
            title: "Training loss per epoch".to_owned(),
            x_label: "epoch".to_owned(),
            y_label: "training loss".to_owned(),
            integer_x: true,
            series: loss,
        }
        .render(),
    );
    s.push_chart(
        LineChart {
            title: "Validation metric per epoch".to_owned(),
            x_label: "epoch".to_owned(),
            y_label: "validation metric".to_owned(),
            integer_x: true,
            series: validation,
        }
        .render(),
    );
    if s.charts.is_empty() {
        return s.unavailable("no per-epoch training losses (iterative models record them).");
    }
    s
}

/// What `auto` chose on each fold's training rows, and every family it considered.
fn selection(sources: &[Source]) -> Section {
    let mut s = Section::new("selection", "Model selection (auto)");
    for src in sources {
        for result in &src.report.results {
            for fold in &result.per_fold {
                let Some(trace) = &fold.selection else {
                    continue;
                };
                let Some(sel) = kindred_eval::auto::Selection::from_json(trace) else {
                    continue;
                };
                let _ = write!(
                    s.body,
                    "<h3>{} fold {}: chose <code>{}</code></h3><p>{}</p>",
                    escape(&src.stem()),
                    fold.fold + 1,
                    escape(&sel.chosen),
                    escape(&sel.summary())
                );
                s.body.push_str(
                    "<table><thead><tr><th>family</th><th>status</th><th>trials</th>\
                     <th>best validation score</th><th>seconds</th><th>predicted s</th>\
                     <th>why not tried</th></tr></thead><tbody>",
                );
                for f in &sel.families {
                    let _ = write!(
                        s.body,
                        "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                         <td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td>{}</td></tr>",
                        escape(&f.family),
                        escape(&f.status),
                        f.trials,
                        f.best_score.map_or(String::new(), |v| format!("{v:.4}")),
                        f.seconds,
                        f.predicted_seconds,
                        escape(f.reason.as_deref().unwrap_or(""))
                    );
                }
                s.body.push_str("</tbody></table>");
            }
        }
    }
    if s.body.is_empty() {
        return s.unavailable("no model was evaluated as `auto`.");
    }
    s
}

fn tuning(sources: &[Source]) -> Section {
    let mut s = Section::new("tuning", "Tuning trace");
    let with: Vec<&Source> = sources
        .iter()
        .filter(|src| !src.report.trials.is_empty())
        .collect();
    for src in &with {
        let r = &src.report;
        let summary = r.tuning.as_ref();
        let metric = summary
            .map(|t| t.metric.clone())
            .unwrap_or_else(|| "score".to_owned());
        let mut folds: Vec<usize> = r.trials.iter().map(|t| t.fold).collect();
        folds.sort_unstable();
        folds.dedup();
        // Best-so-far lines go after every fold's markers so that no cloud of points hides them.
        let (mut series, mut best_lines) = (Vec::new(), Vec::new());
        for (f, fold) in folds.iter().enumerate() {
            let trials: Vec<_> = r.trials.iter().filter(|t| t.fold == *fold).collect();
            let label = if folds.len() > 1 {
                format!("fold {}", fold + 1)
            } else {
                "trial".to_owned()
            };
            series.push(LineSeries {
                name: format!("{label}: {metric} of each trial"),
                points: trials
                    .iter()
                    .map(|t| (t.trial as f64, t.score.unwrap_or(f64::NAN)))
                    .collect(),
                style: SeriesStyle::Markers,
                color: f,
            });
            // Best so far needs the direction of the metric, which only the summary gives.
            if let Some(t) = summary {
                let mut best: Option<f64> = None;
                let points = trials
                    .iter()
                    .map(|trial| {
                        if let Some(v) = trial.score.filter(|v| v.is_finite()) {
                            best = Some(match best {
                                None => v,
                                Some(b) if t.lower_is_better => b.min(v),
                                Some(b) => b.max(v),
                            });
                        }
                        (trial.trial as f64, best.unwrap_or(f64::NAN))
                    })
                    .collect();
                best_lines.push(LineSeries {
                    name: format!("{label}: best so far"),
                    points,
                    style: SeriesStyle::Line,
                    color: f,
                });
            }
        }
        series.extend(best_lines);
        let title = if with.len() > 1 {
            format!("Tuning trace: {metric} per trial ({})", src.stem())
        } else {
            format!("Tuning trace: {metric} per trial")
        };
        s.push_chart(
            LineChart {
                title,
                x_label: "trial (in the order run)".to_owned(),
                y_label: format!("validation {metric}"),
                integer_x: true,
                series,
            }
            .render(),
        );
        let count = |status: &str| r.trials.iter().filter(|t| t.status == status).count();
        let _ = write!(
            s.body,
            "<p><strong>{}</strong>: {} trials ({} complete, {} pruned, {} failed)",
            escape(&src.stem()),
            r.trials.len(),
            count("complete"),
            count("pruned"),
            count("failed")
        );
        if let Some(t) = summary {
            let _ = write!(
                s.body,
                "; family {}, method {}, validated on {} ({}) by {}, {:.1} s. Chosen: <code>{}</code>",
                escape(&t.family),
                escape(&t.method),
                escape(&t.metric),
                if t.lower_is_better { "lower is better" } else { "higher is better" },
                escape(&t.validation_protocol),
                t.seconds,
                escape(&t.chosen)
            );
            if t.chosen_per_fold.len() > 1 {
                s.body.push_str("; per outer fold: ");
                let list: Vec<String> = t
                    .chosen_per_fold
                    .iter()
                    .map(|c| format!("<code>{}</code>", escape(c)))
                    .collect();
                s.body.push_str(&list.join(", "));
            }
        }
        s.body.push_str(".</p>");
    }
    if with.is_empty() {
        return s.unavailable("no tuning trials (`kindred tune --json` writes them).");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, json: serde_json::Value) -> Source {
        Source {
            path: format!("/tmp/{name}.json").into(),
            report: serde_json::from_value(json).unwrap(),
        }
    }

    fn ranking(metrics: &[(&str, f64, f64)]) -> serde_json::Value {
        let results: Vec<serde_json::Value> = metrics
            .iter()
            .map(|(spec, ndcg, coverage)| {
                serde_json::json!({
                    "model": spec, "spec": spec, "params": {},
                    "metrics": {"ndcg@10": ndcg, "coverage@10": coverage},
                    "fit_seconds": 1.0, "predict_seconds": 0.5, "per_fold": []
                })
            })
            .collect();
        serde_json::json!({
            "dataset": {"name": "synthetic", "interactions": 10, "users": 2, "items": 5,
                        "protocol_interactions": 8},
            "protocol": "temporal:0.2", "k": 10, "results": results,
            "versions": {"kindred": "0.1.0"}
        })
    }

    #[test]
    fn sections_without_data_say_so_and_draw_nothing() {
        let sources = [source(
            "a",
            ranking(&[("pop", 0.2, 0.1), ("svd", 0.3, 0.4)]),
        )];
        let sections = build_sections(&sources);
        let by_id = |id: &str| sections.iter().find(|s| s.id == id).unwrap();
        for id in [
            "comparisons",
            "curves",
            "segments",
            "popularity",
            "learning",
            "selection",
            "tuning",
        ] {
            let s = by_id(id);
            assert!(s.charts.is_empty(), "{id}");
            assert!(s.body.contains("Not available in these results"), "{id}");
        }
        // Coverage is present, so its chart is drawn with one bar per model.
        let cov = by_id("beyond-accuracy");
        assert_eq!(cov.charts.len(), 1);
        assert_eq!(cov.charts[0].title, "coverage@10");
        // The reading names the better model on the headline metric.
        let summary = &by_id("summary").body;
        assert!(
            summary.contains("svd has the best ndcg@10 (0.3000), ahead of pop (0.2000)"),
            "{summary}"
        );
    }

    #[test]
    fn same_spec_in_two_files_is_labelled_by_file() {
        let sources = [
            source("run1", ranking(&[("svd", 0.3, 0.4)])),
            source("run2", ranking(&[("svd", 0.31, 0.4), ("svd", 0.1, 0.1)])),
        ];
        let labels: Vec<String> = entries(&sources).into_iter().map(|e| e.label).collect();
        assert_eq!(labels, ["svd [run1]", "svd [run2]", "svd [run2] #2"]);
    }

    #[test]
    fn user_strings_are_escaped_in_the_table() {
        let sources = [source("x", ranking(&[("<b>&\"'", 0.3, 0.4)]))];
        let html = &build_sections(&sources)[1].body;
        assert!(html.contains("&lt;b&gt;&amp;&quot;&#39;"), "{html}");
        assert!(!html.contains("<b>&"));
    }

    #[test]
    fn segment_labels_sort_by_bucket() {
        let mut labels = vec!["500+", "10-19", "0", "1-9", "head", "cold", "tail", "F"];
        labels.sort_by_key(|l| segment_order(l));
        assert_eq!(
            labels,
            ["0", "cold", "1-9", "tail", "head", "10-19", "500+", "F"]
        );
    }
}
