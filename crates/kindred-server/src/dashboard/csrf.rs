//! Form tokens for the dashboard's actions: every `<form method="post">` the dashboard renders
//! carries a hidden `csrf` field, and a POST to the dashboard without the right one is refused
//! with 403. The token is the login session's own (random per session); a dashboard open without
//! keys uses one random token per process. Another site cannot read the token, so it cannot
//! forge a form that passes, even where a browser sends no `Origin` header.
//!
//! The check and the field are added here, around the dashboard's routes, so no page or
//! handler can forget them. Requests with an `Authorization` header skip the check: a browser
//! never attaches one on its own, and such a client holds a key. So do requests with neither a
//! session nor an open scope: they carry no authority to ride on, and get the login form. The login form is exempt (it
//! runs before any session exists; the Origin check and the login limit guard it).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::session;
use super::{page, Dashboard};
use crate::auth::Scope;

/// Name of the hidden form field.
pub const FIELD: &str = "csrf";

/// Largest dashboard form body read (the forms carry a token and nothing else).
const MAX_FORM_BYTES: usize = 16 << 10;

/// The token the forms of this request's page carry, and that its POSTs must send back: the
/// session's, or the process's when there is no session; and whether the request has ambient
/// authority a forged form could ride on (a session, or a scope open without a key).
pub fn expected(dash: &Dashboard, headers: &HeaderMap) -> (Option<String>, bool) {
    match session::token_of(headers).and_then(|t| dash.sessions.csrf(t)) {
        Some(token) => (Some(token), true),
        None => {
            let open = [Scope::Read, Scope::Write, Scope::Admin]
                .into_iter()
                .any(|scope| dash.app.keys.open(scope));
            (dash.process_csrf.clone(), open)
        }
    }
}

/// Equal in time that does not depend on where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Inserts the hidden field right after every post form's opening tag.
pub fn add_field(html: &str, token: &str) -> String {
    let field = format!("<input type=\"hidden\" name=\"{FIELD}\" value=\"{token}\">");
    let mut out = String::with_capacity(html.len() + 128);
    let mut rest = html;
    while let Some(at) = rest.find("<form method=\"post\"") {
        let Some(end) = rest[at..].find('>') else {
            break;
        };
        out.push_str(&rest[..at + end + 1]);
        out.push_str(&field);
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The middleware around the dashboard's routes.
pub async fn guard(State(dash): State<Dashboard>, req: Request, next: Next) -> Response {
    let (token, ambient) = expected(&dash, req.headers());
    // A POST without a session on a dashboard that needs keys has nothing to forge: the handler
    // answers it with the login form.
    let checked = req.method() == Method::POST
        && ambient
        && req.uri().path() != "/dashboard/login"
        && !req.headers().contains_key(header::AUTHORIZATION);
    let req = if checked {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return page::error(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let sent = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == FIELD)
            .map(|(_, value)| value.into_owned());
        match (&token, sent) {
            (Some(want), Some(got)) if same(want, &got) => {}
            _ => {
                return page::error(
                    StatusCode::FORBIDDEN,
                    "the form's token is missing or stale (the page is old, or the form came \
                     from another site): reload the page and try again",
                )
            }
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let response = next.run(req).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let Some(token) = token.filter(|_| is_html) else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    // The dashboard's own pages: bounded by what it renders.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the page failed",
        );
    };
    let html = add_field(&String::from_utf8_lossy(&bytes), &token);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_post_form_gets_the_field_and_nothing_else_changes() {
        let html = "<p>x</p><form method=\"post\" action=\"/a\"><button>A</button></form>\
                    <form method=\"get\" action=\"/b\"></form>\
                    <form method=\"post\" action=\"/c\"></form>";
        let out = add_field(html, "t0k");
        assert_eq!(out.matches("name=\"csrf\" value=\"t0k\"").count(), 2);
        assert!(out.contains(
            "<form method=\"post\" action=\"/a\"><input type=\"hidden\" name=\"csrf\" value=\"t0k\"><button>"
        ));
        assert!(out.contains("<form method=\"get\" action=\"/b\"></form>"));
        assert_eq!(add_field("no forms", "t"), "no forms");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
