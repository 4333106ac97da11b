//! The store's behaviour, written once and run against every backend (SQLite always, PostgreSQL
//! when `KINDRED_TEST_POSTGRES` is set). Both backends must give identical answers.

mod common;

use common::Fixture;
use kindred_core::features::ColumnData;
use kindred_core::{Error, EventType};
use kindred_store::import::Import;
use kindred_store::{
    id_hash, ErasureReport, ExperimentStatus, Exposure, Feedback, Impression, ImpressionList, Item,
    NewModel, ShownItem, Store, User, MAX_ID_BYTES,
};
use serde_json::{json, Map, Value};

store_suite!(
    users_round_trip,
    items_round_trip,
    bad_input_is_rejected_before_anything_is_written,
    feedback_event_ids_make_resending_a_no_op,
    feedback_queries,
    impressions_are_counted_per_user_and_item,
    model_registry_keeps_at_most_one_live_version,
    load_dataset_exports_events_and_features,
    reopening_keeps_data_and_does_not_migrate_twice,
    concurrent_batches_all_land,
    experiments_move_draft_running_stopped,
    exposures_impressions_and_feedback_for_analysis,
    erasing_a_user_leaves_no_row_naming_them,
    erasing_an_item_leaves_no_row_naming_it,
    erased_ids_stay_out_of_training_and_imports,
    erasure_refuses_bad_ids,
    deleting_a_model_spares_live_and_experiment_versions,
    concurrent_bandit_merges_lose_no_update,
    old_impression_rows_become_lists,
);

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn event(
    user: &str,
    item: &str,
    event_type: &str,
    value: Option<f32>,
    ts: i64,
    id: Option<&str>,
) -> Feedback {
    Feedback {
        user: user.into(),
        item: item.into(),
        event_type: event_type.into(),
        value,
        timestamp: ts,
        event_id: id.map(str::to_owned),
    }
}

fn model(version: &str, created_at: i64) -> NewModel {
    NewModel {
        version: version.into(),
        algorithm: "als".into(),
        params: json!({"factors": 64, "reg": 0.05}),
        metrics: json!({"ndcg@10": 0.31}),
        artifact: format!("/models/{version}"),
        created_at,
    }
}

