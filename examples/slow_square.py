#!/usr/bin/env python3
"""Like square.py, but takes a millisecond per item: a job over
examples/numbers.txt lasts a few seconds, long enough to interrupt it
(Ctrl-C, kill -9) and watch the same command resume it."""
import sys
import time

for line in sys.stdin:
    time.sleep(0.001)
    print(int(line) ** 2)
