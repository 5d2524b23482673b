"""Savers: where a job's results go, batch by batch, in input order."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, Iterator, Optional

from . import _native

FORMATS = ("cbor", "jsonl", "csv")


class Saver(ABC):
    """The pluggable interface that persists results.

    ``TaskManager.submit_tasks(..., saver=s, save_interval=n)`` calls
    ``s.save(data, indices=..., **manager.save_kwargs)`` with batches of at
    least ``n`` results (whole chunks), in input order; ``indices`` is the
    ``range`` of input positions the batch holds. ``save`` runs on a thread
    of the runtime, one batch at a time, while the workers keep computing.

    A saver used with ``checkpoint=`` must say how it resumes: implement
    :meth:`resume`, which forgets what it saved from input index
    ``next_index`` on (those results are saved again). A saver without it
    is refused for checkpointed jobs: after a crash it would save the
    results past the last checkpoint twice.

    Optional hooks: ``check_empty()`` (raise if the destination already
    holds results, for a checkpointed job with no checkpoint yet),
    ``finish()`` (after the last batch) and ``describe()`` (a short text
    recorded in checkpoints, so a resume to another destination is refused).
    """

    @abstractmethod
    def save(self, data: list, indices: Any = None, **kwargs: Any) -> None:
        """Saves one batch of results."""

    # resume(self, next_index: int) -> None is optional: see the class doc.


class DatasetSaver(Saver):
    """Saves results with raygent's dataset saver: immutable parts, committed
    exactly once, on a local directory or S3, in ``format`` ``"cbor"`` (the
    default: any picklable result), ``"jsonl"`` or ``"csv"`` (plain data:
    None, bool, int, float, str, list, tuple, dict).

    ``url`` is a path, ``file:///path`` or ``s3://bucket/prefix`` (S3
    settings from the AWS environment variables, or ``s3={"endpoint": ...,
    "region": ..., "access_key_id": ..., "secret_access_key": ...,
    "allow_http": True}``). A job without a checkpoint refuses to write
    over an existing dataset unless ``overwrite=True``. Read the results
    back with :class:`DatasetReader` (or ``raygent cat URL``).

    The manager drives this saver natively (no Python call per batch);
    ``save`` is not called.
    """

    def __init__(self, url: str | os.PathLike, format: str = "cbor", overwrite: bool = False,
                 s3: Optional[dict] = None):
        if not isinstance(url, (str, os.PathLike)):
            raise TypeError(f"DatasetSaver: url must be a path or URL string, not {type(url).__name__}")
        url = os.fspath(url)
        if not url.strip():
            raise ValueError("DatasetSaver: url is empty")
        if not isinstance(format, str) or format not in FORMATS:
            raise ValueError(f"DatasetSaver: unknown format {format!r}; use one of {', '.join(FORMATS)}")
        if not isinstance(overwrite, bool):
            raise TypeError("DatasetSaver: overwrite must be True or False")
        if s3 is not None and not isinstance(s3, dict):
            raise TypeError("DatasetSaver: s3 must be a dict of S3 settings")
        self.url = url
        self.format = format
        self.overwrite = overwrite
        self.s3 = s3

    @property
    def checkpoint_url(self) -> str:
        """Where ``checkpoint=True`` keeps the job's checkpoints: next to the output."""
        return self.url.rstrip("/") + "/_checkpoints"

    def save(self, data: list, indices: Any = None, **kwargs: Any) -> None:
        raise TypeError(
            "DatasetSaver is written by TaskManager.submit_tasks(..., saver=DatasetSaver(url)); "
            "it has no save() of its own"
        )

    def resume(self, next_index: int) -> None:  # pragma: no cover - native
        """Resumes natively (uncommitted parts are removed and rewritten)."""

    def __repr__(self) -> str:
        return f"DatasetSaver({self.url!r}, format={self.format!r})"


