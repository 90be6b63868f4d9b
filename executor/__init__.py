"""One executor interface for the project's parallel jobs (co-simulation, synthesis, sweeps).

A *job* is a pure, picklable call ``fn(item) -> result``: its inputs name everything it reads,
and its outputs are its return value and the files it writes under its own output folder.
Whichever executor runs it, the results are the same.

    from executor import make_executor
    with make_executor("local", jobs=2) as ex:
        results = ex.map(fn, items)      # in the order of ``items``

``local`` (the default) is a process pool on this machine (:mod:`concurrent.futures`);
``ray`` hands the jobs to a Ray cluster (``--address`` / ``RAY_ADDRESS``, else a local Ray
instance); see :mod:`executor.ray_executor`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .base import Executor, ExecutorError, default_jobs

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "LocalExecutor", "add_executor_args",
           "default_jobs", "executor_from_args", "make_executor", "run_all"]

#: The executors a user can name (``--executor``).
EXECUTORS = ("local", "ray")


class LocalExecutor(Executor):
    """A process pool of ``jobs`` workers; ``jobs == 1`` runs the jobs in this process (no
    pickling, easiest to debug)."""

    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = default_jobs() if jobs is None else int(jobs)
        if self.jobs < 1:
            raise ValueError(f"jobs={jobs!r}: out of range (allowed: an integer >= 1)")
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn, items):
        items = list(items)
        if self.jobs == 1 or len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs)
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def make_executor(kind: str = "local", *, jobs: int | None = None,
                  address: str | None = None) -> Executor:
    """The executor named ``kind`` (one of :data:`EXECUTORS`).

    ``jobs`` bounds the local pool (default: the core count); ``address`` is the Ray cluster
    (default: ``RAY_ADDRESS``, else a local Ray instance).
    """
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, jobs=jobs)
    raise ValueError(f"executor={kind!r}: unknown (allowed: {', '.join(EXECUTORS)})")


def _jobs_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs={text!r}: not an integer (allowed: an "
                                         "integer >= 1)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--jobs={n}: out of range (allowed: an integer >= 1)")
    return n


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--address`` and ``--jobs``, the same on every command line."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where the jobs run (default: local process pool)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray "
                        "instance); only with --executor ray")
    parser.add_argument("--jobs", type=_jobs_arg, default=None,
                        help="parallel jobs (default: the core count)")


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The executor an :func:`add_executor_args` command line asked for."""
    return make_executor(args.executor, jobs=args.jobs, address=args.address)


def run_all(fn: Callable[[Any], Any], items: Sequence[Any], executor: Executor | None = None,
            jobs: int | None = None) -> list[Any]:
    """``fn`` over ``items`` on ``executor`` (default: a local pool of ``jobs`` processes,
    the core count when ``None``, closed afterwards)."""
    if executor is not None:
        return executor.map(fn, items)
    with LocalExecutor(jobs) as ex:
        return ex.map(fn, items)
