"""hnswlib and faiss on the data sets `bench/ann.sh` prepared (the same .npy files Kindred reads).

For each data set in DATASETS_JSON: hnswlib HNSW (M, ef_construction and build threads as Kindred's),
faiss IndexHNSWFlat (HNSW32), faiss IndexIVFFlat (nlist = 4 sqrt(n)) and faiss IndexFlatIP/L2 (the batched exact
scan). Builds use THREADS threads; every approximate search runs on one thread over the whole query batch, so the
library's own loop (not Python) sets the pace, after one untimed pass, in whole passes for at least 2 s; the flat scan uses THREADS threads, as Kindred's batched scan does.
Recall@10 is measured against the truth file. Memory: the index's own size (hnswlib's index_file_size, faiss's
serialised bytes) and the growth of resident memory over the build. Writes OUT_JSON.

Usage: ann_peers.py DATASETS_JSON OUT_JSON  (env: ANN_M, ANN_EF_CONSTRUCTION, ANN_EFS, ANN_NPROBES, ANN_THREADS,
ANN_LIBS=hnswlib,faiss-hnsw,faiss-ivf,faiss-flat)
"""

import json
import math
import os
import sys
import time
from importlib.metadata import version

import numpy as np


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def recall(found, truth):
    k = truth.shape[1]
    hits = sum(len(set(row[:k].tolist()) & set(want.tolist())) for row, want in zip(found, truth))
    return hits / (k * len(truth))


MIN_SEARCH_SECONDS = 2.0  # as Kindred's bench: whole passes over the queries until this much time has gone by


def timed_search(search):
    """(labels of the last pass, queries per second): whole passes until MIN_SEARCH_SECONDS have gone by."""
    start, passes = time.perf_counter(), 0
    while passes == 0 or time.perf_counter() - start < MIN_SEARCH_SECONDS:
        labels, count = search()
        passes += 1
    return labels, passes * count / (time.perf_counter() - start)


def sweep(label, key, values, set_value, search, truth):
    """The recall/QPS curve over `values` of one search setting: an untimed warm-up pass at the first value, then
    each value timed by timed_search."""
    set_value(values[0])
    search()
    curve = []
    for value in values:
        set_value(value)
        labels, qps = timed_search(lambda: (search(), len(truth)))
        r = recall(labels, truth)
        print(f"{label} {key} {value}: recall {r:.4f}, {qps:.0f} QPS", file=sys.stderr)
        curve.append({key: value, "recall_at_10": r, "qps_single_thread": qps})
    return curve


def env_list(name, default):
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


