//! The cleaning and weighting pipeline, one configuration shared by evaluation, training and
//! serving so that a model is always fed data prepared the same way.
//!
//! Steps run in this fixed order; each is optional (absent from the config = skipped):
//!
//! 1. `exact_duplicates`: drop rows equal to an earlier row in user, item, event, timestamp,
//!    rating and weight (`[dedup] exact = true`).
//! 2. `near_duplicates`: drop rows of the same user, item and event within `window_seconds` of
//!    the last kept such row; the first is kept (`[dedup] window_seconds = 60`). Rows without a
//!    timestamp are never near duplicates.
//! 3. `bots`: users flagged by any of these rules are removed entirely (`[bots]`):
//!    a sustained rate above `max_events_per_minute` over any window of `rate_window_seconds`;
//!    more than `burst_events` within `burst_seconds`; the same rating on every one of at least
//!    `min_ratings_for_variance` ratings.
//! 4. `min_user_interactions`, `min_item_interactions`: one pass each (`[min_counts]`).
//! 5. `kcore`: repeatedly drop users and items with fewer than `kcore` rows until every
//!    remaining user and item has at least `kcore` (`[min_counts] kcore = 5`).
//! 6. `event_weights`: weight *= the weight of the row's event type (`[event_weights]`, a map
//!    from event name to weight; unnamed types keep their weight).
//! 7. `recency`: weight *= 0.5^((t_ref - t) / half_life) with t_ref the latest timestamp of
//!    the data, so the result depends on the data only (`[recency] half_life_days = 30`).
//!    Rows without a timestamp keep their weight.
//! 8. `normalize`: ratings minus the user's mean (`user_mean`) or also divided by the user's
//!    population standard deviation (`user_zscore`; users with zero spread get 0).
//!
//! "Interactions" counted by the minimum-count steps are rows. Removing rows keeps the id maps
//! (`Interactions::subset`), so the user and item universe survives cleaning.
//!
//! ```toml
//! normalize = "user_mean"
//! [dedup]
//! exact = true
//! window_seconds = 60
//! [bots]
//! max_events_per_minute = 60
//! burst_events = 100
//! burst_seconds = 60
//! min_ratings_for_variance = 20
//! [min_counts]
//! kcore = 5
//! [event_weights]
//! view = 1
//! click = 2
//! purchase = 5
//! [recency]
//! half_life_days = 30
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use kindred_core::interactions::NO_TIMESTAMP;
use kindred_core::{ConfigLocation, CsMatrix, Error, EventType, Interactions, Result};
use serde::{Deserialize, Serialize};

/// The whole pipeline; every `None` step is skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub dedup: Option<DedupConfig>,
    pub bots: Option<BotConfig>,
    pub min_counts: Option<MinCountConfig>,
    /// Event name (`view`, `click`, `purchase`, `rating`, or a custom name) to weight factor.
    pub event_weights: Option<BTreeMap<String, f32>>,
    pub recency: Option<RecencyConfig>,
    pub normalize: Normalization,
}

/// Duplicate removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Drop exact duplicates.
    pub exact: bool,
    /// Drop re-emissions of the same (user, item, event) within this many seconds.
    pub window_seconds: Option<i64>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            exact: true,
            window_seconds: None,
        }
    }
}

/// Bot and spam heuristics; each rule is off when its field is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    pub max_events_per_minute: Option<f64>,
    /// Length of the window over which the rate must be sustained.
    pub rate_window_seconds: i64,
    pub burst_events: Option<usize>,
    pub burst_seconds: i64,
    pub min_ratings_for_variance: Option<usize>,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            max_events_per_minute: None,
            rate_window_seconds: 300,
            burst_events: None,
            burst_seconds: 60,
            min_ratings_for_variance: None,
        }
    }
}

/// Minimum-count filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinCountConfig {
    pub min_user_interactions: Option<usize>,
    pub min_item_interactions: Option<usize>,
    pub kcore: Option<usize>,
}

/// Exponential recency decay of weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecencyConfig {
    pub half_life_days: f64,
}

/// How ratings are normalised per user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    #[default]
    None,
    UserMean,
    UserZscore,
}

