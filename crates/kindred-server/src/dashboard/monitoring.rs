//! `GET /dashboard/monitoring`: the latest monitoring pass
//! ([`kindred_serving::monitor::Monitor::latest`]):
//! the reference and current windows, the population stability index of each distribution as a
//! bar chart with the alert threshold and as a table, the quality counters of both windows,
//! the online metrics per (model version, variant), the recent alerts, and the status of the
//! offline control charts. `POST /dashboard/monitoring/run` (admin) runs a pass now, as
//! `POST /v1/monitoring/run` does, and returns to the page.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kindred_serving::config::MonitoringConfig;
use kindred_serving::lifecycle::offline::OfflineChart;
use kindred_serving::monitor::alerts::{kind_name, AlertRecord};
use kindred_serving::monitor::drift::PassReport;
use kindred_serving::monitor::online::OnlineReport;
use kindred_stats::monitoring::window::DistributionDrift;
use kindred_stats::monitoring::{PsiLevel, QualityCounters};

use super::experiments::fmt;
use super::page::{self, cell, escape, num, table, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Alerts listed (newest first).
pub const MAX_ALERTS: usize = 50;

fn level_name(level: Option<PsiLevel>) -> &'static str {
    match level {
        Some(PsiLevel::Stable) => "stable",
        Some(PsiLevel::Moderate) => "moderate",
        Some(PsiLevel::Major) => "major",
        None => "too few observations",
    }
}

/// The alert limit of a distribution's PSI: its own when configured, else `psi_max`.
fn psi_limit(config: &MonitoringConfig, name: &str) -> f64 {
    config
        .psi_limits
        .get(name)
        .copied()
        .unwrap_or(config.psi_max)
}

/// The PSI of each distribution as horizontal bars with the alert threshold as a dashed line;
/// bars over their limit are red. None when no distribution has a PSI.
pub fn psi_chart(distributions: &[DistributionDrift], config: &MonitoringConfig) -> Option<String> {
    const LABEL: f64 = 190.0;
    const PLOT: f64 = 400.0;
    const ROW: f64 = 22.0;
    let measured: Vec<(&DistributionDrift, f64)> = distributions
        .iter()
        .filter_map(|d| Some((d, d.psi.filter(|p| p.is_finite())?)))
        .collect();
    if measured.is_empty() {
        return None;
    }
    let threshold = config.psi_max;
    let top = measured
        .iter()
        .map(|(d, p)| p.max(psi_limit(config, &d.name)))
        .fold(threshold, f64::max)
        * 1.1;
    let top = if top > 0.0 { top } else { 1.0 };
    let x = |v: f64| LABEL + PLOT * v.max(0.0) / top;
    let height = ROW * measured.len() as f64 + 30.0;
    let width = LABEL + PLOT + 70.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" font-family=\"system-ui,sans-serif\" \
         font-size=\"11\"><title>Population stability index by distribution</title>"
    );
    for (i, (d, p)) in measured.iter().enumerate() {
        let y = 5.0 + ROW * i as f64;
        let over = *p > psi_limit(config, &d.name);
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\">{}</text><rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y + ROW / 2.0 + 3.0,
            escape(&d.name),
            x(*p) - LABEL,
            ROW - 6.0,
            if over { "#b42318" } else { "#4c78a8" },
            x(*p) + 4.0,
            y + ROW / 2.0 + 3.0,
            escape(&fmt(*p)),
        ));
    }
    let bottom = 5.0 + ROW * measured.len() as f64;
    svg.push_str(&format!(
        "<line class=\"threshold\" x1=\"{t:.1}\" x2=\"{t:.1}\" y1=\"2\" y2=\"{bottom:.1}\" \
         stroke=\"#b42318\" stroke-dasharray=\"4,3\"/><text x=\"{t:.1}\" y=\"{:.1}\" \
         text-anchor=\"middle\" fill=\"#b42318\">alert above {}</text></svg>",
        bottom + 14.0,
        escape(&fmt(threshold)),
        t = x(threshold),
    ));
    Some(svg)
}

