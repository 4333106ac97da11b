//! Freshness and repetition: boost new items, decay items a user has already been shown many
//! times, and lean on what is popular now for users returning after a long absence.
//!
//! Runs over the candidate pool before the re-ranker, on relevance min-max normalised over the
//! pool (so the knobs mean the same for every model's score scale):
//!
//! `rel'(i) = a * rel(i) * 0.5^(shown(i) / impression_half_life)
//!            + (1 - a) * pop(i)
//!            + new_item_boost * 0.5^(age(i) / new_item_half_life_days)`
//!
//! * `a = 0.5^(absence / absence_half_life_days)`, `absence` the days since the user's last
//!   interaction: the personal signal was learnt from interactions that are now old, so it is
//!   trusted less the longer the user was away, in favour of `pop(i)` (log-popularity scaled to
//!   [0, 1], the re-ranker's popularity measure). Models score known users from their whole
//!   history; decaying the personal score at ranking time is how old interactions lose weight
//!   without retraining.
//! * `shown(i)`: how often the user has already been shown item i (impressions without a
//!   click). Offline evaluation has no impression log, so there this term is inert.
//! * `age(i)`: days since the item first appeared (its first training interaction, or an item
//!   date column) at request time. Items without a known date, or dated after the request, get
//!   no boost.
//!
//! Every knob at 0 leaves the pool untouched (the stage is skipped).

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{Error, FeatureTable, IdMap, Interactions, Result, Scored};
use serde::{Deserialize, Serialize};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// `[freshness]` of a rank config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessConfig {
    /// Added to the relevance (in [0, 1]) of a brand-new item; halves every
    /// `new_item_half_life_days`. 0: off.
    #[serde(default)]
    pub new_item_boost: f64,
    #[serde(default = "default_new_item_half_life_days")]
    pub new_item_half_life_days: f64,
    /// Numeric item column holding the item's date (unix seconds) instead of its first
    /// interaction; items without a value fall back to their first interaction.
    #[serde(default)]
    pub item_date_column: Option<String>,
    /// What the date column's numbers count: `seconds` since 1970 (default), `days` since 1970,
    /// or calendar `years` (MovieLens `year`: 1995 means 1 January 1995).
    #[serde(default)]
    pub item_date_unit: DateUnit,
    /// Impressions (shown, not clicked) after which an item's relevance counts half. 0: off.
    #[serde(default)]
    pub impression_half_life: f64,
    /// Days of absence after which a user's personal relevance counts half against current
    /// popularity. 0: off.
    #[serde(default)]
    pub absence_half_life_days: f64,
}

/// Unit of an item date column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateUnit {
    #[default]
    Seconds,
    Days,
    Years,
}

impl DateUnit {
    /// Unix seconds of a value in this unit.
    fn to_unix_seconds(self, value: f64) -> i64 {
        match self {
            DateUnit::Seconds => value as i64,
            DateUnit::Days => (value * SECONDS_PER_DAY) as i64,
            // Mean Gregorian year; the day within the year does not matter at this resolution.
            DateUnit::Years => ((value - 1970.0) * 365.2425 * SECONDS_PER_DAY) as i64,
        }
    }
}

fn default_new_item_half_life_days() -> f64 {
    30.0
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        Self {
            new_item_boost: 0.0,
            new_item_half_life_days: default_new_item_half_life_days(),
            item_date_column: None,
            item_date_unit: DateUnit::Seconds,
            impression_half_life: 0.0,
            absence_half_life_days: 0.0,
        }
    }
}

impl FreshnessConfig {
    /// True when any knob is on.
    pub fn is_active(&self) -> bool {
        self.new_item_boost != 0.0
            || self.impression_half_life > 0.0
            || self.absence_half_life_days > 0.0
    }

    /// Checks value ranges; `Err((dotted key, message))`.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        let finite_non_negative = |key: &'static str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err((key, format!("must be a finite number >= 0, got {v}")))
            }
        };
        finite_non_negative("freshness.new_item_boost", self.new_item_boost)?;
        finite_non_negative("freshness.impression_half_life", self.impression_half_life)?;
        finite_non_negative(
            "freshness.absence_half_life_days",
            self.absence_half_life_days,
        )?;
        if !(self.new_item_half_life_days.is_finite() && self.new_item_half_life_days > 0.0) {
            return Err((
                "freshness.new_item_half_life_days",
                format!(
                    "must be a positive number of days, got {}",
                    self.new_item_half_life_days
                ),
            ));
        }
        Ok(())
    }
}

