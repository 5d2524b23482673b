"""DatasetSaver (local and S3, cbor/jsonl/csv), DatasetReader, HDF5Saver."""

from __future__ import annotations

import glob
import os
from fractions import Fraction

import pytest

from raygent import (DatasetNotFoundError, DatasetReader, DatasetSaver, HDF5Saver, SaveError, Task,
                     TaskManager)

from tasks import NumberSquareTask, SlowSquare


class Mixed(Task):
    def process_item(self, item):
        return {"i": item, "t": (item, "a"), "none": None, "f": item / 4, "b": b"\x00\xff",
                "big": 2 ** 70 + item, "frac": Fraction(item, 7), "nested": [[item], {"k": True}]}


@pytest.mark.parametrize("use_ray", [False, True])
def test_cbor_dataset_round_trips_any_picklable_result(tmp_path, use_ray):
    url = str(tmp_path / "out")
    m = TaskManager(Mixed, use_ray=use_ray, n_cores=2)
    m.submit_tasks(range(95), chunk_size=10, saver=DatasetSaver(url), save_interval=25)
    reader = DatasetReader(url)
    assert reader.complete and len(reader) == 95 and reader.format == "cbor"
    assert [p[:2] for p in reader.parts] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert list(reader) == [Mixed().process_item(i) for i in range(95)] == m.get_results()


def test_dataset_on_s3(bucket):
    url = f"s3://{bucket}/squares"
    m = TaskManager(SlowSquare, use_ray=True, n_cores=2)
    m.submit_tasks(range(300), chunk_size=20, saver=DatasetSaver(url), save_interval=50,
                   kwargs_task={"delay": 0})
    assert list(DatasetReader(url)) == [{"x": x, "sq": x * x, "t": (x, str(x))} for x in range(300)]


def test_jsonl_dataset_is_read_by_duckdb(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    url = str(tmp_path / "out")
    m = TaskManager(SlowSquare, use_ray=True, n_cores=2)
    m.submit_tasks(range(200), chunk_size=10, saver=DatasetSaver(url, format="jsonl"), save_interval=30,
                   kwargs_task={"delay": 0})
    parts = sorted(glob.glob(os.path.join(url, "part-*.jsonl")))
    assert len(parts) == 7
    rows = duckdb.sql(
        f"select x, sq, t from read_json_auto({parts!r}) order by x").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(x, x * x) for x in range(200)]
    # A tuple is an array in JSON.
    assert list(DatasetReader(url))[3] == {"x": 3, "sq": 9, "t": [3, "3"]}


def test_csv_dataset(tmp_path):
    class Row(Task):
        def process_item(self, item):
            return {"name": f"n{item}", "value": item}

    url = str(tmp_path / "out")
    TaskManager(Row).submit_tasks(range(20), chunk_size=5, saver=DatasetSaver(url, format="csv"), save_interval=5)
    with open(sorted(glob.glob(os.path.join(url, "part-*.csv")))[0]) as f:
        assert f.readline().strip() == "name,value"
    assert [r["value"] for r in DatasetReader(url)] == list(range(20))


def test_jsonl_refuses_results_that_are_not_plain_data(tmp_path):
    url = str(tmp_path / "out")
    m = TaskManager(Mixed)
    with pytest.raises(SaveError, match='not plain data.*format="cbor"'):
        m.submit_tasks(range(10), saver=DatasetSaver(url, format="jsonl"))


def test_a_dataset_is_not_overwritten_without_overwrite(tmp_path):
    url = str(tmp_path / "out")
    TaskManager(NumberSquareTask).submit_tasks(range(10), saver=DatasetSaver(url))
    with pytest.raises(SaveError, match="already holds"):
        TaskManager(NumberSquareTask).submit_tasks(range(5), saver=DatasetSaver(url))
    TaskManager(NumberSquareTask).submit_tasks(range(5), saver=DatasetSaver(url, overwrite=True))
    assert list(DatasetReader(url)) == [0, 1, 4, 9, 16]


def test_reading_a_missing_dataset(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        DatasetReader(str(tmp_path / "nothing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError):
        DatasetReader(str(tmp_path / "empty"))


def test_hdf5_saver_appends_and_resumes(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = str(tmp_path / "r.h5")
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    m.submit_tasks(range(100), chunk_size=10, saver=HDF5Saver(path, "sq"), save_interval=20,
                   checkpoint=str(tmp_path / "ck"))
    with h5py.File(path, "r") as f:
        assert f["sq"][:].tolist() == [x * x for x in range(100)]
    # Rows past a resume point are cut back.
    s = HDF5Saver(path, "sq")
    s.resume(40)
    with h5py.File(path, "r") as f:
        assert f["sq"].shape == (40,)
    with pytest.raises(ValueError, match="fewer than"):
        s.resume(41)
    with pytest.raises(ValueError, match="already holds 40 rows"):
        s.check_empty()
