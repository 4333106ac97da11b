//! The production backend: PostgreSQL through tokio-postgres, with a small connection pool.
//!
//! Batches travel as arrays in one statement (`INSERT ... SELECT FROM UNNEST(...)`), so a batch of
//! a thousand events is one round trip and one transaction. JSON columns are `jsonb`, sent and read
//! as text. Connections are plain TCP/Unix socket (no TLS): run the server beside its database or
//! through a tunnel. An optional schema confines every table to it (tests use one per test).

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::TryStreamExt;
use kindred_core::{Dataset, Error, Result};
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use crate::dataset::DatasetBuilder;
use crate::erasure::{self, ErasedFilter, ErasedKind, ErasureReport, Erasures};
use crate::records::{
    check_transition, first_impressions, last_impressions, ExperimentRecord, ExperimentStatus,
    Exposure, Feedback, Impression, ImpressionList, InsertReport, Item, ModelRecord, NewModel,
    StoreCounts, StoredFeedback, User,
};
use crate::{decode, migrations, retention};

/// Connections open at most at once per store.
const POOL_SIZE: usize = 8;
/// Key of the advisory lock that serialises migrations between servers starting together.
// "kindred" in ASCII.
const MIGRATION_LOCK: i64 = 0x006b_696e_6472_6564;

const BACKEND: &str = "postgres";

fn failed(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| {
        // The server's own message (with detail) says more than the client's summary.
        let message = match e.as_db_error() {
            Some(db) => match db.detail() {
                Some(detail) => format!("{}: {detail}", db.message()),
                None => db.message().to_owned(),
            },
            None => e.to_string(),
        };
        Error::Store {
            backend: BACKEND,
            operation,
            message,
        }
    }
}

fn corrupt(operation: &'static str, message: String) -> Error {
    decode::corrupt(BACKEND, operation, message)
}

/// A store in a PostgreSQL database. Cheap to clone (shared pool).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("schema", &self.pool.schema)
            .finish()
    }
}

struct Pool {
    config: tokio_postgres::Config,
    schema: Option<String>,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A pooled connection; goes back to the pool when dropped (unless its connection died).
struct Pooled<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Set in `Pool::get` and only taken in `drop`.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(client);
            }
        }
    }
}

impl Pool {
    async fn get(&self, op: &'static str) -> Result<Pooled<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| corrupt(op, "connection pool closed".into()))?;
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(client) if client.is_closed() => continue,
                Some(client) => {
                    return Ok(Pooled {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                    })
                }
                None => break,
            }
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(failed(op))?;
        // The connection task ends when the client is dropped or the server goes away; a dead
        // connection shows up as `is_closed` and as errors on the calls that used it.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| corrupt(op, "called outside a tokio runtime".into()))?;
        runtime.spawn(connection);
        Ok(Pooled {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

/// Schema names are put into SQL, so only plain identifiers are allowed.
fn check_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "PostgreSQL schema name {schema:?}: use lower-case letters, digits and _ (at most 63)"
        )))
    }
}

const USER_COLUMNS: &str = "id, features::text";
const ITEM_COLUMNS: &str = "id, features::text, categories::text, timestamp, hidden";
const FEEDBACK_COLUMNS: &str = "seq, user_id, item_id, event_type, value, ts, event_id";
const MODEL_COLUMNS: &str =
    "version, algorithm, params::text, metrics::text, artifact, created_at, live";

fn user_of(op: &'static str, row: &Row) -> Result<User> {
    let id: String = row.try_get(0).map_err(failed(op))?;
    let text: String = row.try_get(1).map_err(failed(op))?;
    let features = decode::object(BACKEND, op, &format!("features of user {id:?}"), &text)?;
    Ok(User { id, features })
}

fn item_of(op: &'static str, row: &Row) -> Result<Item> {
    let fail = failed(op);
    let raw = (
        row.try_get(0).map_err(&fail)?,
        row.try_get(1).map_err(&fail)?,
        row.try_get(2).map_err(&fail)?,
        row.try_get(3).map_err(&fail)?,
        row.try_get(4).map_err(&fail)?,
    );
    decode::item(BACKEND, op, raw)
}

fn feedback_of(op: &'static str, row: &Row) -> Result<StoredFeedback> {
    let fail = failed(op);
    Ok(StoredFeedback {
        seq: row.try_get(0).map_err(&fail)?,
        feedback: Feedback {
            user: row.try_get(1).map_err(&fail)?,
            item: row.try_get(2).map_err(&fail)?,
            event_type: row.try_get(3).map_err(&fail)?,
            value: row.try_get(4).map_err(&fail)?,
            timestamp: row.try_get(5).map_err(&fail)?,
            event_id: row.try_get(6).map_err(&fail)?,
        },
    })
}

