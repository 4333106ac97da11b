"""`kindred.Client` against a real `kindred serve` on loopback, serving a model saved from Python:
the server answers the lists the model gives in Python, and takes feedback and registry calls."""

import os
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

import kindred
from support import _cli, ratings_frame, small_dataset


@pytest.fixture
def served(tmp_path):
    """A model fitted here, saved, registered as the live version of a store, and a server on
    that store; yields (model, client)."""
    # Every stored row counts (no `positive`): the server leaves out everything a user
    # interacted with, so the model's seen items must be the same rows.
    model = kindred.ALS(factors=8, iterations=5).fit(small_dataset())
    model.save(tmp_path / "als")
    ratings_frame().to_csv(tmp_path / "ratings.csv", index=False)
    store = str(tmp_path / "kindred.db")
    subprocess.run(
        [_cli(), "import", "--data", f"csv:{tmp_path / 'ratings.csv'}", "--columns",
         "user=userId,item=movieId,rating=rating,timestamp=ts", "--store", store, "--quiet"],
        check=True, capture_output=True,
    )
    subprocess.run(
        [_cli(), "models", "register", "--store", store, "--artifact", str(tmp_path / "als"), "--publish", "--quiet"],
        check=True, capture_output=True,
    )
    env = dict(os.environ, KINDRED_CACHE_TTL_SECONDS="0")
    server = subprocess.Popen(
        [_cli(), "serve", "--store", store, "--listen", "127.0.0.1:0", "--log-level", "warn"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        line = server.stdout.readline()
        assert "http://" in line, line
        url = "http://" + line.split("http://")[1].split()[0]
        client = kindred.Client(url)
        deadline = time.monotonic() + 20
        while not client.ready():
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)
        yield model, client
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_the_server_answers_the_lists_of_a_model_saved_from_python(served):
    model, client = served
    users = [100, 101, 120, 139]
    here = model.recommend(users, k=5)
    there = client.recommendations(users, n=5, int_items=True)
    assert there["user"].tolist() == here["user"].tolist()
    assert there["item"].tolist() == here["item"].tolist()
    np.testing.assert_allclose(there["score"], here["score"], rtol=1e-5)
    assert set(there["source"]) == {"model:als"}
    live = client.models()
    assert live["serving"] and len(live["models"]) == 1


def test_feedback_and_errors_through_the_client(served):
    model, client = served
    events = pd.DataFrame({
        "user": [100, 100, 7777], "item": [1000, 1001, 1002], "type": ["click"] * 3,
        "event_id": ["e1", "e2", "e3"],
    })
    assert client.feedback(events) == {"inserted": 3, "duplicates": 0}
    # Sent again as it was (a retry after a `possibly_stored` answer): stored once.
    assert client.feedback(events) == {"inserted": 0, "duplicates": 3}
    with pytest.raises(ValueError, match="missing `type`"):
        client.feedback([{"user": 1, "item": 2}])
    with pytest.raises(kindred.ServerError) as raised:
        client.model("no-such-version")
    assert raised.value.status == 404 and raised.value.code == "not_found"
    with pytest.raises(kindred.ServerError) as raised:
        client.feedback([{"user": "u", "item": "i", "type": "click", "event_id": "@x/1"}])
    assert raised.value.status == 400 and raised.value.code == "reserved_event_id"
    assert client.similar_items(1000, n=3)["items"]
    anonymous = client.recommend_for(interactions=[1000, 1001], n=4)
    assert len(anonymous["items"]) == 4


def test_the_registry_through_the_client(served):
    model, client = served
    first = client.models()["serving"]
    trained = client.publish(model="popularity", wait=True)
    assert trained["version"] != first, trained
    deadline = time.monotonic() + 20
    while client.models()["serving"] != trained["version"]:
        assert time.monotonic() < deadline, "the new version never went live"
        time.sleep(0.05)
    assert client.recommend(100, n=3)["model_version"] == trained["version"]
    client.rollback()
    while client.models()["serving"] != first:
        assert time.monotonic() < deadline, "the rollback never went live"
        time.sleep(0.05)
    assert client.model(first)["version"] == first
    with pytest.raises(kindred.ServerError) as raised:
        client.activate("no-such-version")
    assert raised.value.status == 404
