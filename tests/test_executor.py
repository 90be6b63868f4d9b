"""The executor interface: the local pool, the Ray executor (a real local Ray instance) and
its refusal of an unreachable cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dse.jobs import square
from executor import ExecutorError, LocalExecutor, make_executor

ROOT = Path(__file__).resolve().parents[1]


def test_local_pool_keeps_the_order_of_the_items():
    with LocalExecutor(2) as ex:
        assert ex.map(square, [3, 1, 2, 0]) == [9, 1, 4, 0]


def test_ray_runs_jobs_in_order_and_raises_the_jobs_own_error():
    pytest.importorskip("ray")
    with make_executor("ray", jobs=1) as ex:       # a local Ray instance with one CPU
        assert ex.name == "ray"
        assert ex.map(square, [3, 1, 2]) == [9, 1, 4]
        with pytest.raises(ValueError, match=r"x=-1: negative"):
            ex.map(square, [2, -1])


def test_ray_unreachable_address_fails_fast_with_one_line():
    pytest.importorskip("ray")
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=r"Ray cluster at 127\.0\.0\.1:1: unreachable"):
        make_executor("ray", address="127.0.0.1:1")
    assert time.monotonic() - t0 < 10


def test_ray_malformed_address_is_refused():
    pytest.importorskip("ray")
    with pytest.raises(ExecutorError, match=r"not host:port"):
        make_executor("ray", address="no-port-here")


def test_cli_unreachable_address_one_line_nonzero_nothing_written(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "sysmodel", "sweep", "--figure", "12", "--out",
                        str(out), "--executor", "ray", "--address", "127.0.0.1:1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert time.monotonic() - t0 < 30        # the connection check itself: under 10 s above
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0] and "unreachable" in lines[0], r.stderr
    assert not list(out.glob("*.csv"))
