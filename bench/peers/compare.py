"""Joins Kindred's and Surprise's k-fold JSONs (same folds) into one markdown table; stdlib only.

usage: compare.py [OUT_DIR] [DATASET ...]   (reads OUT_DIR/DATASET-kfold5.json and OUT_DIR/peers-surprise-DATASET.json,
writes OUT_DIR/peers-kfold.md)
"""
import json
import os
import sys

out_dir = sys.argv[1] if len(sys.argv) > 1 else "bench/out"
datasets = sys.argv[2:] or ["ml-100k", "ml-1m"]


def load(name):
    with open(os.path.join(out_dir, name)) as f:
        return json.load(f)["results"]


rows = ["| dataset | model (Kindred / Surprise) | Kindred RMSE | Surprise RMSE | Kindred MAE | Surprise MAE "
        "| Kindred fit s/fold | Surprise fit s/fold | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
extra = []
for ds in datasets:
    kindred = {r["spec"]: r for r in load(f"{ds}-kfold5.json")}
    surprise = load(f"peers-surprise-{ds}.json")
    paired = {s["kindred"] for s in surprise}
    for s in surprise:
        k = kindred.get(s["kindred"])
        if k is None:  # no Kindred counterpart evaluated (SVD for now): listed on its own below
            extra.append(f"| {ds} | {s['model']} | {s['metrics']['rmse']:.4f} ± {s['metrics_std']['rmse']:.4f} "
                         f"| {s['metrics']['mae']:.4f} | {s['fit_seconds']:.3f} | {s['test_seconds']:.3f} |")
            continue
        km, sm = dict(k["metrics"]), s["metrics"]
        n = s.get("folds_run", len(k["per_fold"]))
        if n < len(k["per_fold"]):  # Surprise ran only the first n folds: compare Kindred on the same ones
            for m in ("rmse", "mae"):
                km[m] = sum(f["metrics"][m] for f in k["per_fold"][:n]) / n
            s = dict(s, model=f"{s['model']} (first {n} fold{'s' if n > 1 else ''})")
        # Guard the ratio: Kindred's fits can round to zero on small data.
        speedup = f"{s['fit_seconds'] / k['fit_seconds']:.1f}x" if k["fit_seconds"] > 0 else "n/a"
        rows.append(f"| {ds} | {k['spec']} / {s['model']} | {km['rmse']:.4f} | {sm['rmse']:.4f} | {km['mae']:.4f} "
                    f"| {sm['mae']:.4f} | {k['fit_seconds']:.4f} | {s['fit_seconds']:.4f} | {speedup} |")

    # Kindred models with no Surprise counterpart (movielens-rating, sequential svd): Kindred's columns only.
    for spec, k in kindred.items():
        if spec not in paired:
            name = f"{k['preset']} ({spec})" if k.get("preset") else spec
            rows.append(f"| {ds} | {name} / - | {k['metrics']['rmse']:.4f} | - | {k['metrics']['mae']:.4f} | - "
                        f"| {k['fit_seconds']:.4f} | - | - |")

table = "\n".join(rows) + "\n"
if extra:
    table += ("\nSurprise only (no Kindred counterpart in this run):\n\n| dataset | model | RMSE ± std | MAE "
              "| fit s/fold | test s/fold |\n|---|---|---|---|---|---|\n" + "\n".join(extra) + "\n")
print(table, end="")
with open(os.path.join(out_dir, "peers-kfold.md"), "w") as f:
    f.write(table)
