#!/usr/bin/env bash
# Scaling of distributed ALS (issue 9): one synthetic data set of ~44.5M implicit events
# (~21M distinct user-item pairs; 1M users x 100k items), trained with 1, 2 and 4 workers as
# threads of one process and as separate processes on this machine. Records seconds per
# iteration and bytes exchanged (bench/out/cluster-scaling/*.json), then checks the scaling
# model of ARCHITECTURE.md against them (bench/cluster_scaling.py -> bench/out/cluster-scaling.md).
# Release build; takes ~10 minutes on 2 cores. Knobs (environment):
#   USERS (1000000) ITEMS (100000) PER_USER (21) FACTORS (64) ITERATIONS (4) WORKERS ("1 2 4")
#   DATA (bench/out/cluster-data: the shards are generated once and reused)
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${USERS:-1000000}"
ITEMS="${ITEMS:-100000}"
PER_USER="${PER_USER:-21}"
FACTORS="${FACTORS:-64}"
ITERATIONS="${ITERATIONS:-4}"
WORKERS="${WORKERS:-1 2 4}"
DATA="${DATA:-bench/out/cluster-data/u${USERS}-i${ITEMS}-p${PER_USER}}"
OUT=bench/out/cluster-scaling
mkdir -p "$OUT"
cargo build --release -p kindred-cli --features cluster
KINDRED=target/release/kindred
if [ ! -d "$DATA" ]; then
  "$KINDRED" cluster shard --shards 8 --out "$DATA" \
    --data "synthetic:users=$USERS,items=$ITEMS,seed=7,implicit=true,per_user=$PER_USER"
fi
MODEL="als:factors=$FACTORS,iterations=$ITERATIONS"
run() { # name, extra args...
  local name=$1; shift
  echo "== $name" >&2
  rm -rf "$OUT/factors-$name"
  "$KINDRED" cluster als --input "$DATA" --model "$MODEL" --out "$OUT/factors-$name" \
    --json "$OUT/$name.json" "$@" >&2
  rm -rf "$OUT/factors-$name"
}
for w in $WORKERS; do
  run "threads-$w" --workers "$w"
  if [ "$w" -gt 1 ]; then
    run "processes-$w" --local "$w" --workers 1
  fi
done
python3 bench/cluster_scaling.py "$OUT" "$(nproc)" | tee bench/out/cluster-scaling.md
