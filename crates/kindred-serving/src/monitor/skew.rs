//! Feature skew between training and serving: each version stores the distribution of every
//! numeric and categorical user and item feature it was trained with ([`FeatureProfile`],
//! `features.json` beside its manifest); while it is live the server counts the same columns
//! over what it sees ([`SkewObserver`]): the requesting user's features at request time (given
//! in the request, or stored), and the features of items as they are written
//! (`PUT`/`POST /v1/items`: a new item pipeline writing prices in cents is the classic skew).
//! Each monitoring pass compares the two per column by PSI ([`skew_alerts`]), alerting above
//! `monitoring.psi_max` once `monitoring.min_observations` entities were counted.
//!
//! Both sides count entities, not events: the training side each user or item with at least
//! one training interaction once, the serving side each distinct user or item seen since the
//! version went live once (a bounded set of hashes; past it, new entities are not counted).
//! Counting requests instead would call every shift in who is active a skew; counting the
//! items the server lists would call the model's own preferences one. Memory is bounded by the
//! profile: its columns and bins are fixed at training, request data adds no keys.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kindred_core::features::ColumnData;
use kindred_core::rng::stable_hash;
use kindred_core::{Error, FeatureTable, Result, TrainSet};
use kindred_stats::monitoring::alerts::{Alert, AlertKind};
use kindred_stats::monitoring::psi::psi;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sync::lock;
use kindred_store::Item;

/// The file of a version's artifact directory holding its feature profile.
pub const PROFILE_FILE: &str = "features.json";
/// Equal-frequency bins per numeric column.
const NUMERIC_BINS: usize = 10;
/// Most frequent categories kept per categorical column (the rest share one bin).
const TOP_CATEGORIES: usize = 20;
/// Distinct users and items counted per live version.
pub const MAX_DISTINCT: usize = 100_000;
/// One request in this many is observed: the counts are shares, a sample gives them.
const SAMPLE_EVERY: u64 = 4;

/// Whose feature a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    User,
    Item,
}

/// How values map to bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binning {
    /// `edges.len() + 1` bins; a value goes to the first bin whose upper edge exceeds it.
    Numeric { edges: Vec<f64> },
    /// One bin per category, then one for every other category.
    Categorical { categories: Vec<String> },
}

/// One column's training distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub owner: Owner,
    pub column: String,
    pub binning: Binning,
    /// Entities (or, for categories, category memberships) per bin at training.
    pub counts: Vec<u64>,
}

impl ColumnProfile {
    /// `user_feature:age`, as the drift report names feature distributions.
    pub fn name(&self) -> String {
        let prefix = match self.owner {
            Owner::User => "user_feature",
            Owner::Item => "item_feature",
        };
        format!("{prefix}:{}", self.column)
    }

    fn numeric_bin(&self, value: f64) -> Option<usize> {
        match &self.binning {
            Binning::Numeric { edges } if value.is_finite() => {
                Some(edges.partition_point(|&e| e <= value))
            }
            _ => None,
        }
    }

    fn category_bin(&self, value: &str) -> Option<usize> {
        match &self.binning {
            Binning::Categorical { categories } => Some(
                categories
                    .iter()
                    .position(|c| c == value)
                    .unwrap_or(categories.len()),
            ),
            Binning::Numeric { .. } => None,
        }
    }
}

/// The feature distributions a version was trained with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureProfile {
    pub columns: Vec<ColumnProfile>,
}

impl FeatureProfile {
    /// The profile of `train`'s user and item features, over the users and items it has rows
    /// for.
    pub fn of(train: &TrainSet) -> Self {
        let data = &train.data;
        let mut columns = Vec::new();
        let sides = [
            (
                Owner::User,
                train.user_features.as_deref(),
                data.user_ids(),
                data.user_counts(),
            ),
            (
                Owner::Item,
                train.item_features.as_deref(),
                data.item_ids(),
                data.item_counts(),
            ),
        ];
        for (owner, table, ids, counts) in sides {
            let Some(table) = table else { continue };
            let rows: Vec<u32> = (0..ids.len() as u32)
                .filter(|&e| counts[e as usize] > 0)
                .filter_map(|e| table.ids().get(ids.external(e)))
                .collect();
            columns.extend(profile_table(owner, table, &rows));
        }
        Self { columns }
    }