async fn users_round_trip(f: &Fixture) {
    let store = &f.store;
    assert_eq!(store.get_user("u1").await.unwrap(), None);
    let u1 = User {
        id: "u1".into(),
        features: obj(json!({"age": 31, "tags": ["a", "b"]})),
    };
    store.upsert_user(&u1).await.unwrap();
    assert_eq!(store.get_user("u1").await.unwrap(), Some(u1.clone()));

    // Batch with a repeated id: the last record wins.
    let u1_new = User {
        id: "u1".into(),
        features: obj(json!({"age": 32})),
    };
    store
        .upsert_users(&[
            User::new("u2"),
            u1.clone(),
            User::new("ü-3 with spaces"),
            u1_new.clone(),
        ])
        .await
        .unwrap();
    let got = store
        .get_users(&ids(&["ü-3 with spaces", "missing", "u1", "u2"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![User::new("ü-3 with spaces"), u1_new, User::new("u2")]
    );
    assert_eq!(store.counts().await.unwrap().users, 3);

    assert!(store.delete_user("u2").await.unwrap());
    assert!(!store.delete_user("u2").await.unwrap());
    assert_eq!(
        store
            .delete_users(&ids(&["u1", "nope", "ü-3 with spaces"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.counts().await.unwrap().users, 0);
}

async fn items_round_trip(f: &Fixture) {
    let store = &f.store;
    let item = Item {
        id: "i1".into(),
        features: obj(json!({"title": "Heat", "year": 1995, "emb": [0.25, -1.0]})),
        categories: vec!["Action".into(), "Crime".into()],
        timestamp: Some(1_700_000_000_123),
        hidden: true,
    };
    store
        .upsert_items(&[item.clone(), Item::new("i2")])
        .await
        .unwrap();
    assert_eq!(store.get_item("i1").await.unwrap(), Some(item.clone()));
    assert_eq!(store.get_item("i2").await.unwrap(), Some(Item::new("i2")));

    let shown = Item {
        hidden: false,
        timestamp: None,
        categories: vec![],
        ..item.clone()
    };
    store.upsert_item(&shown).await.unwrap();
    assert_eq!(store.get_item("i1").await.unwrap(), Some(shown));
    assert_eq!(store.counts().await.unwrap().items, 2);
    assert!(store.delete_item("i1").await.unwrap());
    assert_eq!(
        store.get_items(&ids(&["i1", "i2"])).await.unwrap(),
        vec![Item::new("i2")]
    );
}

async fn bad_input_is_rejected_before_anything_is_written(f: &Fixture) {
    let store = &f.store;
    let err = store.upsert_user(&User::new("")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_eq!(err.to_string(), "element 0: user id is empty");

    let long = "x".repeat(MAX_ID_BYTES + 1);
    let err = store
        .upsert_items(&[Item::new("ok"), Item::new(long.clone())])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("element 1: item id is 257 bytes long"),
        "{err}"
    );
    assert!(store.get_item(&long).await.is_err());

    let batch = vec![
        event("u", "i", "click", None, 1, Some("e1")),
        event("u", "", "click", None, 1, Some("e2")),
    ];
    let err = store.insert_feedback(&batch).await.unwrap_err();
    assert_eq!(err.to_string(), "element 1: item id is empty");
    let err = store
        .insert_feedback(&[event("u", "i", "rating", Some(f32::INFINITY), 1, None)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("value is inf"), "{err}");
    assert!(store.feedback_for_user("", 10).await.is_err());
    assert!(store
        .register_model(&NewModel {
            artifact: String::new(),
            ..model("v1", 0)
        })
        .await
        .is_err());

    // Nothing of the rejected batches was written.
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.items, counts.feedback, counts.models), (0, 0, 0));
}

async fn feedback_event_ids_make_resending_a_no_op(f: &Fixture) {
    let store = &f.store;
    let batch: Vec<Feedback> = (0..50)
        .map(|n| {
            event(
                &format!("u{}", n % 7),
                &format!("i{n}"),
                "click",
                None,
                100 + n,
                Some(&format!("e{n}")),
            )
        })
        .collect();
    let first = store.insert_feedback(&batch).await.unwrap();
    assert_eq!((first.inserted, first.duplicates), (50, 0));
    let again = store.insert_feedback(&batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 50));

    // Mixed: two known ids, one new id given twice, two events without ids (never duplicates).
    let mixed = vec![
        event("u1", "i1", "click", None, 1, Some("e3")),
        event("u1", "i1", "click", None, 1, Some("new")),
        event("u1", "i1", "click", None, 1, Some("new")),
        event("u1", "i1", "view", None, 1, None),
        event("u1", "i1", "view", None, 1, None),
        event("u1", "i1", "click", None, 1, Some("e49")),
    ];
    let report = store.insert_feedback(&mixed).await.unwrap();
    assert_eq!((report.inserted, report.duplicates), (3, 3));
    assert_eq!(store.counts().await.unwrap().feedback, 53);
    assert_eq!(store.insert_feedback(&[]).await.unwrap().inserted, 0);
}

async fn feedback_queries(f: &Fixture) {
    let store = &f.store;
    let batch = vec![
        event("alice", "i1", "rating", Some(4.5), 30, Some("a")),
        event("bob", "i2", "click", None, 10, None),
        event("alice", "i2", "view", Some(12.0), 20, None),
        event("alice", "i3", "purchase", None, 30, None),
        event("bob", "i1", "rating", Some(2.0), 40, None),
    ];
    store.insert_feedback(&batch).await.unwrap();

    let since = store.feedback_since(20, 100).await.unwrap();
    let got: Vec<(&str, i64)> = since
        .iter()
        .map(|s| (s.feedback.item.as_str(), s.feedback.timestamp))
        .collect();
    // Ordered by time, ties in log order.
    assert_eq!(got, vec![("i2", 20), ("i1", 30), ("i3", 30), ("i1", 40)]);
    assert_eq!(since[1].feedback, batch[0]);
    assert_eq!(store.feedback_since(20, 2).await.unwrap().len(), 2);
    // A bounded window read keeps the newest events, in time order; `until` is exclusive.
    let newest = store.newest_feedback_between(20, 40, 2).await.unwrap();
    let got: Vec<(&str, i64)> = newest
        .iter()
        .map(|s| (s.feedback.item.as_str(), s.feedback.timestamp))
        .collect();
    assert_eq!(got, vec![("i1", 30), ("i3", 30)]);
    assert_eq!(
        store
            .newest_feedback_between(10, 41, 100)
            .await
            .unwrap()
            .len(),
        5
    );
    assert!(store
        .newest_feedback_between(41, 100, 10)
        .await
        .unwrap()
        .is_empty());

    let all = store.feedback_after(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.feedback.clone()).collect::<Vec<_>>(),
        batch
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let rest = store.feedback_after(all[2].seq, 100).await.unwrap();
    assert_eq!(rest, all[3..].to_vec());
    assert!(store
        .feedback_after(all[4].seq, 100)
        .await
        .unwrap()
        .is_empty());

    let alice = store.feedback_for_user("alice", 2).await.unwrap();
    let got: Vec<&str> = alice.iter().map(|s| s.feedback.item.as_str()).collect();
    assert_eq!(
        got,
        vec!["i3", "i1"],
        "newest first, later log position first on ties"
    );
    assert!(store
        .feedback_for_user("carol", 10)
        .await
        .unwrap()
        .is_empty());
}

async fn impressions_are_counted_per_user_and_item(f: &Fixture) {
    let store = &f.store;
    let shown = |request: &str, user: &str, item: &str, slot| Impression {
        request_id: request.into(),
        user: user.into(),
        item: item.into(),
        slot,
        propensity: Some(0.5),
        policy: "als-v1".into(),
        timestamp: 5,
    };
    let n = store
        .insert_impressions(lists(
            &[
                shown("r1", "u1", "a", 0),
                shown("r1", "u1", "b", 1),
                shown("r2", "u1", "a", 0),
                shown("r2", "u1", "c", 1),
                shown("r3", "u2", "a", 0),
            ],
            |_| None,
        ))
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(
        store.impression_counts("u1").await.unwrap(),
        vec![
            ("a".to_string(), 2),
            ("b".to_string(), 1),
            ("c".to_string(), 1)
        ]
    );
    assert_eq!(store.impression_count("u1", "a").await.unwrap(), 2);
    assert_eq!(store.impression_count("u2", "b").await.unwrap(), 0);
    assert_eq!(store.counts().await.unwrap().impressions, 5);
    let bad = Impression {
        propensity: Some(-0.1),
        ..shown("r4", "u", "i", 0)
    };
    let err = store
        .insert_impressions(lists(&[shown("r4", "u", "j", 0), bad], |_| None))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("element 0: items[1]"), "{err}");
    assert_eq!(
        store.counts().await.unwrap().impressions,
        5,
        "nothing written"
    );
    // A list without items is not stored.
    let empty = ImpressionList {
        items: Vec::new(),
        ..lists(&[shown("r5", "u", "j", 0)], |_| None).remove(0)
    };
    assert_eq!(store.insert_impressions(vec![empty]).await.unwrap(), 0);
    assert_eq!(store.counts().await.unwrap().impressions, 5);
}

/// A store written by a build that kept one row per impression opens with its rows grouped
/// into lists, in write order, with propensities exact and experiments found again.
async fn old_impression_rows_become_lists(f: &Fixture) {
    f.raw_sql(
        "DROP TABLE impression_lists;
         CREATE TABLE impressions (
             seq BIGINT PRIMARY KEY, request_id TEXT NOT NULL, user_id TEXT NOT NULL,
             item_id TEXT NOT NULL, slot BIGINT NOT NULL, propensity DOUBLE PRECISION,
             policy TEXT NOT NULL, ts BIGINT NOT NULL);
         DELETE FROM schema_version WHERE version = 5;
         INSERT INTO impressions VALUES
             (1, 'r1', 'u1', 'a\"quoted\"', 0, 0.30000000000000004, 'p', 10),
             (2, 'r1', 'u1', 'b', 1, NULL, 'p', 10),
             (3, 'r2', 'u2', 'a\"quoted\"', 0, 0.5, 'p', 11),
             (4, 'r3', 'u1', 'c', 1, 0.25, 'q', 12),
             (5, 'r2', 'u2', 'd', 1, 0.125, 'p', 11);
         INSERT INTO exposures (experiment, variant, user_id, request_id, ts)
             VALUES ('x', 'a', 'u2', 'r2', 11);",
    )
    .await;
    let store = f.reopen().await;
    let row =
        |request: &str, user: &str, item: &str, slot, propensity, policy: &str, ts| Impression {
            request_id: request.into(),
            user: user.into(),
            item: item.into(),
            slot,
            propensity,
            policy: policy.into(),
            timestamp: ts,
        };
    let expected = vec![
        row("r1", "u1", "a\"quoted\"", 0, Some(0.1 + 0.2), "p", 10),
        row("r1", "u1", "b", 1, None, "p", 10),
        row("r2", "u2", "a\"quoted\"", 0, Some(0.5), "p", 11),
        row("r2", "u2", "d", 1, Some(0.125), "p", 11),
        row("r3", "u1", "c", 1, Some(0.25), "q", 12),
    ];
    assert_eq!(
        store.impressions_between(0, 100, 100).await.unwrap(),
        expected
    );
    assert_eq!(store.counts().await.unwrap().impressions, 5);
    assert_eq!(
        store.experiment_impressions("x").await.unwrap(),
        expected[2..4]
    );
    assert_eq!(store.impression_count("u1", "c").await.unwrap(), 1);
    assert_eq!(store.newest_impressions(1).await.unwrap(), expected[4..]);
    assert_eq!(store.newest_impressions(2).await.unwrap(), expected[3..]);
}

/// Rows grouped into the lists the store writes: consecutive rows of one request make a list,
/// an exposure of `experiment(request)` when that names one.
fn lists(
    rows: &[Impression],
    experiment: impl Fn(&str) -> Option<&'static str>,
) -> Vec<ImpressionList> {
    let mut out: Vec<ImpressionList> = Vec::new();
    for row in rows {
        let shown = ShownItem {
            item: row.item.clone(),
            slot: row.slot,
            propensity: row.propensity,
        };
        match out.last_mut() {
            Some(list) if list.request_id == row.request_id => list.items.push(shown),
            _ => out.push(ImpressionList {
                request_id: row.request_id.clone(),
                user: row.user.clone(),
                policy: row.policy.clone(),
                timestamp: row.timestamp,
                experiment: experiment(&row.request_id).map(str::to_owned),
                items: vec![shown],
            }),
        }
    }
    out
}

fn live_versions(models: &[kindred_store::ModelRecord]) -> Vec<&str> {
    models
        .iter()
        .filter(|m| m.live)
        .map(|m| m.model.version.as_str())
        .collect()
}

async fn model_registry_keeps_at_most_one_live_version(f: &Fixture) {
    let store = &f.store;
    assert_eq!(store.live_model().await.unwrap(), None);
    store.register_model(&model("v1", 100)).await.unwrap();
    store.register_model(&model("v2", 200)).await.unwrap();
    store.register_model(&model("v3", 300)).await.unwrap();
    let err = store.register_model(&model("v1", 999)).await.unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    assert_eq!(
        store.get_model("v1").await.unwrap().unwrap().model,
        model("v1", 100)
    );
    assert_eq!(store.get_model("v9").await.unwrap(), None);

    let err = store.activate_model("v9").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(
        store.rollback_model().await.is_err(),
        "nothing to roll back to"
    );

    store.activate_model("v1").await.unwrap();
    store.activate_model("v2").await.unwrap();
    store.activate_model("v2").await.unwrap(); // no-op: already live
    let live = store.activate_model("v3").await.unwrap();
    assert!(live.live && live.model.version == "v3");
    let all = store.list_models().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|m| m.model.version.as_str())
            .collect::<Vec<_>>(),
        ["v1", "v2", "v3"]
    );
    assert_eq!(live_versions(&all), ["v3"]);

    assert_eq!(store.rollback_model().await.unwrap().model.version, "v2");
    assert_eq!(live_versions(&store.list_models().await.unwrap()), ["v2"]);
    assert_eq!(store.rollback_model().await.unwrap().model.version, "v1");
    assert_eq!(
        store.live_model().await.unwrap().unwrap().model,
        model("v1", 100)
    );
    assert!(store.rollback_model().await.is_err());
    assert_eq!(live_versions(&store.list_models().await.unwrap()), ["v1"]);

    // Concurrent activations: whatever the order, exactly one version ends up live.
    let tasks: Vec<_> = ["v1", "v2", "v3", "v2", "v3", "v1"]
        .into_iter()
        .map(|v| {
            let store = store.clone();
            tokio::spawn(async move { store.activate_model(v).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(live_versions(&store.list_models().await.unwrap()).len(), 1);
}

async fn load_dataset_exports_events_and_features(f: &Fixture) {
    let store = &f.store;
    store
        .upsert_users(&[
            User {
                id: "u1".into(),
                features: obj(json!({"age": 30, "city": "Oslo"})),
            },
            User {
                id: "u9".into(),
                features: obj(json!({"age": 50})),
            },
        ])
        .await
        .unwrap();
    store
        .upsert_items(&[
            Item {
                categories: vec!["Drama".into()],
                timestamp: Some(86_400),
                ..Item::new("i1")
            },
            Item {
                hidden: true,
                ..Item::new("i2")
            },
            Item {
                features: obj(json!({"price": 9.5})),
                ..Item::new("new-item")
            },
        ])
        .await
        .unwrap();
    store
        .insert_feedback(&[
            event("u1", "i1", "rating", Some(4.0), 10, None),
            event("u2", "i2", "click", None, 11, None),
            event("u1", "i2", "dwell", Some(3.5), 12, None),
        ])
        .await
        .unwrap();

    let data = store.load_dataset("store").await.unwrap();
    assert_eq!(data.name, "store");
    let log = &data.interactions;
    assert_eq!(log.len(), 3);
    assert_eq!(log.user_ids().externals(), ["u1", "u2"]);
    assert_eq!(log.item_ids().externals(), ["i1", "i2"]);
    assert_eq!(log.users(), &[0, 1, 0]);
    assert_eq!(log.items(), &[0, 1, 1]);
    assert_eq!(log.ratings()[0], 4.0);
    assert!(log.ratings()[1].is_nan());
    assert_eq!(log.weights(), &[1.0, 1.0, 3.5]);
    assert_eq!(&log.events()[..2], &[EventType::Rating, EventType::Click]);
    assert_eq!(log.event_name(log.events()[2]), "dwell");
    assert_eq!(log.timestamps(), &[10, 11, 12]);

    let users = data.user_features.as_deref().unwrap();
    assert_eq!(
        users.ids().externals(),
        ["u1", "u9"],
        "users without events keep their features"
    );
    assert!(
        matches!(&users.column("age").unwrap().data, ColumnData::Numeric(v) if v == &[30.0, 50.0])
    );
    let items = data.item_features.as_deref().unwrap();
    assert_eq!(items.ids().externals(), ["i1", "i2", "new-item"]);
    assert!(
        matches!(&items.column("hidden").unwrap().data, ColumnData::Numeric(v) if v == &[0.0, 1.0, 0.0])
    );
    assert!(matches!(&items.column("categories").unwrap().data,
        ColumnData::Categorical { vocab, values } if vocab.externals() == ["Drama"] && values[0] == [0] && values[1].is_empty()));
    assert!(
        matches!(&items.column("timestamp").unwrap().data, ColumnData::Numeric(v) if v[0] == 86_400.0 && v[1].is_nan())
    );
    assert!(matches!(&items.column("price").unwrap().data, ColumnData::Numeric(v) if v[2] == 9.5));
    // Aligned with the log, the cold new item is not a row of the log but is kept in the table.
    assert_eq!(items.align(log.item_ids()), vec![Some(0), Some(1)]);
}

async fn reopening_keeps_data_and_does_not_migrate_twice(f: &Fixture) {
    f.store.upsert_user(&User::new("kept")).await.unwrap();
    f.store
        .insert_feedback(&[event("kept", "i", "click", None, 1, Some("x"))])
        .await
        .unwrap();
    let again: Store = f.reopen().await;
    let third: Store = f.reopen().await;
    assert_eq!(
        again.get_user("kept").await.unwrap(),
        Some(User::new("kept"))
    );
    let report = third
        .insert_feedback(&[event("kept", "i", "click", None, 1, Some("x"))])
        .await
        .unwrap();
    assert_eq!(
        report.duplicates, 1,
        "the unique event id survived reopening"
    );
    assert_eq!(third.counts().await.unwrap().feedback, 1);
}

async fn concurrent_batches_all_land(f: &Fixture) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = f.store.clone();
            tokio::spawn(async move {
                for b in 0..5 {
                    let batch: Vec<Feedback> = (0..200)
                        .map(|n| {
                            let id = format!("t{t}-b{b}-n{n}");
                            event(
                                &format!("u{n}"),
                                &format!("i{t}"),
                                "view",
                                None,
                                n,
                                Some(&id),
                            )
                        })
                        .collect();
                    let report = store.insert_feedback(&batch).await.unwrap();
                    assert_eq!(report.inserted, 200);
                }
                store.feedback_for_user("u1", 1000).await.unwrap().len()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap() >= 5);
    }
    assert_eq!(f.store.counts().await.unwrap().feedback, 8 * 5 * 200);
}

async fn experiments_move_draft_running_stopped(f: &Fixture) {
    let definition = json!({"variants": [{"name": "a"}, {"name": "b"}]});
    let created = f
        .store
        .create_experiment("exp", &definition, 10)
        .await
        .unwrap();
    assert_eq!(created.status, ExperimentStatus::Draft);
    let again = f
        .store
        .create_experiment("exp", &json!({}), 11)
        .await
        .unwrap_err();
    assert!(matches!(again, Error::InvalidInput(_)), "{again}");
    assert!(f.store.create_experiment("", &json!({}), 11).await.is_err());
    f.store
        .create_experiment("later", &json!({}), 20)
        .await
        .unwrap();

    // Only draft -> running -> stopped; each sets its own time.
    let stop_draft = f
        .store
        .set_experiment_status("exp", ExperimentStatus::Stopped, 12)
        .await
        .unwrap_err();
    assert!(stop_draft.to_string().contains("is draft"), "{stop_draft}");
    let running = f
        .store
        .set_experiment_status("exp", ExperimentStatus::Running, 13)
        .await
        .unwrap();
    assert_eq!(
        (running.status, running.started_at),
        (ExperimentStatus::Running, Some(13))
    );
    assert!(f
        .store
        .set_experiment_status("exp", ExperimentStatus::Running, 14)
        .await
        .is_err());
    let stopped = f
        .store
        .set_experiment_status("exp", ExperimentStatus::Stopped, 15)
        .await
        .unwrap();
    assert_eq!(
        (stopped.status, stopped.started_at, stopped.stopped_at),
        (ExperimentStatus::Stopped, Some(13), Some(15))
    );
    assert!(f
        .store
        .set_experiment_status("exp", ExperimentStatus::Running, 16)
        .await
        .is_err());
    let missing = f
        .store
        .set_experiment_status("nope", ExperimentStatus::Running, 16)
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::InvalidInput(_)), "{missing}");

    let reopened = f.reopen().await;
    let all = reopened.list_experiments().await.unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["exp", "later"]);
    assert_eq!(all[0], stopped);
    assert_eq!(all[0].definition, definition);
    assert_eq!(reopened.get_experiment("nope").await.unwrap(), None);
}

