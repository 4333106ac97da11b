#!/usr/bin/env bash
# Every user's top 10 from the `kindred` Python package inside Spark, against the CLI on the same
# saved model: ML-1M, ALS at its defaults on ratings >= 4, trained once with
#   kindred train --data movielens:DIR --model als --positive 4 --out MODEL
# then ROUNDS rounds (default 3) of
#   CLI    `kindred recommend --model MODEL --all-users --k 10 --out FILE`
#   Spark  examples/spark/recommend_all_users.py MODEL OUT --k 10 --master local[2]
# each timed from outside (process wall clock); the Spark script also prints its own time from
# SparkSession creation to the written output. Every round's Spark lists must equal the CLI's list
# for list (same users; per user the same items in the same order, scores equal as float32), or
# the script fails. Uses the release build of this checkout, a fresh venv in a temp dir (or the
# one named by VENV) with numpy, pandas, pyarrow, pyspark and ./python, and Java 17 (JAVA_HOME, or
# the `java` on the PATH). Local only: Spark binds to 127.0.0.1, its web UI is off.
# Writes bench/out/spark-recommend.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${KINDRED_DATA_DIR:-../shared/data}/ml-1m"
ROUNDS="${ROUNDS:-3}"
MASTER="${SPARK_MASTER:-local[2]}"
OUT=bench/out
mkdir -p "$OUT"
WORK="$(mktemp -d -t kindred-spark-recommend.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
target="${CARGO_TARGET_DIR:-target}"

if [ -z "${JAVA_HOME:-}" ]; then
  java="$(command -v java)" || { echo "no java on the PATH and no JAVA_HOME: pyspark needs Java 17" >&2; exit 1; }
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java")")")"
  export JAVA_HOME
fi
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_DIRS="$WORK/spark-local"
export PYSPARK_SUBMIT_ARGS="--conf spark.ui.enabled=false pyspark-shell"

cargo build --release -q -p kindred-cli
K="$target/release/kindred"
VENV="${VENV:-$WORK/venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
# pandas < 3: PySpark 4.x warns that it does not yet fully support pandas 3.
"$PY" -m pip install -q --disable-pip-version-check numpy "pandas<3" pyarrow pyspark
CARGO_TARGET_DIR="$target" "$PY" -m pip install -q --disable-pip-version-check ./python
export PYSPARK_PYTHON="$PY"
versions=$("$PY" -c 'import pyspark, pandas, pyarrow; print(f"pyspark {pyspark.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}")')
java_version=$("$JAVA_HOME/bin/java" -version 2>&1 | head -1)

"$K" train --data "movielens:$DATA" --model als --positive 4 --out "$WORK/model" --quiet

# CLI CSV (user,item,rank,score[,title]) against Spark's CSV part files: prints "users rows".
cat > "$WORK/compare.py" <<'PY'
import csv, glob, os, sys
import numpy as np

def lists(paths):
    rows = {}
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["user"], []).append((int(r["rank"]), r["item"], np.float32(r["score"])))
    out = {}
    for user, entries in rows.items():
        entries.sort()
        if [rank for rank, _, _ in entries] != list(range(1, len(entries) + 1)):
            sys.exit(f"{user}: ranks {[rank for rank, _, _ in entries]} are not 1..n")
        out[user] = [(item, score) for _, item, score in entries]
    return out

cli = lists([sys.argv[1]])
spark = lists(sorted(glob.glob(os.path.join(sys.argv[2], "part-*.csv"))))
problems = []
if cli.keys() != spark.keys():
    problems.append(f"users only from the CLI: {sorted(cli.keys() - spark.keys())[:5]} "
                    f"({len(cli.keys() - spark.keys())}), only from Spark: "
                    f"{sorted(spark.keys() - cli.keys())[:5]} ({len(spark.keys() - cli.keys())})")
