#!/usr/bin/env bash
# Batch top-K scale check (issue 9): seeded synthetic factors, 1,000,000 users x 100,000 items x
# 64 factors by default, ~20 seen items per user, k = 10 and 10 item neighbours; scored on one
# node and as a distributed job on local worker threads, lists compared bit for bit.
# Release build; writes bench/out/cluster_topk.json. Knobs (environment):
#   KINDRED_TOPK_USERS (1000000) KINDRED_TOPK_ITEMS (100000) KINDRED_TOPK_FACTORS (64)
#   KINDRED_TOPK_K (10) KINDRED_TOPK_NEIGHBOURS (10) KINDRED_TOPK_WORKERS (2)
#   KINDRED_TOPK_SAMPLE (unset: compare every list; N: single node scores N sampled users/items)
#   KINDRED_TOPK_OUT_DIR (unset: no Parquet; DIR: workers write DIR/users, DIR/neighbours)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${KINDRED_TOPK_JSON:-$PWD/bench/out/cluster_topk.json}"
mkdir -p "$(dirname "$out")"
args=(
  --users "${KINDRED_TOPK_USERS:-1000000}"
  --items "${KINDRED_TOPK_ITEMS:-100000}"
  --factors "${KINDRED_TOPK_FACTORS:-64}"
  --k "${KINDRED_TOPK_K:-10}"
  --neighbours "${KINDRED_TOPK_NEIGHBOURS:-10}"
  --workers "${KINDRED_TOPK_WORKERS:-2}"
  --json "$out"
)
if [[ -n "${KINDRED_TOPK_SAMPLE:-}" ]]; then args+=(--sample "$KINDRED_TOPK_SAMPLE"); fi
if [[ -n "${KINDRED_TOPK_OUT_DIR:-}" ]]; then args+=(--out-dir "$KINDRED_TOPK_OUT_DIR"); fi
CARGO_INCREMENTAL=0 cargo run --release -p kindred-cluster --example topk_scale -- "${args[@]}"
