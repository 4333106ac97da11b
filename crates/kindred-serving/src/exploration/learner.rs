//! Online learning of the contextual bandits (`[exploration] policy = "linucb"`,
//! `"linear-thompson"`, `"thompson"`): every list a bandit fills for a known user waits here
//! with its items' feature rows until its attribution window closes; a reward event
//! (`exploration.reward`, e.g. a click) on one of its items inside the window marks that item.
//! When the window closes every item is learned, clicked or not. The posterior each request
//! reads is rebuilt from the learned state on the background tick, and built ahead for the
//! catalog of a snapshot before it is swapped in ([`BanditLearners::prepare`]), so no request
//! rebuilds one under the learners' lock.
//!
//! State is kept in the store under the policy id (`version#rank`): each flush adds what this
//! server learned since the last one to the stored state in one atomic read-modify-write
//! ([`kindred_store::Store::merge_bandit_state`]), then takes the merged state as its base, so
//! servers on one store share what they learn and a restart resumes from it. A server's first
//! flush (on its first tick) is how it loads the stored state. A closing list is learned once,
//! into the delta; the posterior is rebuilt from base and delta merged, off the request path.
//!
//! Erasure: the store scrubs an erased item from every stored state in the erasure's
//! transaction; this server then forgets the item and the user ([`BanditLearners::forget_item`],
//! [`BanditLearners::forget_user`]), and a flush never sends an item erased by the time it runs.
//!
//! Everything keyed by request data is bounded: lists waiting per policy
//! ([`MAX_PENDING_LISTS`], the oldest learned early when full), one waiting list per user (a
//! newer list closes the older one's window), and policies ([`MAX_POLICIES`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kindred_core::IdMap;
use kindred_rank::exploration::{BanditPosterior, BanditState, ExplorationConfig};
use kindred_rank::RankedItem;
use kindred_store::{Feedback, Store};

/// Most lists per policy waiting for their attribution window to close.
pub const MAX_PENDING_LISTS: usize = 100_000;
/// Most policies learned at once (model versions x bandit rank configs).
pub const MAX_POLICIES: usize = 64;
/// Seconds between two flushes of a policy's state to the store.
pub const FLUSH_SECONDS: i64 = 10;

/// One shown item waiting for its reward.
struct PendingItem {
    /// Index in the list's catalog.
    item: u32,
    /// The posterior's shared prediction and item correction when it was shown.
    shared: f64,
    correction: f64,
    rewarded: bool,
    /// Erased while waiting: never learned.
    erased: bool,
}

/// A list waiting for its attribution window to close: its items (indices into the catalog it
/// was drawn from, so no id is copied per item) and their feature rows in one buffer.
struct PendingList {
    seq: u64,
    shown_at: i64,
    catalog: Arc<IdMap>,
    items: Vec<PendingItem>,
    /// `items.len()` rows of the policy's dimension, row-major, as shown (position at the slot).
    rows: Vec<f64>,
}

struct Learner {
    config: ExplorationConfig,
    /// The stored state as of the last flush, plus any delta taken for a flush since.
    base: BanditState,
    /// What was learned here since the last flush was taken.
    delta: BanditState,
    /// A delta whose flush failed: already in `base`, sent again with the next flush.
    unsent: Option<BanditState>,
    posterior: Arc<BanditPosterior>,
    /// The catalog the posterior is indexed by.
    catalog: Arc<IdMap>,
    /// The posterior is older than the state.
    stale: bool,
    /// A posterior built ahead for the catalog of a snapshot about to be swapped in
    /// ([`BanditLearners::prepare`]), adopted by the first request on that catalog.
    prepared: Option<Published>,
    pending: HashMap<String, PendingList>,
    /// `(shown_at, user, seq)` in showing order.
    order: VecDeque<(i64, String, u64)>,
    next_seq: u64,
    last_flush: Option<i64>,
    /// Set while a flush is in flight (its delta taken, its merge not yet absorbed).
    flushing: bool,
}

impl Learner {
    fn new(config: &ExplorationConfig, catalog: &Arc<IdMap>, now: i64) -> Self {
        let state = BanditState::new(config.feature_names(), now);
        let posterior = Arc::new(state.posterior(config.ridge, catalog));
        Self {
            config: config.clone(),
            delta: state.clone(),
            base: state,
            unsent: None,
            posterior,
            catalog: Arc::clone(catalog),
            stale: false,
            prepared: None,
            pending: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            last_flush: None,
            flushing: false,
        }
    }

