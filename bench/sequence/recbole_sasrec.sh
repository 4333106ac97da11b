#!/usr/bin/env bash
# RecBole's SASRec (CPU PyTorch) on exactly the MovieLens leave-one-out split that Kindred's `loo` uses, as the
# peer for bench/sequence/sasrec_ml1m.sh. Kindred writes the split (`kindred split --protocol loo`),
# bench/peers/recbole_sasrec.py turns it into RecBole's atomic file, checks that RecBole's test items are
# Kindred's, and trains and tests SASRec with RecBole's settings (see that file's header for how the split,
# the validation item and the seen-item masking line up with Kindred's evaluation). Training wall time and
# test NDCG@10 / Recall@10 (the hit rate under loo) come from the script; peak memory from /usr/bin/time.
#
# usage: bash bench/sequence/recbole_sasrec.sh      (results in $WORK, default /tmp/kindred-recbole-bench)
#   DATA=DIR picks the MovieLens folder (default $KINDRED_DATA_DIR/ml-1m; ml-100k works too).
#   THREADS (default 1), EPOCHS (default 200), BATCH, MAX_LEN, SEED, RECBOLE_ARGS, MAX_BATCHES,
#   TIME_BATCHES and TIME_BUDGET_S (seconds: whole epochs while they fit, e.g. the issue's 45 minutes) are passed to
#   the script; TIMEOUT (seconds, default none) bounds the RecBole run.
#   KINDRED=PATH uses that kindred binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."
KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
data="${DATA:-$KINDRED_DATA_DIR/ml-1m}"
[ -f "$data/ratings.dat" ] || [ -f "$data/u.data" ] || {
  echo "no MovieLens ratings.dat or u.data in $data (set DATA or KINDRED_DATA_DIR)" >&2; exit 2; }
# RecBole reads extra defaults for a dataset named like one of its own (ml-100k), so the name drops the dash.
name="$(basename "$data" | tr -d -)-kindred"
work="${WORK:-/tmp/kindred-recbole-bench}"
threads="${THREADS:-1}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

bash bench/peers/setup_recbole.sh
k="${KINDRED:-}"
if [ -z "$k" ]; then
  cargo build -q --release -p kindred-cli
  k="${CARGO_TARGET_DIR:-target}/release/kindred"
fi
split="$work/split-$name"
rm -rf "$split"
"$k" split -q --threads "$threads" --data "movielens:$data" --protocol loo --out "$split"

py=bench/peers/.venv-recbole/bin/python
"$py" bench/peers/recbole_sasrec.py convert "$split" "$work/data" "$name"
out="$work/recbole_sasrec_$name.json"
export THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
timeout "${TIMEOUT:-0}" /usr/bin/time -v -o "$work/recbole_sasrec_$name.time" \
  "$py" bench/peers/recbole_sasrec.py train "$work/data" "$name" "$split" --work "$work" --out "$out" \
  2>&1 | tee "$work/recbole_sasrec_$name.log"
# Peak memory and the whole run's wall time (data loading and evaluation included) go into the same JSON.
"$py" - "$out" "$work/recbole_sasrec_$name.time" <<'EOF'
import json, re, sys
out, timing = sys.argv[1], open(sys.argv[2]).read()
result = json.load(open(out))
result["peak_rss_mib"] = round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing)[1]) / 1024, 1)
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", timing)[1]
result["process_wall_s"] = round(sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":")))), 2)
json.dump(result, open(out, "w"), indent=2)
keys = ("mode", "stopped_by_time_budget", "epochs_run", "best_epoch", "train_s", "fit_s", "ndcg@10", "recall@10", "epoch_estimate_s",
        "peak_rss_mib", "process_wall_s")
print(json.dumps({k: result[k] for k in keys if k in result}))
print("results in", out)
EOF
