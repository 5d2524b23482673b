"""Result handlers: what happens to results once they are in input order."""

from __future__ import annotations

from typing import Any


class ResultHandler:
    """Receives each chunk's results, in input order.

    Subclass it and implement :meth:`add_chunk` (and :meth:`get`, which
    ``TaskManager.get_results()`` returns). It is called from a thread of
    the runtime, one chunk after another, never concurrently.
    """

    def add_chunk(self, chunk_results: list, chunk_index: int | None = None, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def get(self) -> Any:
        return None


class ListResultHandler(ResultHandler):
    """Keeps every result in one list, in input order (the default)."""

    def __init__(self) -> None:
        self.results: list = []

    def add_chunk(self, chunk_results: list, chunk_index: int | None = None, *args: Any, **kwargs: Any) -> None:
        self.results.extend(chunk_results)

    def get(self) -> list:
        return self.results
