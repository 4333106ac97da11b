#!/usr/bin/env bash
# What README's two quick-start commands cost on a fresh clone: each build starts from an empty
# target directory (dependencies already downloaded), in a clean copy of HEAD, one at a time.
#   lean        cargo build --release -p kindred-cli                 (the quick start's build)
#   full        cargo build --release -p kindred-cli --features full  (everything)
#   quickstart  kindred quickstart --check with its defaults           (the run after the build)
#   test-build  cargo nextest run --workspace --all-features --no-run  (scripts/test's build)
#   test-run    scripts/test on that build                             (the tests themselves)
# STEPS picks some (default: all, in that order). Run it with nothing else on the machine.
# Writes bench/out/build-times.md.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-lean full quickstart test-build test-run}"
REPO="$PWD"
OUT="$REPO/bench/out"
WORK="$(mktemp -d -t kindred-build-times.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
git archive HEAD | tar -x -C "$WORK/"
cd "$WORK"
export CARGO_INCREMENTAL=0

seconds() { # label, command...: runs the command, prints "label: N s" and records it
  local label="$1"
  shift
  local started
  started=$(date +%s)
  "$@" > "$WORK/$label.log" 2>&1
  local took=$(($(date +%s) - started))
  echo "| $label | $took s ($((took / 60)) min $((took % 60)) s) | \`$*\` |" >> "$WORK/rows.md"
  echo "$label: $took s"
}

for step in $STEPS; do
  case "$step" in
    lean) CARGO_TARGET_DIR="$WORK/t-lean" seconds lean cargo build --release -p kindred-cli ;;
    full) CARGO_TARGET_DIR="$WORK/t-full" seconds full cargo build --release -p kindred-cli --features full ;;
    quickstart)
      [ -x "$WORK/t-lean/release/kindred" ] ||
        CARGO_TARGET_DIR="$WORK/t-lean" cargo build -q --release -p kindred-cli
      seconds quickstart "$WORK/t-lean/release/kindred" quickstart --check --listen 127.0.0.1:0 --quiet
      ;;
    test-build) CARGO_TARGET_DIR="$WORK/t-test" seconds test-build cargo nextest run --workspace --all-features --no-run ;;
    test-run) CARGO_TARGET_DIR="$WORK/t-test" seconds test-run bash scripts/test ;;
    *) echo "unknown step $step" >&2; exit 1 ;;
  esac
done

{
  echo "# Cold build and run times (bench/build_times.sh)"
  echo
  echo "$(nproc) CPUs, $(rustc --version), commit $(git -C "$REPO" rev-parse --short HEAD)."
  echo "Each build starts from an empty target directory; crates were already downloaded."
  echo
  echo "| step | wall time | command |"
  echo "|---|---|---|"
  cat "$WORK/rows.md"
} > "$OUT/build-times.md"
cat "$OUT/build-times.md"
