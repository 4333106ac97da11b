"""Runs Surprise on the exact k-fold splits `kindred split` wrote, so both tools are scored on the same folds.

usage: surprise_kfold.py SPLIT_DIR DATASET [OUT_DIR]   (writes OUT_DIR/peers-surprise-DATASET.json, default bench/out)

PEERS_MODELS=SVD,NMF limits the run to those Surprise models (names as in MODELS); PEERS_MAX_FOLDS=1 runs only
the first fold(s) of every model, for a timing run that fits in a few minutes.
"""
import os

# Pin BLAS/OpenMP before numpy loads; Surprise itself is single-threaded, this keeps timings comparable run to run.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import glob
import json
import platform
import sys
import time

import numpy as np
import pandas as pd
import surprise
from surprise import (NMF, SVD, BaselineOnly, CoClustering, Dataset, KNNBaseline, KNNBasic, KNNWithMeans,
                      NormalPredictor, Reader, SlopeOne, SVDpp, accuracy)

# Names pair each Surprise model (its defaults) with the Kindred spec it is compared to (compare.py joins on
# "kindred"); the third field caps the folds run per dataset where Surprise is too slow to run all five
# (SVD++ takes ~7 minutes per ML-1M fold), and compare.py then compares Kindred on the same folds only.
MODELS = [
    ("NormalPredictor", "random", {}, lambda: NormalPredictor()),
    ("BaselineOnly", "baseline", {}, lambda: BaselineOnly(verbose=False)),
    ("BaselineOnly(sgd)", "baseline:method=sgd", {}, lambda: BaselineOnly(bsl_options={"method": "sgd"}, verbose=False)),
    ("SVD", "svd", {}, lambda: SVD(random_state=0)),
    ("SVDpp", "svdpp", {"ml-1m": 1}, lambda: SVDpp(random_state=0, cache_ratings=True)),
    ("NMF", "nmf", {}, lambda: NMF(random_state=0)),
    ("SlopeOne", "slopeone", {}, lambda: SlopeOne()),
    ("CoClustering", "coclustering", {}, lambda: CoClustering(random_state=0)),
    ("KNNBasic", "knn", {}, lambda: KNNBasic(verbose=False)),
    ("KNNWithMeans", "knn:variant=means", {}, lambda: KNNWithMeans(verbose=False)),
    ("KNNBaseline(item, pearson_baseline)", "knn:variant=baseline,user_based=false,similarity=pearson_baseline", {},
     lambda: KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False}, verbose=False)),
]


def load(path):
    # External ids stay strings so they never collide with Surprise's inner ids or lose leading zeros.
    return pd.read_csv(path, usecols=["user", "item", "rating"], dtype={"user": str, "item": str, "rating": float})


def main():
    split_dir, dataset = sys.argv[1], sys.argv[2]
    out_dir = sys.argv[3] if len(sys.argv) > 3 else "bench/out"
    n_folds = len(glob.glob(os.path.join(split_dir, "fold*.train.csv")))
    if n_folds == 0:
        sys.exit(f"no fold*.train.csv in {split_dir}; run `kindred split` first")
    reader = Reader(rating_scale=(1, 5))
    folds = []
    for k in range(n_folds):
        train = load(os.path.join(split_dir, f"fold{k}.train.csv"))
        test = load(os.path.join(split_dir, f"fold{k}.test.csv"))
        trainset = Dataset.load_from_df(train[["user", "item", "rating"]], reader).build_full_trainset()
        folds.append((trainset, list(test.itertuples(index=False, name=None))))

    wanted = set(filter(None, os.environ.get("PEERS_MODELS", "").split(",")))
    results = []
    for name, kindred_spec, max_folds, make in MODELS:
        if wanted and name not in wanted:
            continue
        per_fold = []
        cap = min(max_folds.get(dataset, len(folds)), int(os.environ.get("PEERS_MAX_FOLDS", len(folds))))
        for trainset, testset in folds[:cap]:
            algo = make()
            t0 = time.perf_counter()
            algo.fit(trainset)
            t1 = time.perf_counter()
            preds = algo.test(testset)
            t2 = time.perf_counter()
            per_fold.append({"rmse": accuracy.rmse(preds, verbose=False), "mae": accuracy.mae(preds, verbose=False),
                             "fit_seconds": t1 - t0, "test_seconds": t2 - t1})
        col = lambda key: np.array([f[key] for f in per_fold])
        results.append({
            "model": name, "kindred": kindred_spec, "folds_run": len(per_fold),
            "metrics": {m: float(col(m).mean()) for m in ("rmse", "mae")},
            "metrics_std": {m: float(col(m).std()) for m in ("rmse", "mae")},  # population std, as numpy's default
            "fit_seconds": float(col("fit_seconds").mean()),
            "test_seconds": float(col("test_seconds").mean()),
            "per_fold": per_fold,
        })
        r = results[-1]
        print(f"{dataset} {name:18s} folds {len(per_fold)} rmse {r['metrics']['rmse']:.4f} mae {r['metrics']['mae']:.4f} "
              f"fit {r['fit_seconds']:.2f} s/fold test {r['test_seconds']:.2f} s/fold", flush=True)

    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"peers-surprise-{dataset}.json")
    with open(out, "w") as f:
        json.dump({"dataset": dataset, "protocol": f"kfold:{n_folds}", "split_dir": split_dir, "results": results,
                   "versions": {"scikit-surprise": surprise.__version__, "numpy": np.__version__,
                                "pandas": pd.__version__, "python": platform.python_version()}}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
