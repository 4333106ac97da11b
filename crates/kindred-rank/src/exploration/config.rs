//! The `[exploration]` section of a rank config: which policy fills the list's slots, which
//! positions it may change, how many explored items a list may hold and how far below the list
//! it may reach. Absent (or `policy = "greedy"`), lists are the ranking's own order.
//!
//! ```toml
//! [exploration]
//! policy = "epsilon-greedy"
//! epsilon = 0.1      # per open slot: a uniform draw from the remaining pool with this chance
//! slots = [2, 10]    # 1-based first and last position it may change (default: all)
//! max_explored = 2   # at most this many items per list that the ranking would not have put there
//! pool = 50          # candidates below the list's end it may draw from
//! seed = 7           # with the request id, makes every list reproducible
//! log_share = 1.0    # share of exploring lists whose impressions the server writes
//! ```
//!
//! A contextual bandit (`linucb`, `linear-thompson`) orders the open candidates by what it has
//! learned of clicks instead of by the ranking (see `bandit/`), and takes these keys too:
//!
//! ```toml
//! [exploration]
//! policy = "linucb"          # or "linear-thompson", or "thompson" (per-item only)
//! epsilon = 0.02             # uniform mixing on top, so every candidate keeps some propensity
//! features = ["bias", "score", "unscored", "category_affinity", "position"]
//! alpha = 0.3                # width of the uncertainty bonus (LinUCB) or of the draw (Thompson)
//! ridge = 1.0                # prior precision of every weight
//! half_life_hours = 72       # feedback fades by half over this time (default: never)
//! new_items = 20             # the newest items the model does not score join the pool
//! samples = 64               # Thompson draws that estimate each propensity
//! reward = ["click"]         # event types that reward a shown item...
//! attribution_window = 1800  # ...within this many seconds of the list
//! ```
//!
//! `thompson` is the bandit with the `bias` feature only: each item's click rate is learned on
//! its own. A bandit learns online in the server (`kindred_serving::exploration::learner`).
//!
//! `log_share` trades the store's write load for off-policy sample size: which lists are written
//! depends on a hash of the request id only, so the written ones are a uniform sample of all and
//! the estimates stay unbiased (their intervals widen as the sample shrinks).

use serde::{Deserialize, Serialize};

/// The policy that fills the open slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExplorationKind {
    /// The ranking's order, every propensity 1.
    #[default]
    Greedy,
    /// Per open slot: the best remaining candidate with probability `1 - epsilon`, else a
    /// uniform draw over the remaining pool.
    EpsilonGreedy,
    /// Thompson sampling of each item's own click rate (the bandit with `bias` only).
    Thompson,
    /// LinUCB: the highest upper confidence bound of the hybrid linear model.
    Linucb,
    /// Linear Thompson sampling: the best item under one draw of the hybrid linear model.
    LinearThompson,
}

impl ExplorationKind {
    /// Whether the policy is a contextual bandit that learns from feedback.
    pub fn is_bandit(self) -> bool {
        matches!(self, Self::Thompson | Self::Linucb | Self::LinearThompson)
    }

    /// Whether the policy draws its preference (Thompson sampling) rather than computing it.
    pub fn samples(self) -> bool {
        matches!(self, Self::Thompson | Self::LinearThompson)
    }
}

/// `[exploration]`: see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplorationConfig {
    #[serde(default)]
    pub policy: ExplorationKind,
    /// Chance that an open slot is drawn from the pool (`epsilon-greedy`), in [0, 1].
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// First and last 1-based position the policy may change; None: every position.
    #[serde(default)]
    pub slots: Option<[usize; 2]>,
    /// Most items per list that are not the ranking's choice for their slot; at least 1.
    #[serde(default = "default_max_explored")]
    pub max_explored: usize,
    /// Candidates below the list's end the policy may draw from; at least 1.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// Mixed with the request id into each list's seed, so a logged list can be replayed.
    #[serde(default)]
    pub seed: u64,
    /// Share of exploring lists the server writes to the impressions log, in (0, 1].
    #[serde(default = "default_log_share")]
    pub log_share: f64,
    /// Bandit features (see `bandit/features.rs`); None: the default set.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Width of the bandit's uncertainty: LinUCB's bonus multiplier, Thompson's draw scale.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Prior precision of every bandit weight.
    #[serde(default = "default_ridge")]
    pub ridge: f64,
    /// Feedback fades by half over this many hours; None: never.
    #[serde(default)]
    pub half_life_hours: Option<f64>,
    /// The newest catalog items the model does not score that join a bandit's pool.
    #[serde(default)]
    pub new_items: usize,
    /// Thompson draws per list that estimate the propensities.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Event types that reward a shown item.
    #[serde(default = "default_reward")]
    pub reward: Vec<String>,
    /// Seconds after a list within which a reward event counts.
    #[serde(default = "default_attribution_window")]
    pub attribution_window: u64,
}

