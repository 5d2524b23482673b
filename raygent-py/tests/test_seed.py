"""The seed's examples (001 TaskManager, 000 Saver), as the seed writes them."""

from __future__ import annotations

import os

import pytest

from raygent import ListResultHandler, ResultHandler, Saver, Task, TaskManager

from tasks import BatchSquareTask, NumberSquareTask, ScaleTask


def test_get_results_example():
    # Create a task manager and submit tasks
    manager = TaskManager(NumberSquareTask)
    manager.submit_tasks([1, 2, 3, 4, 5])

    # Retrieve and use results
    results = manager.get_results()
    assert results == [1, 4, 9, 16, 25]

    # Results can be processed further
    sum_of_squares = sum(results)  # 55
    assert sum_of_squares == 55


def test_sequential_processing_example():
    # Create a task manager for sequential processing
    manager = TaskManager(NumberSquareTask, use_ray=False)

    # Process items without saving results
    manager.submit_tasks([1, 2, 3, 4, 5])
    results = manager.get_results()  # [1, 4, 9, 16, 25]
    assert results == [1, 4, 9, 16, 25]


def test_parallel_processing_example():
    manager = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    manager.submit_tasks([1, 2, 3, 4, 5])
    assert manager.get_results() == [1, 4, 9, 16, 25]


def test_task_defined_in_the_test_module_travels_by_value():
    class LocalSquare(Task):  # not importable: cloudpickle sends it by value
        def process_item(self, item):
            return item ** 2

    manager = TaskManager(LocalSquare, use_ray=True, n_cores=2)
    manager.submit_tasks(list(range(50)), chunk_size=7)
    assert manager.get_results() == [x * x for x in range(50)]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 10, 64, 100, 999, 1000, 5000])
def test_sequential_and_parallel_agree(chunk_size):
    items = list(range(-300, 700))
    seq = TaskManager(NumberSquareTask, use_ray=False)
    seq.submit_tasks(items, chunk_size=chunk_size)
    par = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    par.submit_tasks(items, chunk_size=chunk_size)
    assert seq.get_results() == par.get_results() == [x * x for x in items]


@pytest.mark.parametrize("use_ray", [False, True])
def test_at_once_processes_whole_chunks(use_ray):
    manager = TaskManager(BatchSquareTask, use_ray=use_ray, n_cores=2)
    manager.submit_tasks(list(range(10)), chunk_size=4, at_once=True, kwargs_task={"tag": "t"})
    assert manager.get_results() == [(x * x, 4 if x < 8 else 2, "t") for x in range(10)]


@pytest.mark.parametrize("use_ray", [False, True])
def test_kwargs_task_reach_the_task(use_ray):
    manager = TaskManager(ScaleTask, use_ray=use_ray, n_cores=2)
    manager.submit_tasks(range(20), chunk_size=3, kwargs_task={"factor": 3, "offset": 1})
    assert manager.get_results() == [3 * x + 1 for x in range(20)]


@pytest.mark.parametrize("n_cores,n_cores_worker,expected", [(8, 2, 4), (16, 4, 4), (24, 1, 24)])
def test_max_concurrent_tasks(n_cores, n_cores_worker, expected):
    # With 8 total cores and 2 cores per worker -> 4; 16 and 4 -> 4; 24 and 1 -> 24
    manager = TaskManager(NumberSquareTask, n_cores=n_cores, n_cores_worker=n_cores_worker, use_ray=True)
    assert manager.max_concurrent_tasks == expected


def test_max_concurrent_tasks_at_least_one_and_all_cores_by_default():
    assert TaskManager(NumberSquareTask, n_cores=2, n_cores_worker=4).max_concurrent_tasks == 1
    assert TaskManager(NumberSquareTask, use_ray=True, n_cores=-1).max_concurrent_tasks == (os.cpu_count() or 1)
    m = TaskManager(NumberSquareTask)
    assert m.n_cores == (os.cpu_count() or 1) and m.n_cores_worker == 1 and m.use_ray is False
    assert m.futures == [] and isinstance(m.result_handler, ListResultHandler)


def test_results_accumulate_over_submissions():
    manager = TaskManager(NumberSquareTask)
    manager.submit_tasks([1, 2])
    manager.submit_tasks([3])
    assert manager.get_results() == [1, 4, 9] == manager.results


