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
k=./target/release/kindred

for ds in "${datasets[@]}"; do
  data="movielens:$KINDRED_DATA_DIR/$ds"
  # Fresh split dir each time so stale folds from another seed or protocol can never be picked up.
  rm -rf "bench/out/splits-$ds"
  $k split -q --data "$data" --protocol kfold:5 --out "bench/out/splits-$ds"
  $py bench/peers/surprise_kfold.py "bench/out/splits-$ds" "$ds" bench/out
  $k eval -q --data "$data" --protocol kfold:5 \
    --model random --model baseline --model baseline:method=sgd --json "bench/out/$ds-kfold5.json"
done
echo
$py bench/peers/compare.py bench/out "${datasets[@]}"