impl PipelineConfig {
    /// Parses a TOML pipeline config; errors name the line, column and key.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::parse(text, "pipeline config")
    }

    /// Reads and parses a TOML pipeline config file; errors name the file, line, column and key.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path.display())
    }

    /// Parses and validates `text`; `origin` names it in errors.
    fn parse(text: &str, origin: impl std::fmt::Display) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| {
            ConfigLocation::at_offset(text, e.span().map(|s| s.start)).error(&origin, e.message())
        })?;
        cfg.validate()
            .map_err(|(key, message)| ConfigLocation::of_key(text, key).error(&origin, message))?;
        Ok(cfg)
    }

    /// True when no step is enabled.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Rejects values that parse but make no sense, naming the key.
    fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if let Some(d) = &self.dedup {
            if d.window_seconds.is_some_and(|w| w < 0) {
                return Err(("dedup.window_seconds", "must be >= 0".into()));
            }
        }
        if let Some(b) = &self.bots {
            if b.max_events_per_minute
                .is_some_and(|r| r.is_nan() || r <= 0.0)
            {
                return Err(("bots.max_events_per_minute", "must be > 0".into()));
            }
            if b.rate_window_seconds <= 0 {
                return Err(("bots.rate_window_seconds", "must be > 0".into()));
            }
            if b.burst_seconds <= 0 {
                return Err(("bots.burst_seconds", "must be > 0".into()));
            }
            if b.min_ratings_for_variance.is_some_and(|n| n < 2) {
                return Err(("bots.min_ratings_for_variance", "must be >= 2".into()));
            }
        }
        if let Some(w) = &self.event_weights {
            if let Some((name, _)) = w.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
                return Err((
                    "event_weights",
                    format!("weight of `{name}` must be finite and >= 0"),
                ));
            }
        }
        if let Some(r) = &self.recency {
            if !(r.half_life_days.is_finite() && r.half_life_days > 0.0) {
                return Err(("recency.half_life_days", "must be a positive number".into()));
            }
        }
        Ok(())
    }

    /// The probe used by the data-quality report when no pipeline is configured: near-dup window
    /// 60 s, 60 events/min over 5 minutes, zero variance over >= 20 ratings, 100 events in 60 s,
    /// 5-core.
    pub fn probe() -> Self {
        Self {
            dedup: Some(DedupConfig {
                exact: true,
                window_seconds: Some(60),
            }),
            bots: Some(BotConfig {
                max_events_per_minute: Some(60.0),
                rate_window_seconds: 300,
                burst_events: Some(100),
                burst_seconds: 60,
                min_ratings_for_variance: Some(20),
            }),
            min_counts: Some(MinCountConfig {
                min_user_interactions: None,
                min_item_interactions: None,
                kcore: Some(5),
            }),
            ..Self::default()
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepReport {
    pub name: String,
    pub rows_before: usize,
    pub rows_after: usize,
    /// Users with at least one row before and none after.
    pub users_removed: usize,
    /// Items with at least one row before and none after.
    pub items_removed: usize,
    /// Rows whose weight or rating was modified (weighting steps).
    pub changed: u64,
    pub detail: String,
}

/// The steps of one pipeline run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineReport {
    pub steps: Vec<StepReport>,
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:>10} {:>10} {:>9} {:>9} {:>9}  detail",
            "step", "rows in", "rows out", "-users", "-items", "changed"
        )?;
        for s in &self.steps {
            writeln!(
                f,
                "{:<24} {:>10} {:>10} {:>9} {:>9} {:>9}  {}",
                s.name,
                s.rows_before,
                s.rows_after,
                s.users_removed,
                s.items_removed,
                s.changed,
                s.detail
            )?;
        }
        Ok(())
    }
}

/// Runs every configured step in order.
pub fn run(cfg: &PipelineConfig, data: &Interactions) -> Result<(Interactions, PipelineReport)> {
    cfg.validate()
        .map_err(|(key, msg)| Error::spec("pipeline config", format!("key `{key}`"), msg))?;
    let mut report = PipelineReport::default();
    let mut current = data.clone();
    for step in removal_steps(cfg) {
        let (keep, detail) = step.keep_rows(&current);
        let next = match keep {
            Some(rows) => current.subset(&rows),
            None => current.clone(),
        };
        report
            .steps
            .push(removal_report(step.name(), &current, &next, detail));
        current = next;
    }
    for step in weighting_steps(cfg) {
        report.steps.push(step.apply(&mut current));
    }
    Ok((current, report))
}

/// What each rule would do if applied alone to `data` (for the quality report): every removal
/// rule and weighting step, each on the unmodified input.
pub fn dry_run(cfg: &PipelineConfig, data: &Interactions) -> PipelineReport {
    let mut report = PipelineReport::default();
    for step in removal_steps(cfg) {
        for rule in step.single_rules() {
            let (keep, detail) = rule.keep_rows(data);
            let after = match keep {
                Some(rows) => data.subset(&rows),
                None => data.clone(),
            };
            report
                .steps
                .push(removal_report(rule.name(), data, &after, detail));
        }
    }
    for step in weighting_steps(cfg) {
        let mut copy = data.clone();
        report.steps.push(step.apply(&mut copy));
    }
    report
}

fn removal_report(
    name: &str,
    before: &Interactions,
    after: &Interactions,
    detail: String,
) -> StepReport {
    let (users_before, items_before) = active_counts(before);
    let (users_after, items_after) = active_counts(after);
    StepReport {
        name: name.to_owned(),
        rows_before: before.len(),
        rows_after: after.len(),
        users_removed: users_before - users_after,
        items_removed: items_before - items_after,
        changed: 0,
        detail,
    }
}

