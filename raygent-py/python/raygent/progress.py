"""A progress bar for jobs: in a terminal (on stderr) and in Jupyter.

Shows done/total, the rate, the time left and the retries, like tqdm::

    raygent:  42%|█████▉        | 4200/10000 [00:03<00:04, 1.3k items/s, 2 retries]
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

_WIDTH = 20


def _in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _rate(r: float) -> str:
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if r >= div:
            return f"{r / div:.1f}{unit}"
    return f"{r:.1f}" if r < 100 else f"{r:.0f}"


def format_bar(done: int, total: Optional[int], elapsed: float, retries: int = 0,
               failed: int = 0, start: int = 0, desc: str = "raygent") -> str:
    """One line of the bar (also used for Jupyter's text)."""
    run = max(0, done - start)
    rate = run / elapsed if elapsed > 0 else 0.0
    extra = ""
    if retries:
        extra += f", {retries} retr{'y' if retries == 1 else 'ies'}"
    if failed:
        extra += f", {failed} failed chunk{'' if failed == 1 else 's'}"
    if total:
        frac = min(1.0, done / total)
        full = int(frac * _WIDTH)
        part = " ▏▎▍▌▋▊▉"[int((frac * _WIDTH - full) * 8)] if full < _WIDTH else ""
        bar = ("█" * full + part).ljust(_WIDTH)
        left = (total - done) / rate if rate > 0 else 0.0
        eta = _clock(left) if rate > 0 else "?"
        return (f"{desc}: {frac * 100:3.0f}%|{bar}| {done}/{total} "
                f"[{_clock(elapsed)}<{eta}, {_rate(rate)} items/s{extra}]")
    return f"{desc}: {done} items [{_clock(elapsed)}, {_rate(rate)} items/s{extra}]"


class ProgressBar:
    """Updated by the job about ten times a second; :meth:`close` at the end.

    ``mode`` is ``"terminal"`` (a line redrawn on ``stream``), ``"notebook"``
    (a Jupyter output updated in place) or ``"auto"``: the notebook inside
    Jupyter, the terminal when ``stream`` is a terminal, nothing otherwise.
    """

    def __init__(self, total: Optional[int], desc: str = "raygent", mode: str = "auto",
                 stream: Any = None, min_interval: float = 0.1):
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            if _in_notebook():
                mode = "notebook"
            elif hasattr(self.stream, "isatty") and self.stream.isatty():
                mode = "terminal"
            else:
                mode = "off"
        self.mode = mode
        self.min_interval = min_interval
        self.started = time.monotonic()
        self.start: Optional[int] = None
        self.last = 0.0
        self.done = 0
        self.retries = 0
        self.failed = 0
        self._handle = None
        self._width = 0

    def text(self) -> str:
        return format_bar(self.done, self.total, time.monotonic() - self.started,
                          self.retries, self.failed, self.start or 0, self.desc)

    def update(self, done: int, retries: int = 0, failed: int = 0, force: bool = False) -> None:
        if self.start is None:
            # Items an earlier run committed count as done, not in the rate.
            self.start = done
        self.done, self.retries, self.failed = done, retries, failed
        now = time.monotonic()
        if self.mode == "off" or (not force and now - self.last < self.min_interval):
            return
        self.last = now
        self._draw()

    def _draw(self) -> None:
        line = self.text()
        if self.mode == "terminal":
            try:
                cols = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError, AttributeError):
                cols = 100
            line = line[: max(10, cols - 1)]
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        elif self.mode == "notebook":
            try:
                from IPython.display import display
                if self._handle is None:
                    self._handle = display({"text/plain": line}, raw=True, display_id=True)
                else:
                    self._handle.update({"text/plain": line}, raw=True)
            except Exception:
                self.mode = "off"

    def close(self) -> None:
        if self.mode == "off":
            return
        self._draw()
        if self.mode == "terminal":
            self.stream.write("\n")
            self.stream.flush()

    # The job calls the bar as a function.
    def __call__(self, done: int, retries: int = 0, failed: int = 0) -> None:
        self.update(done, retries, failed)
