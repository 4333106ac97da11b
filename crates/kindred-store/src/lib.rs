//! Kindred's store: users and items with their features, the feedback event log, impressions and
//! the model registry, on SQLite (embedded, one file) or PostgreSQL (production).
//!
//! [`Store`] is one async API over both backends; every method validates its input the same way
//! before the backend sees it (bad ids are [`Error::InvalidInput`], never a panic), and backend
//! failures are [`Error::Store`] naming the operation. Calls must run inside a tokio runtime.
//!
//! The store is also the feature store: [`Store::load_dataset`] exports the interactions and the
//! user and item features exactly as stored, so a model trains on what it will be served with.
//!
//! Data governance: [`Store::erase_user`] / [`Store::erase_item`] remove every row naming an id
//! and leave a hashed tombstone ([`erasure`]) that keeps the id out of later training sets and
//! imports; [`Store::delete_model`] removes a registry version unless it is live or an
//! experiment still serves it ([`retention`]).

pub mod dataset;
mod decode;
pub mod erasure;
pub mod import;
pub mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod records;
pub mod retention;
pub mod sqlite;

use kindred_core::{Dataset, Error, Result};

pub use erasure::{id_hash, ErasedKind, ErasureReport, Erasures};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use records::{
    check_id, ExperimentRecord, ExperimentStatus, Exposure, Feedback, Impression, ImpressionList,
    InsertReport, Item, ModelRecord, NewModel, ShownItem, StoreCounts, StoredFeedback, User,
    MAX_ID_BYTES, MAX_NAME_BYTES,
};
pub use retention::DeletionBlocker;
pub use sqlite::SqliteStore;

use records::at;

/// A store on one of the two backends. Cheap to clone: clones share connections.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// Forwards a call to whichever backend this is.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

fn check_all<T>(records: &[T], check: impl Fn(&T) -> Result<()>) -> Result<()> {
    records
        .iter()
        .enumerate()
        .try_for_each(|(i, r)| at(i, check(r)))
}

fn check_ids(what: &str, ids: &[String]) -> Result<()> {
    check_all(ids, |id| check_id(what, id))
}

