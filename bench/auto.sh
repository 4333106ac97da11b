#!/usr/bin/env bash
# `auto` against the best tuned family and against implicit's ALS with its own defaults, on MovieLens and on three
# generated worlds of different shapes. For each dataset and protocol:
#   1. `kindred eval --model auto:budget=$BUDGET`: the choice is made on validation rows carved from the training
#      rows; records the test NDCG@10, what was chosen, the search time against the budget and the refit time;
#   2. the reference: `kindred tune --model F --time $TUNE_SECONDS` for each family F in $FAMILIES (nested, so each
#      tuned result is also an honest test score) plus popularity at its defaults; the best test NDCG@10 among them;
#   3. implicit's ALS with its defaults (factors 100, regularization 0.01, 15 iterations) on the same split
#      (`kindred split`, then bench/peers/implicit_lightfm.py).
# Writes bench/out/auto.md, the JSONs under bench/out/auto/. Release build.
#
# Environment: BUDGET (300), TUNE_SECONDS (300), FAMILIES ("itemknn als ease bpr"), THREADS (2),
# AUTO_DATASETS (default "ml-100k ml-1m sparse dense recency"), KINDRED_DATA_DIR (default ../shared/data).
# LONG_TUNE ("TAG=FAMILY ...", e.g. "ml-1m-temporal=ease") tunes those families on those rows for LONG_SECONDS
# (300) more, into TAG-long-FAMILY.json, a reference as long as auto's budget; SKIP_AUTO=1 runs only those long
# tunings (no auto, popularity, FAMILIES or peer runs). The table is built from every JSON under bench/out/auto/,
# so a run adds to the results of earlier runs on the same splits.
# The worlds:
#   sparse   30,000 users x 10,000 items, about 4 ratings per user (log-normal), flat popularity: a long tail
#   dense    2,000 users x 500 items, about 150 ratings per user
#   recency  5,000 users x 2,000 items, tastes drifting far over each user's active period
set -euo pipefail
cd "$(dirname "$0")/.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
BUDGET="${BUDGET:-300}"
TUNE_SECONDS="${TUNE_SECONDS:-300}"
THREADS="${THREADS:-2}"
LONG_SECONDS="${LONG_SECONDS:-300}"
read -r -a long_tune <<< "${LONG_TUNE:-}"
read -r -a families <<< "${FAMILIES:-itemknn als ease bpr}"
read -r -a datasets <<< "${AUTO_DATASETS:-ml-100k ml-1m sparse dense recency}"
OUT=bench/out/auto
mkdir -p "$OUT"
cargo build -q --release -p kindred-cli
k="${CARGO_TARGET_DIR:-target}/release/kindred"
bench/peers/setup.sh > /dev/null
py=bench/peers/.venv/bin/python

data_of() {
  case "$1" in
    ml-100k | ml-1m) echo "movielens:$KINDRED_DATA_DIR/$1" ;;
    sparse) echo "synthetic:users=30000,items=10000,per_user=4,activity_sigma=1.2,popularity=1.05,seed=101" ;;
    dense) echo "synthetic:users=2000,items=500,per_user=150,seed=102" ;;
    recency) echo "synthetic:users=5000,items=2000,per_user=40,drift=1.5,seed=103" ;;
    *) echo "unknown dataset $1" >&2; exit 2 ;;
  esac
}
protocols_of() {
  case "$1" in
    ml-*) echo "temporal:0.2,positive>=4 random:0.2,positive>=4" ;;
    *) echo "temporal:0.2,positive>=4" ;;
  esac
}

