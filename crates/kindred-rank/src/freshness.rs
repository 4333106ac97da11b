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

use kindred_core::Scored;
use serde::{Deserialize, Serialize};

use crate::date_unit::DateUnit;

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
    /// What the date column's numbers count: `unix_seconds` (default) or calendar `year`
    /// (MovieLens `year`: 1995 means 1 January 1995).
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

fn default_new_item_half_life_days() -> f64 {
    30.0
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        Self {
            new_item_boost: 0.0,
            new_item_half_life_days: default_new_item_half_life_days(),
            item_date_column: None,
            item_date_unit: DateUnit::UnixSeconds,
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
    /// Per item, when it appeared (Unix seconds; NaN when unknown).
    dates: &'a [f64],
    /// Per item, log-popularity in [0, 1].
    popularity: &'a [f64],
}

impl<'a> Freshness<'a> {
    pub fn new(config: &'a FreshnessConfig, dates: &'a [f64], popularity: &'a [f64]) -> Self {
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
                let born = self.dates.get(item as usize).copied().unwrap_or(f64::NAN);
                if let Some(now) = request.now {
                    // NaN (undated) fails the comparison: no boost.
                    if born <= now as f64 {
                        let age = (now as f64 - born) / SECONDS_PER_DAY;
                        rel += c.new_item_boost * 0.5f64.powf(age / c.new_item_half_life_days);
                    }
                }
            }
            s.score = rel as f32;
        }
        pool.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    }
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
        let dates = [0.0; 3];
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
        let dates =
            [0, 90 * DAY, now, -1, 101 * DAY].map(|d| if d < 0 { f64::NAN } else { d as f64 });
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
        let dates = [];
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
        let dates = [];
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