fn quality_rows(label: &str, q: &QualityCounters) -> Vec<String> {
    vec![
        cell(label),
        cell(&format!(
            "{} to {}",
            page::date_time(q.window.start),
            page::date_time(q.window.end)
        )),
        num(q.events),
        num(q.users),
        num(q.items),
        num(format!("{:.1}", q.events_per_day)),
        num(format!(
            "{} ({:.2}%)",
            q.duplicate_events,
            100.0 * q.duplicate_rate
        )),
        num(format!(
            "{} ({:.1}% of events)",
            q.bot_users,
            100.0 * q.bot_event_share
        )),
        num(q.missing_fields.values().sum::<u64>()),
        num(q.invalid_fields.values().sum::<u64>()),
    ]
}

fn option(value: Option<f64>, f: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| cell("–"), |v| num(f(v)))
}

fn percent(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// The online metrics table.
pub fn online_section(online: &[OnlineReport]) -> String {
    if online.is_empty() {
        return "<section id=\"online\"><h2>Online metrics</h2><p class=\"note\">No list served \
                since the server started.</p></section>"
            .into();
    }
    let rows: Vec<Vec<String>> = online
        .iter()
        .map(|o| {
            vec![
                format!("<td><code>{}</code></td>", escape(&o.key.model_version)),
                cell(o.key.variant.as_deref().unwrap_or("–")),
                num(o.lists),
                num(o.items),
                option(o.ctr, percent),
                option(o.conversion_rate, percent),
                option(o.fallback_share, percent),
                option(o.coverage, percent),
                option(o.diversity, fmt),
                option(o.score_mean, fmt),
                option(o.latency_p50_ms, |v| format!("{} ms", fmt(v))),
                option(o.latency_p99_ms, |v| format!("{} ms", fmt(v))),
            ]
        })
        .collect();
    format!(
        "<section id=\"online\"><h2>Online metrics by model version and variant</h2>{}\
         <p class=\"note\">Since the server started; CTR and conversion count feedback on items \
         the same user was shown within the attribution window.</p></section>",
        table(
            &[
                "model version",
                "experiment/variant",
                "lists",
                "items",
                "CTR",
                "conversion",
                "fallback share",
                "coverage",
                "diversity",
                "mean score",
                "p50 latency",
                "p99 latency",
            ],
            &rows
        )
    )
}

/// The recent alerts table (newest first).
pub fn alerts_section(alerts: &[AlertRecord]) -> String {
    if alerts.is_empty() {
        return "<section id=\"alerts\"><h2>Recent alerts</h2><p class=\"live\">No alert.</p></section>"
            .into();
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                num(a.id),
                cell(kind_name(a.alert.kind)),
                cell(&a.alert.subject),
                num(fmt(a.alert.value)),
                num(fmt(a.alert.limit)),
                cell(&page::date_time(a.first_seen)),
                cell(&page::date_time(a.last_seen)),
                num(a.count),
                cell(&a.alert.message),
            ]
        })
        .collect();
    format!(
        "<section id=\"alerts\"><h2>Recent alerts</h2><p class=\"error\">{} alert(s)</p>{}</section>",
        alerts.len(),
        table(
            &[
                "#",
                "kind",
                "subject",
                "value",
                "limit",
                "first seen",
                "last seen",
                "count",
                "message"
            ],
            &rows
        )
    )
}

/// The offline control charts' status, with a link to the charts on the models page.
pub fn control_status(charts: &[OfflineChart]) -> String {
    let link = "<a href=\"/dashboard/models#control-charts\">the models page</a>";
    let text = if charts.is_empty() {
        format!(
            "<p class=\"note\">No control chart yet (an algorithm needs offline metrics on at \
             least 3 versions); see {link}.</p>"
        )
    } else {
        let out: Vec<String> = charts
            .iter()
            .filter(|c| !c.violations.is_empty())
            .map(|c| {
                format!(
                    "<li>{}: {} out-of-control point(s)</li>",
                    escape(&c.name()),
                    c.violations.len()
                )
            })
            .collect();
        if out.is_empty() {
            format!(
                "<p class=\"live\">All {} chart(s) in control; see {link}.</p>",
                charts.len()
            )
        } else {
            format!(
                "<p class=\"error\">Out of control:</p><ul>{}</ul><p>See {link}.</p>",
                out.join("")
            )
        }
    };
    format!("<section id=\"control\"><h2>Offline control charts</h2>{text}</section>")
}