for ds in "${datasets[@]}"; do
  data="$(data_of "$ds")"
  for protocol in $(protocols_of "$ds"); do
    tag="$ds-${protocol%%[:,]*}"
    echo "== $tag" >&2
    for pair in "${long_tune[@]}"; do
      [ "${pair%%=*}" = "$tag" ] || continue
      family="${pair#*=}"
      $k -q --threads "$THREADS" tune --data "$data" --protocol "$protocol" --model "$family" \
        --time "$LONG_SECONDS" --json "$OUT/$tag-long-$family.json" > /dev/null \
        || echo "note: tuning $family on $tag for $LONG_SECONDS s failed" >&2
    done
    [ -n "${SKIP_AUTO:-}" ] && continue
    start=$(date +%s.%N)
    $k -q --threads "$THREADS" eval --no-segments --no-auc --bootstrap 0 --curve-k 0 --data "$data" \
      --protocol "$protocol" --model "auto:budget=$BUDGET" --json "$OUT/$tag-auto.json" > /dev/null
    end=$(date +%s.%N)
    python3 -c "print($end - $start)" > "$OUT/$tag-auto.wall"
    $k -q --threads "$THREADS" eval --no-segments --no-auc --bootstrap 0 --curve-k 0 --data "$data" \
      --protocol "$protocol" --model popularity --json "$OUT/$tag-popularity.json" > /dev/null
    for family in "${families[@]}"; do
      $k -q --threads "$THREADS" tune --data "$data" --protocol "$protocol" --model "$family" \
        --time "$TUNE_SECONDS" --json "$OUT/$tag-tune-$family.json" > /dev/null \
        || echo "note: tuning $family on $tag failed; left out of the reference" >&2
    done
    rm -rf "$OUT/split-$tag"
    $k -q split --data "$data" --protocol "$protocol" --out "$OUT/split-$tag"
    PEERS_MODELS="implicit ALS defaults" PEERS_THREADS="$THREADS" \
      $py bench/peers/implicit_lightfm.py "$OUT/split-$tag" "$ds" "$protocol" "$OUT/peers-$tag" > /dev/null
  done
done

python3 - "$OUT" "$BUDGET" "$TUNE_SECONDS" "${datasets[@]}" > bench/out/auto.md <<'PY'
import glob, json, os, sys
out, budget, tune_seconds, datasets = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
print("# `auto` against the best tuned family and implicit's ALS defaults (bench/auto.sh)\n")
print(f"auto:budget={budget:.0f} per fit; each family tuned by `kindred tune --time {tune_seconds}` (nested); "
      f"{os.cpu_count()} CPUs. NDCG@10 on the outer test rows.\n")
print("| data | protocol | auto | auto chose | best tuned family | its NDCG@10 | auto / best | implicit ALS defaults | "
      "auto / implicit | search s | wall s (eval) | refit s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(f"{out}/*-auto.json")):
    tag = os.path.basename(path)[: -len("-auto.json")]
    auto = json.load(open(path))
    r = auto["results"][0]
    sel = r["per_fold"][0]["selection"]
    ndcg = r["metrics"]["ndcg@10"]
    refs = []
    pop = f"{out}/{tag}-popularity.json"
    if os.path.exists(pop):
        refs.append(("popularity", json.load(open(pop))["results"][0]["metrics"]["ndcg@10"]))
    for t in glob.glob(f"{out}/{tag}-tune-*.json"):
        rep = json.load(open(t))
        refs.append((rep["tuning"]["family"] + " (tuned)", rep["results"][0]["metrics"]["ndcg@10"]))
    for t in glob.glob(f"{out}/{tag}-long-*.json"):
        rep = json.load(open(t))
        refs.append((f"{rep['tuning']['family']} (tuned {rep['tuning']['max_seconds']:.0f} s)",
                     rep["results"][0]["metrics"]["ndcg@10"]))
    best_name, best = max(refs, key=lambda x: x[1]) if refs else ("-", float("nan"))
    peer_files = glob.glob(f"{out}/peers-{tag}/peers-ranking-*.json")
    implicit = float("nan")
    for pf in peer_files:
        for row in json.load(open(pf))["results"]:
            if row["model"] == "implicit ALS defaults":
                implicit = row["metrics"]["ndcg@10"]
    wall = float(open(f"{out}/{tag}-auto.wall").read())
    ds, proto = tag.rsplit("-", 1)
    print(f"| {ds} | {auto['protocol']} | {ndcg:.4f} | `{sel['chosen']}` | {best_name} | {best:.4f} | "
          f"{ndcg / best:.3f} | {implicit:.4f} | {ndcg / implicit:.2f} | {sel['search_seconds']:.0f} | "
          f"{wall:.0f} | {sel['refit_seconds']:.1f} |")
print("\nThe budget bounds the search (screening and tuning on the validation rows); the refit of the winner on all "
      "training rows comes on top. `wall s` is the whole `kindred eval` run (data loading, search, refit, scoring).")
PY
cat bench/out/auto.md
