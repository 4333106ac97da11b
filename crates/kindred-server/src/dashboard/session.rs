//! Browser logins for the dashboard: a browser cannot send `Authorization: Bearer`, so a key
//! posted to the login form is exchanged for a random session token kept in an HttpOnly,
//! SameSite=Strict cookie. The server maps token -> scope in memory with an expiry; the key
//! itself never reaches the cookie or a URL. Sessions end with the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use crate::auth::Scope;
use kindred_serving::sync::lock;

/// Name of the session cookie.
pub const COOKIE: &str = "kindred_session";

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// One login.
struct Session {
    scope: Scope,
    expiry: Instant,
    /// The token its forms carry (see [`super::csrf`]).
    csrf: String,
}

/// Live sessions by token.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes from the operating system, hex-encoded; None if the OS has no randomness
/// to give (a login then fails rather than issuing a guessable token).
pub fn new_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Starts a session with `scope`; returns its token.
    pub fn start(&self, scope: Scope) -> Option<String> {
        let token = new_token()?;
        let csrf = new_token()?;
        let now = Instant::now();
        let mut live = lock(&self.live);
        // Expired sessions are dropped here so the map cannot grow without bound.
        live.retain(|_, s| s.expiry > now);
        live.insert(
            token.clone(),
            Session {
                scope,
                expiry: now + SESSION_TTL,
                csrf,
            },
        );
        Some(token)
    }

    /// The scope of a live session.
    pub fn scope(&self, token: &str) -> Option<Scope> {
        let live = lock(&self.live);
        live.get(token)
            .filter(|s| s.expiry > Instant::now())
            .map(|s| s.scope)
    }

    /// The form token of a live session.
    pub fn csrf(&self, token: &str) -> Option<String> {
        let live = lock(&self.live);
        live.get(token)
            .filter(|s| s.expiry > Instant::now())
            .map(|s| s.csrf.clone())
    }

    /// Ends a session (logout).
    pub fn end(&self, token: &str) {
        lock(&self.live).remove(token);
    }

    #[cfg(test)]
    fn expire_all(&self) {
        let past = Instant::now();
        for session in lock(&self.live).values_mut() {
            session.expiry = past;
        }
    }
}

/// The session token the request's cookies carry, if any.
pub fn token_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|token| !token.is_empty())
}

/// The `Set-Cookie` value for a new session: HttpOnly (no script can read it), SameSite=Strict
/// (no other site's form or link sends it; the forms' tokens and the Origin check guard the
/// actions too), limited to the dashboard's paths, and `Secure` (sent over HTTPS only) when the
/// server sits behind TLS.
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_grant_their_scope_until_they_end_or_expire() {
        let sessions = Sessions::default();
        let a = sessions.start(Scope::Admin).unwrap();
        let r = sessions.start(Scope::Read).unwrap();
        assert_ne!(a, r);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.scope(&a), Some(Scope::Admin));
        assert_eq!(sessions.scope(&r), Some(Scope::Read));
        let (ca, cr) = (sessions.csrf(&a).unwrap(), sessions.csrf(&r).unwrap());
        assert!(ca != cr && ca != a && ca.len() == 64);
        assert_eq!(sessions.scope("not-a-token"), None);
        sessions.end(&r);
        assert_eq!(sessions.scope(&r), None);
        sessions.expire_all();
        assert_eq!(sessions.scope(&a), None);
    }

    #[test]
    fn the_token_is_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "theme=dark".parse().unwrap());
        headers.append(
            header::COOKIE,
            "a=1; kindred_session=abc; kindred_session_x=zzz"
                .parse()
                .unwrap(),
        );
        assert_eq!(token_of(&headers), Some("abc"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, "kindred_session=".parse().unwrap());
        assert_eq!(token_of(&empty), None);
        assert_eq!(token_of(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("tok", false);
        assert!(c.starts_with("kindred_session=tok;"));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie("tok", true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
