"""Record-and-replay of the reactive benches (SPU, fp16 baselines, HBM-PIM PCU), for offline
reference-mutant checks.

These benches play a memory controller: what they drive depends on what the unit answered
(``comp_ready``, ``busy``, read data), so they cannot be precomputed like a stream plan
(:mod:`cosim.stream`). They reach the simulator only through an *io* object with one method,
``await io.cycle(cmd, addr, data, act, rows, read_rows) -> Sample``. A golden run wraps its
io in :class:`RecordingIo`, which keeps every cycle's inputs and sample; when the run passed,
:func:`save` writes them with what rebuilds the bench (its factory, unit, seed, vectors, idle
probability) to ``COSIM_TRACE_FILE``.

A reference mutant is a wrong expectation, not a different stimulus: :func:`check_mutant`
rebuilds the same bench with the mutant's model over a :class:`ReplayIo`, which hands back
the recorded samples and checks that the bench drives exactly what the recorded run drove.
The bench then runs to its end without a simulator, and its mismatches are counted; a
mutant must have some. Should the bench drive something else than recorded (a mutant that
changes the stimulus), the replay stops with :class:`Diverged` and the check fails.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

from .stream import check_mutant as check_stream
from .stream import load_unit  # noqa: F401 (re-exported: the replay factories use it)

__all__ = ["Diverged", "RecordingIo", "ReplayIo", "check_mutant", "check_reference_mutant",
           "load_unit", "save"]

_FORMAT = 1


class Diverged(RuntimeError):
    """The replayed bench drove something else than the recorded run."""


class RecordingIo:
    """Wraps a bench's io and keeps every cycle's inputs and sample."""

    def __init__(self, io):
        self.io = io
        self.cycles: list[tuple[tuple, Any]] = []

    async def cycle(self, cmd, addr, data, act, rows, read_rows):
        s = await self.io.cycle(cmd, addr, data, act, rows, read_rows)
        rows = tuple(rows) if rows is not None else None
        self.cycles.append(((cmd, addr, data, act, rows, bool(read_rows)), copy.copy(s)))
        return s


class ReplayIo:
    """Hands back the recorded samples in order, checking the driven inputs."""

    def __init__(self, cycles: list[tuple[tuple, Any]]):
        self.cycles = cycles
        self.n = 0

    async def cycle(self, cmd, addr, data, act, rows, read_rows):
        if self.n >= len(self.cycles):
            raise Diverged(f"the bench drives cycle {self.n}, the recorded run ended there")
        want, sample = self.cycles[self.n]
        rows = tuple(rows) if rows is not None else None
        got = (cmd, addr, data, act, rows, bool(read_rows))
        if got != want:
            field = next(n for n, a, b in zip(
                ("cmd", "addr", "data", "act", "rows", "read_rows"), got, want) if a != b)
            raise Diverged(f"cycle {self.n}: the bench drives another {field} than recorded")
        self.n += 1
        return copy.copy(sample)


def check_reference_mutant(trace: str | Path, mutant: str | None) -> tuple[int, int]:
    """``(mismatches, vectors)`` of reference mutant ``mutant`` against a golden run's trace:
    a stream bench's (an ``.npz`` archive, :func:`cosim.stream.check_mutant`) or a reactive
    bench's (:func:`check_mutant`)."""
    if zipfile.is_zipfile(trace):
        return check_stream(trace, mutant)
    return check_mutant(trace, mutant)


def save(path: str | Path, *, factory: str, meta: dict, io: RecordingIo) -> None:
    """Write the recorded cycles and what rebuilds the bench (``factory`` is
    ``"module:function"``, called as ``factory(io, meta, mutant, log)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"format": _FORMAT, "factory": factory, "meta": dict(meta),
                     "cycles": io.cycles}, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def load(path: str | Path) -> dict:
    with open(path, "rb") as f:
        data = pickle.load(f)  # our own file, written by save()
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a bench trace (format {_FORMAT})")
    return data


def check_mutant(trace: str | Path, mutant: str | None) -> tuple[int, int]:
    """Replay the recorded run with the reference mutant ``mutant`` (``None``: the golden
    model, which must find no mismatch); return ``(mismatches, vectors)``.

    Raises
    ------
    Diverged
        If the bench drives something else than the recorded run did.
    """
    data = load(trace)
    module, _, fn = data["factory"].partition(":")
    factory = getattr(importlib.import_module(module), fn)
    io = ReplayIo(data["cycles"])
    log = logging.getLogger("cosim.replay")
    log.setLevel(logging.CRITICAL)  # the mutant's mismatches are expected, not news
    bench = factory(io, data["meta"], mutant, log)
    res = asyncio.run(bench.run())
    if io.n != len(io.cycles):
        raise Diverged(f"the bench stopped after {io.n} of {len(io.cycles)} recorded cycles")
    return len(bench.mismatches), int(res["vectors"])