/// When each item of a catalog appeared (unix seconds; [`NO_TIMESTAMP`] when unknown).
#[derive(Debug, Clone, Default)]
pub struct ItemDates {
    pub first_seen: Vec<i64>,
}

impl ItemDates {
    /// The first interaction of each of `n_items` items among `rows` of `data` (None: all rows).
    pub fn from_interactions(data: &Interactions, rows: Option<&[u32]>, n_items: usize) -> Self {
        let mut first_seen = vec![NO_TIMESTAMP; n_items];
        let (items, stamps) = (data.items(), data.timestamps());
        let mut see = |r: usize| {
            let (item, t) = (items[r] as usize, stamps[r]);
            if t != NO_TIMESTAMP && item < n_items {
                let slot = &mut first_seen[item];
                if *slot == NO_TIMESTAMP || t < *slot {
                    *slot = t;
                }
            }
        };
        match rows {
            Some(rows) => rows.iter().for_each(|&r| see(r as usize)),
            None => (0..items.len()).for_each(see),
        }
        Self { first_seen }
    }

    /// Replaces the dates of items that have a value in the numeric `column` of `features`,
    /// counted in `unit`.
    pub fn with_column(
        mut self,
        features: &FeatureTable,
        ids: &IdMap,
        column: &str,
        unit: DateUnit,
    ) -> Result<Self> {
        let col =
            features.column(column).ok_or_else(|| {
                let names: Vec<&str> = features.columns().iter().map(|c| c.name.as_str()).collect();
                Error::InvalidInput(format!(
                "rank config: freshness.item_date_column `{column}` is not an item feature (item \
                 features: {})",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ))
            })?;
        let ColumnData::Numeric(values) = &col.data else {
            return Err(Error::InvalidInput(format!(
                "rank config: freshness.item_date_column `{column}` must be a numeric item feature"
            )));
        };
        for (item, row) in features.align(ids).into_iter().enumerate() {
            if let (Some(row), Some(slot)) = (row, self.first_seen.get_mut(item)) {
                let v = values[row as usize];
                if v.is_finite() {
                    *slot = unit.to_unix_seconds(f64::from(v));
                }
            }
        }
        Ok(self)
    }
}

/// What freshness needs to know about one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshnessRequest<'a> {
    /// Request time (unix seconds); without it, age and absence are unknown and their terms off.
    pub now: Option<i64>,
    /// The user's last interaction before the request.
    pub last_active: Option<i64>,
    /// `(item, times shown without a click)`, any order.
    pub impressions: &'a [(u32, u32)],
}

/// The freshness stage for one catalog.
pub struct Freshness<'a> {
    config: &'a FreshnessConfig,
    dates: &'a ItemDates,
    /// Per item, log-popularity in [0, 1].
    popularity: &'a [f64],
}

impl<'a> Freshness<'a> {
    pub fn new(config: &'a FreshnessConfig, dates: &'a ItemDates, popularity: &'a [f64]) -> Self {
        Self {
            config,
            dates,
            popularity,
        }
    }

