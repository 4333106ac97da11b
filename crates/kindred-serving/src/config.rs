//! The server's configuration: a TOML file (every key optional) with environment overrides on
//! top, so one file can be shared between machines and secrets stay in the environment.
//!
//! Environment variables (each overrides the file):
//! `KINDRED_LISTEN`, `KINDRED_STORE`, `KINDRED_MODELS_DIR`, `KINDRED_MODE` (`realtime`|`batch`),
//! `KINDRED_CACHE_TTL_SECONDS` (0 disables the cache), `KINDRED_RETRAIN_INTERVAL_SECONDS`,
//! `KINDRED_API_KEY_READ`, `KINDRED_API_KEY_WRITE`, `KINDRED_API_KEY_ADMIN`,
//! `KINDRED_MONITORING_ENABLED`, `KINDRED_MONITORING_INTERVAL_SECONDS`,
//! `KINDRED_MONITORING_WEBHOOKS` (comma-separated URLs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kindred_core::ConfigLocation;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How per-user lists are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeMode {
    /// Scored at request time (fold-in of new feedback on the next request).
    Realtime,
    /// Precomputed for every known user whenever a model version goes live, served from memory;
    /// requests that a precomputed list cannot answer (filters, new feedback, unknown users,
    /// deep pages) are scored at request time.
    Batch,
}

/// Per-user list cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a cached list stays valid; 0 disables the cache.
    pub ttl_seconds: u64,
    /// Most lists kept; beyond it the oldest entries are dropped.
    pub capacity: usize,
    /// Most bytes the cached lists (with their users and keys) may hold; lists are long and ids
    /// come from requests, so the entry count alone does not bound memory.
    pub max_bytes: usize,
    /// Cache lists of users the catalog does not know (their list is the fallback chain's, cheap
    /// to recompute; caching them lets a client fill the cache with made-up ids).
    pub unknown_users: bool,
    /// Cache lists whose request excludes items (`exclude=`): such lists are mostly one-off.
    pub exclusions: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: 60,
            capacity: 100_000,
            max_bytes: 128 << 20,
            unknown_users: false,
            exclusions: false,
        }
    }
}

/// Bounds on what requests may make the server hold (`[limits]`): every structure keyed by
/// request data has one, so no client can grow the server's memory without bound. Each is on
/// `/metrics` beside what it bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most features one user or item may carry.
    pub max_features_per_entity: usize,
    /// Most distinct feature names across all users (and, separately, all items): each name
    /// becomes a column of the catalog. Writes introducing names beyond it are refused.
    pub max_feature_names: usize,
    /// Most categories one item may carry.
    pub max_categories_per_item: usize,
    /// Most users whose real-time feedback is held between snapshots; beyond it the user written
    /// least recently is dropped (their events stay stored; only the fold-in waits).
    pub overlay_users: usize,
    /// Requests handled at once; beyond it a request is answered 503 `overloaded` with
    /// `Retry-After` before any work (a write shed this way is not stored).
    pub max_in_flight: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_features_per_entity: 256,
            max_feature_names: 5_000,
            max_categories_per_item: 100,
            overlay_users: 100_000,
            max_in_flight: 512,
        }
    }
}

/// Browser-facing protections (`[security]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Origins (`https://ops.example.com`) allowed to send state-changing requests besides the
    /// server's own (the request's `Host`); for a dashboard behind a proxy that rewrites `Host`.
    pub allowed_origins: Vec<String>,
    /// Mark the dashboard's session cookie `Secure` (the server sits behind a TLS proxy). A
    /// login that arrives with `X-Forwarded-Proto: https` gets a `Secure` cookie either way.
    pub secure_cookies: bool,
    /// Failed dashboard logins allowed per client address per minute; beyond it 429.
    pub login_failures_per_minute: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            secure_cookies: false,
            login_failures_per_minute: 10,
        }
    }
}

/// API keys per scope (`Authorization: Bearer KEY`). Admin covers write and read, write covers
/// read. No read key: reads are open. No write or admin key: the server only starts on a
/// loopback address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    pub read: Option<String>,
    pub write: Option<String>,
    pub admin: Option<String>,
    /// Named write keys, one per integration (`[keys.clients] mobile = "KEY"`): each has the
    /// write scope and its own namespace of feedback event ids, so one client can never claim
    /// (and so silently drop) another's events.
    pub clients: BTreeMap<String, String>,
}

