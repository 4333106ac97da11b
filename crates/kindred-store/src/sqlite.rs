//! The embedded backend: one SQLite file in WAL mode.
//!
//! Concurrency: one writer connection (SQLite allows one writer at a time anyway) and a small pool
//! of reader connections, which WAL lets read while the writer writes. Every call runs on tokio's
//! blocking pool so async handlers never block a runtime thread on disk.
//!
//! Durability: `journal_mode=WAL` with `synchronous=NORMAL`. A committed transaction is in the WAL
//! file (in the OS page cache at least) before the call returns, so it survives the process being
//! killed (SIGKILL, panic, OOM); the durability test checks exactly that. It is not fsynced at
//! every commit, so a power loss or kernel crash may lose the last transactions (never corrupt
//! the database). That trade buys the ingest rate; `synchronous=FULL` would close the gap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kindred_core::{Dataset, Error, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use serde_json::Value;

use crate::dataset::DatasetBuilder;
use crate::erasure::{self, ErasedFilter, ErasedKind, ErasureReport, Erasures};
use crate::records::{
    check_transition, first_impressions, last_impressions, ExperimentRecord, ExperimentStatus,
    Exposure, Feedback, Impression, ImpressionList, InsertReport, Item, ModelRecord, NewModel,
    StoreCounts, StoredFeedback, User,
};
use crate::{decode, migrations, retention};

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle reader connections kept open; more are opened under load and closed afterwards.
const IDLE_READERS: usize = 4;

const BACKEND: &str = "sqlite";

/// Turns a SQLite failure into the crate error, naming the operation.
fn failed(operation: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Store {
        backend: BACKEND,
        operation,
        message: e.to_string(),
    }
}

fn corrupt(operation: &'static str, message: String) -> Error {
    decode::corrupt(BACKEND, operation, message)
}

/// A store in one SQLite file. Cheap to clone (shared connections).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` once [`SqliteStore::close`] ran.
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

fn closed_error(operation: &'static str) -> Error {
    Error::Store {
        backend: BACKEND,
        operation,
        message: "the store is closed".into(),
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Runs blocking database work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| corrupt(operation, "called outside a tokio runtime".into()))?;
    handle
        .spawn_blocking(work)
        .await
        .map_err(|e| corrupt(operation, format!("worker failed: {e}")))?
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn open_writer(path: &Path) -> Result<Connection> {
    let fail = |e: rusqlite::Error| Error::Store {
        backend: BACKEND,
        operation: "open",
        message: format!("{}: {e}", path.display()),
    };
    let mut conn = Connection::open(path).map_err(fail)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(corrupt(
            "open",
            format!(
                "{}: cannot use WAL (journal mode is {mode})",
                path.display()
            ),
        ));
    }
    configure(&conn).map_err(fail)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let fail = failed("migrate");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&fail)?;
    tx.execute_batch(migrations::VERSION_TABLE).map_err(&fail)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(&fail)?;
    let known = migrations::SQLITE.last().map_or(0, |m| m.0);
    if current > known {
        return Err(corrupt("migrate", migrations::too_new(current, known)));
    }
    for (version, sql) in migrations::SQLITE.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql).map_err(&fail)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, unixepoch())",
            [version],
        )
        .map_err(&fail)?;
    }
    tx.commit().map_err(&fail)
}

const USER_COLUMNS: &str = "id, features";
const ITEM_COLUMNS: &str = "id, features, categories, timestamp, hidden";
const FEEDBACK_COLUMNS: &str = "seq, user_id, item_id, event_type, value, ts, event_id";
const MODEL_COLUMNS: &str = "version, algorithm, params, metrics, artifact, created_at, live";

/// Raw columns of a row, decoded outside rusqlite's callback so JSON errors keep their context.
type RawUser = (String, String);
type RawItem = (String, String, String, Option<i64>, bool);
type RawModel = (String, String, String, String, String, i64, bool);

fn raw_user(r: &Row) -> rusqlite::Result<RawUser> {
    Ok((r.get(0)?, r.get(1)?))
}

fn raw_item(r: &Row) -> rusqlite::Result<RawItem> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn raw_model(r: &Row) -> rusqlite::Result<RawModel> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn user_of(op: &'static str, (id, features): RawUser) -> Result<User> {
    let features = decode::object(BACKEND, op, &format!("features of user {id:?}"), &features)?;
    Ok(User { id, features })
}

fn item_of(op: &'static str, raw: RawItem) -> Result<Item> {
    decode::item(BACKEND, op, raw)
}

