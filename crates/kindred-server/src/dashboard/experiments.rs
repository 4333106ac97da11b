//! `GET /dashboard/experiments` (every experiment: status, times, variants with their model
//! version / rank config and weight, traffic share and an allocation bar, admin-only Start /
//! Stop forms) and `GET /dashboard/experiments/{name}` (the live results of
//! [`kindred_serving::experiments::ExperimentService::results`]: per-variant counts and shares,
//! lifts with their confidence intervals drawn as an interval plot, p-values, the sequential
//! test, CUPED, the sample-ratio check and the verdict).
//! `POST /dashboard/experiments/{name}/start|stop` do what the API's admin routes do (the running
//! set is reloaded the same way) and return to the list.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kindred_serving::experiments::definition::ExperimentDefinition;
use kindred_serving::experiments::running::parse;
use kindred_stats::experiment::{ExperimentReport, MetricComparison};
use kindred_store::{ExperimentRecord, ExperimentStatus};
use serde_json::Value;

use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;
use crate::error::ApiError;

/// Fill colours of the variants in allocation bars (cycled), and of the users left out.
const VARIANT_COLOURS: [&str; 6] = [
    "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2",
];
const OUTSIDE_COLOUR: &str = "#e5e8ec";

fn status_name(status: ExperimentStatus) -> &'static str {
    match status {
        ExperimentStatus::Draft => "draft",
        ExperimentStatus::Running => "running",
        ExperimentStatus::Stopped => "stopped",
    }
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "–".to_owned(), page::date_time)
}

/// A number with four significant digits (plain notation for ordinary magnitudes).
pub fn fmt(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A p-value: four decimals, scientific below 0.0001.
pub fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The allocation of all users as a stacked bar: each variant's share of the experiment's
/// traffic, then the users outside it.
pub fn allocation_bar(definition: &ExperimentDefinition) -> String {
    const WIDTH: f64 = 300.0;
    let total: f64 = definition.variants.iter().map(|v| v.weight).sum();
    let traffic = definition.traffic.clamp(0.0, 1.0);
    let mut x = 0.0;
    let mut rects = String::new();
    for (i, v) in definition.variants.iter().enumerate() {
        let share = if total > 0.0 {
            traffic * v.weight / total
        } else {
            0.0
        };
        let w = WIDTH * share;
        rects.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"14\" fill=\"{}\">\
             <title>{}: {:.1}% of users</title></rect>",
            VARIANT_COLOURS[i % VARIANT_COLOURS.len()],
            escape(&v.name),
            100.0 * share
        ));
        x += w;
    }
    if x < WIDTH {
        rects.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{:.1}\" height=\"14\" fill=\"{OUTSIDE_COLOUR}\">\
             <title>not in the experiment: {:.1}% of users</title></rect>",
            WIDTH - x,
            100.0 * (1.0 - traffic)
        ));
    }
    format!(
        "<svg class=\"allocation\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"14\" viewBox=\"0 0 {WIDTH} 14\" role=\"img\">{rects}</svg>"
    )
}

fn variants_text(definition: &ExperimentDefinition) -> String {
    let total: f64 = definition.variants.iter().map(|v| v.weight).sum();
    definition
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "<li><span style=\"color:{}\">■</span> <strong>{}</strong>{}: model <code>{}</code>, rank \
                 <code>{}</code>, weight {} ({:.1}%)</li>",
                VARIANT_COLOURS[i % VARIANT_COLOURS.len()],
                escape(&v.name),
                if i == 0 { " (control)" } else { "" },
                escape(v.model_version.as_deref().unwrap_or("live")),
                escape(v.rank.as_deref().unwrap_or("default")),
                fmt(v.weight),
                if total > 0.0 {
                    100.0 * v.weight / total
                } else {
                    0.0
                }
            )
        })
        .collect::<Vec<_>>()
        .join("")
}

/// The Start or Stop form of an experiment, as its status allows; empty for a stopped one.
fn action_form(record: &ExperimentRecord) -> String {
    let (action, label) = match record.status {
        ExperimentStatus::Draft => ("start", "Start"),
        ExperimentStatus::Running => ("stop", "Stop"),
        ExperimentStatus::Stopped => return String::new(),
    };
    format!(
        "<form method=\"post\" action=\"/dashboard/experiments/{}/{action}\">\
         <button type=\"submit\">{label}</button></form>",
        escape(&page::url_value(&record.name))
    )
}

