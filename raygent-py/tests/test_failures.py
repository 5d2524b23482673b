"""Failures cost chunk attempts, as in the CLI: a task that raises, a worker
that segfaults, exits or hangs; a chunk that fails for good raises
ChunkFailedError with the chunk, its items and the worker's last error."""

from __future__ import annotations

import pytest

from raygent import ChunkFailedError, TaskManager

from conftest import wait_for, workers_of
import os

from tasks import AlwaysFails, ExitTask, FlakyTask, HangTask, NullDerefTask, SegfaultTask


@pytest.mark.parametrize("use_ray", [False, True])
def test_a_task_that_raises_is_retried(tmp_path, use_ray):
    manager = TaskManager(FlakyTask, use_ray=use_ray, n_cores=2)
    manager.submit_tasks(range(60), chunk_size=5, kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == [x + 1000 for x in range(60)]
    assert manager.report["retries"] == 9  # items 0, 7, ..., 56 each fail once
    assert manager.report["failures"] == ({"task error": 9} if use_ray else {"error": 9})


def test_a_worker_that_kills_itself_with_sigsegv_is_retried(tmp_path):
    manager = TaskManager(SegfaultTask, use_ray=True, n_cores=2)
    manager.submit_tasks(range(50), chunk_size=4, kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == [-x for x in range(50)]
    assert manager.report["failures"] == {"worker killed by signal": 5}  # 0, 11, 22, 33, 44
    assert manager.report["retries"] == 5


def test_a_real_segfault_is_retried(tmp_path):
    manager = TaskManager(NullDerefTask, use_ray=True, n_cores=2)
    manager.submit_tasks(range(10), chunk_size=3, kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == list(range(10))
    assert manager.report["failures"] == {"worker killed by signal": 1}


def test_a_worker_that_exits_is_retried(tmp_path):
    manager = TaskManager(ExitTask, use_ray=True, n_cores=2)
    manager.submit_tasks(range(10), chunk_size=3, kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == list(range(10))
    assert manager.report["failures"] == {"worker exited": 1}


def test_a_hung_worker_is_killed_after_the_timeout_and_retried(tmp_path):
    manager = TaskManager(HangTask, use_ray=True, n_cores=2)
    manager.submit_tasks(range(8), chunk_size=2, timeout=3, kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == list(range(8))
    assert manager.report["failures"] == {"timeout": 1}


@pytest.mark.parametrize("use_ray", [False, True])
def test_a_chunk_that_fails_for_good_raises_with_its_items(use_ray):
    manager = TaskManager(AlwaysFails, use_ray=use_ray, n_cores=2)
    with pytest.raises(ChunkFailedError) as info:
        manager.submit_tasks(range(100), chunk_size=10, retries=1)
    e = info.value
    assert (e.chunk, e.start, e.end, e.attempts) == (4, 40, 50, 2)
    assert e.items == list(range(40, 50))
    assert "ValueError: cannot handle 42" in e.last_error
    assert "Traceback" in e.last_error
    assert "chunk 4 (items 40..50) failed after 2 attempt(s)" in str(e)
    # Everything before the failed chunk was completed and kept.
    assert manager.get_results()[:40] == list(range(40))


def test_skip_records_the_failed_chunk_and_goes_on():
    manager = TaskManager(AlwaysFails, use_ray=True, n_cores=2)
    manager.submit_tasks(range(100), chunk_size=10, retries=0, on_failure="skip")
    assert manager.get_results() == [x for x in range(100) if not 40 <= x < 50]
    [failed] = manager.report["failed_chunks"]
    assert (failed["chunk"], failed["start"], failed["end"]) == (4, 40, 50)
    assert "cannot handle 42" in failed["error"]


def test_no_worker_is_left_after_a_job(tmp_path):
    manager = TaskManager(SegfaultTask, use_ray=True, n_cores=2)
    manager.submit_tasks(range(30), chunk_size=4, kwargs_task={"marker_dir": str(tmp_path)})
    wait_for(lambda: not workers_of(os.getpid()), 30, "the workers to be gone")


class MemoryHog:
    """Allocates far past the worker's memory limit on the first attempt."""

    def process_item(self, item, marker_dir=None):
        from tasks import _first_attempt

        if item == 2 and _first_attempt(marker_dir, item):
            blob = bytearray(4 << 30)
            return len(blob)
        return item


def test_a_worker_past_its_memory_limit_costs_an_attempt(tmp_path):
    manager = TaskManager(MemoryHog, use_ray=True, n_cores=2)
    manager.submit_tasks(range(6), chunk_size=2, memory_limit="1G", kwargs_task={"marker_dir": str(tmp_path)})
    assert manager.get_results() == list(range(6))
    assert manager.report["retries"] == 1