    /// Saves the profile into a version's artifact directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(PROFILE_FILE);
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the feature profile: {e}")))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
    }

    /// Reads a version's profile; `None` when the version has none (saved before profiles
    /// were recorded, or trained without features).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(PROFILE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Model {
                    path,
                    message: format!("invalid feature profile: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// The profiles of `table`'s numeric and categorical columns over `rows`.
fn profile_table(owner: Owner, table: &FeatureTable, rows: &[u32]) -> Vec<ColumnProfile> {
    let mut out = Vec::new();
    for column in table.columns() {
        let (binning, counts) = match &column.data {
            ColumnData::Numeric(values) => {
                let mut sorted: Vec<f64> = rows
                    .iter()
                    .map(|&r| f64::from(values[r as usize]))
                    .filter(|v| v.is_finite())
                    .collect();
                if sorted.is_empty() {
                    continue;
                }
                sorted.sort_by(f64::total_cmp);
                let mut edges: Vec<f64> = (1..NUMERIC_BINS)
                    .map(|i| {
                        kindred_core::quantile::quantile(&sorted, i as f64 / NUMERIC_BINS as f64)
                    })
                    .collect();
                edges.dedup();
                let mut counts = vec![0u64; edges.len() + 1];
                for v in &sorted {
                    counts[edges.partition_point(|&e| e <= *v)] += 1;
                }
                (Binning::Numeric { edges }, counts)
            }
            ColumnData::Categorical { vocab, values } => {
                let mut frequency: HashMap<u32, u64> = HashMap::new();
                for &r in rows {
                    for &v in &values[r as usize] {
                        *frequency.entry(v).or_default() += 1;
                    }
                }
                if frequency.is_empty() {
                    continue;
                }
                let mut ranked: Vec<(u32, u64)> = frequency.into_iter().collect();
                let name = |v: u32| vocab.external(v).to_owned();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| name(a.0).cmp(&name(b.0))));
                let kept = ranked.len().min(TOP_CATEGORIES);
                let mut counts: Vec<u64> = ranked[..kept].iter().map(|&(_, n)| n).collect();
                counts.push(ranked[kept..].iter().map(|&(_, n)| n).sum());
                let categories = ranked[..kept].iter().map(|&(v, _)| name(v)).collect();
                (Binning::Categorical { categories }, counts)
            }
            ColumnData::Text(_) | ColumnData::Dense { .. } => continue,
        };
        out.push(ColumnProfile {
            owner,
            column: column.name.clone(),
            binning,
            counts,
        });
    }
    out
}

/// What one live version's serving side has counted.
struct Observation {
    version: String,
    profile: Arc<FeatureProfile>,
    counts: Vec<Vec<u64>>,
    seen: HashSet<(Owner, u64)>,
}

/// A feature value as the server has it: from a feature table row or a request's JSON.
enum Seen<'a> {
    Number(f64),
    Categories(Vec<&'a str>),
}

/// Serving-side counts for the live version's profile.
#[derive(Default)]
pub struct SkewObserver {
    current: Mutex<Option<Observation>>,
    requests: AtomicU64,
}

/// One observed list request: who asked, with where their features are.
pub struct Observed<'a> {
    pub version: &'a str,
    pub profile: &'a Arc<FeatureProfile>,
    pub user: Option<&'a str>,
    /// Features given in the request (a described user); they win over the stored ones.
    pub request_features: Option<&'a Map<String, Value>>,
    pub user_features: Option<&'a FeatureTable>,
}

impl SkewObserver {
    /// Counts one list in a sample of requests; a list of another version than the one
    /// counted so far starts the counts over with that version's profile.
    pub fn observe(&self, seen: Observed<'_>) {
        if !self
            .requests
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY)
        {
            return;
        }
        let mut guard = lock(&self.current);
        if guard.as_ref().is_none_or(|o| o.version != seen.version) {
            *guard = Some(Observation {
                version: seen.version.to_owned(),
                profile: Arc::clone(seen.profile),
                counts: seen
                    .profile
                    .columns
                    .iter()
                    .map(|c| vec![0; c.counts.len()])
                    .collect(),
                seen: HashSet::new(),
            });
        }
        let Some(observation) = guard.as_mut() else {
            return;
        };
        if let Some(user) = seen.user.filter(|_| seen.request_features.is_none()) {
            observation.count_entity(Owner::User, user, |column| {
                table_value(seen.user_features?, user, column)
            });
        } else if let Some(features) = seen.request_features {
            let key = seen.user.map_or_else(
                || format!("request:{}", self.requests.load(Ordering::Relaxed)),
                str::to_owned,
            );
            observation.count_entity(Owner::User, &key, |column| {
                json_value(features.get(column)?)
            });
        }
    }

    /// Counts items as they are written, each once per live version.
    pub fn observe_items(&self, version: &str, profile: &Arc<FeatureProfile>, items: &[Item]) {
        let mut guard = lock(&self.current);
        let observation = Observation::for_version(&mut guard, version, profile);
        for item in items {
            observation.count_entity(Owner::Item, &item.id, |column| {
                // The store's mapping: item categories are the `categories` column.
                if column == "categories" && !item.categories.is_empty() {
                    return Some(Seen::Categories(
                        item.categories.iter().map(String::as_str).collect(),
                    ));
                }
                json_value(item.features.get(column)?)
            });
        }
    }

    /// What has been counted for the version served now, if anything.
    pub fn counts(&self) -> Option<SkewCounts> {
        let guard = lock(&self.current);
        let o = guard.as_ref()?;
        Some(SkewCounts {
            version: o.version.clone(),
            columns: o
                .profile
                .columns
                .iter()
                .cloned()
                .zip(o.counts.iter().cloned())
                .collect(),
        })
    }
}