    /// Rescores `pool` (a model's top candidates) in place and re-sorts it best first (ties by
    /// lower item index). A no-op when every knob is off.
    pub fn apply(&self, pool: &mut [Scored], request: &FreshnessRequest<'_>) {
        let c = self.config;
        if !c.is_active() || pool.is_empty() {
            return;
        }
        let (lo, hi) = pool
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
                (lo.min(s.score), hi.max(s.score))
            });
        let span = hi - lo;
        let personal = match (request.now, request.last_active) {
            (Some(now), Some(last)) if c.absence_half_life_days > 0.0 => {
                let days = ((now - last) as f64 / SECONDS_PER_DAY).max(0.0);
                0.5f64.powf(days / c.absence_half_life_days)
            }
            _ => 1.0,
        };
        for s in pool.iter_mut() {
            let item = s.item;
            let mut rel = if span > 0.0 {
                f64::from((s.score - lo) / span)
            } else {
                1.0
            };
            if c.impression_half_life > 0.0 {
                let shown = request
                    .impressions
                    .iter()
                    .filter(|(i, _)| *i == item)
                    .map(|&(_, n)| f64::from(n))
                    .sum::<f64>();
                rel *= 0.5f64.powf(shown / c.impression_half_life);
            }
            let pop = self.popularity.get(item as usize).copied().unwrap_or(0.0);
            rel = personal * rel + (1.0 - personal) * pop;
            if c.new_item_boost != 0.0 {
                let born = self
                    .dates
                    .first_seen
                    .get(item as usize)
                    .copied()
                    .unwrap_or(NO_TIMESTAMP);
                if let (Some(now), true) = (request.now, born != NO_TIMESTAMP) {
                    if born <= now {
                        let age = (now - born) as f64 / SECONDS_PER_DAY;
                        rel += c.new_item_boost * 0.5f64.powf(age / c.new_item_half_life_days);
                    }
                }
            }
            s.score = rel as f32;
        }
        pool.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    }
}

