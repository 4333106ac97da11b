# Shared by bench/serve_load.sh and bench/serve_profile.sh (sourced, not run): builds the release
# `kindred` and `kindred-loadgen`, makes a temporary work folder with the store path, and stops
# the server started into SERVER_PID and removes the folder on exit. Expects PORT to be set.
cargo build --release -q -p kindred-cli -p kindred-loadgen
K="${CARGO_TARGET_DIR:-target}/release/kindred"
LG="${CARGO_TARGET_DIR:-target}/release/kindred-loadgen"
ADDR="127.0.0.1:$PORT"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
STORE="$WORK/store.db"
