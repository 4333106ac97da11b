"""Kindred from Python: load interactions, fit any of Kindred's models, evaluate them under a
leakage-free protocol and get top-K lists, through the same Rust code as the `kindred` CLI and
server (a model saved here is read by `kindred recommend` and published to a server with
`kindred models register --publish`; one that `kindred train` or the server trained loads here).

    import kindred
    data = kindred.Dataset.from_pandas(ratings, user="userId", item="movieId",
                                       rating="rating", timestamp="timestamp")
    model = kindred.ALS(factors=64).fit(data, positive=4)
    model.recommend([1, 2, 3], k=10)          # DataFrame: user, item, rank, score
    kindred.evaluate(["als", "ease"], data, protocol="temporal:0.2,positive>=4")

The GIL is released while Rust works, and Ctrl-C stops a fit or an evaluation.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import KindredError, __version__

__all__ = [
    "Dataset",
    "Model",
    "Evaluation",
    "evaluate",
    "KindredError",
    "ALS",
    "BPR",
    "EASE",
    "SVD",
    "SVDpp",
    "ItemKNN",
    "Popularity",
    "Auto",
    "__version__",
]

# Ids are strings inside Kindred. Integer ids (a DataFrame's int64 column, a CSR matrix's row
# numbers) are remembered as such and given back as ints; anything else comes back as str.
_STR, _INT = "str", "int"
# Written beside a saved model so that a load gives back the id types a fit was given.
_ID_KINDS_FILE = "python_ids.json"


def _kind_of(values: Sequence[Any]) -> str:
    if len(values) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        return _INT
    return _STR


def _ids_out(ids: Sequence[str], kind: str) -> list:
    if kind == _INT:
        return [int(i) for i in ids]
    return list(ids)


def _as_list(ids: Any) -> list:
    if isinstance(ids, (str, bytes, int, np.integer)):
        return [ids]
    return list(ids)


def _frame(columns: dict):
    """A pandas DataFrame when pandas is installed, else the dict of numpy arrays."""
    try:
        import pandas as pd
    except ImportError:
        return {name: np.asarray(values) for name, values in columns.items()}
    return pd.DataFrame(columns)


class Dataset:
    """Interactions loaded once in Rust and shared by every model fitted or evaluated on them."""

    def __init__(self, native: "_native.Dataset", user_kind: str = _STR, item_kind: str = _STR):
        self._native = native
        self._user_kind = user_kind
        self._item_kind = item_kind

    @classmethod
    def from_file(cls, spec: str) -> "Dataset":
        """Loads a data spec exactly as the CLI's `--data SPEC` (`movielens:DIR`, `csv:FILE`,
        `jsonl:FILE`, `synthetic:users=N,...`)."""
        return cls(_native.Dataset.from_file(spec))

    @classmethod
    def from_movielens(cls, path: Union[str, os.PathLike]) -> "Dataset":
        """Loads a MovieLens directory (ml-100k, ml-1m, ...)."""
        return cls(_native.Dataset.from_movielens(os.fspath(path)))

    @classmethod
    def from_pandas(
        cls,
        df,
        user: str = "user",
        item: str = "item",
        rating: Optional[str] = None,
        timestamp: Optional[str] = None,
        event: Optional[str] = None,
        weight: Optional[str] = None,
        name: str = "dataframe",
    ) -> "Dataset":
        """One interaction per row of `df`. `rating` (NaN: none), `weight` (NaN: 1), `timestamp`
        (Unix seconds, or a datetime column) and `event` (`view`, `click`, `purchase`, ... or
        any name) are optional columns. The importers' checks apply: the first bad row raises
        ValueError naming its position and column."""
        for column in (user, item, rating, timestamp, event, weight):
            if column is not None and column not in df.columns:
                raise ValueError(f"{name}: no column `{column}` (columns: {list(df.columns)})")
        users = df[user].tolist()
        items = df[item].tolist()
        kwargs: dict = {"name": name}
        if rating is not None:
            kwargs["rating"] = np.asarray(df[rating], dtype=np.float32).tolist()
        if weight is not None:
            kwargs["weight"] = np.asarray(df[weight], dtype=np.float32).tolist()
        if timestamp is not None:
            kwargs["timestamp"] = _seconds(df[timestamp])
        if event is not None:
            kwargs["event"] = ["" if v is None or v != v else str(v) for v in df[event].tolist()]
        native = _native.Dataset.from_columns(
            [str(u) for u in users], [str(i) for i in items], **kwargs
        )
        return cls(native, _kind_of(users), _kind_of(items))

    @classmethod
    def from_csr(
        cls,
        matrix,
        user_ids: Optional[Sequence[Any]] = None,
        item_ids: Optional[Sequence[Any]] = None,
        name: str = "csr",
    ) -> "Dataset":
        """A users x items sparse matrix (scipy CSR or anything with `.tocsr()`), as implicit
        takes it: each stored entry is an interaction whose value is its weight. Rows and
        columns are the ids unless `user_ids` / `item_ids` name them."""
        csr = matrix.tocsr()
        n_users, n_items = csr.shape
        user_ids = list(range(n_users)) if user_ids is None else list(user_ids)
        item_ids = list(range(n_items)) if item_ids is None else list(item_ids)
        if len(user_ids) != n_users or len(item_ids) != n_items:
            raise ValueError(
                f"{name}: {n_users} x {n_items} matrix but {len(user_ids)} user ids and "
                f"{len(item_ids)} item ids"
            )
        rows = np.repeat(np.arange(n_users), np.diff(csr.indptr))
        users = [str(user_ids[r]) for r in rows.tolist()]
        items = [str(item_ids[c]) for c in csr.indices.tolist()]
        weight = np.asarray(csr.data, dtype=np.float32).tolist()
        native = _native.Dataset.from_columns(users, items, weight=weight, name=name)
        return cls(native, _kind_of(user_ids), _kind_of(item_ids))

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def n_users(self) -> int:
        return self._native.n_users

    @property
    def n_items(self) -> int:
        return self._native.n_items

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return repr(self._native)


def _seconds(column) -> list:
    """Unix seconds per row (None where missing) from a numeric or datetime column."""
    values = np.asarray(column)
    if np.issubdtype(values.dtype, np.datetime64):
        missing = np.isnat(values)
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return [None if m else int(s) for m, s in zip(missing.tolist(), seconds.tolist())]
    floats = values.astype(np.float64)
    return [None if f != f else int(f) for f in floats.tolist()]


class Model:
    """A recommendation model: `Model("als", factors=64)`, `Model("als:factors=64")`, a preset,
    or `auto`. `kindred models` lists the families and their parameters."""

    _family: Optional[str] = None

    def __init__(self, spec: Optional[str] = None, **params: Any):
        if spec is None:
            if self._family is None:
                raise TypeError("Model() needs a spec, e.g. Model('als', factors=64)")
            spec = self._family
        self._native = _native.Model(spec, **params)
        self._user_kind = _STR
        self._item_kind = _STR

    @property
    def spec(self) -> str:
        """The spec it was built from."""
        return self._native.spec

    @property
    def is_fitted(self) -> bool:
        return self._native.is_fitted

    def fit(
        self,
        dataset: Dataset,
        positive: Optional[float] = None,
        seed: int = 42,
        threads: Optional[int] = None,
    ) -> "Model":
        """Fits on every row of `dataset` (keeping ratings >= `positive` when given), exactly as
        `kindred train --data ... --model SPEC --seed SEED` does. Returns the model."""
        self._native.fit(dataset._native, positive=positive, seed=seed, threads=threads)
        self._items_cache = None
        self._user_kind = dataset._user_kind
        self._item_kind = dataset._item_kind
        return self

    def recommend(self, users: Any, k: int = 10):
        """Top-`k` lists for `users` (one id or several) as a DataFrame with columns user, item,
        rank (1 first) and score. Items a user interacted with in training are left out; a user
        the model does not know gets its non-personalised ranking, as `kindred recommend`."""
        asked = _as_list(users)
        lengths, items, scores = self._native.recommend_packed([str(u) for u in asked], k)
        lengths = np.frombuffer(lengths, dtype="<u4").astype(np.int64)
        items = np.frombuffer(items, dtype="<u4")
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        # Each list is labelled with the id exactly as the caller gave it.
        if _kind_of(asked) == _INT:
            given = np.asarray(asked, dtype=np.int64)
        else:
            given = np.empty(len(asked), dtype=object)
            given[:] = asked
        return _frame(
            {
                "user": given.repeat(lengths),
                "item": self._item_array()[items],
                "rank": np.arange(len(items), dtype=np.int64) - starts + 1,
                "score": np.frombuffer(scores, dtype="<f4").copy(),
            }
        )

    def _item_array(self) -> np.ndarray:
        """The model's item ids as an array (built once), in the id type the fit was given."""
        cached = getattr(self, "_items_cache", None)
        if cached is None:
            ids = _ids_out(self._native.item_ids(), self._item_kind)
            if self._item_kind == _INT:
                cached = np.asarray(ids, dtype=np.int64)
            else:
                cached = np.empty(len(ids), dtype=object)
                cached[:] = ids
            self._items_cache = cached
        return cached

    def predict(self, pairs=None, users: Any = None, items: Any = None) -> np.ndarray:
        """Predicted ratings for (user, item) pairs: a DataFrame with `user` and `item` columns,
        or `users=` and `items=` sequences. NaN where the model predicts no rating."""
        if pairs is not None:
            users, items = pairs["user"], pairs["item"]
        if users is None or items is None:
            raise ValueError("give a DataFrame with user and item columns, or users= and items=")
        users = [str(u) for u in _as_list(users)]
        items = [str(i) for i in _as_list(items)]
        return np.asarray(self._native.predict(users, items), dtype=np.float32)

    @property
    def user_factors(self) -> Optional[np.ndarray]:
        """Users x factors (rows in `user_ids` order), for models with embeddings."""
        return _matrix(self._native.user_factors())

    @property
    def item_factors(self) -> Optional[np.ndarray]:
        """Items x factors (rows in `item_ids` order), for models with embeddings."""
        return _matrix(self._native.item_factors())

    @property
    def user_ids(self) -> list:
        return _ids_out(self._native.user_ids(), self._user_kind)

    @property
    def item_ids(self) -> list:
        return _ids_out(self._native.item_ids(), self._item_kind)

    def get_params(self) -> dict:
        """The hyperparameters of the fitted model."""
        return json.loads(self._native.params_json())

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the model directory in the format `kindred train` writes and the server keeps
        its versions in (`kindred recommend --model DIR` reads it)."""
        path = os.fspath(path)
        self._native.save(path)
        with open(os.path.join(path, _ID_KINDS_FILE), "w", encoding="utf-8") as f:
            json.dump({"user": self._user_kind, "item": self._item_kind}, f)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Model":
        """Loads a directory written by `save`, `kindred train` or the server."""
        path = os.fspath(path)
        model = Model.__new__(Model)
        model._native = _native.Model.load(path)
        model._user_kind = model._item_kind = _STR
        kinds_file = os.path.join(path, _ID_KINDS_FILE)
        if os.path.exists(kinds_file):
            with open(kinds_file, encoding="utf-8") as f:
                kinds = json.load(f)
            model._user_kind = kinds.get("user", _STR)
            model._item_kind = kinds.get("item", _STR)
        return model

    def __repr__(self) -> str:
        return repr(self._native)


def _matrix(factors) -> Optional[np.ndarray]:
    if factors is None:
        return None
    dim, values = factors
    return np.asarray(values, dtype=np.float32).reshape(-1, dim)


def _family(name: str, doc: str) -> type:
    return type(name, (Model,), {"_family": name.lower(), "__doc__": doc})


ALS = _family("ALS", "Implicit-feedback matrix factorisation (alternating least squares).")
BPR = _family("BPR", "Bayesian personalised ranking.")
EASE = _family("EASE", "Embarrassingly shallow autoencoder (closed-form item-item).")
SVD = _family("SVD", "Funk SVD for ratings (Surprise's SVD).")
SVDpp = _family("SVDpp", "SVD++ for ratings.")
ItemKNN = _family("ItemKNN", "Item-based nearest neighbours.")
Popularity = _family("Popularity", "The most popular items, for everyone.")
Auto = _family("Auto", "Picks and tunes the family on validation rows carved from training.")


class Evaluation(dict):
    """The report of `kindred eval --json` as a dict, with `frame`: one row per model and metric
    (model, metric, value, std)."""

    @property
    def frame(self):
        rows: dict = {"model": [], "metric": [], "value": [], "std": []}
        for result in self.get("results", []):
            std = result.get("metrics_std", {})
            for metric, value in result.get("metrics", {}).items():
                rows["model"].append(result.get("spec"))
                rows["metric"].append(metric)
                rows["value"].append(value)
                rows["std"].append(std.get(metric, float("nan")))
        return _frame(rows)


def evaluate(
    models: Union[str, Model, Iterable[Union[str, Model]]],
    dataset: Dataset,
    protocol: str = "temporal:0.2,positive>=4",
    k: int = 10,
    seed: int = 42,
    bootstrap: int = 1000,
    curve_k: int = 50,
    segments: bool = True,
    auc: bool = True,
    threads: Optional[int] = None,
) -> Evaluation:
    """Fits and scores each model (a spec or a `Model`) under `protocol`, as `kindred eval` does
    with the same arguments, and returns its JSON report."""
    if isinstance(models, (str, Model)):
        models = [models]
    specs = [m.spec if isinstance(m, Model) else str(m) for m in models]
    text = _native.evaluate(
        specs,
        dataset._native,
        protocol,
        k=k,
        seed=seed,
        bootstrap=bootstrap,
        curve_k=curve_k,
        segments=segments,
        auc=auc,
        threads=threads,
    )
    return Evaluation(json.loads(text))
