#!/usr/bin/env bash
# Serving latency of `sasrec` lists on loopback: ML-1M in a temporary SQLite store, a sasrec version
# trained from it (`sasrec:epochs=$EPOCHS`, default 1: the forward pass per request costs the same
# whatever the training reached) and published, served with the list cache off. kindred-loadgen asks
# GET /v1/recommend/{user}?n=10 for users of ML-1M (each list reads the user's latest 200 items: the
# longest sequence a session can have) open loop at $RATE req/s for $DURATION s over $CONNECTIONS
# connections, after a 5 s warm-up. The generator shares the 2 cores with the server. Latency is from
# each request's due time. Writes bench/out/sasrec-serve/*.json and prints the latency summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
EPOCHS="${EPOCHS:-1}"
RATE="${RATE:-100}"
DURATION="${DURATION:-20}"
CONNECTIONS="${CONNECTIONS:-4}"
PORT="${PORT:-18081}"
OUT=bench/out/sasrec-serve
mkdir -p "$OUT"
KINDRED_FEATURES=kindred-cli/encoder
source bench/serve_common.sh

step $K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
step $K train --store "$STORE" --model "sasrec:epochs=$EPOCHS,patience=0" --publish > /dev/null
start_server "$OUT/server.log" --store "$STORE" --cache-ttl 0 --log-level warn
USERS=(--users 1..6040)
"$LG" recommend --addr "$ADDR" "${USERS[@]}" --rate "$RATE" --duration 5 --connections "$CONNECTIONS" \
  --out "$OUT/warmup.json" > /dev/null
"$LG" recommend --addr "$ADDR" "${USERS[@]}" --rate "$RATE" --duration "$DURATION" \
  --connections "$CONNECTIONS" --out "$OUT/open-loop.json" > /dev/null
python3 - "$OUT/open-loop.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
lat = doc["latency_ms"]
print(f"sasrec GET /v1/recommend/{{user}}?n=10 at {doc['target_rate']} req/s: "
      f"{doc['completed']} requests, {doc['ok_2xx']} 2xx, {sum(doc['non_2xx'].values())} other; "
      f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
PY