async fn exposures_impressions_and_feedback_for_analysis(f: &Fixture) {
    let exposure = |experiment: &str, variant: &str, user: &str, request: &str, ts: i64| Exposure {
        experiment: experiment.into(),
        variant: variant.into(),
        user: user.into(),
        request_id: request.into(),
        timestamp: ts,
    };
    let bad = f
        .store
        .insert_exposures(&[
            exposure("x", "a", "u1", "r1", 1),
            exposure("x", "", "u1", "r2", 1),
        ])
        .await
        .unwrap_err();
    assert_eq!(bad.to_string(), "element 1: variant name is empty");
    let batch = [
        exposure("x", "a", "u1", "r1", 100),
        exposure("x", "b", "u2", "r2", 101),
        exposure("y", "a", "u3", "r3", 102),
    ];
    assert_eq!(f.store.insert_exposures(&batch).await.unwrap(), 3);
    assert_eq!(f.store.exposures("x").await.unwrap(), batch[..2].to_vec());

    let impression = |request: &str, user: &str, item: &str, slot: u32| Impression {
        request_id: request.into(),
        user: user.into(),
        item: item.into(),
        slot,
        propensity: None,
        policy: "v1".into(),
        timestamp: 100,
    };
    let shown = [
        impression("r1", "u1", "i1", 0),
        impression("r1", "u1", "i2", 1),
        impression("r3", "u3", "i1", 0),
        impression("other", "u1", "i9", 0),
    ];
    let experiment = |request: &str| match request {
        "r1" | "r2" => Some("x"),
        "r3" => Some("y"),
        _ => None,
    };
    f.store
        .insert_impressions(lists(&shown, experiment))
        .await
        .unwrap();
    assert_eq!(
        f.store.experiment_impressions("x").await.unwrap(),
        shown[..2].to_vec()
    );
    // A time window in write order, with a propensity kept exactly and a limit.
    let explored = Impression {
        propensity: Some(0.0375),
        policy: "v1#explore".into(),
        timestamp: 130,
        ..impression("r4", "u2", "i3", 0)
    };
    f.store
        .insert_impressions(lists(std::slice::from_ref(&explored), |_| None))
        .await
        .unwrap();
    let window = f.store.impressions_between(100, 131, 100).await.unwrap();
    assert_eq!(window.len(), 5);
    assert_eq!(window[..4], shown);
    assert_eq!(window[4], explored);
    assert!(f
        .store
        .impressions_between(101, 130, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store.impressions_between(0, 200, 2).await.unwrap(),
        shown[..2]
    );
    assert_eq!(
        f.store.newest_impressions(2).await.unwrap(),
        vec![shown[3].clone(), explored.clone()]
    );
    assert_eq!(f.store.newest_impressions(100).await.unwrap().len(), 5);

    f.store
        .insert_feedback(&[
            event("u1", "i1", "click", None, 99, None),
            event("u1", "i1", "click", None, 100, None),
            event("u2", "i5", "purchase", Some(2.0), 150, None),
            event("u3", "i1", "click", None, 120, None),
            event("u1", "i2", "click", None, 200, None),
        ])
        .await
        .unwrap();
    let during: Vec<(String, i64)> = f
        .store
        .experiment_feedback("x", 100, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.feedback.user, e.feedback.timestamp))
        .collect();
    assert_eq!(during, [("u1".to_string(), 100), ("u2".to_string(), 150)]);
    let before = f.store.experiment_feedback("x", 0, 100).await.unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].feedback.timestamp, 99);
}

