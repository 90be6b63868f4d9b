"""cocotb testbench of the HBM-PIM PCUs with their bank models (toplevels ``hbmpim_pcu_sim``
and ``hbmpim_pcu_perbank_sim``, hw/hbmpim_pcu_sim.py) against quant/hbmpim_pcu.py: the
simulator *io* of :class:`cosim.hbmpim_pcu_bench.PcuBench` and :func:`run_unit`.

Knobs: ``COSIM_MUTANT`` (:data:`cosim.hbmpim_pcu_bench.MUTANTS`), ``COSIM_VECTORS`` (data
columns per mode, default 96), ``COSIM_IDLE`` (probability of idle cycles before a command,
default 0.2), ``SPU_TIMING_FILE`` (default ``build/sim/spu_timing.yaml``; ``-`` to not write).
"""

from __future__ import annotations

import os
import random

import cocotb

from quant.hbmpim_programs import LANES, MODES

from .hbmpim_pcu_bench import PcuBench, Sample
from .replay import RecordingIo, save
from sysmodel.measured import BUILD_TIMING, write_pcu_timing
from .tb import env_float, port_unsigned as _u, write_result
from .tb_bank_unit import BankUnitIo, start_bank_unit

__all__ = ["CocotbPcuIo", "programs", "run_unit"]

DEFAULT_VECTORS = 96


class CocotbPcuIo(BankUnitIo):
    """The bank-unit cycle of :class:`cosim.tb_bank_unit.BankUnitIo`; a sample holds
    this unit's outputs."""

    def sample(self, d) -> Sample:
        rv = _u(d.o_rvalid)
        return Sample(rdata=_u(d.o_rdata) if rv else 0, rvalid=rv, running=_u(d.o_running),
                      error=_u(d.o_error), rd=_u(d.o_trace_rd), wr=_u(d.o_trace_wr),
                      collision=_u(d.o_collision))


async def run_unit(dut, name: str) -> dict:
    """Run the PCU bench on the toplevel ``<name>_sim`` and record the timing of ``name``
    (a key of :data:`sysmodel.measured.PCU_UNITS`)."""
    log, sim_unit, seed, vectors, mutant = await start_bank_unit(dut, name, DEFAULT_VECTORS)
    unit = sim_unit.unit
    idle = env_float("COSIM_IDLE", 0.2)
    io = RecordingIo(CocotbPcuIo(dut, unit.banks))
    bench = PcuBench(io, unit=unit, rng=random.Random(seed), vectors=vectors, gap_prob=idle,
                     log=log, mutant=mutant)
    res = await bench.run()
    res["test_seed"] = cocotb.RANDOM_SEED
    res["expected"] = res["vectors"]
    write_result(name, res)
    log.info("%s: %d vectors, %d mismatches, %d collisions, %d cycles (%s cycles/s); "
             "modes %s", name, res["vectors"], res["mismatches"], res["collisions"],
             res["cycles"], res["cycles_per_s"], res["modes"])
    target = os.environ.get("SPU_TIMING_FILE", "").strip() or str(BUILD_TIMING)
    if not bench.mismatches and target != "-" and mutant is None:
        entry = {"banks_per_unit": unit.banks, "lanes": LANES}
        entry.update({m: res["modes"][m] for m in MODES})
        write_pcu_timing(name, entry, target)
    trace = os.environ.get("COSIM_TRACE_FILE", "").strip()
    if trace and not bench.mismatches and mutant is None:
        save(trace, factory="cosim.hbmpim_pcu_bench:replay_bench", io=io,
             meta={"unit": f"{name}_sim", "vectors": vectors, "seed": seed, "idle": idle})
    assert not bench.mismatches, f"{len(bench.mismatches)} mismatches, first: " \
                                 f"{bench.mismatches[0]}"
    return res


@cocotb.test()
async def programs(dut):
    """The unit named by the toplevel (``<unit>_sim``)."""
    name = os.environ.get("COSIM_UNIT", "").strip() or dut._name
    await run_unit(dut, name.removesuffix("_sim"))