fn model_of(op: &'static str, row: &Row) -> Result<ModelRecord> {
    let fail = failed(op);
    let version: String = row.try_get(0).map_err(&fail)?;
    let params: String = row.try_get(2).map_err(&fail)?;
    let metrics: String = row.try_get(3).map_err(&fail)?;
    Ok(ModelRecord {
        model: NewModel {
            params: decode::json(
                BACKEND,
                op,
                &format!("params of model {version:?}"),
                &params,
            )?,
            metrics: decode::json(
                BACKEND,
                op,
                &format!("metrics of model {version:?}"),
                &metrics,
            )?,
            algorithm: row.try_get(1).map_err(&fail)?,
            artifact: row.try_get(4).map_err(&fail)?,
            created_at: row.try_get(5).map_err(&fail)?,
            version,
        },
        live: row.try_get(6).map_err(&fail)?,
    })
}

async fn model_by_version(
    client: &impl GenericClient,
    op: &'static str,
    version: &str,
) -> Result<Option<ModelRecord>> {
    let row = client
        .query_opt(
            &format!("SELECT {MODEL_COLUMNS} FROM models WHERE version = $1"),
            &[&version],
        )
        .await
        .map_err(failed(op))?;
    row.map(|r| model_of(op, &r)).transpose()
}

