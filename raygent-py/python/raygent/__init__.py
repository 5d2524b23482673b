"""raygent: long parallel batch jobs that do not lose work, on a Rust runtime.

The seed's API::

    from raygent import Task, TaskManager

    class NumberSquareTask(Task):
        def process_item(self, item):
            return item ** 2

    manager = TaskManager(NumberSquareTask)          # use_ray=True: worker processes
    manager.submit_tasks([1, 2, 3, 4, 5])
    manager.get_results()                            # [1, 4, 9, 16, 25]

See docs/python.md.
"""

from . import errors
from ._native import __version__
from .errors import (
    ChunkFailedError,
    CheckpointError,
    CheckpointNotFoundError,
    DatasetNotFoundError,
    InputError,
    JobMismatchError,
    RaygentError,
    SaveError,
)
from .manager import TaskManager
from .results import ListResultHandler, ResultHandler
from .savers import DatasetReader, DatasetSaver, HDF5Saver, Saver
from .task import Task

__all__ = [
    "ChunkFailedError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "DatasetNotFoundError",
    "DatasetReader",
    "DatasetSaver",
    "HDF5Saver",
    "InputError",
    "JobMismatchError",
    "ListResultHandler",
    "RaygentError",
    "ResultHandler",
    "SaveError",
    "Saver",
    "Task",
    "TaskManager",
    "errors",
    "__version__",
]
