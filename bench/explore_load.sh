#!/usr/bin/env bash
# What exploration costs a list (issue 23): ML-1M in a temporary SQLite store, ALS (--positive 4),
# two servers on it with the list cache off, one ranking greedily, one with an epsilon-greedy
# `[exploration]` section (epsilon 0.1, pool 50, at most 2 explored items) that draws every list
# afresh and writes the impressions of a $LOG_SHARE share of them (default all) with propensities. kindred-loadgen drives
# GET /v1/recommend/{user}?n=10 open loop at $RATE req/s for $DURATION s, alternating greedy and
# exploring $ROUNDS times each, so drift of the machine falls on both. Latency is from each
# request's due time; each server's CPU seconds per round come from /proc (a steadier measure of
# the cost than the tail). Release build. Writes bench/out/explore-load.md and
# bench/out/explore-load/*.json. Takes about four minutes. CACHE_TTL (default 0: off) sets both
# servers' list cache; STORE_URL=postgres://... runs on that database instead of SQLite (it is
# emptied first: give a database the benchmark may wipe). GREEDY_WRITES=1 makes the greedy
# server write every list's impressions too (`write_impressions=true`), to tell the cost of the
# writes from the cost of exploring. POLICY=linucb (or linear-thompson) makes the exploring server
# a contextual bandit instead (epsilon 0.02, slots 3-10, the default features): it encodes the
# pool's features, scores them under its posterior and keeps each list waiting for feedback.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
RATE="${RATE:-5000}"
DURATION="${DURATION:-15}"
ROUNDS="${ROUNDS:-3}"
LOG_SHARE="${LOG_SHARE:-1.0}"
CACHE_TTL="${CACHE_TTL:-0}"
GREEDY_WRITES="${GREEDY_WRITES:-0}"
POLICY="${POLICY:-epsilon-greedy}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18090}"
OUT=bench/out/explore-load
mkdir -p "$OUT"

[ -n "${STORE_URL:-}" ] && KINDRED_FEATURES=kindred-cli/postgres
source bench/serve_common.sh
if [ -n "${STORE_URL:-}" ]; then
  psql "$STORE_URL" -q -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" > /dev/null
  STORE=$STORE_URL
fi

step $K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
# Artifacts in the work folder: with a URL store they would default to ./kindred-models.
step $K train --store "$STORE" --model als --positive 4 --publish --models-dir "$WORK/models" > /dev/null
if [ "$POLICY" = epsilon-greedy ]; then
cat > "$WORK/explore.toml" <<'TOML'
[exploration]
policy = "epsilon-greedy"
epsilon = 0.1
pool = 50
max_explored = 2
seed = 1
TOML
else
cat > "$WORK/explore.toml" <<TOML
[exploration]
policy = "$POLICY"
epsilon = 0.02
slots = [3, 10]
pool = 50
max_explored = 2
seed = 1
TOML
fi
echo "log_share = $LOG_SHARE" >> "$WORK/explore.toml"

start_server "$OUT/greedy.log" --store "$STORE" --cache-ttl "$CACHE_TTL" --log-level warn
GREEDY_PID=$SERVER_PID
GREEDY_ADDR=$ADDR
ADDR="127.0.0.1:$((PORT + 1))"
start_server "$OUT/explore.log" --store "$STORE" --cache-ttl "$CACHE_TTL" --log-level warn --rank "$WORK/explore.toml"
EXPLORE_ADDR=$ADDR
trap 'kill "$GREEDY_PID" 2>/dev/null || true; wait "$GREEDY_PID" 2>/dev/null || true; cleanup' EXIT

USERS=(--users 1..6040)
for addr in "$GREEDY_ADDR" "$EXPLORE_ADDR"; do
  "$LG" recommend --addr "$addr" "${USERS[@]}" --rate 1000 --duration 5 --connections "$CONNECTIONS" > /dev/null
