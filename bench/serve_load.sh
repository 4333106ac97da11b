#!/usr/bin/env bash
# Load test of `kindred serve` on loopback (issue 7 acceptance): ML-1M in a temporary SQLite
# store, two ALS versions (--positive 4), served with the list cache off; kindred-loadgen runs
#   1. a warm-up (open loop, 1,000 req/s, 5 s),
#   2. GET /v1/recommend/{user}?n=10 open loop at $RATE req/s for $DURATION s over $CONNECTIONS
#      keep-alive connections, activating the other version every $SWAP_MS ms meanwhile,
#   3. the same rate without swaps ($DURATION_NOSWAP s), to separate the swaps' cost,
#   4. closed loop (as fast as answers come) for $CLOSED_DURATION s,
#   5. POST /v1/feedback: $FEEDBACK_EVENTS events in batches of $FEEDBACK_BATCH.
# The generator shares the machine's cores with the server. Latency is from each request's due
# time (no coordinated omission). Release build. Writes bench/out/serve-load.md and
# bench/out/serve-load/*.json. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
RATE="${RATE:-5000}"
DURATION="${DURATION:-25}"
DURATION_NOSWAP="${DURATION_NOSWAP:-15}"
CLOSED_DURATION="${CLOSED_DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
SWAP_MS="${SWAP_MS:-1000}"
FEEDBACK_EVENTS="${FEEDBACK_EVENTS:-200000}"
FEEDBACK_BATCH="${FEEDBACK_BATCH:-1000}"
FEEDBACK_CONNECTIONS="${FEEDBACK_CONNECTIONS:-4}"
PORT="${PORT:-18080}"
OUT=bench/out/serve-load
mkdir -p "$OUT"

# STORE_URL=postgres://... runs on that database (emptied first) instead of a temporary SQLite file.
[ -n "${STORE_URL:-}" ] && KINDRED_FEATURES=kindred-cli/postgres
source bench/serve_common.sh
if [ -n "${STORE_URL:-}" ]; then
  psql "$STORE_URL" -q -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;" > /dev/null
  STORE=$STORE_URL
fi

step $K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
step $K train --store "$STORE" --model als:factors=48 --positive 4 > /dev/null
step $K train --store "$STORE" --model als --positive 4 --publish > /dev/null

start_server "$OUT/server.log" --store "$STORE" --cache-ttl 0 --log-level warn
curl -sf "http://$ADDR/health/ready" > "$OUT/ready.json"
VERSIONS="$(curl -sf "http://$ADDR/v1/models" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
models = doc["models"] if isinstance(doc, dict) else doc
print(",".join(m["version"] for m in models))')"
echo "versions: $VERSIONS" | tee -a "$LOG" >&2

load() { # name, then loadgen arguments
  local name=$1; shift
  local before after
  before=$(server_cpu)
  echo "+ $LG $* --out $OUT/$name.json" >> "$LOG"
  "$LG" "$@" --out "$OUT/$name.json" > /dev/null
  after=$(server_cpu)
  python3 - "$OUT/$name.json" "$before" "$after" <<'PY'
import json, sys
path, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
doc = json.load(open(path))
doc["server_cpu_s"] = round(after - before, 2)
json.dump(doc, open(path, "w"), indent=2)
PY
}
USERS=(--users 1..6040)
load warmup recommend --addr "$ADDR" "${USERS[@]}" --rate 1000 --duration 5 --connections "$CONNECTIONS"
load open-loop-swaps recommend --addr "$ADDR" "${USERS[@]}" --rate "$RATE" --duration "$DURATION" \
  --connections "$CONNECTIONS" --swap-versions "$VERSIONS" --swap-every-ms "$SWAP_MS"
load open-loop recommend --addr "$ADDR" "${USERS[@]}" --rate "$RATE" --duration "$DURATION_NOSWAP" \
  --connections "$CONNECTIONS"
load closed-loop recommend --addr "$ADDR" "${USERS[@]}" --closed-loop --duration "$CLOSED_DURATION" \
  --connections "$CONNECTIONS"
load feedback feedback --addr "$ADDR" "${USERS[@]}" --items 1..3952 --events "$FEEDBACK_EVENTS" \
  --batch "$FEEDBACK_BATCH" --connections "$FEEDBACK_CONNECTIONS"
curl -sf "http://$ADDR/metrics" > "$OUT/metrics.txt" || true

python3 - "$OUT" "$LOG" <<'PY' > bench/out/serve-load.md
import json, os, platform, subprocess, sys
out, log = sys.argv[1], sys.argv[2]
runs = {n: json.load(open(f"{out}/{n}.json")) for n in
        ["warmup", "open-loop-swaps", "open-loop", "closed-loop", "feedback"]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
print("# kindred serve under load (bench/serve_load.sh)\n")
store = "PostgreSQL" if os.environ.get("STORE_URL") else "SQLite"
print(f"Machine: {os.cpu_count()} logical CPUs ({cpu}), Linux {platform.release()}, {rustc}; "
      f"server and load generator share these cores; loopback; release build; list cache off; store {store}.\n")
print("| run | target req/s | achieved req/s | requests | non-2xx | conn errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU s | loadgen CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name in ["warmup", "open-loop-swaps", "open-loop", "closed-loop"]:
    r = runs[name]; l = r["latency_ms"]
    non2xx = sum(r["non_2xx"].values())
    print(f"| {name} | {r['target_rate'] or 'max'} | {r['achieved_rate']:.0f} | {r['completed']} | {non2xx} {r['non_2xx'] or ''} "
          f"| {r['connection_errors']} | {l.get('p50')} | {l.get('p90')} | {l.get('p99')} | {l.get('p99.9')} | {l.get('max')} "
          f"| {r.get('server_cpu_s')} | {r.get('generator_cpu_s')} |")
s = runs["open-loop-swaps"]
sw = s["swaps"]
print(f"\nOpen-loop latency is measured from each request's due time; the time from actual send "
      f"(service) in the swap run: p50 {s['service_ms'].get('p50')} ms, p99 {s['service_ms'].get('p99')} ms.")
print(f"\nModel swaps during the swap run: {sw['attempted']} activations every {sw['every_ms']} ms of "
      f"{', '.join(sw['versions'])}: statuses {sw['statuses']}, connection errors {sw['connection_errors']}, "
      f"activation latency p50 {sw['latency_ms'].get('p50')} ms, max {sw['latency_ms'].get('max')} ms; "
      f"answers by model_version: {s['model_versions_seen']}.")
f = runs["feedback"]
print(f"\nFeedback ingest: {f['acknowledged_events']} events acknowledged in {f['batches']} batches of {f['batch']} "
      f"over {f['connections']} connections in {f['elapsed_s']} s = **{f['events_per_s']:.0f} events/s** "
      f"(inserted {f['inserted']}, duplicates {f['duplicates']}, non-2xx {f['non_2xx']}, connection errors "
      f"{f['connection_errors']}); batch latency p50 {f['batch_latency_ms'].get('p50')} ms, p99 "
      f"{f['batch_latency_ms'].get('p99')} ms; server CPU {f.get('server_cpu_s')} s.")
print("\nCommands (with wall times):\n\n```")
print(open(log).read().rstrip())
print("```")
print(f"\nRaw reports: {out}/*.json.")
PY
cat bench/out/serve-load.md
