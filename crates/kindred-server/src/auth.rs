//! API keys and scopes: every route needs read, write or admin, checked from
//! `Authorization: Bearer KEY` against the configured keys.
//!
//! Scopes nest (admin > write > read): an admin key may do everything, a write key may also
//! read. On a loopback address a scope whose own key is unset is open (no read key: reads are
//! open), so a server on loopback with no keys needs no header at all. On any other address
//! nothing is open: a scope without its own key needs a key of a higher scope (no read key:
//! reads need the write or admin key), because user features, feedback histories, metrics and
//! the model registry are not for strangers; the config refuses such an address without write
//! and admin keys. Only `/health/live`, `/health/ready` (which then says no more than ready or
//! not) and `/openapi.json` answer without a key.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use kindred_serving::config::KeysConfig;

use crate::error::ApiError;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Compares without an early exit, so response times do not reveal how much of a key matched.
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, &b) in expected.iter().enumerate() {
        diff |= usize::from(b ^ given.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The scope a request holds and the named client whose key it sent (if any), put in its
/// extensions by the route layer that checked it, so a handler whose parameters ask for more (a
/// write inside a read) or that namespaces by client can tell without reading the headers again.
#[derive(Debug, Clone)]
pub struct Granted {
    pub scope: Scope,
    /// The `[keys.clients]` name of the key sent.
    pub client: Option<Arc<str>>,
}

impl Granted {
    /// Ok when the request holds `needed`; 403 otherwise.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(forbidden(needed, self.scope))
        }
    }
}

/// 403: the request holds `granted`, the route or parameter needs `needed`.
fn forbidden(needed: Scope, granted: Scope) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this needs a {} key; the key given has {} scope",
            needed.name(),
            granted.name()
        ),
    )
}

/// The configured keys, and whether the server listens beyond loopback.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    keys: KeysConfig,
    /// `[keys.clients]` as (name, key).
    clients: Vec<(Arc<str>, String)>,
    public: bool,
}

impl ApiKeys {
    /// `public`: the server listens on a non-loopback address, where no scope is open.
    pub fn new(keys: KeysConfig, public: bool) -> Self {
        let clients = keys
            .clients
            .iter()
            .map(|(name, key)| (Arc::from(name.as_str()), key.clone()))
            .collect();
        Self {
            keys,
            clients,
            public,
        }
    }

