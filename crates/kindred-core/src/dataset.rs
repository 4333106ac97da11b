//! A loaded dataset: the interaction log plus whatever user and item features came with it.

use std::sync::Arc;

use crate::features::FeatureTable;
use crate::interactions::Interactions;

/// Interactions and side information, as produced by an importer or the synthetic generator.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Human-readable origin, e.g. `movielens-1m` or `synthetic(users=1000,...)`.
    pub name: String,
    pub interactions: Interactions,
    pub item_features: Option<Arc<FeatureTable>>,
    pub user_features: Option<Arc<FeatureTable>>,
}

impl Dataset {
    /// A dataset without features.
    pub fn new(name: impl Into<String>, interactions: Interactions) -> Self {
        Self {
            name: name.into(),
            interactions,
            item_features: None,
            user_features: None,
        }
    }
}
