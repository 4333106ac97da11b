#!/usr/bin/env bash
# What the Python package costs over the CLI on the same job (issue 24's overhead bar): ML-1M,
# ALS at its defaults on ratings >= 4, three rounds alternating CLI and Python, each timed from
# outside (wall clock, including the interpreter's or the process's start and the data load):
#   train      `kindred train --data movielens:DIR --model als --positive 4 --out DIR`
#              against Dataset.from_movielens + ALS().fit(positive=4) + save
#   recommend  `kindred recommend --model DIR --all-users --k 10 --out FILE`
#              against Model.load + recommend(every user, k=10) + to_csv
# the same steps timed inside one Python process (apart from the interpreter's start and the
# imports), what `Model.recommend` adds to the native call it makes, and the median of 1,000
# one-user `recommend` calls from Python on the fitted model.
# Both use the release build of this checkout. Writes bench/out/python-overhead.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_EXTRAS=pandas
source bench/python_common.sh

cat > "$WORK/train.py" <<'PY'
import sys, kindred
data = kindred.Dataset.from_movielens(sys.argv[1])
kindred.ALS().fit(data, positive=4).save(sys.argv[2])
PY
cat > "$WORK/recommend.py" <<'PY'
import sys, kindred
model = kindred.Model.load(sys.argv[1])
model.recommend(model.user_ids, k=10).to_csv(sys.argv[2], index=False)
PY
cat > "$WORK/inprocess.py" <<'PY'
import sys, time
started = time.perf_counter()
import kindred, pandas
imported = time.perf_counter()
data = kindred.Dataset.from_movielens(sys.argv[1])
model = kindred.ALS().fit(data, positive=4)
model.save(sys.argv[2])
trained = time.perf_counter()
loaded = kindred.Model.load(sys.argv[2])
loaded.recommend(loaded.user_ids, k=10).to_csv(sys.argv[3], index=False)
done = time.perf_counter()
print(f"{imported - started:.3f} {trained - imported:.3f} {done - trained:.3f}")
PY
cat > "$WORK/one_user.py" <<'PY'
import statistics, sys, time, kindred
model = kindred.Model.load(sys.argv[1])
users = model.user_ids
times = []
for n in range(1000):
    user = users[(n * 7919) % len(users)]
    started = time.perf_counter()
    model.recommend(user, k=10)
    times.append(time.perf_counter() - started)
print(f"{statistics.median(times) * 1e3:.3f} {sorted(times)[989] * 1e3:.3f}")
PY

# What the package adds to the Rust call inside one process: every user's lists through the native
# call alone (three packed arrays) against `Model.recommend` (the same call plus the DataFrame),
# and pandas' to_csv apart; medians of 5 after one warm-up call.
cat > "$WORK/split.py" <<'PY'
import statistics, sys, time, kindred
model = kindred.Model.load(sys.argv[1])
users = model.user_ids
asked = [str(u) for u in users]
native, whole, csv = [], [], []
model.recommend(users, k=10)
for _ in range(5):
    started = time.perf_counter()
    model._native.recommend_packed(asked, 10, True)
    native.append(time.perf_counter() - started)
    started = time.perf_counter()
    frame = model.recommend(users, k=10)
    whole.append(time.perf_counter() - started)
    started = time.perf_counter()
    frame.to_csv(sys.argv[2], index=False)
    csv.append(time.perf_counter() - started)
m = statistics.median
print(f"{m(native):.4f} {m(whole):.4f} {m(csv):.4f}")
PY

wall() { # command...: prints the wall seconds it took
  local started
  started=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  echo "$(date +%s.%N) - $started" | bc
}

rows=""
for round in $(seq 1 "$ROUNDS"); do
  cli_train=$(wall "$K" train --data "movielens:$DATA" --model als --positive 4 --out "$WORK/cli-$round" --quiet)
  py_train=$(wall "$PY" "$WORK/train.py" "$DATA" "$WORK/py-$round")
  cli_rec=$(wall "$K" recommend --model "$WORK/cli-$round" --all-users --k 10 --out "$WORK/cli-$round.csv" --quiet)
  py_rec=$(wall "$PY" "$WORK/recommend.py" "$WORK/py-$round" "$WORK/py-$round.csv")
  rows+="$round $cli_train $py_train $cli_rec $py_rec"$'\n'
done
read -r one_median one_p99 < <("$PY" "$WORK/one_user.py" "$WORK/py-1")
read -r import_s train_s recommend_s < <("$PY" "$WORK/inprocess.py" "$DATA" "$WORK/in-process" "$WORK/in-process.csv")
read -r native_s whole_s csv_s < <("$PY" "$WORK/split.py" "$WORK/py-1" "$WORK/split.csv")
# The two fits must agree list for list (same data, spec and seed).
# Row for row: the same (user, item, rank) and the same score as a number (the CLI writes a
# zero as `0`, pandas as `0.0`; the CLI adds a title column where the data has titles).
same=$(python3 - "$WORK/cli-1.csv" "$WORK/py-1.csv" <<'PY'
import csv, sys
rows = lambda path: sorted((r["user"], r["item"], int(r["rank"]), float(r["score"])) for r in csv.DictReader(open(path)))
print("yes" if rows(sys.argv[1]) == rows(sys.argv[2]) else "no")
PY
)

python3 - "$ROUNDS" "$one_median" "$one_p99" "$same" "$import_s" "$train_s" "$recommend_s" "$native_s" "$whole_s" "$csv_s" <<PY > "$OUT/python-overhead.md"
import statistics, sys
rounds, one_median, one_p99, same = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
import_s, train_s, recommend_s = sys.argv[5], sys.argv[6], sys.argv[7]
native_s, whole_s, csv_s = float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10])
rows = [list(map(float, line.split()[1:])) for line in """$rows""".strip().splitlines()]
print("# Python package against the CLI: ML-1M ALS (defaults, positive >= 4), wall clock, release build")
print()
print("| round | CLI train s | Python train s | ratio | CLI recommend-all s | Python recommend-all s | ratio |")
print("|---|---|---|---|---|---|---|")
for i, (ct, pt, cr, pr) in enumerate(rows, 1):
    print(f"| {i} | {ct:.2f} | {pt:.2f} | {pt / ct:.3f} | {cr:.2f} | {pr:.2f} | {pr / cr:.3f} |")
med = lambda xs: statistics.median(xs)
print()
print(f"Medians of {rounds}: train ratio {med([r[1] / r[0] for r in rows]):.3f} "
      f"(range {min(r[1] / r[0] for r in rows):.3f}-{max(r[1] / r[0] for r in rows):.3f}), "
      f"recommend-all ratio {med([r[3] / r[2] for r in rows]):.3f} "
      f"(range {min(r[3] / r[2] for r in rows):.3f}-{max(r[3] / r[2] for r in rows):.3f}).")
print()
print(f"Inside one Python process (one run): importing kindred (numpy, pandas) {import_s} s, "
      f"load + fit + save {train_s} s, load + recommend every user + to_csv {recommend_s} s.")
print()
print(f"Every user's lists inside one process (medians of 5): the native call {native_s:.4f} s, "
      f"Model.recommend (the call plus the DataFrame) {whole_s:.4f} s, {whole_s / native_s:.3f}x the call; "
      f"pandas' to_csv of them {csv_s:.4f} s.")
print()
print(f"One user's top 10 from Python: median {one_median} ms, p99 {one_p99} ms over 1,000 calls.")
print()
print(f"Round 1's CLI and Python lists identical (sorted CSV rows): {same}.")
PY
cat "$OUT/python-overhead.md"
