# Shared by the server benchmarks (serve_load, serve_profile, soak, attack; sourced, not run):
# builds the release `kindred` and `kindred-loadgen`, makes a temporary work folder with the store
# path, starts the server (start_server) and stops it and removes the folder on exit, and reads
# its CPU time (server_cpu), and logs commands (step). Expects PORT and OUT to be set.
# KINDRED_FEATURES (e.g. `kindred-cli/postgres`) adds cargo features to that build.
cargo build --release -q -p kindred-cli -p kindred-loadgen ${KINDRED_FEATURES:+--features "$KINDRED_FEATURES"}
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
# The commands a script runs, with their wall times (step CMD...), in $OUT/commands.log.
LOG="$OUT/commands.log"
: > "$LOG"
step() { echo "+ $*" | tee -a "$LOG" >&2; /usr/bin/time -f "  (%e s wall)" "$@" 2>> "$LOG"; }

# start_server LOG ARGS...: starts `kindred serve --listen $ADDR ARGS...` in the background with
# its log in LOG, records its pid in SERVER_PID (stopped on exit) and waits until it is ready.
start_server() {
  local log=$1
  shift
  $K serve --listen "$ADDR" "$@" 2> "$log" &
  SERVER_PID=$!
  echo "+ $K serve --listen $ADDR $*" >> "${LOG:-/dev/null}"
  for _ in $(seq 1 600); do
    curl -sf "http://$ADDR/health/ready" > /dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited; see $log" >&2; exit 1; }
    sleep 0.1
  done
  echo "server not ready after 60 s; see $log" >&2
  exit 1
}

# The server's CPU seconds (user + system) so far, from /proc (clock ticks of 1/100 s).
server_cpu() { awk '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / 100 }' "/proc/$SERVER_PID/stat"; }