/// Per item: ln(1 + users) / ln(1 + users of the most popular item), in [0, 1].
pub fn log_popularity(item_users: &[u32]) -> Vec<f64> {
    let max = item_users.iter().copied().max().unwrap_or(0) as f64;
    item_users
        .iter()
        .map(|&u| {
            if max > 0.0 {
                (1.0 + u as f64).ln() / (1.0 + max).ln()
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn pool(scores: &[(u32, f32)]) -> Vec<Scored> {
        scores
            .iter()
            .map(|&(item, score)| Scored { item, score })
            .collect()
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn every_knob_off_leaves_the_pool_alone() {
        let config = FreshnessConfig::default();
        let dates = ItemDates {
            first_seen: vec![0; 3],
        };
        let popularity = [1.0, 0.0, 0.5];
        let mut p = pool(&[(2, 5.0), (0, 1.0), (1, -3.0)]);
        let before = p.clone();
        Freshness::new(&config, &dates, &popularity).apply(&mut p, &FreshnessRequest::default());
        assert_eq!(p, before);
    }

    #[test]
    fn new_item_boost_by_hand() {
        let config = FreshnessConfig {
            new_item_boost: 0.8,
            new_item_half_life_days: 10.0,
            ..Default::default()
        };
        let now = 100 * DAY;
        // Item 0: relevance 1, 100 days old; item 1: relevance 0.5, 10 days old (half boost);
        // item 2: relevance 0, brand new (full boost); item 3: no date; item 4: from the future.
        let dates = ItemDates {
            first_seen: vec![0, 90 * DAY, now, NO_TIMESTAMP, 101 * DAY],
        };
        let popularity = [0.0; 5];
        let mut p = pool(&[(0, 3.0), (1, 2.0), (3, 2.0), (4, 2.0), (2, 1.0)]);
        let request = FreshnessRequest {
            now: Some(now),
            ..Default::default()
        };
        Freshness::new(&config, &dates, &popularity).apply(&mut p, &request);
        let order: Vec<u32> = p.iter().map(|s| s.item).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert!(close(p[0].score, 1.0 + 0.8 * 0.5f64.powf(10.0)));
        assert!(close(p[1].score, 0.5 + 0.4));
        assert!(close(p[2].score, 0.8));
        assert!(close(p[3].score, 0.5) && close(p[4].score, 0.5));
    }

    #[test]
    fn impressions_halve_relevance_per_half_life() {
        let config = FreshnessConfig {
            impression_half_life: 2.0,
            ..Default::default()
        };
        let dates = ItemDates::default();
        let popularity = [0.0; 3];
        let mut p = pool(&[(0, 1.0), (1, 0.5), (2, 0.0)]);
        // Item 0 was shown 4 times (in two records): 1 * 0.25; item 1 untouched at 0.5.
        let impressions = [(0, 3), (2, 1), (0, 1)];
        let request = FreshnessRequest {
            impressions: &impressions,
            ..Default::default()
        };
        Freshness::new(&config, &dates, &popularity).apply(&mut p, &request);
        assert_eq!(p[0].item, 1);
        assert!(close(p[0].score, 0.5));
        assert!(close(p[1].score, 0.25));
        assert!(close(p[2].score, 0.0));
    }

    #[test]
    fn a_long_absence_leans_on_popularity() {
        let config = FreshnessConfig {
            absence_half_life_days: 30.0,
            ..Default::default()
        };
        let dates = ItemDates::default();
        let popularity = [0.0, 1.0];
        let p0 = pool(&[(0, 2.0), (1, 1.0)]);
        let rescore = |days: i64| {
            let mut p = p0.clone();
            let request = FreshnessRequest {
                now: Some(days * DAY),
                last_active: Some(0),
                impressions: &[],
            };
            Freshness::new(&config, &dates, &popularity).apply(&mut p, &request);
            p
        };
        // Back the same day: personal order kept, relevance unchanged.
        let same_day = rescore(0);
        assert_eq!(same_day[0].item, 0);
        assert!(close(same_day[0].score, 1.0) && close(same_day[1].score, 0.0));
        // 30 days away: half personal, half popularity -> a tie broken by the lower index.
        let month = rescore(30);
        assert!(close(month[0].score, 0.5) && close(month[1].score, 0.5));
        // 90 days away: a = 1/8, popularity wins.
        let season = rescore(90);
        assert_eq!(season[0].item, 1);
        assert!(close(season[0].score, 0.875));
    }

    #[test]
    fn item_dates_from_interactions_and_a_column() {
        use kindred_core::{EventType, Interaction, InteractionsBuilder};
        let mut b = InteractionsBuilder::default();
        b.push(Interaction::implicit("u", "a", EventType::Click, Some(50)));
        b.push(Interaction::implicit("v", "a", EventType::Click, Some(20)));
        b.push(Interaction::implicit("v", "b", EventType::Click, None));
        b.push(Interaction::implicit("u", "c", EventType::Click, Some(70)));
        let data = b.build();
        let dates = ItemDates::from_interactions(&data, None, 3);
        assert_eq!(dates.first_seen, [20, NO_TIMESTAMP, 70]);
        let only_first_row = ItemDates::from_interactions(&data, Some(&[0]), 3);
        assert_eq!(only_first_row.first_seen, [50, NO_TIMESTAMP, NO_TIMESTAMP]);

        let mut features = FeatureTable::new();
        features
            .set("b", "released", kindred_core::FeatureValue::Number(5.0))
            .unwrap();
        features
            .set(
                "c",
                "genre",
                kindred_core::FeatureValue::Categories(vec!["x".into()]),
            )
            .unwrap();
        let ids = data.item_ids();
        let dated = dates
            .clone()
            .with_column(&features, ids, "released", DateUnit::Seconds);
        assert_eq!(dated.unwrap().first_seen, [20, 5, 70]);
        let in_days = dates
            .clone()
            .with_column(&features, ids, "released", DateUnit::Days);
        assert_eq!(in_days.unwrap().first_seen, [20, 5 * 86_400, 70]);
        let missing = dates
            .clone()
            .with_column(&features, ids, "nope", DateUnit::Seconds);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("item features: released, genre"));
        let wrong = dates.with_column(&features, ids, "genre", DateUnit::Seconds);
        assert!(wrong.unwrap_err().to_string().contains("must be a numeric"));
    }

    #[test]
    fn years_are_converted_to_unix_seconds() {
        assert_eq!(DateUnit::Years.to_unix_seconds(1970.0), 0);
        // 2000-01-01T00:00:00Z is 946684800; the mean-year approximation is within a day.
        let y2k = DateUnit::Years.to_unix_seconds(2000.0);
        assert!((y2k - 946_684_800).abs() < 86_400, "{y2k}");
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        let bad = FreshnessConfig {
            new_item_half_life_days: 0.0,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().0,
            "freshness.new_item_half_life_days"
        );
        let negative = FreshnessConfig {
            impression_half_life: -1.0,
            ..Default::default()
        };
        assert_eq!(
            negative.validate().unwrap_err().0,
            "freshness.impression_half_life"
        );
    }
}
