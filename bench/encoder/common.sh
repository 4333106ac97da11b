# Shared by the encoder benchmarks (sourced): the release `kindred` with the `encoder` feature,
# the model directory (.ci/fetch-encoder) and the MovieLens 1M folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

KINDRED_DATA_DIR="${KINDRED_DATA_DIR:-$(cd .. && pwd)/shared/data}"
ml1m="$KINDRED_DATA_DIR/ml-1m"
[ -f "$ml1m/movies.dat" ] || { echo "MovieLens 1M not found under $KINDRED_DATA_DIR (set KINDRED_DATA_DIR)" >&2; exit 2; }
work="${WORK:-/tmp/kindred-encoder-bench}"
mkdir -p "$work"
cargo build -q --release -p kindred-cli --features encoder
k="${CARGO_TARGET_DIR:-target}/release/kindred"
encoder="$(bash .ci/fetch-encoder)"