fn model_of(op: &'static str, raw: RawModel) -> Result<ModelRecord> {
    let (version, algorithm, params, metrics, artifact, created_at, live) = raw;
    let params = decode::json(
        BACKEND,
        op,
        &format!("params of model {version:?}"),
        &params,
    )?;
    let metrics = decode::json(
        BACKEND,
        op,
        &format!("metrics of model {version:?}"),
        &metrics,
    )?;
    Ok(ModelRecord {
        model: NewModel {
            version,
            algorithm,
            params,
            metrics,
            artifact,
            created_at,
        },
        live,
    })
}

fn feedback_of(r: &Row) -> rusqlite::Result<StoredFeedback> {
    Ok(StoredFeedback {
        seq: r.get(0)?,
        feedback: Feedback {
            user: r.get(1)?,
            item: r.get(2)?,
            event_type: r.get(3)?,
            value: r.get::<_, Option<f64>>(4)?.map(|v| v as f32),
            timestamp: r.get(5)?,
            event_id: r.get(6)?,
        },
    })
}

/// Every row of a cached statement, each mapped by `row`; failures name `op`.
fn query_rows<T>(
    conn: &Connection,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let fail = failed(op);
    let mut stmt = conn.prepare_cached(sql).map_err(&fail)?;
    let rows = stmt.query_map(params, row).map_err(&fail)?;
    rows.collect::<rusqlite::Result<_>>().map_err(&fail)
}

