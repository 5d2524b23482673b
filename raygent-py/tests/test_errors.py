"""Bad arguments raise clear TypeErrors and ValueErrors, before any work."""

from __future__ import annotations

import threading

import pytest

from raygent import DatasetReader, DatasetSaver, InputError, Task, TaskManager

from tasks import NumberSquareTask


@pytest.mark.parametrize("kwargs,error,match", [
    ({"task_class": 5}, TypeError, "task_class must be a class or a callable"),
    ({"n_cores": "4"}, TypeError, "n_cores must be an int"),
    ({"n_cores_worker": 0}, ValueError, "n_cores_worker must be at least 1"),
    ({"n_cores_worker": 1.5}, TypeError, "n_cores_worker must be an int"),
    ({"use_ray": "yes"}, TypeError, "use_ray must be True or False"),
    ({"result_handler": 3}, TypeError, "result_handler must have an add_chunk"),
])
def test_bad_manager_arguments(kwargs, error, match):
    args = {"task_class": NumberSquareTask, **kwargs}
    with pytest.raises(error, match=match):
        TaskManager(**args)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"items": 5}, TypeError, "items must be a list"),
    ({"items": "abc"}, TypeError, "items must be a list"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be at least 1"),
    ({"chunk_size": "10"}, TypeError, "chunk_size must be an int"),
    ({"chunk_size": True}, TypeError, "chunk_size must be an int"),
    ({"save_interval": 0}, ValueError, "save_interval must be at least 1"),
    ({"at_once": 1}, TypeError, "at_once must be True or False"),
    ({"kwargs_task": [1]}, TypeError, "kwargs_task must be a dict"),
    ({"kwargs_remote": {"num_cpus": 2}}, ValueError, "num_cpus"),
    ({"saver": object()}, TypeError, "saver must have a save"),
    ({"retries": -1}, ValueError, "retries must be an int >= 0"),
    ({"on_failure": "ignore"}, ValueError, "on_failure must be 'abort' or 'skip'"),
    ({"timeout": 5}, ValueError, "use_ray=True"),
    ({"memory_limit": "lots"}, ValueError, "not a size"),
    ({"checkpoint": 3, "saver": DatasetSaver("unused")}, TypeError, "checkpoint must be"),
    ({"progress": "yes"}, TypeError, "progress must be"),
])
def test_bad_submit_arguments(kwargs, error, match):
    args = {"items": [1, 2, 3], **kwargs}
    manager = TaskManager(NumberSquareTask)
    with pytest.raises(error, match=match):
        manager.submit_tasks(**args)
    assert manager.get_results() == []


def test_bad_parallel_arguments():
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        m.submit_tasks([1], timeout=0)
    with pytest.raises(ValueError, match="memory_limit must be positive"):
        m.submit_tasks([1], memory_limit="0G")


def test_bad_saver_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        DatasetSaver(str(tmp_path), format="xml")
    with pytest.raises(TypeError, match="url must be a path"):
        DatasetSaver(3)
    with pytest.raises(ValueError, match="url is empty"):
        DatasetSaver(" ")
    with pytest.raises(ValueError, match="unknown scheme|ftp"):
        TaskManager(NumberSquareTask).submit_tasks([1], saver=DatasetSaver("ftp://host/x"))
    with pytest.raises(ValueError, match="unknown S3 option"):
        DatasetReader("s3://b/x", s3={"colour": "red"})


def test_an_item_that_cannot_reach_a_worker_is_an_input_error():
    items = [1, 2, threading.Lock(), 4]
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    with pytest.raises(InputError, match="must be picklable") as info:
        m.submit_tasks(items, chunk_size=1)
    assert info.value.item == 2
    assert m.get_results() == [1, 4]  # what came before was done


def test_an_input_iterator_that_raises():
    def gen():
        yield 1
        yield 2
        raise OSError("disk on fire")

    m = TaskManager(NumberSquareTask)
    with pytest.raises(InputError, match="disk on fire") as info:
        m.submit_tasks(gen(), chunk_size=1)
    assert isinstance(info.value.__cause__, OSError)
    assert m.get_results() == [1, 4]


def test_a_task_class_that_cannot_be_sent_to_workers():
    lock = threading.Lock()
    m = TaskManager(NumberSquareTask, use_ray=True, n_cores=2)
    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        m.submit_tasks([1], kwargs_task={"lock": lock})


def test_a_result_handler_that_raises_stops_the_job():
    calls = []

    def handler(results):
        calls.append(results)
        if len(calls) == 2:
            raise RuntimeError("handler broke")

    m = TaskManager(NumberSquareTask, result_handler=handler)
    with pytest.raises(RuntimeError, match="handler broke"):
        m.submit_tasks(range(100), chunk_size=10)
    assert len(calls) == 2


def test_a_task_without_process_item():
    class Empty(Task):
        pass

    m = TaskManager(Empty)
    with pytest.raises(Exception, match="must implement process_item"):
        m.submit_tasks([1], retries=0)


def test_kwargs_remote_warns_about_ray_only_options():
    m = TaskManager(NumberSquareTask)
    with pytest.warns(RuntimeWarning, match="num_gpus"):
        m.submit_tasks([1, 2], kwargs_remote={"num_gpus": 1, "max_retries": 1})
    assert m.get_results() == [1, 4]
