#!/usr/bin/env bash
# Fit speed against the peers, side by side in one run, ROUNDS rounds (default 3), peer first in every round:
#   svd  Surprise's SVD (defaults) vs Kindred's `svd` on ML-1M kfold:5, the exact folds `kindred split` writes.
#        Compared two ways: fit seconds per fold, and Kindred's whole `kindred eval` process (load, split, fit and
#        predict all five folds; `--bootstrap 0`, as Surprise computes no confidence intervals) against Surprise's
#        cross-validation time (fit + test of all five folds, its data loading not counted).
#   als  implicit's ALS (64 factors, reg 0.05, alpha 1, 15 iterations) vs Kindred's `als` (the same settings, its
#        defaults) on ML-1M temporal:0.2,positive>=4, both on SPEED_THREADS threads (default 2); fit seconds and
#        NDCG@10 of each.
# Usage: bench/peers/speed.sh            (needs MovieLens in $KINDRED_DATA_DIR, default ../shared/data)
#   SPEED_MODELS="svd als" picks the comparisons; SPEED_SVD_SPECS="svd svd:exact_order=true" the Kindred specs set
#   against Surprise's SVD (default "svd"); SPEED_ALS_SPECS likewise (default "als").
# Writes bench/out/speed/ (JSON per round) and prints the table (also bench/out/peers-speed.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
rounds="${ROUNDS:-3}"
threads="${SPEED_THREADS:-2}"
read -r -a comparisons <<< "${SPEED_MODELS:-svd als}"
read -r -a svd_specs <<< "${SPEED_SVD_SPECS:-svd}"
read -r -a als_specs <<< "${SPEED_ALS_SPECS:-als}"
[ -d "$KINDRED_DATA_DIR/ml-1m" ] || { echo "MovieLens ml-1m not found under $KINDRED_DATA_DIR (set KINDRED_DATA_DIR)" >&2; exit 2; }
bench/peers/setup.sh > /dev/null
py=bench/peers/.venv/bin/python
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p kindred-cli
k="$target/release/kindred"
data="movielens:$KINDRED_DATA_DIR/ml-1m"
out=bench/out/speed
rm -rf "$out" && mkdir -p "$out"
als_protocol='temporal:0.2,positive>=4'
for c in "${comparisons[@]}"; do
  case "$c" in
    svd) $k -q split --data "$data" --protocol kfold:5 --out "$out/splits-kfold" ;;
    als) $k -q split --data "$data" --protocol "$als_protocol" --out "$out/splits-temporal" ;;
    *) echo "unknown comparison '$c' (svd, als)" >&2; exit 2 ;;
  esac
done
now() { date +%s.%N; }
for r in $(seq 1 "$rounds"); do
  d="$out/round$r" && mkdir -p "$d"
  for c in "${comparisons[@]}"; do
    if [ "$c" = svd ]; then
      PEERS_MODELS=SVD $py bench/peers/surprise_kfold.py "$out/splits-kfold" ml-1m "$d" > /dev/null
      n=0
      for spec in "${svd_specs[@]}"; do
        n=$((n + 1))
        t0=$(now)
        $k -q --threads "$threads" eval --no-segments --bootstrap 0 --data "$data" --protocol kfold:5 --model "$spec" \
          --json "$d/kindred-svd-$n.json" > /dev/null
        echo "{\"spec\": \"$spec\", \"seconds\": $(echo "$(now) - $t0" | bc)}" > "$d/kindred-svd-$n.wall.json"
      done
    else
      PEERS_THREADS="$threads" PEERS_MODELS='implicit ALS$' $py bench/peers/implicit_lightfm.py \
        "$out/splits-temporal" ml-1m "$als_protocol" "$d" > /dev/null
      n=0
      for spec in "${als_specs[@]}"; do
        n=$((n + 1))
        $k -q --threads "$threads" eval --no-segments --no-auc --data "$data" --protocol "$als_protocol" \
          --model "$spec" --json "$d/kindred-als-$n.json" > /dev/null
      done
    fi
  done
  echo "round $r of $rounds done" >&2
done
$py bench/peers/compare_speed.py "$out" | tee bench/out/peers-speed.md