/// Users and items with at least one row.
pub(crate) fn active_counts(data: &Interactions) -> (usize, usize) {
    let users = data.user_counts().iter().filter(|&&c| c > 0).count();
    let items = data.item_counts().iter().filter(|&&c| c > 0).count();
    (users, items)
}

enum RemovalStep<'a> {
    ExactDuplicates,
    NearDuplicates(i64),
    Bots(&'a BotConfig),
    MinUser(usize),
    MinItem(usize),
    KCore(usize),
}

fn removal_steps(cfg: &PipelineConfig) -> Vec<RemovalStep<'_>> {
    let mut steps = Vec::new();
    if let Some(d) = &cfg.dedup {
        if d.exact {
            steps.push(RemovalStep::ExactDuplicates);
        }
        if let Some(w) = d.window_seconds {
            steps.push(RemovalStep::NearDuplicates(w));
        }
    }
    if let Some(b) = &cfg.bots {
        steps.push(RemovalStep::Bots(b));
    }
    if let Some(m) = &cfg.min_counts {
        if let Some(n) = m.min_user_interactions {
            steps.push(RemovalStep::MinUser(n));
        }
        if let Some(n) = m.min_item_interactions {
            steps.push(RemovalStep::MinItem(n));
        }
        if let Some(k) = m.kcore {
            steps.push(RemovalStep::KCore(k));
        }
    }
    steps
}

/// Rules of the bot step, each alone (so a dry run can say which rule catches whom).
enum SingleRule<'a> {
    Step(&'a RemovalStep<'a>),
    BotRule(BotConfig, &'static str),
}

impl SingleRule<'_> {
    fn name(&self) -> &'static str {
        match self {
            SingleRule::Step(s) => s.name(),
            SingleRule::BotRule(_, name) => name,
        }
    }

    fn keep_rows(&self, data: &Interactions) -> (Option<Vec<u32>>, String) {
        match self {
            SingleRule::Step(s) => s.keep_rows(data),
            SingleRule::BotRule(b, _) => bot_step(b, data),
        }
    }
}

impl<'a> RemovalStep<'a> {
    fn name(&self) -> &'static str {
        match self {
            RemovalStep::ExactDuplicates => "exact_duplicates",
            RemovalStep::NearDuplicates(_) => "near_duplicates",
            RemovalStep::Bots(_) => "bots",
            RemovalStep::MinUser(_) => "min_user_interactions",
            RemovalStep::MinItem(_) => "min_item_interactions",
            RemovalStep::KCore(_) => "kcore",
        }
    }

    fn single_rules(&'a self) -> Vec<SingleRule<'a>> {
        let RemovalStep::Bots(b) = self else {
            return vec![SingleRule::Step(self)];
        };
        let off = BotConfig {
            max_events_per_minute: None,
            burst_events: None,
            min_ratings_for_variance: None,
            ..(*b).clone()
        };
        let mut rules = Vec::new();
        if b.max_events_per_minute.is_some() {
            let cfg = BotConfig {
                max_events_per_minute: b.max_events_per_minute,
                ..off.clone()
            };
            rules.push(SingleRule::BotRule(cfg, "bots_rate"));
        }
        if b.burst_events.is_some() {
            let cfg = BotConfig {
                burst_events: b.burst_events,
                ..off.clone()
            };
            rules.push(SingleRule::BotRule(cfg, "bots_burst"));
        }
        if b.min_ratings_for_variance.is_some() {
            let cfg = BotConfig {
                min_ratings_for_variance: b.min_ratings_for_variance,
                ..off
            };
            rules.push(SingleRule::BotRule(cfg, "bots_zero_variance"));
        }
        rules
    }

    /// The rows to keep (ascending), or `None` when nothing is removed, and a detail line.
    fn keep_rows(&self, data: &Interactions) -> (Option<Vec<u32>>, String) {
        match self {
            RemovalStep::ExactDuplicates => dedup_step(data, None),
            RemovalStep::NearDuplicates(w) => dedup_step(data, Some(*w)),
            RemovalStep::Bots(b) => bot_step(b, data),
            RemovalStep::MinUser(n) => {
                let counts = data.user_counts();
                let low = counts
                    .iter()
                    .filter(|&&c| c > 0 && (c as usize) < *n)
                    .count();
                let keep = filter_rows(data, |r| counts[data.users()[r] as usize] as usize >= *n);
                (keep, format!("{low} users with fewer than {n} rows"))
            }
            RemovalStep::MinItem(n) => {
                let counts = data.item_counts();
                let low = counts
                    .iter()
                    .filter(|&&c| c > 0 && (c as usize) < *n)
                    .count();
                let keep = filter_rows(data, |r| counts[data.items()[r] as usize] as usize >= *n);
                (keep, format!("{low} items with fewer than {n} rows"))
            }
            RemovalStep::KCore(k) => {
                let (alive, rounds) = kcore_alive(data, *k);
                let keep = filter_rows(data, |r| alive[r]);
                (
                    keep,
                    format!("{k}-core reached after peeling {rounds} users/items"),
                )
            }
        }
    }
}

