"""``raygent run -- python -m raygent.worker module:function``: a Python
function as a line-protocol worker, with no stdin loop to write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def raygent_bin() -> str:
    exe = os.environ.get("RAYGENT_BIN") or shutil.which("raygent")
    if not exe:
        for profile in ("debug", "release"):
            cand = REPO / "target" / profile / "raygent"
            if cand.exists():
                exe = str(cand)
                break
    assert exe, "the raygent binary is needed: cargo build -p raygent-cli (or set RAYGENT_BIN)"
    return exe


MODULE = '''
import os

def score(record):
    print("noise on stdout goes to stderr")
    return {"id": record["id"], "len": len(record["text"])}

def square(x):
    return x * x

def flaky(x):
    marker = os.path.join(os.environ["MARKERS"], f"m{x}")
    if x == 7 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt at 7 fails")
    return x + 1
'''


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "jobs.py").write_text(MODULE)
    return tmp_path


def run(workdir, *args, env=None, input=None):
    return subprocess.run(list(args), cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, input=input)


def test_a_function_over_jsonl_records(workdir):
    records = [{"id": i, "text": "x" * i} for i in range(200)]
    (workdir / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    r = run(workdir, raygent_bin(), "run", "-q", "-i", "in.jsonl", "--input-format", "jsonl", "-o", "out",
            "-c", "16", "--", sys.executable, "-m", "raygent.worker", "jobs:score")
    assert r.returncode == 0, r.stderr
    cat = run(workdir, raygent_bin(), "cat", "out")
    assert [json.loads(line) for line in cat.stdout.splitlines()] == [
        {"id": i, "len": i} for i in range(200)]


def test_a_function_that_raises_costs_an_attempt(workdir):
    (workdir / "n.txt").write_text("".join(f"{i}\n" for i in range(20)))
    markers = workdir / "markers"
    markers.mkdir()
    r = run(workdir, raygent_bin(), "run", "-i", "n.txt", "-o", "out", "-c", "5", "--",
            sys.executable, "-m", "raygent.worker", "jobs:flaky", env={"MARKERS": str(markers)})
    assert r.returncode == 0, r.stderr
    assert "1 retries" in r.stderr
    cat = run(workdir, raygent_bin(), "cat", "out")
    assert cat.stdout.split() == [str(i + 1) for i in range(20)]


def test_the_worker_alone(workdir):
    r = run(workdir, sys.executable, "-m", "raygent.worker", "jobs:square", input="3\n4\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "9\n16\n"
    r = run(workdir, sys.executable, "-m", "raygent.worker", str(workdir / "jobs.py") + ":square",
            "--output", "text", input="5\n")
    assert r.stdout == "25\n"
    r = run(workdir, sys.executable, "-m", "raygent.worker", "jobs:square", input="abc\n")
    assert r.returncode != 0 and "TypeError" in r.stderr  # "abc" * "abc"
    r = run(workdir, sys.executable, "-m", "raygent.worker", "jobs:nothing", input="1\n")
    assert r.returncode != 0 and "has no 'nothing'" in r.stderr
    r = run(workdir, sys.executable, "-m", "raygent.worker", "no-colon", input="1\n")
    assert r.returncode != 0 and "expected module:function" in r.stderr
