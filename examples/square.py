#!/usr/bin/env python3
"""A raygent worker speaking the line protocol, in Python.

raygent writes one item per line on stdin and reads exactly one line per
item from stdout, in the same order. raygent sets PYTHONUNBUFFERED=1, so
print() reaches raygent at once.

    raygent run --input examples/numbers.txt -- python3 examples/square.py
"""
import sys

for line in sys.stdin:
    x = int(line)
    print(x * x)
