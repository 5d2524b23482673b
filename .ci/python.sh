#!/usr/bin/env bash
# The Python package: `pip install .` into a fresh virtual environment (the
# native module is built by maturin, in release), then its pytest suite,
# which imports the installed package. moto_server (for the S3 tests) is
# the one .ci/run installs; the tests start it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet .
"$py" -m pip install --quiet pytest h5py numpy duckdb
echo "python: installed in $(( $(date +%s) - started ))s"
# `raygent run` for the tests of `python -m raygent.worker`.
cargo build --quiet -p raygent-cli
export RAYGENT_BIN="$PWD/target/debug/raygent"
# From the tests' directory: `import raygent` is the installed package.
cd raygent-py/tests
"$py" -m pytest -q -p no:cacheprovider