impl Store {
    /// Opens the store at `location`: a `postgres://` or `postgresql://` URL, or else a SQLite
    /// file path (an optional `sqlite:` prefix is accepted). Creates and migrates as needed.
    pub async fn open(location: &str) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Store::Postgres(PostgresStore::open(location, None).await?));
            #[cfg(not(feature = "postgres"))]
            return Err(Error::InvalidInput(
                "this build of kindred has no PostgreSQL support; rebuild with the `postgres` \
                 feature (`cargo install --path crates/kindred-cli --features postgres`, or \
                 `--features full`)"
                    .into(),
            ));
        }
        let path = location.strip_prefix("sqlite:").unwrap_or(location);
        if path.is_empty() {
            return Err(Error::InvalidInput("store location is empty".into()));
        }
        Ok(Store::Sqlite(SqliteStore::open(path).await?))
    }

    /// Closes the store before the process ends: SQLite checkpoints its write-ahead log and
    /// closes its connections (leaving no `-wal`/`-shm` files), and later calls on it fail;
    /// PostgreSQL needs nothing, its connections end with the process.
    pub async fn close(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Ok(()),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
        }
    }

    /// Inserts or replaces one user.
    pub async fn upsert_user(&self, user: &User) -> Result<()> {
        self.upsert_users(std::slice::from_ref(user)).await
    }

    /// Inserts or replaces users in one transaction; when an id repeats, the last one wins.
    pub async fn upsert_users(&self, users: &[User]) -> Result<()> {
        check_all(users, User::check)?;
        let users = records::last_per_id(users, |u| u.id.as_str());
        dispatch!(self.upsert_users(users))
    }

    /// The user with this id, if stored.
    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        Ok(self.get_users(&[id.to_owned()]).await?.pop())
    }

    /// The stored users among `ids`, in the order asked (missing ids are left out).
    pub async fn get_users(&self, ids: &[String]) -> Result<Vec<User>> {
        check_ids("user id", ids)?;
        dispatch!(self.get_users(ids.to_vec()))
    }

    /// Deletes a user's record (features); returns whether it existed. Feedback is an event log
    /// and stays.
    pub async fn delete_user(&self, id: &str) -> Result<bool> {
        Ok(self.delete_users(&[id.to_owned()]).await? > 0)
    }

    /// Deletes users; returns how many existed.
    pub async fn delete_users(&self, ids: &[String]) -> Result<usize> {
        check_ids("user id", ids)?;
        dispatch!(self.delete_users(ids.to_vec()))
    }

    /// Inserts or replaces one item.
    pub async fn upsert_item(&self, item: &Item) -> Result<()> {
        self.upsert_items(std::slice::from_ref(item)).await
    }

    /// Inserts or replaces items in one transaction; when an id repeats, the last one wins.
    pub async fn upsert_items(&self, items: &[Item]) -> Result<()> {
        check_all(items, Item::check)?;
        let items = records::last_per_id(items, |i| i.id.as_str());
        dispatch!(self.upsert_items(items))
    }

    /// The item with this id, if stored.
    pub async fn get_item(&self, id: &str) -> Result<Option<Item>> {
        Ok(self.get_items(&[id.to_owned()]).await?.pop())
    }

    /// The stored items among `ids`, in the order asked (missing ids are left out).
    pub async fn get_items(&self, ids: &[String]) -> Result<Vec<Item>> {
        check_ids("item id", ids)?;
        dispatch!(self.get_items(ids.to_vec()))
    }

    /// Deletes an item's record; returns whether it existed. (To stop recommending an item but
    /// keep its history and features, set `hidden` instead.)
    pub async fn delete_item(&self, id: &str) -> Result<bool> {
        Ok(self.delete_items(&[id.to_owned()]).await? > 0)
    }

    /// Deletes items; returns how many existed.
    pub async fn delete_items(&self, ids: &[String]) -> Result<usize> {
        check_ids("item id", ids)?;
        dispatch!(self.delete_items(ids.to_vec()))
    }

    /// Appends a batch of feedback events in one transaction: all or none are written. Events
    /// whose event id is already stored (or repeats within the batch) are skipped and counted as
    /// duplicates, so a client may safely resend a batch it got no answer for. When this returns
    /// `Ok`, the batch survives a crash of the process.
    pub async fn insert_feedback(&self, batch: &[Feedback]) -> Result<InsertReport> {
        check_all(batch, Feedback::check)?;
        if batch.is_empty() {
            return Ok(InsertReport::default());
        }
        dispatch!(self.insert_feedback(batch.to_vec()))
    }

    /// Up to `limit` events with a timestamp at or after `since`, oldest first (ties in log order).
    pub async fn feedback_since(&self, since: i64, limit: usize) -> Result<Vec<StoredFeedback>> {
        dispatch!(self.feedback_since(since, limit))
    }

    /// The newest `limit` events with `since <= timestamp < until`, returned oldest first (ties
    /// in log order): a bounded read of a time window that, when it must cut, keeps the most
    /// recent part (what monitoring compares) rather than the oldest.
    pub async fn newest_feedback_between(
        &self,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<StoredFeedback>> {
        dispatch!(self.newest_feedback_between(since, until, limit))
    }

    /// Up to `limit` events stored after log position `seq` (0: from the start), in log order: a
    /// cursor for incremental consumers (retraining, streaming).
    pub async fn feedback_after(&self, seq: i64, limit: usize) -> Result<Vec<StoredFeedback>> {
        dispatch!(self.feedback_after(seq, limit))
    }

    /// The user's `limit` most recent events, newest first.
    pub async fn feedback_for_user(&self, user: &str, limit: usize) -> Result<Vec<StoredFeedback>> {
        check_id("user id", user)?;
        dispatch!(self.feedback_for_user(user.to_owned(), limit))
    }

    /// Appends shown lists in one transaction (a list without items is not stored); returns how
    /// many impressions (items) were written.
    pub async fn insert_impressions(&self, mut batch: Vec<ImpressionList>) -> Result<usize> {
        check_all(&batch, ImpressionList::check)?;
        batch.retain(|list| !list.items.is_empty());
        if batch.is_empty() {
            return Ok(0);
        }
        dispatch!(self.insert_impressions(batch))
    }

    /// How often each item was shown to `user`, by item id.
    pub async fn impression_counts(&self, user: &str) -> Result<Vec<(String, u64)>> {
        check_id("user id", user)?;
        dispatch!(self.impression_counts(user.to_owned()))
    }

    /// How often `item` was shown to `user`.
    pub async fn impression_count(&self, user: &str, item: &str) -> Result<u64> {
        check_id("item id", item)?;
        let counts = self.impression_counts(user).await?;
        Ok(counts
            .iter()
            .find(|(i, _)| i == item)
            .map_or(0, |(_, n)| *n))
    }

    /// Adds a model version (not live); registering an existing version is an error.
    pub async fn register_model(&self, model: &NewModel) -> Result<()> {
        model.check()?;
        dispatch!(self.register_model(model.clone()))
    }

    /// Every registered version, oldest first.
    pub async fn list_models(&self) -> Result<Vec<ModelRecord>> {
        dispatch!(self.list_models())
    }

    /// One registered version.
    pub async fn get_model(&self, version: &str) -> Result<Option<ModelRecord>> {
        check_id("model version", version)?;
        dispatch!(self.get_model(version.to_owned()))
    }

    /// The version being served, if any.
    pub async fn live_model(&self) -> Result<Option<ModelRecord>> {
        dispatch!(self.live_model())
    }

    /// Makes `version` the live one, atomically (at most one version is live at any time).
    /// Activating the live version changes nothing.
    pub async fn activate_model(&self, version: &str) -> Result<ModelRecord> {
        check_id("model version", version)?;
        dispatch!(self.activate_model(version.to_owned()))
    }

    /// Makes the version that was live before the current one live again, atomically, and
    /// forgets the current activation (so rolling back twice goes two steps back).
    pub async fn rollback_model(&self) -> Result<ModelRecord> {
        dispatch!(self.rollback_model())
    }

    /// Deletes a registered version and its activation history in one transaction; answers the
    /// deleted record, or None when no such version is registered. Refuses
    /// ([`Error::InvalidInput`], see [`retention::blocker`]) the live version and any version
    /// that a draft or running experiment (a canary included) serves. The artifact on disk is
    /// the caller's to remove.
    pub async fn delete_model(&self, version: &str) -> Result<Option<ModelRecord>> {
        check_id("model version", version)?;
        dispatch!(self.delete_model(version.to_owned()))
    }

    /// Adds an experiment as a draft; a name already taken is an error.
    pub async fn create_experiment(
        &self,
        name: &str,
        definition: &serde_json::Value,
        created_at: i64,
    ) -> Result<ExperimentRecord> {
        check_id("experiment name", name)?;
        let record = ExperimentRecord {
            name: name.to_owned(),
            definition: definition.clone(),
            status: ExperimentStatus::Draft,
            created_at,
            started_at: None,
            stopped_at: None,
        };
        dispatch!(self.create_experiment(record))
    }

    /// One experiment, if stored.
    pub async fn get_experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        check_id("experiment name", name)?;
        dispatch!(self.get_experiment(name.to_owned()))
    }

    /// Every experiment, oldest first.
    pub async fn list_experiments(&self) -> Result<Vec<ExperimentRecord>> {
        dispatch!(self.list_experiments())
    }

    /// Moves an experiment draft -> running (setting `started_at`) or running -> stopped
    /// (setting `stopped_at`) atomically; any other change, or an unknown name, is
    /// [`Error::InvalidInput`].
    pub async fn set_experiment_status(
        &self,
        name: &str,
        status: ExperimentStatus,
        at: i64,
    ) -> Result<ExperimentRecord> {
        check_id("experiment name", name)?;
        dispatch!(self.set_experiment_status(name.to_owned(), status, at))
    }

    /// Appends exposures in one transaction; returns how many were written.
    pub async fn insert_exposures(&self, batch: &[Exposure]) -> Result<usize> {
        check_all(batch, Exposure::check)?;
        if batch.is_empty() {
            return Ok(0);
        }
        dispatch!(self.insert_exposures(batch.to_vec()))
    }

    /// The experiment's exposures in the order they were logged.
    pub async fn exposures(&self, experiment: &str) -> Result<Vec<Exposure>> {
        check_id("experiment name", experiment)?;
        dispatch!(self.exposures(experiment.to_owned()))
    }

    /// The impressions of the requests the experiment exposed (the items of each list served).
    pub async fn experiment_impressions(&self, experiment: &str) -> Result<Vec<Impression>> {
        check_id("experiment name", experiment)?;
        dispatch!(self.experiment_impressions(experiment.to_owned()))
    }

    /// The newest `limit` impressions, oldest first (a bounded read by log position, cheap on
    /// any table size; the oldest list read may be cut): what a dashboard of recent exposure
    /// reads.
    pub async fn newest_impressions(&self, limit: usize) -> Result<Vec<Impression>> {
        dispatch!(self.newest_impressions(limit))
    }

    /// The first `limit` impressions with `since <= timestamp < until`, in the order they were
    /// written (a request's rows together; the last list read may be cut): what off-policy
    /// evaluation replays. The time range is not indexed (an index would cost every list
    /// written), so this reads the table up to where the window ends or the limit is reached.
    pub async fn impressions_between(
        &self,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Impression>> {
        dispatch!(self.impressions_between(since, until, limit))
    }

    /// The feedback of the users the experiment exposed with `since <= timestamp < until`, oldest
    /// first (ties in log order): the outcome period (`since` = start) or the pre-period.
    pub async fn experiment_feedback(
        &self,
        experiment: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<StoredFeedback>> {
        check_id("experiment name", experiment)?;
        dispatch!(self.experiment_feedback(experiment.to_owned(), since, until))
    }

    /// Erases user `id` in one transaction: their record, every feedback event, impression and
    /// exposure naming them, and leaves a tombstone holding the id's hash (see [`erasure`]).
    /// Answers the rows removed per table; erasing again removes nothing and is not an error.
    pub async fn erase_user(&self, id: &str) -> Result<ErasureReport> {
        erasure::check(ErasedKind::User, id)?;
        dispatch!(self.erase(ErasedKind::User, id.to_owned()))
    }

    /// Erases item `id` in one transaction: its record, every feedback event and impression
    /// naming it, and leaves a tombstone (see [`Store::erase_user`]).
    pub async fn erase_item(&self, id: &str) -> Result<ErasureReport> {
        erasure::check(ErasedKind::Item, id)?;
        dispatch!(self.erase(ErasedKind::Item, id.to_owned()))
    }

    /// Every tombstone left by an erasure.
    pub async fn erasures(&self) -> Result<Erasures> {
        dispatch!(self.erasures())
    }

    /// How many tombstones there are: a cheap way for a server to notice an erasure made
    /// elsewhere.
    pub async fn erasure_count(&self) -> Result<u64> {
        dispatch!(self.erasure_count())
    }

    /// The stored state of the learning exploration policy `policy` (a contextual bandit's
    /// statistics, serialised by its owner), if any.
    pub async fn bandit_state(&self, policy: &str) -> Result<Option<String>> {
        check_id("policy", policy)?;
        let policy = policy.to_owned();
        dispatch!(self.bandit_state(policy))
    }

    /// Replaces the state of `policy` with `merge(stored state)`, atomically: servers sharing a
    /// store each add what they learned without losing another's update. Returns what was
    /// written.
    pub async fn merge_bandit_state(
        &self,
        policy: &str,
        now: i64,
        merge: Box<dyn FnOnce(Option<String>) -> Result<String> + Send>,
    ) -> Result<String> {
        check_id("policy", policy)?;
        let policy = policy.to_owned();
        dispatch!(self.merge_bandit_state(policy, now, merge))
    }

    /// Removes item `id` from every stored bandit state. [`Store::erase_item`] does this in its
    /// own transaction; a server calls it once more after learning of the erasure, for a merge
    /// that carried the item in between.
    pub async fn scrub_bandit_item(&self, id: &str) -> Result<()> {
        check_id("item id", id)?;
        let id = id.to_owned();
        dispatch!(self.scrub_bandit_item(id))
    }

    /// Rows per kind.
    pub async fn counts(&self) -> Result<StoreCounts> {
        dispatch!(self.counts())
    }

    /// Everything a model trains on, from one consistent snapshot: every feedback event in log
    /// order and the user and item feature tables (see [`dataset`] for the mapping). Events,
    /// users and items whose id an erasure tombstoned are left out, however they got back in.
    pub async fn load_dataset(&self, name: &str) -> Result<Dataset> {
        dispatch!(self.load_dataset(name.to_owned()))
    }
}
