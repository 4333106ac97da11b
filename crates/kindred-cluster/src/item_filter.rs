//! The items a batch job may recommend: the *hard* item filters of a rank config (hidden items,
//! availability windows at a given time) evaluated once per catalog item. The soft constraints
//! (preferred categories, date windows) are preferences with relaxation that the serving
//! pipeline applies per request; batch lists do not apply them.

use std::path::Path;
use std::sync::Arc;

use kindred_core::IdMap;
use kindred_data::jsonl::load_features_jsonl;
use kindred_rank::filters::ItemFilters;
use kindred_rank::{RankConfig, RequestFilters};

use crate::error::{Error, Result};

/// `allowed[i]` for every item of `item_ids` (global order) under `rank_config`'s hard filters
/// at Unix time `now`, with item columns from `item_features` (JSON Lines, as `--item-features`).
pub fn allowed_items(
    rank_config: &Path,
    item_features: Option<&Path>,
    item_ids: &[String],
    now: i64,
) -> Result<Vec<bool>> {
    let text = std::fs::read_to_string(rank_config).map_err(|e| Error::io(rank_config, e))?;
    let config = RankConfig::from_toml_str(&text, rank_config)?;
    let features = item_features.map(load_features_jsonl).transpose()?;
    let ids = Arc::new(IdMap::from(item_ids.to_vec()));
    let filters = ItemFilters::new(
        &config.filters,
        config.category_column.as_deref(),
        ids,
        features.as_ref(),
    )?;
    let request = filters.resolve(&[], &RequestFilters::default(), now, None)?;
    Ok((0..item_ids.len() as u32)
        .map(|i| request.passes_hard(i))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_unavailable_items_are_not_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rank.toml");
        std::fs::write(
            &config,
            "[filters]\nhide_column = \"hidden\"\navailable_until_column = \"until\"\n",
        )
        .unwrap();
        let features = dir.path().join("items.jsonl");
        std::fs::write(
            &features,
            "{\"id\": \"a\", \"hidden\": 0, \"until\": 2000}\n\
             {\"id\": \"b\", \"hidden\": 1, \"until\": 2000}\n\
             {\"id\": \"c\", \"hidden\": 0, \"until\": 500}\n",
        )
        .unwrap();
        let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let allowed = allowed_items(&config, Some(&features), &ids, 1000).unwrap();
        assert_eq!(allowed, vec![true, false, false, true]);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[filters]\nnope = 1\n").unwrap();
        let err = allowed_items(&bad, None, &ids, 0).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
    }
}
