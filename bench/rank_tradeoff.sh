#!/usr/bin/env bash
# Trade-off of the ranking layer on ML-1M: NDCG@10 against catalog coverage@10 and intra-list
# diversity@10 for a few MMR lambdas, calibration weights and popularity penalties.
# Needs MovieLens in $KINDRED_DATA_DIR (default ../shared/data); DATASET picks ml-1m (default) or ml-100k.
# Writes bench/out/rank_tradeoff.{csv,md,svg} (the svg is the trade-off plot).
set -euo pipefail
cd "$(dirname "$0")/.."
export KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DATA_DIR="$KINDRED_DATA_DIR/${DATASET:-ml-1m}"
[ -d "$DATA_DIR" ] || { echo "MovieLens not found at $DATA_DIR" >&2; exit 2; }
PROTOCOL='temporal:0.2,positive>=4'
MODEL=movielens-ranking
BIN=./target/release/kindred
cargo build -q --release -p kindred-cli
OUT=bench/out
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name|mmr_lambda|calibration weight|popularity penalty ("-" = plain run without --rank)
CONFIGS=(
  "plain|-|-|-"
  "mmr0.1|0.1|0|0"
  "mmr0.3|0.3|0|0"
  "mmr0.5|0.5|0|0"
  "calib0.3|0|0.3|0"
  "calib0.6|0|0.6|0"
  "pop0.2|0|0|0.2"
  "pop0.4|0|0|0.4"
  "pop0.8|0|0|0.8"
  "pop1.0|0|0|1.0"
  "pop0.8+mmr0.2|0.2|0|0.8"
  "pop0.8+calib0.3|0|0.3|0.8"
  "diverse.toml|file|file|file"
)

echo "config,mmr_lambda,calibration,popularity_penalty,ndcg@10,coverage@10,diversity@10,novelty@10,seconds" > "$OUT/rank_tradeoff.csv"
for row in "${CONFIGS[@]}"; do
  IFS='|' read -r name mmr cal pop <<< "$row"
  args=()
  if [ "$mmr" = file ]; then
    args=(--rank examples/rank/diverse.toml)
  elif [ "$mmr" != - ]; then
    cat > "$TMP/$name.toml" <<TOML
candidates = 200
category_column = "genres"
[diversity]
mmr_lambda = $mmr
[calibration]
weight = $cal
[popularity]
penalty = $pop
TOML
    args=(--rank "$TMP/$name.toml")
  fi
  start=$(date +%s)
  "$BIN" eval -q --data "movielens:$DATA_DIR" --protocol "$PROTOCOL" --model "$MODEL" \
    --bootstrap 0 --no-segments --no-auc --curve-k 0 --json "$TMP/r.json" "${args[@]}" > /dev/null
  secs=$(( $(date +%s) - start ))
  python3 - "$TMP/r.json" "$name" "$mmr" "$cal" "$pop" "$secs" >> "$OUT/rank_tradeoff.csv" <<'PY'
import json, sys
path, name, mmr, cal, pop, secs = sys.argv[1:]
m = json.load(open(path))["results"][0]["metrics"]
print(",".join([name, mmr, cal, pop] + [f"{m[k]:.4f}" for k in ("ndcg@10", "coverage@10", "diversity@10", "novelty@10")] + [secs]))
PY
  tail -1 "$OUT/rank_tradeoff.csv"
done

python3 - "$OUT/rank_tradeoff.csv" > "$OUT/rank_tradeoff.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = float(rows[0]["ndcg@10"])
print("| config | mmr λ | calib | pop penalty | NDCG@10 | vs plain | coverage@10 | diversity@10 | novelty@10 |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    rel = float(r["ndcg@10"]) / base
    print(f"| {r['config']} | {r['mmr_lambda']} | {r['calibration']} | {r['popularity_penalty']} | {r['ndcg@10']} | {rel:.1%} | {r['coverage@10']} | {r['diversity@10']} | {r['novelty@10']} |")
PY
echo "wrote $OUT/rank_tradeoff.csv and $OUT/rank_tradeoff.md"

# The trade-off plot: NDCG@10 (x) against coverage@10 and diversity@10 (y), one point per config.
python3 - "$OUT/rank_tradeoff.csv" > "$OUT/rank_tradeoff.svg" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
W, H, M = 760, 480, 60
xs = [float(r["ndcg@10"]) for r in rows]
x0, x1 = min(xs) * 0.97, max(xs) * 1.03
y0, y1 = 0.3, 0.9
sx = lambda v: M + (v - x0) / (x1 - x0) * (W - 2 * M)
sy = lambda v: H - M - (v - y0) / (y1 - y0) * (H - 2 * M)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{M}" y1="{H-M}" x2="{W-M}" y2="{H-M}" stroke="black"/>',
       f'<line x1="{M}" y1="{M}" x2="{M}" y2="{H-M}" stroke="black"/>',
       f'<text x="{W/2}" y="{H-20}" text-anchor="middle">NDCG@10 (temporal:0.2,positive&gt;=4, movielens-ranking)</text>',
       f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">coverage@10 (blue) / diversity@10 (orange)</text>']
base = float(rows[0]["ndcg@10"])
out.append(f'<line x1="{sx(0.9*base):.1f}" y1="{M}" x2="{sx(0.9*base):.1f}" y2="{H-M}" stroke="grey" stroke-dasharray="4"/>')
out.append(f'<text x="{sx(0.9*base)+3:.1f}" y="{M+10}" fill="grey">90% of plain NDCG</text>')
out.append(f'<line x1="{M}" y1="{sy(0.5):.1f}" x2="{W-M}" y2="{sy(0.5):.1f}" stroke="grey" stroke-dasharray="4"/>')
for t in range(4):
    v = x0 + (x1 - x0) * t / 3
    out.append(f'<text x="{sx(v):.1f}" y="{H-M+15}" text-anchor="middle">{v:.3f}</text>')
for t in range(7):
    v = y0 + (y1 - y0) * t / 6
    out.append(f'<text x="{M-5}" y="{sy(v)+4:.1f}" text-anchor="end">{v:.1f}</text>')
for r in rows:
    x = sx(float(r["ndcg@10"]))
    for key, colour in (("coverage@10", "#1f77b4"), ("diversity@10", "#ff7f0e")):
        y = sy(float(r[key]))
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{x+6:.1f}" y="{y-4:.1f}" fill="{colour}">{r["config"]}</text>')
out.append("</svg>")
print("\n".join(out))
PY
echo "wrote $OUT/rank_tradeoff.svg"
