#!/usr/bin/env bash
# The tuning benchmark BENCHMARKS.md records: nested TPE search of SVD (ML-1M kfold:5, RMSE), of
# ALS and of item-kNN (ML-1M temporal:0.2,positive>=4, NDCG@10), each within a wall-clock budget,
# then scored on the untouched outer test data against the family's defaults, and an HTML report.
# Needs MovieLens in $KINDRED_DATA_DIR (default ../shared/data). Budget: TUNE_SECONDS (default 600).
# Results land in bench/out/: tune-*.json, tune-*.state.jsonl (resumable), tune-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
[ -d "$KINDRED_DATA_DIR/ml-1m" ] || { echo "MovieLens 1M not found under $KINDRED_DATA_DIR" >&2; exit 2; }
budget="${TUNE_SECONDS:-600}"
mkdir -p bench/out
cargo build -q --release -p kindred-cli
k=./target/release/kindred
data="movielens:$KINDRED_DATA_DIR/ml-1m"

run() {
  local name=$1; shift
  rm -f "bench/out/tune-$name.state.jsonl"
  /usr/bin/time -f "tune-$name wall %e s" $k tune -q --data "$data" "$@" --time "$budget" \
    --state "bench/out/tune-$name.state.jsonl" --json "bench/out/tune-$name.json" --best "bench/out/tune-$name.best" \
    | tee "bench/out/tune-$name.txt" | sed -n '/search of/,$p'
}

echo "## svd, kfold:5 (nested: each outer fold searched on its own training data), budget ${budget} s"
run svd-ml1m --protocol kfold:5 --model svd
echo
echo "## als, temporal:0.2,positive>=4, budget ${budget} s"
run als-ml1m --protocol 'temporal:0.2,positive>=4' --model als
echo
echo "## itemknn, temporal:0.2,positive>=4, budget ${budget} s"
run itemknn-ml1m --protocol 'temporal:0.2,positive>=4' --model itemknn
$k report bench/out/tune-svd-ml1m.json bench/out/tune-als-ml1m.json bench/out/tune-itemknn-ml1m.json \
  --out bench/out/tune-report.html
