"""Tables of bench/peers/speed.sh: every round's times and ratios, then the medians and ranges over rounds.

usage: compare_speed.py OUT_DIR   (OUT_DIR/roundN/ as speed.sh writes it)
"""
import glob
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def spread(values, digits=2, suffix=""):
    """median (min-max) of the rounds."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}{suffix}"
    return f"{med:.{digits}f}{suffix} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def record(per_spec, spec, **values):
    """Appends one round's values to `spec`'s lists, one list per name."""
    acc = per_spec.setdefault(spec, {})
    for name, value in values.items():
        acc.setdefault(name, []).append(value)


def table(title, header, rows):
    """A `###` heading and a Markdown table of `rows` (already formatted) under `header`."""
    return [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + rows + [""]


def svd_tables(rounds):
    rows, per_spec = [], {}
    for r, d in rounds:
        surprise_path = os.path.join(d, "peers-surprise-ml-1m.json")
        if not os.path.exists(surprise_path):
            continue
        s = load(surprise_path)["results"][0]
        s_fit = s["fit_seconds"]
        s_cv = sum(f["fit_seconds"] + f["test_seconds"] for f in s["per_fold"])
        for path in sorted(glob.glob(os.path.join(d, "kindred-svd-*.json"))):
            if path.endswith(".wall.json"):
                continue
            k = load(path)["results"][0]
            wall = load(path[:-len(".json")] + ".wall.json")
            fit_ratio, whole_ratio = s_fit / k["fit_seconds"], s_cv / wall["seconds"]
            rows.append(f"| {r} | {wall['spec']} | {s_fit:.3f} | {k['fit_seconds']:.3f} | **{fit_ratio:.1f}x** | "
                        f"{s_cv:.2f} | {wall['seconds']:.2f} | **{whole_ratio:.1f}x** | "
                        f"{s['metrics']['rmse']:.4f} | {k['metrics']['rmse']:.4f} |")
            record(per_spec, wall["spec"], fit=fit_ratio, whole=whole_ratio, k_fit=k["fit_seconds"], s_fit=s_fit,
                   drmse=k["metrics"]["rmse"] - s["metrics"]["rmse"])
    if not rows:
        return []
    lines = table("SVD, ML-1M kfold:5 (same folds): Surprise SVD vs Kindred",
                  ["round", "Kindred spec", "Surprise fit s/fold", "Kindred fit s/fold", "fit speed-up",
                   "Surprise cross-validation s (fit + test, 5 folds)", "Kindred whole `kindred eval` s",
                   "whole speed-up", "Surprise RMSE", "Kindred RMSE"], rows)
    for spec, a in per_spec.items():
        lines.append(f"- `{spec}`: fit speed-up median {spread(a['fit'], 1, 'x')}, whole-command speed-up "
                     f"{spread(a['whole'], 1, 'x')}; Kindred fit {spread(a['k_fit'], 3)} s/fold, Surprise "
                     f"{spread(a['s_fit'], 3)} s/fold; RMSE Kindred - Surprise {spread(a['drmse'], 4)}")
    return lines + [""]


def als_tables(rounds):
    rows, per_spec = [], {}
    for r, d in rounds:
        peer_path = os.path.join(d, "peers-ranking-ml-1m-temporal.json")
        if not os.path.exists(peer_path):
            continue
        peer = load(peer_path)
        p = next(x for x in peer["results"] if x["model"] == "implicit ALS")
        for path in sorted(glob.glob(os.path.join(d, "kindred-als-*.json"))):
            k = load(path)["results"][0]
            ratio = p["fit_seconds"] / k["fit_seconds"]
            rows.append(f"| {r} | {k['spec']} | {p['fit_seconds']:.3f} | {k['fit_seconds']:.3f} | **{ratio:.2f}x** | "
                        f"{p['metrics']['ndcg@10']:.4f} | {k['metrics']['ndcg@10']:.4f} |")
            record(per_spec, k["spec"], ratio=ratio, k=k["fit_seconds"], p=p["fit_seconds"],
                   ndcg=k["metrics"]["ndcg@10"], p_ndcg=p["metrics"]["ndcg@10"])
    if not rows:
        return []
    lines = table(f"ALS, ML-1M temporal:0.2,positive>=4: implicit ALS vs Kindred, {peer['threads']} threads each",
                  ["round", "Kindred spec", "implicit fit s", "Kindred fit s", "speed-up", "implicit NDCG@10",
                   "Kindred NDCG@10"], rows)
    for spec, a in per_spec.items():
        lines.append(f"- `{spec}`: speed-up median {spread(a['ratio'], 2, 'x')}; Kindred fit {spread(a['k'], 3)} s, "
                     f"implicit {spread(a['p'], 3)} s; NDCG@10 Kindred {spread(a['ndcg'], 4)}, implicit "
                     f"{spread(a['p_ndcg'], 4)}")
    return lines + [""]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    rounds = sorted(((int(os.path.basename(d)[len("round"):]), d) for d in glob.glob(os.path.join(out, "round*"))))
    print("\n".join(svd_tables(rounds) + als_tables(rounds)))


if __name__ == "__main__":
    main()
