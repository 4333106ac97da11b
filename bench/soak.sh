#!/usr/bin/env bash
# Soak test of `kindred serve` on loopback (issue 21): ML-1M in a temporary SQLite store, one ALS
# version live, then for $DURATION seconds at once:
#   - reads: GET /v1/recommend/{user}?n=10 open loop at $RATE req/s over users 1..$USERS (ML-1M
#     has 6,040, so most ids are made up: the cache and fallback paths see hostile-looking load),
#     activating the two registered versions in turn every $SWAP_MS ms;
#   - writes (bench/soak_driver.py): feedback batches of $FEEDBACK_BATCH events with unique event
#     ids every $FEEDBACK_EVERY s (default 40 events/s: about 5% more events in 20 minutes; the
#     store's data, and with it every snapshot, grows with what is written), an item upsert with
#     a few features every $ITEM_EVERY s (each schedules a catalog rebuild), a training run every
#     $TRAIN_EVERY s, and a sample of the server's RSS every 10 s.
# Then the server stops and the store is counted: every acknowledged event must be there.
# Writes bench/out/soak.md and bench/out/soak/*.json. Release build; the list cache is on.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
DURATION="${DURATION:-1200}"
RATE="${RATE:-1000}"
USERS="${USERS:-20000}"
SWAP_MS="${SWAP_MS:-30000}"
TRAIN_EVERY="${TRAIN_EVERY:-300}"
FEEDBACK_BATCH="${FEEDBACK_BATCH:-20}"
FEEDBACK_EVERY="${FEEDBACK_EVERY:-0.5}"
ITEM_EVERY="${ITEM_EVERY:-30}"
WARMUP="${WARMUP:-120}"
PORT="${PORT:-18090}"
OUT=bench/out/soak
mkdir -p "$OUT"

source bench/serve_common.sh

step $K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
step $K train --store "$STORE" --model als:factors=32,iterations=5 --positive 4 > /dev/null
step $K train --store "$STORE" --model als:factors=32,iterations=5 --positive 4 --seed 7 --publish > /dev/null
cat > "$WORK/server.toml" <<TOML
[training]
model = "als:factors=32,iterations=5"
positive = 4.0
eval_users = 200
TOML
start_server "$OUT/server.log" --store "$STORE" --config "$WORK/server.toml" --log-level warn
VERSIONS="$(curl -sf "http://$ADDR/v1/models" | python3 -c '
import json, sys
print(",".join(m["version"] for m in json.load(sys.stdin)["models"]))')"
BEFORE="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from feedback").fetchone()[0])' "$STORE")"

echo "+ $LG recommend --users 1..$USERS --rate $RATE --duration $DURATION --swap-every-ms $SWAP_MS" >> "$LOG"
"$LG" recommend --addr "$ADDR" --users "1..$USERS" --rate "$RATE" --duration "$DURATION" \
  --connections 16 --swap-versions "$VERSIONS" --swap-every-ms "$SWAP_MS" \
  --out "$OUT/reads.json" > /dev/null &
READS_PID=$!
DRIVER_ARGS=(--duration "$DURATION" --train-every "$TRAIN_EVERY" --feedback-batch "$FEEDBACK_BATCH"
  --feedback-every "$FEEDBACK_EVERY" --item-every "$ITEM_EVERY")
echo "+ python3 bench/soak_driver.py ${DRIVER_ARGS[*]}" >> "$LOG"
python3 bench/soak_driver.py --addr "$ADDR" --pid "$SERVER_PID" "${DRIVER_ARGS[@]}" \
  --out "$OUT/writes.json"
wait "$READS_PID"
curl -sf "http://$ADDR/metrics" > "$OUT/metrics.txt" || true
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
AFTER="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from feedback").fetchone()[0])' "$STORE")"

python3 - "$OUT" "$LOG" "$BEFORE" "$AFTER" "$WARMUP" <<'PY' > bench/out/soak.md
import json, os, platform, subprocess, sys
out, log, before, after, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
reads, writes = json.load(open(f"{out}/reads.json")), json.load(open(f"{out}/writes.json"))
samples = writes["samples"]
warm = [s for s in samples if s["t"] >= warmup]
base = warm[0]["rss_mb"]
peak = max(s["rss_mb"] for s in warm)
last = warm[-1]["rss_mb"]
growth = (last - base) / base * 100
peak_growth = (peak - base) / base * 100
stored = after - before
ack = writes["feedback"]["inserted"]
fivexx_reads = sum(n for code, n in reads["non_2xx"].items() if code.startswith("5"))
summary = {
    "duration_s": writes["duration_s"], "rss_mb_after_warmup": base, "rss_mb_peak": peak,
    "rss_mb_last": last, "rss_growth_pct": round(growth, 1), "rss_peak_growth_pct": round(peak_growth, 1),
    "reads": reads["completed"], "reads_non_2xx": reads["non_2xx"], "read_5xx": fivexx_reads,
    "swaps": reads["swaps"]["attempted"], "writes": writes["counts"],
    "acknowledged_inserted": ack, "stored_new_rows": stored, "lost": ack - stored,
    "write_5xx_other_than_shed": writes["fivexx_not_shed"], "shed": writes["shed"],
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# kindred serve soak (bench/soak.sh)\n")
print(f"Machine: {os.cpu_count()} logical CPUs ({cpu}), Linux {platform.release()}; loopback; release build; "
      f"server, load generator and driver share the cores.\n")
print(f"- Duration {writes['duration_s']} s; RSS after {warmup:.0f} s of warm-up {base:.0f} MB, peak {peak:.0f} MB "
      f"(+{peak_growth:.1f}%), last {last:.0f} MB (**{growth:+.1f}%**).")
print(f"- Reads: {reads['completed']} at {reads['achieved_rate']:.0f} req/s, non-2xx {reads['non_2xx']}, "
      f"p99 {reads['latency_ms'].get('p99')} ms; {reads['swaps']['attempted']} version swaps "
      f"(statuses {reads['swaps']['statuses']}).")
print(f"- Writes: {writes['counts']}; 5xx other than shed load: **{writes['fivexx_not_shed']}**; shed: {writes['shed']}.")
print(f"- Feedback: {ack} events acknowledged as inserted, {stored} new rows in the store after the stop: "
      f"**{ack - stored} lost**.")
print(f"- Store: {before} events before, {after} after (+{(after - before) / before * 100:.1f}%); snapshot "
      f"rebuilds are in the server's own counters (bench/out/soak/metrics.txt).")
print("\nRSS (MB) every 10 s: " + ", ".join(f"{s['rss_mb']:.0f}" for s in samples))
print("\nCommands (with wall times):\n\n```")
print(open(log).read().rstrip())
print("```")
PY
cat bench/out/soak.md
