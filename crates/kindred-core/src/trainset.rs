//! What a model is fitted on: an interaction log with its CSR/CSC views and optional features.

use std::sync::Arc;

use crate::features::FeatureTable;
use crate::interactions::Interactions;
use crate::sparse::CsMatrix;

/// Training data for one fit.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub data: Interactions,
    /// Rows = users, columns = items.
    pub by_user: CsMatrix,
    /// Rows = items, columns = users.
    pub by_item: CsMatrix,
    pub item_features: Option<Arc<FeatureTable>>,
    pub user_features: Option<Arc<FeatureTable>>,
}

impl TrainSet {
    /// Builds both compressed views of `data`, side by side on the thread pool.
    pub fn new(data: Interactions) -> Self {
        let (by_user, by_item) = rayon::join(|| data.by_user(), || data.by_item());
        Self {
            data,
            by_user,
            by_item,
            item_features: None,
            user_features: None,
        }
    }

    /// Attaches feature tables.
    pub fn with_features(
        mut self,
        items: Option<Arc<FeatureTable>>,
        users: Option<Arc<FeatureTable>>,
    ) -> Self {
        self.item_features = items;
        self.user_features = users;
        self
    }

    pub fn n_users(&self) -> usize {
        self.data.n_users()
    }

    pub fn n_items(&self) -> usize {
        self.data.n_items()
    }
}