/// The list page's body; `admin` shows the Start / Stop forms.
pub fn list_body(records: &[ExperimentRecord], admin: bool) -> String {
    let mut headers = vec![
        "name",
        "status",
        "created",
        "started",
        "stopped",
        "variants",
        "traffic",
        "allocation",
        "success metric",
    ];
    if admin {
        headers.push("action");
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let link = format!(
                "<td><a href=\"/dashboard/experiments/{}\">{}</a></td>",
                escape(&page::url_value(&r.name)),
                escape(&r.name)
            );
            let status_cell = if r.status == ExperimentStatus::Running {
                "<td class=\"live\">running</td>".to_owned()
            } else {
                cell(status_name(r.status))
            };
            let mut row = vec![
                link,
                status_cell,
                cell(&page::date_time(r.created_at)),
                cell(&when(r.started_at)),
                cell(&when(r.stopped_at)),
            ];
            match parse(r) {
                Ok(d) => {
                    row.push(format!("<td><ul>{}</ul></td>", variants_text(&d)));
                    row.push(num(format!("{:.1}%", 100.0 * d.traffic)));
                    row.push(format!("<td>{}</td>", allocation_bar(&d)));
                    row.push(format!(
                        "<td><code>{}</code></td>",
                        escape(&d.success_metric)
                    ));
                }
                Err(e) => row.push(format!(
                    "<td colspan=\"4\" class=\"error\">{}</td>",
                    escape(&e.to_string())
                )),
            }
            if admin {
                row.push(format!("<td>{}</td>", action_form(r)));
            }
            row
        })
        .collect();
    // Rows carry ids (`experiment-<name>`) for tests and links; `table` builds plain rows, so
    // the id is added here.
    let mut rows_html = String::new();
    for (r, row) in records.iter().zip(&rows) {
        rows_html.push_str(&format!(
            "<tr id=\"experiment-{}\">{}</tr>",
            escape(&r.name),
            row.join("")
        ));
    }
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", escape(h)))
        .collect();
    let note = if admin {
        "Starting and stopping need the admin scope."
    } else {
        "Log in with the admin key to start or stop an experiment."
    };
    if records.is_empty() {
        return "<section id=\"experiments\"><p class=\"note\">No experiment yet: create one with \
                <code>POST /v1/experiments</code> or a canary with \
                <code>POST /v1/models/{version}/canary</code>.</p></section>"
            .into();
    }
    format!(
        "<section id=\"experiments\"><h2>Experiments</h2><table><thead><tr>{head}</tr></thead>\
         <tbody>{rows_html}</tbody></table><p class=\"note\">{note}</p></section>"
    )
}

/// One row of the interval plot: a label, the estimate and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    pub label: String,
    pub estimate: f64,
    pub interval: [f64; 2],
    pub significant: bool,
}

