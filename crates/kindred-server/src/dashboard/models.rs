//! `GET /dashboard/models`: the registered versions (algorithm, creation time, metrics, which is
//! live) with a chart per numeric metric across versions, how `auto` chose each version trained
//! from it ([`super::selection`]), the offline metrics each version was
//! measured with at training time, learning curves, control charts of the offline metrics across
//! retrains ([`kindred_serving::lifecycle::offline`]), and the admin forms
//! `POST /dashboard/models/{version}/activate` and `POST /dashboard/models/rollback`, which do
//! what the API's admin routes do and return to the page.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kindred_chart::{LineChart, LineSeries, SeriesStyle};
use kindred_serving::lifecycle::curve::stored_curve;
use kindred_serving::lifecycle::offline::{offline_control_charts, OfflineChart};
use kindred_serving::lifecycle::OFFLINE_METRICS;
use kindred_store::ModelRecord;

use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Learning curves drawn: those of the newest versions with one (older ones are in the JSON).
const MAX_CURVES: usize = 6;

/// Numeric metrics charted across versions, most useful first; at most this many charts.
const MAX_CHARTS: usize = 4;

/// One chart per numeric metric that at least two versions report, versions in creation order
/// (x = the version's row number in the table).
pub fn metric_charts(models: &[ModelRecord]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in models {
        if let Some(obj) = m.model.metrics.as_object() {
            for (k, v) in obj {
                if v.is_number() && !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let points: Vec<(f64, f64)> = models
                .iter()
                .enumerate()
                .filter_map(|(i, m)| Some(((i + 1) as f64, m.model.metrics.get(&name)?.as_f64()?)))
                .collect();
            if points.len() < 2 {
                return None;
            }
            LineChart {
                title: format!("{name} by version"),
                x_label: "version (row #)".into(),
                y_label: name.clone(),
                integer_x: true,
                series: vec![LineSeries {
                    name: name.clone(),
                    points,
                    style: SeriesStyle::LineAndMarkers,
                    color: 0,
                }],
            }
            .render()
            .map(|c| c.svg)
        })
        .take(MAX_CHARTS)
        .collect()
}

/// Keys of `metrics` with a section of their own on the page, left out of the metrics column.
const OWN_SECTIONS: [&str; 7] = [
    "offline",
    "curve",
    "selection",
    "gate",
    "gate_measure",
    "data",
    "cleaning",
];

fn metrics_text(record: &ModelRecord) -> String {
    match record.model.metrics.as_object() {
        Some(obj) => obj
            .iter()
            .filter(|(k, _)| !OWN_SECTIONS.contains(&k.as_str()))
            .map(|(k, v)| match v.as_f64() {
                Some(x) if v.is_f64() => format!("{k}={x:.3}"),
                _ => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => record.model.metrics.to_string(),
    }
}

/// The models page body (versions oldest first).
pub fn body(models: &[ModelRecord], serving: Option<&str>, notice: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(n) = notice {
        out.push_str(&format!(
            "<section><p class=\"live\">{}</p></section>",
            escape(n)
        ));
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let version = &m.model.version;
            let status = if m.live {
                "<td class=\"live\">live</td>".to_owned()
            } else {
                format!(
                    "<td><form method=\"post\" action=\"/dashboard/models/{}/activate\">\
                     <button type=\"submit\">Activate</button></form></td>",
                    escape(&page::url_value(version))
                )
            };
            vec![
                num(i + 1),
                format!("<td><code>{}</code></td>", escape(version)),
                cell(&m.model.algorithm),
                cell(&page::date_time(m.model.created_at)),
                cell(&metrics_text(m)),
                format!(
                    "<td><code>{}</code></td>",
                    escape(&m.model.params.to_string())
                ),
                status,
            ]
        })
        .collect();
    out.push_str(&format!(
        "<section id=\"versions\"><h2>Versions</h2><p>Serving: <code>{}</code></p>{}\
         <form method=\"post\" action=\"/dashboard/models/rollback\"><button type=\"submit\">\
         Roll back to the previous live version</button></form>\
         <p class=\"note\">Activating and rolling back need the admin scope.</p></section>",
        escape(serving.unwrap_or("none")),
        table(
            &[
                "#",
                "version",
                "algorithm",
                "created",
                "metrics",
                "params",
                "status"
            ],
            &rows
        )
    ));
    out.push_str(&super::selection::selection_section(models));
    out.push_str(&super::quality_gate::gate_section(models));
    out.push_str(&offline_section(models));
    out.push_str(&curves_section(models));
    out.push_str(&control_section(&offline_control_charts(models)));
    let charts = metric_charts(models);
    if !charts.is_empty() {
        out.push_str("<section id=\"metric-charts\"><h2>Metrics across versions</h2>");
        for svg in charts {
            out.push_str(&format!("<figure>{svg}</figure>"));
        }
        out.push_str("</section>");
    }
    out
}

/// The offline metrics table: one row per version (oldest first, numbered as the versions table).
pub fn offline_section(models: &[ModelRecord]) -> String {
    let rows: Vec<Vec<String>> = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut row = vec![
                num(i + 1),
                format!("<td><code>{}</code></td>", escape(&m.model.version)),
                cell(&m.model.algorithm),
            ];
            match m.model.metrics.get("offline") {
                None => row.push(format!(
                    "<td colspan=\"{}\" class=\"note\">not measured (offline evaluation off)</td>",
                    OFFLINE_METRICS.len() + 1
                )),
                Some(o) if o.get("error").is_some() => row.push(format!(
                    "<td colspan=\"{}\" class=\"error\">not measured: {}</td>",
                    OFFLINE_METRICS.len() + 1,
                    escape(
                        o.get("error")
                            .and_then(|e| e.as_str())
                            .unwrap_or("unknown error")
                    )
                )),
                Some(o) => {
                    for name in OFFLINE_METRICS {
                        row.push(match o.get(name).and_then(|v| v.as_f64()) {
                            Some(v) => num(format!("{v:.4}")),
                            None => cell("–"),
                        });
                    }
                    row.push(num(o.get("users").and_then(|u| u.as_u64()).unwrap_or(0)));
                }
            }
            row
        })
        .collect();
    let mut headers = vec!["#", "version", "algorithm"];
    headers.extend(OFFLINE_METRICS);
    headers.push("users");
    let protocol = models
        .iter()
        .rev()
        .find_map(|m| m.model.metrics.get("offline")?.get("protocol")?.as_str())
        .map(|p| {
            format!(
                "<p class=\"note\">Protocol (newest version): {}</p>",
                escape(p)
            )
        })
        .unwrap_or_default();
    format!(
        "<section id=\"offline-metrics\"><h2>Offline metrics by version</h2>{}{protocol}</section>",
        table(&headers, &rows)
    )
}

