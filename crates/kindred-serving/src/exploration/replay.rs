//! Off-policy evaluation from the server's own logs: what click rate a candidate rank config
//! (and model version) would have had on the requests an exploring policy served, estimated with
//! IPS, SNIPS and doubly robust from the logged propensities, beside the logging policy's own.
//!
//! The replay reconstructs each logged request as the candidate would have seen it: the store's
//! data before the window (`since`) is the catalog and history, and a user's events between
//! `since` and the request are added as request-time history, as the server's real-time overlay
//! adds them. A logged slot is rewarded when the user had a reward event on the item within the
//! attribution window after the list, credited to the latest list that showed it (the rule of
//! experiments). Request filters (`category=`, `exclude=`) are not logged, so the candidate
//! ranks without them. Lists logged without propensities (greedy lists written on request, or
//! before exploration was configured) are counted and left out, never guessed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kindred_eval::offpolicy::logged_requests::{by_request, check_slots};
use kindred_eval::offpolicy::{
    doubly_robust, estimate_click_rate, CrossFitted, DirectTerms, LoggedSlot, OffPolicyOptions,
    RewardExample,
};
use kindred_eval::stats::Interval;
use kindred_rank::exploration::{BanditPosterior, BanditState};
use kindred_rank::RankConfig;
use kindred_store::{Impression, Store, StoredFeedback};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::experiments::definition::DEFAULT_ATTRIBUTION_WINDOW_SECONDS;
use crate::exploration::PolicyId;
use crate::lifecycle::training;
use crate::snapshot::{ListRequest, LiveModel, Snapshot, SnapshotInput, DEFAULT_RANK};

/// One replay at a time in this process: a replay reads the store's whole data.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The right to run a replay now (None while another runs); held until dropped.
pub fn try_begin() -> Option<tokio::sync::SemaphorePermit<'static>> {
    RUNNING.try_acquire().ok()
}

/// Most impressions one replay reads; a longer window is cut (and the report says so).
pub const MAX_REPLAY_IMPRESSIONS: usize = 2_000_000;
/// Most feedback events one replay reads after `since`.
pub const MAX_REPLAY_EVENTS: usize = 5_000_000;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The window of logged lists, Unix seconds: `since <= timestamp < until`.
    pub since: i64,
    pub until: i64,
    /// The candidate's rank config, and a name for it in the report.
    pub candidate: RankConfig,
    pub candidate_name: String,
    /// The model version the candidate ranks with (None: the live version).
    pub model: Option<String>,
    /// Event types that count as a reward (a click).
    pub reward_events: Vec<String>,
    /// Seconds after a list within which an event on one of its items is credited to it.
    pub attribution_window_seconds: i64,
    /// Confidence level of the intervals.
    pub level: f64,
    /// Read at most this many impressions.
    pub max_impressions: usize,
}

impl ReplayOptions {
    /// Defaults for a window and a candidate: live version, `click` rewards, the experiments'
    /// attribution window, 95% intervals.
    pub fn new(since: i64, until: i64, candidate: RankConfig, name: impl Into<String>) -> Self {
        Self {
            since,
            until,
            candidate,
            candidate_name: name.into(),
            model: None,
            reward_events: vec!["click".to_owned()],
            attribution_window_seconds: DEFAULT_ATTRIBUTION_WINDOW_SECONDS,
            level: 0.95,
            max_impressions: MAX_REPLAY_IMPRESSIONS,
        }
    }
}

/// An interval in the report.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Estimate {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

impl From<Interval> for Estimate {
    fn from(i: Interval) -> Self {
        Self {
            estimate: i.estimate,
            lower: i.lower,
            upper: i.upper,
        }
    }
}

/// The candidate's estimated click rate per shown slot, and the logging policy's observed one.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub candidate: String,
    pub model_version: String,
    pub since: i64,
    pub until: i64,
    /// Logged requests replayed, and their shown slots.
    pub requests: usize,
    pub impressions: usize,
    /// Logged requests left out because some slot has no propensity.
    pub requests_without_propensity: usize,
    /// The logging policies of the replayed requests (`version#rank`), with request counts.
    pub logging_policies: BTreeMap<String, usize>,
    /// Rewarded slots.
    pub rewards: usize,
    /// True when the window held more impressions than were read.
    pub truncated: bool,
    pub level: f64,
    /// What the logging policies got (observed click rate per shown slot, interval over requests).
    pub logged: Estimate,
    pub ips: Estimate,
    pub snips: Estimate,
    pub doubly_robust: Estimate,
    /// The smallest effective sample size of the candidate's weights over slot positions.
    pub effective_sample_size: f64,
    /// Logged requests in which the candidate would have shown the logged top item.
    pub top_slot_support: usize,
    pub warnings: Vec<String>,
}

