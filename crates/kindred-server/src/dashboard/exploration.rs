//! `GET /dashboard/exploration`: what exploration does. Since the server started: the exploring
//! lists it served and the items exploration placed in them. Over the last [`WINDOW_HOURS`]
//! hours of the impressions log, per logging policy: the lists and items written, the share with
//! propensities, and the items shown that the live model has not learned yet (cold-item
//! discovery). Admins can estimate any configured rank config on that window
//! (`POST /dashboard/exploration/estimate/{rank}`, the off-policy replay of `/v1/offpolicy`) and
//! read it beside the logged policy's own click rate.
//!
//! The read is bounded and cheap on any table size: the newest [`MAX_IMPRESSIONS`] impressions
//! by log position, of which those in the window count; the page says when the bound cut it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kindred_serving::exploration::replay::{
    self, CancelOnDrop, Estimate, ReplayOptions, ReplayReport,
};
use kindred_serving::snapshot::Snapshot;
use kindred_store::Impression;

use super::page::{self, cell, escape, num, table, url_value, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Hours of impressions the page reads, ending now.
pub const WINDOW_HOURS: i64 = 24;
/// Most impressions read for the page.
pub const MAX_IMPRESSIONS: usize = 200_000;

/// One logging policy's share of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyRow {
    pub lists: usize,
    pub impressions: usize,
    pub with_propensity: usize,
    /// Impressions of items the live model does not know, and how many distinct ones.
    pub new_item_impressions: usize,
    pub new_items: usize,
}

/// Per policy (`version#rank`), what the window's impressions say; `is_new` tells whether the
/// live model lacks an item.
pub fn policy_rows(
    impressions: &[Impression],
    is_new: impl Fn(&str) -> bool,
) -> BTreeMap<String, PolicyRow> {
    let mut rows: BTreeMap<String, PolicyRow> = BTreeMap::new();
    let mut lists: HashSet<(&str, &str)> = HashSet::new();
    let mut new_items: HashSet<(&str, &str)> = HashSet::new();
    for i in impressions {
        let row = rows.entry(i.policy.clone()).or_default();
        row.impressions += 1;
        row.with_propensity += usize::from(i.propensity.is_some());
        if lists.insert((&i.policy, &i.request_id)) {
            row.lists += 1;
        }
        if is_new(&i.item) {
            row.new_item_impressions += 1;
            if new_items.insert((&i.policy, &i.item)) {
                row.new_items += 1;
            }
        }
    }
    rows
}

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn body(
    dash: &Dashboard,
    snapshot: &Snapshot,
    rows: &BTreeMap<String, PolicyRow>,
    cut: bool,
    estimate: Option<&ReplayReport>,
    admin: bool,
) -> String {
    let counters = &dash.app.serving.state.counters;
    let lists = counters.exploring_lists.load(Ordering::Relaxed);
    let explored = counters.explored_items.load(Ordering::Relaxed);
    let served = counters.exploring_list_items.load(Ordering::Relaxed);
    let mut html = format!(
        "<section><h2>Since the server started</h2><p>{lists} exploring lists served; \
         exploration placed {explored} of their {served} items ({}).</p></section>",
        share(explored as usize, served as usize)
    );
    html.push_str(&learners_section(&dash.app.serving.state.bandits.summary()));
    html.push_str(&format!(
        "<section><h2>Impressions of the last {WINDOW_HOURS} hours</h2>"
    ));
    if cut {
        html.push_str(&format!(
            "<p class=\"warn\">Only the newest {MAX_IMPRESSIONS} impressions of the window were read.</p>"
        ));
    }
    if rows.is_empty() {
        html.push_str("<p>No impressions were written in the window.</p>");
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(policy, r)| {
                vec![
                    format!("<td><code>{}</code></td>", escape(policy)),
                    num(r.lists),
                    num(r.impressions),
                    num(share(r.with_propensity, r.impressions)),
                    num(r.new_item_impressions),
                    num(r.new_items),
                ]
            })
            .collect();
        html.push_str(&table(
            &[
                "policy (version#rank)",
                "lists",
                "impressions",
                "with propensity",
                "impressions of new items",
                "new items shown",
            ],
            &table_rows,
        ));
        html.push_str(
            "<p>New items: items the live model does not score (added after its training, and not scored from their features).</p>",
        );
    }
    html.push_str("</section>");
    if let Some(report) = estimate {
        html.push_str(&estimate_section(report));
    }
    if admin {
        html.push_str(
            "<section><h2>Estimate a rank config on this window</h2><p>Replays the window's \
             lists that carry propensities through the config (off-policy: IPS, SNIPS, doubly \
             robust) and compares it with what was logged.</p>",
        );
        for name in snapshot.rank_names() {
            html.push_str(&format!(
                "<form method=\"post\" action=\"/dashboard/exploration/estimate/{}\">\
                 <button type=\"submit\">Estimate <code>{}</code></button></form>",
                url_value(name),
                escape(name)
            ));
        }
        html.push_str("</section>");
    }
    html
}

