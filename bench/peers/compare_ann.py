"""Merges bench/ann.sh's rounds into one Markdown report: medians over rounds, per-round ratios.

Usage: compare_ann.py OUT_DIR ROUNDS  (reads OUT_DIR/round-N/ann.json and peers.json; prints Markdown)

"QPS at recall >= TARGET" is the fastest measured setting (ef or nprobe) whose recall@10 reaches TARGET (0.95 unless
ANN_TARGET_RECALL says otherwise), without interpolation; a library that never reaches it gets none. Each data set
also gets the same figures at the lower target ANN_SECOND_RECALL (0.90), for data where no graph reaches 0.95.
"""

import json
import os
import statistics
import sys

TARGET = float(os.environ.get("ANN_TARGET_RECALL", "0.95"))
SECOND = float(os.environ.get("ANN_SECOND_RECALL", "0.90"))


def best_at_target(curve, key, target=TARGET):
    ok = [p for p in curve if p["recall_at_10"] >= target]
    if not ok:
        return None
    best = max(ok, key=lambda p: p["qps_single_thread"])
    return best["qps_single_thread"], f"{key} {best[key]}", best["recall_at_10"]


def fmt_range(values, digits=2, suffix="x"):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.{digits}f}{suffix} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    out, rounds = sys.argv[1], int(sys.argv[2])
    per_round = []
    for r in range(1, rounds + 1):
        kindred = json.load(open(f"{out}/round-{r}/ann.json"))
        peers = json.load(open(f"{out}/round-{r}/peers.json"))
        per_round.append(({x["dataset"]: x for x in kindred["runs"]}, {x["dataset"]: x for x in peers["runs"]}))
    names = list(per_round[0][0].keys())
    print(f"# ANN side by side ({rounds} rounds; medians, ranges in brackets)\n")
    for name in names:
        k0, p0 = per_round[0][0][name], per_round[0][1][name]
        print(f"## {name}: {k0['n']:,} x {k0['dim']}, {k0['metric']}, {k0['queries']} queries ({k0.get('about', '')})\n")
        print(f"Builds on {k0['threads']} threads; searches on one thread. Kindred and hnswlib: M = {k0['hnsw']['m']}, "
              f"ef_construction = {k0['hnsw']['ef_construction']}; faiss HNSW32: M = 32, same ef_construction; "
              f"faiss IVF-Flat: nlist = {p0.get('faiss_ivf_flat', {}).get('nlist', 'n/a')}.\n")
        rows = []

        def collect(label, get_build, get_mem, get_curve, key):
            builds, mems, at_target, at_second = [], [], [], []
            for kind, peer in per_round:
                builds.append(get_build(kind[name], peer[name]))
                mems.append(get_mem(kind[name], peer[name]))
                at_target.append(best_at_target(get_curve(kind[name], peer[name]), key))
                at_second.append(best_at_target(get_curve(kind[name], peer[name]), key, SECOND))
            rows.append((label, builds, mems, at_target, at_second))

        collect("Kindred HNSW", lambda k, p: k["hnsw"]["build_seconds"], lambda k, p: k["hnsw"]["index_bytes"],
                lambda k, p: k["hnsw"]["by_ef"], "ef")
        for label, field, key in [("hnswlib", "hnswlib", "ef"), ("faiss HNSW32", "faiss_hnsw32", "ef"),
                                  ("faiss IVF-Flat", "faiss_ivf_flat", "nprobe")]:
            if field in p0:
                collect(label, lambda k, p, f=field: p[f]["build_seconds"],
                        lambda k, p, f=field: p[f]["index_bytes"],
                        lambda k, p, f=field, key=key: p[f]["by_" + key], key)
        print(f"| library | build s | index MiB | QPS at recall@10 >= {TARGET} | setting (recall) per round "
              f"| QPS at recall@10 >= {SECOND} |")
        print("|---|---:|---:|---:|---|---:|")
        for label, builds, mems, at_target, at_second in rows:
            qps = [a[0] if a else None for a in at_target]
            qps2 = [a[0] if a else None for a in at_second]
            setting = "; ".join(f"{a[1]} ({a[2]:.4f})" if a else "not reached" for a in at_target)
            print(f"| {label} | {fmt_range(builds, 1, '')} | {fmt_range([m / 2**20 for m in mems], 0, '')} "
                  f"| {fmt_range(qps, 0, '')} | {setting} | {fmt_range(qps2, 0, '')} |")
        print()

        kindred_row = rows[0]
        for label, builds, _, at_target, at_second in rows[1:]:
            line = []
            for target, ours, theirs in [(TARGET, kindred_row[3], at_target), (SECOND, kindred_row[4], at_second)]:
                speed = [(k[0] / p[0]) if (k and p) else None for k, p in zip(ours, theirs)]
                line.append(f"search QPS at recall >= {target} {fmt_range(speed)} (per round "
                            f"{', '.join('n/a' if s is None else f'{s:.2f}x' for s in speed)})")
            build = [(p / k) if (k and p) else None for k, p in zip(kindred_row[1], builds)]
            print(f"- Kindred against {label}: {'; '.join(line)}; build speed {fmt_range(build)} "
                  f"(their seconds / ours).")
        if "faiss_flat" in p0:
            ratio = [kind[name]["exact"]["batched_qps"] / peer[name]["faiss_flat"]["batched_qps"] for kind, peer in per_round]
            kq = [kind[name]["exact"]["batched_qps"] for kind, _ in per_round]
            fq = [peer[name]["faiss_flat"]["batched_qps"] for _, peer in per_round]
            print(f"- Exact batched scan, {k0['threads']} threads, all {k0['queries']} queries in one call: Kindred "
                  f"{fmt_range(kq, 0, '')} QPS, faiss flat {fmt_range(fq, 0, '')} QPS: {fmt_range(ratio)}.")
        single = [kind[name]["exact"]["single_thread_qps"] for kind, _ in per_round]
        print(f"- Kindred's exact scan one query at a time on one thread: {fmt_range(single, 1, '')} QPS.\n")

        print("| ef | Kindred recall | Kindred QPS | hnswlib recall | hnswlib QPS | faiss HNSW32 recall | faiss HNSW32 QPS |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for i, point in enumerate(k0["hnsw"]["by_ef"]):
            cells = [str(point["ef"])]
            for getter in [lambda k, p: k["hnsw"]["by_ef"], lambda k, p: p.get("hnswlib", {}).get("by_ef"),
                           lambda k, p: p.get("faiss_hnsw32", {}).get("by_ef")]:
                curves = [getter(kind[name], peer[name]) for kind, peer in per_round]
                if not all(curves):
                    cells += ["n/a", "n/a"]
                    continue
                cells.append(f"{statistics.median(c[i]['recall_at_10'] for c in curves):.4f}")
                cells.append(f"{statistics.median(c[i]['qps_single_thread'] for c in curves):.0f}")
            print("| " + " | ".join(cells) + " |")
        if "faiss_ivf_flat" in p0:
            print("\n| nprobe | faiss IVF-Flat recall | QPS |\n|---:|---:|---:|")
            for i, point in enumerate(p0["faiss_ivf_flat"]["by_nprobe"]):
                curves = [peer[name]["faiss_ivf_flat"]["by_nprobe"] for _, peer in per_round]
                print(f"| {point['nprobe']} | {statistics.median(c[i]['recall_at_10'] for c in curves):.4f} "
                      f"| {statistics.median(c[i]['qps_single_thread'] for c in curves):.0f} |")
        print()
    first = next(iter(per_round[0][1].values()))
    libs = {lab: first[f]["version"] for lab, f in [("hnswlib", "hnswlib"), ("faiss", "faiss_hnsw32")] if f in first}
    print("Peer versions: " + ", ".join(f"{k} {v}" for k, v in libs.items()) + ".")


if __name__ == "__main__":
    main()