/// Per profile column of one version, its training profile and its serving counts.
#[derive(Debug, Clone)]
pub struct SkewCounts {
    pub version: String,
    pub columns: Vec<(ColumnProfile, Vec<u64>)>,
}

impl Observation {
    /// The observation of `version`, started over (with its profile) when another version was
    /// counted so far.
    fn for_version<'g>(
        current: &'g mut Option<Observation>,
        version: &str,
        profile: &Arc<FeatureProfile>,
    ) -> &'g mut Observation {
        if current.as_ref().is_none_or(|o| o.version != version) {
            *current = None;
        }
        current.get_or_insert_with(|| Observation {
            version: version.to_owned(),
            profile: Arc::clone(profile),
            counts: profile
                .columns
                .iter()
                .map(|c| vec![0; c.counts.len()])
                .collect(),
            seen: HashSet::new(),
        })
    }

    /// Counts an entity's values once per live version.
    fn count_entity<'a>(
        &mut self,
        owner: Owner,
        id: &str,
        value: impl Fn(&str) -> Option<Seen<'a>>,
    ) {
        if self.seen.len() >= MAX_DISTINCT || !self.seen.insert((owner, stable_hash(id.as_bytes())))
        {
            return;
        }
        for (column, counts) in self.profile.columns.iter().zip(self.counts.iter_mut()) {
            if column.owner != owner {
                continue;
            }
            match value(&column.column) {
                Some(Seen::Number(v)) => {
                    if let Some(bin) = column.numeric_bin(v) {
                        counts[bin] += 1;
                    }
                }
                Some(Seen::Categories(names)) => {
                    for name in names {
                        if let Some(bin) = column.category_bin(name) {
                            counts[bin] += 1;
                        }
                    }
                }
                None => {}
            }
        }
    }
}

/// A stored feature's value.
fn table_value<'a>(table: &'a FeatureTable, id: &str, column: &str) -> Option<Seen<'a>> {
    let row = table.ids().get(id)? as usize;
    let data = &table.columns().iter().find(|c| c.name == column)?.data;
    match data {
        ColumnData::Numeric(values) => Some(Seen::Number(f64::from(*values.get(row)?))),
        ColumnData::Categorical { vocab, values } => Some(Seen::Categories(
            values
                .get(row)?
                .iter()
                .map(|&v| vocab.external(v))
                .collect(),
        )),
        ColumnData::Text(_) | ColumnData::Dense { .. } => None,
    }
}

/// A request feature's value: a number, a string or a list of strings.
fn json_value(value: &Value) -> Option<Seen<'_>> {
    match value {
        Value::Number(n) => n.as_f64().map(Seen::Number),
        Value::Bool(b) => Some(Seen::Number(if *b { 1.0 } else { 0.0 })),
        Value::String(s) => Some(Seen::Categories(vec![s.as_str()])),
        Value::Array(list) => Some(Seen::Categories(
            list.iter().filter_map(Value::as_str).collect(),
        )),
        _ => None,
    }
}