impl KeysConfig {
    /// Client names are short and plain (they prefix stored event ids); every key is distinct.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for name in self.clients.keys() {
            let plain = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plain {
                return Err(format!(
                    "keys.clients: `{name}` is not a client name (1 to 32 letters, digits, `-` \
                     or `_`)"
                ));
            }
        }
        let mut all: Vec<&str> = [&self.read, &self.write, &self.admin]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(self.clients.values().map(String::as_str))
            .collect();
        if all.iter().any(|k| k.trim().is_empty()) {
            return Err("keys: a key is empty".into());
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        if all.len() != count {
            return Err("keys: two scopes or clients share one key; give each its own".into());
        }
        Ok(())
    }
}

/// How models are trained by `kindred train --publish` defaults and by the scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Model spec or preset (`als`, `als:factors=64,iterations=15`, ...).
    pub model: String,
    /// Keep only ratings >= this as implicit positives (what ranking protocols do).
    pub positive: Option<f32>,
    pub seed: u64,
    /// Retrain every this many seconds (0: never; train with `kindred train --publish`).
    pub interval_seconds: u64,
    /// The scheduler skips a round when fewer events than this arrived since the live version.
    pub min_new_events: u64,
    /// Record offline ranking metrics per version (one extra fit on a holdout; see
    /// [`kindred_eval::holdout`]).
    pub evaluate: bool,
    /// At most this many users are held out for the offline metrics.
    pub eval_users: usize,
    /// The cleaning pipeline (a TOML file in `kindred train --pipeline`'s form, relative to
    /// this config's directory) every training run applies before the positive threshold.
    pub pipeline: Option<PathBuf>,
    /// `[training.gate]`: when a retrain the server makes live may become live.
    pub gate: crate::lifecycle::gate::GateConfig,
    /// A drift or feature-skew alert schedules a retrain (off by default), at most one per
    /// `drift_retrain_min_seconds`.
    pub retrain_on_drift: bool,
    pub drift_retrain_min_seconds: i64,
}

impl TrainingConfig {
    /// The offline-evaluation settings of this config.
    pub fn offline_eval(&self) -> crate::lifecycle::OfflineEval {
        crate::lifecycle::OfflineEval {
            enabled: self.evaluate,
            users: self.eval_users,
            ..crate::lifecycle::OfflineEval::default()
        }
    }

    /// Reads the configured cleaning pipeline; errors name the file, line and key.
    pub fn load_pipeline(&self) -> Result<Option<kindred_data::preprocess::PipelineConfig>> {
        let Some(path) = &self.pipeline else {
            return Ok(None);
        };
        kindred_data::preprocess::PipelineConfig::from_file(path)
            .map(Some)
            .map_err(|e| Error::Config {
                origin: "training.pipeline".into(),
                message: e.to_string(),
            })
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            model: "als".into(),
            positive: None,
            seed: 42,
            interval_seconds: 0,
            min_new_events: 1,
            evaluate: true,
            eval_users: crate::lifecycle::OfflineEval::default().users,
            pipeline: None,
            gate: crate::lifecycle::gate::GateConfig::default(),
            retrain_on_drift: false,
            drift_retrain_min_seconds: 3_600,
        }
    }
}

/// How many model versions the registry keeps (`[retention]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// After every training run (API or scheduler), keep this many newest versions plus the
    /// live one and those a draft or running experiment serves, and delete the rest with their
    /// artifact directories (as `kindred models prune --keep N`); 0 keeps every version.
    pub keep: usize,
}

/// Where the drift windows end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowEnd {
    /// The server's clock: the current window is the last `current_seconds` before now.
    Now,
    /// One second after the latest stored event: for simulators and back-filled logs that
    /// carry their own clocks.
    LatestEvent,
}

