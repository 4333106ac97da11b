#!/usr/bin/env bash
# SASRec (gBCE, as gSASRec trains it) on MovieLens 1M leave-one-out, full ranking over all items with
# each user's other items excluded (`loo`: the latest rating of every user, ties in file order), beside
# Kindred's best non-sequential models on the same split in one `kindred eval`, whose paired
# comparisons (95% bootstrap interval of the NDCG@10 difference, randomisation test; users paired)
# are against the first model, sasrec. Training time is the eval's fit seconds; peak memory comes from
# /usr/bin/time around the whole run.
#
# usage: bash bench/sequence/sasrec_ml1m.sh           (results in $WORK, default /tmp/kindred-sasrec-bench)
#   SASREC="sasrec:epochs=50" overrides the sasrec spec; OTHERS="ease als" the models beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."
KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
ml1m="$KINDRED_DATA_DIR/ml-1m"
[ -f "$ml1m/ratings.dat" ] || { echo "MovieLens 1M not found under $KINDRED_DATA_DIR (set KINDRED_DATA_DIR)" >&2; exit 2; }
work="${WORK:-/tmp/kindred-sasrec-bench}"
mkdir -p "$work"
cargo build -q --release -p kindred-cli --features encoder
k="${CARGO_TARGET_DIR:-target}/release/kindred"
models=(--model "${SASREC:-sasrec}")
read -r -a others <<< "${OTHERS:-ease itemknn:neighbors=200,half_life=2,weighting=tfidf als}"
for m in "${others[@]}"; do models+=(--model "$m"); done
/usr/bin/time -v "$k" --threads "${THREADS:-2}" eval --no-segments --no-auc \
  --data "movielens:$ml1m" --protocol loo "${models[@]}" \
  --json "$work/sasrec_ml1m.json" 2> >(tee "$work/sasrec_ml1m.stderr" >&2) | tee "$work/sasrec_ml1m.txt"
grep -E "Maximum resident set size|Elapsed" "$work/sasrec_ml1m.stderr"
