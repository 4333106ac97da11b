//! Test fixtures: a fresh, empty store on either backend.
//!
//! SQLite gets a file in a temporary directory. PostgreSQL gets its own schema in the database
//! named by `KINDRED_TEST_POSTGRES`, so tests run in parallel without seeing each other's rows.
//! Without that variable PostgreSQL tests are skipped with a message, except under CI (`CI` set),
//! where a skip would hide a broken setup and so fails.

#![allow(dead_code)] // each test binary uses part of this module

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use kindred_store::{Feedback, PostgresStore, Store};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

enum Location {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

/// A fresh store and how to reach it again.
pub struct Fixture {
    pub store: Store,
    location: Location,
}

fn unique_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "kindred_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Fixture {
    /// A new empty store, or `None` when the backend is not available here (PostgreSQL only).
    pub async fn new(backend: Backend) -> Option<Fixture> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("store.db");
                let store = Store::open(path.to_str().expect("utf-8 temp path"))
                    .await
                    .expect("open sqlite store");
                Some(Fixture {
                    store,
                    location: Location::Sqlite { _dir: dir, path },
                })
            }
            Backend::Postgres => {
                let url = kindred_testkit::postgres_url()?;
                let schema = unique_schema();
                let store = PostgresStore::open(&url, Some(&schema))
                    .await
                    .expect("open postgres store");
                Some(Fixture {
                    store: Store::Postgres(store),
                    location: Location::Postgres { url, schema },
                })
            }
        }
    }

    /// Opens the same store again (a restart).
    pub async fn reopen(&self) -> Store {
        match &self.location {
            Location::Sqlite { path, .. } => Store::open(path.to_str().expect("utf-8 path"))
                .await
                .expect("reopen sqlite store"),
            Location::Postgres { url, schema } => Store::Postgres(
                PostgresStore::open(url, Some(schema))
                    .await
                    .expect("reopen postgres store"),
            ),
        }
    }

    /// Runs `sql` (several statements) on the store's database directly, as an older build or
    /// an operator would: what a migration test uses to set up an old schema.
    pub async fn raw_sql(&self, sql: &str) {
        match &self.location {
            Location::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|conn| conn.execute_batch(sql))
                .expect("run sql on the sqlite file"),
            Location::Postgres { url, schema } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect for raw sql");
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET search_path TO {schema};\n{sql}"))
                    .await
                    .expect("run sql on postgres");
            }
        }
    }

    /// Every stored value that contains `needle`, as `table.column = value`, over every column
    /// of every table holding text or JSON (found from the schema, so a table added later is
    /// searched too): what an erasure test asks to be empty.
    pub async fn rows_containing(&self, needle: &str) -> Vec<String> {
        match &self.location {
            Location::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open sqlite file");
                let tables: Vec<String> = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .and_then(|mut s| {
                        s.query_map([], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .expect("list tables");
                let mut found = Vec::new();
                for table in tables {
                    let columns: Vec<(String, String)> = conn
                        .prepare(&format!(
                            "SELECT name, type FROM pragma_table_info('{table}')"
                        ))
                        .and_then(|mut s| {
                            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        })
                        .expect("list columns");
                    for (column, _) in columns.into_iter().filter(|(_, t)| t == "TEXT") {
                        let sql = format!(
                            "SELECT \"{column}\" FROM \"{table}\" WHERE instr(\"{column}\", ?1) > 0"
                        );
                        let values: Vec<String> = conn
                            .prepare(&sql)
                            .and_then(|mut s| {
                                s.query_map([needle], |r| r.get(0))?
                                    .collect::<rusqlite::Result<Vec<String>>>()
                            })
                            .expect("search column");
                        found.extend(
                            values
                                .into_iter()
                                .map(|v| format!("{table}.{column} = {v}")),
                        );
                    }
                }
                found
            }
            Location::Postgres { url, schema } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect for search");
                tokio::spawn(connection);
                let columns = client
                    .query(
                        "SELECT table_name::text, column_name::text FROM information_schema.columns
                         WHERE table_schema = $1 AND data_type IN ('text', 'jsonb')",
                        &[schema],
                    )
                    .await
                    .expect("list columns");
                let mut found = Vec::new();
                for row in columns {
                    let (table, column): (String, String) = (row.get(0), row.get(1));
                    let sql = format!(
                        "SELECT \"{column}\"::text FROM {schema}.\"{table}\"
                         WHERE strpos(\"{column}\"::text, $1) > 0"
                    );
                    for value in client.query(&sql, &[&needle]).await.expect("search column") {
                        let value: String = value.get(0);
                        found.push(format!("{table}.{column} = {value}"));
                    }
                }
                found
            }
        }
    }

    /// Removes what the fixture created (the temporary directory goes by itself).
    pub async fn cleanup(self) {
        if let Location::Postgres { url, schema } = &self.location {
            drop(self.store);
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect for cleanup");
            tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop test schema");
        }
    }
}

/// Declares each named suite function (`async fn(&Fixture)`) as one test per backend.
#[macro_export]
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = $crate::common::Fixture::new($crate::common::Backend::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    super::$name(&fixture).await;
                    fixture.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = $crate::common::Fixture::new($crate::common::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(&fixture).await;
                    fixture.cleanup().await;
                }
            )*
        }
    };
}

/// Events per batch of [`feedback_batch`].
pub const FEEDBACK_BATCH: usize = 1000;

/// Batch `number` of a seeded-by-position feedback stream: 5,000 users, 2,000 items, a purchase
/// every tenth event, unique event ids (`b{number}-e{n}`) and increasing timestamps.
pub fn feedback_batch(number: usize) -> Vec<Feedback> {
    (0..FEEDBACK_BATCH)
        .map(|n| Feedback {
            user: format!("u{}", (number * 31 + n) % 5_000),
            item: format!("i{}", (number * 17 + n * 7) % 2_000),
            event_type: if n % 10 == 0 { "purchase" } else { "view" }.into(),
            value: Some((n % 5) as f32 + 1.0),
            timestamp: 1_700_000_000 + (number * FEEDBACK_BATCH + n) as i64,
            event_id: Some(format!("b{number}-e{n}")),
        })
        .collect()
}
