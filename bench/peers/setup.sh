#!/usr/bin/env bash
# Creates bench/peers/.venv with the peer libraries the comparison needs (Surprise for rating prediction).
# Idempotent: a venv that already imports them is left alone, so run.sh can call this every time.
set -euo pipefail
cd "$(dirname "$0")"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
if .venv/bin/python -c 'import numpy, pandas, surprise' 2>/dev/null; then
  echo "peers venv ready ($(.venv/bin/python -c 'import surprise; print("scikit-surprise", surprise.__version__)'))"
  exit 0
fi
# numpy<2: scikit-surprise's compiled extensions are built against the numpy 1 ABI.
.venv/bin/pip install -q "numpy<2" scikit-surprise pandas
.venv/bin/python -c 'import surprise; print("installed scikit-surprise", surprise.__version__)'
