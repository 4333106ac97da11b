//! Which items a list may contain: the `[filters]` of a rank config plus the per-request extras a
//! server passes (`category=a&category=b&exclude=i1,i2`).
//!
//! Constraints come in two strengths:
//!
//! - **Hard** (never violated, not even to fill a list): items the user has already seen (when
//!   `exclude_seen`, the default), hidden items (`hide_column` non-zero), items outside their
//!   availability window (`available_from_column` / `available_until_column` against the request
//!   time), items the request excludes explicitly, and items outside the request's candidate set.
//! - **Soft** (preferences): the date window (`date_after`, `date_before`, `max_age_days`), the
//!   category includes (`include_categories` and the request's `category=` values) and the
//!   category excludes (`exclude_categories`).
//!
//! "Rules that remove everything never yield an empty list": when the items passing every
//! constraint cannot fill the list, the soft ones are relaxed one at a time in this order, and
//! each relaxed item is marked with the constraint it breaks (its source reads
//! `relaxed:<constraint>:<origin>`):
//!
//! 1. `date_window`: freshness is the weakest preference;
//! 2. `include_categories`: the list may leave the requested categories;
//! 3. `exclude_categories`: excluded categories come back only as the very last resort.
//!
//! An item's *soft level* is the rank of the last constraint it breaks (0 when it breaks none);
//! at relaxation level L every item with soft level <= L is allowed. Per-item data (flags,
//! windows, dates, category sets, the level implied by the configured categories) is
//! precomputed once per catalog; a request costs a sort of its seen/excluded items and O(1)
//! checks per item looked at.

use std::fmt;
use std::sync::Arc;

use kindred_core::features::ColumnData;
use kindred_core::{Error, FeatureTable, IdMap, Result};

use crate::config::FiltersConfig;
use crate::item_set::ItemSet;

/// A soft constraint, in the order they are relaxed (first relaxed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Relaxation {
    DateWindow = 1,
    IncludeCategories = 2,
    ExcludeCategories = 3,
}

impl Relaxation {
    /// The constraint of soft level `level` (None for 0).
    pub fn of_level(level: u8) -> Option<Self> {
        match level {
            0 => None,
            1 => Some(Relaxation::DateWindow),
            2 => Some(Relaxation::IncludeCategories),
            _ => Some(Relaxation::ExcludeCategories),
        }
    }

    /// Stable name used in sources and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Relaxation::DateWindow => "date_window",
            Relaxation::IncludeCategories => "include_categories",
            Relaxation::ExcludeCategories => "exclude_categories",
        }
    }
}

impl fmt::Display for Relaxation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The deepest relaxation level.
pub const MAX_LEVEL: u8 = Relaxation::ExcludeCategories as u8;

/// Per-request filters as a server receives them (external ids and category names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilters {
    /// Soft: prefer items in at least one of these categories (of the filter category column).
    pub categories: Vec<String>,
    /// Hard: never recommend these items (external ids; unknown ids are ignored).
    pub exclude: Vec<String>,
}

