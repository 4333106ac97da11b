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
        }
    }

    /// A short stable name for logs and reports, e.g. `epsilon-greedy(0.1)`.
    pub fn name(&self) -> String {
        match self.policy {
            ExplorationKind::Greedy => "greedy".to_owned(),
            ExplorationKind::EpsilonGreedy => format!("epsilon-greedy({})", self.epsilon),
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
        Ok(())
    }
}

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