/// The drift and quality sections of a pass.
pub fn pass_section(pass: &PassReport, config: &MonitoringConfig) -> String {
    let mut out = format!(
        "<section id=\"pass\"><h2>Latest pass</h2><p>Run at {}; {} events read{}; took {} ms.</p>",
        page::date_time(pass.at),
        pass.events_read,
        if pass.truncated {
            " (the read limit cut the windows short)"
        } else {
            ""
        },
        pass.millis
    );
    let Some(report) = &pass.report else {
        out.push_str(
            "<p class=\"note\">No drift or quality report: there were no events in the \
             windows.</p></section>",
        );
        return out;
    };
    let drift = &report.drift;
    out.push_str(&format!(
        "<p id=\"windows\">Reference window {} to {} ({} events); current window {} to {} ({} \
         events).</p></section>",
        page::date_time(drift.windows.reference.start),
        page::date_time(drift.windows.reference.end),
        drift.reference_events,
        page::date_time(drift.windows.current.start),
        page::date_time(drift.windows.current.end),
        drift.current_events,
    ));
    let rows: Vec<Vec<String>> = drift
        .distributions
        .iter()
        .map(|d| {
            let limit = psi_limit(config, &d.name);
            let over = d.psi.is_some_and(|p| p > limit);
            vec![
                cell(&d.name),
                option(d.psi, fmt),
                num(fmt(limit)),
                if over {
                    format!("<td class=\"error\">{}</td>", level_name(d.level))
                } else {
                    cell(level_name(d.level))
                },
                num(fmt(d.reference_observations)),
                num(fmt(d.current_observations)),
            ]
        })
        .collect();
    out.push_str(&format!(
        "<section id=\"drift\"><h2>Drift (population stability index)</h2>{}{}<p class=\"note\">\
         Below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major.</p></section>",
        psi_chart(&drift.distributions, config)
            .map(|svg| format!("<figure id=\"psi-chart\">{svg}</figure>"))
            .unwrap_or_else(
                || "<p class=\"note\">No distribution had enough observations.</p>".into()
            ),
        table(
            &[
                "distribution",
                "PSI",
                "alert limit",
                "status",
                "reference observations",
                "current observations"
            ],
            &rows
        )
    ));
    out.push_str(&format!(
        "<section id=\"window-quality\"><h2>Data quality of the windows</h2>{}</section>",
        table(
            &[
                "window",
                "span",
                "events",
                "users",
                "items",
                "events per day",
                "duplicates",
                "bot-like users",
                "missing values",
                "invalid values"
            ],
            &[
                quality_rows("reference", &report.reference_quality),
                quality_rows("current", &report.current_quality)
            ]
        )
    ));
    out
}

/// The whole page body.
pub fn body(
    config: &MonitoringConfig,
    pass: Option<&PassReport>,
    online: &[OnlineReport],
    alerts: &[AlertRecord],
    charts: &[OfflineChart],
    admin: bool,
) -> String {
    let mut out = String::new();
    if !config.enabled {
        out.push_str(
            "<section id=\"monitoring-off\"><p class=\"note\">Monitoring is disabled \
             (<code>[monitoring] enabled = false</code>): no drift or quality pass runs.</p></section>",
        );
    } else {
        if admin {
            out.push_str(
                "<section><form method=\"post\" action=\"/dashboard/monitoring/run\">\
                 <button type=\"submit\">Run a pass now</button></form></section>",
            );
        }
        match pass {
            Some(p) => out.push_str(&pass_section(p, config)),
            None => {
                out.push_str(&format!(
                "<section id=\"pass\"><p class=\"note\">No monitoring pass has run yet (one runs \
                 every {} s{}).</p></section>",
                config.interval_seconds,
                if admin { ", or now with the button" } else { "" }
            ))
            }
        }
    }
    out.push_str(&online_section(online));
    out.push_str(&alerts_section(alerts));
    out.push_str(&control_status(charts));
    out
}

