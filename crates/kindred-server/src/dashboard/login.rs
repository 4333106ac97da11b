//! `GET /dashboard/login` (the form), `POST /dashboard/login` (a key, form-encoded, exchanged
//! for a session cookie) and `POST /dashboard/logout`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::page::{self, escape, Nav};
use super::session;
use super::Dashboard;
use crate::connections::ClientAddr;

/// The login page, with an optional message, answered with `status`.
pub fn form(status: StatusCode, message: Option<&str>) -> Response {
    let message = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    page::respond(
        status,
        "Log in",
        Nav::None,
        &format!(
            "<section>{message}<form method=\"post\" action=\"/dashboard/login\">\
             <label>API key <input type=\"password\" name=\"key\" autocomplete=\"off\" required></label> \
             <button type=\"submit\">Log in</button></form>\
             <p class=\"note\">A read key shows the pages; an admin key also allows activating and \
             rolling back models. The key is not stored in the browser: it gets a session cookie.</p>\
             </section>"
        ),
    )
}

pub async fn get() -> Response {
    form(StatusCode::OK, None)
}

/// The login limit's answer: the form, 429, with `Retry-After`.
fn limited(seconds: u64) -> Response {
    let mut response = form(
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!(
            "too many failed logins from this address; try again in {seconds} s"
        )),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.into());
    response
}

pub async fn post(
    State(dash): State<Dashboard>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let address = client.map(|Extension(ClientAddr(addr))| addr.ip());
    let limit = &dash.app.login_limit;
    if let Some(seconds) = limit.wait(address) {
        return limited(seconds);
    }
    let key = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "key")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    if key.is_empty() {
        return form(StatusCode::BAD_REQUEST, Some("enter an API key"));
    }
    let Some(scope) = dash.app.keys.scope_of(&key) else {
        limit.failed(address);
        return form(StatusCode::UNAUTHORIZED, Some("that key is not valid"));
    };
    let behind_tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = dash.app.serving.config().security.secure_cookies || behind_tls;
    let Some(token) = dash.sessions.start(scope) else {
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the operating system gave no randomness for a session token",
        );
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::set_cookie(&token, secure)),
            (header::LOCATION, "/dashboard".to_owned()),
        ],
    )
        .into_response()
}

pub async fn logout(State(dash): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Some(token) = session::token_of(&headers) {
        dash.sessions.end(token);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie()),
            (header::LOCATION, "/dashboard/login".to_owned()),
        ],
    )
        .into_response()
}