/// A user id no other fixture value contains, so a search for it finds only rows about them.
const ERASED_USER: &str = "erase-me@example.org";
/// An item id likewise.
const ERASED_ITEM: &str = "item-to-forget";

fn impression(request: &str, user: &str, item: &str, slot: u32) -> Impression {
    Impression {
        request_id: request.into(),
        user: user.into(),
        item: item.into(),
        slot,
        propensity: None,
        policy: "als".into(),
        timestamp: 10,
    }
}

/// Two users and three items (one of each to be erased) with features, feedback both ways,
/// impressions and exposures.
async fn fill_for_erasure(store: &Store) {
    store
        .upsert_users(&[
            User {
                id: ERASED_USER.into(),
                features: obj(json!({"age": 40, "city": "Lyon"})),
            },
            User {
                id: "stays".into(),
                features: obj(json!({"age": 20, "city": "Nice"})),
            },
        ])
        .await
        .unwrap();
    store
        .upsert_items(&[Item::new(ERASED_ITEM), Item::new("i1"), Item::new("i2")])
        .await
        .unwrap();
    store
        .insert_feedback(&[
            event(ERASED_USER, "i1", "click", None, 1, Some("e1")),
            event(ERASED_USER, ERASED_ITEM, "rating", Some(4.0), 2, Some("e2")),
            event("stays", "i1", "click", None, 3, Some("e3")),
            event("stays", ERASED_ITEM, "view", None, 4, Some("e4")),
            event("stays", "i2", "view", None, 5, None),
            event(ERASED_USER, "i2", "purchase", None, 6, None),
        ])
        .await
        .unwrap();
    store
        .insert_impressions(lists(
            &[
                impression("r1", ERASED_USER, "i1", 0),
                impression("r1", ERASED_USER, ERASED_ITEM, 1),
                impression("r2", "stays", ERASED_ITEM, 0),
                impression("r2", "stays", "i2", 1),
            ],
            |_| Some("x"),
        ))
        .await
        .unwrap();
    let exposure = |user: &str, request: &str| Exposure {
        experiment: "x".into(),
        variant: "a".into(),
        user: user.into(),
        request_id: request.into(),
        timestamp: 10,
    };
    store
        .insert_exposures(&[exposure(ERASED_USER, "r1"), exposure("stays", "r2")])
        .await
        .unwrap();
    // A bandit's learned state names items (never users).
    let state = json!({
        "features": ["bias"],
        "items": {ERASED_ITEM: {"weight": 2.0, "residual": 0.5}, "i1": {"weight": 1.0, "residual": 0.1}}
    })
    .to_string();
    store
        .merge_bandit_state("v1#bandit", 10, Box::new(move |_| Ok(state)))
        .await
        .unwrap();
}

