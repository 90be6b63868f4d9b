"""Ray executor: the project's jobs on a Ray cluster (``--executor ray``).

    from executor import make_executor
    with make_executor("ray", address="10.0.0.1:6379") as ex:   # or RAY_ADDRESS, or none
        results = ex.map(fn, items)

``address``: a running cluster (``host:port`` of its head, ``ray://host:port`` for Ray
Client, or ``auto``); default ``$RAY_ADDRESS``; with neither, a local Ray instance is started
with ``jobs`` CPUs (default: the core count) and shut down by :meth:`RayExecutor.close`.

Each item becomes one Ray task of one CPU (``ray.remote(num_cpus=1)``); Ray's scheduler
places them, and at most ``jobs`` are in flight when ``jobs`` is given. ``map`` returns the
results in the order of the items. A job that raises makes ``map`` raise the job's own
exception (not Ray's wrapper), so a one-line error stays one line.

Workers import the job's module by name: every node needs the project installed at the same
path with the same virtual environment (docs/scaleout.md). Ray is an optional extra
(``pip install -e '.[ray]'``, installed by ``make setup``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

from .base import Executor, ExecutorError, default_jobs

__all__ = ["CONNECT_TIMEOUT_S", "ExecutorError", "RayExecutor", "check_reachable"]

#: Seconds to wait for the head's port before calling the address unreachable.
CONNECT_TIMEOUT_S = 5.0


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address, ``None`` for ``auto``/``local`` (no socket)."""
    text = address.strip()
    if text in ("auto", "local"):
        return None
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r}: not host:port (allowed: host:port, "
                            "ray://host:port, auto)")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ExecutorError` (one line naming ``address``) unless a TCP connection to
    the head's port opens within ``timeout_s`` (``ray.init`` itself retries for minutes)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ExecutorError(f"Ray cluster at {address}: unreachable ({reason}); start one "
                            "with `ray start --head` or pass --address/RAY_ADDRESS of a running "
                            "head") from None


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor(Executor):
    """Runs jobs as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)
                                 or jobs < 1):
            raise ValueError(f"jobs={jobs!r}: out of range (allowed: an integer >= 1)")
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray: Ray is not installed (pip install -e "
                                "'.[ray]', or `make setup`)") from None
        self._ray = ray
        self.address = (address or os.environ.get("RAY_ADDRESS", "").strip()) or None
        self.jobs = jobs
        self._started = False
        if ray.is_initialized():       # a caller (a test, a notebook) already connected
            return
        if self.address is not None:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, log_to_driver=True)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds: one line
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ExecutorError(f"Ray cluster at {self.address}: cannot connect "
                                    f"({type(exc).__name__}: {line})") from None
        else:
            # ray.init would otherwise read RAY_ADDRESS itself: start a local instance
            ray.init(address="local", num_cpus=jobs or default_jobs(),
                     include_dashboard=False, log_to_driver=True)
        self._started = True

    def map(self, fn, items: Iterable[Any]) -> list[Any]:
        items = list(items)
        if not items:
            return []
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        fn_ref = ray.put(fn)
        window = self.jobs or len(items)
        refs, pending = [], []
        try:
            for item in items:
                if len(pending) >= window:       # at most `jobs` tasks in flight
                    _, pending = ray.wait(pending, num_returns=1)
                ref = remote.remote(fn_ref, item)
                refs.append(ref)
                pending.append(ref)
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False