def main():
    datasets_json, out_json = sys.argv[1], sys.argv[2]
    m = int(os.environ.get("ANN_M", "16"))
    efc = int(os.environ.get("ANN_EF_CONSTRUCTION", "100"))
    efs = env_list("ANN_EFS", "16,32,64,128,256")
    nprobes = env_list("ANN_NPROBES", "1,2,4,8,16,32,64,128")
    threads = int(os.environ.get("ANN_THREADS", str(os.cpu_count())))
    libs = os.environ.get("ANN_LIBS", "hnswlib,faiss-hnsw,faiss-ivf,faiss-flat").split(",")
    import faiss
    import hnswlib

    runs = []
    for ds in json.load(open(datasets_json)):
        name, metric, k = ds["name"], ds["metric"], ds["k"]
        items = np.ascontiguousarray(np.load(ds["items"]), dtype=np.float32)
        queries = np.ascontiguousarray(np.load(ds["query_vectors"]), dtype=np.float32)
        truth = np.load(ds["truth"])
        n, dim = items.shape
        if metric == "cosine":
            faiss.normalize_L2(items)
            faiss.normalize_L2(queries)
        faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        run = {"dataset": name, "n": n, "dim": dim, "metric": metric, "queries": len(queries), "threads": threads}

        if "hnswlib" in libs:
            space = {"inner_product": "ip", "cosine": "cosine", "l2": "l2"}[metric]
            before = rss_bytes()
            index = hnswlib.Index(space=space, dim=dim)
            index.init_index(max_elements=n, ef_construction=efc, M=m, random_seed=7)
            index.set_num_threads(threads)
            print(f"[{name}] hnswlib build (M={m}, ef_construction={efc}, {threads} threads)", file=sys.stderr)
            start = time.perf_counter()
            index.add_items(items, np.arange(n))
            build = time.perf_counter() - start
            growth = rss_bytes() - before
            index.set_num_threads(1)
            curve = sweep(f"[{name}] hnswlib", "ef", efs, lambda ef: index.set_ef(max(ef, k)),
                          lambda: index.knn_query(queries, k=k, num_threads=1)[0], truth)
            run["hnswlib"] = {"version": version("hnswlib"), "m": m, "ef_construction": efc,
                              "build_seconds": build, "rss_growth_bytes": growth,
                              "index_bytes": index.index_file_size(), "by_ef": curve}
            del index

        if "faiss-hnsw" in libs:
            before = rss_bytes()
            index = faiss.IndexHNSWFlat(dim, 32, faiss_metric)
            index.hnsw.efConstruction = efc
            faiss.omp_set_num_threads(threads)
            print(f"[{name}] faiss HNSW32 build (ef_construction={efc}, {threads} threads)", file=sys.stderr)
            start = time.perf_counter()
            index.add(items)
            build = time.perf_counter() - start
            growth = rss_bytes() - before
            faiss.omp_set_num_threads(1)
            curve = sweep(f"[{name}] faiss HNSW32", "ef", efs, lambda ef: setattr(index.hnsw, "efSearch", max(ef, k)),
                          lambda: index.search(queries, k)[1], truth)
            run["faiss_hnsw32"] = {"version": faiss.__version__, "m": 32, "ef_construction": efc,
                                   "build_seconds": build, "rss_growth_bytes": growth,
                                   "index_bytes": faiss.serialize_index(index).nbytes, "by_ef": curve}
            del index

        if "faiss-ivf" in libs:
            nlist = int(4 * math.sqrt(n))
            faiss.omp_set_num_threads(threads)
            before = rss_bytes()
            quantizer = faiss.IndexFlatIP(dim) if faiss_metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
            sample = items[np.random.default_rng(7).choice(n, size=min(n, 64 * nlist), replace=False)]
            print(f"[{name}] faiss IVF-Flat train + add (nlist={nlist}, {threads} threads)", file=sys.stderr)
            start = time.perf_counter()
            index.train(sample)
            index.add(items)
            build = time.perf_counter() - start
            growth = rss_bytes() - before
            faiss.omp_set_num_threads(1)
            curve = sweep(f"[{name}] faiss IVF-Flat", "nprobe", nprobes, lambda p: setattr(index, "nprobe", p),
                          lambda: index.search(queries, k)[1], truth)
            run["faiss_ivf_flat"] = {"version": faiss.__version__, "nlist": nlist, "build_seconds": build,
                                     "rss_growth_bytes": growth, "index_bytes": faiss.serialize_index(index).nbytes,
                                     "by_nprobe": curve}
            del index, quantizer

        if "faiss-flat" in libs:
            faiss.omp_set_num_threads(threads)
            index = faiss.IndexFlatIP(dim) if faiss_metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(dim)
            index.add(items)
            labels, qps = timed_search(lambda: (index.search(queries, k)[1], len(truth)))
            r = recall(labels, truth)
            print(f"[{name}] faiss flat: {qps:.0f} QPS on {threads} threads (recall {r:.4f})", file=sys.stderr)
            run["faiss_flat"] = {"version": faiss.__version__, "batched_qps": qps, "recall_at_10": r}
            del index
        runs.append(run)
    with open(out_json, "w") as f:
        json.dump({"runs": runs}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