/// Bandit features when a config names none.
pub const DEFAULT_FEATURES: [&str; 5] = ["bias", "score", "unscored", "popularity", "position"];

fn default_alpha() -> f64 {
    0.3
}

fn default_ridge() -> f64 {
    1.0
}

fn default_samples() -> usize {
    64
}

fn default_reward() -> Vec<String> {
    vec!["click".to_owned()]
}

fn default_attribution_window() -> u64 {
    1_800
}

fn default_log_share() -> f64 {
    1.0
}

fn default_epsilon() -> f64 {
    0.1
}

fn default_max_explored() -> usize {
    2
}

fn default_pool() -> usize {
    50
}

impl Default for ExplorationConfig {
    fn default() -> Self {
        Self {
            policy: ExplorationKind::Greedy,
            epsilon: default_epsilon(),
            slots: None,
            max_explored: default_max_explored(),
            pool: default_pool(),
            seed: 0,
            log_share: default_log_share(),
            features: None,
            alpha: default_alpha(),
            ridge: default_ridge(),
            half_life_hours: None,
            new_items: 0,
            samples: default_samples(),
            reward: default_reward(),
            attribution_window: default_attribution_window(),
        }
    }
}

impl ExplorationConfig {
    /// True when lists can differ from the ranking's order (a policy other than greedy with a
    /// chance of exploring).
    pub fn explores(&self) -> bool {
        match self.policy {
            ExplorationKind::Greedy => false,
            ExplorationKind::EpsilonGreedy => self.epsilon > 0.0,
            _ => true,
        }
    }

    /// The bandit's feature names (`thompson`: `bias` only).
    pub fn feature_names(&self) -> Vec<String> {
        match (self.policy, &self.features) {
            (ExplorationKind::Thompson, _) => vec!["bias".to_owned()],
            (_, Some(names)) => names.clone(),
            (_, None) => DEFAULT_FEATURES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The half-life in seconds, if any.
    pub fn half_life_seconds(&self) -> Option<f64> {
        self.half_life_hours.map(|h| h * 3_600.0)
    }

    /// A short stable name for logs and reports, e.g. `epsilon-greedy(0.1)`.
    pub fn name(&self) -> String {
        match self.policy {
            ExplorationKind::Greedy => "greedy".to_owned(),
            ExplorationKind::EpsilonGreedy => format!("epsilon-greedy({})", self.epsilon),
            ExplorationKind::Thompson => format!("thompson({})", self.alpha),
            ExplorationKind::Linucb => format!("linucb({})", self.alpha),
            ExplorationKind::LinearThompson => format!("linear-thompson({})", self.alpha),
        }
    }

    /// Whether the server writes the impressions of the exploring list `request_id` (a seeded
    /// share `log_share` of all, chosen by the request id alone).
    pub fn logs(&self, request_id: &str) -> bool {
        if self.log_share >= 1.0 {
            return true;
        }
        let draw = kindred_core::rng::mix64(
            self.seed ^ 0x6C6F_6773 ^ kindred_core::rng::stable_hash(request_id.as_bytes()),
        );
        let uniform = (draw >> 11) as f64 / (1u64 << 53) as f64;
        uniform < self.log_share
    }

    /// Whether the 0-based position `slot` is one the policy may change.
    pub fn may_change(&self, slot: usize) -> bool {
        match self.slots {
            None => true,
            Some([first, last]) => (first..=last).contains(&(slot + 1)),
        }
    }

    /// Range checks; on failure the dotted key path and what is wrong.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.epsilon) {
            return Err((
                "exploration.epsilon",
                format!("must be in [0, 1], got {}", self.epsilon),
            ));
        }
        if let Some([first, last]) = self.slots {
            if first == 0 {
                return Err((
                    "exploration.slots",
                    "positions are 1-based: the first must be at least 1".to_owned(),
                ));
            }
            if last < first {
                return Err((
                    "exploration.slots",
                    format!("the range [{first}, {last}] is empty: the last is before the first"),
                ));
            }
        }
        if self.max_explored == 0 {
            return Err((
                "exploration.max_explored",
                "must be at least 1 (use policy = \"greedy\" for no exploration)".to_owned(),
            ));
        }
        if self.pool == 0 {
            return Err(("exploration.pool", "must be at least 1".to_owned()));
        }
        if !(self.log_share > 0.0 && self.log_share <= 1.0) {
            return Err((
                "exploration.log_share",
                format!("must be in (0, 1], got {}", self.log_share),
            ));
        }
        if self.policy.is_bandit() {
            self.validate_bandit()?;
        }
        Ok(())
    }

