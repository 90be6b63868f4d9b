"""Simulator side of the SPE datapath-slice testbench (``cosim/tb_spe.py``), for every unit
``spe_<format>[_sr]`` (:mod:`hw.spe_float`, :mod:`hw.spe_int8`, :mod:`hw.spe_mx8`).

One streaming bench (:class:`cosim.tb.StreamBench`: random idle gaps with junk on the idle
data ports, monitor, in-order scoreboard that checks every output bit and the latency the
unit reports). Operations come in batches from :func:`cosim.spe_vectors.make_ops` (the first
batch cycles through every operation class); each batch's expected outputs come from one call
of the port-level golden model :func:`quant.spe_slice.reference`, which also models the
unit's PRBS31 generators (one per rounding site, reset to the unit's ``seeds``) for the
``_sr`` units: a valid operation consumes one block of random bits per site.

Mutants (``COSIM_MUTANT``; each must make the scoreboard fail): ``no_outer`` (the reference
drops ``k * v``), ``nearest_only`` (``_sr`` units: the reference rounds to nearest) and
``restart_lfsr`` (``_sr`` units: the reference restarts its generators every batch, so it
only agrees on the first one) and ``unfused`` (fused units, ``spe_mx8_fused[_sr]``: the
reference rounds the two products and the sum separately).

Knobs: ``COSIM_VECTORS`` (default :data:`DEFAULT_VECTORS`), ``COSIM_IDLE``, ``COSIM_MUTANT``,
``COCOTB_RANDOM_SEED``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch

from quant.rng import SPERandom
from quant.spe_slice import reference, slice_ports

from .spe_vectors import make_ops
from .tb import StreamBench, env_int, make_rng, select_model, unit_of

torch.set_num_threads(1)  # the simulator runs in this process

__all__ = ["DEFAULT_VECTORS", "BATCH", "MUTANTS", "SpeIn", "SpeOut", "run_spe_bench"]

DEFAULT_VECTORS = 1000
#: Operations per golden-model call.
BATCH = 1024
#: Length of the first batch.
FIRST = 100
MUTANTS = ("no_outer", "nearest_only", "restart_lfsr", "unfused")


@dataclasses.dataclass(frozen=True)
class SpeIn:
    """One operation: port values ``i_s``, ``i_d``, ``i_k``, ``i_v``."""
    s: int
    d: int
    k: int
    v: int


@dataclasses.dataclass(frozen=True)
class SpeOut:
    """The updated sub-chunk (``o_s``)."""
    s: int


class Model:
    """Expected output words, batch after batch, from :func:`quant.spe_slice.reference`."""

    def __init__(self, fmt: str, rounding: str, seeds: dict | None, mutant: str | None = None,
                 fused: bool = False):
        self.fmt, self.rounding, self.seeds, self.mutant = fmt, rounding, seeds, mutant
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
        return reference(self.fmt, rounding, s, d, k, v, rng, fused=fused)


def _models(fmt: str, rounding: str, seeds, fused: bool = False) -> dict:
    models = {"golden": lambda: Model(fmt, rounding, seeds, fused=fused)}
    for name in MUTANTS:
        if name in ("nearest_only", "restart_lfsr") and rounding != "sr":
            continue
        if name == "unfused" and not fused:
            continue
        models[name] = lambda name=name: Model(fmt, rounding, seeds, mutant=name, fused=fused)
    return models


def _stimulus(fmt: str, n: int, gen: np.random.Generator, model: Model,
              expected: deque) -> Iterator[SpeIn]:
    sent = 0
    while sent < n:
        size = min(FIRST if sent == 0 else BATCH, n - sent)
        ops = make_ops(fmt, size, gen)
        want = model(ops.s, ops.d, ops.k, ops.v)
        for i in range(size):
            txn = SpeIn(ops.s[i], ops.d[i], ops.k[i], ops.v[i])
            expected.append((txn, SpeOut(want[i])))
            yield txn
        sent += size


async def run_spe_bench(dut, *, name: str | None = None) -> dict:
    """Run the streaming bench on the SPE slice simulated as ``dut``; return its counters."""
    unit = unit_of(dut)
    fmt, rounding = unit.fmt, unit.rounding
    ports = slice_ports(fmt)
    for port, width in (("i_s", ports["W"]), ("i_v", ports["Wv"]), ("o_s", ports["W"])):
        if len(getattr(dut, port)) != width:
            raise AssertionError(f"{dut._name}.{port} is {len(getattr(dut, port))} bits, the "
                                 f"golden model's {fmt} port is {width}")
    rng = make_rng()
    fused = getattr(unit, "fused", False)
    model = select_model(_models(fmt, rounding, unit.seeds, fused))()
    expected: deque = deque()

    def pop(txn):
        sent, out = expected.popleft()
        assert sent is txn, "stimulus and expectations out of step"
        return out

    bench = StreamBench(dut, in_type=SpeIn, out_type=SpeOut, model=pop,
                        latency=unit.latency, rng=rng, name=name)
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    gen = np.random.default_rng(rng.getrandbits(63))
    bench.log.info("%s: %s%s, rounding %s, latency %d, %d vectors%s", dut._name, fmt,
                   " fused" if fused else "", rounding, unit.latency, vectors,
                   "" if unit.seeds is None else
                   ", seeds " + " ".join(f"{k}={v:#x}" for k, v in unit.seeds.items()))
    return await bench.run(_stimulus(fmt, vectors, gen, model, expected))