fn filter_rows(data: &Interactions, keep: impl Fn(usize) -> bool) -> Option<Vec<u32>> {
    let rows: Vec<u32> = (0..data.len())
        .filter(|&r| keep(r))
        .map(|r| r as u32)
        .collect();
    (rows.len() < data.len()).then_some(rows)
}

/// Exact (`window == None`) or near duplicate removal over the by-user view: each user's rows
/// are grouped by item there, so only the small per-(user, item) groups need sorting.
fn dedup_step(data: &Interactions, window: Option<i64>) -> (Option<Vec<u32>>, String) {
    let by_user = data.by_user();
    let (events, times) = (data.events(), data.timestamps());
    let (ratings, weights) = (data.ratings(), data.weights());
    let mut drop = vec![false; data.len()];
    let mut dropped = 0usize;
    let mut group: Vec<u32> = Vec::new();
    for u in 0..by_user.n_rows() {
        let (items, rows) = (by_user.row(u), by_user.row_entries(u));
        let mut start = 0;
        while start < items.len() {
            let end = start
                + items[start..]
                    .iter()
                    .take_while(|&&i| i == items[start])
                    .count();
            if end - start > 1 {
                group.clear();
                group.extend_from_slice(&rows[start..end]);
                group.sort_unstable_by_key(|&r| (events[r as usize], times[r as usize], r));
                dropped += match window {
                    None => mark_exact(&group, events, times, ratings, weights, &mut drop),
                    Some(w) => mark_near(&group, events, times, w, &mut drop),
                };
            }
            start = end;
        }
    }
    let keep = filter_rows(data, |r| !drop[r]);
    let detail = match window {
        None => format!("{dropped} exact duplicate rows"),
        Some(w) => format!("{dropped} repeats of (user, item, event) within {w} s"),
    };
    (keep, detail)
}

fn mark_exact(
    group: &[u32],
    events: &[EventType],
    times: &[i64],
    ratings: &[f32],
    weights: &[f32],
    drop: &mut [bool],
) -> usize {
    let key = |r: u32| {
        let r = r as usize;
        (
            events[r],
            times[r],
            ratings[r].to_bits(),
            weights[r].to_bits(),
        )
    };
    let mut dropped = 0;
    // Equal keys need not be adjacent after sorting by (event, time, row) when values differ,
    // so compare against every earlier row of the same (event, time) run.
    let mut run_start = 0;
    for j in 1..group.len() {
        let (ej, tj) = (events[group[j] as usize], times[group[j] as usize]);
        while (
            events[group[run_start] as usize],
            times[group[run_start] as usize],
        ) != (ej, tj)
        {
            run_start += 1;
        }
        if group[run_start..j]
            .iter()
            .any(|&earlier| !drop[earlier as usize] && key(earlier) == key(group[j]))
        {
            drop[group[j] as usize] = true;
            dropped += 1;
        }
    }
    dropped
}

fn mark_near(
    group: &[u32],
    events: &[EventType],
    times: &[i64],
    window: i64,
    drop: &mut [bool],
) -> usize {
    let mut dropped = 0;
    let mut kept: Option<(EventType, i64)> = None;
    for &r in group {
        let (e, t) = (events[r as usize], times[r as usize]);
        let is_repeat = t != NO_TIMESTAMP
            && kept.is_some_and(|(ke, kt)| ke == e && kt != NO_TIMESTAMP && t - kt <= window);
        if is_repeat {
            drop[r as usize] = true;
            dropped += 1;
        } else {
            kept = Some((e, t));
        }
    }
    dropped
}