async fn erasing_a_user_leaves_no_row_naming_them(f: &Fixture) {
    let store = &f.store;
    fill_for_erasure(store).await;
    assert!(!f.rows_containing(ERASED_USER).await.is_empty());
    let report = store.erase_user(ERASED_USER).await.unwrap();
    assert_eq!(
        report,
        ErasureReport {
            users: 1,
            items: 0,
            feedback: 3,
            impressions: 2,
            exposures: 1,
        }
    );
    assert_eq!(f.rows_containing(ERASED_USER).await, Vec::<String>::new());
    // The tombstone: the id's hash and a time, not the id (the search above covers its table).
    let hash = id_hash(ERASED_USER);
    assert_ne!(hash, ERASED_USER);
    let tombstones = f.rows_containing(&hash).await;
    assert_eq!(tombstones, [format!("erasures.id_hash = {hash}")]);
    let erasures = store.erasures().await.unwrap();
    assert!(erasures.user_erased(ERASED_USER) && !erasures.item_erased(ERASED_USER));
    assert_eq!((erasures.users(), erasures.items()), (1, 0));
    assert_eq!(store.erasure_count().await.unwrap(), 1);
    // The other user keeps everything.
    assert_eq!(store.feedback_for_user("stays", 10).await.unwrap().len(), 3);
    assert_eq!(store.exposures("x").await.unwrap().len(), 1);
    // Idempotent: the second erasure removes nothing and keeps one tombstone.
    assert_eq!(
        store.erase_user(ERASED_USER).await.unwrap(),
        ErasureReport::default()
    );
    assert_eq!(f.rows_containing(&hash).await.len(), 1);
}

