#!/usr/bin/env bash
# The ANN acceptance measurement: 1,000,000 synthetic items x 64 dims, HNSW vs exact search.
# Release build; writes bench/out/ann.json and bench/out/ann.md. Knobs (environment):
#   KINDRED_ANN_N (1000000) KINDRED_ANN_DIM (64) KINDRED_ANN_QUERIES (1000)
#   KINDRED_ANN_DATASETS (clustered-ip,gaussian-cosine) KINDRED_ANN_EFS (16,32,64,128,256)
#   KINDRED_ANN_M (16) KINDRED_ANN_EF_CONSTRUCTION (100) KINDRED_ANN_NEIGHBOUR_EF (32)
# The criterion comparison on 100k items is `cargo bench -p kindred-rank --bench ann`.
set -euo pipefail
cd "$(dirname "$0")/.."
export KINDRED_ANN_OUT="${KINDRED_ANN_OUT:-$PWD/bench/out}"
cargo bench -p kindred-rank --bench ann_1m
