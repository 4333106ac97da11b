#!/usr/bin/env bash
# Is a refactor free? Builds the release `kindred` of a base commit (default: the first parent of
# HEAD) and of the working tree, then runs bench/run.sh's two ML-1M eval commands with both,
# alternating, for $ROUNDS rounds: wall times (median per command and per-round ratios) and
# whether every metric is identical. Writes bench/out/compare-commits.md.
#   bench/compare_commits.sh [BASE]          e.g. bench/compare_commits.sh e7d52ab
# The base is built in its own git worktree with its own target directory (two checkouts must not
# share one: ARCHITECTURE.md, "Build economy").
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:-HEAD^}"
ROUNDS="${ROUNDS:-3}"
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
[ -d "$DATA_DIR/ml-1m" ] || { echo "MovieLens 1M not found under $DATA_DIR" >&2; exit 2; }
OUT=bench/out/compare-commits
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'git worktree remove --force "$WORK/base" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Kept between runs so the base's dependencies build once.
BASE_TARGET="${BASE_TARGET_DIR:-$HOME/.cache/kindred-bench-base-target}"
git worktree add -q --detach "$WORK/base" "$BASE"
(cd "$WORK/base" && CARGO_TARGET_DIR="$BASE_TARGET" cargo build --release -q -p kindred-cli)
BASE_K="$BASE_TARGET/release/kindred"
cargo build --release -q -p kindred-cli
HEAD_K="${CARGO_TARGET_DIR:-target}/release/kindred"
cp "$BASE_K" "$WORK/kindred-base"
cp "$HEAD_K" "$WORK/kindred-head"

run() { # binary, command name, json out
  local k=$1 name=$2 json=$3 start end
  start=$(date +%s.%N)
  case $name in
    kfold5) "$k" eval -q --data "movielens:$DATA_DIR/ml-1m" --protocol kfold:5 --model random \
              --model baseline --model baseline:method=sgd --json "$json" > /dev/null ;;
    temporal) "$k" eval -q --data "movielens:$DATA_DIR/ml-1m" --protocol 'temporal:0.2,positive>=4' \
              --model random --model popularity --model popularity:half_life_days=60 \
              --model baseline --model itemknn \
              --model itemknn:neighbors=200,half_life=2,weighting=tfidf --json "$json" > /dev/null ;;
  esac
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

: > "$OUT/times.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for name in kfold5 temporal; do
    for which in base head; do
      t=$(run "$WORK/kindred-$which" "$name" "$OUT/$which-$name.json")
      printf '%s\t%s\t%s\t%s\n' "$round" "$name" "$which" "$t" >> "$OUT/times.tsv"
    done
  done
done

python3 - "$OUT" "$BASE" <<'EOF'
import json, statistics, sys
out, base = sys.argv[1], sys.argv[2]
rows = [l.split("\t") for l in open(f"{out}/times.tsv").read().split("\n") if l]
lines = [f"# {base} vs working tree: bench/run.sh's ML-1M eval commands (release, wall s)", "",
         "| command | base median | head median | head / base per round | metrics identical |",
         "|---|---|---|---|---|"]
for name in ("kfold5", "temporal"):
    t = {w: [float(r[3]) for r in rows if r[1] == name and r[2] == w] for w in ("base", "head")}
    ratios = ", ".join(f"{h / b:.2f}" for b, h in zip(t["base"], t["head"]))
    a, b = (json.load(open(f"{out}/{w}-{name}.json"))["results"] for w in ("base", "head"))
    same = all(x["metrics"] == y["metrics"] and x["spec"] == y["spec"] for x, y in zip(a, b))
    lines.append(f"| {name} | {statistics.median(t['base']):.2f} | {statistics.median(t['head']):.2f} "
                 f"| {ratios} | {'yes' if same and len(a) == len(b) else 'NO'} |")
open(f"{out}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