/// The lifts with their intervals as an SVG interval plot: one row per comparison, each on its
/// own scale (metrics differ in units), with the zero line marked on every row. None without a
/// finite row.
pub fn interval_plot(rows: &[IntervalRow]) -> Option<String> {
    const LABEL: f64 = 230.0;
    const PLOT: f64 = 420.0;
    const ROW: f64 = 34.0;
    let rows: Vec<&IntervalRow> = rows
        .iter()
        .filter(|r| r.estimate.is_finite() && r.interval.iter().all(|v| v.is_finite()))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let width = LABEL + PLOT + 20.0;
    let height = ROW * rows.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" font-family=\"system-ui,sans-serif\" \
         font-size=\"11\"><title>Lift of each variant over the control with its confidence \
         interval</title>"
    );
    for (i, r) in rows.iter().enumerate() {
        let top = 5.0 + ROW * i as f64;
        let mid = top + ROW / 2.0 - 4.0;
        let lo = r.interval[0].min(0.0).min(r.estimate);
        let hi = r.interval[1].max(0.0).max(r.estimate);
        let span = if hi > lo { hi - lo } else { 1.0 };
        // 8% padding on each side so the ends and the zero line never sit on the frame.
        let (lo, hi) = (lo - 0.08 * span, hi + 0.08 * span);
        let x = |v: f64| LABEL + PLOT * (v - lo) / (hi - lo);
        let colour = if r.significant { "#1a7f37" } else { "#4c78a8" };
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">{}</text>\
             <line class=\"zero\" x1=\"{z:.1}\" x2=\"{z:.1}\" y1=\"{top:.1}\" y2=\"{:.1}\" \
             stroke=\"#b42318\" stroke-dasharray=\"3,2\"/>\
             <text x=\"{z:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#b42318\">0</text>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid:.1}\" y2=\"{mid:.1}\" stroke=\"{colour}\" \
             stroke-width=\"3\"/>\
             <circle cx=\"{:.1}\" cy=\"{mid:.1}\" r=\"4\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            mid + 4.0,
            escape(&r.label),
            top + ROW - 12.0,
            top + ROW - 2.0,
            x(r.interval[0]),
            x(r.interval[1]),
            x(r.estimate),
            x(r.interval[0]) - 3.0,
            mid - 5.0,
            escape(&fmt(r.interval[0])),
            x(r.interval[1]) + 3.0,
            mid - 5.0,
            escape(&fmt(r.interval[1])),
            z = x(0.0),
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

fn count_of(counts: &Value, field: &str, variant: &str) -> u64 {
    counts[field][variant].as_u64().unwrap_or(0)
}

fn attributed_text(counts: &Value, variant: &str) -> String {
    match counts["attributed"][variant].as_object() {
        Some(by_type) if !by_type.is_empty() => by_type
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_u64().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    }
}

fn lift_text(c: &MetricComparison) -> (String, String) {
    let cmp = &c.comparison;
    let absolute = format!(
        "{} [{}, {}]",
        fmt(cmp.absolute_lift),
        fmt(cmp.absolute_ci[0]),
        fmt(cmp.absolute_ci[1])
    );
    let relative = match (cmp.relative_lift, cmp.relative_ci) {
        (Some(l), Some(ci)) => format!(
            "{}% [{}%, {}%]",
            fmt(100.0 * l),
            fmt(100.0 * ci[0]),
            fmt(100.0 * ci[1])
        ),
        _ => "– (control mean 0)".into(),
    };
    (absolute, relative)
}

/// The results page's body from the JSON of `experiment_results`.
pub fn results_body(record: &ExperimentRecord, results: &Value, admin: bool) -> String {
    let definition = parse(record).ok();
    let mut out = format!(
        "<section id=\"experiment\"><p>Status: <b>{}</b>; created {}, started {}, stopped {}.</p>",
        status_name(record.status),
        page::date_time(record.created_at),
        when(record.started_at),
        when(record.stopped_at)
    );
    if let Some(d) = &definition {
        out.push_str(&format!(
            "<p>Traffic {:.1}% of users; success metric <code>{}</code>; guardrails <code>{}</code>; \
             attribution window {} s; alpha {}.</p>{}<ul>{}</ul>",
            100.0 * d.traffic,
            escape(&d.success_metric),
            escape(&if d.guardrail_metrics.is_empty() {
                "none".to_owned()
            } else {
                d.guardrail_metrics.join(", ")
            }),
            d.attribution_window_seconds,
            d.alpha,
            allocation_bar(d),
            variants_text(d)
        ));
    }
    if admin {
        out.push_str(&action_form(record));
    }
    out.push_str("<p><a href=\"/dashboard/experiments\">All experiments</a></p></section>");

    let report: Option<Result<ExperimentReport, String>> = match &results["report"] {
        Value::Null => None,
        v => Some(serde_json::from_value(v.clone()).map_err(|e| e.to_string())),
    };
    let counts = &results["counts"];
    match &report {
        Some(Ok(r)) => out.push_str(&format!(
            "<section><h2>Verdict</h2><p id=\"verdict\" class=\"{}\">{}</p>{}</section>",
            if r.comparisons.iter().any(|c| c.comparison.is_significant()) {
                "live"
            } else {
                "verdict"
            },
            escape(&r.verdict),
            if r.notes.is_empty() {
                String::new()
            } else {
                format!(
                    "<ul class=\"note\">{}</ul>",
                    r.notes
                        .iter()
                        .map(|n| format!("<li>{}</li>", escape(n)))
                        .collect::<String>()
                )
            }
        )),
        Some(Err(e)) => out.push_str(&format!(
            "<section><p id=\"not-analysed\" class=\"error\">The report could not be read: {}</p></section>",
            escape(e)
        )),
        None => out.push_str(&format!(
            "<section><p id=\"not-analysed\" class=\"note\">Not analysed yet: {}</p></section>",
            escape(results["not_analysed"].as_str().unwrap_or("no report"))
        )),
    }

    // Per variant: the report's summaries when there is one, else the definition's variants.
    let summaries = match &report {
        Some(Ok(r)) => Some(&r.variants),
        _ => None,
    };
    let metric_names: Vec<String> = summaries
        .and_then(|s| s.first())
        .map(|v| v.metrics.iter().map(|m| m.metric.clone()).collect())
        .unwrap_or_default();
    let variant_names: Vec<String> = match (summaries, &definition) {
        (Some(s), _) => s.iter().map(|v| v.variant.clone()).collect(),
        (None, Some(d)) => d.variants.iter().map(|v| v.name.clone()).collect(),
        (None, None) => Vec::new(),
    };
    let rows: Vec<Vec<String>> = variant_names
        .iter()
        .map(|name| {
            let summary = summaries.and_then(|s| s.iter().find(|v| &v.variant == name));
            let mut row = vec![
                cell(name),
                summary.map_or_else(|| cell("–"), |s| num(s.units)),
                summary.map_or_else(
                    || cell("–"),
                    |s| num(format!("{:.1}%", 100.0 * s.expected_share)),
                ),
                summary.map_or_else(
                    || cell("–"),
                    |s| num(format!("{:.1}%", 100.0 * s.observed_share)),
                ),
                num(count_of(counts, "exposures", name)),
                num(count_of(counts, "impressions", name)),
                cell(&attributed_text(counts, name)),
            ];
            for metric in &metric_names {
                let mean = summary
                    .and_then(|s| s.metrics.iter().find(|m| &m.metric == metric))
                    .map(|m| m.mean);
                row.push(mean.map_or_else(|| cell("–"), |m| num(fmt(m))));
            }
            row
        })
        .collect();
    let mut headers: Vec<String> = [
        "variant",
        "users",
        "expected share",
        "observed share",
        "exposures",
        "impressions",
        "attributed events",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    headers.extend(metric_names.iter().map(|m| format!("mean {m}")));
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    out.push_str(&format!(
        "<section id=\"variants\"><h2>Variants</h2>{}<p class=\"note\">{} users exposed; {} \
         events by exposed users credited to no list of the experiment; {} users exposed to \
         several variants (kept in their first).</p></section>",
        table(&header_refs, &rows),
        results["users"].as_u64().unwrap_or(0),
        counts["unattributed_events"].as_u64().unwrap_or(0),
        counts["users_in_several_variants"].as_u64().unwrap_or(0),
    ));

    let Some(Ok(report)) = &report else {
        return out;
    };
    let srm = &report.srm;
    out.push_str(&format!(
        "<section><h2>Sample ratio</h2><p id=\"srm\" class=\"{}\">{}</p></section>",
        if srm.mismatch { "error" } else { "live" },
        if srm.mismatch {
            format!(
                "Sample ratio mismatch: chi-squared {} on {} df, p = {} &lt; 0.001. The users \
                 are not split as allocated (observed {:?}, expected {}); assignment or logging \
                 is broken, do not trust the results.",
                fmt(srm.chi_squared),
                srm.degrees_of_freedom,
                escape(&p_value(srm.p_value)),
                srm.observed,
                escape(
                    &srm.expected
                        .iter()
                        .map(|e| fmt(*e))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            )
        } else {
            format!(
                "No sample ratio mismatch: chi-squared {} on {} df, p = {} (flagged below 0.001).",
                fmt(srm.chi_squared),
                srm.degrees_of_freedom,
                escape(&p_value(srm.p_value))
            )
        }
    ));

    let interval_rows: Vec<IntervalRow> = report
        .comparisons
        .iter()
        .map(|c| IntervalRow {
            label: format!("{} ({} vs {})", c.metric, c.variant, report.control),
            estimate: c.comparison.absolute_lift,
            interval: c.comparison.absolute_ci,
            significant: c.comparison.is_significant(),
        })
        .collect();
    let rows: Vec<Vec<String>> = report
        .comparisons
        .iter()
        .map(|c| {
            let (absolute, relative) = lift_text(c);
            let s = &c.sequential;
            vec![
                cell(&c.metric),
                cell(&c.variant),
                cell(&c.method),
                num(fmt(c.comparison.control_mean)),
                num(fmt(c.comparison.treatment_mean)),
                cell(&absolute),
                cell(&relative),
                num(p_value(c.comparison.p_value)),
                if c.comparison.is_significant() {
                    "<td class=\"live\">yes</td>".into()
                } else {
                    cell("no")
                },
                cell(&format!(
                    "p = {}, {} [{}, {}]",
                    p_value(s.p_value),
                    if s.significant {
                        "significant"
                    } else {
                        "not significant"
                    },
                    fmt(s.confidence_sequence[0]),
                    fmt(s.confidence_sequence[1])
                )),
                cell(&c.cuped.as_ref().map_or_else(
                    || "–".to_owned(),
                    |k| {
                        format!(
                            "{}: variance −{:.1}% (θ = {}; unadjusted lift {})",
                            k.covariate,
                            100.0 * k.variance_reduction,
                            fmt(k.theta),
                            fmt(k.unadjusted.absolute_lift)
                        )
                    },
                )),
            ]
        })
        .collect();
    out.push_str(&format!(
        "<section id=\"comparisons\"><h2>Lift over {} ({:.0}% intervals)</h2>{}",
        escape(&report.control),
        100.0 * (1.0 - report.alpha),
        table(
            &[
                "metric",
                "variant",
                "method",
                "control",
                "variant mean",
                "absolute lift [CI]",
                "relative lift [CI]",
                "p-value",
                "significant",
                "sequential (always valid)",
                "CUPED",
            ],
            &rows
        )
    ));
    match interval_plot(&interval_rows) {
        Some(svg) => out.push_str(&format!(
            "<figure id=\"lift-chart\">{svg}<figcaption class=\"note\">Absolute lift and its \
             confidence interval per metric and variant (each row on its own scale; the dashed \
             red line is zero; green: significant).</figcaption></figure>"
        )),
        None => out.push_str("<p class=\"note\">No finite interval to draw.</p>"),
    }
    out.push_str("</section>");
    if !report.segments.is_empty() {
        let rows: Vec<Vec<String>> = report
            .segments
            .iter()
            .map(|s| {
                vec![
                    cell(&s.segment),
                    cell(&s.metric),
                    cell(&s.variant),
                    num(s.control_units),
                    num(s.treatment_units),
                    num(fmt(s.comparison.absolute_lift)),
                    num(p_value(s.comparison.p_value)),
                    num(p_value(s.adjusted_p_value)),
                    cell(if s.significant { "yes" } else { "no" }),
                ]
            })
            .collect();
        out.push_str(&format!(
            "<section id=\"segments\"><h2>Segments</h2>{}</section>",
            table(
                &[
                    "segment",
                    "metric",
                    "variant",
                    "control users",
                    "variant users",
                    "absolute lift",
                    "p-value",
                    "adjusted p",
                    "significant"
                ],
                &rows
            )
        ));
    }
    out
}

fn is_admin(dash: &Dashboard, headers: &HeaderMap) -> bool {
    dash.authorize(headers, Scope::Admin).is_ok()
}

pub async fn list(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let mut records = match dash.app.serving.store().list_experiments().await {
        Ok(r) => r,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    let admin = is_admin(&dash, &headers);
    page::respond(
        StatusCode::OK,
        "Experiments",
        Nav::Experiments,
        &list_body(&records, admin),
    )
}

// The error is the page to answer with (see `Dashboard::authorize`).
#[allow(clippy::result_large_err)]
async fn existing(dash: &Dashboard, name: &str) -> Result<ExperimentRecord, Response> {
    if let Err(e) = kindred_store::check_id("experiment name", name) {
        return Err(page::error(StatusCode::BAD_REQUEST, &e.to_string()));
    }
    match dash.app.serving.store().get_experiment(name).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(page::error(
            StatusCode::NOT_FOUND,
            &format!("no experiment `{name}`"),
        )),
        Err(e) => Err(page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
    }
}

pub async fn results(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let record = match existing(&dash, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Exposures still in the writer's queue belong in the results, as in the API.
    let results = match dash.app.serving.experiments.results(&record.name).await {
        Ok(r) => r,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let admin = is_admin(&dash, &headers);
    page::respond(
        StatusCode::OK,
        &format!("Experiment {}", record.name),
        Nav::Experiments,
        &results_body(&record, &results, admin),
    )
}

async fn set_status(
    dash: Dashboard,
    headers: HeaderMap,
    name: String,
    status: ExperimentStatus,
) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    if let Err(r) = existing(&dash, &name).await {
        return r;
    }
    match dash.app.serving.experiments.set_status(&name, status).await {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/dashboard/experiments")],
        )
            .into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            page::error(e.status, &e.message)
        }
    }
}

pub async fn start(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set_status(dash, headers, name, ExperimentStatus::Running).await
}

pub async fn stop(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set_status(dash, headers, name, ExperimentStatus::Stopped).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, status: ExperimentStatus) -> ExperimentRecord {
        ExperimentRecord {
            name: name.into(),
            definition: json!({
                "name": name,
                "variants": [
                    {"name": "control", "weight": 1},
                    {"name": "<b>", "model_version": "v2", "weight": 3}
                ],
                "traffic": 0.5,
                "success_metric": "click_any"
            }),
            status,
            created_at: 1_700_000_000,
            started_at: Some(1_700_000_060),
            stopped_at: None,
        }
    }

    #[test]
    fn numbers_print_with_four_significant_digits() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(0.123_456), "0.1235");
        assert_eq!(fmt(-12.345_67), "-12.35");
        assert_eq!(fmt(12_345.0), "12345");
        assert_eq!(fmt(0.000_012_34), "1.234e-5");
        assert_eq!(p_value(0.049_99), "0.0500");
        assert_eq!(p_value(0.000_01), "1.0e-5");
    }

    #[test]
    fn the_allocation_bar_splits_traffic_by_weight() {
        let d = parse(&record("e", ExperimentStatus::Draft)).unwrap();
        let svg = allocation_bar(&d);
        // 50 % traffic of 300 px, weights 1:3 -> 37.5 px and 112.5 px, then 150 px outside.
        assert!(svg.contains("width=\"37.5\""), "{svg}");
        assert!(svg.contains("x=\"37.5\" y=\"0\" width=\"112.5\""), "{svg}");
        assert!(svg.contains("x=\"150.0\" y=\"0\" width=\"150.0\""), "{svg}");
        assert!(svg.contains("&lt;b&gt;: 37.5% of users"), "{svg}");
        assert!(svg.contains("not in the experiment: 50.0% of users"));
    }

    #[test]
    fn the_list_escapes_names_and_shows_forms_only_to_admins() {
        let records = vec![
            record("<x>", ExperimentStatus::Running),
            record("d", ExperimentStatus::Draft),
            record("s", ExperimentStatus::Stopped),
        ];
        let html = list_body(&records, true);
        assert!(!html.contains("<x>") && !html.contains("<b>"));
        assert!(html.contains("<tr id=\"experiment-&lt;x&gt;\">"));
        assert!(html.contains("href=\"/dashboard/experiments/%3Cx%3E\""));
        assert!(html.contains("action=\"/dashboard/experiments/%3Cx%3E/stop\""));
        assert!(html.contains("action=\"/dashboard/experiments/d/start\""));
        assert!(
            !html.contains("/dashboard/experiments/s/"),
            "stopped: no form"
        );
        let read = list_body(&records, false);
        assert!(!read.contains("<form"));
        assert!(list_body(&[], false).contains("No experiment yet"));
    }

    #[test]
    fn the_interval_plot_maps_values_onto_each_rows_scale() {
        let svg = interval_plot(&[IntervalRow {
            label: "click <any>".into(),
            estimate: 0.5,
            interval: [0.0, 1.0],
            significant: false,
        }])
        .unwrap();
        // Range [0, 1] padded by 0.08 on each side: zero sits at 230 + 420 * 0.08 / 1.16.
        let zero = 230.0 + 420.0 * 0.08 / 1.16;
        assert!(
            svg.contains(&format!("x1=\"{zero:.1}\" x2=\"{zero:.1}\"")),
            "{svg}"
        );
        assert!(svg.contains("<circle cx=\"440.0\""), "the midpoint: {svg}");
        assert!(svg.contains("click &lt;any&gt;"));
        let nan = IntervalRow {
            label: "x".into(),
            estimate: f64::NAN,
            interval: [0.0, 1.0],
            significant: false,
        };
        assert!(interval_plot(&[nan]).is_none());
    }

    #[test]
    fn results_without_a_report_say_why() {
        let r = record("e", ExperimentStatus::Running);
        let results = json!({
            "users": 0, "report": null, "not_analysed": "no user has been exposed yet",
            "counts": {"exposures": {}, "impressions": {}, "attributed": {},
                       "unattributed_events": 0, "users_in_several_variants": 0}
        });
        let html = results_body(&r, &results, false);
        assert!(html.contains("id=\"not-analysed\""));
        assert!(html.contains("Not analysed yet: no user has been exposed yet"));
        assert!(!html.contains("id=\"verdict\""));
        assert!(
            html.contains("<td>&lt;b&gt;</td>"),
            "variants listed: {html}"
        );
        assert!(!html.contains("<form"));
    }
}