/// Sets a replay's cancel flag when dropped: a handler holds one, so a replay stops when its
/// client goes away.
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Progress of a replay: requests done of all.
pub type ReplayProgress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// One logged request: its user, time, shown items (slot order) with propensities, policy.
struct LoggedRequest {
    user: String,
    timestamp: i64,
    items: Vec<String>,
    propensities: Vec<f64>,
    policy: String,
}

/// Replays the window's logged lists through the candidate and estimates its click rate.
pub async fn replay(
    store: &Store,
    options: &ReplayOptions,
    progress: ReplayProgress,
    cancel: Arc<AtomicBool>,
) -> Result<ReplayReport> {
    check(options)?;
    let mut rows = store
        .impressions_between(options.since, options.until, options.max_impressions + 1)
        .await?;
    let truncated = rows.len() > options.max_impressions;
    rows.truncate(options.max_impressions);
    let (requests, without_propensity) = group(rows)?;
    if requests.is_empty() {
        return Err(Error::invalid(
            "no_logged_propensities",
            format!(
                "no list logged between {} and {} has propensities ({without_propensity} without): \
                 off-policy evaluation needs lists served by a rank config with an [exploration] \
                 section",
                options.since, options.until
            ),
        ));
    }
    let record = match &options.model {
        Some(version) => store
            .get_model(version)
            .await?
            .ok_or_else(|| Error::not_found("model version", version))?,
        None => store.live_model().await?.ok_or_else(|| {
            Error::invalid(
                "no_live_model",
                "no version is live: name the candidate's model version",
            )
        })?,
    };
    // A contextual bandit candidate is replayed with what it has learned so far (frozen), as
    // the store holds it under the candidate's policy id; the prior when it has learned nothing.
    let bandit_state = if options.candidate.exploration.policy.is_bandit() {
        let policy = PolicyId {
            version: Some(record.model.version.clone()),
            rank: Some(options.candidate_name.clone()),
        }
        .to_string();
        let stored = store.bandit_state(&policy).await?;
        let features = options.candidate.exploration.feature_names();
        let state = stored
            .and_then(|s| serde_json::from_str::<BanditState>(&s).ok())
            .filter(|s| s.features == features);
        Some((policy, state))
    } else {
        None
    };
    let mut dataset = store.load_dataset("replay").await?;
    let erasures = Arc::new(store.erasures().await?);
    let events = store
        .feedback_since(options.since, MAX_REPLAY_EVENTS)
        .await?;
    let options = options.clone();
    let report = tokio::task::spawn_blocking(move || -> Result<ReplayReport> {
        let loaded = training::load_version_with_profile(&record)?;
        let live = LiveModel {
            version: record.model.version.clone(),
            algorithm: record.model.algorithm.clone(),
            model: loaded.0,
            trained: None,
            profile: loaded.1,
        };
        // The catalog and histories as they were when the window opened.
        let log = &dataset.interactions;
        let before: Vec<u32> = (0..log.len() as u32)
            .filter(|&r| log.timestamps()[r as usize] < options.since)
            .collect();
        dataset.interactions = log.subset(&before);
        let snapshot = Snapshot::build(SnapshotInput {
            dataset: Arc::new(dataset),
            live: Some(live),
            rank_configs: [(DEFAULT_RANK.to_owned(), options.candidate.clone())].into(),
            batch_size: None,
            generation: 0,
            erasures,
        })?;
        let bandit = bandit_state.map(|(policy, state)| {
            let ridge = options.candidate.exploration.ridge;
            let note = match &state {
                Some(s) => format!(
                    "the candidate is a contextual bandit: replayed with its state as stored \
                     under `{policy}` now ({:.0} observations), frozen",
                    s.observations
                ),
                None => format!(
                    "the candidate is a contextual bandit with no stored state under \
                     `{policy}`: replayed with its prior"
                ),
            };
            let state = state.unwrap_or_else(|| {
                BanditState::new(options.candidate.exploration.feature_names(), 0)
            });
            (Arc::new(state.posterior(ridge, &snapshot.items)), note)
        });
        estimate(
            &snapshot,
            bandit,
            &requests,
            &events,
            without_propensity,
            truncated,
            &options,
            progress.as_ref(),
            &cancel,
        )
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    Ok(report)
}

fn check(options: &ReplayOptions) -> Result<()> {
    if options.until <= options.since {
        return Err(Error::invalid(
            "bad_window",
            format!(
                "the window is empty: until ({}) must be after since ({})",
                options.until, options.since
            ),
        ));
    }
    if options.reward_events.is_empty() {
        return Err(Error::invalid(
            "no_reward_events",
            "name at least one reward event type",
        ));
    }
    if options.attribution_window_seconds < 0 {
        return Err(Error::invalid(
            "bad_attribution_window",
            "the attribution window must be at least 0 seconds",
        ));
    }
    if !(options.level > 0.0 && options.level < 1.0) {
        return Err(Error::invalid(
            "bad_level",
            format!(
                "the confidence level must be in (0, 1), got {}",
                options.level
            ),
        ));
    }
    Ok(())
}

/// Groups impression rows by request (first-seen order) into logged requests; a request with a
/// slot missing its propensity is counted and left out. Errors on a broken request (slots not
/// 0..L-1, several users).
fn group(rows: Vec<Impression>) -> Result<(Vec<LoggedRequest>, usize)> {
    let requests = by_request(rows, |r| r.request_id.as_str(), |r| r.slot);
    let mut out = Vec::with_capacity(requests.len());
    let mut without = 0;
    for (id, slots) in requests {
        if slots.iter().any(|r| r.propensity.is_none()) {
            without += 1;
            continue;
        }
        let Some(first) = slots.first() else {
            continue;
        };
        check_slots(&id, &slots, |r| r.slot, |r| r.user.as_str())
            .map_err(|e| Error::invalid("broken_log", format!("logged {e}")))?;
        let user = first.user.clone();
        out.push(LoggedRequest {
            user,
            timestamp: first.timestamp,
            policy: first.policy.clone(),
            items: slots.iter().map(|r| r.item.clone()).collect(),
            propensities: slots.iter().map(|r| r.propensity.unwrap_or(1.0)).collect(),
        });
    }
    Ok((out, without))
}

/// The replay proper, on a blocking thread.
#[allow(clippy::too_many_arguments)]
fn estimate(
    snapshot: &Snapshot,
    bandit: Option<(Arc<BanditPosterior>, String)>,
    requests: &[LoggedRequest],
    events: &[StoredFeedback],
    without_propensity: usize,
    truncated: bool,
    options: &ReplayOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    cancel: &AtomicBool,
) -> Result<ReplayReport> {
    let rewarded = attribute(requests, events, options);
    // Each user's events inside the window, oldest first: request-time history.
    let mut later: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for e in events {
        let f = &e.feedback;
        if f.timestamp < options.until {
            later
                .entry(f.user.as_str())
                .or_default()
                .push((f.timestamp, f.item.as_str()));
        }
    }
    for list in later.values_mut() {
        list.sort_by_key(|e| e.0);
    }
    let mut records = Vec::new();
    let mut examples = Vec::new();
    let mut policies: BTreeMap<String, usize> = BTreeMap::new();
    for (number, r) in requests.iter().enumerate() {
        *policies.entry(r.policy.clone()).or_default() += 1;
        for (slot, (item, &propensity)) in r.items.iter().zip(&r.propensities).enumerate() {
            let reward = if rewarded.contains(&(number, slot)) {
                1.0
            } else {
                0.0
            };
            records.push(LoggedSlot {
                request: number as u64,
                slot: slot as u32,
                logging_propensity: propensity,
                target_probability: 0.0,
                reward,
            });
            examples.push(RewardExample {
                request: number as u64,
                item: item.clone(),
                slot,
                reward,
            });
        }
    }
    let models = CrossFitted::fit(&examples);
    let mut direct = Vec::with_capacity(records.len());
    let mut top_slot_support = 0;
    let mut k = 0;
    for (number, r) in requests.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(kindred_core::Error::Cancelled.into());
        }
        if number % 1000 == 0 {
            progress(number, requests.len());
        }
        let history: Vec<u32> = later
            .get(r.user.as_str())
            .map(|events| {
                events
                    .iter()
                    .take_while(|e| e.0 < r.timestamp)
                    .filter_map(|e| snapshot.item(e.1))
                    .collect()
            })
            .unwrap_or_default();
        // An item the catalog does not know cannot be shown by the candidate.
        let shown: Vec<u32> = r
            .items
            .iter()
            .map(|id| snapshot.item(id).unwrap_or(u32::MAX))
            .collect();
        let request = ListRequest {
            user: Some(&r.user),
            history,
            now: r.timestamp,
            n: shown.len(),
            bandit: bandit.as_ref().map(|b| Arc::clone(&b.0)),
            ..ListRequest::default()
        };
        let model = models.for_request(number as u64);
        let value = |item: u32, slot: usize| model.predict(snapshot.items.external(item), slot);
        let replayed = snapshot.replay(&request, &shown, &value)?;
        if replayed.first().is_some_and(|s| s.probability > 0.0) {
            top_slot_support += 1;
        }
        for (slot, s) in replayed.iter().enumerate() {
            records[k].target_probability = s.probability;
            direct.push(DirectTerms {
                predicted: model.predict(r.items[slot].as_str(), slot),
                target_expected: s.expected_value,
            });
            k += 1;
        }
    }
    progress(requests.len(), requests.len());
    let estimator = OffPolicyOptions {
        level: options.level,
        max_weight: None,
    };
    let target = estimate_click_rate(&records, &estimator)?;
    let dr = doubly_robust(&records, &direct, &estimator)?;
    // The logging policies judged by themselves: every weight 1, so IPS is the observed rate
    // with an interval over requests.
    let on_policy: Vec<LoggedSlot> = records
        .iter()
        .map(|r| LoggedSlot {
            target_probability: r.logging_propensity,
            ..*r
        })
        .collect();
    let logged = estimate_click_rate(&on_policy, &estimator)?;
    let mut warnings = Vec::new();
    warnings.extend(target.support_warning());
    warnings.extend(bandit.map(|b| b.1));
    if without_propensity > 0 {
        warnings.push(format!(
            "{without_propensity} logged lists have no propensities and were left out"
        ));
    }
    if truncated {
        warnings.push(format!(
            "the window holds more than {} impressions; only the first were replayed",
            options.max_impressions
        ));
    }
    if events.len() >= MAX_REPLAY_EVENTS {
        warnings.push(format!(
            "more than {MAX_REPLAY_EVENTS} events follow the window's start; rewards and \
             histories after them are missing"
        ));
    }
    Ok(ReplayReport {
        candidate: options.candidate_name.clone(),
        model_version: snapshot.version().unwrap_or_default().to_owned(),
        since: options.since,
        until: options.until,
        requests: requests.len(),
        impressions: records.len(),
        requests_without_propensity: without_propensity,
        logging_policies: policies,
        rewards: records.iter().filter(|r| r.reward > 0.0).count(),
        truncated,
        level: options.level,
        logged: logged.ips.into(),
        ips: target.ips.into(),
        snips: target.snips.into(),
        doubly_robust: dr.into(),
        effective_sample_size: target.min_effective_sample_size(),
        top_slot_support,
        warnings,
    })
}

