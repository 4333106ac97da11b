#!/usr/bin/env bash
# Soak test of `kindred serve` on loopback (issue 21): ML-1M in a temporary SQLite store, one ALS
# version live, then for $WARMUP + $DURATION seconds at once:
#   - reads: GET /v1/recommend/{user}?n=10 open loop at $RATE req/s over users 1..$USERS (ML-1M
#     has 6,040, so most ids are made up: the cache and fallback paths see hostile-looking load),
#     activating the two registered versions in turn every $SWAP_MS ms;
#   - writes (bench/soak_driver.py): feedback batches of $FEEDBACK_BATCH events with unique event
#     ids every $FEEDBACK_EVERY s (default 40 events/s: about 5% more events in 20 minutes; the
#     store's data, and with it every snapshot, grows with what is written), an item upsert with
#     a few features every $ITEM_EVERY s (each schedules a catalog rebuild), a training run every
#     $TRAIN_EVERY s, and a sample of the server's RSS every 10 s.
# Then the server stops and the store is counted: every acknowledged event must be there.
#
# RSS: the warm-up (default: the first training run plus two minutes) is left out. RSS swings by
# a third within a training interval (a run's working set, then the next snapshot), so growth is
# measured between whole intervals: the median of the samples in the first $TRAIN_EVERY seconds
# after the warm-up against the median of the last $TRAIN_EVERY seconds (the first and the last
# sample are reported too). How much of the growth is the data the soak wrote: with FRESH=1
# (default) a fresh server then runs on the final store, under the same reads and training runs
# but no writes, for $WARMUP + $TRAIN_EVERY seconds, and its median over the same phase (the
# interval after its warm-up) is what a server holding that data needs.
#
# Each sample also records the transparent huge pages resident (AnonHugePages): with them on,
# they were most of a soak's RSS growth (BENCHMARKS.md, "Soak").
#
# Writes $OUT.md and $OUT/*.json (default bench/out/soak). Release build; the list cache is on.
# The server's environment passes through (e.g. MIMALLOC_* options for an allocator experiment).
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
WARMUP="${WARMUP:-$((TRAIN_EVERY + 120))}"
FRESH="${FRESH:-1}"
PORT="${PORT:-18090}"
# OUT: where the results go (OUT/*.json and OUT.md); two soaks side by side need two, and two PORTs.
OUT="${OUT:-bench/out/soak}"
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

# phase SECONDS READS_OUT DRIVER_OUT DRIVER_ARGS...: the read load and the driver against the
# running server for SECONDS.
phase() {
  local seconds=$1 reads_out=$2 driver_out=$3
  shift 3
  echo "+ $LG recommend --users 1..$USERS --rate $RATE --duration $seconds --swap-every-ms $SWAP_MS" >> "$LOG"
  "$LG" recommend --addr "$ADDR" --users "1..$USERS" --rate "$RATE" --duration "$seconds" \
    --connections 16 --swap-versions "$VERSIONS" --swap-every-ms "$SWAP_MS" \
    --out "$reads_out" > /dev/null &
  local reads_pid=$!
  echo "+ python3 bench/soak_driver.py --duration $seconds --train-every $TRAIN_EVERY $*" >> "$LOG"
  python3 bench/soak_driver.py --addr "$ADDR" --pid "$SERVER_PID" --duration "$seconds" \
    --train-every "$TRAIN_EVERY" "$@" --out "$driver_out"
  wait "$reads_pid"
}
stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
}

phase $((WARMUP + DURATION)) "$OUT/reads.json" "$OUT/writes.json" --feedback-batch "$FEEDBACK_BATCH" \
  --feedback-every "$FEEDBACK_EVERY" --item-every "$ITEM_EVERY"
curl -sf "http://$ADDR/metrics" > "$OUT/metrics.txt" || true
stop_server
AFTER="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from feedback").fetchone()[0])' "$STORE")"
rm -f "$OUT/fresh.json"
if [ "$FRESH" = 1 ]; then
  start_server "$OUT/fresh-server.log" --store "$STORE" --config "$WORK/server.toml" --log-level warn
  phase $((WARMUP + TRAIN_EVERY)) "$OUT/fresh-reads.json" "$OUT/fresh.json" --no-writes
  stop_server
fi

