"""Runs implicit and LightFM on the exact top-N split `kindred split` wrote, scored exactly as kindred-eval's metrics.rs defines.

usage: implicit_lightfm.py SPLIT_DIR DATASET PROTOCOL [OUT_DIR]
  (writes OUT_DIR/peers-ranking-DATASET-TAG.json, TAG = the protocol's name: temporal, random, coldstart-items)

SPLIT_DIR holds fold0.train.csv, fold0.test.csv and catalog.csv (and fold0.candidates.csv for coldstart-items), as
`kindred split --protocol PROTOCOL` writes them. Items are indexed in catalog order, which is Kindred's item order, so
ties break the same way in both tools (higher score first, then the lower item index).

Ranking protocols (temporal, random): implicit ALS (Kindred's defaults with alpha 1 and 10, and implicit's own
defaults), BPR, item-kNN cosine, LightFM WARP without
features and with ids + genres, plus popularity as a check row: Kindred's `popularity` must give the same numbers.
coldstart-items: only the held-out items are ranked; LightFM WARP with genres only, with ids + genres (cold items
carry their genres only), random, and popularity (check row).
PEERS_MODELS="implicit ALS,LightFM" limits the run to models whose names start so (a trailing "$" asks for that exact
name: "implicit ALS$"); PEERS_THREADS sets threads
(default 2); PEERS_LIGHTFM_NORMALIZE=1 normalises LightFM's item-feature rows to sum 1 (default: raw multi-hot).
Ties are broken as Kindred's evaluation breaks them, so identical scores give identical lists in both tools: by the
lower catalog index on temporal/random splits, and on candidate-set (cold-start) splits by a seeded hash of the
(user, item) external ids (`pair_key`, the same function as kindred_core::rng::pair_key): there a model that cannot
tell new items apart scores them all alike, and index order would leak popularity (ids follow first appearance).
"""
import os

THREADS = int(os.environ.get("PEERS_THREADS", "2"))
# implicit's docs: run its multi-threaded fits with single-threaded BLAS. Pin before numpy loads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import csv
import json
import platform
import sys
import time
import warnings

import numpy as np
import scipy
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

K = 10
SEED = 42
# implicit's item-kNN converts its own similarity matrix and warns about it on every fit; nothing to act on.
warnings.filterwarnings("ignore", message="Method expects CSR input")
# Item features are raw multi-hot (identity and genre columns 1): that reproduces PEERS.md, whose cold-start figures
# normalised rows (lightfm.data.Dataset's default) do not (ML-100K genres only: 0.14 vs 0.23 published, 0.20 raw).
NORMALIZE = os.environ.get("PEERS_LIGHTFM_NORMALIZE", "0") == "1"


def read_log(path):
    with open(path, newline="") as f:
        rows = [(r["user"], r["item"], float(r["weight"])) for r in csv.DictReader(f)]
    return rows