done
# CPU seconds (user + system) a server has used so far, from /proc (clock ticks of 1/100 s).
cpu_of() { awk '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / 100 }' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
  for kind in greedy explore; do
    addr=$GREEDY_ADDR; [ "$kind" = explore ] && addr=$EXPLORE_ADDR
    pid=$GREEDY_PID; [ "$kind" = explore ] && pid=$SERVER_PID
    cpu_before=$(cpu_of "$pid")
    path='/v1/recommend/{user}?n={n}'
    [ "$kind" = greedy ] && [ "$GREEDY_WRITES" = 1 ] && path='/v1/recommend/{user}?n={n}&write_impressions=true' 
    echo "+ $LG recommend --addr $addr --rate $RATE --duration $DURATION ($kind, round $round)" >> "$LOG"
    "$LG" recommend --addr "$addr" "${USERS[@]}" --rate "$RATE" --duration "$DURATION" \
      --connections "$CONNECTIONS" --seed "$round" --path "$path" --out "$OUT/$kind-$round.json" > /dev/null
    echo "$cpu_before $(cpu_of "$pid")" | awk '{ printf "%.2f\n", $2 - $1 }' > "$OUT/$kind-$round.cpu"
  done
done
curl -sf "http://$EXPLORE_ADDR/metrics" > "$OUT/explore-metrics.txt"
echo "$POLICY" > "$OUT/policy.txt"
# Impressions and lists with propensities (an exploring list has them for every item).
COUNT_SQL="SELECT COALESCE(SUM(n_items), 0), COUNT(*) FROM impression_lists
           WHERE json_extract(items, '\$[0][2]') IS NOT NULL"
if [ -n "${STORE_URL:-}" ]; then
  COUNT_SQL="SELECT COALESCE(SUM(n_items), 0), COUNT(*) FROM impression_lists
             WHERE (items::json -> 0 ->> 2) IS NOT NULL"
  IMPRESSIONS=$(psql "$STORE_URL" -tA -F ' ' -c "$COUNT_SQL")
else
  IMPRESSIONS=$(python3 - "$STORE" "$COUNT_SQL" <<'PY'
import sqlite3, sys
print(*sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone())
PY
)
fi
BACKEND=sqlite; [ -n "${STORE_URL:-}" ] && BACKEND=postgres

python3 - "$OUT" "$ROUNDS" "$RATE" "$DURATION" "$IMPRESSIONS" "$LOG_SHARE" "$CACHE_TTL" "$BACKEND" "$GREEDY_WRITES" <<'PY' > bench/out/explore-load.md
import json, re, statistics, sys
out, rounds, rate, duration, impressions, share, ttl, backend, greedy_writes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].split(), sys.argv[6], sys.argv[7], sys.argv[8], sys.argv[9]
def run(kind, r):
    return json.load(open(f"{out}/{kind}-{r}.json"))
def lat(doc, q):
    return doc["latency_ms"][q]
print(f"# Exploration's cost ({open(out + '/policy.txt').read().strip()}): GET /v1/recommend/{{user}}?n=10, ML-1M ALS, open loop {rate} req/s x {duration} s, cache ttl {ttl} s (0: off), {backend}, log_share {share}, greedy writes impressions: {greedy_writes == '1'}\n")
def cpu(kind, r):
    return float(open(f"{out}/{kind}-{r}.cpu").read())
print("| round | greedy p50 ms | greedy p99 ms | exploring p50 ms | exploring p99 ms | p99 ratio | greedy CPU s | exploring CPU s | CPU ratio | greedy achieved req/s | exploring achieved req/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ratios, cpu_ratios = [], []
for r in range(1, rounds + 1):
    g, e = run("greedy", r), run("explore", r)
    ratio = lat(e, "p99") / lat(g, "p99")
    ratios.append(ratio)
    cpu_ratios.append(cpu("explore", r) / cpu("greedy", r))
    print(f"| {r} | {lat(g, 'p50'):.2f} | {lat(g, 'p99'):.2f} | {lat(e, 'p50'):.2f} | {lat(e, 'p99'):.2f} | {ratio:.2f} | "
          f"{cpu('greedy', r):.2f} | {cpu('explore', r):.2f} | {cpu_ratios[-1]:.2f} | {g['achieved_rate']:.0f} | {e['achieved_rate']:.0f} |")
med = lambda kind, q: statistics.median(lat(run(kind, r), q) for r in range(1, rounds + 1))
print(f"\nMedians of {rounds}: greedy p99 {med('greedy', 'p99'):.2f} ms, exploring p99 {med('explore', 'p99'):.2f} ms; "
      f"median per-round p99 ratio {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); "
      f"median per-round server CPU ratio {statistics.median(cpu_ratios):.2f} (range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}).")
metrics = open(f"{out}/explore-metrics.txt").read()
dropped = re.search(r"^kindred_experiment_exposures_dropped_total (\S+)", metrics, re.M)
failed = re.search(r"^kindred_experiment_exposures_failed_total (\S+)", metrics, re.M)
errors = sum(sum(run(k, r)["non_2xx"].values()) + run(k, r)["connection_errors"]
             for k in ("greedy", "explore") for r in range(1, rounds + 1))
print(f"\nNon-2xx answers and connection errors over all rounds: {errors}.")
print(f"\nImpressions with propensities stored: {impressions[0]} rows from {impressions[1]} lists; "
      f"lists dropped by the writer's full queue: {dropped.group(1) if dropped else '?'}, lost to store errors: {failed.group(1) if failed else '?'}.")
PY
cat bench/out/explore-load.md
