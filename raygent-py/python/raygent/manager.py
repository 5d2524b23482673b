"""``TaskManager``: the seed's API, on the Rust runtime."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Sized
from typing import Any, Callable, Iterable, Optional

from . import _native
from .progress import ProgressBar
from .results import ListResultHandler, ResultHandler
from .savers import DatasetSaver

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_size(value: Any) -> Optional[int]:
    if value is None:
        return None
    if _is_int(value):
        if value <= 0:
            raise ValueError(f"memory_limit must be a positive number of bytes, not {value}")
        return value
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in _SIZE_UNITS and text[-1:] else ""
        number = text[: len(text) - len(unit)]
        try:
            n = float(number)
        except ValueError:
            raise ValueError(f"memory_limit {value!r} is not a size like 512M or 2G") from None
        if n <= 0:
            raise ValueError(f"memory_limit must be positive, not {value!r}")
        return int(n * _SIZE_UNITS[unit])
    raise TypeError(f"memory_limit must be bytes (an int) or a size like '2G', not {type(value).__name__}")


def _stable(obj: Any) -> str:
    """A representation of a non-JSON value that is the same on every run."""
    import hashlib

    try:
        digest = hashlib.sha256(pickle.dumps(obj, protocol=4)).hexdigest()[:16]
    except Exception:
        digest = "unpicklable"
    return f"<{type(obj).__module__}.{type(obj).__qualname__} {digest}>"


def _task_name(task_class: Any) -> str:
    module = getattr(task_class, "__module__", None) or type(task_class).__module__
    qualname = getattr(task_class, "__qualname__", None) or type(task_class).__qualname__
    return f"{module}.{qualname}"


class TaskManager:
    """Runs a task over many items in chunks, on a bounded pool of workers,
    with results in input order, periodic saving, retries and exact resume.

    ``task_class`` is a callable returning a task instance (usually a
    :class:`raygent.Task` subclass). With ``use_ray=False`` (the default,
    as in the seed) the task runs in this process, one chunk after another;
    with ``use_ray=True`` it runs in ``max_concurrent_tasks`` worker
    processes (no Ray is needed), each a fresh Python interpreter, so a
    segfault, an out-of-memory kill or a hang (with ``timeout=``) costs
    one chunk attempt, not the job.

    ``result_handler`` receives each chunk's results in input order (the
    default keeps them all for :meth:`get_results`).
    """

    def __init__(self, task_class: Callable[[], Any], result_handler: Any = None, n_cores: int = -1,
                 use_ray: bool = False, n_cores_worker: int = 1):
        if not callable(task_class):
            raise TypeError(f"task_class must be a class or a callable returning a task, not {task_class!r}")
        if not _is_int(n_cores):
            raise TypeError(f"n_cores must be an int, not {type(n_cores).__name__}")
        if not _is_int(n_cores_worker):
            raise TypeError(f"n_cores_worker must be an int, not {type(n_cores_worker).__name__}")
        if n_cores_worker < 1:
            raise ValueError(f"n_cores_worker must be at least 1, not {n_cores_worker}")
        if not isinstance(use_ray, bool):
            raise TypeError(f"use_ray must be True or False, not {use_ray!r}")
        if result_handler is not None and not (hasattr(result_handler, "add_chunk") or callable(result_handler)):
            raise TypeError("result_handler must have an add_chunk(results, chunk_index) method, or be a callable")
        self.task_class = task_class
        self.n_cores = n_cores if n_cores > 0 else (os.cpu_count() or 1)
        self.n_cores_worker = n_cores_worker
        self.use_ray = use_ray
        self.result_handler = result_handler if result_handler is not None else ListResultHandler()
        #: Always empty: kept for code written for the seed's Ray backend.
        self.futures: list = []
        self.saver = None
        self.save_interval = 1
        self.save_kwargs: dict = {}
        #: The report of the last ``submit_tasks`` call (items, chunks,
        #: resumed_chunks, retries, failures, failed_chunks, saves, wall_time).
        self.report: Optional[dict] = None

    @property
    def max_concurrent_tasks(self) -> int:
        """``max(1, n_cores // n_cores_worker)``: how many workers run at once."""
        return max(1, self.n_cores // self.n_cores_worker)

    @property
    def results(self) -> Any:
        """The results so far (what :meth:`get_results` returns)."""
        return self.get_results()

    def get_results(self) -> Any:
        """Every result so far, in input order (the result handler's ``get()``)."""
        get = getattr(self.result_handler, "get", None)
        return get() if callable(get) else None

    def submit_tasks(self, items: Iterable[Any], chunk_size: int = 100, saver: Any = None,
                     at_once: bool = False, save_interval: int = 100, kwargs_task: Optional[dict] = None,
                     kwargs_remote: Optional[dict] = None, *, checkpoint: Any = None, fresh: bool = False,
                     checkpoint_interval: float = 1.0, retries: Optional[int] = None,
                     timeout: Optional[float] = None, memory_limit: Any = None, on_failure: str = "abort",
                     progress: Optional[bool] = None, s3: Optional[dict] = None) -> None:
        """Runs the task over ``items`` in chunks of ``chunk_size``; results
        reach the result handler (and ``saver``, in batches of at least
        ``save_interval``) in input order.

        Beyond the seed's arguments (``kwargs_remote`` is accepted for code
        written for Ray: its ``max_retries`` sets ``retries``):

        - ``checkpoint``: ``True`` keeps a checkpoint next to a
          :class:`DatasetSaver`'s output, a path or ``s3://`` URL puts it
          there. The same call run again resumes exactly where an earlier
          run stopped, even after a ``kill -9``; ``fresh=True`` starts over.
          ``checkpoint_interval`` is the shortest time between two
          checkpoint writes (seconds).
        - ``retries`` (default 3): retries of a failed chunk;
          ``on_failure``: ``"abort"`` raises :class:`ChunkFailedError` when a
          chunk fails on every attempt, ``"skip"`` records it in
          ``self.report["failed_chunks"]`` and goes on.
        - ``timeout`` (seconds per chunk) and ``memory_limit`` (bytes, or
          ``"2G"``): limits of a worker process (``use_ray=True`` only).
        - ``progress``: a progress bar (default: in a terminal or Jupyter).
        """
        # Imported here: worker processes import this package too, and start faster without them.
        import json
        import shutil
        import tempfile
        import warnings

        # --- arguments -------------------------------------------------
        if isinstance(items, (str, bytes, bytearray)) or not hasattr(items, "__iter__"):
            raise TypeError(f"items must be a list (or any iterable) of items, not {type(items).__name__}")
        if not _is_int(chunk_size):
            raise TypeError(f"chunk_size must be an int, not {type(chunk_size).__name__}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        if not _is_int(save_interval):
            raise TypeError(f"save_interval must be an int, not {type(save_interval).__name__}")
        if save_interval < 1:
            raise ValueError(f"save_interval must be at least 1, not {save_interval}")
        if not isinstance(at_once, bool):
            raise TypeError(f"at_once must be True or False, not {at_once!r}")
        kwargs_task = {} if kwargs_task is None else kwargs_task
        if not isinstance(kwargs_task, dict) or not all(isinstance(k, str) for k in kwargs_task):
            raise TypeError("kwargs_task must be a dict with str keys")
        kwargs_remote = {} if kwargs_remote is None else kwargs_remote
        if not isinstance(kwargs_remote, dict):
            raise TypeError("kwargs_remote must be a dict")
        if "num_cpus" in kwargs_remote:
            raise ValueError("kwargs_remote must not hold num_cpus: set n_cores and n_cores_worker instead")
        if "max_retries" in kwargs_remote and retries is None:
            retries = kwargs_remote["max_retries"]
        ignored = sorted(k for k in kwargs_remote if k != "max_retries")
        if ignored:
            warnings.warn(f"kwargs_remote options {ignored} are Ray's and are ignored", RuntimeWarning, stacklevel=2)
        retries = 3 if retries is None else retries
        if not _is_int(retries) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        if saver is not None and not callable(getattr(saver, "save", None)):
            raise TypeError(f"saver must have a save(data, indices=None, **kwargs) method; {saver!r} has none")
        if on_failure not in ("abort", "skip"):
            raise ValueError(f"on_failure must be 'abort' or 'skip', not {on_failure!r}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        memory_limit = _parse_size(memory_limit)
        if (timeout is not None or memory_limit is not None) and not self.use_ray:
            raise ValueError("timeout and memory_limit limit worker processes: use TaskManager(..., use_ray=True)")
        if not isinstance(fresh, bool):
            raise TypeError("fresh must be True or False")
        if isinstance(checkpoint_interval, bool) or not isinstance(checkpoint_interval, (int, float)) \
                or checkpoint_interval < 0:
            raise ValueError(f"checkpoint_interval must be a number of seconds >= 0, not {checkpoint_interval!r}")
        if progress is not None and not isinstance(progress, bool):
            raise TypeError("progress must be True, False or None")
        checkpoint_url = self._checkpoint_url(checkpoint, saver)

        self.saver = saver
        self.save_interval = save_interval
        save_kwargs = dict(self.save_kwargs)

        dataset = None
        py_saver = None
        if isinstance(saver, DatasetSaver):
            dataset = (saver.url, saver.format, saver.overwrite)
            s3 = s3 if s3 is not None else saver.s3
        elif saver is not None:
            py_saver = saver

        handler = self.result_handler
        collect = type(handler) is ListResultHandler
        callback = None
        if not collect:
            if hasattr(handler, "add_chunk"):
                def callback(results, chunk_index, _h=handler):
                    _h.add_chunk(results, chunk_index=chunk_index)
            else:
                def callback(results, chunk_index, _h=handler):
                    _h(results)

        name = _task_name(self.task_class)
        version = str(getattr(self.task_class, "version", "1"))
        identity = json.dumps({"task": name, "at_once": at_once, "kwargs_task": kwargs_task,
                               "save_kwargs": save_kwargs}, sort_keys=True, default=_stable)
        total = len(items) if isinstance(items, Sized) else None
        bar = None
        if progress is not False:
            bar = ProgressBar(total, mode="terminal" if progress else "auto")
            if bar.mode == "off":
                bar = None

        spec_dir = None
        spec_path = None
        worker_env = None
        try:
            if self.use_ray:
                spec_dir = tempfile.mkdtemp(prefix="raygent-job-")
                spec_path = os.path.join(spec_dir, "task.pkl")
                # Results bound for a DatasetSaver are each encoded on their own (the
                # saver stores them so); others may travel as one pickle per chunk.
                _write_spec(spec_path, self.task_class, kwargs_task, at_once,
                            results="cbor" if dataset is not None else "auto")
                worker_env = {"RAYGENT_PY_PARENT_PID": str(os.getpid())}
            out = _native.run_job(
                task_class=self.task_class, task_name=name, task_version=version, items=items,
                chunk_size=chunk_size, save_interval=save_interval, at_once=at_once,
                kwargs_task=kwargs_task, sequential=not self.use_ray, n_cores=self.n_cores,
                n_cores_worker=self.n_cores_worker, python=sys.executable, spec_path=spec_path,
                worker_env=worker_env, dataset=dataset, saver=py_saver, save_kwargs=save_kwargs,
                result_handler=callback, retries=retries, timeout=timeout, memory_limit=memory_limit,
                skip_failed=on_failure == "skip", checkpoint=checkpoint_url, fresh=fresh,
                checkpoint_interval=float(checkpoint_interval), identity=identity,
                progress=bar, s3=s3,
            )
        finally:
            if spec_dir is not None:
                shutil.rmtree(spec_dir, ignore_errors=True)
            if bar is not None:
                bar.close()
        if out["results"] is not None:
            handler.results.extend(out["results"])
        self.report = out["report"]
        if out["error"] is not None:
            raise out["error"]

    @staticmethod
    def _checkpoint_url(checkpoint: Any, saver: Any) -> Optional[str]:
        if checkpoint is None or checkpoint is False:
            return None
        if saver is None:
            raise ValueError("checkpoint needs a saver: results that are not saved cannot be resumed")
        if checkpoint is True:
            if not isinstance(saver, DatasetSaver):
                raise ValueError(
                    f"checkpoint=True keeps the checkpoint next to a DatasetSaver's output; with "
                    f"{type(saver).__name__}, give checkpoint='a/path' or 's3://bucket/prefix'")
            url = saver.checkpoint_url
        elif isinstance(checkpoint, (str, os.PathLike)):
            url = os.fspath(checkpoint)
            if not url.strip():
                raise ValueError("checkpoint is an empty path")
        else:
            raise TypeError(f"checkpoint must be True, False, None, a path or an s3:// URL, not {checkpoint!r}")
        if not isinstance(saver, DatasetSaver) and not callable(getattr(saver, "resume", None)):
            raise ValueError(
                f"{type(saver).__name__} cannot be checkpointed: it does not say how it resumes. After a "
                f"crash the results saved past the last checkpoint would be saved a second time. Give it a "
                f"resume(next_index) method that forgets what it saved from input index next_index on, "
                f"or use DatasetSaver, or run without checkpoint")
        return url


def _write_spec(path: str, task_class: Any, kwargs_task: dict, at_once: bool, results: str = "auto") -> None:
    """What a worker needs to make the task: the driver's sys.path (so the
    task's module imports the same way), then the task class and its
    arguments, pickled by reference when importable and by value
    (cloudpickle) when defined in ``__main__`` or a notebook."""
    try:
        import cloudpickle
        dumps = cloudpickle.dumps
    except ImportError:  # pragma: no cover - cloudpickle is a dependency
        dumps = pickle.dumps
    try:
        payload = dumps((task_class, kwargs_task, at_once), protocol=5)
    except Exception as e:
        raise TypeError(f"the task class {task_class!r} and kwargs_task cannot be sent to worker "
                        f"processes (they must be picklable): {e}") from e
    header = {"sys_path": list(sys.path), "cwd": os.getcwd(), "results": results}
    with open(path, "wb") as f:
        pickle.dump((header, payload), f, protocol=5)
