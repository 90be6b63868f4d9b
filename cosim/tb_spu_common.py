"""cocotb side of the SPU testbench: the simulator *io* of :class:`cosim.spu_bench.SpuBench`
and :func:`run_mode`, which the three cocotb modules ``cosim/tb_spu_<mode>.py`` call.

Knobs: ``COSIM_MUTANT`` (:attr:`cosim.spu_bench.SpuBench.MUTANTS`), ``COSIM_VECTORS``
(COMPs, default 512: eight row pairs), ``COSIM_IDLE`` (probability of idle cycles before a COMP or command, default 0.2), ``SPU_TIMING_FILE``
(default ``build/sim/spu_timing.yaml``; ``-`` to not write it).
"""

from __future__ import annotations

import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from .spu_bench import Sample, SpuBench, workload_size
from .spu_model import make_workload
from sysmodel.measured import BUILD_TIMING, TIMING_KEYS, write_timing
from .tb import env_float, env_int, make_rng, unit_of, write_result, port_unsigned as _u

__all__ = ["CocotbSpuIo", "run_mode"]

DEFAULT_VECTORS = 512


class CocotbSpuIo:
    """Drive a cycle just after a rising edge, sample in the read-only phase, wait for the
    next rising edge (the harness's timing convention, ``docs/cosim.md``)."""

    def __init__(self, dut):
        self.dut = dut

    async def cycle(self, cmd, addr, data, act, rows, read_rows) -> Sample:
        d = self.dut
        d.i_cmd.value = cmd
        d.i_addr.value = addr
        d.i_data.value = data
        d.i_act.value = act
        if rows is not None:
            d.i_row_a.value = rows[0]
            d.i_row_b.value = rows[1]
        await ReadOnly()
        wr = _u(d.o_trace_wr)
        rvalid = _u(d.o_rvalid)
        s = Sample(comp_ready=_u(d.o_comp_ready), busy=_u(d.o_busy), err=_u(d.o_err),
                   rvalid=rvalid, rdata=_u(d.o_rdata) if rvalid else 0,
                   rd=_u(d.o_trace_rd), rd_col=_u(d.o_trace_rd_col), wr=wr,
                   wr_col=_u(d.o_trace_wr_col), wdata=_u(d.o_trace_wdata) if wr else 0,
                   collision=_u(d.o_collision))
        if read_rows:
            s.rows = (_u(d.o_row_a), _u(d.o_row_b))
        await RisingEdge(d.clk)
        return s


async def run_mode(dut, mode: str) -> dict:
    """Run the SPU bench of ``mode`` on the toplevel (a :class:`hw.spu_sim.SpuSim` unit)."""
    log = logging.getLogger(f"cosim.spu_{mode}")
    unit = unit_of(dut)
    spu = unit.spu
    rng = make_rng(log)
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    L, H, C = workload_size(vectors, rng)
    first = rng.getrandbits(1)
    pairs = L * H // 2
    work = make_workload(mode, L=L, H=H, C=C, seed=rng.getrandbits(31),
                         stochastic=[bool((p + first) % 2) for p in range(pairs)])
    log.info("%s: L=%d H=%d C=%d (%d chunk groups, %d row pairs), stochastic %s", mode, L, H,
             C, L * H, pairs * C, work.stochastic)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i_cmd.value = 0
    dut.i_act.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    mutant = os.environ.get("COSIM_MUTANT", "").strip() or None
    bench = SpuBench(CocotbSpuIo(dut), work, rng=rng, spu=spu,
                     gap_prob=env_float("COSIM_IDLE", 0.2), log=log, mutant=mutant)
    res = await bench.run()
    timing = res.pop("timing")
    res["test_seed"] = cocotb.RANDOM_SEED
    write_result(f"spu_{mode}", res)
    log.info("%s: %d vectors, %d mismatches, %d collisions, %d cycles (%s cycles/s); "
             "timing %s", mode, res["vectors"], res["mismatches"], res["collisions"],
             res["cycles"], res["cycles_per_s"], timing)
    target = os.environ.get("SPU_TIMING_FILE", "").strip() or str(BUILD_TIMING)
    if not bench.mismatches and target != "-" and mutant is None:
        entry = {k: timing[k] for k in TIMING_KEYS if k != "vectors_checked"}
        entry["vectors_checked"] = res["vectors"]
        write_timing(mode, entry, target, writeback_delay=timing.get("writeback_delay"))
    assert not bench.mismatches, f"{len(bench.mismatches)} mismatches, first: " \
                                 f"{bench.mismatches[0]}"
    assert res["vectors"] == res["expected"], res
    return res