def read_catalog(path):
    """Item ids in Kindred's index order and each item's categorical feature tokens."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["item"] for r in rows], [[t for t in r["features"].split("|") if t] for r in rows]


class Split:
    def __init__(self, split_dir):
        self.items, self.item_tokens = read_catalog(os.path.join(split_dir, "catalog.csv"))
        self.item_index = {it: i for i, it in enumerate(self.items)}
        train = read_log(os.path.join(split_dir, "fold0.train.csv"))
        test = read_log(os.path.join(split_dir, "fold0.test.csv"))
        users = {}
        for u, _, _ in train + test:
            users.setdefault(u, len(users))
        self.user_names = list(users)
        self._tie_keys = {}
        self.n_users, self.n_items = len(users), len(self.items)
        tu = np.array([users[u] for u, _, _ in train], dtype=np.int32)
        ti = np.array([self.item_index[i] for _, i, _ in train], dtype=np.int32)
        tw = np.array([w for _, _, w in train], dtype=np.float32)
        # Duplicates (none in MovieLens) are summed, as Kindred sums weights.
        self.train = sp.csr_matrix((tw, (tu, ti)), shape=(self.n_users, self.n_items), dtype=np.float32)
        self.train.sum_duplicates()
        self.n_train, self.n_test = len(train), len(test)
        relevant = {}
        for u, i, _ in test:
            ui, ii = users[u], self.item_index[i]
            if not self._in_train(ui, ii):  # an item already in training can never be recommended: not relevant
                relevant.setdefault(ui, set()).add(ii)
        self.users = np.array(sorted(relevant), dtype=np.int32)  # evaluated users: >= 1 relevant test item
        self.relevant = [relevant[u] for u in self.users]
        cand_path = os.path.join(split_dir, "fold0.candidates.csv")
        self.candidates = None
        if os.path.exists(cand_path):
            cand_items, _ = read_catalog(cand_path)
            self.candidates = np.array(sorted(self.item_index[i] for i in cand_items), dtype=np.int32)

    def tie_keys(self, u):
        """Per-item tie keys of user u on a candidate-set split (only the candidates' keys matter)."""
        keys = self._tie_keys.get(u)
        if keys is None:
            keys = np.zeros(self.n_items, dtype=np.uint64)
            prefix = _fnv1a(0xCBF29CE484222325, self.user_names[u].encode() + b"\x1f")
            for i in self.candidates:
                keys[i] = _mix64(_fnv1a(prefix, self.items[i].encode()) ^ SEED)
            self._tie_keys[u] = keys
        return keys

    def _in_train(self, u, i):
        row = self.train.indices[self.train.indptr[u]:self.train.indptr[u + 1]]
        return i in row

    def genre_matrix(self):
        """Multi-hot item x token matrix of the catalog's categorical features."""
        vocab, rows, cols = {}, [], []
        for i, tokens in enumerate(self.item_tokens):
            for t in tokens:
                rows.append(i)
                cols.append(vocab.setdefault(t, len(vocab)))
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(self.n_items, len(vocab)))


_MASK64 = (1 << 64) - 1


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _MASK64
    return h


def pair_key(seed, user, item):
    """kindred_core::rng::pair_key: FNV-1a 64 over user, 0x1F, item (UTF-8), XOR seed, then SplitMix64's mix."""
    return _mix64(_fnv1a(_fnv1a(0xCBF29CE484222325, user.encode() + b"\x1f"), item.encode()) ^ seed)


assert pair_key(42, "1", "2") == 0x5D403F6A1CD9B111  # pinned in kindred-core's tests too
assert pair_key(42, "10", "1193") == 0x2A6507EBD2BA46B8


def top_k_dense(scores, k, tie_keys=None):
    """Best k items of one score row, best first: higher score, then lower tie key (when given), then lower index;
    -inf never selected."""
    finite = np.isfinite(scores)
    n = int(finite.sum())
    if n == 0:
        return np.empty(0, dtype=np.int64)
    k = min(k, n)
    kth = np.partition(scores[finite], n - k)[n - k]  # the k-th largest value
    pool = np.flatnonzero(finite & (scores >= kth))  # every item that can be in the top k (ties included)
    if tie_keys is None:
        order = np.lexsort((pool, -scores[pool]))
    else:
        order = np.lexsort((pool, tie_keys[pool], -scores[pool]))
    return pool[order[:k]]


def rank_dense(split, score_rows, batch=1024):
    """Top-K lists of every evaluated user from a function giving a dense score block for a batch of users."""
    lists = []
    cand_mask = None
    if split.candidates is not None:
        cand_mask = np.ones(split.n_items, dtype=bool)
        cand_mask[split.candidates] = False  # True = not a candidate
    for start in range(0, len(split.users), batch):
        users = split.users[start:start + batch]
        block = np.asarray(score_rows(users), dtype=np.float64)
        for r, u in enumerate(users):
            row = block[r]
            row[split.train.indices[split.train.indptr[u]:split.train.indptr[u + 1]]] = -np.inf
            if cand_mask is not None:
                row[cand_mask] = -np.inf
                lists.append(top_k_dense(row, K, split.tie_keys(u)))
            else:
                lists.append(top_k_dense(row, K))
    return lists


