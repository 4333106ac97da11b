#!/usr/bin/env bash
# Creates bench/peers/.venv-recbole with RecBole 1.2.1 and PyTorch (run on the CPU) for
# bench/sequence/recbole_sasrec.sh. It is a venv of its own because RecBole needs numpy<2 and torch, which the
# other peers' venv (.venv, setup.sh) should not have to carry.
# Idempotent: a venv that already imports torch and recbole is left alone.
set -euo pipefail
cd "$(dirname "$0")"
py="${PYTHON:-python3}"
venv=.venv-recbole
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
check='import torch, recbole, numpy, scipy, pandas, sklearn, yaml, colorlog, texttable
import torch.utils.tensorboard
x = torch.randn(8, 4, requires_grad=True); (x @ torch.randn(4, 2)).sum().backward()
print("recbole venv ready: recbole", recbole.__version__, "torch", torch.__version__, "numpy", numpy.__version__)'
if "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
# PyPI has only CUDA builds of torch for Linux x86-64. They run on a machine without a GPU, but libtorch_cuda.so
# is linked against the CUDA libraries, so `import torch` fails unless the nvidia-* / cuda-* packages are there:
# installed as torch declares them (about 3 GB of the finished venv's 4.8 GB; the whole setup takes about two minutes).
"$venv/bin/pip" install -q torch==2.15.0
# Triton (1 GB) is only used by torch.compile's GPU code generation, which nothing here calls.
"$venv/bin/pip" uninstall -q -y triton
# RecBole declares ray (for its hyperparameter search) and plotly (for plotting that search) as dependencies;
# neither is used here, so RecBole goes in without its dependencies and the ones it imports are listed (pip
# then reports ray and plotly as missing; that is expected):
#   numpy<2: RecBole 1.2.1 aliases np.float_ and friends, which numpy 2 removed.
#   pandas<3: RecBole fills missing values through chained in-place calls that pandas 3 no longer honours.
#   colorlog, colorama: the versions RecBole pins. tensorboard: RecBole imports its SummaryWriter at start-up.
#   thop: RecBole's FLOPs counter; without --no-deps pip would resolve torch's dependencies again.
"$venv/bin/pip" install -q --no-deps recbole==1.2.1 thop
"$venv/bin/pip" install -q "numpy<2" scipy "pandas<3" tqdm colorlog==4.7.2 colorama==0.4.4 scikit-learn pyyaml \
  tensorboard texttable psutil tabulate
"$venv/bin/python" -c "$check"
