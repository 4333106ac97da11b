//! One item of a served list, as lists, the cache and the online metrics see it.

use serde::Serialize;

/// One item of a served list, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedItem {
    pub item: String,
    /// The model's score (None for items that fallbacks placed).
    pub score: Option<f32>,
    /// `model:als`, `fold-in:als`, `popular`, `relaxed:date_window:popular`, ...
    pub source: String,
    /// In lists an `[exploration]` policy filled: `P(this item here | items above it)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// True when exploration put the item here instead of the ranking's choice.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub explored: bool,
}

impl crate::cache::CacheWeight for Vec<ServedItem> {
    fn weight_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.capacity() * std::mem::size_of::<ServedItem>()
            + self
                .iter()
                .map(|i| i.item.capacity() + i.source.capacity())
                .sum::<usize>()
    }
}
