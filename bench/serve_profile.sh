#!/usr/bin/env bash
# Where `kindred serve`'s time goes under load (companion of bench/serve_load.sh): server CPU per
# request for /health/live (HTTP + middleware), /v1/popular (+ JSON list, no scoring) and
# /v1/recommend/{user} (+ ALS scoring and the rank pipeline), each closed loop for 6 s; the wall
# and CPU time of one model activation (a full snapshot rebuild); and, when `perf` is installed,
# the hottest functions of the server on /v1/recommend and during activations.
# ML-1M, ALS --positive 4, cache off, release build. Writes bench/out/serve-profile.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
PORT="${PORT:-18090}"
OUT=bench/out/serve-profile
mkdir -p "$OUT"
source bench/serve_common.sh
$K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
$K train --store "$STORE" --model als:factors=48 --positive 4 > /dev/null
$K train --store "$STORE" --model als --positive 4 --publish > /dev/null
start_server "$OUT/server.log" --store "$STORE" --cache-ttl 0 --log-level warn
{
  echo "# Where kindred serve's time goes (bench/serve_profile.sh)"
  echo
  echo "$(nproc) CPUs, load average before: $(cut -d' ' -f1-3 /proc/loadavg); closed loop, 16 connections, 6 s per route."
  echo
  echo "| route | req/s | server CPU us/request | loadgen CPU us/request | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---|---|---|---|"
  for path in '/health/live' '/v1/popular?n={n}' '/v1/recommend/{user}?n={n}'; do
    before=$(server_cpu)
    "$LG" recommend --addr "$ADDR" --users 1..6040 --closed-loop --duration 6 --connections 16 \
      --path "$path" --out "$OUT/route.json" > /dev/null
    after=$(server_cpu)
    python3 - "$OUT/route.json" "$path" "$before" "$after" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); path, before, after = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
n = r["completed"]
print(f"| `{path}` | {r['achieved_rate']:.0f} | {(after - before) / n * 1e6:.0f} | "
      f"{r['generator_cpu_s'] / n * 1e6:.0f} | {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {r['non_2xx']} |")
PY
  done
  echo
  VERSIONS="$(curl -sf "http://$ADDR/v1/models" | python3 -c 'import json, sys; print(" ".join(m["version"] for m in json.load(sys.stdin)["models"]))')"
  for v in $VERSIONS; do
    before=$(server_cpu); t0=$(date +%s.%N)
    curl -sf -X POST "http://$ADDR/v1/models/$v/activate" > /dev/null
    t1=$(date +%s.%N); after=$(server_cpu)
    python3 -c "print(f'Activate $v (no other load): {$t1 - $t0:.2f} s wall, {$after - $before:.2f} s server CPU.\n')"
  done
  if command -v perf > /dev/null; then
    "$LG" recommend --addr "$ADDR" --users 1..6040 --closed-loop --duration 7 --connections 16 > /dev/null &
    LG_PID=$!
    sleep 1
    perf record -F 999 -g -p "$SERVER_PID" -o "$WORK/recommend.perf" -- sleep 5 > /dev/null 2>&1 || true
    wait "$LG_PID"
    echo "Hottest server functions on /v1/recommend (perf, self time):"
    echo '```'
    perf report -i "$WORK/recommend.perf" --no-children --sort symbol --stdio 2> /dev/null |
      grep -E '^ +[0-9.]+%' | cut -c1-110 | head -15 || true
    echo '```'
    perf record -F 999 -g -p "$SERVER_PID" -o "$WORK/activate.perf" -- sleep 4 > /dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.5
    for v in $VERSIONS; do curl -sf -X POST "http://$ADDR/v1/models/$v/activate" > /dev/null || echo "activate $v failed" >&2; done
    wait "$PERF_PID" || true
    echo
    echo "Hottest server functions during activations:"
    echo '```'
    perf report -i "$WORK/activate.perf" --no-children --sort symbol --stdio 2> /dev/null |
      grep -E '^ +[0-9.]+%' | cut -c1-110 | head -15 || true
    echo '```'
  fi
} > bench/out/serve-profile.md
cat bench/out/serve-profile.md