async fn erasing_an_item_leaves_no_row_naming_it(f: &Fixture) {
    let store = &f.store;
    fill_for_erasure(store).await;
    let report = store.erase_item(ERASED_ITEM).await.unwrap();
    assert_eq!(
        report,
        ErasureReport {
            users: 0,
            items: 1,
            feedback: 2,
            impressions: 2,
            exposures: 0,
        }
    );
    assert_eq!(report.total(), 5);
    assert_eq!(f.rows_containing(ERASED_ITEM).await, Vec::<String>::new());
    // The lists keep their other items, in their slots.
    let left: Vec<(String, String, u32)> = store
        .experiment_impressions("x")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.request_id, i.item, i.slot))
        .collect();
    assert_eq!(
        left,
        [("r1".into(), "i1".into(), 0), ("r2".into(), "i2".into(), 1)]
    );
    let bandit: Value =
        serde_json::from_str(&store.bandit_state("v1#bandit").await.unwrap().unwrap()).unwrap();
    assert!(bandit["items"].get(ERASED_ITEM).is_none());
    assert_eq!(bandit["items"]["i1"]["weight"], 1.0, "other items stay");
    let erasures = store.erasures().await.unwrap();
    assert!(erasures.item_erased(ERASED_ITEM) && !erasures.user_erased(ERASED_ITEM));
    assert_eq!(store.counts().await.unwrap().feedback, 4);
    assert_eq!(
        store.erase_item(ERASED_ITEM).await.unwrap(),
        ErasureReport::default()
    );
}