    /// Learns every item of `user`'s waiting list.
    fn close(&mut self, user: &str) {
        let Some(list) = self.pending.remove(user) else {
            return;
        };
        self.delta
            .decay_to(list.shown_at, self.config.half_life_seconds());
        let d = self.delta.dim();
        for (item, row) in list.items.iter().zip(list.rows.chunks_exact(d.max(1))) {
            if item.erased {
                continue;
            }
            let reward = f64::from(u8::from(item.rewarded));
            let id = list.catalog.external(item.item);
            self.delta
                .observe(row, id, reward, item.shared, item.correction);
        }
        self.stale = true;
    }

    /// Everything this server knows: the base with the delta added.
    fn learned(&self) -> BanditState {
        let mut state = self.base.clone();
        state.merge(&self.delta, self.config.half_life_seconds());
        state
    }

    /// Closes the lists whose window ended by `now`.
    fn close_expired(&mut self, now: i64) {
        let window = self.config.attribution_window as i64;
        while let Some((shown_at, user, seq)) = self.order.front().cloned() {
            if shown_at + window > now {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&user).is_some_and(|l| l.seq == seq) {
                self.close(&user);
            }
        }
    }

    fn refresh(&mut self, catalog: &Arc<IdMap>) {
        if !Arc::ptr_eq(&self.catalog, catalog) {
            if let Some((prepared_for, posterior)) = self
                .prepared
                .take_if(|(prepared_for, _)| Arc::ptr_eq(prepared_for, catalog))
            {
                // Built from the state as it was then: the next tick rebuilds it if it moved.
                self.catalog = prepared_for;
                self.posterior = posterior;
                self.stale = true;
                return;
            }
        }
        if self.stale || !Arc::ptr_eq(&self.catalog, catalog) {
            self.posterior = Arc::new(self.learned().posterior(self.config.ridge, catalog));
            self.catalog = Arc::clone(catalog);
            self.stale = false;
        }
    }
}

/// What the background tick hands to the store: a policy's learned delta.
pub struct Flush {
    pub policy: String,
    delta: BanditState,
    half_life: Option<f64>,
}

/// The learners of every bandit policy this server serves.
#[derive(Default)]
pub struct BanditLearners {
    learners: Mutex<HashMap<String, Learner>>,
    /// Each learner's current posterior and the catalog it is indexed by, read by every
    /// request without taking the learners' lock (which closing lists hold for longer).
    published: RwLock<HashMap<String, Published>>,
}

/// A published posterior and the catalog it is indexed by.
type Published = (Arc<IdMap>, Arc<BanditPosterior>);

impl BanditLearners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Learner>> {
        self.learners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `learner`'s posterior the one requests read (called with the learners' lock held,
    /// so publications follow the learner's own order).
    fn publish(&self, policy: &str, learner: &Learner) {
        let mut published = self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = (Arc::clone(&learner.catalog), Arc::clone(&learner.posterior));
        match published.get_mut(policy) {
            Some(slot) => *slot = entry,
            None => {
                published.insert(policy.to_owned(), entry);
            }
        }
    }

    /// The posterior a list of `policy` is drawn with (the prior for a policy not seen yet,
    /// or when [`MAX_POLICIES`] are learned already).
    pub fn posterior(
        &self,
        policy: &str,
        config: &ExplorationConfig,
        catalog: &Arc<IdMap>,
        now: i64,
    ) -> Arc<BanditPosterior> {
        {
            let published = self
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((indexed_by, posterior)) = published.get(policy) {
                if Arc::ptr_eq(indexed_by, catalog) {
                    return Arc::clone(posterior);
                }
            }
        }
        let mut learners = self.lock();
        if !learners.contains_key(policy) && learners.len() >= MAX_POLICIES {
            let state = BanditState::new(config.feature_names(), now);
            return Arc::new(state.posterior(config.ridge, catalog));
        }
        let learner = learners
            .entry(policy.to_owned())
            .or_insert_with(|| Learner::new(config, catalog, now));
        if !Arc::ptr_eq(&learner.catalog, catalog) {
            learner.refresh(catalog);
        }
        let posterior = Arc::clone(&learner.posterior);
        self.publish(policy, learner);
        posterior
    }

