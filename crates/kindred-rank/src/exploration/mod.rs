//! Exploration: showing, now and then, an item the ranking would not have put in a slot, and
//! logging for every shown item the probability that the policy put it there, so the logs can
//! later estimate another ranker's click rate off-policy (`kindred_eval::offpolicy`).
//!
//! * [`policy`]: slot-filling policies over a ranked candidate list (greedy, epsilon-greedy,
//!   Thompson sampling) with their propensities, as a library.
//! * [`config`]: the `[exploration]` section of a rank config, which the [`crate::RankPipeline`]
//!   applies as its last stage, so evaluation and serving explore alike.
//! * [`bandit`]: the contextual bandits (LinUCB, linear and per-item Thompson sampling): their
//!   features, learned state and posterior.
//! * [`explorer`]: how that section fills a list's slots (slot range, cap on explored items,
//!   pinned positions) and the probability it gives any logged list (replay of a candidate).

pub mod bandit;
pub mod config;
pub mod explorer;
pub mod policy;

pub use bandit::{BanditPosterior, BanditState};
pub use config::{ExplorationConfig, ExplorationKind};
pub use explorer::{ExploredSlot, GreedyList, Preference, ReplayedSlot};
pub use policy::{Candidate, ExplorationLogRecord, ExplorationPolicy, ShownSlot};