/// The contextual bandits this server learns: per policy, the lists waiting for their
/// attribution window, the (decayed) observations learned and their mean reward.
fn learners_section(learners: &[(String, usize, f64, f64)]) -> String {
    let mut html = "<section><h2>Contextual bandits</h2>".to_owned();
    if learners.is_empty() {
        html.push_str("<p>No rank config of this server is a contextual bandit.</p>");
    } else {
        let rows: Vec<Vec<String>> = learners
            .iter()
            .map(|(policy, waiting, observations, mean)| {
                vec![
                    format!("<td><code>{}</code></td>", escape(policy)),
                    num(waiting),
                    num(format!("{observations:.0}")),
                    num(format!("{mean:.4}")),
                ]
            })
            .collect();
        html.push_str(&table(
            &[
                "policy (version#rank)",
                "lists waiting for feedback",
                "shown items learned (decayed)",
                "mean reward",
            ],
            &rows,
        ));
        html.push_str(
            "<p>Learned state is shared through the store: these figures include what other \
             servers on it learned up to the last flush.</p>",
        );
    }
    html.push_str("</section>");
    html
}

fn estimate_section(r: &ReplayReport) -> String {
    let row = |name: &str, e: &Estimate| {
        vec![
            cell(name),
            num(format!("{:.4}", e.estimate)),
            num(format!("[{:.4}, {:.4}]", e.lower, e.upper)),
        ]
    };
    let mut html = format!(
        "<section><h2>Estimate of <code>{}</code> (model <code>{}</code>)</h2>\
         <p>{} logged lists, {} shown items, {} clicks.</p>",
        escape(&r.candidate),
        escape(&r.model_version),
        r.requests,
        r.impressions,
        r.rewards
    );
    html.push_str(&table(
        &[
            "click rate per shown item",
            "estimate",
            &format!("{:.0}% interval", r.level * 100.0),
        ],
        &[
            row("logged policy (observed)", &r.logged),
            row("candidate, IPS", &r.ips),
            row("candidate, SNIPS", &r.snips),
            row("candidate, doubly robust", &r.doubly_robust),
        ],
    ));
    html.push_str(&format!(
        "<p>Effective sample size {:.1}; the candidate would have shown the logged top item in \
         {} of {} lists.</p>",
        r.effective_sample_size, r.top_slot_support, r.requests
    ));
    for w in &r.warnings {
        html.push_str(&format!("<p class=\"warn\">{}</p>", escape(w)));
    }
    html.push_str("</section>");
    html
}

/// Reads the window and renders the page, with an estimate when one was run.
async fn render(dash: Dashboard, headers: &HeaderMap, estimate: Option<ReplayReport>) -> Response {
    let admin = dash.authorize(headers, Scope::Admin).is_ok();
    let start = kindred_serving::unix_now() - WINDOW_HOURS * 3600;
    let store = dash.app.serving.store();
    let mut impressions = match store.newest_impressions(MAX_IMPRESSIONS).await {
        Ok(rows) => rows,
        Err(e) => return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    // The bound cut the window when even the oldest row read is inside it.
    let cut = impressions.len() == MAX_IMPRESSIONS
        && impressions.first().is_some_and(|i| i.timestamp >= start);
    impressions.retain(|i| i.timestamp >= start);
    let snapshot = dash.app.serving.snapshot();
    let rows = policy_rows(&impressions, |id| {
        snapshot.item(id).is_some_and(|i| !snapshot.in_model(i))
    });
    let html = body(&dash, &snapshot, &rows, cut, estimate.as_ref(), admin);
    page::respond(StatusCode::OK, "Exploration", Nav::Exploration, &html)
}

pub async fn page(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    render(dash, &headers, None).await
}

pub async fn estimate(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    Path(rank): Path<String>,
) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Admin) {
        return denied;
    }
    let Some(_permit) = replay::try_begin() else {
        return page::error(
            StatusCode::CONFLICT,
            "another off-policy replay is running; try again when it has finished",
        );
    };
    let snapshot = dash.app.serving.snapshot();
    let Some(pipeline) = snapshot.pipeline(Some(&rank)) else {
        return page::error(
            StatusCode::NOT_FOUND,
            &format!("no rank config is named `{rank}`"),
        );
    };
    let now = kindred_serving::unix_now();
    let options = ReplayOptions::new(
        now - WINDOW_HOURS * 3600,
        now + 1,
        pipeline.config().clone(),
        rank.clone(),
    );
    drop(snapshot);
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(Arc::clone(&cancel));
    let report = replay::replay(
        dash.app.serving.store(),
        &options,
        Arc::new(|_, _| {}),
        cancel,
    )
    .await;
    match report {
        Ok(report) => render(dash, &headers, Some(report)).await,
        Err(e) => page::error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(policy: &str, request: &str, item: &str, propensity: Option<f64>) -> Impression {
        Impression {
            request_id: request.into(),
            user: "u".into(),
            item: item.into(),
            slot: 0,
            propensity,
            policy: policy.into(),
            timestamp: 0,
        }
    }

    #[test]
    fn rows_count_lists_propensities_and_new_items_per_policy() {
        let impressions = [
            shown("v1#explore", "r1", "old", Some(0.9)),
            shown("v1#explore", "r1", "new1", Some(0.05)),
            shown("v1#explore", "r2", "new1", Some(0.05)),
            shown("v1", "r3", "old", None),
        ];
        let rows = policy_rows(&impressions, |id| id.starts_with("new"));
        assert_eq!(
            rows["v1#explore"],
            PolicyRow {
                lists: 2,
                impressions: 3,
                with_propensity: 3,
                new_item_impressions: 2,
                new_items: 1,
            }
        );
        assert_eq!(rows["v1"].with_propensity, 0);
        assert_eq!(share(1, 3), "33.3%");
        assert_eq!(share(1, 0), "-");
    }
}
