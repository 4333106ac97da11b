//! Data governance from the command line: `kindred models prune` and `kindred import` skipping
//! the rows of erased users and items.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_clean, fails, ok, s, stdout, DATA};
use kindred_store::{ModelRecord, Store};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `work` on the store at `path` and closes it.
fn with_store<T>(path: &Path, work: impl AsyncFnOnce(&Store) -> T) -> T {
    runtime().block_on(async {
        let store = Store::open(s(path)).await.unwrap();
        let out = work(&store).await;
        store.close().await.unwrap();
        out
    })
}

fn models(path: &Path) -> Vec<ModelRecord> {
    with_store(path, async |store| store.list_models().await.unwrap())
}

/// Trains a popularity version on the store; a published one is made a second older than those
/// trained after it, so that it is never among the newest (versions order by creation second).
fn train(store: &Path, publish: bool) {
    let mut args = vec![
        "train",
        "--store",
        s(store),
        "--model",
        "popularity",
        "--no-offline-eval",
        "--quiet",
    ];
    if publish {
        args.push("--publish");
    }
    ok(&args);
    if publish {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

#[test]
fn prune_keeps_the_newest_the_live_and_experiment_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k.db");
    ok(&["import", "--data", DATA, "--store", s(&store), "--quiet"]);
    train(&store, true);
    for _ in 0..4 {
        train(&store, false);
    }
    let all = models(&store);
    assert_eq!(all.len(), 5);
    let live = all.iter().find(|m| m.live).unwrap().model.version.clone();
    // Newest by creation second, then name: the order prune ranks by.
    let mut by_age: Vec<&ModelRecord> = all.iter().collect();
    by_age.sort_by(|a, b| {
        (b.model.created_at, &b.model.version).cmp(&(a.model.created_at, &a.model.version))
    });
    let newest = by_age[0].model.version.clone();
    let in_draft = by_age
        .iter()
        .map(|m| m.model.version.clone())
        .find(|v| *v != newest && *v != live)
        .unwrap();
    with_store(&store, async |st| {
        let definition = json!({"variants": [
            {"name": "control", "weight": 1},
            {"name": "new", "model_version": in_draft, "weight": 1}]});
        st.create_experiment("next-test", &definition, 1)
            .await
            .unwrap();
    });
    let doomed: Vec<&ModelRecord> = all
        .iter()
        .filter(|m| ![&live, &newest, &in_draft].contains(&&m.model.version))
        .collect();
    assert_eq!(doomed.len(), 2);

    let dry = ok(&[
        "models",
        "prune",
        "--store",
        s(&store),
        "--keep",
        "1",
        "--dry-run",
    ]);
    let said = stdout(&dry);
    assert_clean(&said);
    for m in &doomed {
        assert!(
            said.contains(&format!("would delete {}", m.model.version)),
            "{said}"
        );
    }
    assert!(
        said.contains("dry run: 2 versions would be deleted, nothing was"),
        "{said}"
    );
    assert!(said.contains(&format!("{live} (live)")), "{said}");
    assert!(said.contains(&format!("{newest} (newest)")), "{said}");
    assert!(
        said.contains(&format!("{in_draft} (experiment next-test)")),
        "{said}"
    );
    assert_eq!(models(&store).len(), 5, "a dry run deletes nothing");

    let doomed_dirs: Vec<PathBuf> = doomed
        .iter()
        .map(|m| PathBuf::from(&m.model.artifact))
        .collect();
    assert!(doomed_dirs
        .iter()
        .all(|d| d.join("manifest.json").is_file()));
    let out = ok(&["models", "prune", "--store", s(&store), "--keep", "1"]);
    let said = stdout(&out);
    for (m, dir) in doomed.iter().zip(&doomed_dirs) {
        assert!(
            said.contains(&format!(
                "deleted {} (artifact removed: {})",
                m.model.version,
                dir.display()
            )),
            "{said}"
        );
        assert!(!dir.exists());
    }
    let mut left: Vec<String> = models(&store)
        .into_iter()
        .map(|m| m.model.version)
        .collect();
    left.sort();
    let mut expected = vec![live.clone(), newest.clone(), in_draft.clone()];
    expected.sort();
    assert_eq!(left, expected);
    for m in all.iter().filter(|m| expected.contains(&m.model.version)) {
        assert!(Path::new(&m.model.artifact).join("manifest.json").is_file());
    }

    // Nothing left to prune; the report is also JSON.
    let out = ok(&[
        "models",
        "prune",
        "--store",
        s(&store),
        "--keep",
        "1",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["deleted"], json!([]));
    assert_eq!(report["kept"].as_array().unwrap().len(), 3);

    // Without a subcommand, `kindred models` still lists the model families.
    let listing: serde_json::Value =
        serde_json::from_slice(&ok(&["models", "--json"]).stdout).unwrap();
    assert!(listing["models"].as_array().is_some_and(|m| !m.is_empty()));
}

#[test]
fn prune_refuses_what_it_cannot_do_safely() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = fails(&["models", "prune", "--store", s(&missing), "--keep", "2"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists(), "no store was created");
    let err = fails(&["models", "prune", "--store", s(&missing), "--keep", "0"]);
    assert!(err.contains("--keep must be at least 1"), "{err}");
    let err = fails(&["models", "prune", "--store", s(&missing)]);
    assert!(err.contains("--keep"), "{err}");
}

#[test]
fn a_fenced_prune_leaves_artifacts_outside_the_models_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k.db");
    ok(&["import", "--data", DATA, "--store", s(&store), "--quiet"]);
    train(&store, true);
    train(&store, false);
    train(&store, false);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = ok(&[
        "models",
        "prune",
        "--store",
        s(&store),
        "--keep",
        "1",
        "--models-dir",
        s(&elsewhere),
    ]);
    let said = stdout(&out);
    assert!(said.contains("artifact left in place"), "{said}");
    assert!(said.contains("outside the models directory"), "{said}");
    assert_eq!(
        models(&store).len(),
        2,
        "the rows went all the same: {said}"
    );
    let artifacts = std::fs::read_dir(dir.path().join("k.db.models"))
        .unwrap()
        .count();
    assert_eq!(artifacts, 3, "every artifact directory is still there");
}

#[test]
fn import_skips_the_rows_of_erased_users_and_items_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k.db");
    ok(&["import", "--data", DATA, "--store", s(&store), "--quiet"]);
    let (user, item) = ("u1", "i2");
    let (total, skipped_events, user_row, item_row) = with_store(&store, async |st| {
        let total = st.counts().await.unwrap().feedback as usize;
        let data = st.load_dataset("d").await.unwrap();
        let log = &data.interactions;
        let (u, i) = (
            log.user_ids().get(user).unwrap(),
            log.item_ids().get(item).unwrap(),
        );
        let naming = log
            .users()
            .iter()
            .zip(log.items())
            .filter(|(&eu, &ei)| eu == u || ei == i)
            .count();
        let user_row = st.get_user(user).await.unwrap().is_some();
        let item_row = st.get_item(item).await.unwrap().is_some();
        st.erase_user(user).await.unwrap();
        st.erase_item(item).await.unwrap();
        (total, naming, usize::from(user_row), usize::from(item_row))
    });
    assert!(skipped_events > 0 && user_row == 1);
    let after_erasure = with_store(&store, async |st| st.counts().await.unwrap().feedback);
    assert_eq!(after_erasure as usize, total - skipped_events);

    let out = ok(&["import", "--data", DATA, "--store", s(&store), "--append"]);
    let said = stdout(&out);
    assert_clean(&said);
    assert!(
        skipped_events > 1 && item_row == 1,
        "plural events, one user, one item"
    );
    let expected = format!(
        "skipped {} rows naming erased users or items: {skipped_events} feedback events, 1 user, \
         1 item",
        skipped_events + user_row + item_row
    );
    assert!(said.contains(&expected), "expected {expected:?} in {said}");
    with_store(&store, async |st| {
        assert!(st.get_user(user).await.unwrap().is_none());
        assert!(st.get_item(item).await.unwrap().is_none());
        assert!(st.feedback_for_user(user, 1).await.unwrap().is_empty());
        let feedback = st.counts().await.unwrap().feedback as usize;
        assert_eq!(feedback, 2 * (total - skipped_events));
    });
}