def metrics(split, lists):
    """P/R/NDCG/MAP/MRR/hit@K macro-averaged over evaluated users, and coverage@K, exactly as kindred-eval's metrics.rs."""
    acc = np.zeros(6)
    log2 = 1.0 / np.log2(np.arange(2, K + 2))
    for rec, rel in zip(lists, split.relevant):
        hits, dcg, ap, first = 0, 0.0, 0.0, None
        for pos, item in enumerate(rec[:K]):
            if int(item) in rel:
                hits += 1
                dcg += log2[pos]
                ap += hits / (pos + 1)
                first = first or pos + 1
        ideal = min(len(rel), K)
        acc += [hits / K, hits / len(rel), dcg / log2[:ideal].sum(), ap / ideal, 1.0 / first if first else 0.0,
                float(hits > 0)]
    acc /= max(len(lists), 1)
    catalog = split.n_items if split.candidates is None else len(split.candidates)
    distinct = len({int(i) for rec in lists for i in rec[:K]})
    names = ("precision", "recall", "ndcg", "map", "mrr", "hit")
    out = {f"{n}@{K}": float(v) for n, v in zip(names, acc)}
    out[f"coverage@{K}"] = distinct / catalog
    return out


# ---- models: each returns (fit_seconds, recommend_seconds, lists) ----

def popularity(split):
    t0 = time.perf_counter()
    score = np.asarray(split.train.sum(axis=0)).ravel()
    t1 = time.perf_counter()
    lists = rank_dense(split, lambda users: np.broadcast_to(score, (len(users), split.n_items)).copy())
    return t1 - t0, time.perf_counter() - t1, lists


def random_scores(split):
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    lists = rank_dense(split, lambda users: rng.random((len(users), split.n_items)))
    return 0.0, time.perf_counter() - t0, lists


def implicit_model(make):
    def run(split):
        model = make()
        with threadpool_limits(1, "blas"):
            t0 = time.perf_counter()
            model.fit(split.train, show_progress=False)
            t1 = time.perf_counter()
            # The peer's own batch API: top-K of every evaluated user, training items filtered out.
            ids, scores = model.recommend(split.users, split.train[split.users], N=K,
                                          filter_already_liked_items=True)
            t2 = time.perf_counter()
        lists = [row[np.isfinite(s) & (row >= 0)] for row, s in zip(ids, scores)]
        return t1 - t0, t2 - t1, lists
    return run


def lightfm_model(features, epochs=30, components=64):
    """features: None (ids only), "genres" (genres only) or "ids+genres" (cold items: genres only)."""
    def run(split):
        from lightfm import LightFM
        item_features = None
        if features is not None:
            genres = split.genre_matrix()
            if features == "genres":
                item_features = genres
            else:
                ident = sp.identity(split.n_items, dtype=np.float32, format="csr")
                if split.candidates is not None:  # cold items have no trained id embedding: genres only
                    keep = np.ones(split.n_items, dtype=np.float32)
                    keep[split.candidates] = 0
                    ident = sp.diags(keep, format="csr") @ ident
                item_features = sp.hstack([ident, genres], format="csr")
            item_features = item_features.astype(np.float32).tocsr()
            if NORMALIZE:
                # As lightfm.data.Dataset.build_item_features(normalize=True): each item's row sums to 1.
                norm = np.asarray(item_features.sum(axis=1)).ravel()
                norm[norm == 0] = 1
                item_features = (sp.diags(1.0 / norm) @ item_features).astype(np.float32).tocsr()
        model = LightFM(no_components=components, loss="warp", random_state=SEED)
        t0 = time.perf_counter()
        model.fit(split.train.tocoo(), item_features=item_features, epochs=epochs, num_threads=THREADS)
        t1 = time.perf_counter()
        item_bias, item_emb = model.get_item_representations(item_features)
        user_bias, user_emb = model.get_user_representations()
        # Identical to model.predict (dot product plus both biases), for all items at once.
        lists = rank_dense(split, lambda users: user_emb[users] @ item_emb.T + item_bias[None, :]
                           + user_bias[users, None])
        return t1 - t0, time.perf_counter() - t1, lists
    return run


