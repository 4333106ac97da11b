#!/usr/bin/env bash
# Side-by-side Surprise vs Kindred on the exact same kfold:5 folds (from `kindred split`), one command:
#   bench/peers/run.sh        (needs MovieLens in $KINDRED_DATA_DIR, default ../shared/data beside the repo)
# Outputs (never committed: derived from MovieLens) land in bench/out/; the table in bench/out/peers-kfold.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
datasets=(ml-100k ml-1m)
for ds in "${datasets[@]}"; do
  [ -d "$KINDRED_DATA_DIR/$ds" ] || { echo "MovieLens $ds not found under $KINDRED_DATA_DIR (set KINDRED_DATA_DIR)" >&2; exit 2; }
done
mkdir -p bench/out
bench/peers/setup.sh
py=bench/peers/.venv/bin/python
cargo build -q --release -p kindred-cli
k="${CARGO_TARGET_DIR:-target}/release/kindred"

for ds in "${datasets[@]}"; do
  data="movielens:$KINDRED_DATA_DIR/$ds"
  # Fresh split dir each time so stale folds from another seed or protocol can never be picked up.
  rm -rf "bench/out/splits-$ds"
  $k split -q --data "$data" --protocol kfold:5 --out "bench/out/splits-$ds"
  # Surprise needs over an hour for all five ML-1M folds (SVD++ alone ~7 min per fold, kNN ~3 min):
  # by default it runs the first ML-1M fold only and Kindred is compared on that same fold.
  if [ "$ds" = ml-1m ]; then folds="${SURPRISE_ML1M_FOLDS:-1}"; else folds=5; fi
  PEERS_MAX_FOLDS="$folds" $py bench/peers/surprise_kfold.py "bench/out/splits-$ds" "$ds" bench/out
  $k eval -q --no-segments --data "$data" --protocol kfold:5 \
    --model random --model baseline --model baseline:method=sgd --model svd --model svd:exact_order=true \
    --model svdpp --model nmf --model slopeone --model coclustering --model knn --model knn:variant=means \
    --model knn:variant=baseline,user_based=false,similarity=pearson_baseline --model movielens-rating \
    --json "bench/out/$ds-kfold5.json"
done
echo
$py bench/peers/compare.py bench/out "${datasets[@]}"
