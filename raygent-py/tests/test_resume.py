"""Exact resume: the Python driver is killed with SIGKILL at random
instants, then the same job run again finishes with exactly the output of
an uninterrupted run: every item once, in input order. On a local
directory and on S3 (moto)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from fractions import Fraction

import pytest

from raygent import DatasetReader, DatasetSaver, JobMismatchError, Saver, TaskManager

from conftest import popen_script, run_script, wait_for, workers_of
from tasks import NumberSquareTask, SlowSquare

N = 1500
EXPECTED = [{"x": x, "sq": x * x, "t": (x, str(x))} for x in range(N)]


def kill_and_resume(url, mode, kind="dataset", kills=3, seed=None):
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    killed_running = 0
    for k in range(kills):
        proc = popen_script(["driver.py", url, mode, str(N), kind], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().startswith("STARTED"), f"seed {seed}"
        time.sleep(rng.uniform(0.05, 1.2))
        killed_running += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # The kernel kills the workers with the driver (PR_SET_PDEATHSIG).
        wait_for(lambda: not workers_of(proc.pid), 30, f"the workers of {proc.pid} to die (seed {seed})")
        proc.stdout.close()
    assert killed_running, f"seed {seed}: every run had finished before its kill"
    done = run_script(["driver.py", url, mode, str(N), kind])
    assert done.returncode == 0, f"seed {seed}: {done.stderr}"
    assert "\nDONE " in done.stdout, f"seed {seed}: {done.stdout}"
    return seed


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_sigkill_then_rerun_on_a_local_directory(tmp_path, mode):
    url = str(tmp_path / "out")
    seed = kill_and_resume(url, mode)
    reader = DatasetReader(url)
    assert reader.complete, f"seed {seed}"
    assert list(reader) == EXPECTED, f"seed {seed}"


def test_sigkill_then_rerun_on_s3(bucket):
    url = f"s3://{bucket}/job/out"
    seed = kill_and_resume(url, "parallel")
    reader = DatasetReader(url)
    assert reader.complete, f"seed {seed}"
    assert list(reader) == EXPECTED, f"seed {seed}"


def test_sigkill_then_rerun_with_a_python_saver(tmp_path):
    url = str(tmp_path / "py")
    seed = kill_and_resume(url, "parallel", kind="jsonfile")
    with open(os.path.join(url, "results.jsonl")) as f:
        saved = [json.loads(line) for line in f]
    # JSON has no tuples.
    assert saved == [{"x": x, "sq": x * x, "t": [x, str(x)]} for x in range(N)], f"seed {seed}"


def test_ctrl_c_commits_and_a_rerun_resumes(tmp_path):
    url = str(tmp_path / "out")
    proc = popen_script(["driver.py", url, "parallel", str(N)], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("STARTED")
    # Wait until something is committed, then interrupt.
    wait_for(lambda: os.path.isdir(os.path.join(url, "_manifest")) and os.listdir(os.path.join(url, "_manifest")),
             60, "a first committed part")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    committed = len(DatasetReader(url))
    assert committed > 0
    done = run_script(["driver.py", url, "parallel", str(N)])
    assert done.returncode == 0, done.stderr
    resumed = int(done.stdout.split("DONE ")[1].split()[0])
    assert resumed * 10 >= committed  # what was committed is not run again
    assert list(DatasetReader(url)) == EXPECTED


def test_a_finished_job_run_again_does_nothing(tmp_path):
    url = str(tmp_path / "out")
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    m.submit_tasks(range(100), chunk_size=10, saver=DatasetSaver(url), checkpoint=True)
    again = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    again.submit_tasks(range(100), chunk_size=10, saver=DatasetSaver(url), checkpoint=True)
    assert again.report["resumed_chunks"] == 10 and again.get_results() == []
    assert list(DatasetReader(url)) == [x * x for x in range(100)]


def test_a_different_job_on_the_same_output_is_refused(tmp_path):
    url = str(tmp_path / "out")
    TaskManager(NumberSquareTask).submit_tasks(range(100), chunk_size=10, saver=DatasetSaver(url), checkpoint=True)
    with pytest.raises(JobMismatchError) as info:
        TaskManager(NumberSquareTask).submit_tasks(range(100), chunk_size=20, saver=DatasetSaver(url),
                                                   checkpoint=True)
    assert any("chunk size" in d for d in info.value.differences)
    # fresh=True starts over.
    m = TaskManager(NumberSquareTask)
    m.submit_tasks(range(50), chunk_size=20, saver=DatasetSaver(url), checkpoint=True, fresh=True)
    assert list(DatasetReader(url)) == [x * x for x in range(50)]


@pytest.mark.parametrize("first,second", [("sequential", "parallel"), ("parallel", "sequential")])
@pytest.mark.parametrize("kind", ["plain", "pickled"])
def test_the_input_fingerprint_is_the_same_in_both_modes(tmp_path, first, second, kind):
    # Plain data crosses as CBOR, anything else as one pickle per chunk:
    # either way a job checkpointed in one mode resumes in the other, and
    # a changed item is still caught.
    items = list(range(100)) if kind == "plain" else [Fraction(x, 3) for x in range(100)]
    url = str(tmp_path / "out")

    def run(mode, data):
        m = TaskManager(NumberSquareTask, use_ray=mode == "parallel", n_cores=2)
        m.submit_tasks(iter(data), chunk_size=10, saver=DatasetSaver(url), checkpoint=True)
        return m

    run(first, items)
    again = run(second, items)
    assert again.report["resumed_chunks"] == 10 and again.get_results() == []
    assert list(DatasetReader(url)) == [x * x for x in items]
    changed = items[:55] + [items[55] + 1] + items[56:]
    with pytest.raises(JobMismatchError) as info:
        run(first, changed)
    assert any("fingerprint" in d for d in info.value.differences)


def test_checkpoint_elsewhere(tmp_path, bucket):
    out = f"s3://{bucket}/out"
    ck = str(tmp_path / "ck")
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    m.submit_tasks(range(100), chunk_size=10, saver=DatasetSaver(out), checkpoint=ck)
    assert os.listdir(ck)
    again = TaskManager(NumberSquareTask)
    again.submit_tasks(range(100), chunk_size=10, saver=DatasetSaver(out), checkpoint=ck)
    assert again.report["resumed_chunks"] == 10


def test_a_saver_that_cannot_resume_is_refused_for_checkpoints(tmp_path):
    class Appender(Saver):
        def save(self, data, indices=None, **kwargs):
            pass

    with pytest.raises(ValueError, match=r"Appender cannot be checkpointed.*resume\(next_index\)"):
        TaskManager(NumberSquareTask).submit_tasks(range(10), saver=Appender(), checkpoint=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="checkpoint=True keeps the checkpoint next to a DatasetSaver"):
        TaskManager(NumberSquareTask).submit_tasks(range(10), saver=Appender(), checkpoint=True)
    with pytest.raises(ValueError, match="checkpoint needs a saver"):
        TaskManager(NumberSquareTask).submit_tasks(range(10), checkpoint=True)