def ranking_models():
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    def als(alpha):
        return lambda: AlternatingLeastSquares(factors=64, regularization=0.05, alpha=alpha, iterations=15,
                                               num_threads=THREADS, random_state=SEED)
    # (name, Kindred spec it pairs with or None, params, runner)
    return [
        ("popularity", "popularity", {}, popularity),
        ("implicit ALS", "als", {"factors": 64, "regularization": 0.05, "alpha": 1, "iterations": 15},
         implicit_model(als(1.0))),
        # implicit's own defaults (what a user who does not tune gets): the bar `auto` must clear.
        ("implicit ALS defaults", None, {"factors": 100, "regularization": 0.01, "alpha": 1, "iterations": 15},
         implicit_model(lambda: AlternatingLeastSquares(factors=100, regularization=0.01, alpha=1.0, iterations=15,
                                                        num_threads=THREADS, random_state=SEED))),
        ("implicit ALS alpha 10", None, {"factors": 64, "regularization": 0.05, "alpha": 10, "iterations": 15},
         implicit_model(als(10.0))),
        ("implicit BPR", "bpr", {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
         implicit_model(lambda: BayesianPersonalizedRanking(factors=64, learning_rate=0.01, regularization=0.01,
                                                            iterations=100, num_threads=THREADS,
                                                            random_state=SEED))),
        ("implicit item-kNN cosine", "itemknn", {"K": 50},
         implicit_model(lambda: CosineRecommender(K=50, num_threads=THREADS))),
        ("LightFM WARP", None, {"no_components": 64, "epochs": 30, "features": "none"},
         lightfm_model(None)),
        ("LightFM WARP ids+genres", "hybrid", {"no_components": 64, "epochs": 30, "features": "ids+genres"},
         lightfm_model("ids+genres")),
    ]


def coldstart_models():
    return [
        ("popularity", "popularity", {}, popularity),
        ("random", "random", {"seed": SEED}, random_scores),
        ("LightFM WARP genres", "hybrid:item_ids=false", {"no_components": 64, "epochs": 30, "features": "genres"},
         lightfm_model("genres")),
        ("LightFM WARP ids+genres", "hybrid", {"no_components": 64, "epochs": 30,
                                               "features": "ids+genres (cold items: genres only)"},
         lightfm_model("ids+genres")),
    ]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    split_dir, dataset, protocol = sys.argv[1:4]
    out_dir = sys.argv[4] if len(sys.argv) > 4 else "bench/out"
    for f in ("catalog.csv", "fold0.train.csv", "fold0.test.csv"):
        if not os.path.exists(os.path.join(split_dir, f)):
            sys.exit(f"no {f} in {split_dir}; run `kindred split --protocol '{protocol}'` first")
    tag = protocol.split(":")[0].split(",")[0]
    split = Split(split_dir)
    cold = split.candidates is not None
    print(f"{dataset} {protocol}: {split.n_train} train / {split.n_test} test, {len(split.users)} evaluated users, "
          f"{split.n_items} catalog items" + (f", {len(split.candidates)} candidates" if cold else ""), flush=True)
    wanted = [w for w in os.environ.get("PEERS_MODELS", "").split(",") if w]
    results = []
    for name, kindred_spec, params, run in (coldstart_models() if cold else ranking_models()):
        if wanted and not any(name == w[:-1] if w.endswith("$") else name.startswith(w) for w in wanted):
            continue
        fit_s, rec_s, lists = run(split)
        m = metrics(split, lists)
        results.append({"model": name, "kindred": kindred_spec, "params": params, "metrics": m,
                        "fit_seconds": fit_s, "recommend_seconds": rec_s})
        print(f"{dataset} {tag:15s} {name:26s} P {m['precision@10']:.4f} R {m['recall@10']:.4f} "
              f"NDCG {m['ndcg@10']:.4f} MAP {m['map@10']:.4f} MRR {m['mrr@10']:.4f} cov {m['coverage@10']:.3f} "
              f"fit {fit_s:.2f} s rec {rec_s:.2f} s", flush=True)

    import implicit
    import lightfm
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"peers-ranking-{dataset}-{tag}.json")
    with open(out, "w") as f:
        json.dump({"dataset": dataset, "protocol": protocol, "split_dir": split_dir, "k": K,
                   "lightfm_item_features": "normalized rows" if NORMALIZE else "raw multi-hot",
                   "counts": {"train": split.n_train, "test": split.n_test, "evaluated_users": len(split.users),
                              "catalog": split.n_items,
                              "candidates": None if not cold else len(split.candidates)},
                   "threads": THREADS, "results": results,
                   "versions": {"implicit": implicit.__version__, "lightfm": lightfm.__version__,
                                "numpy": np.__version__, "scipy": scipy.__version__,
                                "python": platform.python_version()}}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
