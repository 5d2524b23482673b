"""Checkpoints, on a local directory or S3 (``s3://bucket/prefix``).

Two kinds, with the seeds' APIs:

- **Step checkpoints** of an iterator's state (datarax):
  :class:`IteratorCheckpoint` and :class:`PipelineCheckpoint` save the
  state of anything with ``get_state()`` / ``set_state(state)`` at numbered
  steps, keep the newest N, and restore the newest or any step. A step
  becomes visible only once completely written.
- **Stage checkpoints** of partitioned data (agatha): :func:`checkpoint`
  computes a pipeline stage's partitions once, in parallel on the worker
  pool, stores each partition as it completes, then a done marker; later
  runs load it instead. ``allow_partial`` keeps the partitions an
  unfinished run wrote; ``halt_after`` stops the pipeline after a stage.

Both are written by ``raygent-ckpt`` (the same layout as the Rust API and
``raygent ckpt``; see docs/checkpoints.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from . import _native
from .errors import CheckpointError, CheckpointHalt, CheckpointNotFoundError

__all__ = [
    "CheckpointableIterator",
    "IteratorCheckpoint",
    "ListIterator",
    "PipelineCheckpoint",
    "StageCheckpoint",
    "checkpoint",
    "ckpt",
    "clear_all_ckpt",
    "clear_ckpt",
    "clear_halt_point",
    "disable",
    "enable",
    "get_allow_partial",
    "get_checkpoints_like",
    "get_done_file_path",
    "get_or_make_ckpt_dir",
    "get_root",
    "get_verbose",
    "is_ckpt_done",
    "set_allow_partial",
    "set_halt_point",
    "set_root",
    "set_verbose",
]

PathLike = Union[str, os.PathLike]


def _url(path: PathLike, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path or an s3:// URL, not {type(path).__name__}")
    url = os.fspath(path)
    if not url.strip():
        raise ValueError(f"{what} is empty")
    return url


def _is_remote(url: str) -> bool:
    return "://" in url and not url.lower().startswith("file://")


# ---------------------------------------------------------------------------
# Step checkpoints (datarax)
# ---------------------------------------------------------------------------

class CheckpointableIterator:
    """An iterator whose position can be saved and restored: implement
    ``get_state()`` (a small dict of plain data) and ``set_state(state)``."""

    def get_state(self) -> dict:
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        raise NotImplementedError


class ListIterator(CheckpointableIterator):
    """Iterates over a list and remembers how far it got.

    >>> it = ListIterator(["a", "b", "c"])
    >>> next(it)
    'a'
    >>> state = it.get_state()
    >>> again = ListIterator(["a", "b", "c"]); again.set_state(state)
    >>> list(again)
    ['b', 'c']
    """

    def __init__(self, items: list):
        self.items = list(items)
        self.position = 0

    def __iter__(self) -> "ListIterator":
        return self

    def __next__(self) -> Any:
        if self.position >= len(self.items):
            raise StopIteration
        item = self.items[self.position]
        self.position += 1
        return item

    def get_state(self) -> dict:
        return {"position": self.position, "len": len(self.items)}

    def set_state(self, state: dict) -> None:
        if state.get("len") != len(self.items):
            raise ValueError(f"the checkpoint is of an input of {state.get('len')} items, this one has "
                             f"{len(self.items)}")
        self.position = int(state["position"])


class IteratorCheckpoint:
    """Saves and restores the state of iterators, as numbered steps under
    ``base_dir`` (a directory or ``s3://bucket/prefix``).

    ``handler`` is accepted for datarax's signature and must be None (the
    steps are written by raygent-ckpt). With ``async_checkpointing`` a save
    returns at once and is written in the background (at most 2 in
    flight); :meth:`wait_until_finished` waits, and reading waits too.
    """

    def __init__(self, base_dir: PathLike, handler: Any = None, async_checkpointing: bool = False,
                 s3: Optional[dict] = None):
        if handler is not None:
            raise ValueError("raygent writes the steps itself: handler must be None")
        if not isinstance(async_checkpointing, bool):
            raise TypeError("async_checkpointing must be True or False")
        self.base_dir = _url(base_dir, "base_dir")
        self.async_checkpointing = async_checkpointing
        self._store = _native.StepStore(self.base_dir, async_checkpointing, s3)

    def _path(self, url: str) -> str:
        if url.startswith("file://"):
            return url[len("file://"):]
        return url

    def save_to_directory(self, iterator: Any, step: Optional[int] = None, keep: int = 1,
                          overwrite: bool = False, metadata: Optional[dict] = None) -> str:
        """Saves ``iterator.get_state()`` as ``step`` (None: the step after
        the newest), keeps the ``keep`` newest steps, and returns the
        step's path. A step that exists is replaced only with ``overwrite``."""
        get_state = getattr(iterator, "get_state", None)
        if not callable(get_state):
            raise ValueError(f"{type(iterator).__name__} does not implement get_state(): it cannot be checkpointed")
        if step is None:
            latest = self.get_latest_step()
            step = 0 if latest is None else latest + 1
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, not {step!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an int >= 1, not {keep!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict of str to int, str, float or bool")
        url = self._store.save(step, get_state(), keep, overwrite, metadata)
        return self._path(url)

    def restore(self, iterator: Any, step: Optional[int] = None) -> Any:
        """Puts ``iterator`` back in the state of ``step`` (None: the newest)
        and returns it."""
        set_state = getattr(iterator, "set_state", None)
        if not callable(set_state):
            raise ValueError(f"{type(iterator).__name__} does not implement set_state(): it cannot be restored")
        if step is None:
            step = self.get_latest_step()
            if step is None:
                raise ValueError(f"no checkpoint to restore in {self.base_dir}")
        try:
            state = self._store.load(step)
        except CheckpointNotFoundError as e:
            raise ValueError(f"cannot restore step {step} from {self.base_dir}: {e}") from e
        set_state(state)
        return iterator

    def restore_latest(self, iterator: Any) -> Any:
        """Restores the newest step; ValueError when there is none."""
        return self.restore(iterator, None)

    def get_latest_step(self) -> Optional[int]:
        """The newest committed step, or None."""
        return self._store.latest_step()

    def list_checkpoints(self) -> list:
        """The committed steps, oldest first."""
        return self._store.list_steps()

    def get_metadata(self, step: int) -> dict:
        """The metadata saved with ``step`` (plus ``step`` and ``created_at_ms``)."""
        return self._store.metadata(step)

    def wait_until_finished(self) -> None:
        """Waits for background saves; raises the first one that failed."""
        self._store.wait_until_finished()

    def clear(self) -> None:
        """Deletes every step."""
        self._store.clear()


class PipelineCheckpoint(IteratorCheckpoint):
    """:class:`IteratorCheckpoint` with saving every ``interval`` steps."""

    def save_to_step(self, data_stream: Any, step: int, interval: int = 1000, keep: int = 5,
                     overwrite: bool = False, metadata: Optional[dict] = None) -> Optional[str]:
        """Saves when ``step`` is a multiple of ``interval``; returns the
        step's path, or None when it did not save."""
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be an int >= 1, not {interval!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, not {step!r}")
        if step % interval:
            return None
        return self.save_to_directory(data_stream, step, keep, overwrite, metadata)


# ---------------------------------------------------------------------------
# Stage checkpoints (agatha)
# ---------------------------------------------------------------------------

_state: dict = {
    "root": None,
    "store": None,
    "verbose": False,
    "allow_partial": False,
    "halt_point": None,
    "enabled": True,
}


def set_root(ckpt_root: PathLike, s3: Optional[dict] = None) -> None:
    """Where checkpoints live: a directory or ``s3://bucket/prefix``. Must
    be set before :func:`checkpoint` is called."""
    url = _url(ckpt_root, "ckpt_root")
    if not _is_remote(url):
        url = os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)
    _state["root"] = url
    _state["store"] = _native.StageStore(url, s3)


def get_root() -> Union[Path, str]:
    """The root: a ``Path`` for a directory, the URL for S3."""
    root = _state["root"]
    if root is None:
        raise ValueError("no checkpoint root: call raygent.checkpoint.set_root(path) first")
    return root if _is_remote(root) else Path(root)


def _store() -> Any:
    get_root()
    return _state["store"]


def set_verbose(is_verbose: bool) -> None:
    _state["verbose"] = bool(is_verbose)


def get_verbose() -> bool:
    return _state["verbose"]


def set_allow_partial(allow: bool) -> None:
    _state["allow_partial"] = bool(allow)


def get_allow_partial() -> bool:
    return _state["allow_partial"]


def set_halt_point(name: str) -> None:
    """Stop (raise :class:`CheckpointHalt`) right after checkpoint ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError("the halt point must be a checkpoint name")
    _state["halt_point"] = name


def clear_halt_point() -> None:
    _state["halt_point"] = None


def disable() -> None:
    """Pass-through mode: :func:`checkpoint` computes and returns the
    partitions without reading or writing any checkpoint."""
    _state["enabled"] = False


def enable() -> None:
    _state["enabled"] = True


def _join(name: str) -> Union[Path, str]:
    root = get_root()
    if isinstance(root, Path):
        return root / name
    return root.rstrip("/") + "/" + name


def get_or_make_ckpt_dir(name: str) -> Union[Path, str]:
    """The directory of checkpoint ``name`` (created on a local root)."""
    d = _join(name)
    if isinstance(d, Path):
        d.mkdir(parents=True, exist_ok=True)
    return d


def get_done_file_path(name: str) -> Union[Path, str]:
    """The done marker of checkpoint ``name``: it exists once the checkpoint is finished."""
    d = _join(name)
    return d / "DONE" if isinstance(d, Path) else d + "/DONE"


def is_ckpt_done(name: str) -> bool:
    return _store().is_done(name)


def clear_ckpt(name: str) -> None:
    """Deletes checkpoint ``name`` (its done marker first)."""
    _store().clear(name)


def clear_all_ckpt() -> None:
    """Deletes every checkpoint under the root."""
    _store().clear_all()


def get_checkpoints_like(glob_pattern: str) -> set:
    """The checkpoints (finished or not) whose names match ``glob_pattern``:
    their directories (``Path``s; URLs on S3)."""
    return {_join(n) for n in _store().list(glob_pattern)}


def _log(name: str, text: str, verbose: Optional[bool]) -> None:
    if verbose if verbose is not None else _state["verbose"]:
        print(f"raygent checkpoint {name!r}: {text}", file=sys.stderr)


class StageCheckpoint(Sequence):
    """A finished checkpoint's partitions, loaded when read:
    ``len(c)`` partitions, ``c[i]`` one of them (a list), ``list(c)`` all,
    :meth:`compute` all as a list of lists, :meth:`elements` every
    element of every partition in order."""

    def __init__(self, name: str, partitions: int):
        self.name = name
        self._n = partitions
        self._store = _store()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"checkpoint {self.name!r} has {self._n} partitions")
        return self._store.load_partition(self.name, index)

    def compute(self) -> list:
        return [self[i] for i in range(self._n)]

    def elements(self) -> Iterator[Any]:
        for i in range(self._n):
            yield from self[i]

    def __repr__(self) -> str:
        return f"StageCheckpoint({self.name!r}, {self._n} partitions)"


def _compute_partitions(name: str, parts: list, indices: list, on_partition: Callable[[int, list], None],
                        compute_kw: dict) -> None:
    """Computes partitions ``indices`` of ``parts`` in parallel (callables on
    the worker pool; data as it is), calling ``on_partition(i, data)`` in order."""
    thunks = [(i, parts[i]) for i in indices if callable(parts[i])]
    for i in indices:
        if not callable(parts[i]):
            on_partition(i, list(parts[i]))
    if not thunks:
        return
    from .manager import TaskManager
    from .results import ResultHandler

    class _Writer(ResultHandler):
        def add_chunk(self, chunk_results: list, chunk_index: Any = None, *a: Any, **k: Any) -> None:
            for i, data in chunk_results:
                on_partition(i, data)

    kw = dict(compute_kw)
    manager = TaskManager(_PartitionTask, result_handler=_Writer(), n_cores=kw.pop("n_cores", -1),
                          use_ray=kw.pop("use_ray", True), n_cores_worker=kw.pop("n_cores_worker", 1))
    kw.setdefault("progress", False)
    manager.submit_tasks(thunks, chunk_size=1, **kw)


class _PartitionTask:
    """Computes one partition: ``(index, thunk)`` -> ``(index, list(thunk()))``."""

    def process_item(self, item: Any) -> Any:
        index, thunk = item
        return (index, list(thunk()))


def checkpoint(name: str, bag: Optional[Sequence] = None, verbose: Optional[bool] = None,
               allow_partial: Optional[bool] = None, halt_after: Optional[str] = None,
               textfile: bool = False, **compute_kw: Any) -> Optional[StageCheckpoint]:
    """Stores the partitions of ``bag`` as checkpoint ``name``, or loads it.

    ``bag`` is a list of partitions; each is a list (or iterable) of
    elements, or a callable returning one, computed in parallel on raygent's
    worker pool (``compute_kw`` goes to ``TaskManager``/``submit_tasks``:
    ``n_cores``, ``use_ray`` (default True), ``retries``, ``timeout``...).
    Each partition is stored as soon as it is computed, then the done
    marker. ``checkpoint(name)`` alone loads a finished checkpoint.

    A finished checkpoint is loaded, not recomputed. An unfinished one (an
    earlier run stopped midway) is recomputed in full, or with
    ``allow_partial`` only its missing partitions. Returns the
    partitions (a :class:`StageCheckpoint`, read as they are accessed);
    None with ``textfile``. After :func:`disable`, computes and returns
    the partitions (a list of lists) without storing anything. When
    ``name`` is the halt point (``halt_after`` or :func:`set_halt_point`),
    raises :class:`CheckpointHalt` once the checkpoint is finished.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a checkpoint name must be a non-empty string")
    if bag is not None and (isinstance(bag, (str, bytes)) or not hasattr(bag, "__len__")):
        raise TypeError("bag must be a list of partitions (lists, or callables returning lists)")
    parts = list(bag) if bag is not None else None
    halt = halt_after if halt_after is not None else _state["halt_point"]
    partial = allow_partial if allow_partial is not None else _state["allow_partial"]

    if not _state["enabled"]:
        if parts is None:
            raise ValueError(f"checkpoints are disabled: checkpoint({name!r}) needs the partitions to compute")
        out: dict = {}
        _compute_partitions(name, parts, list(range(len(parts))), out.__setitem__, compute_kw)
        return [out[i] for i in range(len(parts))]

    store = _store()
    if store.is_done(name):
        n = store.partitions(name)
        if parts is not None and n != len(parts):
            raise CheckpointError(
                f"checkpoint {name!r} at {_join(name)} holds {n} partitions, not {len(parts)}; "
                f"clear_ckpt({name!r}) to recompute it")
        _log(name, f"loading ({n} partitions)", verbose)
    else:
        if parts is None:
            raise CheckpointNotFoundError(
                f"checkpoint {name!r} is not finished at {_join(name)}: pass its partitions to compute it")
        n = len(parts)
        kept = store.written_partitions(name, n) if partial else []
        if not partial:
            store.clear(name)
        missing = [i for i in range(n) if i not in set(kept)]
        _log(name, f"computing {len(missing)} of {n} partitions"
             + (f" ({len(kept)} kept from an unfinished run)" if kept else ""), verbose)
        _compute_partitions(name, parts, missing, lambda i, data: store.write_partition(name, i, data),
                            compute_kw)
        store.finish(name, n)
        _log(name, "done", verbose)
    if halt == name:
        raise CheckpointHalt(name)
    return None if textfile else StageCheckpoint(name, n)


def ckpt(bag_name: str, ckpt_prefix: Optional[str] = None, **kwargs: Any) -> None:
    """``ckpt("x")`` is ``x = checkpoint("x", x)`` in the caller's scope
    (module level; inside a function on Python 3.13+). With
    ``ckpt_prefix``, the checkpoint is named ``f"{ckpt_prefix}_{bag_name}"``."""
    frame = sys._getframe(1)
    if bag_name in frame.f_locals:
        bag = frame.f_locals[bag_name]
    elif bag_name in frame.f_globals:
        bag = frame.f_globals[bag_name]
    else:
        raise NameError(f"ckpt: no variable named {bag_name!r} in the caller's scope")
    name = bag_name if ckpt_prefix is None else f"{ckpt_prefix}_{bag_name}"
    result = checkpoint(name, bag, **kwargs)
    if frame.f_locals is frame.f_globals or bag_name not in frame.f_locals:
        frame.f_globals[bag_name] = result
    else:
        frame.f_locals[bag_name] = result
        if sys.version_info < (3, 13):
            import ctypes
            ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
