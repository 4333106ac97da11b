//! Online metrics of served lists, per (model version, variant): lists and items served, the
//! share of items placed by fallbacks, catalog coverage, intra-list diversity, score and latency
//! histograms, and feedback attributed to the list that showed the item (CTR, conversion).
//!
//! On the request path every call takes one shard lock (users hash to 16 shards, so concurrent
//! requests rarely meet) and does work proportional to the list length; reports merge the shards.
//!
//! Attribution: each user's last few lists (key, item hashes, time) are remembered in a bounded
//! per-shard LRU. A feedback event on an item that one of them showed at most
//! `attribution_seconds` earlier (server clock at arrival) counts for the newest such list: a
//! click type once per (list, item), a conversion type once per list.
//!
//! Diversity is `1 - share of item pairs that share at least one category` (the store's
//! `categories` item column), averaged over lists with at least two categorised items.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kindred_core::features::ColumnData;
use kindred_core::{EventType, FeatureTable};
use kindred_store::Feedback;
use serde::Serialize;

use crate::config::MonitoringConfig;
use crate::exposition::LATENCY_BUCKETS;
use crate::served_item::ServedItem;
use crate::sync::lock;

const SHARDS: usize = 16;
/// Lists remembered per user for attribution.
const LISTS_PER_USER: usize = 8;
/// Stale touch records a shard tolerates beyond twice its users before compacting them.
const ORDER_SLACK: usize = 64;
/// Score histogram upper bounds: model scores have no common scale (dot products, ratings,
/// probabilities), so the buckets are roughly logarithmic on both sides of zero.
pub const SCORE_BUCKETS: [f64; 13] = [
    -10.0, -1.0, -0.1, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 100.0,
];

/// What a list's metrics are kept under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OnlineKey {
    /// The live version that produced the list (`none` when no version is live).
    pub model_version: String,
    /// `experiment/variant`, or None outside experiments.
    pub variant: Option<String>,
}

/// One served list, as the list routes hand it in.
pub struct OnlineList<'a> {
    pub user: Option<&'a str>,
    pub model_version: Option<&'a str>,
    pub variant: Option<&'a str>,
    pub items: &'a [ServedItem],
    /// From the request's arrival to the list being ready.
    pub latency: Duration,
    /// The snapshot's item features (for diversity), when it has any.
    pub item_features: Option<&'a FeatureTable>,
}

#[derive(Default)]
struct KeyStats {
    lists: u64,
    items: u64,
    fallback_items: u64,
    distinct: HashSet<u64>,
    diversity_sum: f64,
    diversity_lists: u64,
    score_counts: [u64; SCORE_BUCKETS.len() + 1],
    score_sum: f64,
    latency_counts: [u64; LATENCY_BUCKETS.len() + 1],
    latency_sum: f64,
    clicks: u64,
    conversions: u64,
}

struct RecentList {
    key: Arc<OnlineKey>,
    items: Vec<u64>,
    clicked: Vec<u64>,
    converted: bool,
    at: i64,
}

#[derive(Default)]
struct Shard {
    keys: HashMap<Arc<OnlineKey>, KeyStats>,
    /// user -> (last touch tick, newest list last).
    users: HashMap<String, (u64, VecDeque<RecentList>)>,
    /// (user, tick) in touch order; entries whose tick is stale are skipped on eviction.
    order: VecDeque<(String, u64)>,
    tick: u64,
    /// Item hashes held in `users`' recent lists (what their memory grows with: a list of
    /// 1,000 items is 8 KB).
    held_items: usize,
}

/// How an event type name is matched: built-in kinds by kind (so `buy` matches `purchase`),
/// custom names exactly.
#[derive(Debug, Clone, PartialEq)]
enum TypeMatch {
    Builtin(EventType),
    Custom(String),
}

impl TypeMatch {
    fn of(name: &str) -> Self {
        match EventType::builtin(name) {
            Some(kind) => Self::Builtin(kind),
            None => Self::Custom(name.trim().to_owned()),
        }
    }
}