/// Online metrics, drift and data-quality checks, alerts (`[monitoring]`). Defaults suit
/// production traffic: a day compared with the week before it, checked every 5 minutes.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Runs the drift/quality loop and records online metrics (default true).
    pub enabled: bool,
    /// Seconds between drift/quality passes (default 300).
    pub interval_seconds: u64,
    /// Reference window length, seconds (default 7 days).
    pub reference_seconds: i64,
    /// Current window length, seconds (default 1 day).
    pub current_seconds: i64,
    /// `now` (default) or `latest_event`.
    pub window_end: WindowEnd,
    /// Most events read from the store per pass (default 2,000,000); beyond it the pass reads
    /// the newest ones of the windows (the reference window loses its start) and says so
    /// (`truncated`).
    pub max_events: usize,
    /// A distribution needs this many observations on both sides for a PSI (default 200).
    pub min_observations: usize,
    /// PSI above which a distribution alerts (default 0.25, the "major shift" reading).
    pub psi_max: f64,
    /// Per-distribution PSI limits overriding `psi_max` (`item_popularity`, `user_activity`,
    /// `event_type`, `value`); a distribution listed here is watched even if not by default.
    pub psi_limits: BTreeMap<String, f64>,
    /// Share of bot-like users' events above which a pass alerts (default 0.05).
    pub bot_event_share_max: f64,
    /// Duplicate-event rate above which a pass alerts (default 0.01).
    pub duplicate_rate_max: f64,
    /// Current/reference events-per-day ratio outside [min, max] alerts (default 0.5 and 2).
    pub volume_ratio_min: f64,
    pub volume_ratio_max: f64,
    /// A user needs more than this many events in a window to be flagged as a bot (default 50).
    pub bot_min_events: u64,
    /// Feedback on an item shown to the same user at most this long ago counts for the list
    /// that showed it (default 3,600).
    pub attribution_seconds: i64,
    /// Event types counted as clicks for CTR (default `["click"]`).
    pub click_types: Vec<String>,
    /// Event types counted as conversions (default `["purchase"]`).
    pub conversion_types: Vec<String>,
    /// Share of listed items placed by fallbacks above which a key alerts (default 0.5).
    pub fallback_share_max: f64,
    /// 99th-percentile list latency above which a key alerts, ms (default 500).
    pub latency_p99_ms_max: f64,
    /// CTR below which a key alerts once it has served `min_items` items (default: off).
    pub ctr_min: Option<f64>,
    /// Items a key must have served before its fallback share or CTR is judged (default 1,000).
    pub min_items: u64,
    /// URLs (http:// only) each new alert is POSTed to as JSON.
    pub webhooks: Vec<String>,
    /// Webhook request timeout, ms (default 2,000).
    pub webhook_timeout_ms: u64,
    /// The same alert (kind + subject) re-firing within this many seconds updates its entry
    /// instead of raising a new one (default 3,600).
    pub alert_cooldown_seconds: i64,
    /// Alerts kept in memory for `/v1/alerts` (default 500).
    pub alert_history: usize,
    /// Users whose recent lists are remembered for attribution (default 100,000).
    pub attribution_users: usize,
    /// Items those lists may hold in all (default 4,000,000, 32 MB of item hashes): long lists
    /// for many users would otherwise cost gigabytes; the least recently served go first.
    pub attribution_items: usize,
    /// Distinct items remembered per (version, variant) for coverage (default 1,000,000).
    pub coverage_items: usize,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 300,
            reference_seconds: 7 * 86_400,
            current_seconds: 86_400,
            window_end: WindowEnd::Now,
            max_events: 2_000_000,
            min_observations: 200,
            psi_max: 0.25,
            psi_limits: BTreeMap::new(),
            bot_event_share_max: 0.05,
            duplicate_rate_max: 0.01,
            volume_ratio_min: 0.5,
            volume_ratio_max: 2.0,
            bot_min_events: 50,
            attribution_seconds: 3_600,
            click_types: vec!["click".into()],
            conversion_types: vec!["purchase".into()],
            fallback_share_max: 0.5,
            latency_p99_ms_max: 500.0,
            ctr_min: None,
            min_items: 1_000,
            webhooks: Vec::new(),
            webhook_timeout_ms: 2_000,
            alert_cooldown_seconds: 3_600,
            alert_history: 500,
            attribution_users: 100_000,
            attribution_items: 4_000_000,
            coverage_items: 1_000_000,
        }
    }
}

