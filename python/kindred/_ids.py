"""Ids inside Kindred are strings. Integer ids (a DataFrame's int64 column, a CSR matrix's row
numbers) are remembered as such and given back as ints; anything else comes back as str."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

STR, INT = "str", "int"


def kind_of(values: Sequence[Any]) -> str:
    """`INT` when every value is an integer (and there is at least one), else `STR`."""
    if len(values) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        return INT
    return STR


def ids_out(ids: Sequence[str], kind: str) -> list:
    """Kindred's string ids as the caller's type."""
    if kind == INT:
        return [int(i) for i in ids]
    return list(ids)


def id_array(ids: Sequence[Any], kind: str) -> np.ndarray:
    """Ids as an array to index into: int64 for integer ids, objects otherwise."""
    if kind == INT:
        return np.asarray([int(i) for i in ids], dtype=np.int64)
    array = np.empty(len(ids), dtype=object)
    array[:] = list(ids)
    return array


def as_list(ids: Any) -> list:
    """One id or several, as a list."""
    if isinstance(ids, (str, bytes, int, np.integer)):
        return [ids]
    return list(ids)


def frame(columns: dict):
    """A pandas DataFrame when pandas is installed, else the dict of numpy arrays."""
    try:
        import pandas as pd
    except ImportError:
        return {name: np.asarray(values) for name, values in columns.items()}
    return pd.DataFrame(columns)