async fn erased_ids_stay_out_of_training_and_imports(f: &Fixture) {
    let store = &f.store;
    fill_for_erasure(store).await;
    let before = store.load_dataset("before").await.unwrap();
    store.erase_user(ERASED_USER).await.unwrap();
    store.erase_item(ERASED_ITEM).await.unwrap();

    // The same data arrives again (a re-import of an old export): the importer skips it.
    let import = Import::prepare(store, &before).await.unwrap();
    assert_eq!(
        (
            import.skipped.users,
            import.skipped.items,
            import.skipped.feedback
        ),
        (1, 1, 4),
        "the user's 3 events and the other user's event on the item"
    );
    let summary = import.write(store, 2, |_| Ok(())).await.unwrap();
    assert_eq!(summary.skipped.total(), 6);
    assert_eq!(summary.feedback.inserted + summary.feedback.duplicates, 2);
    assert_eq!(f.rows_containing(ERASED_USER).await, Vec::<String>::new());
    assert_eq!(f.rows_containing(ERASED_ITEM).await, Vec::<String>::new());

    // Written past the importer (the store's plain writes do not check tombstones), the rows
    // are still left out of every training set.
    store
        .upsert_users(&[User {
            id: ERASED_USER.into(),
            features: obj(json!({"age": 41})),
        }])
        .await
        .unwrap();
    store.upsert_items(&[Item::new(ERASED_ITEM)]).await.unwrap();
    store
        .insert_feedback(&[
            event(ERASED_USER, "i1", "click", None, 7, None),
            event("stays", ERASED_ITEM, "click", None, 8, None),
            event("stays", "i1", "view", None, 9, None),
        ])
        .await
        .unwrap();
    let data = store.load_dataset("after").await.unwrap();
    let log = &data.interactions;
    let users: Vec<&str> = log
        .users()
        .iter()
        .map(|&u| log.user_ids().external(u))
        .collect();
    let items: Vec<&str> = log
        .items()
        .iter()
        .map(|&i| log.item_ids().external(i))
        .collect();
    assert!(!users.contains(&ERASED_USER), "{users:?}");
    assert!(!items.contains(&ERASED_ITEM), "{items:?}");
    assert_eq!(users, ["stays"; 5]);
    let user_table = data.user_features.as_deref().expect("user features");
    assert!(user_table.ids().get(ERASED_USER).is_none());
    assert!(user_table.ids().get("stays").is_some());
    let item_table = data.item_features.as_deref().expect("item features");
    assert!(item_table.ids().get(ERASED_ITEM).is_none());
    assert!(item_table.ids().get("i1").is_some());
}

