#!/usr/bin/env bash
# The long fuzz run: each target (all, or those named) to RUNS executions (default 10,000,000),
# one at a time, single-process, with the limits of scripts/fuzz (no allocation over 512 MiB, no
# process over 2 GiB, 10 s per input). FUZZ_MAX_SECONDS caps one target's wall time (default:
# none); a target stopped by the cap reports the executions it reached.
#
# Writes bench/out/fuzz_long.json (one object per target: executions, exec/s, wall seconds,
# peak RSS, result) and each target's libFuzzer log under bench/out/fuzz/. BENCHMARKS.md,
# "Fuzzing", records a run.
#
#   nice -n 10 bench/fuzz_long.sh                      # every target
#   RUNS=1000000 bench/fuzz_long.sh csv_import         # one target, a million executions
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/fuzz
source scripts/fuzz

RUNS=${RUNS:-10000000}
MAX_SECONDS=${FUZZ_MAX_SECONDS:-0}
out=bench/out/fuzz
mkdir -p "$out"
fuzz_setup
fuzz_build

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(fuzz_targets)

json=bench/out/fuzz_long.json
# Keep the figures of targets not rerun this time.
[ -f "$json" ] || echo '[]' >"$json"
status=0
for target in "${targets[@]}"; do
  log="$out/$target.log"
  echo "-- $target: $RUNS runs"
  start=$(date +%s.%N)
  set +e
  fuzz_run "$target" -runs="$RUNS" -max_total_time="$MAX_SECONDS" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  python3 - "$target" "$rc" "$start" "$end" "$log" "$json" "$RUNS" <<'EOF'
import json, re, sys
target, rc, start, end, log, path, runs = sys.argv[1:]
text = open(log, errors="replace").read()
def stat(name):
    m = re.findall(rf"^stat::{name}:\s*(\d+)", text, re.M)
    return int(m[-1]) if m else None
execs = stat("number_of_executed_units")
rc = int(rc)
if "libFuzzer: run interrupted" in text:
    result = "interrupted (SIGINT) before the runs were done"
elif rc != 0:
    kind = re.search(r"==\d+== ERROR: libFuzzer: ([\w-]+)|(deadly signal|panicked|timeout|out-of-memory)", text)
    result = "finding: " + (kind.group(1) or kind.group(2) if kind else f"exit {rc}")
elif execs is not None and execs < int(runs):
    result = "stopped by FUZZ_MAX_SECONDS before the runs were done"
else:
    result = "ok"
row = {
    "target": target,
    "executions": execs,
    "exec_per_s": stat("average_exec_per_sec"),
    "wall_s": round(float(end) - float(start), 1),
    "peak_rss_mb": stat("peak_rss_mb"),
    "new_units": stat("new_units_added"),
    "result": result,
}
rows = [r for r in json.load(open(path)) if r["target"] != target] + [row]
json.dump(rows, open(path, "w"), indent=1)
print(json.dumps(row))
EOF
  [ "$rc" -eq 0 ] || status=1
done
exit $status
