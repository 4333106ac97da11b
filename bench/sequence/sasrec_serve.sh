#!/usr/bin/env bash
# Serving latency of `sasrec` lists on loopback: ML-1M in a temporary SQLite store, a sasrec version
# trained from it (`sasrec:epochs=$EPOCHS`, default 1: the forward pass per request costs the same
# whatever the training reached) and published, served with the list cache off. kindred-loadgen asks
# GET /v1/recommend/{user}?n=10 for users of ML-1M (each list reads the user's latest 200 items: the
# longest sequence a session can have) open loop at $RATE req/s for $DURATION s over $CONNECTIONS
# connections, after a 5 s warm-up; then the same for anonymous sessions, POST /v1/recommend with each
# ML-1M user's latest 200 items in time order (ties in file order) as the session's interactions and no
# user. The generator shares the 2 cores with the server. Latency is from each request's due time.
# Writes bench/out/sasrec-serve/*.json and prints the latency summaries.
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
python3 - "$DATA_DIR/ml-1m/ratings.dat" "$OUT/sessions.jsonl" <<'PY'
import json, sys
histories = {}
with open(sys.argv[1], encoding="latin-1") as f:
    for row, line in enumerate(f):
        user, item, _, ts = line.rstrip("\n").split("::")
        histories.setdefault(user, []).append((int(ts), row, item))
with open(sys.argv[2], "w") as out:
    for user in sorted(histories, key=int):
        items = [item for _, _, item in sorted(histories[user])][-200:]
        out.write(json.dumps({"interactions": items, "n": 10}) + "\n")
PY
"$LG" recommend --addr "$ADDR" --bodies-file "$OUT/sessions.jsonl" --rate "$RATE" --duration 5 \
  --connections "$CONNECTIONS" --out "$OUT/session-warmup.json" > /dev/null
"$LG" recommend --addr "$ADDR" --bodies-file "$OUT/sessions.jsonl" --rate "$RATE" \
  --duration "$DURATION" --connections "$CONNECTIONS" --out "$OUT/session-open-loop.json" > /dev/null
python3 - "$OUT/open-loop.json" "$OUT/session-open-loop.json" <<'PY'
import json, sys
for path, what in zip(sys.argv[1:], ["GET /v1/recommend/{user}?n=10", "POST /v1/recommend (session)"]):
    doc = json.load(open(path))
    lat = doc["latency_ms"]
    print(f"sasrec {what} at {doc['target_rate']} req/s: "
          f"{doc['completed']} requests, {doc['ok_2xx']} 2xx, {sum(doc['non_2xx'].values())} other; "
          f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
PY
