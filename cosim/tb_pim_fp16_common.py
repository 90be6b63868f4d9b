"""cocotb side of the fp16 baseline testbench: the simulator *io* of
:class:`cosim.pim_fp16_bench.PimFp16Bench` and :func:`run_unit`, which the cocotb modules
``cosim/tb_timemux_fp16_naive.py``, ``cosim/tb_timemux_fp16_perbank.py`` and
``cosim/tb_pipelined_fp16_perbank.py`` call.

Knobs: ``COSIM_MUTANT`` (:data:`cosim.pim_fp16_bench.MUTANTS`), ``COSIM_VECTORS`` (sub-chunks,
default 128), ``COSIM_IDLE`` (probability of idle cycles before a command, default 0.2),
``SPU_TIMING_FILE`` (default ``build/sim/spu_timing.yaml``; ``-`` to not write it).
"""

from __future__ import annotations

import os

import cocotb

from quant.fp16_pim import LANES

from .pim_fp16_bench import PimFp16Bench, Sample
from sysmodel.measured import BUILD_TIMING, write_unit_timing
from .tb import env_float, port_unsigned as _u, write_result
from .tb_bank_unit import BankUnitIo, start_bank_unit

__all__ = ["CocotbPimIo", "run_unit"]

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
    log, sim_unit, rng, vectors, mutant = await start_bank_unit(dut, name, DEFAULT_VECTORS)
    unit = sim_unit.unit
    bench = PimFp16Bench(CocotbPimIo(dut, unit.banks), unit=unit, rng=rng, vectors=vectors,
                         gap_prob=env_float("COSIM_IDLE", 0.2), log=log, mutant=mutant)
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
    assert not bench.mismatches, f"{len(bench.mismatches)} mismatches, first: " \
                                 f"{bench.mismatches[0]}"
    assert res["vectors"] == res["expected"], res
    return res