    fn validate_bandit(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.policy == ExplorationKind::Thompson && self.features.is_some() {
            return Err((
                "exploration.features",
                "`thompson` learns each item on its own and takes no features (use \
                 `linear-thompson`)"
                    .to_owned(),
            ));
        }
        let names = self.feature_names();
        if names.is_empty() {
            return Err((
                "exploration.features",
                "name at least one feature".to_owned(),
            ));
        }
        if names.len() > MAX_FEATURES {
            return Err((
                "exploration.features",
                format!("at most {MAX_FEATURES} features, got {}", names.len()),
            ));
        }
        super::bandit::FeatureSpec::parse(&names).map_err(|e| ("exploration.features", e))?;
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err((
                "exploration.alpha",
                format!("must be a non-negative number, got {}", self.alpha),
            ));
        }
        if !(self.ridge.is_finite() && self.ridge > 0.0) {
            return Err((
                "exploration.ridge",
                format!("must be positive, got {}", self.ridge),
            ));
        }
        if let Some(h) = self.half_life_hours {
            if !(h.is_finite() && h > 0.0) {
                return Err((
                    "exploration.half_life_hours",
                    format!("must be positive, got {h}"),
                ));
            }
        }
        if self.policy.samples() && !(1..=MAX_SAMPLES).contains(&self.samples) {
            return Err((
                "exploration.samples",
                format!("must be in [1, {MAX_SAMPLES}], got {}", self.samples),
            ));
        }
        if self.new_items > MAX_NEW_ITEMS {
            return Err((
                "exploration.new_items",
                format!("at most {MAX_NEW_ITEMS}, got {}", self.new_items),
            ));
        }
        if self.reward.is_empty() || self.reward.iter().any(|r| r.trim().is_empty()) {
            return Err((
                "exploration.reward",
                "name at least one event type, none empty".to_owned(),
            ));
        }
        if self.attribution_window == 0 {
            return Err((
                "exploration.attribution_window",
                "must be at least 1 second".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Most bandit features (the per-request cost grows with their square).
pub const MAX_FEATURES: usize = 32;
/// Most Thompson draws per list.
pub const MAX_SAMPLES: usize = 1_000;
/// Most unscored items a bandit's pool takes.
pub const MAX_NEW_ITEMS: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_share_writes_about_that_share_of_lists_chosen_by_request_id() {
        let config = ExplorationConfig {
            log_share: 0.25,
            ..ExplorationConfig::default()
        };
        let written = (0..20_000)
            .filter(|n| config.logs(&format!("req-{n:x}")))
            .count();
        assert!((4_600..5_400).contains(&written), "{written}");
        assert_eq!(config.logs("req-7"), config.logs("req-7"));
        assert!((0..100).all(|n| ExplorationConfig::default().logs(&n.to_string())));
    }
}
