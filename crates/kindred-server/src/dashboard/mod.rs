//! The dashboard served at `/dashboard`: server-rendered HTML pages (inline CSS and SVG charts,
//! no script, nothing loaded from elsewhere) over the live state: an overview, the model
//! registry with activate / roll back forms, offline metrics, learning curves and control
//! charts, data quality, experiments (list with start / stop forms, live results per
//! experiment), monitoring (drift, quality windows, online metrics, alerts), and a user lookup.
//!
//! Access: a page needs the read scope, an action the admin scope, granted by a Bearer header
//! (as the API) or by a login session cookie (see [`session`]); a scope whose key is unset is
//! open, as in the API. Every action form carries a token ([`csrf`]); failed logins are limited
//! per client address. The pages are not part of the OpenAPI document (they are HTML for
//! people, not API).

pub mod csrf;
pub mod experiments;
pub mod exploration;
pub mod login;
pub mod models;
pub mod monitoring;
pub mod overview;
pub mod page;
pub mod quality;
pub mod quality_gate;
pub mod selection;
pub mod session;
pub mod users;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::app_state::AppState;
use crate::auth::Scope;
use session::Sessions;

/// What dashboard handlers share.
#[derive(Clone)]
pub struct Dashboard {
    pub app: Arc<AppState>,
    pub sessions: Arc<Sessions>,
    /// The form token of a dashboard used without a login (no keys set): one per process.
    pub process_csrf: Option<String>,
}

impl Dashboard {
    /// Ok when the request may do `scope`; otherwise the page to answer with: the login form
    /// (401) without valid credentials, a 403 page for a lower scope.
    // The error is the page to answer with, built once per refused request: boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Response> {
        if headers.contains_key(axum::http::header::AUTHORIZATION) {
            return self.app.keys.check(headers, scope).map(drop).map_err(|e| {
                if e.status == StatusCode::FORBIDDEN {
                    page::error(StatusCode::FORBIDDEN, &e.message)
                } else {
                    login::form(StatusCode::UNAUTHORIZED, Some(&e.message))
                }
            });
        }
        if let Some(granted) = session::token_of(headers).and_then(|t| self.sessions.scope(t)) {
            if granted >= scope {
                return Ok(());
            }
            return Err(page::error(
                StatusCode::FORBIDDEN,
                &format!(
                    "this needs the {} scope; you are logged in with {} scope",
                    scope.name(),
                    granted.name()
                ),
            ));
        }
        if self.app.keys.open(scope) {
            return Ok(());
        }
        Err(login::form(
            StatusCode::UNAUTHORIZED,
            Some(&format!("log in with a key of {} scope", scope.name())),
        ))
    }
}

/// The dashboard's routes, with their own state (the app state plus the login sessions).
pub fn router<S: Clone + Send + Sync + 'static>(app: Arc<AppState>) -> Router<S> {
    let dashboard = Dashboard {
        app,
        sessions: Arc::new(Sessions::default()),
        process_csrf: session::new_token(),
    };
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/models", get(models::page))
        .route("/dashboard/models/rollback", post(models::rollback))
        .route(
            "/dashboard/models/{version}/activate",
            post(models::activate),
        )
        .route("/dashboard/users", get(users::page))
        .route("/dashboard/quality", get(quality::page))
        .route("/dashboard/experiments", get(experiments::list))
        .route("/dashboard/experiments/{name}", get(experiments::results))
        .route(
            "/dashboard/experiments/{name}/start",
            post(experiments::start),
        )
        .route(
            "/dashboard/experiments/{name}/stop",
            post(experiments::stop),
        )
        .route("/dashboard/exploration", get(exploration::page))
        .route(
            "/dashboard/exploration/estimate/{rank}",
            post(exploration::estimate),
        )
        .route("/dashboard/monitoring", get(monitoring::page))
        .route("/dashboard/monitoring/run", post(monitoring::run))
        .route("/dashboard/login", get(login::get).post(login::post))
        .route("/dashboard/logout", post(login::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            csrf::guard,
        ))
        .with_state(dashboard)
}