    /// Remembers a list `policy` showed `user` (with the posterior it was drawn from), to
    /// learn from when its window closes.
    pub fn shown(
        &self,
        policy: &str,
        user: &str,
        items: &[RankedItem],
        ids: &Arc<IdMap>,
        posterior: &BanditPosterior,
        now: i64,
    ) {
        let mut learners = self.lock();
        let Some(learner) = learners.get_mut(policy) else {
            return;
        };
        if learner.pending.contains_key(user) {
            learner.close(user);
        }
        // The showing order holds an entry per list shown, replaced ones included, so it is
        // what needs the bound (the waiting lists are never more): past it, the oldest entry
        // goes, and closes its list early if that list is still waiting.
        while learner.order.len() >= MAX_PENDING_LISTS {
            let Some((_, oldest, seq)) = learner.order.pop_front() else {
                break;
            };
            if learner.pending.get(&oldest).is_some_and(|l| l.seq == seq) {
                learner.close(&oldest);
            }
        }
        let d = posterior.dim();
        if d != learner.delta.dim() {
            return;
        }
        let mut rows = Vec::with_capacity(items.len() * d);
        let mut pending = Vec::with_capacity(items.len());
        for r in items.iter().filter(|r| r.features.len() == d) {
            // The pipeline gave each row its slot's `position` already.
            rows.extend_from_slice(&r.features);
            pending.push(PendingItem {
                item: r.item,
                shared: posterior.shared(&rows[rows.len() - d..]),
                correction: posterior.correction(r.item).0,
                rewarded: false,
                erased: false,
            });
        }
        if pending.is_empty() {
            return;
        }
        let seq = learner.next_seq;
        learner.next_seq += 1;
        learner.order.push_back((now, user.to_owned(), seq));
        learner.pending.insert(
            user.to_owned(),
            PendingList {
                seq,
                shown_at: now,
                catalog: Arc::clone(ids),
                items: pending,
                rows,
            },
        );
    }

    /// Marks the shown items that `events` reward (their type is one of the policy's
    /// `reward` types, inside the attribution window of the user's waiting list).
    pub fn feedback(&self, events: &[Feedback]) {
        let mut learners = self.lock();
        for learner in learners.values_mut() {
            if learner.pending.is_empty() {
                continue;
            }
            let window = learner.config.attribution_window as i64;
            let rewarding: HashSet<&str> =
                learner.config.reward.iter().map(String::as_str).collect();
            for event in events {
                if !rewarding.contains(event.event_type.as_str()) {
                    continue;
                }
                let Some(list) = learner.pending.get_mut(&event.user) else {
                    continue;
                };
                let at = event.timestamp;
                if at < list.shown_at || at > list.shown_at + window {
                    continue;
                }
                let Some(clicked) = list.catalog.get(&event.item) else {
                    continue;
                };
                for item in list.items.iter_mut().filter(|i| i.item == clicked) {
                    item.rewarded = true;
                }
            }
        }
    }

    /// The background tick: closes the lists whose window ended and hands out the deltas due
    /// for a flush to the store.
    pub fn tick(&self, now: i64) -> Vec<Flush> {
        let mut learners = self.lock();
        let mut due = Vec::new();
        for (policy, learner) in learners.iter_mut() {
            learner.close_expired(now);
            let flush_due = learner.last_flush.is_none_or(|t| now - t >= FLUSH_SECONDS);
            if flush_due && !learner.flushing {
                learner.flushing = true;
                learner.last_flush = Some(now);
                let half_life = learner.config.half_life_seconds();
                let fresh = BanditState::new(learner.config.feature_names(), now);
                let delta = std::mem::replace(&mut learner.delta, fresh);
                // The base holds the taken delta until the merged state comes back.
                learner.base.merge(&delta, half_life);
                let delta = match learner.unsent.take() {
                    Some(mut unsent) => {
                        unsent.merge(&delta, half_life);
                        unsent
                    }
                    None => delta,
                };
                due.push(Flush {
                    policy: policy.clone(),
                    delta,
                    half_life,
                });
            }
        }
        due
    }

    /// Drops what this server holds about erased item `id`: its statistics and its waiting
    /// impressions (the shared weights keep only sums over all items).
    pub fn forget_item(&self, id: &str) {
        for learner in self.lock().values_mut() {
            learner.base.items.remove(id);
            learner.delta.items.remove(id);
            if let Some(unsent) = &mut learner.unsent {
                unsent.items.remove(id);
            }
            for list in learner.pending.values_mut() {
                if let Some(erased) = list.catalog.get(id) {
                    for item in list.items.iter_mut().filter(|i| i.item == erased) {
                        item.erased = true;
                    }
                }
            }
            learner.stale = true;
        }
    }

