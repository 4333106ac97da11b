"""Offline evaluation from Python: `kindred.evaluate` (`kindred eval`), `kindred.tune` (`kindred
tune`) and `kindred.report` (`kindred report`), each running the CLI's own code and returning
or reading its JSON report."""

from __future__ import annotations

import json
import os
from typing import Iterable, Optional, Sequence, Union

from . import _native, _progress
from ._ids import frame
from .dataset import Dataset
from .model import Model


class Evaluation(dict):
    """The report of `kindred eval --json` (or `kindred tune --json`) as a dict, with `frame`:
    one row per model and metric (model, metric, value, std)."""

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
        return frame(rows)

    @property
    def chosen(self) -> Optional[str]:
        """For a tuning report: the spec chosen on the first outer fold's validation rows."""
        tuning = self.get("tuning")
        return None if tuning is None else tuning.get("chosen")


def _run(call, progress, **kwargs) -> Evaluation:
    callback = _progress.reporter(progress)
    try:
        text = call(progress=callback, **kwargs)
    finally:
        _progress.close(callback)
    return Evaluation(json.loads(text))


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
    progress: _progress.ProgressArg = True,
) -> Evaluation:
    """Fits and scores each model (a spec or a `Model`) under `protocol`, as `kindred eval` does
    with the same arguments, and returns its JSON report."""
    if isinstance(models, (str, Model)):
        models = [models]
    specs = [m.spec if isinstance(m, Model) else str(m) for m in models]
    return _run(
        _native.evaluate,
        progress,
        models=specs,
        dataset=dataset._native,
        protocol=protocol,
        k=k,
        seed=seed,
        bootstrap=bootstrap,
        curve_k=curve_k,
        segments=segments,
        auc=auc,
        threads=threads,
    )


def tune(
    family: Union[str, Model],
    dataset: Dataset,
    protocol: str = "temporal:0.2,positive>=4",
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
    progress: _progress.ProgressArg = True,
) -> Evaluation:
    """Searches `family`'s hyperparameters (`"als"`, or `"auto"` across families) as `kindred
    tune --model FAMILY` does: on validation rows carved from each outer training set of
    `protocol`, then scores the chosen configuration and the defaults on the untouched outer
    test rows. `trials` and/or `seconds` bound the search (20 trials when neither is given);
    `method` is `tpe`, `random` or `halving`. The report's `tuning` says what was chosen
    (`Evaluation.chosen`) and `trials` lists every trial."""
    name = family._name if isinstance(family, Model) else str(family)
    return _run(
        _native.tune,
        progress,
        family=name,
        dataset=dataset._native,
        protocol=protocol,
        trials=trials,
        seconds=seconds,
        method=method,
        metric=metric,
        parallel=parallel,
        outer_folds=outer_folds,
        k=k,
        seed=seed,
        bootstrap=bootstrap,
        threads=threads,
    )


def report(
    results: Union[dict, Sequence[dict]],
    path: Union[str, os.PathLike],
    names: Optional[Sequence[str]] = None,
) -> str:
    """Writes one self-contained HTML page (inline charts, no network needed to view it) from
    one or more reports of `evaluate` or `tune`, as `kindred report` does from their JSON
    files; `names` label the results where two hold the same model spec. Returns the path."""
    if isinstance(results, dict):
        results = [results]
    texts = [json.dumps(r) for r in results]
    labels = list(names) if names is not None else [f"results-{i + 1}" for i in range(len(texts))]
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} results but {len(labels)} names")
    path = os.fspath(path)
    _native.report(texts, labels, path)
    return path