#[test]
fn a_file_holding_an_erased_user_again_does_not_bring_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("k.db");
    let file = dir.path().join("events.csv");
    std::fs::write(
        &file,
        "user,item,rating,timestamp\n\
         alice,i1,4,100\nbob,i1,5,101\nalice,i2,3,102\ncarol,i2,4,103\nalice,i3,5,104\n",
    )
    .unwrap();
    let data = format!("csv:{}", s(&file));
    ok(&["import", "--data", &data, "--store", s(&store), "--quiet"]);
    let removed = with_store(&store, async |st| st.erase_user("alice").await.unwrap());
    assert_eq!(removed.feedback, 3);

    let out = ok(&["import", "--data", &data, "--store", s(&store), "--append"]);
    let said = stdout(&out);
    assert!(
        said.contains(
            "skipped 3 rows naming erased users or items: 3 feedback events, 0 users, 0 items"
        ),
        "{said}"
    );
    assert!(said.contains("imported 2 feedback events"), "{said}");
    with_store(&store, async |st| {
        assert!(st.feedback_for_user("alice", 10).await.unwrap().is_empty());
        assert_eq!(st.counts().await.unwrap().feedback, 4);
        let data = st.load_dataset("d").await.unwrap();
        assert!(data.interactions.user_ids().get("alice").is_none());
    });
}