/// Largest number of sorted `times` falling in any half-open window `[t, t + length)`.
pub(crate) fn max_in_window(times: &[i64], length: i64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= length {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Users flagged by the bot rules, as a per-user mask, with counts per rule.
fn flag_bots(cfg: &BotConfig, data: &Interactions, by_user: &CsMatrix) -> (Vec<bool>, [usize; 3]) {
    let (times, ratings) = (data.timestamps(), data.ratings());
    let mut flagged = vec![false; by_user.n_rows()];
    let mut per_rule = [0usize; 3];
    let mut user_times: Vec<i64> = Vec::new();
    let rate_limit = cfg
        .max_events_per_minute
        .map(|epm| (epm * cfg.rate_window_seconds as f64 / 60.0).floor() as usize);
    for (u, flag) in flagged.iter_mut().enumerate() {
        let rows = by_user.row_entries(u);
        if rows.is_empty() {
            continue;
        }
        if rate_limit.is_some() || cfg.burst_events.is_some() {
            user_times.clear();
            user_times.extend(
                rows.iter()
                    .map(|&r| times[r as usize])
                    .filter(|&t| t != NO_TIMESTAMP),
            );
            user_times.sort_unstable();
        }
        if let Some(limit) = rate_limit {
            if max_in_window(&user_times, cfg.rate_window_seconds) > limit {
                *flag = true;
                per_rule[0] += 1;
            }
        }
        if let Some(limit) = cfg.burst_events {
            if max_in_window(&user_times, cfg.burst_seconds) > limit {
                *flag = true;
                per_rule[1] += 1;
            }
        }
        if let Some(min) = cfg.min_ratings_for_variance {
            let mut rated = rows
                .iter()
                .map(|&r| ratings[r as usize])
                .filter(|r| !r.is_nan());
            if let Some(first) = rated.next() {
                let mut n = 1;
                let mut constant = true;
                for r in rated {
                    n += 1;
                    constant &= r == first;
                }
                if constant && n >= min {
                    *flag = true;
                    per_rule[2] += 1;
                }
            }
        }
    }
    (flagged, per_rule)
}

fn bot_step(cfg: &BotConfig, data: &Interactions) -> (Option<Vec<u32>>, String) {
    let by_user = data.by_user();
    let (flagged, [rate, burst, flat]) = flag_bots(cfg, data, &by_user);
    let n = flagged.iter().filter(|&&f| f).count();
    let keep = filter_rows(data, |r| !flagged[data.users()[r] as usize]);
    (
        keep,
        format!("{n} users flagged (rate {rate}, burst {burst}, zero variance {flat})"),
    )
}

/// Iterative k-core by peeling with a work list, O(rows): returns the surviving rows as a mask
/// and how many users/items were peeled.
fn kcore_alive(data: &Interactions, k: usize) -> (Vec<bool>, usize) {
    let mut alive = vec![true; data.len()];
    if k <= 1 {
        return (alive, 0);
    }
    let (by_user, by_item) = (data.by_user(), data.by_item());
    let mut user_count: Vec<usize> = (0..by_user.n_rows()).map(|u| by_user.row_len(u)).collect();
    let mut item_count: Vec<usize> = (0..by_item.n_rows()).map(|i| by_item.row_len(i)).collect();
    // Entities are encoded as (is_item, index) on one stack; `queued` avoids pushing twice.
    let mut user_queued: Vec<bool> = user_count.iter().map(|&c| c > 0 && c < k).collect();
    let mut item_queued: Vec<bool> = item_count.iter().map(|&c| c > 0 && c < k).collect();
    let mut stack: Vec<(bool, u32)> = Vec::new();
    stack.extend(
        (0..user_count.len())
            .filter(|&u| user_queued[u])
            .map(|u| (false, u as u32)),
    );
    stack.extend(
        (0..item_count.len())
            .filter(|&i| item_queued[i])
            .map(|i| (true, i as u32)),
    );
    let mut peeled = 0;
    let (users, items) = (data.users(), data.items());
    while let Some((is_item, idx)) = stack.pop() {
        peeled += 1;
        let rows = if is_item {
            by_item.row_entries(idx as usize)
        } else {
            by_user.row_entries(idx as usize)
        };
        for &r in rows {
            if !alive[r as usize] {
                continue;
            }
            alive[r as usize] = false;
            if is_item {
                let u = users[r as usize] as usize;
                user_count[u] -= 1;
                if !user_queued[u] && user_count[u] < k {
                    user_queued[u] = true;
                    stack.push((false, u as u32));
                }
            } else {
                let i = items[r as usize] as usize;
                item_count[i] -= 1;
                if !item_queued[i] && item_count[i] < k {
                    item_queued[i] = true;
                    stack.push((true, i as u32));
                }
            }
        }
    }
    (alive, peeled)
}

enum WeightingStep<'a> {
    EventWeights(&'a BTreeMap<String, f32>),
    Recency(f64),
    Normalize(Normalization),
}

fn weighting_steps(cfg: &PipelineConfig) -> Vec<WeightingStep<'_>> {
    let mut steps = Vec::new();
    if let Some(w) = &cfg.event_weights {
        steps.push(WeightingStep::EventWeights(w));
    }
    if let Some(r) = &cfg.recency {
        steps.push(WeightingStep::Recency(r.half_life_days));
    }
    if cfg.normalize != Normalization::None {
        steps.push(WeightingStep::Normalize(cfg.normalize));
    }
    steps
}

impl WeightingStep<'_> {
    fn apply(&self, data: &mut Interactions) -> StepReport {
        let (name, changed, detail) = match self {
            WeightingStep::EventWeights(map) => {
                let (changed, detail) = apply_event_weights(map, data);
                ("event_weights", changed, detail)
            }
            WeightingStep::Recency(half_life_days) => {
                let (changed, detail) = apply_recency(*half_life_days, data);
                ("recency", changed, detail)
            }
            WeightingStep::Normalize(mode) => {
                let (changed, detail) = apply_normalization(*mode, data);
                ("normalize", changed, detail)
            }
        };
        StepReport {
            name: name.to_owned(),
            rows_before: data.len(),
            rows_after: data.len(),
            changed,
            detail,
            ..StepReport::default()
        }
    }
}