    /// Drops erased user `id`'s waiting list, unlearned.
    pub fn forget_user(&self, id: &str) {
        for learner in self.lock().values_mut() {
            learner.pending.remove(id);
            learner.order.retain(|(_, user, _)| user != id);
        }
    }

    /// Adds a flush's delta to the stored state and takes the result as this server's base
    /// (what was learned since the delta was taken stays in the delta). `erased` tells the
    /// items erased by the time the store runs the merge: they are never sent. On a store error
    /// the delta is kept to go with the next flush.
    pub async fn flush(
        &self,
        store: &Store,
        flush: Flush,
        now: i64,
        erased: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> kindred_core::Result<()> {
        let Flush {
            policy,
            delta,
            half_life,
        } = flush;
        let sent_items: Vec<String> = delta.items.keys().cloned().collect();
        let sent = delta.clone();
        let erased_at_merge = Arc::clone(&erased);
        let merged = store
            .merge_bandit_state(
                &policy,
                now,
                Box::new(move |stored| {
                    let mut sent = sent;
                    sent.items.retain(|id, _| !erased_at_merge(id));
                    let mut state = stored
                        .and_then(|s| serde_json::from_str::<BanditState>(&s).ok())
                        .filter(|s| s.features == sent.features)
                        .unwrap_or_else(|| BanditState::new(sent.features.clone(), sent.time));
                    state.merge(&sent, half_life);
                    serde_json::to_string(&state).map_err(|e| {
                        kindred_core::Error::InvalidInput(format!("bandit state: {e}"))
                    })
                }),
            )
            .await;
        let mut learners = self.lock();
        let Some(learner) = learners.get_mut(&policy) else {
            return merged.map(|_| ());
        };
        learner.flushing = false;
        match merged {
            Ok(json) => {
                let mut state: BanditState = serde_json::from_str(&json)
                    .map_err(|e| kindred_core::Error::InvalidInput(format!("bandit state: {e}")))?;
                // An item erased while the merge was on its way is not taken back.
                for id in sent_items.iter().filter(|id| erased(id)) {
                    state.items.remove(id);
                }
                learner.base = state;
                learner.stale = true;
                Ok(())
            }
            Err(e) => {
                learner.unsent = Some(delta);
                Err(e)
            }
        }
    }

    /// Rebuilds the posteriors whose state changed, for the catalog each policy last served.
    /// The rebuild (linear in the catalog) runs outside the lock, on a copy of the state, so
    /// requests drawing lists never wait for it.
    pub fn refresh_stale(&self) {
        struct Job {
            policy: String,
            base: BanditState,
            delta: BanditState,
            catalog: Arc<IdMap>,
            ridge: f64,
            half_life: Option<f64>,
        }
        let jobs: Vec<Job> = {
            let mut learners = self.lock();
            learners
                .iter_mut()
                .filter(|(_, l)| l.stale)
                .map(|(policy, l)| {
                    l.stale = false;
                    Job {
                        policy: policy.clone(),
                        base: l.base.clone(),
                        delta: l.delta.clone(),
                        catalog: Arc::clone(&l.catalog),
                        ridge: l.config.ridge,
                        half_life: l.config.half_life_seconds(),
                    }
                })
                .collect()
        };
        for job in jobs {
            let Job {
                policy,
                mut base,
                delta,
                catalog,
                ridge,
                half_life,
            } = job;
            base.merge(&delta, half_life);
            let posterior = Arc::new(base.posterior(ridge, &catalog));
            let mut learners = self.lock();
            if let Some(learner) = learners.get_mut(&policy) {
                // A request may have moved the learner to a newer catalog meanwhile.
                if Arc::ptr_eq(&learner.catalog, &catalog) {
                    learner.posterior = posterior;
                    self.publish(&policy, learner);
                }
            }
        }
    }

    /// Builds each learner's posterior for the catalog its policy will be served from once a new
    /// snapshot is swapped in (`catalog_of(policy)`; `None`: the new snapshot does not serve it),
    /// before the swap and outside the lock. The first request on the new snapshot then adopts
    /// it instead of rebuilding it (linear in the catalog) under the learners' lock while every
    /// other request waits there.
    pub fn prepare(&self, catalog_of: impl Fn(&str) -> Option<Arc<IdMap>>) {
        struct Job {
            policy: String,
            state: BanditState,
            catalog: Arc<IdMap>,
            ridge: f64,
        }
        let jobs: Vec<Job> = {
            let learners = self.lock();
            learners
                .iter()
                .filter_map(|(policy, l)| {
                    let catalog = catalog_of(policy)?;
                    (!Arc::ptr_eq(&l.catalog, &catalog)).then(|| Job {
                        policy: policy.clone(),
                        state: l.learned(),
                        catalog,
                        ridge: l.config.ridge,
                    })
                })
                .collect()
        };
        for job in jobs {
            let posterior = Arc::new(job.state.posterior(job.ridge, &job.catalog));
            if let Some(learner) = self.lock().get_mut(&job.policy) {
                learner.prepared = Some((job.catalog, posterior));
            }
        }
    }

    /// True while no bandit policy has served a list (the background tick has nothing to do).
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Per policy: lists waiting, observations learned (decayed) and mean reward.
    pub fn summary(&self) -> Vec<(String, usize, f64, f64)> {
        let learners = self.lock();
        let mut out: Vec<_> = learners
            .iter()
            .map(|(policy, l)| {
                let half_life = l.config.half_life_seconds();
                let now = l.base.time.max(l.delta.time);
                let (base_n, base_r) = l.base.totals_at(now, half_life);
                let (delta_n, delta_r) = l.delta.totals_at(now, half_life);
                let (observations, rewards) = (base_n + delta_n, base_r + delta_r);
                let mean = if observations > 0.0 {
                    rewards / observations
                } else {
                    0.0
                };
                (policy.clone(), l.pending.len(), observations, mean)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindred_rank::exploration::ExplorationKind;
    use kindred_rank::fallback::{ItemSource, Source};

    fn catalog() -> Arc<IdMap> {
        let mut ids = IdMap::new();
        for i in 0..3 {
            ids.intern(&format!("i{i}"));
        }
        Arc::new(ids)
    }

    fn config() -> ExplorationConfig {
        ExplorationConfig {
            policy: ExplorationKind::Thompson,
            attribution_window: 60,
            ..ExplorationConfig::default()
        }
    }

    fn ranked(item: u32) -> RankedItem {
        RankedItem {
            item,
            score: 0.0,
            source: ItemSource {
                source: Source::Popular,
                relaxed: None,
            },
            propensity: 1.0,
            explored: false,
            features: vec![1.0],
        }
    }

    fn click(user: &str, item: &str, at: i64) -> Feedback {
        Feedback {
            user: user.into(),
            item: item.into(),
            event_type: "click".into(),
            value: None,
            timestamp: at,
            event_id: None,
        }
    }

    #[test]
    fn rewards_inside_the_window_are_learned_when_it_closes() {
        let learners = BanditLearners::default();
        let ids = catalog();
        let posterior = learners.posterior("v1#b", &config(), &ids, 100);
        learners.shown("v1#b", "u1", &[ranked(0), ranked(1)], &ids, &posterior, 100);
        learners.feedback(&[click("u1", "i1", 130), click("u1", "i0", 500)]);
        // Not closed yet: nothing learned.
        learners.tick(150);
        assert_eq!(learners.summary()[0].2, 0.0);
        learners.tick(161);
        learners.refresh_stale();
        let (_, waiting, observations, mean) = learners.summary()[0].clone();
        assert_eq!((waiting, observations), (0, 2.0));
        assert!((mean - 0.5).abs() < 1e-12, "one of two items rewarded");
        let posterior = learners.posterior("v1#b", &config(), &ids, 170);
        assert!(posterior.correction(1).0 > posterior.correction(0).0);
    }

    #[test]
    fn a_delta_taken_for_a_flush_still_counts_until_the_merged_state_returns() {
        let learners = BanditLearners::default();
        let ids = catalog();
        let posterior = learners.posterior("p", &config(), &ids, 0);
        learners.shown("p", "u1", &[ranked(0), ranked(2)], &ids, &posterior, 0);
        learners.feedback(&[click("u1", "i2", 10)]);
        // The first tick closes the list and takes what it taught for a flush.
        let flushes = learners.tick(61);
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].delta.observations, 2.0);
        assert_eq!(flushes[0].delta.items["i2"].weight, 1.0);
        learners.refresh_stale();
        let (_, _, observations, mean) = learners.summary()[0].clone();
        assert_eq!((observations, mean), (2.0, 0.5));
        let posterior = learners.posterior("p", &config(), &ids, 70);
        assert!(posterior.correction(2).0 > posterior.correction(0).0);
        // An item erased while its list waits is never learned.
        learners.shown("p", "u2", &[ranked(1)], &ids, &posterior, 70);
        learners.forget_item("i1");
        learners.shown("p", "u2", &[ranked(0)], &ids, &posterior, 80);
        assert_eq!(learners.summary()[0].2, 2.0);
    }

    #[test]
    fn waiting_lists_are_bounded_and_a_newer_list_closes_the_older() {
        let learners = BanditLearners::default();
        let ids = catalog();
        let posterior = learners.posterior("p", &config(), &ids, 0);
        learners.shown("p", "u", &[ranked(0)], &ids, &posterior, 0);
        learners.shown("p", "u", &[ranked(1)], &ids, &posterior, 1);
        let (_, waiting, observations, _) = learners.summary()[0].clone();
        assert_eq!((waiting, observations), (1, 1.0));
        for n in 0..MAX_PENDING_LISTS + 10 {
            learners.shown("p", &format!("x{n}"), &[ranked(2)], &ids, &posterior, 2);
        }
        assert_eq!(learners.summary()[0].1, MAX_PENDING_LISTS);
        // One user asking again and again replaces their own list: the showing order that
        // remembers every list stays bounded too, and never closes a list that is not the oldest.
        let fresh = BanditLearners::default();
        fresh.posterior("p", &config(), &ids, 0);
        for n in 0..MAX_PENDING_LISTS + 10 {
            fresh.shown("p", "same", &[ranked(0)], &ids, &posterior, n as i64);
        }
        fresh.shown("p", "other", &[ranked(1)], &ids, &posterior, 0);
        let learners_map = fresh.lock();
        let learner = &learners_map["p"];
        assert!(learner.order.len() <= MAX_PENDING_LISTS);
        assert_eq!(learner.pending.len(), 2);
    }

    #[test]
    fn a_posterior_prepared_for_the_next_catalog_is_adopted_by_its_first_request() {
        let learners = BanditLearners::default();
        let ids = catalog();
        let posterior = learners.posterior("p", &config(), &ids, 0);
        learners.shown("p", "u1", &[ranked(0), ranked(2)], &ids, &posterior, 0);
        learners.feedback(&[click("u1", "i2", 10)]);
        learners.tick(61);
        learners.refresh_stale();
        // The next snapshot's catalog: the same items in another order, and one more.
        let mut next = IdMap::new();
        for id in ["i3", "i2", "i1", "i0"] {
            next.intern(id);
        }
        let next = Arc::new(next);
        learners.prepare(|policy| (policy == "p").then(|| Arc::clone(&next)));
        let prepared = {
            let map = learners.lock();
            let (prepared_for, posterior) = map["p"].prepared.clone().unwrap();
            assert!(Arc::ptr_eq(&prepared_for, &next));
            assert!(
                Arc::ptr_eq(&map["p"].catalog, &ids),
                "the current catalog still serves"
            );
            posterior
        };
        // Requests still on the current catalog keep its posterior and leave the prepared one.
        let current = learners.posterior("p", &config(), &ids, 62);
        assert!(current.correction(2).0 > current.correction(0).0);
        {
            let map = learners.lock();
            assert!(Arc::ptr_eq(&map["p"].catalog, &ids));
            assert!(map["p"].prepared.is_some());
        }
        // The first request on the new catalog adopts the prepared posterior, built from what
        // was learned, indexed by the new catalog.
        let adopted = learners.posterior("p", &config(), &next, 63);
        assert!(Arc::ptr_eq(&adopted, &prepared));
        assert!(
            adopted.correction(1).0 > adopted.correction(3).0,
            "i2 was clicked, i0 not"
        );
        assert!(learners.lock()["p"].prepared.is_none());
        // A catalog nobody prepared for is still built on demand.
        let other = catalog();
        let built = learners.posterior("p", &config(), &other, 64);
        assert!(built.correction(2).0 > built.correction(0).0);
    }

    #[test]
    fn policies_past_the_cap_get_the_prior_and_learn_nothing() {
        let learners = BanditLearners::default();
        let ids = catalog();
        for n in 0..MAX_POLICIES + 3 {
            learners.posterior(&format!("p{n}"), &config(), &ids, 0);
        }
        assert_eq!(learners.summary().len(), MAX_POLICIES);
        // What requests read without the lock is bounded the same way.
        let published = learners.published.read().unwrap().len();
        assert_eq!(published, MAX_POLICIES);
    }
}