async fn erasure_refuses_bad_ids(f: &Fixture) {
    for id in ["", "a\nb"] {
        let err = f.store.erase_user(id).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let err = f.store.erase_item(id).await.unwrap_err();
        assert!(err.to_string().contains("item id"), "{err}");
    }
    let long = "x".repeat(MAX_ID_BYTES + 1);
    assert!(f.store.erase_user(&long).await.is_err());
    assert!(f.store.erasures().await.unwrap().is_empty());
    assert_eq!(f.store.erasure_count().await.unwrap(), 0);
}

async fn deleting_a_model_spares_live_and_experiment_versions(f: &Fixture) {
    let store = &f.store;
    for (n, version) in ["v1", "v2", "v3", "v4", "v5"].iter().enumerate() {
        store
            .register_model(&model(version, 100 * n as i64))
            .await
            .unwrap();
    }
    store.activate_model("v1").await.unwrap();
    store.activate_model("v2").await.unwrap();
    store.activate_model("v3").await.unwrap();
    let variants = |version: &str| {
        json!({"variants": [{"name": "control", "weight": 1},
                            {"name": "treatment", "model_version": version, "weight": 1}]})
    };
    store
        .create_experiment("canary-v4", &variants("v4"), 1)
        .await
        .unwrap();
    store
        .set_experiment_status("canary-v4", ExperimentStatus::Running, 2)
        .await
        .unwrap();
    store
        .create_experiment("drafted", &variants("v5"), 1)
        .await
        .unwrap();

    let refusal = |e: Error| match e {
        Error::InvalidInput(m) => m,
        other => panic!("expected InvalidInput, got {other}"),
    };
    let live = refusal(store.delete_model("v3").await.unwrap_err());
    assert!(live.contains("\"v3\" is live"), "{live}");
    let canary = refusal(store.delete_model("v4").await.unwrap_err());
    assert!(
        canary.contains("canary-v4") && canary.contains("running"),
        "{canary}"
    );
    let draft = refusal(store.delete_model("v5").await.unwrap_err());
    assert!(
        draft.contains("drafted") && draft.contains("draft"),
        "{draft}"
    );
    assert_eq!(store.delete_model("nope").await.unwrap(), None);
    assert!(store.delete_model("").await.is_err());

    // v2 was live before v3: deleting it takes its activation too, so a rollback skips it.
    let deleted = store.delete_model("v2").await.unwrap().expect("v2 existed");
    assert_eq!(deleted.model, model("v2", 100));
    assert_eq!(store.get_model("v2").await.unwrap(), None);
    assert_eq!(store.rollback_model().await.unwrap().model.version, "v1");

    // A stopped experiment no longer protects its versions.
    store
        .set_experiment_status("canary-v4", ExperimentStatus::Stopped, 3)
        .await
        .unwrap();
    assert!(store.delete_model("v4").await.unwrap().is_some());
    let left: Vec<String> = store
        .list_models()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.model.version)
        .collect();
    assert_eq!(left, ["v1", "v3", "v5"]);
    assert_eq!(store.counts().await.unwrap().models, 3);
}

async fn concurrent_bandit_merges_lose_no_update(f: &Fixture) {
    assert_eq!(f.store.bandit_state("v1#explore").await.unwrap(), None);
    // Each merge adds one to a counter: with the read-modify-write atomic, none is lost.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = f.store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    store
                        .merge_bandit_state(
                            "v1#explore",
                            t,
                            Box::new(|stored| {
                                let n: u64 = stored.map_or(Ok(0), |s| s.parse()).map_err(|e| {
                                    kindred_core::Error::InvalidInput(format!("{e}"))
                                })?;
                                Ok((n + 1).to_string())
                            }),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        f.store.bandit_state("v1#explore").await.unwrap().as_deref(),
        Some("40")
    );
    // A failing merge writes nothing.
    let err = f
        .store
        .merge_bandit_state(
            "v1#explore",
            0,
            Box::new(|_| Err(kindred_core::Error::InvalidInput("no".into()))),
        )
        .await;
    assert!(err.is_err());
    assert_eq!(
        f.store.bandit_state("v1#explore").await.unwrap().as_deref(),
        Some("40")
    );
}
