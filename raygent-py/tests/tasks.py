"""Tasks shared by the tests: importable by worker processes by name."""

from __future__ import annotations

import ctypes
import os
import signal
import time

from raygent import Task


class NumberSquareTask(Task):
    def process_item(self, item):
        return item ** 2


class BatchSquareTask(Task):
    """Squares a whole chunk at once and says how big each chunk was."""

    def process_items(self, items, tag="batch"):
        return [(x * x, len(items), tag) for x in items]


class ScaleTask(Task):
    def process_item(self, item, factor=1, offset=0):
        return item * factor + offset


def _first_attempt(marker_dir, key):
    """True exactly once per key (a file records that it happened)."""
    path = os.path.join(marker_dir, f"attempt-{key}")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class FlakyTask(Task):
    """Raises on the first attempt at every item divisible by 7."""

    def process_item(self, item, marker_dir=None):
        if item % 7 == 0 and _first_attempt(marker_dir, item):
            raise RuntimeError(f"flaky failure on {item}")
        return item + 1000


class SegfaultTask(Task):
    """Kills its own process with SIGSEGV on the first attempt at items divisible by 11."""

    def process_item(self, item, marker_dir=None):
        if item % 11 == 0 and _first_attempt(marker_dir, item):
            os.kill(os.getpid(), signal.SIGSEGV)
        return -item


class NullDerefTask(Task):
    """A real segfault: reads address 0 through ctypes on the first attempt at item 5."""

    def process_item(self, item, marker_dir=None):
        if item == 5 and _first_attempt(marker_dir, item):
            ctypes.string_at(0)
        return item


class ExitTask(Task):
    """Exits the worker with code 3 on the first attempt at item 4."""

    def process_item(self, item, marker_dir=None):
        if item == 4 and _first_attempt(marker_dir, item):
            os._exit(3)
        return item


class HangTask(Task):
    """Hangs on the first attempt at item 3 (until the chunk timeout kills it)."""

    def process_item(self, item, marker_dir=None):
        if item == 3 and _first_attempt(marker_dir, item):
            while True:
                time.sleep(1)
        return item


class AlwaysFails(Task):
    def process_item(self, item):
        if item == 42:
            raise ValueError(f"cannot handle {item}")
        return item


class PidTask(Task):
    def process_item(self, item):
        return (item, os.getpid())


class SlowSquare(Task):
    """About a millisecond per item, so a job lasts long enough to be killed."""

    def process_item(self, item, delay=0.001):
        time.sleep(delay)
        return {"x": item, "sq": item * item, "t": (item, str(item))}