/// Learning curves (training loss per epoch, validation metric if reported) of the newest
/// versions that have one; versions of non-iterative models are listed as having none.
pub fn curves_section(models: &[ModelRecord]) -> String {
    let mut figures = String::new();
    let mut without: Vec<String> = Vec::new();
    let mut drawn = 0;
    for (i, m) in models.iter().enumerate().rev() {
        let curve = stored_curve(&m.model.metrics).filter(|c| !c.is_empty());
        let Some(curve) = curve else {
            without.push(format!(
                "<li><code>{}</code> ({}): no learning curve: the model reported no epochs (it \
                 is not iterative, or its loss reporting is off, as ALS without \
                 <code>training_loss=true</code>)</li>",
                escape(&m.model.version),
                escape(&m.model.algorithm)
            ));
            continue;
        };
        if drawn == MAX_CURVES {
            continue;
        }
        let mut series = vec![LineSeries {
            name: "training loss".into(),
            points: curve.iter().map(|p| (p.epoch as f64, p.loss)).collect(),
            style: SeriesStyle::LineAndMarkers,
            color: 0,
        }];
        let validation: Vec<(f64, f64)> = curve
            .iter()
            .filter_map(|p| Some((p.epoch as f64, p.validation?)))
            .collect();
        if !validation.is_empty() {
            series.push(LineSeries {
                name: "validation".into(),
                points: validation,
                style: SeriesStyle::DashedLine,
                color: 1,
            });
        }
        let chart = LineChart {
            title: format!("#{} {} ({})", i + 1, m.model.version, m.model.algorithm),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            integer_x: true,
            series,
        }
        .render();
        if let Some(chart) = chart {
            drawn += 1;
            figures.push_str(&format!(
                "<figure id=\"curve-{}\" class=\"curve\">{}</figure>",
                i + 1,
                chart.svg
            ));
        }
    }
    let mut out = String::from("<section id=\"learning-curves\"><h2>Learning curves</h2>");
    if figures.is_empty() {
        out.push_str("<p class=\"note\">No version has a learning curve.</p>");
    }
    out.push_str(&figures);
    if !without.is_empty() {
        out.push_str(&format!("<ul class=\"note\">{}</ul>", without.join("")));
    }
    out.push_str("</section>");
    out
}