for user in sorted(cli.keys() & spark.keys()):
    if [i for i, _ in cli[user]] != [i for i, _ in spark[user]]:
        problems.append(f"user {user}: CLI items {[i for i, _ in cli[user]]} Spark {[i for i, _ in spark[user]]}")
    elif [s for _, s in cli[user]] != [s for _, s in spark[user]]:
        problems.append(f"user {user}: CLI scores {[str(s) for _, s in cli[user]]} Spark {[str(s) for _, s in spark[user]]}")
if problems:
    print(f"{len(problems)} differences between {sys.argv[1]} and {sys.argv[2]}:", file=sys.stderr)
    print("\n".join(problems[:10]), file=sys.stderr)
    sys.exit(1)
print(len(cli), sum(len(l) for l in cli.values()))
PY

wall() { # LOG command...: runs it with its output in LOG, prints the wall seconds it took
  local log="$1" started
  shift
  started=$(date +%s.%N)
  "$@" > "$log" 2>&1 || { echo "failed: $* (output: $log)" >&2; cat "$log" >&2; exit 1; }
  echo "$(date +%s.%N) - $started" | bc
}

rows=""
for round in $(seq 1 "$ROUNDS"); do
  cli=$(wall "$WORK/cli-$round.log" "$K" recommend --model "$WORK/model" --all-users --k 10 --out "$WORK/cli-$round.csv" --quiet)
  spark_e2e=$(wall "$WORK/spark-$round.log" "$PY" examples/spark/recommend_all_users.py "$WORK/model" "$WORK/spark-$round" --k 10 --master "$MASTER")
  spark_job=$(sed -n 's/^Spark job wall time: \([0-9.]*\) s.*/\1/p' "$WORK/spark-$round.log")
  spark_start=$(sed -n 's/^Spark session start: \([0-9.]*\) s.*/\1/p' "$WORK/spark-$round.log")
  [ -n "$spark_job" ] && [ -n "$spark_start" ] || { echo "no timing in the Spark output:" >&2; cat "$WORK/spark-$round.log" >&2; exit 1; }
  compared=$("$PY" "$WORK/compare.py" "$WORK/cli-$round.csv" "$WORK/spark-$round") ||
    { echo "round $round: the Spark lists differ from the CLI's" >&2; exit 1; }
  read -r users lists <<< "$compared"
  rows+="$round $cli $spark_start $spark_job $spark_e2e $users $lists"$'\n'
done

python3 - "$ROUNDS" "$MASTER" "$versions" "$java_version" <<PY > "$OUT/spark-recommend.md"
import statistics, sys
rounds, master, versions, java = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rows = [line.split()[1:] for line in """$rows""".strip().splitlines()]
cli, start, job, e2e = ([float(r[i]) for r in rows] for i in range(4))
users, lists = int(rows[0][4]), int(rows[0][5])
print(f"# Every user's top 10 in Spark ({master}) against the CLI: ML-1M ALS (defaults, positive >= 4), release build")
print()
print(f"{versions}; {java}.")
print()
print("| round | CLI recommend-all s | Spark session start s | Spark job s (in script) | Spark process s | job / CLI | process / CLI |")
print("|---|---|---|---|---|---|---|")
for i in range(len(rows)):
    print(f"| {i + 1} | {cli[i]:.2f} | {start[i]:.2f} | {job[i]:.2f} | {e2e[i]:.2f} | {job[i] / cli[i]:.1f} | {e2e[i] / cli[i]:.1f} |")
print()
print(f"| over {rounds} rounds | median | range |")
print("|---|---|---|")
for name, xs in [
    ("CLI recommend-all s (process)", cli),
    ("Spark session start s", start),
    ("Spark job s (session start to written output)", job),
    ("Spark process s (end to end)", e2e),
    ("ratio Spark job / CLI", [j / c for j, c in zip(job, cli)]),
    ("ratio Spark process / CLI", [e / c for e, c in zip(e2e, cli)]),
]:
    print(f"| {name} | {statistics.median(xs):.2f} | {min(xs):.2f}-{max(xs):.2f} |")
print()
print(f"Users: {users}. Every round, all {users} Spark lists ({lists} rows) were identical to the "
      f"CLI's: same items in the same order, scores equal as float32.")
PY
cat "$OUT/spark-recommend.md"
