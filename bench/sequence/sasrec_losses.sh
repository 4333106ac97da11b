#!/usr/bin/env bash
# How fast each sasrec loss learns on MovieLens 1M: the validation NDCG@10 after every epoch (the
# latest training item of 512 users, held out of their sequences: rows of the training split, never
# the test split) for `loss=gbce`, `loss=softmax` and `loss=full` at the default learning rate and
# for gbce and softmax at 0.003, EPOCHS epochs each (default 12), early stopping off (patience = epochs). The runs go two
# at a time with one thread each (a second thread speeds a candle step up little). The test NDCG@10
# of the `loo` split is printed beside each curve, but the loss is chosen on the curves.
#
# usage: bash bench/sequence/sasrec_losses.sh      (results in $WORK, default /tmp/kindred-sasrec-losses)
#   EPOCHS=4 DATA=movielens:../shared/data/ml-100k for a quick check
set -euo pipefail
cd "$(dirname "$0")/../.."
KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
data="${DATA:-movielens:$KINDRED_DATA_DIR/ml-1m}"
epochs="${EPOCHS:-12}"
work="${WORK:-/tmp/kindred-sasrec-losses}"
mkdir -p "$work"
cargo build -q --release -p kindred-cli --features encoder
k="${CARGO_TARGET_DIR:-target}/release/kindred"
specs=(
  "loss=gbce" "loss=softmax" "loss=full"
  "loss=gbce,learning_rate=0.003" "loss=softmax,learning_rate=0.003"
)
run() {
  local name="${1//[=,]/_}"
  "$k" --threads 1 --quiet eval --no-segments --no-auc --data "$data" --protocol loo \
    --model "sasrec:epochs=$epochs,patience=$epochs,validation_users=512,$1" \
    --json "$work/$name.json" > "$work/$name.txt"
}
for ((i = 0; i < ${#specs[@]}; i += 2)); do
  run "${specs[i]}" &
  if ((i + 1 < ${#specs[@]})); then run "${specs[i + 1]}" & fi
  wait
done
python3 - "$work" "${specs[@]}" <<'PY'
import json, sys
work, specs = sys.argv[1], sys.argv[2:]
for spec in specs:
    name = spec.replace("=", "_").replace(",", "_")
    doc = json.load(open(f"{work}/{name}.json"))
    model = doc["results"][0]
    curve = [p.get("validation") for p in model["learning_curve"]]
    test = model["metrics"]["ndcg@10"]
    fit = model["fit_seconds"]
    print(f"{spec:34} validation NDCG@10 by epoch: "
          + " ".join("-" if v is None else f"{v:.4f}" for v in curve)
          + f" | test {test:.4f}, fit {fit:.0f} s")
PY
