"""cocotb testbench of the fp16 baseline PIM units with their bank models (toplevels
``<unit>_sim``, hw/pim_fp16_sim.py, for ``timemux_fp16_naive``, ``pipelined_fp16_perbank``
and ``timemux_fp16_perbank``) against quant/fp16_pim.py: the simulator *io* of
:class:`cosim.pim_fp16_bench.PimFp16Bench` and :func:`run_unit`.

Knobs: ``COSIM_MUTANT`` (:data:`cosim.pim_fp16_bench.MUTANTS`), ``COSIM_VECTORS`` (sub-chunks,
default 128), ``COSIM_IDLE`` (probability of idle cycles before a command, default 0.2),
``SPU_TIMING_FILE`` (default ``build/sim/spu_timing.yaml``; ``-`` to not write it).
"""

from __future__ import annotations

import os
import random

import cocotb

from quant.fp16_pim import LANES

from .pim_fp16_bench import PimFp16Bench, Sample
from .replay import RecordingIo, save
from sysmodel.measured import BUILD_TIMING, write_unit_timing
from .tb import env_float, port_unsigned as _u, write_result
from .tb_bank_unit import BankUnitIo, start_bank_unit

__all__ = ["CocotbPimIo", "run_unit", "state_update"]

DEFAULT_VECTORS = 128


class CocotbPimIo(BankUnitIo):
    """The bank-unit cycle of :class:`cosim.tb_bank_unit.BankUnitIo`; a sample holds
    this unit's outputs."""

    def sample(self, d) -> Sample:
        yv = _u(d.o_y_valid)
        return Sample(ready=_u(d.o_ready), busy=_u(d.o_busy), y_valid=yv,
                      y=_u(d.o_y) if yv else 0, y_bank=_u(d.o_y_bank) if yv else 0,
                      y_col=_u(d.o_y_col) if yv else 0, rd=_u(d.o_trace_rd),
                      wr=_u(d.o_trace_wr), wr_col=_u(d.o_trace_wr_col),
                      collision=_u(d.o_collision))


async def run_unit(dut, name: str) -> dict:
    """Run the baseline bench on the toplevel ``<name>_sim`` and record the timing of
    ``name`` (a key of :data:`sysmodel.measured.BASELINE_UNITS`)."""
    log, sim_unit, seed, vectors, mutant = await start_bank_unit(dut, name, DEFAULT_VECTORS)
    unit = sim_unit.unit
    idle = env_float("COSIM_IDLE", 0.2)
    io = RecordingIo(CocotbPimIo(dut, unit.banks))
    bench = PimFp16Bench(io, unit=unit, rng=random.Random(seed), vectors=vectors,
                         gap_prob=idle, log=log, mutant=mutant)
    res = await bench.run()
    timing = res.pop("timing")
    res["test_seed"] = cocotb.RANDOM_SEED
    res["timing"] = timing
    write_result(name, res)
    log.info("%s: %d vectors, %d mismatches, %d collisions, %d cycles (%s cycles/s); "
             "timing %s", name, res["vectors"], res["mismatches"], res["collisions"],
             res["cycles"], res["cycles_per_s"], timing)
    target = os.environ.get("SPU_TIMING_FILE", "").strip() or str(BUILD_TIMING)
    if not bench.mismatches and target != "-" and mutant is None:
        entry = dict(timing, values_per_subchunk=LANES, banks_per_unit=unit.banks,
                     vectors_checked=res["vectors"])
        write_unit_timing(name, entry, target)
    trace = os.environ.get("COSIM_TRACE_FILE", "").strip()
    if trace and not bench.mismatches and mutant is None:
        save(trace, factory="cosim.pim_fp16_bench:replay_bench", io=io,
             meta={"unit": f"{name}_sim", "vectors": vectors, "seed": seed, "idle": idle})
    assert not bench.mismatches, f"{len(bench.mismatches)} mismatches, first: " \
                                 f"{bench.mismatches[0]}"
    assert res["vectors"] == res["expected"], res
    return res


@cocotb.test()
async def state_update(dut):
    """The unit named by the toplevel (``<unit>_sim``)."""
    await run_unit(dut, _unit_name(dut))


def _unit_name(dut) -> str:
    name = os.environ.get("COSIM_UNIT", "").strip() or dut._name
    return name.removesuffix("_sim")