python3 - "$OUT" "$LOG" "$BEFORE" "$AFTER" "$WARMUP" "$TRAIN_EVERY" <<'PY' > "$OUT.md"
import json, os, platform, statistics, subprocess, sys
out, log, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
warmup, interval = float(sys.argv[5]), float(sys.argv[6])
reads, writes = json.load(open(f"{out}/reads.json")), json.load(open(f"{out}/writes.json"))
samples = writes["samples"]
warm = [s for s in samples if s["t"] >= warmup]
base = warm[0]["rss_mb"]
peak = max(s["rss_mb"] for s in warm)
last = warm[-1]["rss_mb"]
growth = (last - base) / base * 100
peak_growth = (peak - base) / base * 100
def window_median(rows, lo, hi, key="rss_mb"):
    values = [s[key] for s in rows if key in s and lo <= s["t"] < hi]
    return statistics.median(values) if values else float("nan")
end = samples[-1]["t"]
first_window = window_median(samples, warmup, warmup + interval)
last_window = window_median(samples, end - interval, end + 1)
window_growth = (last_window - first_window) / first_window * 100
anon_first = window_median(samples, warmup, warmup + interval, "anon_mb")
anon_last = window_median(samples, end - interval, end + 1, "anon_mb")
huge_first = window_median(samples, warmup, warmup + interval, "huge_mb")
huge_last = window_median(samples, end - interval, end + 1, "huge_mb")
fresh_window = None
if os.path.exists(f"{out}/fresh.json"):
    fresh = json.load(open(f"{out}/fresh.json"))["samples"]
    fresh_window = window_median(fresh, warmup, warmup + interval)
stored = after - before
ack = writes["feedback"]["inserted"]
fivexx_reads = sum(n for code, n in reads["non_2xx"].items() if code.startswith("5"))
summary = {
    "duration_s": writes["duration_s"], "rss_mb_after_warmup": base, "rss_mb_peak": peak,
    "rss_mb_last": last, "rss_growth_pct": round(growth, 1), "rss_peak_growth_pct": round(peak_growth, 1),
    "rss_mb_median_first_interval": first_window, "rss_mb_median_last_interval": last_window,
    "rss_interval_growth_pct": round(window_growth, 1),
    "anon_mb_median_first_interval": anon_first, "anon_mb_median_last_interval": anon_last,
    "huge_pages_mb_median_first_interval": huge_first, "huge_pages_mb_median_last_interval": huge_last,
    "fresh_server_rss_mb_median": fresh_window,
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
      f"(+{peak_growth:.1f}%), last {last:.0f} MB ({growth:+.1f}%).")
print(f"- RSS median over the first {interval:.0f} s after the warm-up {first_window:.0f} MB, over the last "
      f"{interval:.0f} s {last_window:.0f} MB: **{window_growth:+.1f}%** (anonymous memory {anon_first:.0f} -> "
      f"{anon_last:.0f} MB, of it transparent huge pages {huge_first:.0f} -> {huge_last:.0f} MB).")
if fresh_window is not None:
    print(f"- A fresh server on the final store, same reads and training runs, no writes: median "
          f"{fresh_window:.0f} MB over the same phase; the soaked server's last interval is "
          f"{(last_window - fresh_window) / fresh_window * 100:+.1f}% against that, and that is "
          f"{(fresh_window - first_window) / first_window * 100:+.1f}% against the soak's first interval.")
print(f"- Reads: {reads['completed']} at {reads['achieved_rate']:.0f} req/s, non-2xx {reads['non_2xx']}, "
      f"p99 {reads['latency_ms'].get('p99')} ms; {reads['swaps']['attempted']} version swaps "
      f"(statuses {reads['swaps']['statuses']}).")
print(f"- Writes: {writes['counts']}; 5xx other than shed load: **{writes['fivexx_not_shed']}**; shed: {writes['shed']}.")
print(f"- Feedback: {ack} events acknowledged as inserted, {stored} new rows in the store after the stop: "
      f"**{ack - stored} lost**.")
print(f"- Store: {before} events before, {after} after (+{(after - before) / before * 100:.1f}%); snapshot "
      f"rebuilds are in the server's own counters (bench/out/soak/metrics.txt).")
print("\nRSS (MB) every 10 s: " + ", ".join(f"{s['rss_mb']:.0f}" for s in samples))
if fresh_window is not None:
    print("\nFresh server, RSS (MB) every 10 s: " + ", ".join(f"{s['rss_mb']:.0f}" for s in fresh))
print("\nCommands (with wall times):\n\n```")
print(open(log).read().rstrip())
print("```")
PY
cat "$OUT.md"
