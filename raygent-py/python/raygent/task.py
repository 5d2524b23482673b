"""The task interface: what a job runs on every item."""

from __future__ import annotations

from typing import Any, Iterable


class Task:
    """Base class of raygent tasks.

    Implement :meth:`process_item` (one item in, one result out), or
    :meth:`process_items` when a whole chunk is cheaper at once (used when
    ``submit_tasks(..., at_once=True)``). ``kwargs_task`` given to
    ``submit_tasks`` arrive as keyword arguments of either method.

    A task instance is made once per worker (by calling the task class with
    no arguments) and reused for chunk after chunk. In parallel mode it
    lives in a worker process: the class travels by import path, or by
    value (cloudpickle) when it is defined in ``__main__`` or a notebook.

    >>> class NumberSquareTask(Task):
    ...     def process_item(self, item):
    ...         return item ** 2
    >>> NumberSquareTask().run([1, 2, 3])
    [1, 4, 9]
    """

    #: Recorded in checkpoints: change it when the task's results change,
    #: so that a resume does not mix the old results with the new.
    version: str = "1"

    def process_item(self, item: Any, *args: Any, **kwargs: Any) -> Any:
        """Processes one item and returns its result."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement process_item(item) "
            "(or process_items(items), and be run with at_once=True)"
        )

    def process_items(self, items: list, *args: Any, **kwargs: Any) -> Iterable[Any]:
        """Processes a whole chunk and returns one result per item, in order.

        Defaults to calling :meth:`process_item` on each item.
        """
        return [self.process_item(item, *args, **kwargs) for item in items]

    def run(self, items: list, at_once: bool = False, *args: Any, **kwargs: Any) -> list:
        """Processes one chunk: :meth:`process_items` on all of it when
        ``at_once``, else :meth:`process_item` on each item."""
        if at_once:
            return list(self.process_items(items, *args, **kwargs))
        return [self.process_item(item, *args, **kwargs) for item in items]


def _each(process_item, items, kwargs):
    """``process_item`` on each item of a chunk (called by the native
    module: a call per item from here is cheaper than one from Rust, and
    from a comprehension cheaper than through ``map``)."""
    if kwargs:
        return [process_item(item, **kwargs) for item in items]
    return [process_item(item) for item in items]
