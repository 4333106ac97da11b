//! Item titles beside ids. `kindred train --data` keeps the catalog's `title` (or `name`) text
//! feature next to the saved model (`titles.json`), so that `kindred recommend` can show what an
//! id is without the data at hand; `--item-features` supplies them for any model.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use kindred_core::features::ColumnData;
use kindred_core::FeatureTable;

/// The file in a model directory that holds the titles.
const FILE: &str = "titles.json";

/// The text features that read as an item's title, in order of preference.
const TITLE_COLUMNS: [&str; 2] = ["title", "name"];

/// Item id -> title.
pub type Titles = HashMap<String, String>;

/// The titles in a feature table's `title` (else `name`) text column; `None` without one.
pub fn from_features(table: &FeatureTable) -> Option<Titles> {
    let values = TITLE_COLUMNS
        .iter()
        .find_map(|name| match &table.column(name)?.data {
            ColumnData::Text(values) => Some(values),
            _ => None,
        })?;
    let titles: Titles = table
        .ids()
        .externals()
        .iter()
        .zip(values)
        .filter(|(_, title)| !title.is_empty())
        .map(|(id, title)| (id.clone(), title.clone()))
        .collect();
    (!titles.is_empty()).then_some(titles)
}

/// Writes the titles into a model directory.
pub fn save(dir: &Path, titles: &Titles) -> Result<()> {
    let path = dir.join(FILE);
    let json = serde_json::to_string(titles)?;
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// The titles saved beside a model, if any.
pub fn load(dir: &Path) -> Result<Option<Titles>> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let titles = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON object of item id to title", path.display()))?;
    Ok(Some(titles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::FeatureValue;

    #[test]
    fn titles_come_from_title_else_name_and_round_trip() {
        let mut table = FeatureTable::new();
        table
            .set("i1", "name", FeatureValue::Text("Widget".into()))
            .unwrap();
        table.set("i2", "price", FeatureValue::Number(3.0)).unwrap();
        let titles = from_features(&table).unwrap();
        assert_eq!(titles.get("i1").map(String::as_str), Some("Widget"));
        assert!(!titles.contains_key("i2"), "an empty title is no title");
        table
            .set("i2", "title", FeatureValue::Text("Gadget".into()))
            .unwrap();
        assert_eq!(
            from_features(&table).unwrap().len(),
            1,
            "title wins over name"
        );

        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        save(dir.path(), &titles).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(titles));
        let mut prices = FeatureTable::new();
        prices
            .set("i1", "price", FeatureValue::Number(1.0))
            .unwrap();
        assert!(from_features(&prices).is_none());
    }
}
