"""The executor interface (:class:`Executor`) and what every backend shares; the backends
(:class:`executor.LocalExecutor`, :class:`executor.ray_executor.RayExecutor`) build on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Executor", "ExecutorError", "default_jobs"]


class ExecutorError(RuntimeError):
    """An executor cannot run (Ray not installed, cluster unreachable): a one-line message."""


def default_jobs() -> int:
    """Worker processes by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs pure jobs; ``map`` returns their results in the order of the items."""

    name = "base"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
