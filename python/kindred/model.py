"""`kindred.Model` and the typed families (`kindred.ALS`, `kindred.EASE`, ...): fit on a
`Dataset`, top-K lists, predictions, similar items and factors, saved in the CLI's and the
server's model format."""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Union

import numpy as np

from . import _native, _progress
from ._ids import INT, STR, as_list, frame, id_array, ids_out, kind_of
from .dataset import Dataset

# Written beside a saved model so that a load gives back the id types a fit was given.
_ID_KINDS_FILE = "python_ids.json"


def _split_spec(spec: str) -> "tuple[str, dict]":
    """`als:factors=8,reg=0.05` as ("als", {"factors": "8", "reg": "0.05"})."""
    name, _, rest = spec.partition(":")
    params = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"model spec `{spec}`: `{part}` is not KEY=VALUE")
        params[key.strip()] = value.strip()
    return name.strip(), params


class Model:
    """A recommendation model: `Model("als", factors=64)`, `Model("als:factors=64")`, a preset,
    or `auto`. `kindred models` lists the families and their parameters. A name or parameter
    Kindred does not know raises ValueError here, before any data is read."""

    _family: Optional[str] = None

    def __init__(self, spec: Optional[str] = None, **params: Any):
        if spec is None:
            if self._family is None:
                raise TypeError("Model() needs a spec, e.g. Model('als', factors=64)")
            spec = self._family
        name, given = _split_spec(spec)
        given.update(params)
        self._build(name, given)

    def _build(self, name: str, params: dict) -> None:
        self._name = name
        self._params = dict(params)
        self._native = _native.Model(name, **self._params)
        self._user_kind = STR
        self._item_kind = STR
        self._items_cache = None

    @property
    def spec(self) -> str:
        """The spec it was built from (`als:factors=8`)."""
        return self._native.spec

    @property
    def is_fitted(self) -> bool:
        return self._native.is_fitted

    def get_params(self) -> dict:
        """Every hyperparameter of the fitted model, defaults included; before `fit`, the
        parameters given so far."""
        if self._native.is_fitted:
            return json.loads(self._native.params_json())
        return dict(self._params)

    def set_params(self, **params: Any) -> "Model":
        """Changes parameters (checked at once, as the constructor checks them). The model is
        unfitted afterwards: fit it again. Returns the model."""
        self._build(self._name, {**self._params, **params})
        return self

    def fit(
        self,
        dataset: Dataset,
        positive: Optional[float] = None,
        seed: int = 42,
        threads: Optional[int] = None,
        progress: _progress.ProgressArg = True,
    ) -> "Model":
        """Fits on every row of `dataset` (keeping ratings >= `positive` when given), exactly as
        `kindred train --data ... --model SPEC --seed SEED` does. `progress`: see
        `kindred._progress` (True: tqdm when installed). Ctrl-C stops it with
        KeyboardInterrupt. Returns the model."""
        callback = _progress.reporter(progress)
        try:
            self._native.fit(
                dataset._native, positive=positive, seed=seed, threads=threads, progress=callback
            )
        finally:
            _progress.close(callback)
        self._items_cache = None
        self._user_kind = dataset._user_kind
        self._item_kind = dataset._item_kind
        return self

    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True):
        """Top-`k` lists for `users` (one id or several) as a DataFrame with columns user, item,
        rank (1 first) and score. Items a user interacted with in training are left out unless
        `exclude_seen` is False; a user the model does not know gets its non-personalised
        ranking, as `kindred recommend` does."""
        asked = as_list(users)
        lengths, items, scores = self._native.recommend_packed(
            [str(u) for u in asked], k, exclude_seen
        )
        lengths = np.frombuffer(lengths, dtype="<u4").astype(np.int64)
        items = np.frombuffer(items, dtype="<u4")
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        # Each list is labelled with the id exactly as the caller gave it.
        given = id_array(asked, kind_of(asked))
        return frame(
            {
                "user": given.repeat(lengths),
                "item": self._item_array()[items],
                "rank": np.arange(len(items), dtype=np.int64) - starts + 1,
                "score": np.frombuffer(scores, dtype="<f4").copy(),
            }
        )

    def similar_items(self, items: Any, k: int = 10, dataset: Optional[Dataset] = None):
        """The `k` items most similar to each of `items`, as a DataFrame with columns item,
        similar, rank and score: by cosine of the model's item factors when it has them (ALS,
        BPR, SVD, ...), else by co-occurrence in the rows it was fitted on (shrunk cosine of who
        interacted with what, as the server's `/v1/similar-items`). A loaded model without
        factors needs `dataset`. The DataFrame's `attrs["method"]` says which was used."""
        asked = as_list(items)
        native = None if dataset is None else dataset._native
        lists, method = self._native.similar_items([str(i) for i in asked], k, native)
        lengths = np.asarray([len(found) for found in lists], dtype=np.int64)
        similar = [item for found in lists for item, _ in found]
        scores = np.asarray([score for found in lists for _, score in found], dtype=np.float32)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        result = frame(
            {
                "item": id_array(asked, kind_of(asked)).repeat(lengths),
                "similar": id_array(similar, self._item_kind),
                "rank": np.arange(len(similar), dtype=np.int64) - starts + 1,
                "score": scores,
            }
        )
        if hasattr(result, "attrs"):
            result.attrs["method"] = method
        return result

    def _item_array(self) -> np.ndarray:
        """The model's item ids as an array (built once), in the id type the fit was given."""
        if self._items_cache is None:
            self._items_cache = id_array(self._native.item_ids(), self._item_kind)
        return self._items_cache

    def predict(self, pairs=None, users: Any = None, items: Any = None) -> np.ndarray:
        """Predicted ratings for (user, item) pairs: a DataFrame with `user` and `item` columns,
        or `users=` and `items=` sequences. NaN where the model predicts no rating."""
        if pairs is not None:
            users, items = pairs["user"], pairs["item"]
        if users is None or items is None:
            raise ValueError("give a DataFrame with user and item columns, or users= and items=")
        users = [str(u) for u in as_list(users)]
        items = [str(i) for i in as_list(items)]
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
        return ids_out(self._native.user_ids(), self._user_kind)

    @property
    def item_ids(self) -> list:
        return ids_out(self._native.item_ids(), self._item_kind)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the model directory in the format `kindred train` writes and the server keeps
        its versions in (`kindred recommend --model DIR` reads it; `kindred models register
        --store S --artifact DIR --publish` serves it)."""
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
        model._name, model._params = model._native.spec, {}
        model._user_kind = model._item_kind = STR
        model._items_cache = None
        kinds_file = os.path.join(path, _ID_KINDS_FILE)
        if os.path.exists(kinds_file):
            with open(kinds_file, encoding="utf-8") as f:
                kinds = json.load(f)
            model._user_kind = INT if kinds.get("user") == INT else STR
            model._item_kind = INT if kinds.get("item") == INT else STR
        return model

    def __repr__(self) -> str:
        return repr(self._native)


def _matrix(factors) -> Optional[np.ndarray]:
    if factors is None:
        return None
    dim, values = factors
    return np.asarray(values, dtype=np.float32).reshape(-1, dim)


def _family(name: str, doc: str) -> type:
    return type(name, (Model,), {"_family": name.lower(), "__doc__": doc, "__module__": __name__})


ALS = _family("ALS", "Implicit-feedback matrix factorisation (alternating least squares).")
BPR = _family("BPR", "Bayesian personalised ranking.")
EASE = _family("EASE", "Embarrassingly shallow autoencoder (closed-form item-item).")
SVD = _family("SVD", "Funk SVD for ratings (Surprise's SVD).")
SVDpp = _family("SVDpp", "SVD++ for ratings.")
ItemKNN = _family("ItemKNN", "Item-based nearest neighbours.")
Popularity = _family("Popularity", "The most popular items, for everyone.")
Auto = _family("Auto", "Picks and tunes the family on validation rows carved from training.")