/// Everything `kindred serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// SQLite file path or `postgres://` URL.
    pub store: String,
    /// Directory holding model artifacts (one sub-directory per version).
    pub models_dir: Option<PathBuf>,
    pub mode: ServeMode,
    /// List length precomputed per user in batch mode.
    pub batch_size: usize,
    /// Requests running longer are answered 503.
    pub request_timeout_ms: u64,
    /// A connection that has not sent a whole request head within this time (a new one, or an
    /// idle keep-alive one) is closed: half-open connections cannot pile up.
    pub header_read_timeout_ms: u64,
    /// Open connections at most; beyond it a new connection is answered 503 with `Retry-After`
    /// and closed before anything is read.
    pub max_connections: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Most records in one batch request (users, items, feedback, predict pairs).
    pub max_batch: usize,
    /// Largest `n` (and `offset + n`) of a list request.
    pub max_n: usize,
    /// How often the server checks the store for a version made live elsewhere.
    pub watch_interval_ms: u64,
    /// After item writes, the catalog (new items, hidden flags) is rebuilt after this delay
    /// (writes within it coalesce into one rebuild).
    pub catalog_refresh_ms: u64,
    /// When feedback arrived, the snapshot (popularity, trending, each user's history) is rebuilt
    /// from the store once it is this old; 0: only on new versions and item writes.
    pub refresh_interval_seconds: u64,
    /// Write each served list to the store's impressions (for attribution and off-policy
    /// evaluation).
    pub write_impressions: bool,
    /// Rank config file for lists (filters, re-ranking, fallbacks); default: plain model order
    /// with the fallback chain.
    pub rank: Option<PathBuf>,
    /// Further rank configs a request picks with `rank=NAME`.
    pub rank_named: BTreeMap<String, PathBuf>,
    /// Report ready (`/health/ready` 200) while no model version is live. Off by default: a
    /// server that can only answer fallback lists is not ready, so a balancer waits for a model.
    pub ready_without_model: bool,
    /// Feedback timestamps outside this range (Unix seconds) are refused with 400.
    pub timestamps: kindred_core::TimestampRange,
    pub cache: CacheConfig,
    pub limits: LimitsConfig,
    pub security: SecurityConfig,
    pub keys: KeysConfig,
    pub training: TrainingConfig,
    pub retention: RetentionConfig,
    pub monitoring: MonitoringConfig,
    /// Items' text encoded into a vector feature when they are written (none by default).
    pub encoder: crate::item_text::EncoderConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: "kindred.db".into(),
            models_dir: None,
            mode: ServeMode::Realtime,
            batch_size: 100,
            request_timeout_ms: 5_000,
            header_read_timeout_ms: 10_000,
            max_connections: 1_000,
            max_body_bytes: 16 << 20,
            max_batch: 10_000,
            max_n: 1_000,
            watch_interval_ms: 2_000,
            catalog_refresh_ms: 2_000,
            refresh_interval_seconds: 300,
            write_impressions: false,
            rank: None,
            rank_named: BTreeMap::new(),
            ready_without_model: false,
            timestamps: kindred_core::TimestampRange::default(),
            cache: CacheConfig::default(),
            limits: LimitsConfig::default(),
            security: SecurityConfig::default(),
            keys: KeysConfig::default(),
            training: TrainingConfig::default(),
            retention: RetentionConfig::default(),
            monitoring: MonitoringConfig::default(),
            encoder: crate::item_text::EncoderConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file; relative paths in it are resolved against the file's directory.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut config = Self::from_toml_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = config.rank.as_mut() {
            resolve(p);
        }
        config.rank_named.values_mut().for_each(resolve);
        if let Some(p) = config.models_dir.as_mut() {
            resolve(p);
        }
        if let Some(p) = config.training.pipeline.as_mut() {
            resolve(p);
        }
        if let Some(p) = config.encoder.dir.as_mut() {
            resolve(p);
        }
        Ok(config)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let at = ConfigLocation::at_offset(text, e.span().map(|s| s.start));
            Error::Config {
                origin: at.origin(origin),
                message: at.describe(e.message()),
            }
        })
    }

    /// Applies the `KINDRED_*` environment overrides through `lookup` (the process environment
    /// in production; a map in tests).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        let bad = |name: &str, value: &str, expected: &str| Error::Config {
            origin: format!("environment variable {name}"),
            message: format!("`{value}` is not {expected}"),
        };
        if let Some(v) = lookup("KINDRED_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|_| bad("KINDRED_LISTEN", &v, "an address such as 127.0.0.1:8080"))?;
        }
        if let Some(v) = lookup("KINDRED_STORE") {
            self.store = v;
        }
        if let Some(v) = lookup("KINDRED_MODELS_DIR") {
            self.models_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = lookup("KINDRED_MODE") {
            self.mode = match v.as_str() {
                "realtime" => ServeMode::Realtime,
                "batch" => ServeMode::Batch,
                _ => return Err(bad("KINDRED_MODE", &v, "`realtime` or `batch`")),
            };
        }
        if let Some(v) = lookup("KINDRED_CACHE_TTL_SECONDS") {
            self.cache.ttl_seconds = v
                .parse()
                .map_err(|_| bad("KINDRED_CACHE_TTL_SECONDS", &v, "a whole number"))?;
        }
        if let Some(v) = lookup("KINDRED_RETRAIN_INTERVAL_SECONDS") {
            self.training.interval_seconds = v
                .parse()
                .map_err(|_| bad("KINDRED_RETRAIN_INTERVAL_SECONDS", &v, "a whole number"))?;
        }
        if let Some(v) = lookup("KINDRED_READY_WITHOUT_MODEL") {
            self.ready_without_model = v
                .parse()
                .map_err(|_| bad("KINDRED_READY_WITHOUT_MODEL", &v, "`true` or `false`"))?;
        }
        if let Some(v) = lookup("KINDRED_MONITORING_ENABLED") {
            self.monitoring.enabled = v
                .parse()
                .map_err(|_| bad("KINDRED_MONITORING_ENABLED", &v, "`true` or `false`"))?;
        }
        if let Some(v) = lookup("KINDRED_MONITORING_INTERVAL_SECONDS") {
            self.monitoring.interval_seconds = v
                .parse()
                .map_err(|_| bad("KINDRED_MONITORING_INTERVAL_SECONDS", &v, "a whole number"))?;
        }
        if let Some(v) = lookup("KINDRED_MONITORING_WEBHOOKS") {
            self.monitoring.webhooks = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        for (name, slot) in [
            ("KINDRED_API_KEY_READ", &mut self.keys.read),
            ("KINDRED_API_KEY_WRITE", &mut self.keys.write),
            ("KINDRED_API_KEY_ADMIN", &mut self.keys.admin),
        ] {
            if let Some(v) = lookup(name) {
                *slot = (!v.is_empty()).then_some(v);
            }
        }
        Ok(())
    }

    /// Where model artifacts go: `models_dir`, else `<sqlite file>.models/`, else
    /// `kindred-models/` in the working directory (PostgreSQL stores).
    pub fn artifacts_dir(&self) -> PathBuf {
        if let Some(dir) = &self.models_dir {
            return dir.clone();
        }
        artifacts_dir_for(&self.store)
    }

    /// Checks what cannot be checked by parsing: limits in range, keys where they are required.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Error::Config {
            origin: "server config".into(),
            message,
        };
        if self.max_n == 0 || self.max_batch == 0 || self.batch_size == 0 {
            return Err(bad(
                "max_n, max_batch and batch_size must be at least 1".into()
            ));
        }
        let l = &self.limits;
        if [
            l.max_features_per_entity,
            l.max_feature_names,
            l.max_categories_per_item,
            l.overlay_users,
            l.max_in_flight,
        ]
        .contains(&0)
        {
            return Err(bad("every [limits] value must be at least 1".into()));
        }
        if self.security.login_failures_per_minute == 0 {
            return Err(bad(
                "security.login_failures_per_minute must be at least 1".into()
            ));
        }
        if let Some(bad_origin) =
            self.security.allowed_origins.iter().find(|o| {
                !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/')
            })
        {
            return Err(bad(format!(
                "security.allowed_origins: `{bad_origin}` is not an origin such as \
                 `https://ops.example.com` (scheme, host and optional port, no path)"
            )));
        }
        self.training.gate.validate().map_err(bad)?;
        if self.max_body_bytes < 1024 {
            return Err(bad("max_body_bytes must be at least 1024".into()));
        }
        let m = &self.monitoring;
        if m.enabled && (m.reference_seconds <= 0 || m.current_seconds <= 0) {
            return Err(bad(
                "monitoring.reference_seconds and current_seconds must be positive".into(),
            ));
        }
        if m.enabled && (m.interval_seconds == 0 || m.max_events == 0) {
            return Err(bad(
                "monitoring.interval_seconds and max_events must be at least 1".into(),
            ));
        }
        if let Some(url) = m.webhooks.iter().find(|u| !u.starts_with("http://")) {
            return Err(bad(format!(
                "monitoring.webhooks: `{url}` is not an http:// URL (https is not supported; \
                 put a local relay in front)"
            )));
        }
        self.timestamps.validate().map_err(bad)?;
        self.keys.validate().map_err(bad)?;
        self.encoder.validate().map_err(bad)?;
        if self.header_read_timeout_ms == 0 || self.max_connections == 0 {
            return Err(bad(
                "header_read_timeout_ms and max_connections must be at least 1".into(),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(bad("request_timeout_ms must be at least 1".into()));
        }
        if !self.listen.ip().is_loopback()
            && (self.keys.write.is_none() || self.keys.admin.is_none())
        {
            return Err(bad(format!(
                "refusing to listen on {} without write and admin API keys: set keys.write and \
                 keys.admin (or KINDRED_API_KEY_WRITE / KINDRED_API_KEY_ADMIN), or listen on a \
                 loopback address",
                self.listen
            )));
        }
        Ok(())
    }
}