pub async fn page(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let app = &dash.app;
    let models = match app.serving.store().list_models().await {
        Ok(m) => m,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let mut models = models;
    models.sort_by(|a, b| {
        (a.model.created_at, &a.model.version).cmp(&(b.model.created_at, &b.model.version))
    });
    let charts = kindred_serving::offline_control_charts(&models);
    let snapshot = app.serving.snapshot();
    let monitor = &app.serving.monitor;
    let online = monitor.online.report(snapshot.items.len());
    let alerts = monitor.alerts.recent(MAX_ALERTS);
    let admin = dash.authorize(&headers, Scope::Admin).is_ok();
    let latest = monitor.latest();
    page::respond(
        StatusCode::OK,
        "Monitoring",
        Nav::Monitoring,
        &body(
            &app.serving.config().monitoring,
            latest.as_deref(),
            &online,
            &alerts,
            &charts,
            admin,
        ),
    )
}

pub async fn run(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    match dash.app.serving.run_monitoring_pass().await {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/dashboard/monitoring")],
        )
            .into_response(),
        Err(e @ kindred_serving::Error::Conflict { .. }) => {
            page::error(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_stats::monitoring::{Alert, AlertKind, Binned};

    fn drift(name: &str, psi: Option<f64>) -> DistributionDrift {
        DistributionDrift {
            name: name.into(),
            psi,
            level: psi.map(PsiLevel::of),
            reference_observations: 100.0,
            current_observations: 90.0,
            bins: Binned {
                labels: vec![],
                reference: vec![],
                current: vec![],
            },
        }
    }

    #[test]
    fn the_psi_chart_marks_the_threshold_and_bars_over_it() {
        let config = MonitoringConfig {
            psi_max: 0.25,
            ..MonitoringConfig::default()
        };
        let svg = psi_chart(
            &[
                drift("item <popularity>", Some(0.5)),
                drift("user_activity", Some(0.05)),
                drift("empty", None),
            ],
            &config,
        )
        .unwrap();
        // Scale: 0 .. 0.55 over 400 px from x = 190; the threshold 0.25 sits at 190 + 400 * 0.25 / 0.55.
        let t = 190.0 + 400.0 * 0.25 / 0.55;
        assert!(
            svg.contains(&format!("x1=\"{t:.1}\" x2=\"{t:.1}\"")),
            "{svg}"
        );
        assert!(svg.contains("item &lt;popularity&gt;") && !svg.contains("<popularity>"));
        assert_eq!(svg.matches("fill=\"#b42318\"/>").count(), 1, "one bar over");
        assert!(!svg.contains(">empty<"), "no PSI, no bar");
        assert!(psi_chart(&[drift("x", None)], &config).is_none());
    }

    #[test]
    fn alerts_are_listed_escaped() {
        let record = AlertRecord {
            id: 3,
            alert: Alert {
                kind: AlertKind::Drift,
                subject: "<item_popularity>".into(),
                value: 0.61,
                limit: 0.25,
                window: None,
                message: "psi > limit & more".into(),
            },
            first_seen: 1_700_000_000,
            last_seen: 1_700_000_600,
            count: 2,
        };
        let html = alerts_section(&[record]);
        assert!(html.contains("<td>&lt;item_popularity&gt;</td>"), "{html}");
        assert!(html.contains("<td>drift</td>"));
        assert!(html.contains("<td class=\"num\">0.6100</td><td class=\"num\">0.2500</td>"));
        assert!(html.contains("2023-11-14 22:23 UTC"), "last seen");
        assert!(html.contains("psi &gt; limit &amp; more"));
        assert!(alerts_section(&[]).contains("No alert."));
    }

    #[test]
    fn disabled_or_not_yet_run_monitoring_says_so() {
        let off = MonitoringConfig {
            enabled: false,
            ..MonitoringConfig::default()
        };
        let html = body(&off, None, &[], &[], &[], true);
        assert!(html.contains("Monitoring is disabled"));
        assert!(!html.contains("<form"), "no pass to run");
        let on = MonitoringConfig {
            enabled: true,
            ..MonitoringConfig::default()
        };
        let html = body(&on, None, &[], &[], &[], false);
        assert!(html.contains("No monitoring pass has run yet"));
        assert!(!html.contains("<form"), "read scope: no form");
        assert!(
            body(&on, None, &[], &[], &[], true).contains("action=\"/dashboard/monitoring/run\"")
        );
        assert!(html.contains("No list served"));
        assert!(html.contains("No control chart yet"));
    }
}
