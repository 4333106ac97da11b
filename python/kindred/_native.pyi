"""Type stubs of the compiled module (crates/kindred-python); use the `kindred` package."""

from typing import Any, Callable, List, Optional, Sequence, Tuple

__version__: str

Progress = Callable[[int, str, int, int, Optional[float]], Any]

class KindredError(Exception):
    """An error from Kindred that is not about the input (a failed fit, a corrupt model file)."""

class Dataset:
    @staticmethod
    def from_file(spec: str) -> "Dataset": ...
    @staticmethod
    def from_movielens(path: str) -> "Dataset": ...
    @staticmethod
    def from_columns(
        user: Sequence[str],
        item: Sequence[str],
        rating: Optional[Sequence[float]] = None,
        weight: Optional[Sequence[float]] = None,
        timestamp: Optional[Sequence[Optional[int]]] = None,
        event: Optional[Sequence[str]] = None,
        name: str = "dataframe",
    ) -> "Dataset": ...
    def with_features(
        self,
        items: Optional[bytes] = None,
        users: Optional[bytes] = None,
        items_name: str = "item_features",
        users_name: str = "user_features",
    ) -> "Dataset": ...
    def item_feature_names(self) -> List[str]: ...
    def user_feature_names(self) -> List[str]: ...
    @property
    def name(self) -> str: ...
    @property
    def n_users(self) -> int: ...
    @property
    def n_items(self) -> int: ...
    def user_ids(self) -> List[str]: ...
    def item_ids(self) -> List[str]: ...
    def __len__(self) -> int: ...

class Model:
    def __init__(self, spec: str, **params: object) -> None: ...
    def fit(
        self,
        dataset: Dataset,
        positive: Optional[float] = None,
        seed: int = 42,
        threads: Optional[int] = None,
        progress: Optional[Progress] = None,
    ) -> None: ...
    def recommend_packed(
        self, users: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> Tuple[bytes, bytes, bytes]: ...
    def similar_items(
        self, items: Sequence[str], k: int = 10, dataset: Optional[Dataset] = None
    ) -> Tuple[List[List[Tuple[str, float]]], str]: ...
    def predict(self, users: Sequence[str], items: Sequence[str]) -> List[float]: ...
    def item_factors(self) -> Optional[Tuple[int, List[float]]]: ...
    def user_factors(self) -> Optional[Tuple[int, List[float]]]: ...
    def user_ids(self) -> List[str]: ...
    def item_ids(self) -> List[str]: ...
    def params_json(self) -> str: ...
    def save(self, path: str) -> None: ...
    @staticmethod
    def load(path: str) -> "Model": ...
    @property
    def spec(self) -> str: ...
    @property
    def algorithm(self) -> Optional[str]: ...
    @property
    def is_fitted(self) -> bool: ...

def evaluate(
    models: Sequence[str],
    dataset: Dataset,
    protocol: str,
    k: int = 10,
    seed: int = 42,
    bootstrap: int = 1000,
    curve_k: int = 50,
    segments: bool = True,
    auc: bool = True,
    threads: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> str: ...
def tune(
    family: str,
    dataset: Dataset,
    protocol: str,
    trials: Optional[int] = None,
    seconds: Optional[float] = None,
    method: str = "tpe",
    metric: Optional[str] = None,
    parallel: int = 1,
    outer_folds: Optional[int] = None,
    k: int = 10,
    seed: int = 42,
    bootstrap: int = 1000,
    threads: Optional[int] = None,
    progress: Optional[Progress] = None,
) -> str: ...
def report(results: Sequence[str], names: Sequence[str], path: str) -> None: ...
