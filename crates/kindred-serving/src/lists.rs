//! [`ListService`]: every list the server answers (a known user's recommendations, a list for
//! someone the request describes, popular/trending/latest, similar items and users) and
//! predicted scores, over the current snapshot and the users' real-time feedback.
//!
//! Every list carries a `request_id` (later clicks name it so they can be attributed), the
//! `model_version` that produced it, and per item its score and source. A list served in an
//! experiment always logs its exposure and impressions (through the batched exposure writer);
//! other lists log impressions only when asked.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use kindred_rank::exploration::{BanditPosterior, ExplorationConfig};
use kindred_rank::{RankedItem, RequestFilters};
use kindred_store::{ImpressionList, ShownItem};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::unix_now;
use crate::error::{Error, Result};
use crate::experiments::Assignment;
use crate::exploration::PolicyId;
use crate::monitor::online::OnlineList;
use crate::monitor::skew::Observed;
use crate::monitor::Monitor;
use crate::served_item::ServedItem;
use crate::snapshot::{FallbackList, ListRequest, Snapshot, DEFAULT_RANK};
use crate::state::ServingState;

/// The experiment and variant a list came from.
#[derive(Debug, Clone, Serialize)]
pub struct ServedArm {
    pub name: String,
    pub variant: String,
}

/// A served list.
#[derive(Debug, Clone, Serialize)]
pub struct ServedList {
    pub request_id: String,
    pub model_version: Option<String>,
    pub user: Option<String>,
    /// Shared with the cache.
    #[serde(serialize_with = "shared_items")]
    pub items: Arc<Vec<ServedItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ServedArm>,
}

fn shared_items<S: serde::Serializer>(
    items: &Arc<Vec<ServedItem>>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    items.as_slice().serialize(serializer)
}

/// A known user's list.
#[derive(Debug, Clone)]
pub struct UserListRequest {
    pub user: String,
    pub n: usize,
    pub offset: usize,
    pub filters: RequestFilters,
    /// A named rank config; an experiment arm's own config wins.
    pub rank: Option<String>,
    /// Write the list to the impressions log.
    pub write_impressions: bool,
}

/// A list for someone the request describes.
#[derive(Debug, Clone)]
pub struct DescribedUserRequest {
    /// A known user to start from; the interactions add to their history.
    pub user: Option<String>,
    /// Item ids the user interacted with, oldest first.
    pub interactions: Vec<String>,
    /// User features (the segment fallback reads its column here).
    pub features: Map<String, Value>,
    pub n: usize,
    pub offset: usize,
    pub filters: RequestFilters,
    pub rank: Option<String>,
}

/// A list for a described user, and the interactions naming items the catalog does not have.
#[derive(Debug, Clone)]
pub struct DescribedList {
    pub list: ServedList,
    pub ignored_interactions: Vec<String>,
}

/// Who or what an entry or a similar-to list is about: `{"item": id}` or `{"user": id}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Item(String),
    User(String),
}

/// One entry of a list: its subject, score (users who interacted with it for popular, trending
/// and latest; similarity otherwise) and source.
#[derive(Debug, Clone, Serialize)]
pub struct Scored<S> {
    #[serde(flatten)]
    pub subject: Subject,
    pub score: S,
    pub source: &'static str,
}

/// The entries of a list, under `items` or `users`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Entries<S> {
    Items(Vec<Scored<S>>),
    Users(Vec<Scored<S>>),
}

/// A list that is not personal: popular, trending or latest items (`like` none), or the items
/// or users similar to `like`.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredList<S> {
    pub request_id: String,
    pub model_version: Option<String>,
    #[serde(flatten)]
    pub like: Option<Subject>,
    #[serde(flatten)]
    pub entries: Entries<S>,
}

/// One predicted score.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub user: String,
    pub item: String,
    pub score: Option<f32>,
}

/// Predicted scores of (user, item) pairs.
#[derive(Debug, Clone, Serialize)]
pub struct Predictions {
    pub model_version: Option<String>,
    pub predictions: Vec<Prediction>,
}

/// Answers lists over the serving state; records what it serves in the online metrics.
#[derive(Clone)]
pub struct ListService {
    state: Arc<ServingState>,
    monitor: Arc<Monitor>,
}

