#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, from the package
# registries only: a venv at .venv with keras-vae and its test extras, Debian's
# Chromium (the browser test) and the Node packages of serving/node (npm ci).
# Used by the README's test command, which .ci/run runs verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install.sh: Chromium is missing and this user cannot install it (apt-get install chromium)" >&2
    exit 1
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm is missing: install Node.js >= 18 with npm" >&2
  exit 1
fi
# serving/node/.npmrc skips onnxruntime-node's CUDA download (see DESIGN.md).
npm ci --prefix serving/node --no-audit --no-fund --loglevel=error

# The oldest TensorFlow that a TF Serving loading our exports is built on (tests/test_oldest_tf.py):
# a throwaway venv with tensorflow-cpu 2.12.0 from PyPI, the oldest with a Python 3.11 wheel
# (about 1.5 min and 1.7 GB). It needs a Python 3.11 (no cp312 wheel exists for 2.12).
oldest_tf=2.12.0
if [ ! -x .venv-oldest-tf/bin/python ] || \
   ! .venv-oldest-tf/bin/python -c "import tensorflow as t; assert t.__version__ == '$oldest_tf'" 2>/dev/null; then
  py311=$(command -v python3.11 || true)
  if [ -z "$py311" ] && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    py311=$(command -v python3)
  fi
  if [ -z "$py311" ]; then
    echo "install.sh: tensorflow-cpu==$oldest_tf needs a Python 3.11 (python3.11 not found)" >&2
    exit 1
  fi
  rm -rf .venv-oldest-tf
  "$py311" -m venv .venv-oldest-tf
  .venv-oldest-tf/bin/python -m pip install -q "tensorflow-cpu==$oldest_tf"
fi
echo "install.sh: done"
