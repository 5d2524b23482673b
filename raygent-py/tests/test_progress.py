"""The progress bar: text as tqdm shows it, drawn in a terminal, updated by jobs."""

from __future__ import annotations

import io

from raygent import TaskManager
from raygent.progress import ProgressBar, format_bar

from tasks import FlakyTask


def test_format_with_total():
    line = format_bar(250, 1000, 5.0, retries=2)
    assert line.startswith("raygent:  25%|█████")
    assert "250/1000 [00:05<00:15, 50.0 items/s, 2 retries]" in line


def test_format_without_total_and_after_a_resume():
    assert format_bar(1200, None, 2.0) == "raygent: 1200 items [00:02, 600 items/s]"
    # Items an earlier run committed count as done, not in the rate.
    assert "1.0k items/s" in format_bar(3000, 4000, 2.0, start=1000)
    assert "1 failed chunk" in format_bar(10, 10, 1.0, failed=1)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_bar_is_redrawn_in_place():
    out = FakeTerminal()
    bar = ProgressBar(100, stream=out, min_interval=0)
    assert bar.mode == "terminal"
    bar.update(10)
    bar.update(100, retries=1)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "100/100" in text and "1 retry" in text


def test_no_bar_when_not_a_terminal():
    bar = ProgressBar(100, stream=io.StringIO())
    assert bar.mode == "off"


def test_a_job_draws_its_bar(tmp_path, capfd):
    m = TaskManager(FlakyTask, use_ray=True, n_cores=2)
    m.submit_tasks(range(30), chunk_size=3, progress=True, kwargs_task={"marker_dir": str(tmp_path)})
    err = capfd.readouterr().err
    assert "30/30" in err and "100%" in err
    assert "5 retries" in err  # items 0, 7, 14, 21, 28


def test_notebook_bar_updates_one_output_in_place(monkeypatch):
    """Inside Jupyter (a ZMQInteractiveShell) the bar is one display output,
    updated in place (IPython's display with a display_id)."""
    import sys
    import types

    calls = []

    class Handle:
        def update(self, obj, raw=False):
            calls.append(("update", obj["text/plain"]))

    def display(obj, raw=False, display_id=False):
        calls.append(("display", obj["text/plain"]))
        assert display_id is True
        return Handle()

    class ZMQInteractiveShell:
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display
    ipython.display = ipython_display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)

    bar = ProgressBar(10, stream=io.StringIO(), min_interval=0)
    assert bar.mode == "notebook"
    bar.update(5)
    bar.update(10, retries=2)
    bar.close()
    assert [c[0] for c in calls] == ["display", "update", "update"]
    assert "10/10" in calls[-1][1] and "2 retries" in calls[-1][1]
