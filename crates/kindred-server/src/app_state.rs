//! The HTTP server's shared state: the serving services plus what only HTTP needs, the API keys
//! and the request metrics.

use std::sync::Arc;

use kindred_serving::{ServerConfig, Serving};
use kindred_store::Store;

use crate::auth::ApiKeys;
use crate::error::Result;
use crate::metrics::Metrics;

/// Shared by every request handler.
pub struct AppState {
    pub serving: Serving,
    pub keys: ApiKeys,
    pub metrics: Metrics,
    /// Open and refused connections (the accept loop's counters).
    pub connections: Arc<crate::connections::ConnectionCounters>,
    /// Requests in flight and shed (see [`crate::shedding`]).
    pub in_flight: crate::shedding::InFlight,
    /// Failed dashboard logins per client address (see [`crate::login_limit`]).
    pub login_limit: crate::login_limit::LoginLimit,
}

impl AppState {
    /// Opens the serving state (building the first snapshot from the store and its live version)
    /// with the configured keys.
    pub async fn new(config: ServerConfig, store: Store) -> Result<Arc<Self>> {
        let keys = ApiKeys::new(config.keys.clone(), !config.listen.ip().is_loopback());
        let in_flight = crate::shedding::InFlight::new(config.limits.max_in_flight);
        let login_limit =
            crate::login_limit::LoginLimit::new(config.security.login_failures_per_minute);
        Ok(Arc::new(Self {
            serving: Serving::open(config, store).await?,
            keys,
            metrics: Metrics::default(),
            connections: Arc::default(),
            in_flight,
            login_limit,
        }))
    }
}
