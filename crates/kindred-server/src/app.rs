//! Assembles the router (routes, auth per scope, body limit, timeout, metrics, request logs) and
//! runs it until a shutdown signal, finishing requests in flight, with the serving background
//! work beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::app_state::AppState;
use crate::auth::{Granted, Scope};
use crate::connections::{accept_loop, ConnectionLimits};
use crate::error::{ApiError, Error, Result};
use crate::routes;

async fn require(
    State((state, scope)): State<(Arc<AppState>, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    match state.keys.check(req.headers(), scope) {
        Ok(granted) => {
            req.extensions_mut().insert::<Granted>(granted);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// When the server began handling a request (an extension set by [`observe`]): handlers with a
/// deadline of their own count from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub Instant);

/// Times the request out, counts it, and logs failures.
async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    req.extensions_mut().insert(RequestStarted(started));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    // The two POST routes that only read (their bodies describe a query) are not writes.
    let writes = matches!(method, "PUT" | "DELETE" | "PATCH")
        || (method == "POST" && !matches!(route.as_str(), "/v1/recommend" | "/v1/predict"));
    let timeout = Duration::from_millis(state.serving.config().request_timeout_ms);
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        // Feedback answers its own deadline first (`possibly_stored` with the event ids); any
        // other write that runs out of time here may still complete, and says so.
        Err(_) if writes => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} ms; the write may still complete: retrying it \
                 is safe (users and items are replaced, feedback with an event_id is stored once)",
                timeout.as_millis()
            ),
        )
        .with_detail("possibly_stored", serde_json::Value::Bool(true))
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", timeout.as_millis()),
        )
        .into_response(),
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(&route, method, status, elapsed);
    if status >= 500 {
        tracing::warn!(%route, %method, status, micros = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%route, %method, status, micros = elapsed.as_micros() as u64, "request");
    }
    response
}

/// The methods the API uses, as metrics labels and in messages; any other (a client may send
/// any token as a method, of any length) is `OTHER`, so request data never becomes a label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// At most `max` characters of a request path, for messages that echo it.
fn path_excerpt(path: &str, max: usize) -> String {
    match path.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &path[..end]),
        None => path.to_owned(),
    }
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route {} {}; see /openapi.json",
            method_label(req.method()),
            path_excerpt(req.uri().path(), 200)
        ),
    )
}

async fn method_not_allowed(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let path = path_excerpt(req.uri().path(), 200);
    let response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; see /openapi.json"),
        )
        .into_response();
    }
    response
}

/// The whole application.
pub fn router(state: Arc<AppState>) -> Router {
    let scoped = |scope: Scope| {
        routes::routes(scope).route_layer(middleware::from_fn_with_state(
            (Arc::clone(&state), scope),
            require,
        ))
    };
    Router::new()
        .merge(routes::open_routes())
        .merge(scoped(Scope::Read))
        .merge(scoped(Scope::Write))
        .merge(scoped(Scope::Admin))
        .merge(crate::dashboard::router(Arc::clone(&state)))
        .fallback(no_route)
        .layer(middleware::from_fn(method_not_allowed))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::origin::refuse_cross_site,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::shedding::shed_load,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .layer(DefaultBodyLimit::max(state.serving.config().max_body_bytes))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then stops taking connections and lets
/// requests in flight finish; background work stops with it.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serving = state.serving.clone();
    let background = tokio::spawn(async move { serving.run_background(stop_rx).await });
    let config = state.serving.config();
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        max_connections: config.max_connections,
    };
    let counters = Arc::clone(&state.connections);
    let app = router(state);
    accept_loop(listener, app, limits, counters, shutdown).await;
    let _ = stop_tx.send(true);
    let _ = background.await;
    Ok(())
}

/// Binds the configured address.
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| Error::Bind { addr, error })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