impl RequestFilters {
    /// Parses a query string such as `category=a&category=b&exclude=i1,i2`. Both keys may repeat
    /// and take comma-separated lists; other keys are an error naming them.
    pub fn parse_query(query: &str) -> Result<Self> {
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let values = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            match key.trim() {
                "category" => out.categories.extend(values),
                "exclude" => out.exclude.extend(values),
                other => {
                    return Err(Error::spec(
                        "request filter",
                        pair,
                        format!("unknown key `{other}`; expected `category` or `exclude`"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// True when the request adds no constraint.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.exclude.is_empty()
    }
}

/// The filters of one catalog, precomputed per item.
#[derive(Debug, Clone, Default)]
pub struct ItemFilters {
    n_items: usize,
    exclude_seen: bool,
    /// Per item, hidden (empty: no hide column).
    hidden: Vec<bool>,
    /// Per item, Unix seconds (NaN: unbounded); empty when not configured.
    available_from: Vec<f32>,
    available_until: Vec<f32>,
    /// Per item, its date in Unix seconds (NaN: unknown); empty without a date window.
    date: Vec<f64>,
    date_after: Option<f64>,
    date_before: Option<f64>,
    max_age_seconds: Option<f64>,
    /// Name, vocabulary and per-item sorted category sets of the filter category column.
    category_column: Option<String>,
    category_vocab: IdMap,
    category_sets: Vec<Vec<u32>>,
    /// Per item, the soft level implied by the configured include/exclude categories (empty:
    /// none configured).
    category_level: Vec<u8>,
    item_ids: Arc<IdMap>,
}

/// A request's filters resolved against the catalog (indices, sorted), valid for one `rank`.
#[derive(Debug, Clone)]
pub struct ResolvedRequest<'a> {
    filters: &'a ItemFilters,
    /// The seen items (when the filters exclude them) and the request's exclusions.
    blocked: ItemSet,
    categories: Vec<u32>,
    now: i64,
    candidates: Option<&'a [bool]>,
}

/// The named numeric item column, or an error naming the key and the columns there are.
fn numeric_column<'f>(
    features: Option<&'f FeatureTable>,
    key: &str,
    name: &str,
) -> Result<&'f [f32]> {
    match find_column(features, key, name)? {
        ColumnData::Numeric(values) => Ok(values),
        _ => Err(Error::InvalidInput(format!(
            "rank config: {key} `{name}` is not a numeric item feature"
        ))),
    }
}

/// The named item column, or an error naming the key and the item columns available.
pub(crate) fn find_column<'f>(
    features: Option<&'f FeatureTable>,
    key: &str,
    name: &str,
) -> Result<&'f ColumnData> {
    let column = features.and_then(|f| f.column(name));
    column.map(|c| &c.data).ok_or_else(|| {
        let names: Vec<&str> = features
            .map(|f| f.columns().iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        Error::InvalidInput(format!(
            "rank config: {key} `{name}` is not an item feature (item features: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// Values of a numeric column per index of `ids` (NaN where the table has no row).
pub(crate) fn aligned_numeric(
    features: Option<&FeatureTable>,
    key: &str,
    name: &str,
    ids: &IdMap,
) -> Result<Vec<f32>> {
    let values = numeric_column(features, key, name)?;
    let rows = features.map(|f| f.align(ids)).unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|r| r.map_or(f32::NAN, |r| values[r as usize]))
        .collect())
}

impl ItemFilters {
    /// Precomputes the filters of `config` for the items of `item_ids`, reading the columns it
    /// names from `features`. `default_category_column` is the rank config's `category_column`.
    pub fn new(
        config: &FiltersConfig,
        default_category_column: Option<&str>,
        item_ids: Arc<IdMap>,
        features: Option<&FeatureTable>,
    ) -> Result<Self> {
        let ids = item_ids.as_ref();
        let n_items = ids.len();
        let mut out = Self {
            n_items,
            exclude_seen: config.exclude_seen,
            ..Self::default()
        };
        if let Some(name) = &config.hide_column {
            let flags = aligned_numeric(features, "filters.hide_column", name, ids)?;
            out.hidden = flags.iter().map(|&v| v != 0.0 && !v.is_nan()).collect();
        }
        if let Some(name) = &config.available_from_column {
            out.available_from =
                aligned_numeric(features, "filters.available_from_column", name, ids)?;
        }
        if let Some(name) = &config.available_until_column {
            out.available_until =
                aligned_numeric(features, "filters.available_until_column", name, ids)?;
        }
        if let (Some(name), true) = (&config.date_column, config.has_date_window()) {
            let unit = config.date_unit;
            out.date = aligned_numeric(features, "filters.date_column", name, ids)?
                .into_iter()
                .map(|v| unit.to_unix_seconds(v as f64))
                .collect();
            out.date_after = config.date_after.map(|v| unit.to_unix_seconds(v));
            out.date_before = config.date_before.map(|v| unit.to_unix_seconds(v));
            out.max_age_seconds = config.max_age_days.map(|d| d * 86_400.0);
        }
        let category_column = config
            .category_column
            .as_deref()
            .or(default_category_column);
        if let Some(name) = category_column {
            let key = if config.category_column.is_some() {
                "filters.category_column"
            } else {
                "category_column"
            };
            let ColumnData::Categorical { vocab, values } = find_column(features, key, name)?
            else {
                return Err(Error::InvalidInput(format!(
                    "rank config: {key} `{name}` is not a categorical item feature"
                )));
            };
            let rows = features.map(|f| f.align(ids)).unwrap_or_default();
            out.category_sets = rows
                .into_iter()
                .map(|r| r.map_or_else(Vec::new, |r| values[r as usize].clone()))
                .collect();
            out.category_vocab = vocab.clone();
            out.category_column = Some(name.to_owned());
        }
        let lookup = |key: &str, names: &[String]| -> Result<Vec<u32>> {
            let mut idx = names
                .iter()
                .map(|c| out.category_index(key, c))
                .collect::<Result<Vec<u32>>>()?;
            idx.sort_unstable();
            Ok(idx)
        };
        let include = lookup("filters.include_categories", &config.include_categories)?;
        let exclude = lookup("filters.exclude_categories", &config.exclude_categories)?;
        if !include.is_empty() || !exclude.is_empty() {
            out.category_level = (0..n_items)
                .map(|i| {
                    let set = &out.category_sets[i];
                    if set.iter().any(|c| exclude.binary_search(c).is_ok()) {
                        Relaxation::ExcludeCategories as u8
                    } else if !include.is_empty()
                        && !set.iter().any(|c| include.binary_search(c).is_ok())
                    {
                        Relaxation::IncludeCategories as u8
                    } else {
                        0
                    }
                })
                .collect();
        }
        out.item_ids = item_ids;
        Ok(out)
    }

    /// Index of category `name`, or an error naming `key` and the categories available.
    fn category_index(&self, key: &str, name: &str) -> Result<u32> {
        let Some(column) = &self.category_column else {
            return Err(Error::InvalidInput(format!(
                "rank config: {key} needs a category column (set filters.category_column or \
                 category_column)"
            )));
        };
        self.category_vocab.get(name).ok_or_else(|| {
            let mut known: Vec<&str> = self
                .category_vocab
                .externals()
                .iter()
                .map(String::as_str)
                .collect();
            known.sort_unstable();
            Error::InvalidInput(format!(
                "{key}: `{name}` is not a category of item column `{column}` (categories: {})",
                known.join(", ")
            ))
        })
    }

    /// Resolves a request: `seen` (any order), `filters` by external id / name, the request
    /// time `now` (Unix seconds) and an optional candidate mask (hard: only these items).
    pub fn resolve<'a>(
        &'a self,
        seen: &[u32],
        filters: &RequestFilters,
        now: i64,
        candidates: Option<&'a [bool]>,
    ) -> Result<ResolvedRequest<'a>> {
        let mut blocked = ItemSet::with_items(self.n_items);
        if self.exclude_seen {
            seen.iter().for_each(|&i| {
                blocked.insert(i);
            });
        }
        for id in &filters.exclude {
            if let Some(i) = self.item_ids.get(id) {
                blocked.insert(i);
            }
        }
        let mut categories = filters
            .categories
            .iter()
            .map(|c| self.category_index("request category", c))
            .collect::<Result<Vec<u32>>>()?;
        categories.sort_unstable();
        Ok(ResolvedRequest {
            filters: self,
            blocked,
            categories,
            now,
            candidates,
        })
    }

    /// Number of items of the catalog.
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// True when some soft constraint is configured (per-request categories aside).
    pub fn has_soft(&self) -> bool {
        !self.category_level.is_empty() || !self.date.is_empty()
    }
}

impl ResolvedRequest<'_> {
    /// True when `item` passes every hard constraint.
    pub fn passes_hard(&self, item: u32) -> bool {
        let f = self.filters;
        let i = item as usize;
        if i >= f.n_items {
            return false;
        }
        if f.hidden.get(i).copied().unwrap_or(false) {
            return false;
        }
        let now = self.now as f64;
        // f32 Unix seconds are exact to about two minutes, which is finer than any
        // availability window a catalog sets.
        if f.available_from.get(i).is_some_and(|&t| now < t as f64) {
            return false;
        }
        if f.available_until.get(i).is_some_and(|&t| now > t as f64) {
            return false;
        }
        if self
            .candidates
            .is_some_and(|c| !c.get(i).copied().unwrap_or(false))
        {
            return false;
        }
        !self.blocked.contains(item)
    }

    /// The soft level of `item`: 0 when it meets every soft constraint, otherwise the rank of the
    /// last constraint (in relaxation order) it breaks.
    pub fn soft_level(&self, item: u32) -> u8 {
        let f = self.filters;
        let i = item as usize;
        let mut level = f.category_level.get(i).copied().unwrap_or(0);
        if level >= Relaxation::IncludeCategories as u8 {
            return level;
        }
        if !self.categories.is_empty() {
            let set = f.category_sets.get(i).map_or(&[][..], Vec::as_slice);
            if !set.iter().any(|c| self.categories.binary_search(c).is_ok()) {
                return Relaxation::IncludeCategories as u8;
            }
        }
        if let Some(&date) = f.date.get(i) {
            let outside = date.is_nan()
                || f.date_after.is_some_and(|a| date < a)
                || f.date_before.is_some_and(|b| date > b)
                || f.max_age_seconds
                    .is_some_and(|age| date < self.now as f64 - age);
            if outside {
                level = level.max(Relaxation::DateWindow as u8);
            }
        }
        level
    }

    /// The deepest relaxation level this request can need.
    pub fn max_level(&self) -> u8 {
        if !self.filters.category_level.is_empty() {
            MAX_LEVEL
        } else if !self.categories.is_empty() {
            Relaxation::IncludeCategories as u8
        } else if !self.filters.date.is_empty() {
            Relaxation::DateWindow as u8
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date_unit::DateUnit;
    use kindred_core::FeatureValue;

    /// Items a..e: genres, year, hidden flag, availability.
    fn catalog() -> (Arc<IdMap>, FeatureTable) {
        let mut ids = IdMap::new();
        let mut t = FeatureTable::new();
        // (id, genres, year, hidden, available from, available until)
        type Row<'a> = (&'a str, &'a [&'a str], f32, f32, f32, f32);
        let rows: [Row; 5] = [
            ("a", &["Drama"], 1990.0, 0.0, f32::NAN, f32::NAN),
            ("b", &["Comedy"], 2000.0, 1.0, f32::NAN, f32::NAN),
            ("c", &["Horror", "Drama"], 2001.0, 0.0, 100.0, f32::NAN),
            ("d", &["Comedy"], 1960.0, 0.0, f32::NAN, 50.0),
            ("e", &[], f32::NAN, 0.0, f32::NAN, f32::NAN),
        ];
        for (id, genres, year, hidden, from, until) in rows {
            ids.intern(id);
            let genres = genres.iter().map(|g| g.to_string()).collect();
            t.set(id, "genres", FeatureValue::Categories(genres))
                .unwrap();
            t.set(id, "year", FeatureValue::Number(year)).unwrap();
            t.set(id, "hidden", FeatureValue::Number(hidden)).unwrap();
            t.set(id, "from", FeatureValue::Number(from)).unwrap();
            t.set(id, "until", FeatureValue::Number(until)).unwrap();
        }
        (Arc::new(ids), t)
    }

    fn config() -> FiltersConfig {
        FiltersConfig {
            category_column: Some("genres".into()),
            include_categories: vec!["Drama".into(), "Comedy".into()],
            exclude_categories: vec!["Horror".into()],
            hide_column: Some("hidden".into()),
            available_from_column: Some("from".into()),
            available_until_column: Some("until".into()),
            date_column: Some("year".into()),
            date_unit: DateUnit::Year,
            date_after: Some(1980.0),
            ..FiltersConfig::default()
        }
    }

    #[test]
    fn hard_and_soft_constraints_by_hand() {
        let (ids, t) = catalog();
        let f = ItemFilters::new(&config(), None, ids, Some(&t)).unwrap();
        let req = RequestFilters {
            categories: vec![],
            exclude: vec!["a".into(), "zzz".into()],
        };
        let r = f.resolve(&[4], &req, 75, None).unwrap();
        // a excluded by the request, b hidden, c not yet available (from 100 > now 75), d no
        // longer available (until 50 < now 75), e seen.
        let hard: Vec<bool> = (0..5).map(|i| r.passes_hard(i)).collect();
        assert_eq!(hard, vec![false, false, false, false, false]);
        let r = f
            .resolve(&[], &RequestFilters::default(), 40, None)
            .unwrap();
        let hard: Vec<bool> = (0..5).map(|i| r.passes_hard(i)).collect();
        assert_eq!(hard, vec![true, false, false, true, true]);
        // a: Drama 1990, fine. b: Comedy 2000 fine. c: Horror -> 3. d: Comedy 1960 -> date 1.
        // e: no genres (misses the includes) -> 2.
        let levels: Vec<u8> = (0..5).map(|i| r.soft_level(i)).collect();
        assert_eq!(levels, vec![0, 0, 3, 1, 2]);
        assert_eq!(r.max_level(), MAX_LEVEL);
        // A request category narrows further: only Comedy -> a (Drama) breaks the includes.
        let comedy = RequestFilters {
            categories: vec!["Comedy".into()],
            exclude: vec![],
        };
        let r = f.resolve(&[], &comedy, 40, None).unwrap();
        assert_eq!(r.soft_level(0), 2);
        assert_eq!(r.soft_level(1), 0);
    }

    #[test]
    fn max_age_is_relative_to_now() {
        let (ids, t) = catalog();
        let config = FiltersConfig {
            date_column: Some("year".into()),
            date_unit: DateUnit::Year,
            max_age_days: Some(365.2425 * 5.0),
            ..FiltersConfig::default()
        };
        let f = ItemFilters::new(&config, None, ids, Some(&t)).unwrap();
        let now = DateUnit::Year.to_unix_seconds(2004.5) as i64;
        let r = f
            .resolve(&[], &RequestFilters::default(), now, None)
            .unwrap();
        // 2000 and 2001 are within 5 years of mid-2004; 1990, 1960 and the unknown date are not.
        let levels: Vec<u8> = (0..5).map(|i| r.soft_level(i)).collect();
        assert_eq!(levels, vec![1, 0, 0, 1, 1]);
        assert_eq!(r.max_level(), 1);
    }

    #[test]
    fn candidate_mask_is_hard_and_seen_can_be_allowed() {
        let (ids, t) = catalog();
        let config = FiltersConfig {
            exclude_seen: false,
            ..FiltersConfig::default()
        };
        let f = ItemFilters::new(&config, None, ids, Some(&t)).unwrap();
        let mask = [true, false, true, true, true];
        let r = f
            .resolve(&[0], &RequestFilters::default(), 0, Some(&mask))
            .unwrap();
        assert!(r.passes_hard(0));
        assert!(!r.passes_hard(1));
        assert!(!r.passes_hard(5));
        assert_eq!(r.max_level(), 0);
    }

    #[test]
    fn unknown_columns_and_categories_name_what_exists() {
        let (ids, t) = catalog();
        let bad = FiltersConfig {
            hide_column: Some("hiden".into()),
            ..FiltersConfig::default()
        };
        let err = ItemFilters::new(&bad, None, Arc::clone(&ids), Some(&t))
            .unwrap_err()
            .to_string();
        assert!(err.contains("filters.hide_column `hiden`"), "{err}");
        assert!(err.contains("genres, year, hidden, from, until"), "{err}");
        let bad = FiltersConfig {
            hide_column: Some("genres".into()),
            ..FiltersConfig::default()
        };
        let err = ItemFilters::new(&bad, None, Arc::clone(&ids), Some(&t))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a numeric item feature"), "{err}");
        let bad = FiltersConfig {
            category_column: Some("genres".into()),
            exclude_categories: vec!["Horor".into()],
            ..FiltersConfig::default()
        };
        let err = ItemFilters::new(&bad, None, Arc::clone(&ids), Some(&t))
            .unwrap_err()
            .to_string();
        assert!(err.contains("filters.exclude_categories: `Horor`"), "{err}");
        assert!(err.contains("Comedy, Drama, Horror"), "{err}");
        let no_column = FiltersConfig {
            include_categories: vec!["Drama".into()],
            ..FiltersConfig::default()
        };
        let err = ItemFilters::new(&no_column, None, Arc::clone(&ids), Some(&t))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a category column"), "{err}");
        let f = ItemFilters::new(&FiltersConfig::default(), Some("genres"), ids, Some(&t)).unwrap();
        let req = RequestFilters::parse_query("category=Dramma").unwrap();
        let err = f.resolve(&[], &req, 0, None).unwrap_err().to_string();
        assert!(err.contains("request category: `Dramma`"), "{err}");
    }

    #[test]
    fn query_strings_parse() {
        let r = RequestFilters::parse_query("category=a&category=b,c&exclude=i1,i2&").unwrap();
        assert_eq!(r.categories, vec!["a", "b", "c"]);
        assert_eq!(r.exclude, vec!["i1", "i2"]);
        assert!(RequestFilters::parse_query("").unwrap().is_empty());
        let err = RequestFilters::parse_query("genre=a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `genre`"), "{err}");
    }
}
