#!/usr/bin/env bash
# The ranking pipeline's example configs on ML-1M (temporal:0.2,positive>=4, movielens-ranking), plus a
# sweep of the release-year boost and the second stage without time features (and on als): NDCG@10, coverage@10 and what the lists contain (mean release
# year, share since 1990, share of Horror; bench/list_profile.py). Release build.
# Writes bench/out/rank-examples/*.{json,csv} and prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
OUT=bench/out/rank-examples
mkdir -p "$OUT"
cargo build --release -q -p kindred-cli
K=target/release/kindred
# The second stage without its time-of-day features: does MovieLens carry a time signal?
sed 's/features = \[.*\]/features = ["user", "item", "user_features", "item_features", "context"]/' \
  examples/rank/second_stage.toml > "$OUT/second_stage-no-time.toml"
# Freshness parts one at a time: the release-year boost (0.3 as in fresh.toml, and 0.6), and the
# absence decay at a 7-day half-life.
for b in 0.3 0.6; do
  printf '[freshness]\nnew_item_boost = %s\nnew_item_half_life_days = 730\nitem_date_column = "year"\nitem_date_unit = "year"\n' \
    "$b" > "$OUT/fresh-year-$b.toml"
done
printf '[freshness]\nabsence_half_life_days = 7\n' > "$OUT/fresh-absence-7.toml"
for w in 0.1 0.2 0.5 1.0; do
  printf '[[objectives.boost]]\ncolumn = "year"\nweight = %s\n' "$w" > "$OUT/year-boost-$w.toml"
done
run() { # name model [rank config]
  local name=$1 model=$2; shift 2
  $K eval --data "movielens:$DATA_DIR/ml-1m" --protocol 'temporal:0.2,positive>=4' \
    --model "$model" --bootstrap 0 --no-segments -q "$@" \
    --json "$OUT/$name.json" --export-recs "$OUT/$name.csv" > /dev/null
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["results"][0]["metrics"]
print(f"{sys.argv[2]}: ndcg@10 {m['ndcg@10']:.4f} coverage@10 {m['coverage@10']:.4f}", end=" | ")
PY
  python3 bench/list_profile.py "$DATA_DIR/ml-1m/movies.dat" "$OUT/$name.csv" | sed 's/^[^:]*: //'
}
run none movielens-ranking
for c in examples/rank/*.toml; do run "$(basename "$c" .toml)" movielens-ranking --rank "$c"; done
run second_stage-no-time movielens-ranking --rank "$OUT/second_stage-no-time.toml"
for f in fresh-year-0.3 fresh-year-0.6 fresh-absence-7; do run "$f" movielens-ranking --rank "$OUT/$f.toml"; done
for w in 0.1 0.2 0.5 1.0; do run "year-boost-$w" movielens-ranking --rank "$OUT/year-boost-$w.toml"; done
run als als
run als-second_stage als --rank examples/rank/second_stage.toml
run als-second_stage-no-time als --rank "$OUT/second_stage-no-time.toml"
