//! Opening a store: bad locations, unreachable servers and databases from a newer Kindred fail
//! with errors that say what was being done and why.

use kindred_core::Error;
use kindred_store::Store;

#[tokio::test]
async fn empty_location_is_invalid_input() {
    let err = Store::open("").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(Store::open("sqlite:").await.is_err());
}

#[tokio::test]
async fn unopenable_sqlite_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("store.db");
    let err = Store::open(path.to_str().unwrap()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Store {
                backend: "sqlite",
                operation: "open",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("no-such-dir"), "{text}");
}

#[tokio::test]
async fn sqlite_prefix_and_plain_path_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let plain = Store::open(path.to_str().unwrap()).await.unwrap();
    plain
        .upsert_user(&kindred_store::User::new("u"))
        .await
        .unwrap();
    let prefixed = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(prefixed.backend(), "sqlite");
    assert!(prefixed.get_user("u").await.unwrap().is_some());
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(path.to_str().unwrap()).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    let latest = kindred_store::migrations::latest_version();
    assert_eq!(versions, latest, "each migration recorded once");
    conn.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
        [latest + 1],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(path.to_str().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[tokio::test]
async fn unreachable_postgres_is_a_store_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = Store::open("postgres://kindred:secret@127.0.0.1:1/kindred")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Store {
                backend: "postgres",
                ..
            }
        ),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    let err = Store::open("postgres://host:notaport/db")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let open = Store::open(path.to_str().unwrap());
    // Polled by a minimal executor that is not tokio.
    let err = block_on_without_tokio(open).unwrap_err();
    assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
}

fn block_on_without_tokio<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[tokio::test]
async fn closing_checkpoints_and_leaves_no_wal_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let clone = store.clone();
    store
        .upsert_user(&kindred_store::User::new("u"))
        .await
        .unwrap();
    assert!(store.get_user("u").await.unwrap().is_some());
    let wal = dir.path().join("s.db-wal");
    let shm = dir.path().join("s.db-shm");
    assert!(wal.exists(), "WAL mode writes a -wal file while open");
    store.close().await.unwrap();
    assert!(!wal.exists() && !shm.exists(), "-wal/-shm left after close");
    // Every clone shares the closed connections and says so; closing again is harmless.
    let err = clone.get_user("u").await.unwrap_err().to_string();
    assert!(err.contains("the store is closed"), "{err}");
    let err = clone
        .upsert_user(&kindred_store::User::new("v"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the store is closed"), "{err}");
    clone.close().await.unwrap();
    // The data reached the database file itself.
    let reopened = Store::open(path.to_str().unwrap()).await.unwrap();
    assert!(reopened.get_user("u").await.unwrap().is_some());
}
