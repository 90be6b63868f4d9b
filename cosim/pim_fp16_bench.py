"""Simulator-independent testbench of the fp16 baseline units with their bank models
(:class:`hw.pim_fp16_sim.PimFp16Sim`: ``timemux_fp16_naive``, ``timemux_fp16_perbank``,
``pipelined_fp16_perbank``).

* **driver** -- per row pair (*round*: one open row in each bank the unit serves):
  ACTIVATE (whole rows loaded into the bank models), REG_WRITEs of d, k, q, v (both halves)
  per bank in random order with idle cycles (junk on ``i_addr``/``i_data``), then one COMP per
  sub-chunk in a random (bank, column) order with random idle gaps, each presented until
  accepted (``o_ready``), then the drain (until ``o_busy`` drops) and PRECHARGE (the row
  buffers read back).
* **monitor / scoreboard** -- every cycle: each ``y`` partial is the expected one of its
  (bank, column), exactly once; each sub-chunk is written back exactly once; no bank is read
  and written in one cycle (the bank model's collision flag); at PRECHARGE every row buffer
  equals the expected updated rows. Expectations: :func:`quant.fp16_pim.subchunk_update_fp16`
  (or a mutant of :data:`MUTANTS`).
* **timing** -- round 0 presents its COMPs back to back in column order: the interval between
  accepted COMPs (every interval must be the same: ``cycles_per_subchunk``), the COMPs per row
  pair, and ``pipeline_depth`` = cycles from the last accepted COMP until its ``y`` is out and
  ``o_busy`` is low.

The simulator is reached through an *io* object with one method,
``await io.cycle(cmd, addr, data, act, rows, read_rows) -> Sample``: drive the inputs of this
cycle, sample the outputs (combinational outputs settled), advance one clock.
``cosim/tb_pim_fp16.py`` implements it for cocotb, ``tests/test_hw_baselines.py`` for
Amaranth's simulator.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import numpy as np

from hw.pim_fp16_if import LANES, PimCmd, PimReg, comp_addr, reg_addr
from quant.constants import COLUMNS
from quant.fp16_pim import state_update_fp16, subchunk_update_fp16
from quant.fparith import ref_add, ref_mul

__all__ = ["Sample", "PimFp16Bench", "MUTANTS", "random_fp16"]

_log = logging.getLogger("cosim.pim_fp16")


@dataclass
class Sample:
    """Outputs of one cycle."""
    ready: int
    busy: int
    y_valid: int
    y: int
    y_bank: int
    y_col: int
    rd: int
    wr: int
    wr_col: int
    collision: int
    rows: tuple | None = None


def random_fp16(gen: np.random.Generator, shape, *, decay: bool = False) -> np.ndarray:
    """fp16 encodings: mostly normal values over a range of scales (decays: in (0, 1)),
    with zeros of both signs, subnormals, values near overflow, inf and NaN mixed in."""
    if decay:
        vals = gen.uniform(0.0, 1.0, shape)
    else:
        vals = gen.standard_normal(shape) * np.exp2(gen.integers(-8, 9, shape))
    bits = np.asarray(vals, dtype=np.float16).view(np.uint16).astype(np.int64)
    kind = gen.random(shape)
    rnd = gen.integers(0, 1 << 16, shape)
    sign = rnd & 0x8000
    bits = np.where(kind < 0.03, sign, bits)                                  # +-0
    bits = np.where((kind >= 0.03) & (kind < 0.07), rnd & 0x83FF, bits)      # subnormal
    big = sign | ((gen.integers(27, 31, shape)) << 10) | (rnd & 0x3FF)
    bits = np.where((kind >= 0.07) & (kind < 0.10), big, bits)               # near overflow
    bits = np.where((kind >= 0.10) & (kind < 0.11), sign | 0x7C00, bits)     # +-inf
    bits = np.where((kind >= 0.11) & (kind < 0.12), 0x7C01 | (rnd & 0x83FF), bits)  # NaN
    return bits


def _sequential_dot(s, d, k, v, q):
    """Mutant: y accumulated lane after lane instead of the pairwise tree."""
    s_new = state_update_fp16(s, d, k, np.asarray(v)[..., None])
    p = ref_mul(s_new, q, "fp16")
    acc = p[..., 0]
    for i in range(1, p.shape[-1]):
        acc = ref_add(acc, p[..., i], "fp16")
    return s_new, acc


def _no_outer(s, d, k, v, q):
    """Mutant: the outer-product term is dropped (S' = d * S)."""
    return subchunk_update_fp16(s, d, np.zeros_like(np.asarray(k)), v, q)


#: Reference models: the golden one and deliberately broken ones.
MUTANTS = {"golden": subchunk_update_fp16, "sequential_dot": _sequential_dot,
           "no_outer": _no_outer}


def _row_int(sub: np.ndarray) -> int:
    """(32, 16) fp16 encodings -> one 8192-bit row."""
    out = 0
    for c in range(COLUMNS):
        for i in range(LANES):
            out |= int(sub[c, i]) << (256 * c + 16 * i)
    return out


def _row_arr(value: int) -> np.ndarray:
    return np.array([[(value >> (256 * c + 16 * i)) & 0xFFFF for i in range(LANES)]
                     for c in range(COLUMNS)], dtype=np.int64)


def _vec_int(vec) -> int:
    return sum(int(x) << (16 * i) for i, x in enumerate(vec))


class PimFp16Bench:
    """Controller, monitor and scoreboard of one baseline unit (see the module docstring).

    Parameters
    ----------
    io : object with ``async cycle(...) -> Sample``
    unit : TimeMuxFp16 or PipelinedFp16
        The simulated unit (for ``banks``, ``cycles_per_subchunk``, ``latency``).
    rng : random.Random
    vectors : int
        Sub-chunks (COMPs) to run, rounded up to whole row pairs (at least two).
    gap_prob : float
        Probability of idle cycles before a command (not in the timing round).
    mutant : str, optional
        A key of :data:`MUTANTS` instead of the golden model.
    """

    def __init__(self, io, *, unit, rng: random.Random, vectors: int, gap_prob: float = 0.2,
                 log: logging.Logger | None = None, mutant: str | None = None):
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {mutant!r}; expected one of {sorted(MUTANTS)}")
        self.io, self.unit, self.rng = io, unit, rng
        self.banks = unit.banks
        self.per_round = self.banks * COLUMNS
        self.rounds = max(2, -(-vectors // self.per_round))
        self.gap_prob = gap_prob
        self.log = log or _log
        self.model = MUTANTS[mutant or "golden"]
        self.gen = np.random.default_rng(rng.getrandbits(32))
        self.cycle = 0
        self.mismatches: list[str] = []
        self.collisions = 0
        self.vectors = 0
        self.expected = 0
        self._expect_y: dict = {}
        self._writes: dict = {}
        self._y_cycles: list[int] = []

    def fail(self, msg: str) -> None:
        if len(self.mismatches) < 20:
            self.log.error("cycle %d: %s", self.cycle, msg)
        self.mismatches.append(f"cycle {self.cycle}: {msg}")

    async def step(self, cmd=PimCmd.NOP, addr=None, data=None, act=0, rows=None,
                   read_rows=False) -> Sample:
        if addr is None:
            addr = self.rng.getrandbits(8) if cmd == PimCmd.NOP else 0
        if data is None:
            data = self.rng.getrandbits(256)
        s = await self.io.cycle(cmd.value, addr, data, act, rows, read_rows)
        self._monitor(s)
        self.cycle += 1
        return s

    def _monitor(self, s: Sample) -> None:
        if s.collision:
            self.collisions += 1
            self.fail(f"bank read and written in one cycle (collision {s.collision:#x})")
        for b in range(self.banks):
            if (s.wr >> b) & 1:
                key = (b, s.wr_col)
                self._writes[key] = self._writes.get(key, 0) + 1
        if s.y_valid:
            key = (s.y_bank, s.y_col)
            if key not in self._expect_y:
                self.fail(f"unexpected y for bank {key[0]} column {key[1]}")
                return
            want = self._expect_y.pop(key)
            self.vectors += 1
            if s.y != want:
                self.fail(f"y of bank {key[0]} column {key[1]}: {s.y:#06x}, "
                          f"expected {want:#06x}")
            self._y_cycles.append(self.cycle)

    async def _idle(self, prob: float) -> None:
        while self.rng.random() < prob:
            await self.step()

    async def run(self) -> dict:
        t0 = time.perf_counter()
        timing = None
        for r in range(self.rounds):
            t = await self._round(r, timed=(r == 0))
            timing = timing or t
        wall = time.perf_counter() - t0
        return {"vectors": self.vectors, "expected": self.expected,
                "mismatches": len(self.mismatches), "collisions": self.collisions,
                "cycles": self.cycle, "wall_s": wall,
                "cycles_per_s": round(self.cycle / max(wall, 1e-9)),
                "timing": timing}

    async def _round(self, r: int, timed: bool) -> dict | None:
        nb, g = self.banks, self.gen
        rows = random_fp16(g, (nb, COLUMNS, LANES))
        d = random_fp16(g, (nb, LANES), decay=True)
        k = random_fp16(g, (nb, LANES))
        q = random_fp16(g, (nb, LANES))
        v = random_fp16(g, (nb, COLUMNS))
        new, y = self.model(rows, d[:, None, :], k[:, None, :], v, q[:, None, :])
        self._expect_y = {(b, c): int(y[b, c]) for b in range(nb) for c in range(COLUMNS)}
        self._writes = {}
        self._y_cycles = []
        self.expected += self.per_round
        gap = 0.0 if timed else self.gap_prob

        await self.step(act=(1 << nb) - 1, rows=[_row_int(rows[b]) for b in range(nb)])
        writes = [(reg, b, val) for b in range(nb) for reg, val in (
            (PimReg.D, d[b]), (PimReg.K, k[b]), (PimReg.Q, q[b]),
            (PimReg.V_LO, v[b, :16]), (PimReg.V_HI, v[b, 16:]))]
        self.rng.shuffle(writes)
        for reg, b, val in writes:
            await self._idle(gap)
            await self.step(PimCmd.REG_WRITE, reg_addr(reg, b), _vec_int(val))

        order = [(b, c) for c in range(COLUMNS) for b in range(nb)]
        if not timed:
            self.rng.shuffle(order)
        accepted = []
        for b, c in order:
            await self._idle(gap)
            while True:
                s = await self.step(PimCmd.COMP, comp_addr(c, b))
                if s.ready:
                    accepted.append(self.cycle - 1)
                    break
        last = accepted[-1]
        for _ in range(64):
            s = await self.step()
            if not s.busy:
                break
        else:
            self.fail("o_busy did not drop within 64 cycles of the last COMP")
        done = self.cycle - 1
        s = await self.step(read_rows=True)
        for b in range(nb):
            got = _row_arr(s.rows[b])
            for c in np.nonzero((got != new[b]).any(axis=1))[0]:
                self.fail(f"round {r} bank {b} column {c}: written back "
                          f"{[hex(x) for x in got[c]]}, expected {[hex(x) for x in new[b, c]]}")
        for key in self._expect_y:
            self.fail(f"round {r}: no y for bank {key[0]} column {key[1]}")
        for b in range(nb):
            for c in range(COLUMNS):
                if self._writes.get((b, c), 0) != 1:
                    self.fail(f"round {r}: bank {b} column {c} written "
                              f"{self._writes.get((b, c), 0)} times")
        if not timed:
            return None
        intervals = sorted({b - a for a, b in zip(accepted, accepted[1:])})
        if len(intervals) != 1:
            self.fail(f"COMP intervals not constant: {intervals}")
        cps = intervals[-1]
        depth = done - last
        if self._y_cycles and self._y_cycles[-1] != done:
            self.fail(f"last y at cycle {self._y_cycles[-1]}, o_busy dropped at {done}")
        return {"cycles_per_subchunk": cps, "pipeline_depth": depth,
                "comps_per_row_pair": len(order),
                "utilization": round(len(order) / (last - accepted[0] + cps), 4)}


def replay_bench(io, meta: dict, mutant: str | None, log: logging.Logger) -> PimFp16Bench:
    """The bench of a recorded run (:func:`cosim.replay.check_mutant`)."""
    from .replay import load_unit

    unit = load_unit(meta["unit"]).unit
    return PimFp16Bench(io, unit=unit, rng=random.Random(meta["seed"]), vectors=meta["vectors"],
                 gap_prob=meta["idle"], log=log, mutant=mutant)