/// The default artifact directory for a store location (see [`ServerConfig::artifacts_dir`]).
pub fn artifacts_dir_for(store: &str) -> PathBuf {
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        return PathBuf::from("kindred-models");
    }
    let path = store.strip_prefix("sqlite:").unwrap_or(store);
    PathBuf::from(format!("{path}.models"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_parse_and_env_overrides_win() {
        let mut config = ServerConfig::from_toml_str(
            "listen = \"127.0.0.1:9000\"\nmode = \"batch\"\n[cache]\nttl_seconds = 5\n\
             [keys]\nwrite = \"w\"\n",
            "test",
        )
        .unwrap();
        assert_eq!(config.mode, ServeMode::Batch);
        assert_eq!(config.cache.ttl_seconds, 5);
        let env: BTreeMap<&str, &str> = [
            ("KINDRED_LISTEN", "127.0.0.1:9001"),
            ("KINDRED_API_KEY_WRITE", "w2"),
            ("KINDRED_CACHE_TTL_SECONDS", "0"),
        ]
        .into();
        config
            .apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.keys.write.as_deref(), Some("w2"));
        assert_eq!(config.cache.ttl_seconds, 0);
    }

    #[test]
    fn unknown_keys_and_bad_env_values_are_named() {
        let err = ServerConfig::from_toml_str("lisen = \"x\"", "cfg.toml").unwrap_err();
        assert!(err.to_string().contains("cfg.toml") && err.to_string().contains("lisen"));
        let mut config = ServerConfig::default();
        let err = config
            .apply_env(|k| (k == "KINDRED_MODE").then(|| "fast".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("KINDRED_MODE"), "{err}");
    }

    #[test]
    fn monitoring_section_parses_and_webhooks_must_be_http() {
        let mut config = ServerConfig::from_toml_str(
            "[monitoring]\nwindow_end = \"latest_event\"\ncurrent_seconds = 60\n\
             click_types = [\"click\", \"view\"]\nwebhooks = [\"http://127.0.0.1:9/hook\"]\n",
            "test",
        )
        .unwrap();
        assert_eq!(config.monitoring.window_end, WindowEnd::LatestEvent);
        assert_eq!(config.monitoring.current_seconds, 60);
        assert_eq!(config.monitoring.click_types, ["click", "view"]);
        config.validate().unwrap();
        let env: BTreeMap<&str, &str> = [("KINDRED_MONITORING_WEBHOOKS", "https://x/hook")].into();
        config
            .apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("https://x/hook"), "{err}");
        let err = ServerConfig::from_toml_str("[monitoring]\nwindow_end = \"later\"", "m.toml")
            .unwrap_err();
        assert!(err.to_string().contains("window_end"), "{err}");
    }

    #[test]
    fn retention_is_off_unless_asked() {
        assert_eq!(ServerConfig::default().retention.keep, 0);
        let config = ServerConfig::from_toml_str("[retention]\nkeep = 5\n", "test").unwrap();
        assert_eq!(config.retention.keep, 5);
        let err = ServerConfig::from_toml_str("[retention]\nkept = 5\n", "r.toml").unwrap_err();
        assert!(err.to_string().contains("kept"), "{err}");
        let err = ServerConfig::from_toml_str("[retention]\nkeep = -1\n", "r.toml").unwrap_err();
        assert!(err.to_string().contains("r.toml"), "{err}");
    }

    #[test]
    fn public_address_needs_write_and_admin_keys() {
        let mut config = ServerConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..ServerConfig::default()
        };
        assert!(config.validate().is_err());
        config.keys.write = Some("w".into());
        config.keys.admin = Some("a".into());
        config.validate().unwrap();
        assert!(ServerConfig::default().validate().is_ok());
    }

    #[test]
    fn the_readme_config_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\nlisten =")
            .expect("README has the server config example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("closed block")];
        let config = ServerConfig::from_toml_str(block, "README.md").unwrap();
        assert_eq!(config.training.interval_seconds, 3600);
        assert!(
            config.training.evaluate,
            "offline metrics are on by default"
        );
        assert!(config.rank_named.contains_key("business"));
        assert_eq!(config.retention.keep, 10);
        config.validate().unwrap();
    }
}