/// A control chart as SVG: the series, the centre line, the 3-sigma limits and the violating
/// versions marked.
pub fn control_chart_svg(chart: &OfflineChart) -> Option<String> {
    let xs = |i: usize| (i + 1) as f64;
    let n = chart.points.len();
    let flat = |y: f64| vec![(1.0, y), (n as f64, y)];
    let mut series = vec![
        LineSeries {
            name: chart.metric.clone(),
            points: chart
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| (xs(i), p.value))
                .collect(),
            style: SeriesStyle::LineAndMarkers,
            color: 0,
        },
        LineSeries {
            name: "centre".into(),
            points: flat(chart.chart.centre),
            style: SeriesStyle::DashedLine,
            color: 2,
        },
        LineSeries {
            name: "3-sigma limits".into(),
            points: flat(chart.chart.upper_limit),
            style: SeriesStyle::DashedLine,
            color: 3,
        },
        LineSeries {
            name: "lower limit".into(),
            points: flat(chart.chart.lower_limit),
            style: SeriesStyle::DashedLine,
            color: 3,
        },
    ];
    if !chart.violations.is_empty() {
        series.push(LineSeries {
            name: "out of control".into(),
            points: chart
                .violations
                .iter()
                .map(|v| (xs(v.index), v.value))
                .collect(),
            style: SeriesStyle::Markers,
            color: 1,
        });
    }
    LineChart {
        title: format!("{} control chart", chart.name()),
        x_label: format!("{} version (retrain #)", chart.algorithm),
        y_label: chart.metric.clone(),
        integer_x: true,
        series,
    }
    .render()
    .map(|c| c.svg)
}

/// Control charts of the offline metrics across retrains, with the violations listed.
pub fn control_section(charts: &[OfflineChart]) -> String {
    let mut out = String::from(
        "<section id=\"control-charts\"><h2>Control charts across retrains</h2>\
         <p class=\"note\">Centre and 3-sigma limits from a baseline of earlier versions of the \
         same algorithm (versions already out of control are left out of it); later versions are \
         checked with the Western Electric rules.</p>",
    );
    if charts.is_empty() {
        out.push_str(
            "<p class=\"note\">No chart yet: an algorithm needs offline metrics on at least 3 \
             versions.</p></section>",
        );
        return out;
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (n, chart) in charts.iter().enumerate() {
        if let Some(svg) = control_chart_svg(chart) {
            out.push_str(&format!(
                "<figure id=\"control-{n}\" class=\"control\">{svg}</figure>"
            ));
        }
        for v in &chart.violations {
            rows.push(vec![
                cell(&chart.name()),
                format!(
                    "<td><code>{}</code></td>",
                    escape(&chart.points[v.index].version)
                ),
                num(format!("{:.4}", v.value)),
                cell(&format!(
                    "{:.4} .. {:.4}",
                    chart.chart.lower_limit, chart.chart.upper_limit
                )),
                cell(&format!("{:?}", v.rule)),
            ]);
        }
    }
    if rows.is_empty() {
        out.push_str("<p id=\"control-status\" class=\"live\">All versions in control.</p>");
    } else {
        out.push_str(&format!(
            "<div id=\"control-violations\"><p class=\"error\">{} out-of-control point(s)</p>{}</div>",
            rows.len(),
            table(&["chart", "version", "value", "limits", "rule"], &rows)
        ));
    }
    out.push_str("</section>");
    out
}

// The error is the page to answer with (see `Dashboard::authorize`).
#[allow(clippy::result_large_err)]
async fn sorted_models(dash: &Dashboard) -> Result<Vec<ModelRecord>, Response> {
    let mut models = dash
        .app
        .serving
        .store()
        .list_models()
        .await
        .map_err(|e| page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
    models.sort_by(|a, b| {
        (a.model.created_at, &a.model.version).cmp(&(b.model.created_at, &b.model.version))
    });
    Ok(models)
}

pub async fn page(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let models = match sorted_models(&dash).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let snapshot = dash.app.serving.snapshot();
    page::respond(
        StatusCode::OK,
        "Models",
        Nav::Models,
        &body(&models, snapshot.version(), None),
    )
}

/// Back to the models page after an action.
fn back() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/dashboard/models")],
    )
        .into_response()
}