/// The online metrics of every key.
pub struct OnlineMetrics {
    enabled: bool,
    shards: Vec<Mutex<Shard>>,
    anonymous: AtomicUsize,
    attribution_seconds: i64,
    click_types: Vec<TypeMatch>,
    conversion_types: Vec<TypeMatch>,
    users_per_shard: usize,
    items_per_shard: usize,
    distinct_per_shard: usize,
}

/// One key's metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineReport {
    #[serde(flatten)]
    pub key: OnlineKey,
    pub lists: u64,
    pub items: u64,
    /// Items whose source is not the model (`model:` / `fold-in:`) over items served.
    pub fallback_share: Option<f64>,
    /// Distinct items shown (capped by `coverage_items`).
    pub distinct_items: u64,
    /// Distinct items shown / catalog size.
    pub coverage: Option<f64>,
    /// Mean of `1 - share of same-category pairs` over lists with two categorised items.
    pub diversity: Option<f64>,
    pub diversity_lists: u64,
    pub clicks: u64,
    pub conversions: u64,
    /// Attributed clicks / items served.
    pub ctr: Option<f64>,
    /// Lists with an attributed conversion / lists served.
    pub conversion_rate: Option<f64>,
    pub score_mean: Option<f64>,
    /// Count per bucket of [`SCORE_BUCKETS`], then the overflow bucket.
    pub score_counts: Vec<u64>,
    /// Count per bucket of [`LATENCY_BUCKETS`] (seconds), then the overflow bucket.
    pub latency_counts: Vec<u64>,
    pub latency_sum_seconds: f64,
    /// Upper bound of the latency bucket holding the 50th / 99th percentile, ms (None past
    /// the last bound).
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds
        .iter()
        .position(|&b| value <= b)
        .unwrap_or(bounds.len())
}

/// True for sources the model produced; everything else was placed by a fallback.
pub fn is_model_source(source: &str) -> bool {
    source.starts_with("model") || source.starts_with("fold-in")
}

