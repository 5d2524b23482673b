#!/usr/bin/env bash
# The readers the Parquet tests check raygent's output with: DuckDB,
# pyarrow and polars, in the python3 the tests run.
set -euo pipefail
if ! python3 -c 'import duckdb, pyarrow, polars' >/dev/null 2>&1; then
  python3 -m pip install --quiet duckdb pyarrow polars
fi
python3 -c 'import duckdb, pyarrow, polars; print("duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__, "polars", polars.__version__)'
