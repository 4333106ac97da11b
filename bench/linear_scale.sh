#!/usr/bin/env bash
# The linear item-item models at scale:
#   1. accuracy and fit time on ML-1M (temporal:0.2,positive>=4): exact EASE against SLIM (elastic net, non-negative),
#      SLIM's neighbourhood EASE (l1=0, signs free) and EASE on the most used items only (top_items, the cheaper form
#      `auto` runs when the whole catalog does not fit), median of $RUNS runs of the fit time;
#   2. a generated catalog of $ITEMS items (default 20,000; $USERS users, $PER_USER interactions each): wall time and
#      peak memory (max RSS) of `kindred train` with the neighbourhood EASE, with SLIM and with EASE on the $TOP_ITEMS
#      most used items, each alone in its process.
# Writes bench/out/linear-scale.md. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
RUNS="${RUNS:-3}"
ITEMS="${ITEMS:-20000}"
USERS="${USERS:-50000}"
PER_USER="${PER_USER:-40}"
TOP_ITEMS="${TOP_ITEMS:-8000}"
OUT=bench/out/linear-scale
mkdir -p "$OUT"
cargo build -q --release -p kindred-cli
k="${CARGO_TARGET_DIR:-target}/release/kindred"
EASE_NEIGHBOURHOOD="slim:l1=0,non_negative=false,l2=500,neighbors=200"
SLIM="slim"

{
  echo "# Linear item-item models at scale (bench/linear_scale.sh)"
  echo
  echo "$(nproc) CPUs. ML-1M, temporal:0.2,positive>=4; fit seconds are the median of $RUNS runs."
  echo
  echo "| model | NDCG@10 | recall@10 | coverage@10 | fit s (median) | fit s (runs) |"
  echo "|---|---|---|---|---|---|"
  for spec in ease "$EASE_NEIGHBOURHOOD" "$SLIM" ease:top_items=2000 ease:top_items=1000; do
    for r in $(seq 1 "$RUNS"); do
      $k -q eval --no-segments --no-auc --bootstrap 0 --curve-k 0 --data "movielens:$DATA_DIR/ml-1m" \
        --protocol 'temporal:0.2,positive>=4' --model "$spec" --json "$OUT/ml1m-$r.json" > /dev/null
      cp "$OUT/ml1m-$r.json" "$OUT/ml1m-$(echo "$spec" | tr ':,=' '___')-$r.json"
    done
    python3 - "$spec" "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
spec, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
tag = spec.replace(":", "_").replace(",", "_").replace("=", "_")
rs = [json.load(open(f"{out}/ml1m-{tag}-{r}.json"))["results"][0] for r in range(1, runs + 1)]
fits = [r["fit_seconds"] for r in rs]
m = rs[0]["metrics"]
print(f"| `{spec}` | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['coverage@10']:.3f} | "
      f"{statistics.median(fits):.2f} | {', '.join(f'{f:.2f}' for f in fits)} |")
PY
  done
  echo
  data="synthetic:users=$USERS,items=$ITEMS,per_user=$PER_USER,seed=7,implicit=true"
  echo "Generated catalog: \`$data\` (\`kindred train\`, each model alone; wall and max RSS from /usr/bin/time)."
  echo
  echo "| model | items | interactions | wall s | max RSS GiB |"
  echo "|---|---|---|---|---|"
  for spec in "$EASE_NEIGHBOURHOOD" "$SLIM" "ease:top_items=$TOP_ITEMS"; do
    /usr/bin/time -f "%e %M" -o "$OUT/time.txt" $k -q train --data "$data" --model "$spec" --out "$OUT/model" \
      > "$OUT/train.txt"
    read -r wall rss < "$OUT/time.txt"
    python3 - "$spec" "$wall" "$rss" "$OUT/model/manifest.json" "$OUT/train.txt" <<'PY'
import json, re, sys
spec, wall, rss, manifest, train = sys.argv[1:]
m = json.load(open(manifest))
n = re.search(r"on ([0-9,]+) interactions", open(train).read())
print(f"| `{spec}` | {len(m['items'])} | "
      f"{n.group(1) if n else '?'} | {float(wall):.1f} | {int(rss) / 2**20:.2f} |")
PY
  done
} > bench/out/linear-scale.md
cat bench/out/linear-scale.md