/// The served items of a ranked list; `explored` lists carry each item's propensity.
fn served(snapshot: &Snapshot, list: &[RankedItem], explored: bool) -> Vec<ServedItem> {
    list.iter()
        .map(|r| ServedItem {
            item: snapshot.items.external(r.item).to_owned(),
            score: Some(r.score).filter(|s| s.is_finite()),
            source: r.source.to_string(),
            propensity: explored.then_some(r.propensity),
            explored: r.explored,
        })
        .collect()
}

/// The policy an impression names: the model version that produced the list, and for a list an
/// `[exploration]` section filled, `#` and the rank config's name (see [`PolicyId`]).
fn policy_id(snapshot: &Snapshot, exploring_rank: Option<&str>) -> String {
    PolicyId {
        version: snapshot.version().map(str::to_owned),
        rank: exploring_rank.map(str::to_owned),
    }
    .to_string()
}

/// The impression log's record of one served list: one row of the store, its items inside.
fn impression_list(
    request_id: &str,
    user: &str,
    items: &[ServedItem],
    policy: String,
    now: i64,
    experiment: Option<&str>,
) -> ImpressionList {
    ImpressionList {
        request_id: request_id.to_owned(),
        user: user.to_owned(),
        policy,
        timestamp: now,
        experiment: experiment.map(str::to_owned),
        items: items
            .iter()
            .enumerate()
            .map(|(slot, i)| ShownItem {
                item: i.item.clone(),
                slot: slot as u32,
                propensity: i.propensity,
            })
            .collect(),
    }
}

/// The seed of one exploring list: the config's seed mixed with the request id, so a logged list
/// can be drawn again.
fn exploration_seed(config_seed: u64, request_id: &str) -> u64 {
    kindred_core::rng::mix64(config_seed ^ kindred_core::rng::stable_hash(request_id.as_bytes()))
}

