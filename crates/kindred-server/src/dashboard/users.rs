//! `GET /dashboard/users?user=ID`: look up one user: stored features, recent feedback, the list
//! the live snapshot gives them now (score and source of each item, real-time feedback folded
//! in as for `GET /v1/recommend`), and the most similar users.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::page::{self, cell, escape, num, table, url_value, Nav};
use super::Dashboard;
use crate::auth::Scope;

/// Items in the list shown, feedback rows shown, similar users shown.
const LIST_N: usize = 20;
const FEEDBACK_ROWS: usize = 50;
const SIMILAR_N: usize = 10;

fn lookup_form(user: &str) -> String {
    format!(
        "<section><form method=\"get\" action=\"/dashboard/users\"><label>User id \
         <input name=\"user\" value=\"{}\" required></label> <button type=\"submit\">Look up</button>\
         </form></section>",
        escape(user)
    )
}

pub async fn page(
    State(dash): State<Dashboard>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(denied) = dash.authorize(&headers, Scope::Read) {
        return denied;
    }
    let user = query
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "user"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mut body = lookup_form(&user);
    if user.is_empty() {
        return page::respond(StatusCode::OK, "Users", Nav::Users, &body);
    }
    if let Err(e) = kindred_store::check_id("user id", &user) {
        body.push_str(&format!(
            "<section><p class=\"error\">{}</p></section>",
            escape(&e.to_string())
        ));
        return page::respond(StatusCode::BAD_REQUEST, "Users", Nav::Users, &body);
    }
    let app = &dash.app;
    let stored = app.serving.store().get_user(&user).await;
    let feedback = app
        .serving
        .store()
        .feedback_for_user(&user, FEEDBACK_ROWS)
        .await;
    let (stored, feedback) = match (stored, feedback) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => {
            return page::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    };
    let snapshot = app.serving.snapshot();
    let known = snapshot.users.get(&user).is_some();
    if stored.is_none() && feedback.is_empty() && !known {
        body.push_str(&format!(
            "<section><p class=\"error\">No user <code>{}</code> in the store or the live data.</p></section>",
            escape(&user)
        ));
        return page::respond(StatusCode::NOT_FOUND, "Users", Nav::Users, &body);
    }

    let features: Vec<Vec<String>> = stored
        .as_ref()
        .map(|u| {
            u.features
                .iter()
                .map(|(k, v)| vec![cell(k), cell(&v.to_string())])
                .collect()
        })
        .unwrap_or_default();
    body.push_str(&format!(
        "<section id=\"features\"><h2>Features of <code>{}</code></h2>{}</section>",
        escape(&user),
        if stored.is_none() {
            "<p class=\"note\">Not in the users table (known from feedback only).</p>".to_owned()
        } else if features.is_empty() {
            "<p class=\"note\">No features.</p>".to_owned()
        } else {
            table(&["feature", "value"], &features)
        }
    ));

    let list = match app.serving.lists.preview(&snapshot, &user, LIST_N) {
        Ok(list) => list,
        Err(e) => return page::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let score = if r.score.is_finite() {
                format!("{:.4}", r.score)
            } else {
                "–".to_owned()
            };
            vec![
                num(i + 1),
                cell(snapshot.items.external(r.item)),
                num(score),
                cell(&r.source.to_string()),
            ]
        })
        .collect();
    body.push_str(&format!(
        "<section id=\"list\"><h2>Current list (model version <code>{}</code>)</h2>{}</section>",
        escape(snapshot.version().unwrap_or("none")),
        table(&["#", "item", "score", "source"], &rows)
    ));

    let rows: Vec<Vec<String>> = feedback
        .iter()
        .map(|f| {
            let f = &f.feedback;
            vec![
                cell(&page::date_time(f.timestamp)),
                cell(&f.item),
                cell(&f.event_type),
                num(f.value.map_or_else(String::new, |v| v.to_string())),
            ]
        })
        .collect();
    body.push_str(&format!(
        "<section id=\"feedback\"><h2>Recent feedback (up to {FEEDBACK_ROWS})</h2>{}</section>",
        table(&["time", "item", "type", "value"], &rows)
    ));

    let similar = match snapshot.similar_users(&user, SIMILAR_N) {
        Ok(s) => s,
        Err(e) => return page::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let similar_html = match similar {
        Some((users, method)) => {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|(id, score)| {
                    vec![
                        format!(
                            "<td><a href=\"/dashboard/users?user={}\">{}</a></td>",
                            escape(&url_value(id)),
                            escape(id)
                        ),
                        num(format!("{score:.4}")),
                    ]
                })
                .collect();
            format!(
                "<p class=\"note\">By {}.</p>{}",
                escape(method),
                table(&["user", "similarity"], &rows)
            )
        }
        None => "<p class=\"note\">The live data does not know this user yet.</p>".to_owned(),
    };
    body.push_str(&format!(
        "<section id=\"similar\"><h2>Similar users</h2>{similar_html}</section>"
    ));
    page::respond(StatusCode::OK, "Users", Nav::Users, &body)
}
