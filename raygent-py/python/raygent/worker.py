"""Run a Python function as a ``raygent run`` worker, with no stdin loop to write.

::

    raygent run -i items.jsonl --input-format jsonl -o out -- python -m raygent.worker mymodule:function

The worker speaks raygent's line protocol (docs/workers.md): it reads one
record per line on stdin and writes exactly one line per record on stdout,
in order. Each record is decoded as JSON when it is JSON (``42``,
``{"a": 1}``, ``"text"``) and passed as the string otherwise; the result
is written as compact JSON (``--output text`` writes ``str(result)``
instead). Anything the function prints goes to stderr, so it cannot break
the protocol. An exception ends the worker with its traceback on stderr:
raygent fails that chunk's attempt, quotes the traceback, starts a new
worker and retries the chunk.

``mymodule`` is imported from the current directory or ``sys.path``; it
may also be a file path (``./jobs/score.py:score``). ``--input text``
passes every line as a string, ``--input json`` requires JSON. ``--init
module:function`` calls a function once before the first record (to load
a model, say).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Optional


def load(spec: str) -> Callable[..., Any]:
    """``module:function`` (or ``path/to/file.py:function``) -> the function."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"raygent.worker: expected module:function, got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = os.path.abspath(module_name)
        if not os.path.exists(path):
            raise SystemExit(f"raygent.worker: no such file {path}")
        name = os.path.splitext(os.path.basename(path))[0]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise SystemExit(f"raygent.worker: cannot import {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"raygent.worker: {module_name} has no {attr!r}") from None
    if not callable(obj):
        raise SystemExit(f"raygent.worker: {spec} is not callable")
    return obj


def decode(line: str, mode: str) -> Any:
    if mode == "text":
        return line
    try:
        return json.loads(line)
    except ValueError:
        if mode == "json":
            raise ValueError(f"the record is not JSON: {line[:200]!r}") from None
        return line


def encode(result: Any, mode: str) -> str:
    text = str(result) if mode == "text" else json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    if "\n" in text or "\r" in text:
        raise ValueError("the result holds a newline, which the line protocol cannot carry; "
                         "return JSON-able data (the default --output json escapes it)")
    return text


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m raygent.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("function", help="module:function (or path/to/file.py:function)")
    ap.add_argument("--input", choices=("auto", "json", "text"), default="auto",
                    help="how records are decoded (default auto: JSON when it parses, else the string)")
    ap.add_argument("--output", choices=("json", "text"), default="json",
                    help="how results are written (default json)")
    ap.add_argument("--init", default=None, help="module:function called once before the first record")
    args = ap.parse_args(argv)

    # The protocol owns the real stdout; print() in user code goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n")
    sys.stdout = sys.stderr
    if args.init:
        load(args.init)()
    func = load(args.function)
    for raw in sys.stdin:
        line = raw[:-1] if raw.endswith("\n") else raw
        if line.endswith("\r"):
            line = line[:-1]
        result = func(decode(line, args.input))
        out.write(encode(result, args.output) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
