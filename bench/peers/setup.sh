#!/usr/bin/env bash
# Creates bench/peers/.venv with the peer libraries the comparisons need: Surprise (rating prediction, run.sh),
# implicit + LightFM (top-N ranking, ranking.sh) and hnswlib + faiss-cpu (nearest-neighbour search, bench/ann.sh).
# Idempotent: a venv that already imports them is left alone, so run.sh and ranking.sh can call this every time.
set -euo pipefail
cd "$(dirname "$0")"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
versions='import surprise, implicit, lightfm, hnswlib, faiss; print("peers venv ready: scikit-surprise",
surprise.__version__, "implicit", implicit.__version__, "lightfm", lightfm.__version__, "faiss", faiss.__version__)'
if .venv/bin/python -c "import numpy, pandas, scipy, threadpoolctl; $versions" 2>/dev/null; then
  exit 0
fi
# numpy<2: scikit-surprise's compiled extensions are built against the numpy 1 ABI.
# pip<24 with setuptools/wheel/cython in the venv: needed for the legacy (non-PEP 517) LightFM build below.
.venv/bin/pip install -q "pip<24" setuptools wheel cython
.venv/bin/pip install -q "numpy<2" scikit-surprise pandas scipy threadpoolctl implicit hnswlib faiss-cpu
if ! .venv/bin/python -c 'import lightfm' 2>/dev/null; then
  # lightfm 1.17's setup.py assigns into `__builtins__`, which is a dict (not the module) when the file runs under
  # PEP 517, so a plain `pip install lightfm` fails. Build it from the sdist with that one line patched.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  .venv/bin/pip download -q --no-deps --no-binary :all: --no-build-isolation --no-use-pep517 -d "$tmp" lightfm==1.17
  tar -xzf "$tmp"/lightfm-1.17.tar.gz -C "$tmp"
  sed -n 11p "$tmp/lightfm-1.17/setup.py" | grep -q '__LIGHTFM_SETUP__' || { echo "unexpected lightfm setup.py" >&2; exit 1; }
  sed -i '11s/.*/import builtins; builtins.__LIGHTFM_SETUP__ = True/' "$tmp/lightfm-1.17/setup.py"
  (cd "$tmp/lightfm-1.17" && "$OLDPWD/.venv/bin/pip" install -q --no-build-isolation .)
fi
.venv/bin/python -c "$versions"
