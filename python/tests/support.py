"""What the package's tests share: the CLI and MovieLens they compare against (skipped with a
reason when missing, a failure under CI) and a small seeded ratings table."""

import os

import numpy as np
import pandas as pd
import pytest

import kindred


def _need(variable: str) -> str:
    value = os.environ.get(variable)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{variable} is not set (required under CI)")
    pytest.skip(f"{variable} is not set")


def _cli() -> str:
    path = _need("KINDRED_CLI")
    if not os.path.exists(path):
        pytest.fail(f"KINDRED_CLI={path} does not exist")
    return path


def _movielens(name: str) -> str:
    path = os.path.join(_need("KINDRED_DATA_DIR"), name)
    if not os.path.isdir(path):
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing (required under CI)")
        pytest.skip(f"{path} is missing")
    return path


def ratings_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for user in range(40):
        for item in rng.choice(30, size=8, replace=False):
            rows.append((user + 100, int(item) + 1000, float(rng.integers(1, 6)), 1_600_000_000 + len(rows)))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "ts"])


def small_dataset() -> kindred.Dataset:
    return kindred.Dataset.from_pandas(
        ratings_frame(), user="userId", item="movieId", rating="rating", timestamp="ts", name="toy"
    )
