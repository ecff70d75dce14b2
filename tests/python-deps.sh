#!/usr/bin/env bash
# The Python tools the export tests read our output back with: MLflow (its tracking server and
# client) and TensorBoard (its event reader and HParams protos). Test-only: building or running
# `sweep` never needs them.
#
# Makes a virtual environment at $SWEEP_TEST_VENV (default: <cargo target dir>/test-venv, where
# tests/export.rs looks for it) and installs them there once; fast when they are present.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SWEEP_TEST_VENV:-${CARGO_TARGET_DIR:-target}/test-venv}"
if "$venv/bin/python" -c 'import mlflow, tensorboard' 2>/dev/null && [ -x "$venv/bin/mlflow" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'mlflow>=2.10,<4' 'tensorboard>=2.14,<3'
"$venv/bin/python" -c 'import mlflow, tensorboard; print("test venv:", mlflow.__version__, tensorboard.__version__)'
