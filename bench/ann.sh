#!/usr/bin/env bash
# Approximate nearest-neighbour search side by side: Kindred's HNSW and exact scans against hnswlib (HNSW, same M,
# ef_construction and threads) and faiss (HNSW32, IVF-Flat, and the flat scan), every library indexing the same .npy
# files, ROUNDS rounds (peers first in each), medians and per-round ratios in $OUT/ann.md.
#
# Data: by default 1,000,000 clustered low-rank vectors x 64 (inner product) and 100,000 i.i.d. Gaussian vectors
# (cosine), 1000 separate queries each; or your own: ITEMS=items.npy QUERIES=queries.npy [METRIC=ip|cosine|l2]
# (.npy float32/float64, or .fvecs). The exact top 10 of every query is the ground truth.
#
# Knobs: ROUNDS (3), M (16), EF_CONSTRUCTION (100), EFS (10,16,...,512), NPROBES (1,...,256), DATASETS
# (clustered-ip,gaussian-cosine:100000), N (1000000), OUT (bench/out/ann). Builds use every core; searches run
# one query at a time on one thread (the peers get the whole batch in one call on one thread).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/bench/out/ann}"
ROUNDS="${ROUNDS:-3}"
mkdir -p "$OUT"
export KINDRED_ANN_DATA="$OUT/ann-data"
export KINDRED_ANN_M="${M:-16}" KINDRED_ANN_EF_CONSTRUCTION="${EF_CONSTRUCTION:-100}"
export KINDRED_ANN_EFS="${EFS:-10,16,24,32,48,64,80,96,128,192,256,384,512}"
export KINDRED_ANN_DATASETS="${DATASETS:-clustered-ip,gaussian-cosine:100000}" KINDRED_ANN_N="${N:-1000000}"
if [ -n "${ITEMS:-}" ]; then
  export KINDRED_ANN_ITEMS="$ITEMS" KINDRED_ANN_QUERY_VECTORS="${QUERIES:?set QUERIES to the query vectors file}"
  export KINDRED_ANN_METRIC="${METRIC:-ip}"
fi
bash bench/peers/setup.sh
cargo bench -q -p kindred-rank --bench ann_1m --no-run
KINDRED_ANN_STEP=prepare KINDRED_ANN_OUT="$OUT" cargo bench -q -p kindred-rank --bench ann_1m
for round in $(seq 1 "$ROUNDS"); do
  dir="$OUT/round-$round"
  mkdir -p "$dir"
  echo "== round $round: peers" >&2
  ANN_M="$KINDRED_ANN_M" ANN_EF_CONSTRUCTION="$KINDRED_ANN_EF_CONSTRUCTION" ANN_EFS="$KINDRED_ANN_EFS" \
    ANN_NPROBES="${NPROBES:-1,2,4,8,16,24,32,48,64,96,128,256}" ANN_THREADS="$(nproc)" \
    bench/peers/.venv/bin/python bench/peers/ann_peers.py "$KINDRED_ANN_DATA/datasets.json" "$dir/peers.json"
  echo "== round $round: kindred" >&2
  KINDRED_ANN_STEP=run KINDRED_ANN_OUT="$dir" cargo bench -q -p kindred-rank --bench ann_1m
done
bench/peers/.venv/bin/python bench/peers/compare_ann.py "$OUT" "$ROUNDS" > "$OUT/ann.md"
cat "$OUT/ann.md"
