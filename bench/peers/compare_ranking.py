"""Joins Kindred's and the peers' (implicit, LightFM) top-N results on the same splits into markdown tables; stdlib only.

usage: compare_ranking.py OUT_DIR DATASET/TAG ...   (TAG: temporal, random, coldstart-items)
reads OUT_DIR/kindred-DATASET-TAG/*.json (one `kindred eval --json` per model) and
OUT_DIR/peers-ranking-DATASET-TAG.json; prints and writes OUT_DIR/peers-ranking.md.

Per table: both tools' rows, a check line (popularity scored by `kindred eval` and by the Python scorer must agree,
which shows both apply the metric definitions identically), and ratio lines: Kindred ALS fit time over implicit ALS fit time,
movielens-ranking NDCG@10 over the best peer's, and cold-start recall of content/hybrid over LightFM with features.
"""
import glob
import json
import os
import sys

K = 10
METRICS = [f"precision@{K}", f"recall@{K}", f"ndcg@{K}", f"map@{K}", f"mrr@{K}", f"coverage@{K}"]
HEAD = ("| tool | model | P@10 | R@10 | NDCG@10 | MAP@10 | MRR@10 | coverage | fit s | recommend s |\n"
        "|---|---|---|---|---|---|---|---|---|---|")


def fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def row(tool, name, metrics, fit, rec):
    cells = [fmt(metrics.get(m), 3 if m.startswith("coverage") else 4) for m in METRICS]
    return f"| {tool} | {name} | " + " | ".join(cells) + f" | {fmt(fit, 2)} | {fmt(rec, 2)} |"


def kindred_label(r):
    return f"{r['preset']} ({r['spec']})" if r.get("preset") else r["spec"]


def pct(a, b):
    return f"{(a / b - 1) * 100:+.1f}%" if b else "n/a"


def table(out_dir, ds, tag):
    lines = [f"### {ds}, {tag}"]
    peers_path = os.path.join(out_dir, f"peers-ranking-{ds}-{tag}.json")
    peers = json.load(open(peers_path)) if os.path.exists(peers_path) else None
    kindred, evaluated = [], set()
    for path in sorted(glob.glob(os.path.join(out_dir, f"kindred-{ds}-{tag}", "*.json"))):
        rep = json.load(open(path))
        for r in rep["results"]:
            kindred.append(r)
            evaluated.update(f.get("evaluated") for f in r.get("per_fold", []))
    if peers is None and not kindred:
        return lines + ["(no results)"]
    if peers:
        c = peers["counts"]
        lines.append(f"{peers['protocol']}: {c['train']:,} train / {c['test']:,} test interactions, "
                     f"{c['evaluated_users']:,} evaluated users, catalog {c['catalog']:,} items"
                     + (f", {c['candidates']:,} cold candidate items" if c.get("candidates") else "")
                     + f"; peers on {peers['threads']} threads")
    lines += ["", HEAD]
    for r in kindred:
        lines.append(row("Kindred", kindred_label(r), r["metrics"], r["fit_seconds"], r["predict_seconds"]))
    for r in (peers or {}).get("results", []):
        tool = "Python" if r["model"] in ("popularity", "random") else r["model"].split()[0]
        lines.append(row(tool, r["model"], r["metrics"], r["fit_seconds"], r["recommend_seconds"]))
    lines.append("")

    by_spec = {r["spec"]: r for r in kindred}
    peer = {r["model"]: r for r in (peers or {}).get("results", [])}
    # Check: the same model scored by both tools must give the same numbers.
    if "popularity" in by_spec and "popularity" in peer:
        km, pm = by_spec["popularity"]["metrics"], peer["popularity"]["metrics"]
        diff = max(abs(km[m] - pm[m]) for m in METRICS)
        same_users = peers["counts"]["evaluated_users"] in evaluated
        ok = diff < 1e-9 and same_users
        lines.append(f"- check: popularity scored by `kindred eval` and by implicit_lightfm.py: max |difference| over "
                     f"P/R/NDCG/MAP/MRR/coverage@10 = {diff:.1e}, evaluated users "
                     f"{'equal' if same_users else 'DIFFER'} -> {'AGREE' if ok else 'DISAGREE'}")
    als = next((r for r in kindred if r["model"] == "als"), None)
    if als and "implicit ALS" in peer:
        p = peer["implicit ALS"]
        lines.append(f"- fit time, Kindred `{als['spec']}` / implicit ALS: {als['fit_seconds']:.2f} s / "
                     f"{p['fit_seconds']:.2f} s = {als['fit_seconds'] / max(p['fit_seconds'], 1e-9):.2f}x "
                     f"(NDCG@10 {als['metrics'][f'ndcg@{K}']:.4f} vs {p['metrics'][f'ndcg@{K}']:.4f})")
    best = next((r for r in kindred if r.get("preset") == "movielens-ranking"), None)
    rivals = [r for r in peer.values() if r["model"] not in ("popularity", "random")]
    if best and rivals and tag != "coldstart-items":
        top = max(rivals, key=lambda r: r["metrics"][f"ndcg@{K}"])
        a, b = best["metrics"][f"ndcg@{K}"], top["metrics"][f"ndcg@{K}"]
        lines.append(f"- movielens-ranking NDCG@10 {a:.4f} vs best peer ({top['model']}) {b:.4f}: {pct(a, b)}")
    if tag == "coldstart-items":
        refs = [peer[n] for n in ("LightFM WARP genres", "LightFM WARP ids+genres") if n in peer]
        for r in kindred:
            if r["model"] in ("content", "hybrid") and refs:
                a = r["metrics"][f"recall@{K}"]
                vs = ", ".join(f"{p['model']} {p['metrics'][f'recall@{K}']:.4f} ({pct(a, p['metrics'][f'recall@{K}'])})"
                               for p in refs)
                lines.append(f"- cold-start R@10 of Kindred `{r['spec']}` {a:.4f} vs {vs}")
    return lines


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "bench/out"
    pairs = [a.split("/", 1) for a in sys.argv[2:]]
    out = []
    for ds, tag in pairs:
        out += table(out_dir, ds, tag) + [""]
    text = "\n".join(out)
    print(text, end="")
    with open(os.path.join(out_dir, "peers-ranking.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
