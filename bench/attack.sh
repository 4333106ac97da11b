#!/usr/bin/env bash
# The attacks of issue 21 at their original scale against `kindred serve` on loopback (ML-1M in a
# temporary SQLite store, one ALS version live, default config), one after another, with the
# server's RSS sampled 5 times a second and /health/live timed during each
# (bench/attack_driver.py). SCALE=0.1 runs a tenth of each. Writes bench/out/attack.md and
# bench/out/attack/report.json. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
SCALE="${SCALE:-1}"
PORT="${PORT:-18091}"
OUT=bench/out/attack
mkdir -p "$OUT"

source bench/serve_common.sh
$K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
$K train --store "$STORE" --model als:factors=32,iterations=5 --positive 4 --publish > /dev/null
# Info level: the log shows when snapshots are rebuilt and monitoring passes run, to read the
# RSS timeline against.
start_server "$OUT/server.log" --store "$STORE" --log-level info
python3 bench/attack_driver.py --addr "$ADDR" --pid "$SERVER_PID" --scale "$SCALE" --out "$OUT/report.json"

python3 - "$OUT/report.json" "$SCALE" <<'PY' > bench/out/attack.md
import json, os, platform, sys
report, scale = json.load(open(sys.argv[1])), sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# kindred serve under the issue-21 attacks (bench/attack.sh)\n")
print(f"Machine: {os.cpu_count()} logical CPUs ({cpu}), Linux {platform.release()}; loopback; release build; "
      f"default server config; scale {scale}.\n")
print("| attack | answers | s | RSS before MB | RSS peak MB | RSS after MB | slowest /health/live ms | live failures |")
print("|---|---|---|---|---|---|---|---|")
for r in report[:-1]:
    print(f"| {r['attack']} | {json.dumps(r['result'])} | {r['seconds']} | {r['rss_mb_before']} | {r['rss_mb_peak']} "
          f"| {r['rss_mb_after']} | {r['health_live_max_ms']} | {r['health_live_failures']} |")
peak = max(r["rss_mb_peak"] for r in report[:-1])
print(f"\nPeak RSS over every attack: **{peak:.0f} MB**; /metrics after them: {report[-1]['metrics_bytes']} bytes.")
PY
cat bench/out/attack.md