fn apply_event_weights(map: &BTreeMap<String, f32>, data: &mut Interactions) -> (u64, String) {
    let custom = data.custom_event_names().to_vec();
    let mut factors: Vec<(EventType, f32)> = Vec::new();
    let mut unmatched = Vec::new();
    for (name, &w) in map {
        let event = EventType::builtin(name).or_else(|| {
            custom
                .iter()
                .position(|c| c == name.trim())
                .map(|i| EventType::Custom(i as u16))
        });
        match event {
            Some(e) => factors.push((e, w)),
            None => unmatched.push(name.as_str()),
        }
    }
    let events = data.events().to_vec();
    let mut changed = 0;
    for (w, e) in data.weights_mut().iter_mut().zip(&events) {
        if let Some(&(_, f)) = factors.iter().find(|(fe, _)| fe == e) {
            if f != 1.0 {
                *w *= f;
                changed += 1;
            }
        }
    }
    let mut detail = format!("{} event types weighted", factors.len());
    if !unmatched.is_empty() {
        detail.push_str(&format!(
            "; unknown event names ignored: {}",
            unmatched.join(", ")
        ));
    }
    (changed, detail)
}

fn apply_recency(half_life_days: f64, data: &mut Interactions) -> (u64, String) {
    let times = data.timestamps().to_vec();
    let Some(t_ref) = times.iter().copied().filter(|&t| t != NO_TIMESTAMP).max() else {
        return (0, "no timestamps: weights unchanged".to_owned());
    };
    let half_life_seconds = half_life_days * 86_400.0;
    let mut changed = 0;
    for (w, &t) in data.weights_mut().iter_mut().zip(&times) {
        if t != NO_TIMESTAMP && t < t_ref {
            *w = (*w as f64 * 0.5f64.powf((t_ref - t) as f64 / half_life_seconds)) as f32;
            changed += 1;
        }
    }
    (
        changed,
        format!("half-life {half_life_days} days, reference time {t_ref}"),
    )
}

