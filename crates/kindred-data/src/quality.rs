//! The data-quality report behind `kindred stats`: what is in a dataset, how it is distributed,
//! and what cleaning would remove, so a user can judge data before training on it.
//!
//! Conventions: quantiles interpolate linearly between order statistics (numpy's default);
//! activity and popularity distributions cover users/items with at least one row; the long-tail
//! shares and the Gini coefficient cover items with at least one row, while "items with fewer
//! than 5 rows" counts the whole catalog (never-seen items included); feature coverage divides
//! by the whole user or item universe. Dates are UTC.

use std::fmt;

use kindred_core::features::ColumnData;
use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::quantile::quantile;
use kindred_core::{Dataset, FeatureTable, IdMap};
use serde::Serialize;

use crate::preprocess::{dry_run, PipelineConfig, PipelineReport};

/// Everything `kindred stats` prints (and writes with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub dataset: String,
    pub counts: Counts,
    /// Present when at least one row has a rating.
    pub ratings: Option<RatingStats>,
    pub events: Vec<EventCount>,
    pub user_activity: Distribution,
    pub item_popularity: Distribution,
    pub long_tail: LongTail,
    pub time: TimeRange,
    pub duplicates: Duplicates,
    /// What each cleaning rule would remove if applied alone.
    pub cleaning: PipelineReport,
    /// True when `cleaning` comes from the built-in probe because no pipeline was configured.
    pub cleaning_is_probe: bool,
    pub features: Vec<FeatureCoverage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub rows: usize,
    /// Size of the user universe.
    pub users: usize,
    /// Size of the catalog.
    pub items: usize,
    pub users_with_interactions: usize,
    pub items_with_interactions: usize,
    pub distinct_pairs: usize,
    /// Distinct (user, item) pairs over active users x active items.
    pub density: f64,
    pub sparsity: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RatingStats {
    pub rated_rows: usize,
    pub histogram: Vec<RatingBin>,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RatingBin {
    pub value: f32,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventCount {
    pub event: String,
    pub count: usize,
}

/// Summary of a distribution of counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LongTail {
    /// Share of rows on the most popular 1% / 10% / 20% of items.
    pub top1_share: f64,
    pub top10_share: f64,
    pub top20_share: f64,
    /// Gini coefficient of item popularity (0 = all equal, towards 1 = all on one item).
    pub gini: f64,
    pub items_under_5: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeRange {
    pub first_timestamp: Option<i64>,
    pub last_timestamp: Option<i64>,
    /// `YYYY-MM-DD`, UTC.
    pub first_date: Option<String>,
    pub last_date: Option<String>,
    pub rows_without_timestamp: usize,
    /// Rows dated more than `checks.future_tolerance_seconds` after `checks.now`.
    pub future_rows: usize,
    /// Rows dated before `checks.epoch` (0 when no epoch is given).
    pub before_epoch_rows: usize,
    pub checks: TimestampChecks,
}

/// What makes a timestamp suspicious: later than the moment of the check plus a tolerance (a
/// client clock ahead, an import in the wrong unit), or earlier than the product existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimestampChecks {
    /// Unix seconds the report was made at.
    pub now: i64,
    pub future_tolerance_seconds: i64,
    /// The first plausible Unix second (the product's launch, say), if known.
    pub epoch: Option<i64>,
}

impl TimestampChecks {
    /// A day of tolerance, no epoch, the system clock.
    pub fn at_now() -> Self {
        Self {
            now: kindred_core::timestamp_range::now(),
            future_tolerance_seconds: 86_400,
            epoch: None,
        }
    }

    /// Counts (future, before epoch) among `timestamps`; rows without one are neither.
    pub fn flagged(&self, timestamps: impl IntoIterator<Item = i64>) -> (usize, usize) {
        let horizon = self.now.saturating_add(self.future_tolerance_seconds);
        timestamps
            .into_iter()
            .filter(|&t| t != NO_TIMESTAMP)
            .fold((0, 0), |(future, early), t| {
                (
                    future + usize::from(t > horizon),
                    early + usize::from(self.epoch.is_some_and(|e| t < e)),
                )
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Duplicates {
    /// Rows whose (user, item) pair already occurred in an earlier row.
    pub repeated_pairs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureCoverage {
    /// `user` or `item`.
    pub entity: String,
    /// Share of the universe with at least one feature set.
    pub any: f64,
    pub columns: Vec<ColumnCoverage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnCoverage {
    pub name: String,
    pub kind: String,
    pub coverage: f64,
}

/// Computes the report. An empty `cfg` (the default) is replaced by [`PipelineConfig::probe`].
/// Timestamps are checked with [`TimestampChecks::at_now`].
pub fn report(dataset: &Dataset, cfg: &PipelineConfig) -> QualityReport {
    report_with(dataset, cfg, &TimestampChecks::at_now())
}

/// [`report`] with the timestamp checks given.
pub fn report_with(
    dataset: &Dataset,
    cfg: &PipelineConfig,
    checks: &TimestampChecks,
) -> QualityReport {
    let data = &dataset.interactions;
    let user_counts = data.user_counts();
    let item_counts = data.item_counts();
    let active = |counts: &[u32]| -> Vec<f64> {
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| c as f64)
            .collect()
    };
    let (active_users, active_items) = (active(&user_counts), active(&item_counts));

    let by_user = data.by_user();
    let mut distinct_pairs = 0;
    for u in 0..by_user.n_rows() {
        let row = by_user.row(u);
        distinct_pairs += row
            .iter()
            .enumerate()
            .filter(|&(k, &i)| k == 0 || row[k - 1] != i)
            .count();
    }
    let cells = active_users.len() as f64 * active_items.len() as f64;
    let density = if cells > 0.0 {
        distinct_pairs as f64 / cells
    } else {
        0.0
    };
    let counts = Counts {
        rows: data.len(),
        users: data.n_users(),
        items: data.n_items(),
        users_with_interactions: active_users.len(),
        items_with_interactions: active_items.len(),
        distinct_pairs,
        density,
        sparsity: 1.0 - density,
    };

    let (cleaning_cfg, cleaning_is_probe) = if cfg.is_empty() {
        (PipelineConfig::probe(), true)
    } else {
        (cfg.clone(), false)
    };

    QualityReport {
        dataset: dataset.name.clone(),
        counts,
        ratings: rating_stats(data.ratings()),
        events: event_counts(dataset),
        user_activity: distribution(&active_users),
        item_popularity: distribution(&active_items),
        long_tail: long_tail(&active_items, &item_counts),
        time: time_range(data.timestamps(), checks),
        duplicates: Duplicates {
            repeated_pairs: data.len() - distinct_pairs,
        },
        cleaning: dry_run(&cleaning_cfg, data),
        cleaning_is_probe,
        features: [
            ("item", &dataset.item_features, data.item_ids()),
            ("user", &dataset.user_features, data.user_ids()),
        ]
        .into_iter()
        .filter_map(|(entity, table, ids)| table.as_ref().map(|t| coverage(entity, t, ids)))
        .collect(),
    }
}

fn rating_stats(ratings: &[f32]) -> Option<RatingStats> {
    let mut rated: Vec<f32> = ratings.iter().copied().filter(|r| !r.is_nan()).collect();
    if rated.is_empty() {
        return None;
    }
    rated.sort_by(f32::total_cmp);
    let mut histogram: Vec<RatingBin> = Vec::new();
    for &r in &rated {
        match histogram.last_mut() {
            Some(bin) if bin.value == r => bin.count += 1,
            _ => histogram.push(RatingBin { value: r, count: 1 }),
        }
    }
    let n = rated.len() as f64;
    let mean = rated.iter().map(|&r| r as f64).sum::<f64>() / n;
    let var = rated
        .iter()
        .map(|&r| (r as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    Some(RatingStats {
        rated_rows: rated.len(),
        histogram,
        mean,
        std: var.sqrt(),
    })
}

fn event_counts(dataset: &Dataset) -> Vec<EventCount> {
    let data = &dataset.interactions;
    let mut counts: std::collections::BTreeMap<_, usize> = std::collections::BTreeMap::new();
    for &e in data.events() {
        *counts.entry(e).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(e, count)| EventCount {
            event: data.event_name(e),
            count,
        })
        .collect()
}

/// Summary of values (any order); all zero for no values.
pub fn distribution(values: &[f64]) -> Distribution {
    if values.is_empty() {
        return Distribution::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Distribution {
        min: sorted[0],
        p25: quantile(&sorted, 0.25),
        median: quantile(&sorted, 0.5),
        p75: quantile(&sorted, 0.75),
        p90: quantile(&sorted, 0.9),
        p99: quantile(&sorted, 0.99),
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
    }
}

/// Gini coefficient of non-negative values: (2 sum_i i x_(i)) / (n sum x) - (n + 1) / n over
/// ascending values with 1-based i; 0 when empty or all zero.
pub fn gini(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let total: f64 = sorted.iter().sum();
    if sorted.is_empty() || total <= 0.0 {
        return 0.0;
    }
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    2.0 * weighted / (n * total) - (n + 1.0) / n
}

fn long_tail(active_items: &[f64], item_counts: &[u32]) -> LongTail {
    let mut desc = active_items.to_vec();
    desc.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = desc.iter().sum();
    let share = |fraction: f64| {
        if desc.is_empty() {
            return 0.0;
        }
        let k = ((fraction * desc.len() as f64).ceil() as usize).clamp(1, desc.len());
        desc[..k].iter().sum::<f64>() / total
    };
    LongTail {
        top1_share: share(0.01),
        top10_share: share(0.10),
        top20_share: share(0.20),
        gini: gini(active_items),
        items_under_5: item_counts.iter().filter(|&&c| c < 5).count(),
    }
}

fn time_range(timestamps: &[i64], checks: &TimestampChecks) -> TimeRange {
    let (future_rows, before_epoch_rows) = checks.flagged(timestamps.iter().copied());
    let known = timestamps.iter().copied().filter(|&t| t != NO_TIMESTAMP);
    let first = known.clone().min();
    let last = known.max();
    TimeRange {
        first_timestamp: first,
        last_timestamp: last,
        first_date: first.map(utc_date),
        last_date: last.map(utc_date),
        rows_without_timestamp: timestamps.iter().filter(|&&t| t == NO_TIMESTAMP).count(),
        future_rows,
        before_epoch_rows,
        checks: *checks,
    }
}

/// A count, marked when it is not zero: such rows are suspect.
fn flag(count: usize) -> String {
    if count == 0 {
        "0".into()
    } else {
        format!("{count} (check these)")
    }
}

/// `YYYY-MM-DD` of a Unix timestamp in UTC (Hinnant's civil-from-days, valid for any i64 day).
pub fn utc_date(timestamp: i64) -> String {
    let z = timestamp.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn coverage(entity: &str, table: &FeatureTable, ids: &IdMap) -> FeatureCoverage {
    let rows = table.align(ids);
    let universe = ids.len().max(1) as f64;
    let any = rows.iter().filter(|r| r.is_some()).count() as f64 / universe;
    let columns = table
        .columns()
        .iter()
        .map(|col| {
            let set = |row: usize| match &col.data {
                ColumnData::Categorical { values, .. } => !values[row].is_empty(),
                ColumnData::Numeric(values) => !values[row].is_nan(),
                ColumnData::Text(values) => !values[row].trim().is_empty(),
                ColumnData::Dense { values, .. } => values[row].is_some(),
            };
            let kind = match &col.data {
                ColumnData::Categorical { .. } => "categorical",
                ColumnData::Numeric(_) => "numeric",
                ColumnData::Text(_) => "text",
                ColumnData::Dense { .. } => "vector",
            };
            let with = rows.iter().flatten().filter(|&&r| set(r as usize)).count();
            ColumnCoverage {
                name: col.name.clone(),
                kind: kind.to_owned(),
                coverage: with as f64 / universe,
            }
        })
        .collect();
    FeatureCoverage {
        entity: entity.to_owned(),
        any,
        columns,
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// A titled two-column table with the labels padded to a common width.
fn table(f: &mut fmt::Formatter<'_>, title: &str, rows: &[(String, String)]) -> fmt::Result {
    writeln!(f, "{title}")?;
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        writeln!(f, "  {k:<width$}  {v}")?;
    }
    writeln!(f)
}

fn distribution_row(name: &str, d: &Distribution) -> String {
    format!(
        "{name:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        num(d.min),
        num(d.p25),
        num(d.median),
        num(d.p75),
        num(d.p90),
        num(d.p99),
        num(d.max),
        format!("{:.2}", d.mean)
    )
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(f, "Dataset: {}\n", self.dataset)?;
        table(
            f,
            "Counts",
            &[
                ("rows".into(), c.rows.to_string()),
                (
                    "users (with interactions / all)".into(),
                    format!("{} / {}", c.users_with_interactions, c.users),
                ),
                (
                    "items (with interactions / all)".into(),
                    format!("{} / {}", c.items_with_interactions, c.items),
                ),
                (
                    "distinct user-item pairs".into(),
                    c.distinct_pairs.to_string(),
                ),
                ("density".into(), format!("{:.4}%", 100.0 * c.density)),
                ("sparsity".into(), format!("{:.4}%", 100.0 * c.sparsity)),
            ],
        )?;
        if let Some(r) = &self.ratings {
            let mut rows = vec![
                ("rated rows".into(), r.rated_rows.to_string()),
                ("mean / std".into(), format!("{:.3} / {:.3}", r.mean, r.std)),
            ];
            // Continuous scores would make the histogram unreadable; show at most 20 values.
            if r.histogram.len() <= 20 {
                for bin in &r.histogram {
                    let share = bin.count as f64 / r.rated_rows as f64;
                    rows.push((
                        format!("rating {}", bin.value),
                        format!("{:>10}  {:>7}", bin.count, pct(share)),
                    ));
                }
            } else {
                rows.push(("distinct values".into(), r.histogram.len().to_string()));
            }
            table(f, "Ratings", &rows)?;
        }
        let events: Vec<(String, String)> = self
            .events
            .iter()
            .map(|e| (e.event.clone(), e.count.to_string()))
            .collect();
        table(f, "Event types", &events)?;
        writeln!(
            f,
            "Distributions    {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "min", "p25", "median", "p75", "p90", "p99", "max", "mean"
        )?;
        writeln!(
            f,
            "  {}",
            distribution_row("rows per user", &self.user_activity)
        )?;
        writeln!(
            f,
            "  {}\n",
            distribution_row("rows per item", &self.item_popularity)
        )?;
        let t = &self.long_tail;
        table(
            f,
            "Long tail",
            &[
                ("share on top 1% items".into(), pct(t.top1_share)),
                ("share on top 10% items".into(), pct(t.top10_share)),
                ("share on top 20% items".into(), pct(t.top20_share)),
                ("Gini of item popularity".into(), format!("{:.3}", t.gini)),
                ("items with < 5 rows".into(), t.items_under_5.to_string()),
            ],
        )?;
        let tr = &self.time;
        table(
            f,
            "Time",
            &[
                (
                    "first".into(),
                    tr.first_date.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "last".into(),
                    tr.last_date.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "rows without timestamp".into(),
                    tr.rows_without_timestamp.to_string(),
                ),
                (
                    format!(
                        "rows more than {} s in the future",
                        tr.checks.future_tolerance_seconds
                    ),
                    flag(tr.future_rows),
                ),
                (
                    match tr.checks.epoch {
                        Some(epoch) => format!("rows before {}", utc_date(epoch)),
                        None => "rows before the epoch (none given)".into(),
                    },
                    flag(tr.before_epoch_rows),
                ),
                (
                    "rows repeating a user-item pair".into(),
                    self.duplicates.repeated_pairs.to_string(),
                ),
            ],
        )?;
        writeln!(
            f,
            "Cleaning: what each rule would remove alone{}",
            if self.cleaning_is_probe {
                " (probe settings; no pipeline configured)"
            } else {
                ""
            }
        )?;
        for line in self.cleaning.to_string().lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f)?;
        for fc in &self.features {
            let mut rows = vec![("any feature".to_owned(), pct(fc.any))];
            rows.extend(
                fc.columns
                    .iter()
                    .map(|c| (format!("{} ({})", c.name, c.kind), pct(c.coverage))),
            );
            table(f, &format!("{} feature coverage", fc.entity), &rows)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, SyntheticConfig};
    use kindred_core::{EventType, FeatureValue, Interaction, InteractionsBuilder};
    use std::sync::Arc;

    #[test]
    fn quantiles_and_gini_by_hand() {
        let xs = [4.0, 1.0, 3.0, 2.0];
        let d = distribution(&xs);
        assert_eq!(
            (d.min, d.p25, d.median, d.p75, d.max, d.mean),
            (1.0, 1.75, 2.5, 3.25, 4.0, 2.5)
        );
        assert!((d.p90 - 3.7).abs() < 1e-12 && (d.p99 - 3.97).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
        // Sum i x_i = 30, so 2 * 30 / (4 * 10) - 5 / 4 = 0.25.
        assert!((gini(&xs) - 0.25).abs() < 1e-12);
        assert_eq!(gini(&[2.0, 2.0, 2.0]), 0.0);
        // One of n items holds everything: (n - 1) / n.
        assert!((gini(&[0.0, 0.0, 0.0, 5.0]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn dates_by_hand() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(978_300_760), "2000-12-31");
        assert_eq!(utc_date(1_709_251_199), "2024-02-29");
        assert_eq!(utc_date(4_102_444_800), "2100-01-01");
    }

    #[test]
    fn small_report() {
        let mut b = InteractionsBuilder::new();
        b.push(Interaction::rating("u1", "a", 5.0, Some(0)));
        b.push(Interaction::rating("u1", "a", 5.0, Some(0)));
        b.push(Interaction::rating("u1", "b", 3.0, Some(86_400)));
        b.push(Interaction::rating("u2", "a", 4.0, None));
        b.push(Interaction::implicit("u2", "c", EventType::Click, Some(10)));
        b.intern_item("never");
        let mut ds = Dataset::new("tiny", b.build());
        let mut items = FeatureTable::new();
        items
            .set("a", "genres", FeatureValue::Categories(vec!["x".into()]))
            .unwrap();
        items
            .set("b", "year", FeatureValue::Number(2000.0))
            .unwrap();
        ds.item_features = Some(Arc::new(items));
        let r = report(&ds, &PipelineConfig::default());
        assert_eq!(
            (
                r.counts.rows,
                r.counts.items,
                r.counts.items_with_interactions
            ),
            (5, 4, 3)
        );
        assert_eq!(r.counts.distinct_pairs, 4);
        assert!((r.counts.density - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(r.duplicates.repeated_pairs, 1);
        let ratings = r.ratings.as_ref().unwrap();
        assert_eq!(ratings.rated_rows, 4);
        assert_eq!(
            ratings
                .histogram
                .iter()
                .map(|b| (b.value, b.count))
                .collect::<Vec<_>>(),
            [(3.0, 1), (4.0, 1), (5.0, 2)]
        );
        assert!((ratings.mean - 4.25).abs() < 1e-12);
        assert_eq!(r.events.len(), 2);
        assert_eq!(
            (r.time.first_date.as_deref(), r.time.last_date.as_deref()),
            (Some("1970-01-01"), Some("1970-01-02"))
        );
        assert_eq!(r.time.rows_without_timestamp, 1);
        assert_eq!((r.time.future_rows, r.time.before_epoch_rows), (0, 0));
        // Seen from 1970-01-01 with an hour of tolerance and an epoch at 00:00:05, the row a
        // day later is in the future and the two at 0 are before the epoch.
        let checks = TimestampChecks {
            now: 0,
            future_tolerance_seconds: 3_600,
            epoch: Some(5),
        };
        let checked = report_with(&ds, &PipelineConfig::default(), &checks);
        assert_eq!(
            (checked.time.future_rows, checked.time.before_epoch_rows),
            (1, 2)
        );
        let text = checked.to_string();
        assert!(
            text.contains("rows more than 3600 s in the future")
                && text.contains("1 (check these)")
                && text.contains("rows before 1970-01-01"),
            "{text}"
        );
        assert_eq!(r.long_tail.items_under_5, 4);
        assert_eq!(r.item_popularity.max, 3.0);
        assert!(r.cleaning_is_probe);
        assert_eq!(r.cleaning.steps[0].rows_after, 4, "the exact duplicate");
        let fc = &r.features[0];
        assert_eq!((fc.entity.as_str(), fc.any), ("item", 0.5));
        assert_eq!(fc.columns[0].coverage, 0.25);
        let text = r.to_string();
        for section in [
            "Counts",
            "Ratings",
            "Long tail",
            "Cleaning",
            "item feature coverage",
            "exact_duplicates",
        ] {
            assert!(text.contains(section), "missing {section} in\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["counts"]["rows"], 5);
    }

    #[test]
    fn synthetic_report_sees_planted_problems() {
        let syn = generate(
            &SyntheticConfig::parse("users=300,items=200,per_user=20,bots=0.05,dups=0.02").unwrap(),
        )
        .unwrap();
        let r = report(&syn.dataset, &PipelineConfig::default());
        let removed = |name: &str| {
            r.cleaning
                .steps
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.users_removed)
        };
        assert!(removed("bots_burst").unwrap() + removed("bots_zero_variance").unwrap() >= 12);
        assert!(r.duplicates.repeated_pairs > 0);
        assert!(r.long_tail.gini > 0.3 && r.long_tail.top10_share > 0.2);
        assert_eq!(r.features.len(), 2);
        assert!(r.features.iter().all(|f| f.any == 1.0));
    }
}