class DatasetReader:
    """Every committed result of a dataset, in input order.

    >>> reader = DatasetReader("out")           # doctest: +SKIP
    >>> results = list(reader)                  # doctest: +SKIP

    ``len(reader)`` is the number of committed results, ``reader.complete``
    whether the job finished, ``reader.parts`` the committed parts (first
    chunk, end chunk, results). Works on an unfinished job too (it reads
    what is committed) and on the output of ``raygent run``.
    """

    def __init__(self, url: str | os.PathLike, s3: Optional[dict] = None):
        if not isinstance(url, (str, os.PathLike)):
            raise TypeError(f"DatasetReader: url must be a path or URL string, not {type(url).__name__}")
        self.url = os.fspath(url)
        self._reader = _native.NativeReader(self.url, s3)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._reader)

    def __len__(self) -> int:
        return len(self._reader)

    @property
    def complete(self) -> bool:
        return self._reader.complete

    @property
    def parts(self) -> list:
        return self._reader.parts

    @property
    def format(self) -> Optional[str]:
        return self._reader.format

    def to_list(self) -> list:
        return list(self._reader)

    def __repr__(self) -> str:
        return f"DatasetReader({self.url!r}: {len(self)} results, complete={self.complete})"


def _fsync(path: str) -> None:
    """Makes a closed file durable (a checkpoint may record it next)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HDF5Saver(Saver):
    """Appends results to a resizable HDF5 dataset (needs h5py and numpy:
    ``pip install h5py``).

    Each batch becomes rows ``numpy.array(data, dtype=kwargs.get("dtype"))``
    appended along axis 0 of ``dataset_name`` in ``file_path``; the dataset
    is created on the first batch, resizable along that axis. It resumes:
    ``resume(next_index)`` cuts the dataset back to ``next_index`` rows.
    Each save is fsynced before it returns. An HDF5 file is not crash-safe
    itself: a process killed in the middle of a write can leave it
    unreadable (``DatasetSaver``'s parts do not have that problem).
    """

    def __init__(self, file_path: str | os.PathLike, dataset_name: str = "results"):
        try:
            import h5py  # noqa: F401
            import numpy  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("HDF5Saver needs h5py and numpy: pip install h5py") from e
        if not isinstance(dataset_name, str) or not dataset_name:
            raise ValueError("HDF5Saver: dataset_name must be a non-empty string")
        self.file_path = os.fspath(file_path)
        self.dataset_name = dataset_name

    def describe(self) -> str:
        return f"hdf5 {os.path.abspath(self.file_path)}:{self.dataset_name}"

    def _rows(self) -> int:
        import h5py
        if not os.path.exists(self.file_path):
            return 0
        with h5py.File(self.file_path, "r") as f:
            return f[self.dataset_name].shape[0] if self.dataset_name in f else 0

    def save(self, data: list, indices: Any = None, **kwargs: Any) -> None:
        import h5py
        import numpy as np

        arr = np.array(data, dtype=kwargs.get("dtype"))
        with h5py.File(self.file_path, "a") as h5file:
            if self.dataset_name not in h5file:
                h5file.create_dataset(self.dataset_name, data=arr,
                                      maxshape=(None,) + arr.shape[1:], chunks=True)
            else:
                dset = h5file[self.dataset_name]
                old_size = dset.shape[0]
                new_size = old_size + arr.shape[0]
                dset.resize(new_size, axis=0)
                dset[old_size:new_size] = arr
        _fsync(self.file_path)

    def check_empty(self) -> None:
        rows = self._rows()
        if rows:
            raise ValueError(
                f"dataset {self.dataset_name!r} in {self.file_path} already holds {rows} rows "
                "that no checkpoint accounts for; delete it, pick another dataset_name, or pass fresh=True"
            )

    def resume(self, next_index: int) -> None:
        import h5py
        if not os.path.exists(self.file_path):
            if next_index:
                raise ValueError(f"{self.file_path} is missing, but the checkpoint says {next_index} rows were saved")
            return
        with h5py.File(self.file_path, "a") as h5file:
            if self.dataset_name not in h5file:
                if next_index:
                    raise ValueError(f"dataset {self.dataset_name!r} is missing from {self.file_path}, "
                                     f"but the checkpoint says {next_index} rows were saved")
                return
            dset = h5file[self.dataset_name]
            if dset.shape[0] < next_index:
                raise ValueError(f"dataset {self.dataset_name!r} in {self.file_path} holds {dset.shape[0]} rows, "
                                 f"fewer than the {next_index} the checkpoint says were saved")
            dset.resize(next_index, axis=0)
        _fsync(self.file_path)
