#!/usr/bin/env bash
# Reruns Kindred's benchmarks and prints the tables that BENCHMARKS.md records.
# Needs MovieLens in $KINDRED_DATA_DIR (default ../shared/data); results also land in bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
[ -d "$KINDRED_DATA_DIR/ml-1m" ] || { echo "MovieLens 1M not found under $KINDRED_DATA_DIR" >&2; exit 2; }
mkdir -p bench/out

echo "## Pipeline phases"
cargo bench -q -p kindred-eval --bench pipeline

cargo build -q --release -p kindred-cli
k=./target/release/kindred
echo
echo "## Accuracy and whole-run wall time"
for ds in ml-100k ml-1m; do
  /usr/bin/time -f "$ds kfold:5 wall %e s" $k eval -q --data "movielens:$KINDRED_DATA_DIR/$ds" --protocol kfold:5 \
    --model random --model baseline --model baseline:method=sgd --json "bench/out/$ds-kfold5.json"
  /usr/bin/time -f "$ds temporal wall %e s" $k eval -q --data "movielens:$KINDRED_DATA_DIR/$ds" --protocol 'temporal:0.2,positive>=4' \
    --model random --model popularity --model popularity:half_life_days=60 --model baseline --model itemknn --model movielens-ranking --json "bench/out/$ds-temporal.json"
done
