#!/usr/bin/env bash
# The Python package's evaluation against the CLI's on the job where the allocator's use of
# transparent huge pages showed most (BENCHMARKS.md, "Fit speed"): SVD at its defaults on ML-1M,
# kfold:5, no bootstrap, no segments, 2 threads; ROUNDS rounds (default 3) alternating CLI and
# Python, each timed from outside (wall clock, including the interpreter's or the process's start
# and the data load), and the RMSE each reports (the two must agree).
#   CLI     `kindred --threads 2 eval --data movielens:DIR --protocol kfold:5 --model svd ...`
#   Python  Dataset.from_movielens + kindred.evaluate("svd", ..., protocol="kfold:5", threads=2);
#           also timed inside the process, with its transparent huge pages and peak RSS
# Both use the release build of this checkout. Writes bench/out/python-svd-eval.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/python_common.sh

# Prints the RMSE, the seconds from loading the data to the report inside the process, and,
# from /proc, the process's transparent huge pages at the end and its peak resident memory (kB).
cat > "$WORK/eval.py" <<'PY'
import sys, time, kindred
started = time.perf_counter()
data = kindred.Dataset.from_movielens(sys.argv[1])
report = kindred.evaluate("svd", data, protocol="kfold:5", bootstrap=0, segments=False,
                          threads=2, progress=False)
seconds = time.perf_counter() - started
def kb(path, field):
    return next(int(l.split()[1]) for l in open(path) if l.startswith(field + ":"))
print(f"{report['results'][0]['metrics']['rmse']:.6f} {seconds:.3f} "
      f"{kb('/proc/self/smaps_rollup', 'AnonHugePages')} {kb('/proc/self/status', 'VmHWM')}")
PY

timed() { # output-file command...: runs it, stdout to the file; prints the wall seconds
  local out=$1 started
  shift
  started=$(date +%s.%N)
  "$@" > "$out" 2> /dev/null
  echo "$(date +%s.%N) - $started" | bc
}

rows=""
for round in $(seq 1 "$ROUNDS"); do
  cli_s=$(timed "$WORK/cli.out" "$K" -q --threads 2 eval --no-segments --bootstrap 0 \
    --data "movielens:$DATA" --protocol kfold:5 --model svd --json "$WORK/cli.json")
  py_s=$(timed "$WORK/py.out" "$PY" "$WORK/eval.py" "$DATA")
  cli_rmse=$(python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["results"][0]["metrics"]["rmse"])' "$WORK/cli.json")
  read -r py_rmse py_inside huge_kb peak_kb < "$WORK/py.out"
  rows+="$round $cli_s $py_s $cli_rmse $py_rmse $py_inside $huge_kb $peak_kb"$'\n'
done

python3 - "$ROUNDS" "$(git rev-parse --short HEAD)" <<PY > "$OUT/python-svd-eval.md"
import statistics, sys
rounds, commit = int(sys.argv[1]), sys.argv[2]
rows = [line.split() for line in """$rows""".strip().splitlines()]
print(f"# SVD evaluation, ML-1M kfold:5, 2 threads: Python package against the CLI (commit {commit}, release)")
print()
print("| round | CLI s | Python s | Python / CLI | Python in-process s | Python huge pages MB | Python peak RSS MB | CLI RMSE | Python RMSE |")
print("|---|---|---|---|---|---|---|---|---|")
ratios, inside = [], []
for r, cli, py, cli_rmse, py_rmse, py_inside, huge_kb, peak_kb in rows:
    ratio = float(py) / float(cli)
    ratios.append(ratio)
    inside.append(float(py_inside))
    print(f"| {r} | {float(cli):.2f} | {float(py):.2f} | {ratio:.3f} | {float(py_inside):.2f} | "
          f"{int(huge_kb) / 1024:.0f} | {int(peak_kb) / 1024:.0f} | {cli_rmse} | {py_rmse} |")
print()
print(f"Median Python / CLI over {rounds} rounds: {statistics.median(ratios):.3f} "
      f"(range {min(ratios):.3f}-{max(ratios):.3f}); Python in-process median "
      f"{statistics.median(inside):.2f} s ({min(inside):.2f}-{max(inside):.2f}); RMSEs "
      f"{'agree' if all(r[3] == r[4] for r in rows) else 'DIFFER'}.")
PY
cat "$OUT/python-svd-eval.md"
