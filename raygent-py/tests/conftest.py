"""Fixtures of the raygent Python tests: a real S3 server (moto) on
loopback, temporary directories, and helpers to run driver scripts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free loopback port, for the whole session;
    the AWS variables of this process point at it."""
    endpoint = os.environ.get("RAYGENT_TEST_S3_ENDPOINT")
    proc = None
    if not endpoint:
        exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        port = _free_port()
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"

        def up():
            if proc.poll() is not None:
                raise AssertionError(f"moto_server exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        _wait_for(up, 60, "moto_server to listen")
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if proc is not None:
        proc.kill()
        proc.wait()


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket on the test server."""
    name = f"rg-{uuid.uuid4().hex[:12]}"
    req = urllib.request.Request(f"{s3_endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert 200 <= r.status < 300
    return name


def run_script(args, env=None, timeout=300, **kw):
    """Runs a script of this directory (args[0]) with this interpreter."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [full_env.get("PYTHONPATH")] if p])
    if env:
        full_env.update(env)
    args = [str(HERE / args[0]), *args[1:]]
    return subprocess.run([sys.executable, *args], env=full_env, timeout=timeout,
                          capture_output=True, text=True, **kw)


def popen_script(args, env=None, **kw):
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [full_env.get("PYTHONPATH")] if p])
    if env:
        full_env.update(env)
    args = [str(HERE / args[0]), *args[1:]]
    return subprocess.Popen([sys.executable, *args], env=full_env, **kw)


def workers_of(pid: int) -> list:
    """The live (not zombie) worker processes started by driver ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"RAYGENT_PY_PARENT_PID={pid}".encode() in environ and state != "Z":
            found.append(int(entry))
    return found


wait_for = _wait_for