async fn set_live(
    client: &impl GenericClient,
    op: &'static str,
    version: &str,
    record: bool,
) -> Result<()> {
    let fail = failed(op);
    client
        .execute("UPDATE models SET live = FALSE WHERE live", &[])
        .await
        .map_err(&fail)?;
    client
        .execute(
            "UPDATE models SET live = TRUE WHERE version = $1",
            &[&version],
        )
        .await
        .map_err(&fail)?;
    if record {
        client
            .execute(
                "INSERT INTO model_activations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(&fail)?;
    }
    Ok(())
}

const EXPERIMENT_COLUMNS: &str =
    "name, definition::text, status, created_at, started_at, stopped_at";

fn experiment_of(op: &'static str, row: &Row) -> Result<ExperimentRecord> {
    let fail = failed(op);
    let raw = (
        row.try_get(0).map_err(&fail)?,
        row.try_get(1).map_err(&fail)?,
        row.try_get(2).map_err(&fail)?,
        row.try_get(3).map_err(&fail)?,
        row.try_get(4).map_err(&fail)?,
        row.try_get(5).map_err(&fail)?,
    );
    decode::experiment(BACKEND, op, raw)
}

async fn experiment_by_name(
    client: &impl GenericClient,
    op: &'static str,
    name: &str,
) -> Result<Option<ExperimentRecord>> {
    let row = client
        .query_opt(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"),
            &[&name],
        )
        .await
        .map_err(failed(op))?;
    row.map(|r| experiment_of(op, &r)).transpose()
}

async fn erasures_of(client: &impl GenericClient, op: &'static str) -> Result<Erasures> {
    let rows = client
        .query("SELECT kind, id_hash FROM erasures", &[])
        .await
        .map_err(failed(op))?;
    let mut erasures = Erasures::default();
    for row in &rows {
        let kind: String = row.try_get(0).map_err(failed(op))?;
        let hash: String = row.try_get(1).map_err(failed(op))?;
        erasures.insert_row(BACKEND, op, &kind, hash)?;
    }
    Ok(erasures)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`), confines the store to
    /// `schema` when given (creating it), and applies pending migrations.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            // Not the URL itself: it may hold a password.
            Error::InvalidInput(format!("invalid PostgreSQL URL: {e}"))
        })?;
        if let Some(schema) = schema {
            check_schema(schema)?;
            config.options(format!("-c search_path={schema}"));
        }
        let store = Self {
            pool: Arc::new(Pool {
                config,
                schema: schema.map(str::to_owned),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(POOL_SIZE),
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let op = "migrate";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        if let Some(schema) = &self.pool.schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(&fail)?;
        }
        let tx = client.transaction().await.map_err(&fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(&fail)?;
        tx.batch_execute(migrations::VERSION_TABLE)
            .await
            .map_err(&fail)?;
        let current: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await
            .map_err(&fail)?
            .try_get(0)
            .map_err(&fail)?;
        let known = migrations::POSTGRES.last().map_or(0, |m| m.0);
        if current > known {
            return Err(corrupt(op, migrations::too_new(current, known)));
        }
        for (version, sql) in migrations::POSTGRES.iter().filter(|m| m.0 > current) {
            tx.batch_execute(sql).await.map_err(&fail)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at)
                 VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[version],
            )
            .await
            .map_err(&fail)?;
        }
        tx.commit().await.map_err(&fail)
    }

    /// The schema the store is confined to, if any.
    pub fn schema(&self) -> Option<&str> {
        self.pool.schema.as_deref()
    }

    pub(crate) async fn upsert_users(&self, users: Vec<User>) -> Result<()> {
        let op = "upsert users";
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let features: Vec<String> = users
            .iter()
            .map(|u| Value::Object(u.features.clone()).to_string())
            .collect();
        let client = self.pool.get(op).await?;
        client
            .execute(
                "INSERT INTO users (id, features)
                 SELECT id, f::jsonb FROM UNNEST($1::text[], $2::text[]) AS t (id, f)
                 ON CONFLICT (id) DO UPDATE SET features = EXCLUDED.features",
                &[&ids, &features],
            )
            .await
            .map_err(failed(op))?;
        Ok(())
    }

    /// Rows for `ids` from `sql` (which takes the ids as `$1`), in the order of `ids`.
    async fn by_ids<T: Clone>(
        &self,
        op: &'static str,
        sql: &str,
        ids: &[String],
        decode: impl Fn(&'static str, &Row) -> Result<T>,
        id_of: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>> {
        let client = self.pool.get(op).await?;
        let rows = client.query(sql, &[&ids]).await.map_err(failed(op))?;
        let mut found: std::collections::HashMap<String, T> = std::collections::HashMap::new();
        for row in &rows {
            let record = decode(op, row)?;
            found.insert(id_of(&record).to_owned(), record);
        }
        // One record per id asked (twice if asked twice), as the SQLite backend answers.
        let out = ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        Ok(out)
    }

    pub(crate) async fn get_users(&self, ids: Vec<String>) -> Result<Vec<User>> {
        self.by_ids(
            "get users",
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"),
            &ids,
            user_of,
            |u| &u.id,
        )
        .await
    }

    async fn delete(&self, op: &'static str, sql: &str, ids: Vec<String>) -> Result<usize> {
        let client = self.pool.get(op).await?;
        let n = client.execute(sql, &[&ids]).await.map_err(failed(op))?;
        Ok(n as usize)
    }

    pub(crate) async fn delete_users(&self, ids: Vec<String>) -> Result<usize> {
        self.delete("delete users", "DELETE FROM users WHERE id = ANY($1)", ids)
            .await
    }

    pub(crate) async fn upsert_items(&self, items: Vec<Item>) -> Result<()> {
        let op = "upsert items";
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let features: Vec<String> = items
            .iter()
            .map(|i| Value::Object(i.features.clone()).to_string())
            .collect();
        let categories: Vec<String> = items
            .iter()
            .map(|i| Value::from(i.categories.clone()).to_string())
            .collect();
        let timestamps: Vec<Option<i64>> = items.iter().map(|i| i.timestamp).collect();
        let hidden: Vec<bool> = items.iter().map(|i| i.hidden).collect();
        let client = self.pool.get(op).await?;
        client
            .execute(
                "INSERT INTO items (id, features, categories, timestamp, hidden)
                 SELECT id, f::jsonb, c::jsonb, ts, h
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[])
                   AS t (id, f, c, ts, h)
                 ON CONFLICT (id) DO UPDATE SET features = EXCLUDED.features,
                   categories = EXCLUDED.categories, timestamp = EXCLUDED.timestamp,
                   hidden = EXCLUDED.hidden",
                &[&ids, &features, &categories, &timestamps, &hidden],
            )
            .await
            .map_err(failed(op))?;
        Ok(())
    }

    pub(crate) async fn get_items(&self, ids: Vec<String>) -> Result<Vec<Item>> {
        self.by_ids(
            "get items",
            &format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ANY($1)"),
            &ids,
            item_of,
            |i| &i.id,
        )
        .await
    }

    pub(crate) async fn delete_items(&self, ids: Vec<String>) -> Result<usize> {
        self.delete("delete items", "DELETE FROM items WHERE id = ANY($1)", ids)
            .await
    }

    pub(crate) async fn insert_feedback(&self, batch: Vec<Feedback>) -> Result<InsertReport> {
        let op = "insert feedback";
        let users: Vec<&str> = batch.iter().map(|f| f.user.as_str()).collect();
        let items: Vec<&str> = batch.iter().map(|f| f.item.as_str()).collect();
        let types: Vec<&str> = batch.iter().map(|f| f.event_type.as_str()).collect();
        let values: Vec<Option<f32>> = batch.iter().map(|f| f.value).collect();
        let times: Vec<i64> = batch.iter().map(|f| f.timestamp).collect();
        let event_ids: Vec<Option<&str>> = batch.iter().map(|f| f.event_id.as_deref()).collect();
        let client = self.pool.get(op).await?;
        // One statement is one transaction; ORDER BY keeps log order equal to batch order.
        let inserted = client
            .execute(
                "INSERT INTO feedback (user_id, item_id, event_type, value, ts, event_id)
                 SELECT u, i, e, v, ts, eid
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::real[], $5::int8[], $6::text[])
                   WITH ORDINALITY AS t (u, i, e, v, ts, eid, n)
                 ORDER BY n
                 ON CONFLICT (event_id) DO NOTHING",
                &[&users, &items, &types, &values, &times, &event_ids],
            )
            .await
            .map_err(failed(op))? as usize;
        Ok(InsertReport {
            inserted,
            duplicates: batch.len() - inserted,
        })
    }

    async fn query_feedback(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredFeedback>> {
        let client = self.pool.get(op).await?;
        let rows = client.query(sql, params).await.map_err(failed(op))?;
        rows.iter().map(|r| feedback_of(op, r)).collect()
    }

    pub(crate) async fn feedback_since(&self, since: i64, n: usize) -> Result<Vec<StoredFeedback>> {
        self.query_feedback(
            "list feedback",
            &format!(
                "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE ts >= $1 ORDER BY ts, seq LIMIT $2"
            ),
            &[&since, &decode::limit(n)],
        )
        .await
    }

    pub(crate) async fn newest_feedback_between(
        &self,
        since: i64,
        until: i64,
        n: usize,
    ) -> Result<Vec<StoredFeedback>> {
        self.query_feedback(
            "list feedback",
            &format!(
                "SELECT * FROM (SELECT {FEEDBACK_COLUMNS} FROM feedback
                 WHERE ts >= $1 AND ts < $2 ORDER BY ts DESC, seq DESC LIMIT $3) AS newest
                 ORDER BY ts, seq"
            ),
            &[&since, &until, &decode::limit(n)],
        )
        .await
    }

    pub(crate) async fn feedback_after(&self, seq: i64, n: usize) -> Result<Vec<StoredFeedback>> {
        self.query_feedback(
            "list feedback",
            &format!(
                "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE seq > $1 ORDER BY seq LIMIT $2"
            ),
            &[&seq, &decode::limit(n)],
        )
        .await
    }

    pub(crate) async fn feedback_for_user(
        &self,
        user: String,
        n: usize,
    ) -> Result<Vec<StoredFeedback>> {
        self.query_feedback(
            "list user feedback",
            &format!(
                "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE user_id = $1
                 ORDER BY ts DESC, seq DESC LIMIT $2"
            ),
            &[&user, &decode::limit(n)],
        )
        .await
    }

    pub(crate) async fn insert_impressions(&self, batch: Vec<ImpressionList>) -> Result<usize> {
        let op = "insert impressions";
        let requests: Vec<&str> = batch.iter().map(|l| l.request_id.as_str()).collect();
        let users: Vec<&str> = batch.iter().map(|l| l.user.as_str()).collect();
        let policies: Vec<&str> = batch.iter().map(|l| l.policy.as_str()).collect();
        let times: Vec<i64> = batch.iter().map(|l| l.timestamp).collect();
        let experiments: Vec<Option<&str>> =
            batch.iter().map(|l| l.experiment.as_deref()).collect();
        let sizes: Vec<i64> = batch.iter().map(|l| l.items.len() as i64).collect();
        let items: Vec<String> = batch.iter().map(ImpressionList::encoded_items).collect();
        let client = self.pool.get(op).await?;
        client
            .execute(
                "INSERT INTO impression_lists
                     (request_id, user_id, policy, ts, experiment, n_items, items)
                 SELECT r, u, pol, ts, e, n, i
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[],
                             $6::int8[], $7::text[])
                   WITH ORDINALITY AS t (r, u, pol, ts, e, n, i, pos)
                 ORDER BY pos",
                &[
                    &requests,
                    &users,
                    &policies,
                    &times,
                    &experiments,
                    &sizes,
                    &items,
                ],
            )
            .await
            .map_err(failed(op))?;
        Ok(batch.iter().map(|l| l.items.len()).sum())
    }

    pub(crate) async fn impression_counts(&self, user: String) -> Result<Vec<(String, u64)>> {
        let lists = self
            .query_lists(
                "count impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE user_id = $1",
                &[&user],
                usize::MAX,
            )
            .await?;
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for shown in lists.into_iter().flat_map(|l| l.items) {
            *counts.entry(shown.item).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }

    pub(crate) async fn register_model(&self, model: NewModel) -> Result<()> {
        let op = "register model";
        let client = self.pool.get(op).await?;
        let n = client
            .execute(
                "INSERT INTO models (version, algorithm, params, metrics, artifact, created_at, live)
                 VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, $5, $6, FALSE)
                 ON CONFLICT (version) DO NOTHING",
                &[
                    &model.version,
                    &model.algorithm,
                    &model.params.to_string(),
                    &model.metrics.to_string(),
                    &model.artifact,
                    &model.created_at,
                ],
            )
            .await
            .map_err(failed(op))?;
        if n == 0 {
            return Err(Error::InvalidInput(format!(
                "model version {:?} is already registered",
                model.version
            )));
        }
        Ok(())
    }

    pub(crate) async fn list_models(&self) -> Result<Vec<ModelRecord>> {
        let op = "list models";
        let client = self.pool.get(op).await?;
        let rows = client
            .query(
                &format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at, version"),
                &[],
            )
            .await
            .map_err(failed(op))?;
        rows.iter().map(|r| model_of(op, r)).collect()
    }

    pub(crate) async fn get_model(&self, version: String) -> Result<Option<ModelRecord>> {
        let op = "get model";
        let client = self.pool.get(op).await?;
        model_by_version(&*client, op, &version).await
    }

    pub(crate) async fn live_model(&self) -> Result<Option<ModelRecord>> {
        let op = "get live model";
        let client = self.pool.get(op).await?;
        let row = client
            .query_opt(
                &format!("SELECT {MODEL_COLUMNS} FROM models WHERE live"),
                &[],
            )
            .await
            .map_err(failed(op))?;
        row.map(|r| model_of(op, &r)).transpose()
    }

    /// Opens a transaction that holds the registry's lock, so concurrent activations and
    /// rollbacks run one after another instead of failing on the one-live index.
    async fn registry_transaction<'c>(
        client: &'c mut Client,
        op: &'static str,
    ) -> Result<tokio_postgres::Transaction<'c>> {
        let tx = client.transaction().await.map_err(failed(op))?;
        tx.batch_execute("LOCK TABLE models IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(failed(op))?;
        Ok(tx)
    }

    pub(crate) async fn activate_model(&self, version: String) -> Result<ModelRecord> {
        let op = "activate model";
        let mut client = self.pool.get(op).await?;
        let tx = Self::registry_transaction(&mut client, op).await?;
        let Some(model) = model_by_version(&tx, op, &version).await? else {
            return Err(Error::InvalidInput(format!(
                "no model version {version:?} is registered"
            )));
        };
        if !model.live {
            set_live(&tx, op, &version, true).await?;
        }
        tx.commit().await.map_err(failed(op))?;
        Ok(ModelRecord {
            live: true,
            ..model
        })
    }

    pub(crate) async fn rollback_model(&self) -> Result<ModelRecord> {
        let op = "roll back model";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        let tx = Self::registry_transaction(&mut client, op).await?;
        let rows = tx
            .query(
                "SELECT seq, version FROM model_activations ORDER BY seq DESC LIMIT 2",
                &[],
            )
            .await
            .map_err(&fail)?;
        if rows.len() < 2 {
            return Err(Error::InvalidInput(
                "no earlier live model version to roll back to".into(),
            ));
        }
        let latest: i64 = rows[0].try_get(0).map_err(&fail)?;
        let previous: String = rows[1].try_get(1).map_err(&fail)?;
        tx.execute("DELETE FROM model_activations WHERE seq = $1", &[&latest])
            .await
            .map_err(&fail)?;
        set_live(&tx, op, &previous, false).await?;
        let live = model_by_version(&tx, op, &previous)
            .await?
            .ok_or_else(|| corrupt(op, format!("model {previous:?} vanished")))?;
        tx.commit().await.map_err(&fail)?;
        Ok(live)
    }

    pub(crate) async fn delete_model(&self, version: String) -> Result<Option<ModelRecord>> {
        let op = "delete model";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        // The registry lock: an activation cannot make the version live while it goes.
        let tx = Self::registry_transaction(&mut client, op).await?;
        let Some(model) = model_by_version(&tx, op, &version).await? else {
            return Ok(None);
        };
        let rows = tx
            .query(
                &format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE status <> 'stopped' \
                     FOR SHARE"
                ),
                &[],
            )
            .await
            .map_err(&fail)?;
        let experiments = rows
            .iter()
            .map(|r| experiment_of(op, r))
            .collect::<Result<Vec<_>>>()?;
        if let Some(blocker) = retention::blocker(&model, &experiments) {
            return Err(Error::InvalidInput(blocker.describe(&version)));
        }
        tx.execute(
            "DELETE FROM model_activations WHERE version = $1",
            &[&version],
        )
        .await
        .map_err(&fail)?;
        tx.execute("DELETE FROM models WHERE version = $1", &[&version])
            .await
            .map_err(&fail)?;
        tx.commit().await.map_err(&fail)?;
        Ok(Some(model))
    }

    pub(crate) async fn erase(&self, kind: ErasedKind, id: String) -> Result<ErasureReport> {
        let op = "erase";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        let tx = client.transaction().await.map_err(&fail)?;
        let delete = |sql: &'static str| {
            let (tx, id, fail) = (&tx, &id, &fail);
            async move { tx.execute(sql, &[id]).await.map_err(fail) }
        };
        let report = match kind {
            ErasedKind::User => ErasureReport {
                users: delete("DELETE FROM users WHERE id = $1").await?,
                feedback: delete("DELETE FROM feedback WHERE user_id = $1").await?,
                impressions: erase_user_lists(&tx, op, &id).await?,
                exposures: delete("DELETE FROM exposures WHERE user_id = $1").await?,
                ..ErasureReport::default()
            },
            ErasedKind::Item => ErasureReport {
                items: delete("DELETE FROM items WHERE id = $1").await?,
                feedback: delete("DELETE FROM feedback WHERE item_id = $1").await?,
                impressions: erase_item_from_lists(&tx, op, &id).await?,
                ..ErasureReport::default()
            },
        };
        if kind == ErasedKind::Item {
            scrub_bandit_states(&tx, op, &id).await?;
        }
        // The first erasure's time stays: erasing again changes nothing.
        tx.execute(
            "INSERT INTO erasures (kind, id_hash, erased_at)
             VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)
             ON CONFLICT (kind, id_hash) DO NOTHING",
            &[&kind.as_str(), &erasure::id_hash(&id)],
        )
        .await
        .map_err(&fail)?;
        tx.commit().await.map_err(&fail)?;
        Ok(report)
    }

    pub(crate) async fn erasure_count(&self) -> Result<u64> {
        let op = "count erasures";
        let client = self.pool.get(op).await?;
        let n: i64 = client
            .query_one("SELECT COUNT(*) FROM erasures", &[])
            .await
            .map_err(failed(op))?
            .try_get(0)
            .map_err(failed(op))?;
        Ok(n as u64)
    }

    pub(crate) async fn scrub_bandit_item(&self, id: String) -> Result<()> {
        let op = "scrub bandit states";
        let mut client = self.pool.get(op).await?;
        let tx = client.transaction().await.map_err(failed(op))?;
        scrub_bandit_states(&tx, op, &id).await?;
        tx.commit().await.map_err(failed(op))
    }

    pub(crate) async fn bandit_state(&self, policy: String) -> Result<Option<String>> {
        let op = "read bandit state";
        let client = self.pool.get(op).await?;
        let row = client
            .query_opt(
                "SELECT state FROM bandit_states WHERE policy = $1",
                &[&policy],
            )
            .await
            .map_err(failed(op))?;
        row.map(|r| r.try_get(0).map_err(failed(op))).transpose()
    }

    pub(crate) async fn merge_bandit_state(
        &self,
        policy: String,
        now: i64,
        merge: Box<dyn FnOnce(Option<String>) -> Result<String> + Send>,
    ) -> Result<String> {
        let op = "merge bandit state";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        let tx = client.transaction().await.map_err(&fail)?;
        // The row lock serialises servers merging into the same policy; a policy seen for the
        // first time is inserted empty first so that there is a row to lock.
        tx.execute(
            "INSERT INTO bandit_states (policy, state, updated_at) VALUES ($1, '', $2)
             ON CONFLICT (policy) DO NOTHING",
            &[&policy, &now],
        )
        .await
        .map_err(&fail)?;
        let stored: String = tx
            .query_one(
                "SELECT state FROM bandit_states WHERE policy = $1 FOR UPDATE",
                &[&policy],
            )
            .await
            .map_err(&fail)?
            .try_get(0)
            .map_err(&fail)?;
        let merged = merge(Some(stored).filter(|s| !s.is_empty()))?;
        tx.execute(
            "UPDATE bandit_states SET state = $2, updated_at = $3 WHERE policy = $1",
            &[&policy, &merged, &now],
        )
        .await
        .map_err(&fail)?;
        tx.commit().await.map_err(&fail)?;
        Ok(merged)
    }

    pub(crate) async fn erasures(&self) -> Result<Erasures> {
        let op = "list erasures";
        let client = self.pool.get(op).await?;
        erasures_of(&*client, op).await
    }

    pub(crate) async fn create_experiment(
        &self,
        record: ExperimentRecord,
    ) -> Result<ExperimentRecord> {
        let op = "create experiment";
        let client = self.pool.get(op).await?;
        let n = client
            .execute(
                "INSERT INTO experiments (name, definition, status, created_at)
                 VALUES ($1, $2::text::jsonb, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[
                    &record.name,
                    &record.definition.to_string(),
                    &record.status.as_str(),
                    &record.created_at,
                ],
            )
            .await
            .map_err(failed(op))?;
        if n == 0 {
            return Err(Error::InvalidInput(format!(
                "experiment {:?} already exists",
                record.name
            )));
        }
        Ok(record)
    }

    pub(crate) async fn get_experiment(&self, name: String) -> Result<Option<ExperimentRecord>> {
        let op = "get experiment";
        let client = self.pool.get(op).await?;
        experiment_by_name(&*client, op, &name).await
    }

    pub(crate) async fn list_experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let op = "list experiments";
        let client = self.pool.get(op).await?;
        let rows = client
            .query(
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, name"),
                &[],
            )
            .await
            .map_err(failed(op))?;
        rows.iter().map(|r| experiment_of(op, r)).collect()
    }

    pub(crate) async fn set_experiment_status(
        &self,
        name: String,
        status: ExperimentStatus,
        at: i64,
    ) -> Result<ExperimentRecord> {
        let op = "set experiment status";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        let tx = client.transaction().await.map_err(&fail)?;
        // FOR UPDATE: two servers starting/stopping at once see each other's change.
        let row = tx
            .query_opt(
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1 FOR UPDATE"),
                &[&name],
            )
            .await
            .map_err(&fail)?;
        let Some(current) = row.map(|r| experiment_of(op, &r)).transpose()? else {
            return Err(Error::InvalidInput(format!("no experiment {name:?}")));
        };
        check_transition(&name, current.status, status)?;
        let column = if status == ExperimentStatus::Running {
            "started_at"
        } else {
            "stopped_at"
        };
        tx.execute(
            &format!("UPDATE experiments SET status = $1, {column} = $2 WHERE name = $3"),
            &[&status.as_str(), &at, &name],
        )
        .await
        .map_err(&fail)?;
        let updated = experiment_by_name(&tx, op, &name)
            .await?
            .ok_or_else(|| corrupt(op, format!("experiment {name:?} vanished")))?;
        tx.commit().await.map_err(&fail)?;
        Ok(updated)
    }

    pub(crate) async fn insert_exposures(&self, batch: Vec<Exposure>) -> Result<usize> {
        let op = "insert exposures";
        let experiments: Vec<&str> = batch.iter().map(|e| e.experiment.as_str()).collect();
        let variants: Vec<&str> = batch.iter().map(|e| e.variant.as_str()).collect();
        let users: Vec<&str> = batch.iter().map(|e| e.user.as_str()).collect();
        let requests: Vec<&str> = batch.iter().map(|e| e.request_id.as_str()).collect();
        let times: Vec<i64> = batch.iter().map(|e| e.timestamp).collect();
        let client = self.pool.get(op).await?;
        let n = client
            .execute(
                "INSERT INTO exposures (experiment, variant, user_id, request_id, ts)
                 SELECT x, v, u, r, ts
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[])
                   WITH ORDINALITY AS t (x, v, u, r, ts, n)
                 ORDER BY n",
                &[&experiments, &variants, &users, &requests, &times],
            )
            .await
            .map_err(failed(op))?;
        Ok(n as usize)
    }

    pub(crate) async fn exposures(&self, experiment: String) -> Result<Vec<Exposure>> {
        let op = "list exposures";
        let fail = failed(op);
        let client = self.pool.get(op).await?;
        let rows = client
            .query(
                "SELECT experiment, variant, user_id, request_id, ts FROM exposures
                 WHERE experiment = $1 ORDER BY seq",
                &[&experiment],
            )
            .await
            .map_err(&fail)?;
        rows.iter()
            .map(|r| {
                Ok(Exposure {
                    experiment: r.try_get(0).map_err(&fail)?,
                    variant: r.try_get(1).map_err(&fail)?,
                    user: r.try_get(2).map_err(&fail)?,
                    request_id: r.try_get(3).map_err(&fail)?,
                    timestamp: r.try_get(4).map_err(&fail)?,
                })
            })
            .collect()
    }

    pub(crate) async fn experiment_impressions(
        &self,
        experiment: String,
    ) -> Result<Vec<Impression>> {
        let lists = self
            .query_lists(
                "list experiment impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE experiment = $1
                   AND request_id IN (SELECT request_id FROM exposures WHERE experiment = $1)
                 ORDER BY seq",
                &[&experiment],
                usize::MAX,
            )
            .await?;
        Ok(first_impressions(&lists, usize::MAX))
    }

    pub(crate) async fn newest_impressions(&self, n: usize) -> Result<Vec<Impression>> {
        let mut lists = self
            .query_lists(
                "list impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 ORDER BY seq DESC",
                &[],
                n,
            )
            .await?;
        lists.reverse();
        Ok(last_impressions(&lists, n))
    }

    pub(crate) async fn impressions_between(
        &self,
        since: i64,
        until: i64,
        n: usize,
    ) -> Result<Vec<Impression>> {
        let lists = self
            .query_lists(
                "list impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE ts >= $1 AND ts < $2 ORDER BY seq",
                &[&since, &until],
                n,
            )
            .await?;
        Ok(first_impressions(&lists, n))
    }

    /// The lists `sql` selects (columns: request id, user, policy, ts, items), streamed and read
    /// no further than the first `items` impressions need.
    async fn query_lists(
        &self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        items: usize,
    ) -> Result<Vec<ImpressionList>> {
        let fail = failed(op);
        let client = self.pool.get(op).await?;
        let rows = client
            .query_raw(sql, params.iter().copied())
            .await
            .map_err(&fail)?;
        let mut rows = std::pin::pin!(rows);
        let mut lists = Vec::new();
        let mut read = 0usize;
        while read < items {
            let Some(row) = rows.try_next().await.map_err(&fail)? else {
                break;
            };
            let text: String = row.try_get(4).map_err(&fail)?;
            let list = decode::impression_list(
                BACKEND,
                op,
                row.try_get(0).map_err(&fail)?,
                row.try_get(1).map_err(&fail)?,
                row.try_get(2).map_err(&fail)?,
                row.try_get(3).map_err(&fail)?,
                &text,
            )?;
            read += list.items.len();
            lists.push(list);
        }
        Ok(lists)
    }

    pub(crate) async fn experiment_feedback(
        &self,
        experiment: String,
        since: i64,
        until: i64,
    ) -> Result<Vec<StoredFeedback>> {
        self.query_feedback(
            "list experiment feedback",
            &format!(
                "SELECT {FEEDBACK_COLUMNS} FROM feedback
                 WHERE user_id IN (SELECT user_id FROM exposures WHERE experiment = $1)
                   AND ts >= $2 AND ts < $3
                 ORDER BY ts, seq"
            ),
            &[&experiment, &since, &until],
        )
        .await
    }

    pub(crate) async fn counts(&self) -> Result<StoreCounts> {
        let op = "count rows";
        let client = self.pool.get(op).await?;
        let row = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM items),
                        (SELECT COUNT(*) FROM feedback), (SELECT COALESCE(SUM(n_items), 0)::int8 FROM impression_lists),
                        (SELECT COUNT(*) FROM models)",
                &[],
            )
            .await
            .map_err(failed(op))?;
        let get =
            |i: usize| -> Result<u64> { Ok(row.try_get::<_, i64>(i).map_err(failed(op))? as u64) };
        Ok(StoreCounts {
            users: get(0)?,
            items: get(1)?,
            feedback: get(2)?,
            impressions: get(3)?,
            models: get(4)?,
        })
    }

    pub(crate) async fn load_dataset(&self, name: String) -> Result<Dataset> {
        let op = "load dataset";
        let fail = failed(op);
        let mut client = self.pool.get(op).await?;
        // One snapshot for the three reads, so features and events agree.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(&fail)?;
        let mut builder = DatasetBuilder::new();
        let erasures = erasures_of(&tx, op).await?;
        let mut erased = ErasedFilter::new(&erasures);
        // Streamed row by row: the event log may be far larger than what is worth buffering.
        let no_params: [&str; 0] = [];
        let sql = format!("SELECT {FEEDBACK_COLUMNS} FROM feedback ORDER BY seq");
        let rows = tx.query_raw(&sql, no_params).await.map_err(&fail)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(&fail)? {
            let event = feedback_of(op, &row)?.feedback;
            if !erased.feedback(&event) {
                builder.push_feedback(&event);
            }
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        let rows = tx.query_raw(&sql, no_params).await.map_err(&fail)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(&fail)? {
            let user = user_of(op, &row)?;
            if !erased.user(&user.id) {
                builder.push_user(&user)?;
            }
        }
        let sql = format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id");
        let rows = tx.query_raw(&sql, no_params).await.map_err(&fail)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.try_next().await.map_err(&fail)? {
            let item = item_of(op, &row)?;
            if !erased.item(&item.id) {
                builder.push_item(&item)?;
            }
        }
        tx.commit().await.map_err(&fail)?;
        Ok(builder.build(&name))
    }
}

/// Removes item `id` from every stored bandit state (inside the caller's transaction, rows
/// locked so a concurrent merge waits).
/// Deletes the user's lists (inside the caller's transaction); returns how many impressions went.
async fn erase_user_lists(
    tx: &tokio_postgres::Transaction<'_>,
    op: &'static str,
    id: &str,
) -> Result<u64> {
    let fail = failed(op);
    let row = tx
        .query_one(
            "SELECT COALESCE(SUM(n_items), 0)::int8 FROM impression_lists WHERE user_id = $1",
            &[&id],
        )
        .await
        .map_err(&fail)?;
    let items: i64 = row.try_get(0).map_err(&fail)?;
    tx.execute("DELETE FROM impression_lists WHERE user_id = $1", &[&id])
        .await
        .map_err(&fail)?;
    Ok(items as u64)
}

/// Removes item `id` from every stored list, and a list it leaves empty (inside the caller's
/// transaction); returns how many impressions went. Lists are not indexed by item, so this reads
/// them all: erasing an item is rare, and an index would cost every list written.
async fn erase_item_from_lists(
    tx: &tokio_postgres::Transaction<'_>,
    op: &'static str,
    id: &str,
) -> Result<u64> {
    let fail = failed(op);
    let rows = tx
        .query(
            "SELECT seq, items FROM impression_lists
             WHERE items::jsonb @> jsonb_build_array(jsonb_build_array($1::text))
             FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(&fail)?;
    let mut removed = 0;
    for row in rows {
        let seq: i64 = row.try_get(0).map_err(&fail)?;
        let items: String = row.try_get(1).map_err(&fail)?;
        let (n, left) = erasure::scrub_list_item(&items, id).ok_or_else(|| {
            corrupt(
                op,
                format!("the items of list {seq} do not decode: {items}"),
            )
        })?;
        removed += n;
        match left {
            Some((items, n_items)) => {
                tx.execute(
                    "UPDATE impression_lists SET items = $2, n_items = $3 WHERE seq = $1",
                    &[&seq, &items, &n_items],
                )
                .await
            }
            None => {
                tx.execute("DELETE FROM impression_lists WHERE seq = $1", &[&seq])
                    .await
            }
        }
        .map_err(&fail)?;
    }
    Ok(removed)
}

async fn scrub_bandit_states(
    tx: &tokio_postgres::Transaction<'_>,
    op: &'static str,
    id: &str,
) -> Result<()> {
    let fail = failed(op);
    let rows = tx
        .query("SELECT policy, state FROM bandit_states FOR UPDATE", &[])
        .await
        .map_err(&fail)?;
    for row in rows {
        let policy: String = row.try_get(0).map_err(&fail)?;
        let state: String = row.try_get(1).map_err(&fail)?;
        if let Some(scrubbed) = erasure::scrub_bandit_item(&state, id) {
            tx.execute(
                "UPDATE bandit_states SET state = $2 WHERE policy = $1",
                &[&policy, &scrubbed],
            )
            .await
            .map_err(&fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema("kindred_test_12").is_ok());
        assert!(check_schema("").is_err());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("a;drop table users").is_err());
        assert!(check_schema("Upper").is_err());
    }
}