@pytest.mark.parametrize("use_ray", [False, True])
def test_any_picklable_result(use_ray):
    from fractions import Fraction

    class Odd(Task):
        def process_item(self, item):
            return {"n": item, "t": (item, None), "f": Fraction(item, 3), "big": 10 ** 30 + item,
                    "b": bytes([item]), "set": frozenset([item]), 1: [1.5, True]}

    manager = TaskManager(Odd, use_ray=use_ray, n_cores=2)
    manager.submit_tasks(range(30), chunk_size=4)
    assert manager.get_results() == [Odd().process_item(i) for i in range(30)]


@pytest.mark.parametrize("use_ray", [False, True])
def test_result_handler_receives_results_in_order(use_ray):
    class Recorder(ResultHandler):
        def __init__(self):
            self.chunks = []

        def add_chunk(self, chunk_results, chunk_index=None, *args, **kwargs):
            self.chunks.append((chunk_index, list(chunk_results)))

        def get(self):
            return [r for _, c in self.chunks for r in c]

    rec = Recorder()
    manager = TaskManager(NumberSquareTask, result_handler=rec, use_ray=use_ray, n_cores=2)
    manager.submit_tasks(range(100), chunk_size=9)
    assert [i for i, _ in rec.chunks] == list(range(12))
    assert manager.get_results() == [x * x for x in range(100)]


class ListSaver(Saver):
    def __init__(self):
        self.batches = []

    def save(self, data, indices=None, **kwargs):
        self.batches.append((list(data), indices, kwargs))


@pytest.mark.parametrize("use_ray", [False, True])
@pytest.mark.parametrize("chunk_size,save_interval", [(1, 1), (3, 7), (10, 10), (25, 100), (7, 1000)])
def test_saver_gets_batches_of_at_least_save_interval(use_ray, chunk_size, save_interval):
    saver = ListSaver()
    manager = TaskManager(NumberSquareTask, use_ray=use_ray, n_cores=2)
    manager.save_kwargs = {"compression": "gzip", "dtype": "float32"}
    manager.submit_tasks(range(250), chunk_size=chunk_size, saver=saver, save_interval=save_interval)
    sizes = [len(d) for d, _, _ in saver.batches]
    assert all(s >= save_interval for s in sizes[:-1]), sizes
    assert all(s % chunk_size == 0 for s in sizes[:-1]), sizes
    assert [r for d, _, _ in saver.batches for r in d] == [x * x for x in range(250)]
    start = 0
    for data, indices, kwargs in saver.batches:
        assert indices == range(start, start + len(data))
        assert kwargs == {"compression": "gzip", "dtype": "float32"}
        start += len(data)
    assert manager.get_results() == [x * x for x in range(250)]


def test_seed_csv_saver_example(tmp_path):
    # The seed's CSVSaver, with the csv module instead of pandas.
    import csv

    class CSVSaver(Saver):
        def __init__(self, file_path):
            self.file_path = file_path
            self.file_exists = os.path.exists(file_path)

        def save(self, data, indices=None, **kwargs):
            mode = "a" if self.file_exists else "w"
            with open(self.file_path, mode, newline="") as f:
                w = csv.writer(f)
                if not self.file_exists:
                    w.writerow(["value"])
                w.writerows([[x] for x in data])
            self.file_exists = True

    path = tmp_path / "out.csv"
    manager = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    manager.submit_tasks(list(range(55)), saver=CSVSaver(str(path)), save_interval=10, chunk_size=5)
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["value"] and [int(r[0]) for r in rows[1:]] == [x * x for x in range(55)]


def test_seed_hdf5_saver_example(tmp_path):
    h5py = pytest.importorskip("h5py")
    from raygent import HDF5Saver

    path = str(tmp_path / "results.h5")
    # Create a task manager and a saver for results
    manager = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    saver = HDF5Saver(path, dataset_name="analysis_results")
    manager.save_kwargs = {"dtype": "float32"}
    # Process items with saving every 1000 results
    manager.submit_tasks(list(range(3000)), chunk_size=200, saver=saver, save_interval=1000,
                         kwargs_remote={"max_retries": 3})
    with h5py.File(path, "r") as f:
        data = f["analysis_results"][:]
    assert data.dtype.name == "float32"
    assert data.tolist() == [float(x * x) for x in range(3000)]
