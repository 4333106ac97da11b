#!/usr/bin/env bash
# The server's RSS across back-to-back training runs on unchanged data: what bench/soak.sh's RSS
# steps come from, without the soak's writes (which grow the data) or its 20 minutes. ML-1M in a
# temporary SQLite store, `kindred serve` with the soak's [training] config and $RATE req/s of
# reads; then $RUNS times: POST /v1/models (not activated), wait until the run is counted, wait
# $SETTLE s (longer than the 10 s an idle tokio blocking thread lives), sample the RSS.
# With nothing growing, RSS that climbs from run to run is memory the allocator keeps.
# KINDRED_BIN=PATH runs that build of `kindred` instead of this checkout's (another commit's, to
# compare). Writes bench/out/train_rss.md and bench/out/train_rss/report.json. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${KINDRED_DATA_DIR:-../shared/data}"
RUNS="${RUNS:-12}"
SETTLE="${SETTLE:-15}"
RATE="${RATE:-200}"
PORT="${PORT:-18097}"
OUT=bench/out/train_rss
mkdir -p "$OUT"

source bench/serve_common.sh
K="${KINDRED_BIN:-$K}"

step $K import --data "movielens:$DATA_DIR/ml-1m" --store "$STORE" > /dev/null
step $K train --store "$STORE" --model als:factors=32,iterations=5 --positive 4 --publish > /dev/null
cat > "$WORK/server.toml" <<TOML
[training]
model = "als:factors=32,iterations=5"
positive = 4.0
eval_users = 200
TOML
start_server "$OUT/server.log" --store "$STORE" --config "$WORK/server.toml" --log-level warn
"$LG" recommend --addr "$ADDR" --users 1..20000 --rate "$RATE" --duration 100000 --connections 8 \
  --out "$OUT/reads.json" > /dev/null 2>&1 &
READS_PID=$!
echo "+ $RUNS training runs (POST /v1/models), RSS $SETTLE s after each; reads at $RATE req/s" >> "$LOG"
python3 - "$ADDR" "$SERVER_PID" "$RUNS" "$SETTLE" "$OUT/report.json" <<'PY'
import json, sys, time, urllib.request
sys.path.insert(0, "bench")
from server_probe import rss_mb
addr, pid, runs, settle, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

def trained():
    for line in urllib.request.urlopen(f"http://{addr}/metrics").read().decode().splitlines():
        if line.startswith("kindred_training_runs_total"):
            return int(float(line.split()[-1]))

time.sleep(settle)
rows = [{"run": 0, "peak_mb": None, "rss_mb": round(rss_mb(pid), 1)}]
for run in range(1, runs + 1):
    before = trained()
    request = urllib.request.Request(f"http://{addr}/v1/models", method="POST",
                                     data=json.dumps({"activate": False}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    peak = 0.0
    while trained() == before:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.2)
    time.sleep(settle)
    rows.append({"run": run, "peak_mb": round(peak, 1), "rss_mb": round(rss_mb(pid), 1)})
json.dump({"settle_s": settle, "runs": rows}, open(out, "w"), indent=2)
PY
kill "$READS_PID" 2>/dev/null || true
wait "$READS_PID" 2>/dev/null || true

python3 - "$OUT/report.json" "$LOG" "$RATE" <<'PY' > bench/out/train_rss.md
import json, os, platform, sys
report, log, rate = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
rows = report["runs"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print("# kindred serve's RSS across training runs on unchanged data (bench/train_rss.sh)\n")
print(f"Machine: {os.cpu_count()} logical CPUs ({cpu}), Linux {platform.release()}; loopback; release build; "
      f"reads at {rate} req/s; RSS sampled {report['settle_s']:.0f} s after each run.\n")
first, last = rows[1]["rss_mb"], rows[-1]["rss_mb"]
settled = [r["rss_mb"] for r in rows[1:]]
print(f"- RSS before any run {rows[0]['rss_mb']:.0f} MB; after run 1 {first:.0f} MB, after run {rows[-1]['run']} "
      f"{last:.0f} MB (**{(last - first) / first * 100:+.1f}%**); settled min {min(settled):.0f}, max {max(settled):.0f} MB; "
      f"highest peak during a run {max(r['peak_mb'] for r in rows[1:]):.0f} MB.")
print("\n| run | peak during MB | settled MB |\n|---:|---:|---:|")
for r in rows:
    peak = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
    print(f"| {r['run']} | {peak} | {r['rss_mb']:.0f} |")
print("\nCommands (with wall times):\n\n```")
print(open(log).read().rstrip())
print("```")
PY
cat bench/out/train_rss.md