fn query_feedback(
    conn: &Connection,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredFeedback>> {
    query_rows(conn, op, sql, params, feedback_of)
}

fn model_by_version(
    conn: &Connection,
    op: &'static str,
    version: &str,
) -> Result<Option<ModelRecord>> {
    let raw = conn
        .query_row(
            &format!("SELECT {MODEL_COLUMNS} FROM models WHERE version = ?1"),
            [version],
            raw_model,
        )
        .optional()
        .map_err(failed(op))?;
    raw.map(|raw| model_of(op, raw)).transpose()
}

fn live_model_of(conn: &Connection, op: &'static str) -> Result<Option<ModelRecord>> {
    let raw = conn
        .query_row(
            &format!("SELECT {MODEL_COLUMNS} FROM models WHERE live = 1"),
            [],
            raw_model,
        )
        .optional()
        .map_err(failed(op))?;
    raw.map(|raw| model_of(op, raw)).transpose()
}

/// Makes `version` the live one inside `tx`; `record` says whether to log the activation.
fn set_live(tx: &Connection, op: &'static str, version: &str, record: bool) -> Result<()> {
    let fail = failed(op);
    tx.execute("UPDATE models SET live = 0 WHERE live = 1", [])
        .map_err(&fail)?;
    tx.execute("UPDATE models SET live = 1 WHERE version = ?1", [version])
        .map_err(&fail)?;
    if record {
        tx.execute(
            "INSERT INTO model_activations (version) VALUES (?1)",
            [version],
        )
        .map_err(&fail)?;
    }
    Ok(())
}

const EXPERIMENT_COLUMNS: &str = "name, definition, status, created_at, started_at, stopped_at";
type RawExperiment = (String, String, String, i64, Option<i64>, Option<i64>);

fn raw_experiment(r: &Row) -> rusqlite::Result<RawExperiment> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn experiment_of(op: &'static str, raw: RawExperiment) -> Result<ExperimentRecord> {
    decode::experiment(BACKEND, op, raw)
}

fn experiment_by_name(
    conn: &Connection,
    op: &'static str,
    name: &str,
) -> Result<Option<ExperimentRecord>> {
    let raw = conn
        .query_row(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1"),
            [name],
            raw_experiment,
        )
        .optional()
        .map_err(failed(op))?;
    raw.map(|raw| experiment_of(op, raw)).transpose()
}

fn erasures_of(conn: &Connection, op: &'static str) -> Result<Erasures> {
    let rows = query_rows(conn, op, "SELECT kind, id_hash FROM erasures", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut erasures = Erasures::default();
    for (kind, hash) in rows {
        erasures.insert_row(BACKEND, op, &kind, hash)?;
    }
    Ok(erasures)
}

/// The lists `sql` selects (columns: request id, user, policy, ts, items), read one row at a time
/// and no further than the first `items` impressions need.
fn query_lists(
    conn: &Connection,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
    items: usize,
) -> Result<Vec<ImpressionList>> {
    let fail = failed(op);
    let mut stmt = conn.prepare_cached(sql).map_err(&fail)?;
    let mut rows = stmt.query(params).map_err(&fail)?;
    let mut lists = Vec::new();
    let mut read = 0usize;
    while read < items {
        let Some(row) = rows.next().map_err(&fail)? else {
            break;
        };
        let text: String = row.get(4).map_err(&fail)?;
        let list = decode::impression_list(
            BACKEND,
            op,
            row.get(0).map_err(&fail)?,
            row.get(1).map_err(&fail)?,
            row.get(2).map_err(&fail)?,
            row.get(3).map_err(&fail)?,
            &text,
        )?;
        read += list.items.len();
        lists.push(list);
    }
    Ok(lists)
}

/// Deletes the user's lists (inside the caller's transaction); returns how many impressions went.
fn erase_user_lists(tx: &rusqlite::Transaction<'_>, op: &'static str, id: &str) -> Result<u64> {
    let fail = failed(op);
    let items: i64 = tx
        .query_row(
            "SELECT COALESCE(SUM(n_items), 0) FROM impression_lists WHERE user_id = ?1",
            [id],
            |r| r.get(0),
        )
        .map_err(&fail)?;
    tx.execute("DELETE FROM impression_lists WHERE user_id = ?1", [id])
        .map_err(&fail)?;
    Ok(items as u64)
}

/// Removes item `id` from every stored list, and a list it leaves empty (inside the caller's
/// transaction); returns how many impressions went. Lists are not indexed by item, so this reads
/// them all: erasing an item is rare, and an index would cost every list written.
fn erase_item_from_lists(
    tx: &rusqlite::Transaction<'_>,
    op: &'static str,
    id: &str,
) -> Result<u64> {
    let fail = failed(op);
    let lists: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare(
                "SELECT seq, items FROM impression_lists
                 WHERE EXISTS (SELECT 1 FROM json_each(items) WHERE json_each.value ->> 0 = ?1)",
            )
            .map_err(&fail)?;
        let rows = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&fail)?
    };
    let mut removed = 0;
    for (seq, items) in lists {
        let (n, left) = erasure::scrub_list_item(&items, id).ok_or_else(|| {
            corrupt(
                op,
                format!("the items of list {seq} do not decode: {items}"),
            )
        })?;
        removed += n;
        match left {
            Some((items, n_items)) => tx.execute(
                "UPDATE impression_lists SET items = ?2, n_items = ?3 WHERE seq = ?1",
                params![seq, items, n_items],
            ),
            None => tx.execute("DELETE FROM impression_lists WHERE seq = ?1", [seq]),
        }
        .map_err(&fail)?;
    }
    Ok(removed)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        blocking("open", move || {
            let writer = open_writer(&path)?;
            Ok(Self {
                inner: Arc::new(Inner {
                    path,
                    writer: Mutex::new(Some(writer)),
                    readers: Mutex::new(Vec::new()),
                    closed: AtomicBool::new(false),
                }),
            })
        })
        .await
    }

    /// Checkpoints the write-ahead log into the database file and closes every connection this
    /// store holds, so that no `-wal`/`-shm` file is left beside it (SQLite removes them when
    /// its last connection closes). Later calls on this store or its clones fail with "the
    /// store is closed"; closing twice is harmless.
    pub async fn close(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        blocking("close", move || {
            inner.closed.store(true, Ordering::Release);
            inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            let writer = inner
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(conn) = writer else {
                return Ok(());
            };
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(failed("close"))?;
            conn.close().map_err(|(_, e)| failed("close")(e))
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the writer connection.
    async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        blocking(op, move || {
            let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = writer.as_mut().ok_or_else(|| closed_error(op))?;
            work(conn)
        })
        .await
    }

    /// Runs `work` on a reader connection, inside one read transaction (a consistent snapshot).
    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        blocking(op, move || {
            if inner.closed.load(Ordering::Acquire) {
                return Err(closed_error(op));
            }
            let idle = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(failed(op))?;
                    configure(&conn).map_err(failed(op))?;
                    conn
                }
            };
            let tx = conn.transaction().map_err(failed(op))?;
            let out = work(&tx);
            drop(tx);
            let mut idle = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_READERS && !inner.closed.load(Ordering::Acquire) {
                idle.push(conn);
            }
            out
        })
        .await
    }

    pub(crate) async fn upsert_users(&self, users: Vec<User>) -> Result<()> {
        self.write("upsert users", move |conn| {
            let fail = failed("upsert users");
            let tx = conn.transaction().map_err(&fail)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO users (id, features) VALUES (?1, ?2)
                         ON CONFLICT (id) DO UPDATE SET features = excluded.features",
                    )
                    .map_err(&fail)?;
                for user in &users {
                    let features = Value::Object(user.features.clone()).to_string();
                    stmt.execute(params![user.id, features]).map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)
        })
        .await
    }

    pub(crate) async fn get_users(&self, ids: Vec<String>) -> Result<Vec<User>> {
        self.read("get users", move |conn| {
            let op = "get users";
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
                .map_err(failed(op))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(raw) = stmt
                    .query_row([id], raw_user)
                    .optional()
                    .map_err(failed(op))?
                {
                    out.push(user_of(op, raw)?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn delete_users(&self, ids: Vec<String>) -> Result<usize> {
        self.delete("delete users", "DELETE FROM users WHERE id = ?1", ids)
            .await
    }

    async fn delete(&self, op: &'static str, sql: &'static str, ids: Vec<String>) -> Result<usize> {
        self.write(op, move |conn| {
            let fail = failed(op);
            let tx = conn.transaction().map_err(&fail)?;
            let mut deleted = 0;
            {
                let mut stmt = tx.prepare_cached(sql).map_err(&fail)?;
                for id in &ids {
                    deleted += stmt.execute([id]).map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)?;
            Ok(deleted)
        })
        .await
    }

    pub(crate) async fn upsert_items(&self, items: Vec<Item>) -> Result<()> {
        self.write("upsert items", move |conn| {
            let fail = failed("upsert items");
            let tx = conn.transaction().map_err(&fail)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO items (id, features, categories, timestamp, hidden)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (id) DO UPDATE SET features = excluded.features,
                           categories = excluded.categories, timestamp = excluded.timestamp,
                           hidden = excluded.hidden",
                    )
                    .map_err(&fail)?;
                for item in &items {
                    let features = Value::Object(item.features.clone()).to_string();
                    let categories = Value::from(item.categories.clone()).to_string();
                    stmt.execute(params![
                        item.id,
                        features,
                        categories,
                        item.timestamp,
                        item.hidden
                    ])
                    .map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)
        })
        .await
    }

    pub(crate) async fn get_items(&self, ids: Vec<String>) -> Result<Vec<Item>> {
        self.read("get items", move |conn| {
            let op = "get items";
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?1"))
                .map_err(failed(op))?;
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(raw) = stmt
                    .query_row([id], raw_item)
                    .optional()
                    .map_err(failed(op))?
                {
                    out.push(item_of(op, raw)?);
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn delete_items(&self, ids: Vec<String>) -> Result<usize> {
        self.delete("delete items", "DELETE FROM items WHERE id = ?1", ids)
            .await
    }

    pub(crate) async fn insert_feedback(&self, batch: Vec<Feedback>) -> Result<InsertReport> {
        self.write("insert feedback", move |conn| {
            let fail = failed("insert feedback");
            let tx = conn.transaction().map_err(&fail)?;
            let mut inserted = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO feedback (user_id, item_id, event_type, value, ts, event_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
                    )
                    .map_err(&fail)?;
                for f in &batch {
                    inserted += stmt
                        .execute(params![
                            f.user,
                            f.item,
                            f.event_type,
                            f.value.map(f64::from),
                            f.timestamp,
                            f.event_id
                        ])
                        .map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)?;
            Ok(InsertReport {
                inserted,
                duplicates: batch.len() - inserted,
            })
        })
        .await
    }

    pub(crate) async fn feedback_since(&self, since: i64, n: usize) -> Result<Vec<StoredFeedback>> {
        self.read("list feedback", move |conn| {
            query_feedback(
                conn,
                "list feedback",
                &format!("SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE ts >= ?1 ORDER BY ts, seq LIMIT ?2"),
                params![since, decode::limit(n)],
            )
        })
        .await
    }

    pub(crate) async fn newest_feedback_between(
        &self,
        since: i64,
        until: i64,
        n: usize,
    ) -> Result<Vec<StoredFeedback>> {
        self.read("list feedback", move |conn| {
            query_feedback(
                conn,
                "list feedback",
                &format!(
                    "SELECT * FROM (SELECT {FEEDBACK_COLUMNS} FROM feedback
                     WHERE ts >= ?1 AND ts < ?2 ORDER BY ts DESC, seq DESC LIMIT ?3)
                     ORDER BY ts, seq"
                ),
                params![since, until, decode::limit(n)],
            )
        })
        .await
    }

    pub(crate) async fn feedback_after(&self, seq: i64, n: usize) -> Result<Vec<StoredFeedback>> {
        self.read("list feedback", move |conn| {
            query_feedback(
                conn,
                "list feedback",
                &format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ),
                params![seq, decode::limit(n)],
            )
        })
        .await
    }

    pub(crate) async fn feedback_for_user(
        &self,
        user: String,
        n: usize,
    ) -> Result<Vec<StoredFeedback>> {
        self.read("list user feedback", move |conn| {
            query_feedback(
                conn,
                "list user feedback",
                &format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE user_id = ?1
                     ORDER BY ts DESC, seq DESC LIMIT ?2"
                ),
                params![user, decode::limit(n)],
            )
        })
        .await
    }

    pub(crate) async fn insert_impressions(&self, batch: Vec<ImpressionList>) -> Result<usize> {
        // Encoded before the writer is taken: the lock is held only for the inserts.
        let encoded: Vec<String> = batch.iter().map(ImpressionList::encoded_items).collect();
        self.write("insert impressions", move |conn| {
            let fail = failed("insert impressions");
            let tx = conn.transaction().map_err(&fail)?;
            let mut written = 0;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO impression_lists
                             (request_id, user_id, policy, ts, experiment, n_items, items)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(&fail)?;
                for (list, items) in batch.iter().zip(&encoded) {
                    stmt.execute(params![
                        list.request_id,
                        list.user,
                        list.policy,
                        list.timestamp,
                        list.experiment,
                        list.items.len() as i64,
                        items
                    ])
                    .map_err(&fail)?;
                    written += list.items.len();
                }
            }
            tx.commit().map_err(&fail)?;
            Ok(written)
        })
        .await
    }

    pub(crate) async fn impression_counts(&self, user: String) -> Result<Vec<(String, u64)>> {
        self.read("count impressions", move |conn| {
            let op = "count impressions";
            let lists = query_lists(
                conn,
                op,
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE user_id = ?1",
                [user],
                usize::MAX,
            )?;
            let mut counts = std::collections::BTreeMap::<String, u64>::new();
            for shown in lists.into_iter().flat_map(|l| l.items) {
                *counts.entry(shown.item).or_default() += 1;
            }
            Ok(counts.into_iter().collect())
        })
        .await
    }

    pub(crate) async fn register_model(&self, model: NewModel) -> Result<()> {
        self.write("register model", move |conn| {
            let op = "register model";
            let fail = failed(op);
            let tx = conn.transaction().map_err(&fail)?;
            if model_by_version(&tx, op, &model.version)?.is_some() {
                return Err(Error::InvalidInput(format!(
                    "model version {:?} is already registered",
                    model.version
                )));
            }
            tx.execute(
                "INSERT INTO models (version, algorithm, params, metrics, artifact, created_at, live)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                params![
                    model.version,
                    model.algorithm,
                    model.params.to_string(),
                    model.metrics.to_string(),
                    model.artifact,
                    model.created_at
                ],
            )
            .map_err(&fail)?;
            tx.commit().map_err(&fail)
        })
        .await
    }

    pub(crate) async fn list_models(&self) -> Result<Vec<ModelRecord>> {
        self.read("list models", move |conn| {
            let op = "list models";
            let raws = query_rows(
                conn,
                op,
                &format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY created_at, version"),
                [],
                raw_model,
            )?;
            raws.into_iter().map(|raw| model_of(op, raw)).collect()
        })
        .await
    }

    pub(crate) async fn get_model(&self, version: String) -> Result<Option<ModelRecord>> {
        self.read("get model", move |conn| {
            model_by_version(conn, "get model", &version)
        })
        .await
    }

    pub(crate) async fn live_model(&self) -> Result<Option<ModelRecord>> {
        self.read("get live model", move |conn| {
            live_model_of(conn, "get live model")
        })
        .await
    }

    pub(crate) async fn activate_model(&self, version: String) -> Result<ModelRecord> {
        self.write("activate model", move |conn| {
            let op = "activate model";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let Some(model) = model_by_version(&tx, op, &version)? else {
                return Err(Error::InvalidInput(format!(
                    "no model version {version:?} is registered"
                )));
            };
            if !model.live {
                set_live(&tx, op, &version, true)?;
            }
            tx.commit().map_err(&fail)?;
            Ok(ModelRecord {
                live: true,
                ..model
            })
        })
        .await
    }

    pub(crate) async fn rollback_model(&self) -> Result<ModelRecord> {
        self.write("roll back model", move |conn| {
            let op = "roll back model";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let history: Vec<(i64, String)> = {
                let mut stmt = tx
                    .prepare("SELECT seq, version FROM model_activations ORDER BY seq DESC LIMIT 2")
                    .map_err(&fail)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(&fail)?;
                rows.collect::<rusqlite::Result<_>>().map_err(&fail)?
            };
            let [(latest, _), (_, previous)] = history.as_slice() else {
                return Err(Error::InvalidInput(
                    "no earlier live model version to roll back to".into(),
                ));
            };
            tx.execute("DELETE FROM model_activations WHERE seq = ?1", [latest])
                .map_err(&fail)?;
            set_live(&tx, op, previous, false)?;
            let live = live_model_of(&tx, op)?
                .ok_or_else(|| corrupt(op, format!("model {previous:?} vanished")))?;
            tx.commit().map_err(&fail)?;
            Ok(live)
        })
        .await
    }

    pub(crate) async fn delete_model(&self, version: String) -> Result<Option<ModelRecord>> {
        self.write("delete model", move |conn| {
            let op = "delete model";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let Some(model) = model_by_version(&tx, op, &version)? else {
                return Ok(None);
            };
            let experiments = query_rows(
                &tx,
                op,
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE status <> 'stopped'"),
                [],
                raw_experiment,
            )?
            .into_iter()
            .map(|raw| experiment_of(op, raw))
            .collect::<Result<Vec<_>>>()?;
            if let Some(blocker) = retention::blocker(&model, &experiments) {
                return Err(Error::InvalidInput(blocker.describe(&version)));
            }
            tx.execute(
                "DELETE FROM model_activations WHERE version = ?1",
                [&version],
            )
            .map_err(&fail)?;
            tx.execute("DELETE FROM models WHERE version = ?1", [&version])
                .map_err(&fail)?;
            tx.commit().map_err(&fail)?;
            Ok(Some(model))
        })
        .await
    }

    pub(crate) async fn erase(&self, kind: ErasedKind, id: String) -> Result<ErasureReport> {
        self.write("erase", move |conn| {
            let op = "erase";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let delete = |sql: &str| -> Result<u64> {
                tx.execute(sql, [&id]).map(|n| n as u64).map_err(&fail)
            };
            let report = match kind {
                ErasedKind::User => ErasureReport {
                    users: delete("DELETE FROM users WHERE id = ?1")?,
                    feedback: delete("DELETE FROM feedback WHERE user_id = ?1")?,
                    impressions: erase_user_lists(&tx, op, &id)?,
                    exposures: delete("DELETE FROM exposures WHERE user_id = ?1")?,
                    ..ErasureReport::default()
                },
                ErasedKind::Item => ErasureReport {
                    items: delete("DELETE FROM items WHERE id = ?1")?,
                    feedback: delete("DELETE FROM feedback WHERE item_id = ?1")?,
                    impressions: erase_item_from_lists(&tx, op, &id)?,
                    ..ErasureReport::default()
                },
            };
            if kind == ErasedKind::Item {
                scrub_bandit_states(&tx, op, &id)?;
            }
            // The first erasure's time stays: erasing again changes nothing.
            tx.execute(
                "INSERT INTO erasures (kind, id_hash, erased_at) VALUES (?1, ?2, unixepoch())
                 ON CONFLICT (kind, id_hash) DO NOTHING",
                params![kind.as_str(), erasure::id_hash(&id)],
            )
            .map_err(&fail)?;
            tx.commit().map_err(&fail)?;
            Ok(report)
        })
        .await
    }

    pub(crate) async fn erasure_count(&self) -> Result<u64> {
        self.read("count erasures", move |conn| {
            conn.query_row("SELECT COUNT(*) FROM erasures", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(failed("count erasures"))
        })
        .await
    }

    pub(crate) async fn scrub_bandit_item(&self, id: String) -> Result<()> {
        let op = "scrub bandit states";
        self.write(op, move |conn| {
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            scrub_bandit_states(&tx, op, &id)?;
            tx.commit().map_err(&fail)
        })
        .await
    }

    pub(crate) async fn bandit_state(&self, policy: String) -> Result<Option<String>> {
        let op = "read bandit state";
        self.read(op, move |conn| {
            conn.query_row(
                "SELECT state FROM bandit_states WHERE policy = ?1",
                [&policy],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(failed(op))
        })
        .await
    }

    pub(crate) async fn merge_bandit_state(
        &self,
        policy: String,
        now: i64,
        merge: Box<dyn FnOnce(Option<String>) -> Result<String> + Send>,
    ) -> Result<String> {
        let op = "merge bandit state";
        self.write(op, move |conn| {
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let stored: Option<String> = tx
                .query_row(
                    "SELECT state FROM bandit_states WHERE policy = ?1",
                    [&policy],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&fail)?;
            let merged = merge(stored)?;
            tx.execute(
                "INSERT INTO bandit_states (policy, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (policy) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at",
                rusqlite::params![policy, merged, now],
            )
            .map_err(&fail)?;
            tx.commit().map_err(&fail)?;
            Ok(merged)
        })
        .await
    }

    pub(crate) async fn erasures(&self) -> Result<Erasures> {
        self.read("list erasures", move |conn| {
            erasures_of(conn, "list erasures")
        })
        .await
    }

    pub(crate) async fn create_experiment(
        &self,
        record: ExperimentRecord,
    ) -> Result<ExperimentRecord> {
        self.write("create experiment", move |conn| {
            let op = "create experiment";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            if experiment_by_name(&tx, op, &record.name)?.is_some() {
                return Err(Error::InvalidInput(format!(
                    "experiment {:?} already exists",
                    record.name
                )));
            }
            tx.execute(
                "INSERT INTO experiments (name, definition, status, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    record.name,
                    record.definition.to_string(),
                    record.status.as_str(),
                    record.created_at
                ],
            )
            .map_err(&fail)?;
            tx.commit().map_err(&fail)?;
            Ok(record)
        })
        .await
    }

    pub(crate) async fn get_experiment(&self, name: String) -> Result<Option<ExperimentRecord>> {
        self.read("get experiment", move |conn| {
            experiment_by_name(conn, "get experiment", &name)
        })
        .await
    }

    pub(crate) async fn list_experiments(&self) -> Result<Vec<ExperimentRecord>> {
        self.read("list experiments", move |conn| {
            let op = "list experiments";
            let raws = query_rows(
                conn,
                op,
                &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, name"),
                [],
                raw_experiment,
            )?;
            raws.into_iter().map(|raw| experiment_of(op, raw)).collect()
        })
        .await
    }

    pub(crate) async fn set_experiment_status(
        &self,
        name: String,
        status: ExperimentStatus,
        at: i64,
    ) -> Result<ExperimentRecord> {
        self.write("set experiment status", move |conn| {
            let op = "set experiment status";
            let fail = failed(op);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&fail)?;
            let Some(current) = experiment_by_name(&tx, op, &name)? else {
                return Err(Error::InvalidInput(format!("no experiment {name:?}")));
            };
            check_transition(&name, current.status, status)?;
            let column = if status == ExperimentStatus::Running {
                "started_at"
            } else {
                "stopped_at"
            };
            tx.execute(
                &format!("UPDATE experiments SET status = ?1, {column} = ?2 WHERE name = ?3"),
                params![status.as_str(), at, name],
            )
            .map_err(&fail)?;
            let updated = experiment_by_name(&tx, op, &name)?
                .ok_or_else(|| corrupt(op, format!("experiment {name:?} vanished")))?;
            tx.commit().map_err(&fail)?;
            Ok(updated)
        })
        .await
    }

    pub(crate) async fn insert_exposures(&self, batch: Vec<Exposure>) -> Result<usize> {
        self.write("insert exposures", move |conn| {
            let fail = failed("insert exposures");
            let tx = conn.transaction().map_err(&fail)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO exposures (experiment, variant, user_id, request_id, ts)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(&fail)?;
                for e in &batch {
                    stmt.execute(params![
                        e.experiment,
                        e.variant,
                        e.user,
                        e.request_id,
                        e.timestamp
                    ])
                    .map_err(&fail)?;
                }
            }
            tx.commit().map_err(&fail)?;
            Ok(batch.len())
        })
        .await
    }

    pub(crate) async fn exposures(&self, experiment: String) -> Result<Vec<Exposure>> {
        self.read("list exposures", move |conn| {
            query_rows(
                conn,
                "list exposures",
                "SELECT experiment, variant, user_id, request_id, ts FROM exposures
                     WHERE experiment = ?1 ORDER BY seq",
                [experiment],
                |r| {
                    Ok(Exposure {
                        experiment: r.get(0)?,
                        variant: r.get(1)?,
                        user: r.get(2)?,
                        request_id: r.get(3)?,
                        timestamp: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    pub(crate) async fn experiment_impressions(
        &self,
        experiment: String,
    ) -> Result<Vec<Impression>> {
        self.read("list experiment impressions", move |conn| {
            let lists = query_lists(
                conn,
                "list experiment impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE experiment = ?1
                   AND request_id IN (SELECT request_id FROM exposures WHERE experiment = ?1)
                 ORDER BY seq",
                [experiment],
                usize::MAX,
            )?;
            Ok(first_impressions(&lists, usize::MAX))
        })
        .await
    }

    pub(crate) async fn newest_impressions(&self, n: usize) -> Result<Vec<Impression>> {
        self.read("list impressions", move |conn| {
            let mut lists = query_lists(
                conn,
                "list impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 ORDER BY seq DESC",
                [],
                n,
            )?;
            lists.reverse();
            Ok(last_impressions(&lists, n))
        })
        .await
    }

    pub(crate) async fn impressions_between(
        &self,
        since: i64,
        until: i64,
        n: usize,
    ) -> Result<Vec<Impression>> {
        self.read("list impressions", move |conn| {
            let lists = query_lists(
                conn,
                "list impressions",
                "SELECT request_id, user_id, policy, ts, items FROM impression_lists
                 WHERE ts >= ?1 AND ts < ?2 ORDER BY seq",
                params![since, until],
                n,
            )?;
            Ok(first_impressions(&lists, n))
        })
        .await
    }

    pub(crate) async fn experiment_feedback(
        &self,
        experiment: String,
        since: i64,
        until: i64,
    ) -> Result<Vec<StoredFeedback>> {
        self.read("list experiment feedback", move |conn| {
            query_feedback(
                conn,
                "list experiment feedback",
                &format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback
                     WHERE user_id IN (SELECT user_id FROM exposures WHERE experiment = ?1)
                       AND ts >= ?2 AND ts < ?3
                     ORDER BY ts, seq"
                ),
                params![experiment, since, until],
            )
        })
        .await
    }

    pub(crate) async fn counts(&self) -> Result<StoreCounts> {
        self.read("count rows", move |conn| {
            let count = |table: &str| -> Result<u64> {
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(failed("count rows"))
            };
            Ok(StoreCounts {
                users: count("users")?,
                items: count("items")?,
                feedback: count("feedback")?,
                impressions: conn
                    .query_row(
                        "SELECT COALESCE(SUM(n_items), 0) FROM impression_lists",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map(|n| n as u64)
                    .map_err(failed("count rows"))?,
                models: count("models")?,
            })
        })
        .await
    }

    pub(crate) async fn load_dataset(&self, name: String) -> Result<Dataset> {
        self.read("load dataset", move |conn| {
            let op = "load dataset";
            let fail = failed(op);
            let mut builder = DatasetBuilder::new();
            let erasures = erasures_of(conn, op)?;
            let mut erased = ErasedFilter::new(&erasures);
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM feedback ORDER BY seq"
                ))
                .map_err(&fail)?;
            let mut rows = stmt.query([]).map_err(&fail)?;
            while let Some(row) = rows.next().map_err(&fail)? {
                let event = feedback_of(row).map_err(&fail)?.feedback;
                if !erased.feedback(&event) {
                    builder.push_feedback(&event);
                }
            }
            let mut stmt = conn
                .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
                .map_err(&fail)?;
            let mut rows = stmt.query([]).map_err(&fail)?;
            while let Some(row) = rows.next().map_err(&fail)? {
                let user = user_of(op, raw_user(row).map_err(&fail)?)?;
                if !erased.user(&user.id) {
                    builder.push_user(&user)?;
                }
            }
            let mut stmt = conn
                .prepare(&format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id"))
                .map_err(&fail)?;
            let mut rows = stmt.query([]).map_err(&fail)?;
            while let Some(row) = rows.next().map_err(&fail)? {
                let item = item_of(op, raw_item(row).map_err(&fail)?)?;
                if !erased.item(&item.id) {
                    builder.push_item(&item)?;
                }
            }
            Ok(builder.build(&name))
        })
        .await
    }
}

/// Removes item `id` from every stored bandit state (inside the caller's transaction).
fn scrub_bandit_states(tx: &rusqlite::Transaction<'_>, op: &'static str, id: &str) -> Result<()> {
    let fail = failed(op);
    let states: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare("SELECT policy, state FROM bandit_states")
            .map_err(&fail)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&fail)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&fail)?
    };
    for (policy, state) in states {
        if let Some(scrubbed) = erasure::scrub_bandit_item(&state, id) {
            tx.execute(
                "UPDATE bandit_states SET state = ?2 WHERE policy = ?1",
                params![policy, scrubbed],
            )
            .map_err(&fail)?;
        }
    }
    Ok(())
}