/// The skew alerts of these counts: PSI of each column with at least `min_observations` on
/// the serving side above `psi_max`.
pub fn skew_alerts(
    version: &str,
    columns: &[(ColumnProfile, Vec<u64>)],
    min_observations: usize,
    psi_max: f64,
    epsilon: f64,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for (profile, serving) in columns {
        let observed: u64 = serving.iter().sum();
        if observed < min_observations as u64 || profile.counts.iter().all(|&c| c == 0) {
            continue;
        }
        let as_f64 = |v: &[u64]| v.iter().map(|&c| c as f64).collect::<Vec<_>>();
        let Ok(value) = psi(&as_f64(&profile.counts), &as_f64(serving), epsilon) else {
            continue;
        };
        if value > psi_max {
            let name = profile.name();
            alerts.push(Alert {
                kind: AlertKind::FeatureSkew,
                subject: name.clone(),
                value,
                limit: psi_max,
                window: None,
                message: format!(
                    "{name} at serving differs from its training distribution for version \
                     {version}: PSI {value:.3} > {psi_max} over {observed} observations"
                ),
            });
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_core::rng::SplitMix64;
    use kindred_core::{FeatureValue, Interaction, InteractionsBuilder};
    use serde_json::json;

    const COUNTRIES: [&str; 4] = ["fr", "de", "es", "it"];

    /// An age and a country: ages around `age_mean`, countries with shares `weights`.
    fn draw(rng: &mut SplitMix64, age_mean: f64, weights: [f64; 4]) -> (f64, &'static str) {
        let age = age_mean + 10.0 * rng.normal();
        let mut u = rng.next_f64() * weights.iter().sum::<f64>();
        let mut country = COUNTRIES[3];
        for (c, w) in COUNTRIES.iter().zip(weights) {
            if u < w {
                country = c;
                break;
            }
            u -= w;
        }
        (age, country)
    }

    const TRAINING: [f64; 4] = [0.4, 0.3, 0.2, 0.1];

    /// 2,000 training users with one interaction each and their features.
    fn profile() -> Arc<FeatureProfile> {
        let mut rng = SplitMix64::new(1);
        let mut log = InteractionsBuilder::new();
        let mut users = FeatureTable::new();
        for u in 0..2_000 {
            let id = format!("u{u}");
            log.push(Interaction::rating(
                &id,
                &format!("i{}", u % 50),
                4.0,
                Some(u),
            ));
            let (age, country) = draw(&mut rng, 35.0, TRAINING);
            users
                .set(&id, "age", FeatureValue::Number(age as f32))
                .unwrap();
            users
                .set(
                    &id,
                    "country",
                    FeatureValue::Categories(vec![country.into()]),
                )
                .unwrap();
        }
        let train = TrainSet::new(log.build()).with_features(None, Some(Arc::new(users)));
        let profile = FeatureProfile::of(&train);
        assert_eq!(profile.columns.len(), 2);
        Arc::new(profile)
    }

    /// One serving period: `users` described requests with features drawn as given, counted
    /// by a fresh observer; answers the alerts of one pass.
    fn serve(
        profile: &Arc<FeatureProfile>,
        seed: u64,
        users: usize,
        age_mean: f64,
        weights: [f64; 4],
    ) -> Vec<Alert> {
        serve_with_limit(profile, seed, users, age_mean, weights, 0.25)
    }

    fn serve_with_limit(
        profile: &Arc<FeatureProfile>,
        seed: u64,
        users: usize,
        age_mean: f64,
        weights: [f64; 4],
        psi_max: f64,
    ) -> Vec<Alert> {
        let observer = SkewObserver::default();
        let mut rng = SplitMix64::new(seed);
        for u in 0..users * SAMPLE_EVERY as usize {
            let (age, country) = draw(&mut rng, age_mean, weights);
            let features = json!({"age": age, "country": country});
            observer.observe(Observed {
                version: "v1",
                profile,
                user: Some(&format!("s{seed}-{u}")),
                request_features: features.as_object(),
                user_features: None,
            });
        }
        let counts = observer.counts().unwrap();
        skew_alerts(&counts.version, &counts.columns, 200, psi_max, 1e-4)
    }

    #[test]
    fn a_shifted_feature_raises_the_skew_alert_and_an_unchanged_one_does_not() {
        let profile = profile();
        let shifted_age = serve(&profile, 7, 300, 50.0, TRAINING);
        eprintln!("PSI of ages shifted by 1.5 sd: {:.3}", shifted_age[0].value);
        assert_eq!(shifted_age.len(), 1, "{shifted_age:?}");
        assert_eq!(shifted_age[0].subject, "user_feature:age");
        assert_eq!(shifted_age[0].kind, AlertKind::FeatureSkew);
        let shifted_country = serve(&profile, 8, 300, 35.0, [0.1, 0.1, 0.2, 0.6]);
        assert_eq!(shifted_country.len(), 1, "{shifted_country:?}");
        assert_eq!(shifted_country[0].subject, "user_feature:country");
        // Too few observations: no verdict.
        assert!(serve(&profile, 9, 100, 50.0, TRAINING).is_empty());
    }

    /// The false alarm rate: 200 seeded serving periods of 300 users from the training
    /// distribution, each judged as one pass. (0 of 200 when this was written.)
    #[test]
    fn unchanged_features_raise_no_alarm_in_200_seeded_runs() {
        let profile = profile();
        let mut alarms = 0;
        let mut largest = 0.0f64;
        for seed in 0..200 {
            // Every PSI (a limit of 0), to report the largest seen without a shift.
            let all = serve_with_limit(&profile, 1_000 + seed, 300, 35.0, TRAINING, 0.0);
            largest = all.iter().map(|a| a.value).fold(largest, f64::max);
            alarms += usize::from(all.iter().any(|a| a.value > 0.25));
        }
        eprintln!("feature skew false alarms: {alarms} of 200 runs; largest PSI {largest:.3}");
        assert_eq!(alarms, 0, "false alarms in {alarms} of 200 runs");
    }

    #[test]
    fn stored_features_are_counted_once_per_entity_and_other_versions_start_over() {
        let profile = profile();
        let mut users = FeatureTable::new();
        users.set("a", "age", FeatureValue::Number(80.0)).unwrap();
        let observer = SkewObserver::default();
        let observe = |version: &str| {
            for _ in 0..SAMPLE_EVERY {
                observer.observe(Observed {
                    version,
                    profile: &profile,
                    user: Some("a"),
                    request_features: None,
                    user_features: Some(&users),
                });
            }
        };
        observe("v1");
        observe("v1");
        let counts = observer.counts().unwrap();
        let age = &counts.columns[0];
        assert_eq!(age.0.column, "age");
        assert_eq!(age.1.iter().sum::<u64>(), 1, "one user, counted once");
        assert_eq!(*age.1.last().unwrap(), 1, "80 is in the top bin");
        observe("v2");
        assert_eq!(observer.counts().unwrap().version, "v2");
    }

    #[test]
    fn written_items_are_counted_from_their_features_and_categories() {
        let mut log = InteractionsBuilder::new();
        let mut items = FeatureTable::new();
        for i in 0..300 {
            let id = format!("i{i}");
            log.push(Interaction::rating("u", &id, 4.0, Some(i)));
            items
                .set(&id, "price", FeatureValue::Number((i % 30) as f32))
                .unwrap();
            items
                .set(
                    &id,
                    "categories",
                    FeatureValue::Categories(vec!["a".into()]),
                )
                .unwrap();
        }
        let train = TrainSet::new(log.build()).with_features(Some(Arc::new(items)), None);
        let profile = Arc::new(FeatureProfile::of(&train));
        let observer = SkewObserver::default();
        // The new pipeline writes prices a hundred times larger, and other categories.
        let written: Vec<Item> = (0..300)
            .map(|i| Item {
                id: format!("new{i}"),
                features: json!({"price": (i % 30) as f64 * 100.0})
                    .as_object()
                    .cloned()
                    .unwrap(),
                categories: vec!["b".into()],
                timestamp: None,
                hidden: false,
            })
            .collect();
        observer.observe_items("v1", &profile, &written);
        observer.observe_items("v1", &profile, &written[..10]);
        let counts = observer.counts().unwrap();
        assert!(counts
            .columns
            .iter()
            .all(|(_, c)| c.iter().sum::<u64>() == 300));
        let alerts = skew_alerts(&counts.version, &counts.columns, 200, 0.25, 1e-4);
        let mut subjects: Vec<&str> = alerts.iter().map(|a| a.subject.as_str()).collect();
        subjects.sort_unstable();
        assert_eq!(subjects, ["item_feature:categories", "item_feature:price"]);
    }

    #[test]
    fn the_profile_round_trips_through_its_file() {
        let profile = profile();
        let dir = kindred_testkit::TestDir::new("skew");
        profile.save(&dir).unwrap();
        assert_eq!(
            FeatureProfile::load(&dir).unwrap().as_ref(),
            Some(profile.as_ref())
        );
        std::fs::remove_file(dir.join(PROFILE_FILE)).unwrap();
        assert_eq!(FeatureProfile::load(&dir).unwrap(), None);
    }
}