pub async fn activate(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    if let Err(e) = kindred_store::check_id("model version", &version) {
        return page::error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    match dash.app.serving.lifecycle.activate(&version).await {
        Ok(_) => back(),
        Err(kindred_serving::Error::NotFound(_)) => page::error(
            StatusCode::NOT_FOUND,
            &format!("no model version `{version}`"),
        ),
        Err(e) => lifecycle_error(e),
    }
}

pub async fn rollback(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    match dash.app.serving.lifecycle.rollback().await {
        Ok(_) => back(),
        Err(e) => lifecycle_error(e),
    }
}

/// The page for a failed activation or rollback: a conflict (no previous version) as such, the
/// store unavailable as 503, anything else (the swap) as the server's own failure.
fn lifecycle_error(e: kindred_serving::Error) -> Response {
    match e {
        kindred_serving::Error::Conflict { message, .. } => {
            page::error(StatusCode::CONFLICT, &message)
        }
        kindred_serving::Error::Core(e) => {
            page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        other => page::error(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_store::NewModel;
    use serde_json::json;

    fn record(version: &str, live: bool, fit: f64) -> ModelRecord {
        ModelRecord {
            model: NewModel {
                version: version.into(),
                algorithm: "als<x>".into(),
                params: json!({"factors": 8}),
                metrics: json!({"fit_seconds": fit, "interactions": 100}),
                artifact: "/tmp/a".into(),
                created_at: 1_700_000_000,
            },
            live,
        }
    }

    #[test]
    fn the_table_escapes_and_offers_activate_only_for_versions_not_live() {
        let models = [record("v1", false, 0.5), record("v\"2", true, 0.25)];
        let html = body(&models, Some("v\"2"), None);
        assert!(html.contains("als&lt;x&gt;") && !html.contains("als<x>"));
        assert!(html.contains("action=\"/dashboard/models/v1/activate\""));
        assert!(!html.contains("/dashboard/models/v%222/activate"));
        assert!(html.contains("<td class=\"live\">live</td>"));
        assert!(html.contains("fit_seconds=0.500, interactions=100"));
        assert!(html.contains("action=\"/dashboard/models/rollback\""));
        assert!(html.contains("2023-11-14 22:13 UTC"));
    }

    fn measured(version: &str, created_at: i64, ndcg: f64, curve: bool) -> ModelRecord {
        let mut r = record(version, false, 0.5);
        r.model.algorithm = "als".into();
        r.model.created_at = created_at;
        r.model.metrics = json!({
            "fit_seconds": 0.5,
            "offline": {"ndcg@10": ndcg, "recall@10": 0.1, "precision@10": 0.05,
                        "map@10": 0.04, "coverage@10": 0.3, "users": 50,
                        "protocol": "temporal:0.2 <held out>"},
        });
        if curve {
            r.model.metrics["curve"] =
                json!([{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.0, "validation": 0.3}]);
        }
        r
    }

    #[test]
    fn offline_metrics_curves_and_control_charts_are_shown() {
        let mut models: Vec<ModelRecord> = [0.30, 0.32, 0.34, 0.36, 0.38, 0.10]
            .iter()
            .enumerate()
            .map(|(i, &v)| measured(&format!("als-{i}"), i as i64, v, i != 2))
            .collect();
        let mut off = record("pop<1>", false, 0.1);
        off.model.created_at = 100;
        models.push(off);
        let mut failed = record("err", false, 0.1);
        failed.model.created_at = 101;
        failed.model.metrics = json!({"offline": {"error": "no <users>"}});
        models.push(failed);
        let html = body(&models, None, None);
        assert!(html.contains("<section id=\"offline-metrics\">"));
        assert!(html.contains("<td class=\"num\">0.3400</td>"));
        assert!(html.contains("not measured (offline evaluation off)"));
        assert!(html.contains("not measured: no &lt;users&gt;"));
        assert!(html.contains("temporal:0.2 &lt;held out&gt;"));
        // The metrics column leaves the offline object and the curve to their sections.
        assert!(!html.contains("\"ndcg@10\""));
        assert!(html.contains("<figure id=\"curve-6\" class=\"curve\"><svg"));
        assert!(!html.contains("id=\"curve-3\""), "version 3 has no curve");
        assert!(html.contains("<code>als-2</code> (als): no learning curve"));
        assert!(html.contains("<figure id=\"control-0\" class=\"control\"><svg"));
        assert!(html.contains("id=\"control-violations\""));
        assert!(html.contains("BeyondThreeSigma"));
        assert!(html.contains("<td><code>als-5</code></td><td class=\"num\">0.1000</td>"));
    }

    #[test]
    fn without_measured_versions_the_sections_say_so() {
        let html = body(&[record("v1", true, 1.0)], Some("v1"), None);
        assert!(html.contains("No chart yet"));
        assert!(html.contains("no learning curve"));
    }

    #[test]
    fn charts_need_a_metric_on_two_versions() {
        assert!(metric_charts(&[record("v1", true, 1.0)]).is_empty());
        let charts = metric_charts(&[record("v1", false, 1.0), record("v2", true, 2.0)]);
        assert_eq!(charts.len(), 2, "fit_seconds and interactions");
        assert!(charts.iter().all(|svg| svg.starts_with("<svg")));
    }
}
