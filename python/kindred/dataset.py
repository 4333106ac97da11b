"""`kindred.Dataset`: interactions (and item or user features) loaded once in Rust and shared by
every model fitted or evaluated on them."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _native
from ._ids import STR, kind_of


class Dataset:
    """Interactions loaded once in Rust and shared by every model fitted or evaluated on them."""

    def __init__(self, native: "_native.Dataset", user_kind: str = STR, item_kind: str = STR):
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
        """Loads a MovieLens directory (ml-100k, ml-1m, ...), its genres and titles included."""
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
        item_features=None,
        user_features=None,
    ) -> "Dataset":
        """One interaction per row of `df`. `rating` (NaN: none), `weight` (NaN: 1), `timestamp`
        (Unix seconds, or a datetime column) and `event` (`view`, `click`, `purchase`, ... or
        any name) are optional columns. The importers' checks apply: the first bad row raises
        ValueError naming its position and column. `item_features` / `user_features` are
        DataFrames as `with_features` takes them, keyed by the `item` / `user` column."""
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
        dataset = cls(native, kind_of(users), kind_of(items))
        if item_features is None and user_features is None:
            return dataset
        return dataset.with_features(
            items=item_features, users=user_features, item_id=item, user_id=user
        )

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
        return cls(native, kind_of(user_ids), kind_of(item_ids))

    def with_features(
        self, items=None, users=None, item_id: str = "item", user_id: str = "user"
    ) -> "Dataset":
        """This dataset with item and/or user features from DataFrames, replacing any it came
        with (as the CLI's `--item-features` does). One row per entity, keyed by the column
        `item_id` / `user_id`; every other column is a feature, typed as `--item-features`'
        JSON Lines are: a list of strings is categorical (genres), a number numeric (booleans
        as 0/1), a string text (title), a list of numbers a dense vector (an embedding); a
        missing value (NaN, None) is skipped. Content and hybrid models read them."""
        if items is None and users is None:
            raise ValueError("give items= and/or users= (DataFrames of features)")
        native = self._native.with_features(
            items=_features_jsonl(items, item_id, "item_features"),
            users=_features_jsonl(users, user_id, "user_features"),
            items_name="item_features",
            users_name="user_features",
        )
        return Dataset(native, self._user_kind, self._item_kind)

    @property
    def item_feature_names(self) -> list:
        return self._native.item_feature_names()

    @property
    def user_feature_names(self) -> list:
        return self._native.user_feature_names()

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


def _features_jsonl(df, id_column: str, name: str) -> Optional[bytes]:
    """A features DataFrame as the JSON Lines `--item-features` reads (line n is row n - 1),
    so that one reader checks and types features wherever they come from."""
    if df is None:
        return None
    if id_column not in df.columns:
        raise ValueError(f"{name}: no id column `{id_column}` (columns: {list(df.columns)})")
    if "id" in df.columns and id_column != "id":
        raise ValueError(f"{name}: a feature may not be called `id` (the id column is `{id_column}`)")
    renamed = df.rename(columns={id_column: "id"})
    renamed["id"] = renamed["id"].astype(str)
    if len(renamed) == 0:
        raise ValueError(f"{name}: no rows")
    text = renamed.to_json(orient="records", lines=True, force_ascii=False)
    return text.encode("utf-8")


def _seconds(column) -> list:
    """Unix seconds per row (None where missing) from a numeric or datetime column."""
    values = np.asarray(column)
    if np.issubdtype(values.dtype, np.datetime64):
        missing = np.isnat(values)
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return [None if m else int(s) for m, s in zip(missing.tolist(), seconds.tolist())]
    floats = values.astype(np.float64)
    return [None if f != f else int(f) for f in floats.tolist()]