fn check_rank(snapshot: &Snapshot, rank: Option<&str>) -> Result<()> {
    match rank {
        Some(name) if !snapshot.has_rank(name) => Err(Error::invalid(
            "unknown_rank_config",
            format!(
                "unknown rank config `{name}`; configured: {}",
                snapshot.rank_names().collect::<Vec<_>>().join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

impl ListService {
    pub fn new(state: Arc<ServingState>, monitor: Arc<Monitor>) -> Self {
        Self { state, monitor }
    }

    /// The list and its impressions, written in the background: always for a list in an
    /// experiment or one an exploration policy filled and its `log_share` picked
    /// (`exploring_rank`: off-policy evaluation reads them), else when asked.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        snapshot: &Snapshot,
        request_id: String,
        user: Option<&str>,
        request_features: Option<&Map<String, Value>>,
        items: Arc<Vec<ServedItem>>,
        write_impressions: bool,
        exploring_rank: Option<&str>,
        experiment: Option<&Assignment>,
        started: Instant,
    ) -> ServedList {
        let state = &self.state;
        state
            .counters
            .observe_sources(items.iter().map(|i| i.source.as_str()));
        // An erased user is served, but nothing about them is kept: no rows, no recent lists.
        let recorded = user.filter(|u| !snapshot.user_erased(u));
        let variant_label = experiment.map(|a| format!("{}/{}", a.experiment, a.variant));
        self.monitor.online.record_list(OnlineList {
            user: recorded,
            model_version: snapshot.version(),
            variant: variant_label.as_deref(),
            items: &items,
            latency: started.elapsed(),
            item_features: snapshot.data.item_features.as_deref(),
        });
        if let Some((live, profile)) = snapshot
            .live
            .as_ref()
            .and_then(|l| Some((l, l.profile.as_ref()?)))
        {
            self.monitor.skew.observe(Observed {
                version: &live.version,
                profile,
                user: recorded,
                request_features: request_features.filter(|f| !f.is_empty()),
                user_features: snapshot.data.user_features.as_deref(),
            });
        }
        let policy = || policy_id(snapshot, exploring_rank);
        if let (Some(assignment), Some(user)) = (experiment, recorded) {
            let now = unix_now();
            let list = impression_list(
                &request_id,
                user,
                &items,
                policy(),
                now,
                Some(&assignment.experiment),
            );
            let exposure = kindred_store::Exposure {
                experiment: assignment.experiment.clone(),
                variant: assignment.variant.clone(),
                user: user.to_owned(),
                request_id: request_id.clone(),
                timestamp: now,
            };
            state.exposure_log.log(Some(exposure), list);
        } else if let (Some(_), Some(user), false) = (exploring_rank, recorded, items.is_empty()) {
            let list = impression_list(&request_id, user, &items, policy(), unix_now(), None);
            state.exposure_log.log(None, list);
        } else if let (true, Some(user)) = (write_impressions && !items.is_empty(), recorded) {
            let list = impression_list(&request_id, user, &items, policy(), unix_now(), None);
            let state = Arc::clone(state);
            tokio::spawn(async move {
                match state.store.insert_impressions(vec![list]).await {
                    Ok(n) => {
                        state
                            .counters
                            .impressions_written
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "writing impressions failed"),
                }
            });
        }
        ServedList {
            request_id,
            model_version: snapshot.version().map(str::to_owned),
            user: user.map(str::to_owned),
            items,
            experiment: experiment.map(|a| ServedArm {
                name: a.experiment.clone(),
                variant: a.variant.clone(),
            }),
        }
    }

    /// The experiment arm `user` is in and the snapshot that serves it; the live snapshot and
    /// no arm when the user is in no experiment (or, briefly after a start, its version is not
    /// loaded yet: then nothing is logged either, so the analysis never counts a list the arm
    /// did not make).
    fn arm<'s>(
        &self,
        snapshot: &'s Snapshot,
        user: Option<&str>,
    ) -> (Option<Assignment>, &'s Snapshot) {
        let Some(assignment) = user.and_then(|u| self.state.assign(u)) else {
            return (None, snapshot);
        };
        match snapshot.for_version(assignment.model_version.as_deref()) {
            Some(serving) => (Some(assignment), serving),
            None => (None, snapshot),
        }
    }

    /// A known user's list, from the cache when the same list was served from this snapshot.
    pub fn recommend(&self, request: UserListRequest, started: Instant) -> Result<ServedList> {
        let state = &self.state;
        let UserListRequest {
            user,
            n,
            offset,
            filters,
            rank,
            write_impressions: write,
        } = request;
        let live_snapshot = state.snapshot();
        let (experiment, snapshot) = self.arm(&live_snapshot, Some(&user));
        let rank = experiment.as_ref().and_then(|a| a.rank.clone()).or(rank);
        check_rank(snapshot, rank.as_deref())?;
        let request_id = state.request_id();
        let exploration = snapshot
            .exploration(rank.as_deref())
            .filter(|_| offset == 0);
        let exploration_seed = exploration.map(|e| exploration_seed(e.seed, &request_id));
        let bandit = self.bandit(snapshot, exploration, rank.as_deref());
        let cache_key = format!(
            "{}|{n}|{offset}|{}|{}|{}",
            experiment
                .as_ref()
                .map_or(String::new(), |a| format!("{}/{}", a.experiment, a.variant)),
            rank.as_deref().unwrap_or(""),
            filters.categories.join(","),
            filters.exclude.join(",")
        );
        // Made-up ids and one-off exclusions would fill the cache with lists nobody asks for
        // again; they are cached only when the config asks. The user's real-time history is
        // read here only when it decides that (an id the catalog does not know), so a cache hit
        // for a known user costs no overlay lookup.
        let cache_config = &state.config.cache;
        let mut history = None;
        let known = cache_config.unknown_users
            || snapshot.users.get(&user).is_some()
            || !history
                .insert(state.overlay_items(&user, snapshot))
                .is_empty();
        // An exploring list is drawn afresh for every request.
        let cacheable = exploration.is_none()
            && known
            && (cache_config.exclusions || filters.exclude.is_empty());
        let cached = if cacheable {
            state.cache.get(&user, &cache_key, live_snapshot.id)
        } else {
            None
        };
        let items = match cached {
            Some(items) => items,
            None => {
                let request = ListRequest {
                    user: Some(&user),
                    history: history.unwrap_or_else(|| state.overlay_items(&user, snapshot)),
                    segment: None,
                    filters,
                    rank: rank.as_deref(),
                    now: unix_now(),
                    offset,
                    n,
                    exploration_seed,
                    bandit: bandit.as_ref().map(|b| Arc::clone(&b.1)),
                };
                let precomputed = exploration
                    .is_none()
                    .then(|| snapshot.precomputed(&request))
                    .flatten();
                let items = Arc::new(match precomputed {
                    Some(list) => served(snapshot, list, false),
                    None => {
                        let ranked = snapshot.rank_now(&request)?;
                        // Nothing is remembered of an erased user's requests.
                        let learn = bandit.as_ref().filter(|_| !snapshot.user_erased(&user));
                        if let Some((policy, posterior)) = learn {
                            let now = request.now;
                            let ids = &snapshot.items;
                            state
                                .bandits
                                .shown(policy, &user, &ranked, ids, posterior, now);
                        }
                        served(snapshot, &ranked, exploration.is_some())
                    }
                });
                if exploration.is_some() {
                    state.counters.observe_exploring_list(&items);
                }
                if cacheable {
                    state
                        .cache
                        .put(&user, &cache_key, live_snapshot.id, Arc::clone(&items));
                }
                items
            }
        };
        let exploring_rank = exploration
            .filter(|e| e.logs(&request_id))
            .map(|_| rank.as_deref().unwrap_or(DEFAULT_RANK));
        Ok(self.answer(
            snapshot,
            request_id,
            Some(&user),
            None,
            items,
            write,
            exploring_rank,
            experiment.as_ref(),
            started,
        ))
    }

    /// For a contextual bandit's exploring list: its policy id and the posterior to draw with.
    fn bandit(
        &self,
        snapshot: &Snapshot,
        exploration: Option<&ExplorationConfig>,
        rank: Option<&str>,
    ) -> Option<(String, Arc<BanditPosterior>)> {
        let config = exploration.filter(|e| e.policy.is_bandit())?;
        let policy = policy_id(snapshot, Some(rank.unwrap_or(DEFAULT_RANK)));
        let posterior = self
            .state
            .bandits
            .posterior(&policy, config, &snapshot.items, unix_now());
        Some((policy, posterior))
    }

    /// `user`'s list from `snapshot` as the live version ranks it, for inspection: no experiment
    /// arm, nothing cached, logged or counted.
    pub fn preview(&self, snapshot: &Snapshot, user: &str, n: usize) -> Result<Vec<RankedItem>> {
        let request = ListRequest {
            user: Some(user),
            history: self.state.overlay_items(user, snapshot),
            now: unix_now(),
            n,
            ..ListRequest::default()
        };
        Ok(snapshot.rank_now(&request)?)
    }

    /// A list for someone the request describes (anonymous or a known user plus interactions).
    pub fn recommend_described(
        &self,
        request: DescribedUserRequest,
        started: Instant,
    ) -> Result<DescribedList> {
        let state = &self.state;
        let live_snapshot = state.snapshot();
        let (experiment, snapshot) = self.arm(&live_snapshot, request.user.as_deref());
        let rank = experiment
            .as_ref()
            .and_then(|a| a.rank.clone())
            .or(request.rank);
        check_rank(snapshot, rank.as_deref())?;
        let mut history = match &request.user {
            Some(user) => state.overlay_items(user, snapshot),
            None => Vec::new(),
        };
        let mut ignored = Vec::new();
        for item in &request.interactions {
            match snapshot.item(item) {
                Some(i) => history.push(i),
                None => ignored.push(item.clone()),
            }
        }
        let segment = snapshot
            .segment_column(rank.as_deref())
            .and_then(|c| request.features.get(c))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let request_id = state.request_id();
        let exploration = snapshot
            .exploration(rank.as_deref())
            .filter(|_| request.offset == 0);
        let bandit = self.bandit(snapshot, exploration, rank.as_deref());
        let list_request = ListRequest {
            user: request.user.as_deref(),
            history,
            segment,
            filters: request.filters,
            rank: rank.as_deref(),
            now: unix_now(),
            offset: request.offset,
            n: request.n,
            exploration_seed: exploration.map(|e| exploration_seed(e.seed, &request_id)),
            bandit: bandit.as_ref().map(|b| Arc::clone(&b.1)),
        };
        let ranked = snapshot.rank_now(&list_request)?;
        let recorded = request.user.as_deref().filter(|u| !snapshot.user_erased(u));
        if let (Some((policy, posterior)), Some(user)) = (&bandit, recorded) {
            let ids = &snapshot.items;
            state
                .bandits
                .shown(policy, user, &ranked, ids, posterior, list_request.now);
        }
        let items = served(snapshot, &ranked, exploration.is_some());
        if exploration.is_some() {
            state.counters.observe_exploring_list(&items);
        }
        let exploring_rank = exploration
            .filter(|e| e.logs(&request_id))
            .map(|_| rank.as_deref().unwrap_or(DEFAULT_RANK));
        let list = self.answer(
            snapshot,
            request_id,
            request.user.as_deref(),
            Some(&request.features),
            Arc::new(items),
            false,
            exploring_rank,
            experiment.as_ref(),
            started,
        );
        Ok(DescribedList {
            list,
            ignored_interactions: ignored,
        })
    }

    /// A non-personal list answered from `snapshot`, with a fresh request id.
    fn scored_list<S>(
        &self,
        snapshot: &Snapshot,
        like: Option<Subject>,
        entries: Entries<S>,
    ) -> ScoredList<S> {
        ScoredList {
            request_id: self.state.request_id(),
            model_version: snapshot.version().map(str::to_owned),
            like,
            entries,
        }
    }

    /// Popular, trending or latest items.
    pub fn non_personal(
        &self,
        which: FallbackList,
        filters: &RequestFilters,
        offset: usize,
        n: usize,
    ) -> Result<ScoredList<u32>> {
        let snapshot = self.state.snapshot();
        let source = match which {
            FallbackList::Popular => "popular",
            FallbackList::Trending => "trending",
            FallbackList::Latest => "latest",
        };
        let list = snapshot.non_personal(which, filters, unix_now(), offset, n)?;
        let items = list
            .iter()
            .map(|&i| Scored {
                subject: Subject::Item(snapshot.items.external(i).to_owned()),
                score: snapshot.item_users(i),
                source,
            })
            .collect();
        Ok(self.scored_list(&snapshot, None, Entries::Items(items)))
    }

    /// The `n` items most similar to `item`.
    pub fn similar_items(&self, item: &str, n: usize) -> Result<ScoredList<f32>> {
        let snapshot = self.state.snapshot();
        let Some(index) = snapshot.item(item) else {
            return Err(Error::not_found("item", item));
        };
        let (found, source) = snapshot.similar_items(index, n)?;
        let items = found
            .iter()
            .map(|s| Scored {
                subject: Subject::Item(snapshot.items.external(s.item).to_owned()),
                score: s.score,
                source,
            })
            .collect();
        let like = Subject::Item(item.to_owned());
        Ok(self.scored_list(&snapshot, Some(like), Entries::Items(items)))
    }

    /// The `n` users most similar to `user`.
    pub fn similar_users(&self, user: &str, n: usize) -> Result<ScoredList<f32>> {
        let snapshot = self.state.snapshot();
        let Some((found, source)) = snapshot.similar_users(user, n)? else {
            return Err(Error::not_found("user", user));
        };
        let users = found
            .into_iter()
            .map(|(u, score)| Scored {
                subject: Subject::User(u),
                score,
                source,
            })
            .collect();
        let like = Subject::User(user.to_owned());
        Ok(self.scored_list(&snapshot, Some(like), Entries::Users(users)))
    }

    /// The model's score of each (user, item) pair, the users' real-time feedback included.
    pub fn predict(&self, pairs: &[(String, String)]) -> Result<Predictions> {
        let snapshot = self.state.snapshot();
        let mut predictions = Vec::with_capacity(pairs.len());
        for (i, (user, item)) in pairs.iter().enumerate() {
            kindred_store::check_id(&format!("pairs[{i}][0] (user id)"), user)?;
            kindred_store::check_id(&format!("pairs[{i}][1] (item id)"), item)?;
            if snapshot.item(item).is_none() {
                return Err(Error::NotFound(format!(
                    "pairs[{i}]: item `{item}` not found"
                )));
            }
            predictions.push(Prediction {
                user: user.clone(),
                item: item.clone(),
                score: snapshot.predict(user, item, &self.state.overlay_items(user, &snapshot)),
            });
        }
        Ok(Predictions {
            model_version: snapshot.version().map(str::to_owned),
            predictions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scored_lists_keep_the_api_shape() {
        let similar = ScoredList {
            request_id: "r-1".into(),
            model_version: Some("v1".into()),
            like: Some(Subject::User("u1".into())),
            entries: Entries::Users(vec![Scored {
                subject: Subject::User("u2".into()),
                score: 0.5f32,
                source: "model",
            }]),
        };
        assert_eq!(
            json!(similar),
            json!({
                "request_id": "r-1",
                "model_version": "v1",
                "user": "u1",
                "users": [{"user": "u2", "score": 0.5, "source": "model"}],
            })
        );
        let popular = ScoredList {
            request_id: "r-2".into(),
            model_version: None,
            like: None,
            entries: Entries::Items(vec![Scored {
                subject: Subject::Item("i1".into()),
                score: 3u32,
                source: "popular",
            }]),
        };
        assert_eq!(
            json!(popular),
            json!({
                "request_id": "r-2",
                "model_version": null,
                "items": [{"item": "i1", "score": 3, "source": "popular"}],
            })
        );
    }
}
