"""The exceptions raygent raises.

Bad arguments raise the built-in ``TypeError`` or ``ValueError``; what goes
wrong while a job runs raises a :class:`RaygentError`.
"""

from __future__ import annotations


class RaygentError(Exception):
    """A raygent job stopped; everything completed before it was kept."""


class ChunkFailedError(RaygentError):
    """A chunk failed on every attempt (``on_failure="abort"``).

    Attributes: ``chunk`` (its index), ``start`` and ``end`` (its items'
    input indices, end excluded), ``items`` (the items themselves, or None
    when they could not be kept), ``attempts`` and ``last_error`` (the
    worker's last error: the task's traceback, or how the worker died).
    """

    chunk: int
    start: int
    end: int
    items: list | None
    attempts: int
    last_error: str


class InputError(RaygentError, ValueError):
    """An input item could not be read or sent to a worker (``item``: its index)."""

    item: int


class SaveError(RaygentError):
    """A saver failed; nothing after its last committed batch counts as saved."""


class DatasetNotFoundError(SaveError, FileNotFoundError):
    """No dataset at the URL given to :class:`raygent.DatasetReader` (``url``)."""

    url: str


class CheckpointError(RaygentError):
    """A checkpoint could not be read or written."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint (a step, or a finished stage checkpoint) does not exist."""


class StepExistsError(CheckpointError, FileExistsError):
    """The step is already saved (``step``); pass ``overwrite=True`` to replace it."""

    step: int


class JobMismatchError(CheckpointError):
    """The checkpoint belongs to another job (``differences`` says how);
    rerun the same call to resume, or pass ``fresh=True`` to start over."""

    location: str
    differences: list


class JobInterruptedError(RaygentError):
    """The job was stopped; completed chunks were committed (``committed_chunks``)."""

    committed_chunks: int


class CheckpointHalt(SystemExit):
    """Raised after the checkpoint named by ``halt_after`` (or
    ``set_halt_point``) is computed: the pipeline stops there, like agatha's
    halt point. A ``SystemExit`` with code 0, so a script ends quietly."""

    def __init__(self, name: str):
        super().__init__(0)
        self.name = name

    def __str__(self) -> str:
        return f"halted after checkpoint {self.name!r}"
