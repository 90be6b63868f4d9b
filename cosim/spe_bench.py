"""The SPE datapath-slice testbench (``cosim/tb_spe.py``) as a stream plan
(:mod:`cosim.stream`), for every unit ``spe_<format>[_sr]`` (:mod:`hw.spe_float`,
:mod:`hw.spe_int8`, :mod:`hw.spe_mx8`).

Random idle gaps with junk on the idle data ports; every output bit and every output's cycle
(the unit's ``latency``) checked. Operations come in batches from
:func:`cosim.spe_vectors.make_ops` (the first batch cycles through every operation class; for MX8 it is the state-update
class enumeration of :mod:`cosim.coverage`, and the operand classes of every batch are
counted into the counters' ``coverage`` table);
each batch's expected outputs come from one call
of the port-level golden model :func:`quant.spe_slice.reference`, which also models the
unit's PRBS31 generators (one per rounding site, reset to the unit's ``seeds``) for the
``_sr`` units: a valid operation consumes one block of random bits per site.

Reference mutants (checked offline against a golden run's recorded responses,
:func:`cosim.stream.check_mutant`; each must disagree with them): ``no_outer`` (the reference
drops ``k * v``), ``nearest_only`` (``_sr`` units: the reference rounds to nearest) and
``restart_lfsr`` (``_sr`` units: the reference restarts its generators every batch, so it
only agrees on the first one) and ``unfused`` (fused units, ``spe_mx8_fused[_sr]``: the
reference rounds the two products and the sum separately).

Knobs: ``COSIM_VECTORS`` (default :data:`DEFAULT_VECTORS`), ``COSIM_IDLE``, ``COSIM_MUTANT``,
``COCOTB_RANDOM_SEED``.
"""

from __future__ import annotations

import numpy as np
import torch

from quant.rng import SPERandom
from quant.spe_slice import reference, slice_ports

from .coverage import Coverage, enumerate_update, label_update
from .spe_vectors import make_ops
from .stream import StreamPlan, gaps, junk_pool, port_widths

torch.set_num_threads(1)  # planned beside other workers or a simulator (see mx_bench)

__all__ = ["DEFAULT_VECTORS", "BATCH", "MUTANTS", "Model", "mutants", "plan"]

DEFAULT_VECTORS = 1000
#: Operations per golden-model call.
BATCH = 1024
#: Length of the first batch.
FIRST = 100
MUTANTS = ("no_outer", "nearest_only", "restart_lfsr", "unfused")


class Model:
    """Expected output words, batch after batch, from :func:`quant.spe_slice.reference`."""

    def __init__(self, fmt: str, rounding: str, seeds: dict | None, mutant: str | None = None,
                 renorm: str = "lod", fused: bool = False):
        self.fmt, self.rounding, self.seeds, self.mutant = fmt, rounding, seeds, mutant
        self.renorm = renorm
        self.fused = fused
        self.rng = self._fresh()

    def _fresh(self) -> SPERandom | None:
        return SPERandom.lfsr(self.seeds) if self.rounding == "sr" else None

    def __call__(self, s, d, k, v) -> list[int]:
        rounding, rng, fused = self.rounding, self.rng, self.fused
        if self.mutant == "no_outer":
            v = [0] * len(v)          # k * 0 = 0 (or NaN for inf/NaN keys): not the unit
        elif self.mutant == "nearest_only":
            rounding, rng = "rne", None
        elif self.mutant == "restart_lfsr" and rng is not None:
            rng = self.rng = self._fresh()
        elif self.mutant == "unfused":
            fused = False
        return reference(self.fmt, rounding, s, d, k, v, rng, renorm=self.renorm, fused=fused)


def mutants(rounding: str, fused: bool = False) -> tuple[str, ...]:
    """The reference mutants that apply to a slice with rounding ``rounding`` (``unfused``
    only to a fused slice)."""
    names = MUTANTS if rounding == "sr" else ("no_outer", "unfused")
    return tuple(n for n in names if fused or n != "unfused")


def plan(unit, vectors: int, seed: int, *, idle: float = 0.25,
         mutant: str | None = None) -> StreamPlan:
    """``vectors`` operations of the SPE slice ``unit`` (its ``fmt``, ``rounding``,
    ``seeds`` and ``latency``), all drawn from ``seed``."""
    fmt, rounding = unit.fmt, unit.rounding
    fused = getattr(unit, "fused", False)
    if mutant is not None and mutant not in mutants(rounding, fused):
        raise ValueError(f"COSIM_MUTANT={mutant!r}: unknown for rounding {rounding} (allowed: "
                         f"{', '.join(mutants(rounding, fused))})")
    widths = port_widths(unit, ("s", "d", "k", "v"), ("s",))
    ports = slice_ports(fmt)
    for port, width in (("s", ports["W"]), ("v", ports["Wv"])):
        if widths[port] != width:
            raise AssertionError(f"{unit}: port {port} is {widths[port]} bits, the golden "
                                 f"model's {fmt} port is {width}")
    gen = np.random.default_rng(seed)
    # the MX8 slice's renormalization policy (hw.spe_mx8.SpeMx8(renorm=...)); lod otherwise
    model = Model(fmt, rounding, unit.seeds, mutant=mutant,
                  renorm=getattr(unit, "renorm", "lod"), fused=fused)
    inputs: dict[str, list[int]] = {p: [] for p in ("s", "d", "k", "v")}
    expected: list[int] = []
    batches = []
    coverage = Coverage("update") if fmt == "mx8" else None
    while len(expected) < vectors:
        # MX8: the state-update class enumeration first (cosim.coverage), counted
        first = len(enumerate_update()[0]) if fmt == "mx8" else FIRST
        size = min(first if not batches else BATCH, vectors - len(expected))
        ops = make_ops(fmt, size, gen, directed=fmt == "mx8" and not batches)
        batches.append(ops)
        if coverage is not None:
            coverage.add(label_update(ops.s, ops.d, ops.k, ops.v))
        expected += [int(w) for w in model(ops.s, ops.d, ops.k, ops.v)]
        for p in inputs:
            inputs[p] += [int(w) for w in getattr(ops, p)]
    nrng = np.random.default_rng(gen.integers(0, 2**63))
    g = gaps(nrng, vectors, idle)
    junk, pick = junk_pool(nrng, widths, tuple(inputs), int(g.sum()))
    info = {"format": fmt, "rounding": rounding, "fused": fused}
    if coverage is not None:
        info["coverage"] = coverage.table()
    if unit.seeds is not None:
        info["lfsr_seeds"] = dict(unit.seeds)
    return StreamPlan(inputs=inputs, outputs={"s": expected}, widths=widths,
                      latency=unit.latency, gaps=g, junk=junk, junk_pick=pick,
                      batches=batches, info=info)
