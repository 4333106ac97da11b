//! `GET /dashboard/models`: the registered versions (algorithm, creation time, metrics, which is
//! live) with a chart per numeric metric across versions, and the admin forms
//! `POST /dashboard/models/{version}/activate` and `POST /dashboard/models/rollback`, which do
//! what the API's admin routes do and return to the page.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kindred_report::chart::{LineChart, LineSeries, SeriesStyle};
use kindred_store::ModelRecord;

use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;

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

fn metrics_text(record: &ModelRecord) -> String {
    match record.model.metrics.as_object() {
        Some(obj) => obj
            .iter()
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

// The error is the page to answer with (see `Dashboard::authorize`).
#[allow(clippy::result_large_err)]
async fn sorted_models(dash: &Dashboard) -> Result<Vec<ModelRecord>, Response> {
    let mut models = dash
        .app
        .store
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
    let snapshot = dash.app.snapshot();
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
    let app = &dash.app;
    match app.store.get_model(&version).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return page::error(
                StatusCode::NOT_FOUND,
                &format!("no model version `{version}`"),
            )
        }
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    if let Err(e) = app.store.activate_model(&version).await {
        return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    if let Err(e) = app.rebuild().await {
        return page::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    back()
}

pub async fn rollback(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    let app = &dash.app;
    match app.store.rollback_model().await {
        Ok(_) => {}
        Err(kindred_core::Error::InvalidInput(m)) => return page::error(StatusCode::CONFLICT, &m),
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    if let Err(e) = app.rebuild().await {
        return page::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    back()
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

    #[test]
    fn charts_need_a_metric_on_two_versions() {
        assert!(metric_charts(&[record("v1", true, 1.0)]).is_empty());
        let charts = metric_charts(&[record("v1", false, 1.0), record("v2", true, 2.0)]);
        assert_eq!(charts.len(), 2, "fit_seconds and interactions");
        assert!(charts.iter().all(|svg| svg.starts_with("<svg")));
    }
}