fn apply_normalization(mode: Normalization, data: &mut Interactions) -> (u64, String) {
    let n_users = data.n_users();
    let users = data.users().to_vec();
    let mut sum = vec![0f64; n_users];
    let mut sum_sq = vec![0f64; n_users];
    let mut count = vec![0u32; n_users];
    for (&u, &r) in users.iter().zip(data.ratings()) {
        if !r.is_nan() {
            let u = u as usize;
            sum[u] += r as f64;
            sum_sq[u] += (r as f64) * (r as f64);
            count[u] += 1;
        }
    }
    let mut changed = 0;
    for (&u, r) in users.iter().zip(data.ratings_mut()) {
        if r.is_nan() {
            continue;
        }
        let u = u as usize;
        let n = count[u] as f64;
        let mean = sum[u] / n;
        let centred = *r as f64 - mean;
        *r = match mode {
            Normalization::None => continue,
            Normalization::UserMean => centred as f32,
            Normalization::UserZscore => {
                let std = (sum_sq[u] / n - mean * mean).max(0.0).sqrt();
                if std > 1e-9 {
                    (centred / std) as f32
                } else {
                    0.0
                }
            }
        };
        changed += 1;
    }
    let name = match mode {
        Normalization::None => "none",
        Normalization::UserMean => "user_mean",
        Normalization::UserZscore => "user_zscore",
    };
    (
        changed,
        format!(
            "{name} over {} users with ratings",
            count.iter().filter(|&&c| c > 0).count()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::{Interaction, InteractionsBuilder};
    use proptest::prelude::*;

    fn log(rows: &[(&str, &str, f32, i64)]) -> Interactions {
        let mut b = InteractionsBuilder::new();
        for &(u, i, r, t) in rows {
            b.push(Interaction::rating(u, i, r, Some(t)));
        }
        b.build()
    }

    fn only(cfg: PipelineConfig, data: &Interactions) -> (Interactions, PipelineReport) {
        run(&cfg, data).unwrap()
    }

    #[test]
    fn exact_and_near_duplicates() {
        // Row 1 repeats row 0 exactly; row 3 repeats row 2 30 s later (near); row 4 is 200 s
        // after row 2 (kept); row 5 is another user.
        let data = log(&[
            ("u1", "a", 4.0, 100),
            ("u1", "a", 4.0, 100),
            ("u1", "b", 3.0, 1000),
            ("u1", "b", 5.0, 1030),
            ("u1", "b", 3.0, 1200),
            ("u2", "a", 4.0, 100),
        ]);
        let cfg = PipelineConfig {
            dedup: Some(DedupConfig {
                exact: true,
                window_seconds: Some(60),
            }),
            ..Default::default()
        };
        let (out, report) = only(cfg, &data);
        assert_eq!(out.len(), 4);
        assert_eq!(out.timestamps(), &[100, 1000, 1200, 100]);
        assert_eq!(report.steps[0].name, "exact_duplicates");
        assert_eq!(
            (report.steps[0].rows_before, report.steps[0].rows_after),
            (6, 5)
        );
        assert_eq!(
            (report.steps[1].rows_before, report.steps[1].rows_after),
            (5, 4)
        );
        assert_eq!(report.steps[1].users_removed, 0);
        // A different value at the same time is not an exact duplicate.
        let data = log(&[
            ("u1", "a", 4.0, 100),
            ("u1", "a", 3.0, 100),
            ("u1", "a", 4.0, 100),
        ]);
        let (rows, _) = dedup_step(&data, None);
        assert_eq!(rows, Some(vec![0, 1]));
    }

    #[test]
    fn bot_rules() {
        let mut rows = Vec::new();
        let items: Vec<String> = (0..200).map(|i| format!("i{i}")).collect();
        // burster: 150 events one every 0.4 s.
        for (k, item) in items.iter().take(150).enumerate() {
            rows.push((
                "burst",
                item.as_str(),
                (k % 5 + 1) as f32,
                10_000 + (k as i64 * 2) / 5,
            ));
        }
        // flat rater: 25 fives over days.
        for (k, item) in items.iter().take(25).enumerate() {
            rows.push(("flat", item.as_str(), 5.0, k as i64 * 86_400));
        }
        // normal: 30 varied ratings, one per hour.
        for (k, item) in items.iter().take(30).enumerate() {
            rows.push(("normal", item.as_str(), (k % 3 + 2) as f32, k as i64 * 3600));
        }
        let data = log(&rows);
        let cfg = PipelineConfig {
            bots: PipelineConfig::probe().bots,
            ..Default::default()
        };
        let (out, report) = only(cfg.clone(), &data);
        assert_eq!(out.len(), 30);
        assert_eq!(report.steps[0].users_removed, 2);
        let dry = dry_run(&cfg, &data);
        let names: Vec<&str> = dry.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bots_rate", "bots_burst", "bots_zero_variance"]);
        // 150 events in 60 s: not > 300 in 5 min, but > 100 in 60 s.
        assert_eq!(dry.steps[0].users_removed, 0);
        assert_eq!(dry.steps[1].users_removed, 1);
        assert_eq!(dry.steps[2].users_removed, 1);
        // [10, 70) holds 10, 59, 60, 61; 0 and 60 never share a 60 s window.
        assert_eq!(max_in_window(&[0, 10, 59, 60, 61, 200], 60), 4);
    }

    #[test]
    fn kcore_cascades() {
        let data = log(&[
            ("a", "x", 1.0, 0),
            ("a", "z", 1.0, 0),
            ("b", "x", 1.0, 0),
            ("b", "y", 1.0, 0),
            ("c", "y", 1.0, 0),
            ("d", "z", 1.0, 0),
            ("d", "w", 1.0, 0),
            ("e", "z", 1.0, 0),
            ("e", "w", 1.0, 0),
        ]);
        // 2-core. Counts: users a2 b2 c1 d2 e2; items x2 y2 z3 w2. Peel c -> y1 -> peel y ->
        // b1 -> peel b -> x1 -> peel x -> a1 -> peel a -> z2 stays. Left: d, e on z, w.
        let cfg = PipelineConfig {
            min_counts: Some(MinCountConfig {
                kcore: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (out, report) = only(cfg, &data);
        assert_eq!(out.len(), 4);
        let users: Vec<&str> = out
            .users()
            .iter()
            .map(|&u| out.user_ids().external(u))
            .collect();
        assert_eq!(users, ["d", "d", "e", "e"]);
        assert_eq!(
            (report.steps[0].users_removed, report.steps[0].items_removed),
            (3, 2)
        );
        assert_eq!(out.n_items(), 4, "the catalog survives");
    }

    #[test]
    fn min_counts_single_pass() {
        let data = log(&[("a", "x", 1.0, 0), ("a", "y", 1.0, 0), ("b", "x", 1.0, 0)]);
        let cfg = PipelineConfig {
            min_counts: Some(MinCountConfig {
                min_user_interactions: Some(2),
                min_item_interactions: Some(2),
                kcore: None,
            }),
            ..Default::default()
        };
        let (out, report) = only(cfg, &data);
        // User pass drops b; item pass then drops x and y (one row each) -> empty.
        assert_eq!(report.steps[0].rows_after, 2);
        assert_eq!(report.steps[1].rows_after, 0);
        assert!(out.is_empty());
    }

    #[test]
    fn event_weights_and_recency_decay() {
        let mut b = InteractionsBuilder::new();
        let day = 86_400;
        b.push(Interaction::implicit(
            "u",
            "a",
            EventType::View,
            Some(10 * day),
        ));
        b.push(Interaction::implicit(
            "u",
            "b",
            EventType::Click,
            Some(9 * day),
        ));
        b.push(Interaction::implicit(
            "u",
            "c",
            EventType::Purchase,
            Some(7 * day),
        ));
        b.push(Interaction::implicit("u", "d", EventType::Purchase, None));
        let data = b.build();
        let text = "[event_weights]\nview = 1\nclick = 2\npurchase = 5\nwishlist = 3\n[recency]\nhalf_life_days = 2\n";
        let cfg = PipelineConfig::from_toml_str(text).unwrap();
        let (out, report) = run(&cfg, &data).unwrap();
        let expected = [1.0, 2.0 * 0.5f64.sqrt(), 5.0 * 0.5f64.powf(1.5), 5.0];
        for (w, e) in out.weights().iter().zip(expected) {
            assert!((*w as f64 - e).abs() < 1e-6, "{w} vs {e}");
        }
        assert_eq!(report.steps[0].changed, 3);
        assert!(report.steps[0].detail.contains("wishlist"));
        assert_eq!(report.steps[1].changed, 2);
    }

    #[test]
    fn rating_normalisation_by_hand() {
        // u1: 1, 3, 5 -> mean 3, population std sqrt(8/3); u2: 4, 4 -> std 0.
        let data = log(&[
            ("u1", "a", 1.0, 0),
            ("u2", "a", 4.0, 0),
            ("u1", "b", 3.0, 0),
            ("u1", "c", 5.0, 0),
            ("u2", "b", 4.0, 0),
        ]);
        let mean = only(
            PipelineConfig {
                normalize: Normalization::UserMean,
                ..Default::default()
            },
            &data,
        )
        .0;
        assert_eq!(mean.ratings(), &[-2.0, 0.0, 0.0, 2.0, 0.0]);
        let z = only(
            PipelineConfig {
                normalize: Normalization::UserZscore,
                ..Default::default()
            },
            &data,
        )
        .0;
        let s = (8.0f64 / 3.0).sqrt();
        let expected = [-2.0 / s, 0.0, 0.0, 2.0 / s, 0.0];
        for (r, e) in z.ratings().iter().zip(expected) {
            assert!((*r as f64 - e).abs() < 1e-6);
        }
    }

    #[test]
    fn toml_parsing_and_errors() {
        let text = r#"
normalize = "user_zscore"
[dedup]
window_seconds = 30
[bots]
max_events_per_minute = 60
burst_events = 100
[min_counts]
kcore = 5
[recency]
half_life_days = 14.5
"#;
        let cfg = PipelineConfig::from_toml_str(text).unwrap();
        assert_eq!(cfg.normalize, Normalization::UserZscore);
        assert!(cfg.dedup.as_ref().unwrap().exact);
        assert_eq!(cfg.bots.as_ref().unwrap().burst_seconds, 60);
        assert_eq!(cfg.min_counts.as_ref().unwrap().kcore, Some(5));
        assert!(PipelineConfig::from_toml_str("").unwrap().is_empty());

        let err = PipelineConfig::from_toml_str("[min_counts]\nkcor = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kcor") && err.contains("pipeline config:2:"),
            "{err}"
        );
        let err = PipelineConfig::from_toml_str("[recency]\nhalf_life_days = -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("half_life_days"), "{err}");

        let dir = std::env::temp_dir().join(format!("kindred-prep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pipeline.toml");
        std::fs::write(&path, "[dedup]\nwindow_seconds = \"soon\"\n").unwrap();
        let err = PipelineConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("pipeline.toml:2") && err.contains("window_seconds"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(PipelineConfig::from_file(dir.join("missing.toml")).is_err());
    }

    proptest! {
        #[test]
        fn kcore_invariant_and_rows_never_grow(
            rows in proptest::collection::vec((0u8..8, 0u8..8, 1u8..6, 0i64..500), 0..80),
            k in 1usize..5,
        ) {
            let names: Vec<(String, String)> = rows.iter().map(|r| (format!("u{}", r.0), format!("i{}", r.1))).collect();
            let mut b = InteractionsBuilder::new();
            for (r, (u, i)) in rows.iter().zip(&names) {
                b.push(Interaction::rating(u, i, r.2 as f32, Some(r.3)));
            }
            let data = b.build();
            let mut cfg = PipelineConfig::probe();
            cfg.min_counts = Some(MinCountConfig { kcore: Some(k), ..Default::default() });
            let (out, report) = run(&cfg, &data).unwrap();
            for (u, &c) in out.user_counts().iter().enumerate() {
                prop_assert!(c == 0 || c as usize >= k, "user {u} has {c}");
            }
            for &c in &out.item_counts() {
                prop_assert!(c == 0 || c as usize >= k);
            }
            for s in &report.steps {
                prop_assert!(s.rows_after <= s.rows_before);
            }
        }
    }
}
