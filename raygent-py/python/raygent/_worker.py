"""A worker process of ``TaskManager(..., use_ray=True)``.

Started by the runtime as ``python -m raygent._worker`` (a fresh
interpreter: spawned, never forked from the driver), it reads the task's
spec file named by ``RAYGENT_PY_SPEC``, makes one task instance and serves
chunks on stdin/stdout as length-delimited CBOR frames until stdin closes.
Anything the task prints goes to stderr, whose last lines raygent quotes
when a chunk fails. An exception in the task fails that chunk (the
worker goes on); anything that kills the process fails it too, and the
runtime starts a new worker.
"""

from __future__ import annotations

import os
import pickle
import sys


def main() -> None:
    path = os.environ.get("RAYGENT_PY_SPEC")
    if not path:
        sys.exit("raygent._worker is started by raygent's TaskManager (RAYGENT_PY_SPEC is not set)")
    with open(path, "rb") as f:
        header, payload = pickle.load(f)
    # The driver's import path first, so the task's module imports the same way.
    seen = set(header["sys_path"])
    sys.path[:] = list(header["sys_path"]) + [p for p in sys.path if p not in seen]
    task_class, kwargs_task, at_once = pickle.loads(payload)
    instance = task_class()
    from . import _native

    _native.serve(instance, kwargs_task, at_once, header.get("results", "auto"))


if __name__ == "__main__":
    main()
