# Shared by the benchmarks that set the Python package against the CLI (python_overhead,
# python_svd_eval; sourced, not run, from the repository root): the ML-1M folder (DATA), ROUNDS
# (default 3), OUT, a temporary work folder removed on exit (WORK), the release `kindred` of this
# checkout (K), and a fresh virtualenv in WORK with the package built from ./python and the
# extra pip packages named in PYTHON_EXTRAS (PY, its interpreter).
DATA="${KINDRED_DATA_DIR:-../shared/data}/ml-1m"
ROUNDS="${ROUNDS:-3}"
OUT=bench/out
mkdir -p "$OUT"
WORK="$(mktemp -d -t kindred-python-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -q -p kindred-cli
K="$target/release/kindred"
python3 -m venv "$WORK/venv"
# shellcheck disable=SC2086 # PYTHON_EXTRAS is a list of package names
"$WORK/venv/bin/pip" install -q --disable-pip-version-check numpy ${PYTHON_EXTRAS:-}
CARGO_TARGET_DIR="$target" "$WORK/venv/bin/pip" install -q --disable-pip-version-check ./python
PY="$WORK/venv/bin/python"
