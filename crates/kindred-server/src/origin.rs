//! Cross-site request refusal: a state-changing request (any method but GET, HEAD and OPTIONS)
//! that a browser sent from another site is answered 403 `cross_origin` before it runs.
//!
//! A browser names the page that made a request in `Origin` (every cross-site POST carries it)
//! and, in current browsers, says `Sec-Fetch-Site: cross-site`. The request may go on when its
//! `Origin` is the server itself (same host and port as the `Host` header) or one configured in
//! `security.allowed_origins`; an opaque `Origin: null` never may. Clients that are not browsers
//! (curl, SDKs, the simulator) send neither header and are not affected: they cannot be tricked
//! into sending a request, and they authenticate with a key a browser never attaches.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app_state::AppState;
use crate::error::ApiError;

/// Why a request counts as cross-site, or None when it may go on.
pub fn cross_site(headers: &HeaderMap, allowed: &[String]) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text(header::ORIGIN.as_str()) {
        Some(origin) => {
            if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
                return None;
            }
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let host = text(header::HOST.as_str());
            match (authority, host) {
                (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => None,
                _ => Some(format!(
                    "Origin `{}` is neither this server nor in security.allowed_origins",
                    origin.chars().take(100).collect::<String>()
                )),
            }
        }
        None if text("sec-fetch-site") == Some("cross-site") => {
            Some("the browser says the request came from another site".into())
        }
        None => None,
    }
}

/// The middleware over the whole router.
pub async fn refuse_cross_site(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let allowed = &state.serving.config().security.allowed_origins;
    match cross_site(req.headers(), allowed) {
        Some(why) => ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("refused a cross-site request: {why}"),
        )
        .into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_host_and_allowed_origins_pass_others_do_not() {
        let allowed = vec!["https://ops.example.com".to_string()];
        let same = headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert_eq!(cross_site(&same, &allowed), None);
        let other_port = headers(&[
            ("origin", "http://127.0.0.1:9999"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(cross_site(&other_port, &allowed).is_some());
        let evil = headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(cross_site(&evil, &allowed)
            .unwrap()
            .contains("evil.example"));
        let proxied = headers(&[
            ("origin", "https://ops.example.com"),
            ("host", "10.0.0.5:8080"),
        ]);
        assert_eq!(cross_site(&proxied, &allowed), None);
        let opaque = headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]);
        assert!(cross_site(&opaque, &allowed).is_some());
        let fetch = headers(&[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:8080")]);
        assert!(cross_site(&fetch, &allowed).is_some());
        let same_site = headers(&[("sec-fetch-site", "same-origin"), ("host", "h")]);
        assert_eq!(cross_site(&same_site, &allowed), None);
        assert_eq!(
            cross_site(&HeaderMap::new(), &allowed),
            None,
            "curl and SDKs"
        );
    }
}