/// One showing of an item to a user: (list time, request number, slot).
type Shown = (i64, usize, usize);

/// The (request number, slot) pairs credited with a reward: a reward event by the user on the
/// item at most the window after a list that showed it, credited to the latest such list.
fn attribute(
    requests: &[LoggedRequest],
    events: &[StoredFeedback],
    options: &ReplayOptions,
) -> HashSet<(usize, usize)> {
    let mut shown: HashMap<(&str, &str), Vec<Shown>> = HashMap::new();
    for (number, r) in requests.iter().enumerate() {
        for (slot, item) in r.items.iter().enumerate() {
            shown
                .entry((r.user.as_str(), item.as_str()))
                .or_default()
                .push((r.timestamp, number, slot));
        }
    }
    for lists in shown.values_mut() {
        lists.sort_unstable();
    }
    let mut out = HashSet::new();
    for e in events {
        let f = &e.feedback;
        if !options.reward_events.contains(&f.event_type) {
            continue;
        }
        let Some(lists) = shown.get(&(f.user.as_str(), f.item.as_str())) else {
            continue;
        };
        let before = lists.partition_point(|l| l.0 <= f.timestamp);
        if let Some(&(at, number, slot)) = before.checked_sub(1).map(|i| &lists[i]) {
            if f.timestamp - at <= options.attribution_window_seconds {
                out.insert((number, slot));
            }
        }
    }
    out
}