    fn key(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Read => self.keys.read.as_deref(),
            Scope::Write => self.keys.write.as_deref(),
            Scope::Admin => self.keys.admin.as_deref(),
        }
    }

    /// The highest scope `key` grants.
    pub(crate) fn scope_of(&self, key: &str) -> Option<Scope> {
        self.identify(key).map(|g| g.scope)
    }

    /// What `key` grants: its scope, and its client name for a `[keys.clients]` key. Every
    /// configured key is compared, whichever matches, so timing says nothing about which.
    fn identify(&self, key: &str) -> Option<Granted> {
        let mut found = None;
        for scope in [Scope::Admin, Scope::Write, Scope::Read] {
            let matches = self
                .key(scope)
                .is_some_and(|k| same_key(key.as_bytes(), k.as_bytes()));
            if matches && found.is_none() {
                found = Some(Granted {
                    scope,
                    client: None,
                });
            }
        }
        for (name, client_key) in &self.clients {
            if same_key(key.as_bytes(), client_key.as_bytes()) && found.is_none() {
                found = Some(Granted {
                    scope: Scope::Write,
                    client: Some(Arc::clone(name)),
                });
            }
        }
        found
    }

    /// True when a request without a key may do `scope`: on loopback, when no key is set for
    /// that scope; never on a public address.
    pub(crate) fn open(&self, scope: Scope) -> bool {
        !self.public && self.key(scope).is_none()
    }

    /// The scope the request holds when its headers allow `scope` (its key's scope, or without
    /// a key the highest open one); 401 for a missing, malformed or unknown key, 403 for a valid
    /// key of a lower scope.
    pub fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<Granted, ApiError> {
        let header = headers.get(axum::http::header::AUTHORIZATION);
        let Some(header) = header else {
            if self.open(scope) {
                let highest_open = [Scope::Admin, Scope::Write, Scope::Read]
                    .into_iter()
                    .find(|&s| self.open(s));
                return Ok(Granted {
                    scope: highest_open.unwrap_or(scope),
                    client: None,
                });
            }
            let needed = if self.key(scope).is_some() {
                format!("a {} key", scope.name())
            } else {
                // Public address, no key of this scope configured: a higher scope's key.
                format!(
                    "a key of {} scope or higher (this server listens beyond loopback, where no \
                     route but the health checks answers without one)",
                    scope.name()
                )
            };
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                format!("this route needs {needed}: send `Authorization: Bearer KEY`"),
            ));
        };
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "the Authorization header must be `Bearer KEY`",
                )
            })?;
        match self.identify(key) {
            Some(granted) if granted.scope >= scope => Ok(granted),
            Some(granted) => Err(forbidden(scope, granted.scope)),
            // An unknown key is refused even on open routes: a typo should not pass silently.
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is not valid",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(k) = key {
            h.insert(
                axum::http::header::AUTHORIZATION,
                format!("Bearer {k}").parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn on_a_public_address_nothing_is_open() {
        let config = KeysConfig {
            read: None,
            write: Some("w".into()),
            admin: Some("a".into()),
            ..KeysConfig::default()
        };
        let keys = ApiKeys::new(config, true);
        let err = keys.check(&headers(None), Scope::Read).unwrap_err();
        assert_eq!(err.status, 401);
        assert!(
            err.message.contains("read scope or higher"),
            "{}",
            err.message
        );
        assert!(keys.check(&headers(Some("w")), Scope::Read).is_ok());
        assert!(keys.check(&headers(Some("a")), Scope::Read).is_ok());
        assert!(!keys.open(Scope::Read));
    }

    #[test]
    fn scopes_nest_and_unset_scopes_are_open() {
        let keys = ApiKeys::new(
            KeysConfig {
                read: None,
                write: Some("w".into()),
                admin: Some("a".into()),
                ..KeysConfig::default()
            },
            false,
        );
        assert!(keys.check(&headers(None), Scope::Read).is_ok());
        assert_eq!(
            keys.check(&headers(None), Scope::Write).unwrap_err().status,
            401
        );
        assert!(keys.check(&headers(Some("w")), Scope::Write).is_ok());
        assert!(keys.check(&headers(Some("w")), Scope::Read).is_ok());
        assert_eq!(
            keys.check(&headers(Some("w")), Scope::Admin)
                .unwrap_err()
                .status,
            403
        );
        assert!(keys.check(&headers(Some("a")), Scope::Admin).is_ok());
        assert_eq!(
            keys.check(&headers(Some("x")), Scope::Read)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            keys.check(&headers(Some("")), Scope::Read)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn client_keys_write_under_their_name() {
        let keys = ApiKeys::new(
            KeysConfig {
                write: Some("w".into()),
                admin: Some("a".into()),
                clients: [("mobile".to_string(), "m".to_string())].into(),
                ..KeysConfig::default()
            },
            true,
        );
        let granted = keys.check(&headers(Some("m")), Scope::Write).unwrap();
        assert_eq!(granted.scope, Scope::Write);
        assert_eq!(granted.client.as_deref(), Some("mobile"));
        assert_eq!(
            keys.check(&headers(Some("w")), Scope::Write)
                .unwrap()
                .client,
            None
        );
        assert_eq!(
            keys.check(&headers(Some("m")), Scope::Admin)
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn key_comparison_needs_the_whole_key() {
        assert!(same_key(b"secret", b"secret"));
        assert!(!same_key(b"secre", b"secret"));
        assert!(!same_key(b"secrets", b"secret"));
        assert!(!same_key(b"", b"secret"));
    }
}
