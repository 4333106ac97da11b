"""The `kindred` package against the CLI: same lists, same metrics, same model files.

Tests that need MovieLens read KINDRED_DATA_DIR; those that compare with the CLI run the binary
KINDRED_CLI names. Without them a test skips and says why, except under CI, where it fails.
"""

import json
import math
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

import kindred
from support import _cli, _movielens, ratings_frame, small_dataset


def test_a_dataframe_becomes_a_dataset():
    data = small_dataset()
    assert (len(data), data.n_users, data.n_items) == (320, 40, 30)
    assert data.name == "toy"
    assert "320 interactions" in repr(data)


def test_datetime_and_missing_columns():
    df = ratings_frame()
    df["when"] = pd.to_datetime(df["ts"], unit="s")
    df.loc[3, "when"] = pd.NaT
    df["event"] = "click"
    data = kindred.Dataset.from_pandas(df, user="userId", item="movieId", timestamp="when", event="event")
    assert len(data) == 320
    with pytest.raises(ValueError, match="no column `nope`"):
        kindred.Dataset.from_pandas(df, user="nope", item="movieId")


def test_a_bad_row_is_named():
    df = ratings_frame()
    df["ts"] = df["ts"].astype("int64") * 1000
    with pytest.raises(ValueError, match=r"toy: row 0: column `timestamp`.*milliseconds"):
        kindred.Dataset.from_pandas(df, user="userId", item="movieId", timestamp="ts", name="toy")
    df = ratings_frame().astype({"movieId": str})
    df.loc[5, "movieId"] = ""
    with pytest.raises(ValueError, match=r"row 5: column `item`: empty id"):
        kindred.Dataset.from_pandas(df, user="userId", item="movieId", name="toy")


def test_specs_and_parameters_are_checked_before_any_fit():
    assert kindred.Model("als", factors=8, reg=0.05).spec == "als:factors=8,reg=0.05"
    assert kindred.ALS(factors=8).spec == "als:factors=8"
    assert kindred.Model("als:factors=8", iterations=3).spec == "als:factors=8,iterations=3"
    with pytest.raises(ValueError):
        kindred.Model("no-such-model")
    with pytest.raises(ValueError):
        kindred.Model("als", no_such_param=1)
    with pytest.raises(kindred.KindredError, match="not fitted"):
        kindred.Model("popularity").recommend([1])


def test_fit_and_recommend_keep_integer_ids():
    data = small_dataset()
    model = kindred.ALS(factors=8, iterations=5).fit(data, positive=3)
    recs = model.recommend([100, 101, 999_999], k=5)
    assert list(recs.columns) == ["user", "item", "rank", "score"]
    assert len(recs) == 15
    assert recs["user"].tolist()[:5] == [100] * 5
    assert all(isinstance(i, int) for i in recs["item"])
    assert recs.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    seen = set(ratings_frame().query("userId == 100 and rating >= 3")["movieId"])
    assert not seen & set(recs.query("user == 100")["item"]), "training items are left out"
    assert model.item_factors.shape == (len(model.item_ids), 8)
    assert model.user_factors.shape[1] == 8
    assert model.get_params()["factors"] == 8


def test_from_csr_matches_the_same_rows_as_a_frame():
    df = ratings_frame()
    users = {u: i for i, u in enumerate(sorted(df.userId.unique()))}
    items = {m: i for i, m in enumerate(sorted(df.movieId.unique()))}
    matrix = scipy.sparse.csr_matrix(
        (np.ones(len(df)), ([users[u] for u in df.userId], [items[m] for m in df.movieId])),
        shape=(len(users), len(items)),
    )
    data = kindred.Dataset.from_csr(matrix, user_ids=sorted(users), item_ids=sorted(items))
    assert (len(data), data.n_users, data.n_items) == (320, 40, 30)
    # Every item's popularity, for a user neither knows (ties may list in another order).
    from_frame = kindred.Dataset.from_pandas(df, user="userId", item="movieId")
    a = kindred.Popularity().fit(data).recommend(["nobody"], k=30)
    b = kindred.Popularity().fit(from_frame).recommend(["nobody"], k=30)
    assert dict(zip(a["item"], a["score"])) == dict(zip(b["item"], b["score"]))
    assert len(a) == 30


