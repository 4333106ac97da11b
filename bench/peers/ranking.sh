#!/usr/bin/env bash
# Side-by-side top-N ranking: implicit and LightFM vs Kindred on the exact same splits (from `kindred split`), one
# command:
#   bench/peers/ranking.sh        (needs MovieLens in $KINDRED_DATA_DIR, default ../shared/data beside the repo)
# For ml-100k and ml-1m and each protocol (temporal, random, cold-start items; all positive>=4) it writes the split,
# runs the peers (implicit_lightfm.py) and `kindred eval` on it, then prints one table per dataset/protocol
# (compare_ranking.py). Outputs (never committed: derived from MovieLens) land in bench/out/, the tables in
# bench/out/peers-ranking.md.
#
# Environment:
#   KINDRED_RANKING_MODELS    Kindred specs for temporal/random, space-separated (default below)
#   KINDRED_COLDSTART_MODELS  Kindred specs for coldstart-items (default below)
#   RANKING_DATASETS          default "ml-100k ml-1m";  RANKING_PROTOCOLS: default the three below
#   RANKING_THREADS           threads for both tools (default 2);  PEERS_MODELS: see implicit_lightfm.py
# Specs the kindred binary rejects (a model not on this branch, an unknown parameter) are skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
read -r -a datasets <<< "${RANKING_DATASETS:-ml-100k ml-1m}"
read -r -a protocols <<< "${RANKING_PROTOCOLS:-temporal:0.2,positive>=4 random:0.2,positive>=4 coldstart-items:0.1,positive>=4}"
read -r -a ranking_models <<< "${KINDRED_RANKING_MODELS:-popularity itemknn movielens-ranking als als:confidence=implicit als:solver=cholesky ease bpr ncf content hybrid}"
read -r -a coldstart_models <<< "${KINDRED_COLDSTART_MODELS:-popularity random itemknn als content content:columns=genres hybrid hybrid:item_ids=false}"
threads="${RANKING_THREADS:-2}"
for ds in "${datasets[@]}"; do
  [ -d "$KINDRED_DATA_DIR/$ds" ] || { echo "MovieLens $ds not found under $KINDRED_DATA_DIR (set KINDRED_DATA_DIR)" >&2; exit 2; }
done
mkdir -p bench/out
bench/peers/setup.sh
py=bench/peers/.venv/bin/python
cargo build -q --release -p kindred-cli
k=./target/release/kindred

# Keeps the specs this binary knows (model or preset name, parameter names) per `kindred models --json`; prints the
# accepted specs on stdout and a note per skipped one on stderr.
$k models --json > bench/out/kindred-models.json
accepted() { $py bench/peers/kindred_specs.py bench/out/kindred-models.json "$@"; }
mapfile -t ranking_ok < <(accepted "${ranking_models[@]}")
mapfile -t coldstart_ok < <(accepted "${coldstart_models[@]}")

tags=()
for ds in "${datasets[@]}"; do
  data="movielens:$KINDRED_DATA_DIR/$ds"
  for protocol in "${protocols[@]}"; do
    tag="${protocol%%[:,]*}"
    dir="bench/out/splits-$ds-$tag"
    # Fresh split dir each time so a stale split of another seed or protocol can never be picked up.
    rm -rf "$dir"
    $k -q split --data "$data" --protocol "$protocol" --out "$dir"
    PEERS_THREADS="$threads" $py bench/peers/implicit_lightfm.py "$dir" "$ds" "$protocol" bench/out
    if [ "$tag" = coldstart-items ]; then specs=("${coldstart_ok[@]}"); else specs=("${ranking_ok[@]}"); fi
    # One `kindred eval` per model, so a model that fails (e.g. a parameter value a merged model rejects) is
    # reported and skipped instead of losing the others; compare_ranking.py merges the JSONs.
    rm -rf "bench/out/kindred-$ds-$tag" && mkdir -p "bench/out/kindred-$ds-$tag"
    n=0
    for spec in "${specs[@]}"; do
      n=$((n + 1))
      $k -q --threads "$threads" eval --no-segments --no-auc --data "$data" --protocol "$protocol" --model "$spec" \
        --json "bench/out/kindred-$ds-$tag/$(printf %02d $n).json" > /dev/null \
        || echo "note: kindred eval of '$spec' on $ds $protocol failed; left out of the table" >&2
    done
    tags+=("$ds/$tag")
  done
done
echo
$py bench/peers/compare_ranking.py bench/out "${tags[@]}"
