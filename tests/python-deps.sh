#!/usr/bin/env bash
# The Python tools the tests read our output back with: MLflow (its tracking server and client),
# TensorBoard (its event reader and HParams protos), scikit-learn (the reference for the
# full-resolution metrics) and PyTorch with numpy (examples/pytorch, the user's own training script
# a `[program]` sweep runs). Test-only: building or running `sweep` never needs them.
#
# Makes a virtual environment at $SWEEP_TEST_VENV (default: <cargo target dir>/test-venv, where
# tests/export.rs looks for it) and installs them there once; fast when they are present.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SWEEP_TEST_VENV:-${CARGO_TARGET_DIR:-target}/test-venv}"
if "$venv/bin/python" -c 'import mlflow, tensorboard, sklearn, PIL, torch, numpy' 2>/dev/null && [ -x "$venv/bin/mlflow" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'mlflow>=2.10,<4' 'tensorboard>=2.14,<3' 'scikit-learn>=1.3,<2' 'pillow>=10' 'torch>=2.1' 'numpy>=1.24'
"$venv/bin/python" -c 'import mlflow, tensorboard, sklearn; import torch; print("test venv:", mlflow.__version__, tensorboard.__version__, sklearn.__version__, torch.__version__)'