def test_rating_models_predict():
    data = small_dataset()
    svd = kindred.SVD(factors=4, epochs=5).fit(data)
    predicted = svd.predict(users=[100, 100], items=[1000, 424242])
    assert 1.0 <= predicted[0] <= 5.0
    pairs = pd.DataFrame({"user": [101], "item": [1001]})
    assert svd.predict(pairs).shape == (1,)
    assert math.isnan(kindred.ALS(factors=4).fit(data).predict(users=[100], items=[1000])[0])


def test_a_saved_model_loads_here_and_in_the_cli(tmp_path):
    data = small_dataset()
    model = kindred.EASE().fit(data, positive=3)
    before = model.recommend([100, 120], k=5)
    model.save(tmp_path / "ease")
    loaded = kindred.Model.load(tmp_path / "ease")
    after = loaded.recommend([100, 120], k=5)
    pd.testing.assert_frame_equal(before, after)
    out = subprocess.run(
        [_cli(), "recommend", "--model", str(tmp_path / "ease"), "--user", "100", "--user", "120", "--k", "5"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    assert out[0] == "user,item,rank,score"
    cli = [line.split(",") for line in out[1:]]
    assert [(int(u), int(i), int(r)) for u, i, r, _ in cli] == list(
        zip(before.user, before.item, before["rank"])
    )
    np.testing.assert_allclose([float(s) for *_, s in cli], before.score, rtol=1e-6)
    # A server's registry takes the directory as a new live version.
    ratings_frame().to_csv(tmp_path / "ratings.csv", index=False)
    store = str(tmp_path / "kindred.db")
    subprocess.run(
        [_cli(), "import", "--data", f"csv:{tmp_path / 'ratings.csv'}", "--columns", "user=userId,item=movieId,rating=rating,timestamp=ts",
         "--store", store, "--quiet"],
        check=True, capture_output=True,
    )
    registered = subprocess.run(
        [_cli(), "models", "register", "--store", store, "--artifact", str(tmp_path / "ease"), "--publish", "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "registered ease" in registered and "live now" in registered, registered


def test_a_model_trained_by_the_cli_loads_here(tmp_path):
    ml = _movielens("ml-100k")
    subprocess.run(
        [_cli(), "train", "--data", f"movielens:{ml}", "--model", "als:factors=16", "--positive", "4",
         "--out", str(tmp_path / "cli-als"), "--quiet"],
        check=True, capture_output=True,
    )
    here = kindred.Model("als:factors=16").fit(kindred.Dataset.from_movielens(ml), positive=4)
    there = kindred.Model.load(tmp_path / "cli-als")
    users = ["1", "2", "3", "nobody"]
    pd.testing.assert_frame_equal(here.recommend(users, k=10), there.recommend(users, k=10))


def _cli_eval(tmp_path, data_spec: str, protocol: str, models: list) -> dict:
    out = tmp_path / "eval.json"
    args = [_cli(), "eval", "--data", data_spec, "--protocol", protocol, "--bootstrap", "0",
            "--curve-k", "0", "--no-segments", "--json", str(out), "--quiet"]
    for m in models:
        args += ["--model", m]
    subprocess.run(args, check=True, capture_output=True)
    return json.loads(out.read_text())


def _assert_same_metrics(ours: dict, theirs: dict):
    assert [r["spec"] for r in ours["results"]] == [r["spec"] for r in theirs["results"]]
    for a, b in zip(ours["results"], theirs["results"]):
        assert a["metrics"].keys() == b["metrics"].keys()
        for metric, value in a["metrics"].items():
            assert abs(value - b["metrics"][metric]) <= 1e-9, (a["spec"], metric, value, b["metrics"][metric])


@pytest.mark.parametrize(
    "protocol,models",
    [
        ("temporal:0.2,positive>=4", ["als", "ease"]),
        ("random:0.2", ["svd"]),
    ],
)
def test_evaluate_gives_the_clis_metrics_on_movielens_1m(tmp_path, protocol, models):
    ml = _movielens("ml-1m")
    data = kindred.Dataset.from_movielens(ml)
    ours = kindred.evaluate(models, data, protocol=protocol, bootstrap=0, curve_k=0, segments=False)
    theirs = _cli_eval(tmp_path, f"movielens:{ml}", protocol, models)
    _assert_same_metrics(ours, theirs)
    frame = ours.frame
    assert set(frame["model"]) == set(models)


def test_evaluate_refuses_bad_arguments_at_once():
    data = small_dataset()
    with pytest.raises(ValueError):
        kindred.evaluate("als", data, protocol="nonsense")
    with pytest.raises(ValueError):
        kindred.evaluate(["no-such-model"], data)


def test_ctrl_c_stops_a_fit_and_raises_keyboard_interrupt():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"user": rng.integers(0, 3000, 150_000), "item": rng.integers(0, 1500, 150_000)})
    data = kindred.Dataset.from_pandas(frame)
    # Far longer than the test may take: only the interrupt can end it in time.
    model = kindred.ALS(factors=16, iterations=10_000)
    # Python's own Ctrl-C handler, as in a terminal or a notebook: a process started in the
    # background by a shell without job control (a CI runner) begins with SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(data)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 30
    assert not model.is_fitted


def test_exclude_seen_false_lets_training_items_back_and_matches_the_cli(tmp_path):
    data = small_dataset()
    model = kindred.EASE().fit(data)
    seen = set(ratings_frame().query("userId == 100")["movieId"])
    kept = model.recommend(100, k=30, exclude_seen=False)
    assert seen <= set(kept["item"]), "every training item can be listed again"
    assert not seen & set(model.recommend(100, k=30)["item"])
    model.save(tmp_path / "ease")
    out = subprocess.run(
        [_cli(), "recommend", "--model", str(tmp_path / "ease"), "--user", "100", "--k", "30", "--include-seen"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()[1:]
    assert [int(line.split(",")[1]) for line in out] == kept["item"].tolist()


def test_set_params_changes_the_spec_and_unfits():
    model = kindred.ALS(factors=8)
    assert model.get_params() == {"factors": 8}
    assert model.set_params(factors=4, iterations=2) is model
    assert model.spec == "als:factors=4,iterations=2"
    model.fit(small_dataset())
    assert model.get_params()["factors"] == 4 and model.get_params()["iterations"] == 2
    model.set_params(reg=0.1)
    assert not model.is_fitted
    with pytest.raises(ValueError):
        model.set_params(no_such_param=1)
    assert kindred.Model("als:factors=8,reg=0.05").set_params(factors=2).spec == "als:factors=2,reg=0.05"


def test_similar_items_by_factors_match_the_cli_and_by_cooccurrence_without(tmp_path):
    data = small_dataset()
    als = kindred.ALS(factors=8, iterations=5).fit(data)
    found = als.similar_items([1000, 1001], k=4)
    assert found.attrs["method"] == "embeddings"
    assert list(found.columns) == ["item", "similar", "rank", "score"]
    assert found["item"].tolist() == [1000] * 4 + [1001] * 4
    assert 1000 not in set(found.query("item == 1000")["similar"])
    als.save(tmp_path / "als")
    out = subprocess.run(
        [_cli(), "similar", "--model", str(tmp_path / "als"), "--items", "--id", "1000", "--k", "4"],
        check=True, capture_output=True, text=True,
    ).stdout
    cli = json.loads(out.splitlines()[0])
    assert [int(s["item"]) for s in cli["similar"]] == found.query("item == 1000")["similar"].tolist()
    np.testing.assert_allclose([s["score"] for s in cli["similar"]], found.query("item == 1000")["score"], rtol=1e-5)

    ease = kindred.EASE().fit(data)
    by_rows = ease.similar_items(1000, k=4)
    assert by_rows.attrs["method"] == "cooccurrence" and len(by_rows) == 4
    ease.save(tmp_path / "ease")
    loaded = kindred.Model.load(tmp_path / "ease")
    with pytest.raises(ValueError, match="dataset="):
        loaded.similar_items(1000)
    pd.testing.assert_frame_equal(loaded.similar_items(1000, k=4, dataset=data), by_rows)
    with pytest.raises(ValueError, match="item `424242`"):
        ease.similar_items(424242)


def test_item_features_from_a_dataframe_feed_a_content_model():
    items = pd.DataFrame({
        "movieId": range(1000, 1030),
        "genres": [["drama"] if i % 2 else ["comedy", "romance"] for i in range(30)],
        "year": [1990 + i for i in range(30)],
        "title": [f"film {i}" for i in range(30)],
    })
    items.loc[3, "year"] = float("nan")
    data = kindred.Dataset.from_pandas(
        ratings_frame(), user="userId", item="movieId", rating="rating", timestamp="ts", item_features=items
    )
    assert set(data.item_feature_names) == {"genres", "year", "title"}
    model = kindred.Model("content").fit(data, positive=3)
    assert len(model.recommend([100, 101], k=5)) == 10
    bad = items.astype({"year": object})
    bad.loc[7, "year"] = "nineteen"
    with pytest.raises(ValueError, match=r"item_features: row 7: field `\$\.year`.*numeric"):
        small_dataset().with_features(items=bad, item_id="movieId")
    with pytest.raises(ValueError, match="no id column `item`"):
        small_dataset().with_features(items=items)


def test_progress_reaches_a_callable_and_tqdm():
    calls = []
    data = small_dataset()
    kindred.ALS(factors=4, iterations=3).fit(data, progress=lambda *call: calls.append(call))
    assert calls, "the last state is always delivered"
    phases = [c[0] for c in calls]
    assert phases == sorted(phases)
    for phase, task, done, total, loss in calls:
        assert isinstance(task, str) and task
        assert total == 0 or done <= total
    # tqdm is installed in the test environment: the default draws with it.
    kindred.ALS(factors=4, iterations=3).fit(data)
    kindred.evaluate("popularity", data, bootstrap=0, progress=lambda *call: calls.append(call))

    def fail(*call):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        kindred.ALS(factors=4, iterations=3).fit(data, progress=fail)


def test_tune_gives_the_clis_choice_and_metrics(tmp_path):
    data = small_dataset()
    ours = kindred.tune("als", data, protocol="temporal:0.2", trials=3, bootstrap=0, progress=False)
    assert ours.chosen and ours.chosen.startswith("als")
    assert len(ours["trials"]) == 3
    frame = pd.DataFrame({
        "user": ratings_frame().userId, "item": ratings_frame().movieId,
        "rating": ratings_frame().rating, "timestamp": ratings_frame().ts,
    })
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    out = tmp_path / "tune.json"
    subprocess.run(
        [_cli(), "tune", "--data", f"csv:{tmp_path / 'ratings.csv'}", "--model", "als", "--protocol",
         "temporal:0.2", "--trials", "3", "--bootstrap", "0", "--json", str(out), "--quiet"],
        check=True, capture_output=True,
    )
    theirs = json.loads(out.read_text())
    assert ours.chosen == theirs["tuning"]["chosen"]
    _assert_same_metrics(ours, theirs)
    with pytest.raises(ValueError):
        kindred.tune("no-such-family", data)


def test_report_writes_one_html_page(tmp_path):
    data = small_dataset()
    evaluation = kindred.evaluate(["popularity", "als:factors=4"], data, bootstrap=0, progress=False)
    path = kindred.report(evaluation, tmp_path / "report.html")
    html = open(path, encoding="utf-8").read()
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    assert "als:factors=4" in html and "popularity" in html
    with pytest.raises(ValueError, match="not a report"):
        kindred.report({"nonsense": 1}, tmp_path / "bad.html")