/// `1 - share of item pairs sharing a category` over the items that have categories; None with
/// fewer than two such items.
pub fn intra_list_diversity(categories: &[&[u32]]) -> Option<f64> {
    let n = categories.len();
    if n < 2 {
        return None;
    }
    let mut same = 0u64;
    for i in 0..n {
        for j in i + 1..n {
            // Both sorted (FeatureTable keeps category indices sorted and deduplicated).
            let (a, b) = (categories[i], categories[j]);
            let (mut x, mut y) = (0, 0);
            while x < a.len() && y < b.len() {
                match a[x].cmp(&b[y]) {
                    std::cmp::Ordering::Less => x += 1,
                    std::cmp::Ordering::Greater => y += 1,
                    std::cmp::Ordering::Equal => {
                        same += 1;
                        break;
                    }
                }
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    Some(1.0 - same as f64 / pairs)
}

/// Upper bound (ms) of the bucket holding quantile `q` of a latency histogram.
fn latency_quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let target = (q * total as f64).ceil() as u64;
    let mut cumulative = 0;
    for (i, n) in counts.iter().enumerate() {
        cumulative += n;
        if cumulative >= target {
            return LATENCY_BUCKETS.get(i).map(|s| s * 1000.0);
        }
    }
    None
}

impl OnlineMetrics {
    pub fn new(config: &MonitoringConfig) -> Self {
        Self {
            enabled: config.enabled,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            anonymous: AtomicUsize::new(0),
            attribution_seconds: config.attribution_seconds,
            click_types: config
                .click_types
                .iter()
                .map(|t| TypeMatch::of(t))
                .collect(),
            conversion_types: config
                .conversion_types
                .iter()
                .map(|t| TypeMatch::of(t))
                .collect(),
            users_per_shard: config.attribution_users.div_ceil(SHARDS).max(1),
            items_per_shard: config.attribution_items.div_ceil(SHARDS).max(1),
            distinct_per_shard: config.coverage_items.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(&self, user: Option<&str>) -> &Mutex<Shard> {
        let index = match user {
            Some(u) => hash_str(u) as usize % SHARDS,
            None => self.anonymous.fetch_add(1, Ordering::Relaxed) % SHARDS,
        };
        &self.shards[index]
    }

    /// Records a served list (server clock).
    pub fn record_list(&self, list: OnlineList<'_>) {
        self.record_list_at(list, crate::clock::unix_now());
    }

    /// Records a served list at `now` (Unix seconds).
    pub fn record_list_at(&self, list: OnlineList<'_>, now: i64) {
        if !self.enabled {
            return;
        }
        // Work outside the lock: hashes and diversity.
        let hashes: Vec<u64> = list.items.iter().map(|i| hash_str(&i.item)).collect();
        let fallback = list
            .items
            .iter()
            .filter(|i| !is_model_source(&i.source))
            .count() as u64;
        let diversity = list.item_features.and_then(|table| {
            let ColumnData::Categorical { values, .. } = &table.column("categories")?.data else {
                return None;
            };
            let categorised: Vec<&[u32]> = list
                .items
                .iter()
                .filter_map(|i| table.ids().get(&i.item))
                .map(|row| values[row as usize].as_slice())
                .filter(|c| !c.is_empty())
                .collect();
            intra_list_diversity(&categorised)
        });
        let key = OnlineKey {
            model_version: list.model_version.unwrap_or("none").to_owned(),
            variant: list.variant.map(str::to_owned),
        };
        let seconds = list.latency.as_secs_f64();
        let mut shard = lock(self.shard_of(list.user));
        let key = match shard.keys.get_key_value(&key) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::new(key),
        };
        let stats = shard.keys.entry(Arc::clone(&key)).or_default();
        stats.lists += 1;
        stats.items += list.items.len() as u64;
        stats.fallback_items += fallback;
        for h in &hashes {
            if stats.distinct.len() < self.distinct_per_shard {
                stats.distinct.insert(*h);
            }
        }
        if let Some(d) = diversity {
            stats.diversity_sum += d;
            stats.diversity_lists += 1;
        }
        for score in list.items.iter().filter_map(|i| i.score) {
            let score = f64::from(score);
            stats.score_counts[bucket(&SCORE_BUCKETS, score)] += 1;
            stats.score_sum += score;
        }
        stats.latency_counts[bucket(&LATENCY_BUCKETS, seconds)] += 1;
        stats.latency_sum += seconds;
        let Some(user) = list.user else { return };
        if hashes.is_empty() {
            return;
        }
        shard.tick += 1;
        let tick = shard.tick;
        shard.held_items += hashes.len();
        let recent = RecentList {
            key,
            items: hashes,
            clicked: Vec::new(),
            converted: false,
            at: now,
        };
        match shard.users.get_mut(user) {
            Some((touched, lists)) => {
                *touched = tick;
                lists.push_back(recent);
                let dropped = if lists.len() > LISTS_PER_USER {
                    lists.pop_front().map_or(0, |l| l.items.len())
                } else {
                    0
                };
                shard.held_items -= dropped;
            }
            None => {
                shard
                    .users
                    .insert(user.to_owned(), (tick, VecDeque::from([recent])));
            }
        }
        shard.order.push_back((user.to_owned(), tick));
        self.evict(&mut shard);
    }

    /// Drops least recently served users beyond the shard's share of `attribution_users`, or
    /// while their lists hold more than its share of `attribution_items`.
    fn evict(&self, shard: &mut Shard) {
        // The user just served is the most recent and stays, even when their one list alone
        // is larger than the share.
        while shard.users.len() > self.users_per_shard
            || (shard.held_items > self.items_per_shard && shard.users.len() > 1)
        {
            let Some((user, tick)) = shard.order.pop_front() else {
                break;
            };
            if shard.users.get(&user).is_some_and(|(t, _)| *t == tick) {
                if let Some((_, lists)) = shard.users.remove(&user) {
                    shard.held_items -= lists.iter().map(|l| l.items.len()).sum::<usize>();
                }
            }
        }
        // Stale touch records pile up for users served often. Compacting against the users
        // held, not the configured maximum, keeps the queue within twice what it must hold;
        // the slack makes the compaction cost amortised O(1) per list.
        if shard.order.len() > 2 * shard.users.len() + ORDER_SLACK {
            let users = &shard.users;
            shard
                .order
                .retain(|(u, t)| users.get(u).is_some_and(|(touched, _)| touched == t));
            let held = shard.order.len();
            if shard.order.capacity() > 4 * (held + ORDER_SLACK) {
                shard.order.shrink_to(2 * (held + ORDER_SLACK));
            }
        }
    }

    /// Forgets everything remembered about `user` (an erased user): their recent lists and their
    /// touch records. The per-key counts they contributed to stay: they name no one.
    pub fn forget_user(&self, user: &str) {
        let mut shard = lock(self.shard_of(Some(user)));
        if let Some((_, lists)) = shard.users.remove(user) {
            shard.held_items -= lists.iter().map(|l| l.items.len()).sum::<usize>();
        }
        shard.order.retain(|(u, _)| u != user);
    }

    /// Attributes stored feedback (server clock).
    pub fn record_feedback(&self, events: &[Feedback]) {
        self.record_feedback_at(events, crate::clock::unix_now());
    }

    /// Attributes feedback arriving at `now` (Unix seconds) to the lists that showed the items.
    pub fn record_feedback_at(&self, events: &[Feedback], now: i64) {
        if !self.enabled {
            return;
        }
        for event in events {
            let kind = TypeMatch::of(&event.event_type);
            let click = self.click_types.contains(&kind);
            let conversion = self.conversion_types.contains(&kind);
            if !click && !conversion {
                continue;
            }
            let item = hash_str(&event.item);
            let mut guard = lock(self.shard_of(Some(&event.user)));
            let shard = &mut *guard;
            let Some((_, lists)) = shard.users.get_mut(&event.user) else {
                continue;
            };
            let Some(list) = lists.iter_mut().rev().find(|l| {
                l.at <= now && now - l.at <= self.attribution_seconds && l.items.contains(&item)
            }) else {
                continue;
            };
            let stats = shard.keys.entry(Arc::clone(&list.key)).or_default();
            if click && !list.clicked.contains(&item) {
                list.clicked.push(item);
                stats.clicks += 1;
            }
            if conversion && !list.converted {
                list.converted = true;
                stats.conversions += 1;
            }
        }
    }

    /// Every key's metrics, sorted by key; coverage against `catalog_items`.
    pub fn report(&self, catalog_items: usize) -> Vec<OnlineReport> {
        let mut merged: BTreeMap<OnlineKey, KeyStats> = BTreeMap::new();
        for shard in &self.shards {
            let shard = lock(shard);
            for (key, s) in &shard.keys {
                let m = merged.entry((**key).clone()).or_default();
                m.lists += s.lists;
                m.items += s.items;
                m.fallback_items += s.fallback_items;
                m.distinct.extend(s.distinct.iter().copied());
                m.diversity_sum += s.diversity_sum;
                m.diversity_lists += s.diversity_lists;
                for (a, b) in m.score_counts.iter_mut().zip(s.score_counts) {
                    *a += b;
                }
                m.score_sum += s.score_sum;
                for (a, b) in m.latency_counts.iter_mut().zip(s.latency_counts) {
                    *a += b;
                }
                m.latency_sum += s.latency_sum;
                m.clicks += s.clicks;
                m.conversions += s.conversions;
            }
        }
        let ratio = |num: f64, den: u64| (den > 0).then(|| num / den as f64);
        merged
            .into_iter()
            .map(|(key, s)| {
                let scored: u64 = s.score_counts.iter().sum();
                OnlineReport {
                    key,
                    lists: s.lists,
                    items: s.items,
                    fallback_share: ratio(s.fallback_items as f64, s.items),
                    distinct_items: s.distinct.len() as u64,
                    coverage: ratio(s.distinct.len() as f64, catalog_items as u64)
                        .map(|c| c.min(1.0)),
                    diversity: ratio(s.diversity_sum, s.diversity_lists),
                    diversity_lists: s.diversity_lists,
                    clicks: s.clicks,
                    conversions: s.conversions,
                    ctr: ratio(s.clicks as f64, s.items),
                    conversion_rate: ratio(s.conversions as f64, s.lists),
                    score_mean: ratio(s.score_sum, scored),
                    score_counts: s.score_counts.to_vec(),
                    latency_counts: s.latency_counts.to_vec(),
                    latency_sum_seconds: s.latency_sum,
                    latency_p50_ms: latency_quantile_ms(&s.latency_counts, 0.5),
                    latency_p99_ms: latency_quantile_ms(&s.latency_counts, 0.99),
                }
            })
            .collect()
    }

    /// Users currently remembered for attribution (for tests and the report).
    pub fn remembered_users(&self) -> usize {
        self.shards.iter().map(|s| lock(s).users.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, source: &str, score: Option<f32>) -> ServedItem {
        ServedItem {
            item: id.into(),
            score,
            source: source.into(),
            propensity: None,
            explored: false,
        }
    }

    fn feedback(user: &str, item: &str, kind: &str) -> Feedback {
        Feedback {
            user: user.into(),
            item: item.into(),
            event_type: kind.into(),
            value: None,
            timestamp: 0,
            event_id: None,
        }
    }

    fn list<'a>(user: &'a str, items: &'a [ServedItem], ms: u64) -> OnlineList<'a> {
        OnlineList {
            user: Some(user),
            model_version: Some("v1"),
            variant: None,
            items,
            latency: Duration::from_millis(ms),
            item_features: None,
        }
    }

    #[test]
    fn two_lists_one_attributed_click_give_an_exact_ctr() {
        let m = OnlineMetrics::new(&MonitoringConfig::default());
        let a = [
            item("i1", "model:als", Some(0.9)),
            item("i2", "model:als", Some(0.4)),
            item("i3", "popular", None),
        ];
        let b = [
            item("i1", "fold-in:als", Some(2.0)),
            item("i4", "latest", None),
        ];
        m.record_list_at(list("u1", &a, 3), 1_000);
        m.record_list_at(list("u2", &b, 30), 1_000);
        // Attributed: u1 clicks i2 (shown). Not attributed: u1 clicks i4 (shown to u2 only),
        // u2 clicks i4 too late, u3 was never served, a view is not a click type; a repeat
        // click on the same (list, item) counts once.
        m.record_feedback_at(&[feedback("u1", "i2", "click")], 1_010);
        m.record_feedback_at(&[feedback("u1", "i2", "click")], 1_020);
        m.record_feedback_at(&[feedback("u1", "i4", "click")], 1_010);
        m.record_feedback_at(&[feedback("u1", "i1", "view")], 1_010);
        m.record_feedback_at(&[feedback("u2", "i4", "click")], 1_000 + 3_601);
        m.record_feedback_at(&[feedback("u3", "i1", "click")], 1_010);
        // A purchase (named `buy`) converts u2's list once.
        m.record_feedback_at(
            &[
                feedback("u2", "i1", "buy"),
                feedback("u2", "i4", "purchase"),
            ],
            1_100,
        );
        let report = m.report(10);
        assert_eq!(report.len(), 1);
        let r = &report[0];
        assert_eq!(r.key.model_version, "v1");
        assert_eq!((r.lists, r.items), (2, 5));
        assert_eq!(r.clicks, 1);
        assert_eq!(r.ctr, Some(1.0 / 5.0));
        assert_eq!(r.conversions, 1);
        assert_eq!(r.conversion_rate, Some(0.5));
        // popular + latest of 5 items.
        assert_eq!(r.fallback_share, Some(2.0 / 5.0));
        // i1..i4 of a 10-item catalog.
        assert_eq!(r.distinct_items, 4);
        assert_eq!(r.coverage, Some(0.4));
        let mean = (f64::from(0.9f32) + f64::from(0.4f32) + 2.0) / 3.0;
        assert!((r.score_mean.unwrap() - mean).abs() < 1e-12);
        // 0.4 -> (0.25, 0.5], 0.9 -> (0.5, 1], 2.0 -> (1, 2.5].
        assert_eq!(r.score_counts[7], 1);
        assert_eq!(r.score_counts[8], 1);
        assert_eq!(r.score_counts[9], 1);
        // 3 ms -> bucket 0.005 s, 30 ms -> bucket 0.05 s: median 5 ms, p99 50 ms.
        assert_eq!(r.latency_p50_ms, Some(5.0));
        assert_eq!(r.latency_p99_ms, Some(50.0));
    }

    #[test]
    fn keys_split_by_version_and_variant() {
        let m = OnlineMetrics::new(&MonitoringConfig::default());
        let items = [item("i1", "model:als", Some(1.0))];
        m.record_list_at(list("u1", &items, 1), 0);
        m.record_list_at(
            OnlineList {
                variant: Some("exp/b"),
                ..list("u1", &items, 1)
            },
            0,
        );
        m.record_feedback_at(&[feedback("u1", "i1", "click")], 5);
        let report = m.report(0);
        assert_eq!(report.len(), 2);
        assert_eq!(report[0].key.variant, None);
        assert_eq!(report[1].key.variant.as_deref(), Some("exp/b"));
        // The newest list that showed the item gets the click.
        assert_eq!((report[0].clicks, report[1].clicks), (0, 1));
        assert_eq!(report[0].coverage, None);
    }

    #[test]
    fn diversity_is_one_minus_the_same_category_pair_share() {
        // Pairs: (a,b) share 1, (a,c) none, (b,c) share 3: 2 of 3 pairs -> 1/3.
        let d = intra_list_diversity(&[&[1, 2], &[2, 3], &[3]]).unwrap();
        assert!((d - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(intra_list_diversity(&[&[1], &[2]]), Some(1.0));
        assert_eq!(intra_list_diversity(&[&[1]]), None);
        let mut table = FeatureTable::new();
        for (id, cats) in [("i1", vec!["x"]), ("i2", vec!["x", "y"]), ("i3", vec!["z"])] {
            table
                .set(
                    id,
                    "categories",
                    kindred_core::features::FeatureValue::Categories(
                        cats.into_iter().map(String::from).collect(),
                    ),
                )
                .unwrap();
        }
        let m = OnlineMetrics::new(&MonitoringConfig::default());
        let items = [
            item("i1", "model", None),
            item("i2", "model", None),
            item("i3", "model", None),
            item("unknown", "model", None),
        ];
        m.record_list_at(
            OnlineList {
                item_features: Some(&table),
                ..list("u", &items, 1)
            },
            0,
        );
        let r = &m.report(4)[0];
        // (i1,i2) share x; other two pairs differ: 1 - 1/3.
        assert!((r.diversity.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.diversity_lists, 1);
    }

    #[test]
    fn a_forgotten_user_leaves_no_trace_and_gets_no_attribution() {
        let m = OnlineMetrics::new(&MonitoringConfig::default());
        let items = [item("i1", "model:als", Some(1.0))];
        m.record_list_at(list("gone", &items, 1), 100);
        m.record_list_at(list("gone", &items, 1), 101);
        m.record_list_at(list("stays", &items, 1), 102);
        assert_eq!(m.remembered_users(), 2);
        m.forget_user("gone");
        assert_eq!(m.remembered_users(), 1);
        let shard = lock(m.shard_of(Some("gone")));
        assert!(shard.order.iter().all(|(u, _)| u != "gone"));
        assert_eq!(
            shard.held_items,
            shard
                .users
                .values()
                .map(|(_, l)| l.iter().map(|r| r.items.len()).sum::<usize>())
                .sum::<usize>()
        );
        drop(shard);
        m.record_feedback_at(&[feedback("gone", "i1", "click")], 103);
        m.record_feedback_at(&[feedback("stays", "i1", "click")], 103);
        let report = m.report(10);
        assert_eq!(report[0].lists, 3, "the lists still count");
        assert_eq!(
            report[0].clicks, 1,
            "only the remembered user's click is attributed"
        );
    }

    #[test]
    fn remembered_users_are_bounded() {
        let config = MonitoringConfig {
            attribution_users: 32,
            ..MonitoringConfig::default()
        };
        let m = OnlineMetrics::new(&config);
        let items = [item("i1", "model", None)];
        for u in 0..1_000 {
            let user = format!("u{u}");
            m.record_list_at(list(&user, &items, 1), 0);
            m.record_list_at(list(&user, &items, 1), 0);
        }
        assert!(m.remembered_users() <= 32, "{}", m.remembered_users());
        // The most recent user is still attributable.
        m.record_feedback_at(&[feedback("u999", "i1", "click")], 1);
        assert_eq!(m.report(1)[0].clicks, 1);
        let off = OnlineMetrics::new(&MonitoringConfig {
            enabled: false,
            ..MonitoringConfig::default()
        });
        off.record_list_at(list("u", &items, 1), 0);
        assert!(off.report(1).is_empty());
    }

    #[test]
    fn remembered_items_are_bounded_for_long_lists() {
        let config = MonitoringConfig {
            attribution_items: 32 * 500,
            ..MonitoringConfig::default()
        };
        let m = OnlineMetrics::new(&config);
        let long: Vec<ServedItem> = (0..1_000)
            .map(|i| item(&format!("i{i}"), "model", None))
            .collect();
        for u in 0..2_000 {
            m.record_list_at(list(&format!("u{u}"), &long, 1), 0);
        }
        let held: usize = m.shards.iter().map(|s| lock(s).held_items).sum();
        let counted: usize = m
            .shards
            .iter()
            .map(|s| {
                lock(s)
                    .users
                    .values()
                    .flat_map(|(_, lists)| lists.iter().map(|l| l.items.len()))
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(held, counted, "the running count matches what is held");
        // Each shard keeps at most its share, except a single list larger than it.
        for shard in &m.shards {
            assert!(
                lock(shard).held_items <= 1_000,
                "{}",
                lock(shard).held_items
            );
        }
        m.record_feedback_at(&[feedback("u1999", "i5", "click")], 1);
        assert_eq!(
            m.report(1)[0].clicks,
            1,
            "the most recent user is attributable"
        );
    }

    #[test]
    fn touch_records_stay_within_twice_the_users_held() {
        // Far fewer users than the configured maximum, each served many times: the touch
        // queue must follow the users held, not grow towards the maximum.
        let m = OnlineMetrics::new(&MonitoringConfig::default());
        let items = [item("i1", "model", None)];
        for round in 0..200 {
            for u in 0..500 {
                m.record_list_at(list(&format!("u{u}"), &items, 1), round);
            }
        }
        for shard in &m.shards {
            let shard = lock(shard);
            assert!(
                shard.order.len() <= 2 * shard.users.len() + ORDER_SLACK + 1,
                "{} touch records for {} users",
                shard.order.len(),
                shard.users.len()
            );
            assert!(shard.order.capacity() <= 8 * (shard.users.len() + ORDER_SLACK));
        }
        // Eviction still goes by least recent touch: the users served last are all held.
        m.record_feedback_at(&[feedback("u499", "i1", "click")], 200);
        assert_eq!(m.report(1)[0].clicks, 1);
    }
}
