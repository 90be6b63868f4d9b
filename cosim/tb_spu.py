"""cocotb testbench of the SPU with its two banks (unit ``spu_mx8_sim`` and variants:
``spu_mx8_fused_sim``, the fused state update; ``spu_mx8_sim_even``, colliding), one
test per mode (``spu/mode=<mode>``, :data:`MODES`): the simulator *io* of
:class:`cosim.spu_bench.SpuBench` and :func:`run_mode`.

Knobs: ``COSIM_MUTANT`` (:attr:`cosim.spu_bench.SpuBench.MUTANTS`), ``COSIM_VECTORS``
(COMPs, default 512: eight row pairs), ``COSIM_IDLE`` (probability of idle cycles before a
COMP or command, default 0.2), ``SPU_TIMING_FILE`` (set by the runner to the run's output
folder; ``-`` to not write it; a fused SPU's timing goes to its variant's mapping,
``spu_mx8_fused``), ``COSIM_TRACE_FILE`` (the recorded cycles of a passing run,
:mod:`cosim.replay`).
"""

from __future__ import annotations

import enum
import logging
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from .replay import RecordingIo, save
from .spu_bench import Sample, make_bench
from sysmodel.measured import BUILD_TIMING, TIMING_KEYS, spu_variant, write_timing
from .tb import env_float, env_int, make_rng, unit_of, write_result
from .tb_bank_unit import BankUnitIo

__all__ = ["MODES", "CocotbSpuIo", "run_mode", "spu"]

DEFAULT_VECTORS = 512
#: The SPU's modes, one cocotb test each.
MODES = ("state_update", "score", "attend")


def _fields() -> list[tuple[str, int, int]]:
    """(name, offset, mask) of each field of the packed status port (hw.spu_sim.STATUS)."""
    from hw.spu_sim import STATUS

    return [(name, f.offset, (1 << f.width) - 1) for name, f in STATUS]


def _read(handle) -> int:
    """A port's value, straight from the simulator's bit string (X or Z fails the test)."""
    s = handle._handle.get_signal_val_binstr()
    try:
        return int(s, 2)
    except ValueError:
        raise AssertionError(f"{handle._name} is {s} (not 0/1)") from None


class CocotbSpuIo(BankUnitIo):
    """The bank-unit cycle of :class:`cosim.tb_bank_unit.BankUnitIo` on the SPU's two banks.
    The narrow outputs come from one read of the packed ``o_status``; the wide ones are read
    only when their valid bit is set."""

    def __init__(self, dut):
        super().__init__(dut, banks=2)
        self.fields = _fields()

    def sample(self, d) -> Sample:
        word = _read(d.o_status)
        st = {name: (word >> off) & mask for name, off, mask in self.fields}
        return Sample(rdata=_read(d.o_rdata) if st["rvalid"] else 0,
                      wdata=_read(d.o_trace_wdata) if st["wr"] else 0, **st)


async def run_mode(dut, mode: str) -> dict:
    """Run the SPU bench of ``mode`` on the toplevel (a :class:`hw.spu_sim.SpuSim` unit)."""
    log = logging.getLogger(f"cosim.spu_{mode}")
    unit = unit_of(dut)
    seed = make_rng(log).getrandbits(63)
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    idle = env_float("COSIM_IDLE", 0.2)
    mutant = os.environ.get("COSIM_MUTANT", "").strip() or None
    io = RecordingIo(CocotbSpuIo(dut))
    bench = make_bench(io, unit.spu, mode, vectors, seed, idle=idle, log=log, mutant=mutant)
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    dut.i_cmd.value = 0
    dut.i_act.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
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
        write_timing(mode, entry, target, writeback_delay=timing.get("writeback_delay"),
                     variant=spu_variant(fused=unit.spu.fused))
    trace = os.environ.get("COSIM_TRACE_FILE", "").strip()
    if trace and not bench.mismatches and mutant is None:
        save(trace, factory="cosim.spu_bench:replay_bench", io=io,
             meta={"unit": os.environ.get("COSIM_UNIT", "").strip() or dut._name,
                   "mode": mode, "vectors": vectors, "seed": seed, "idle": idle})
    assert not bench.mismatches, f"{len(bench.mismatches)} mismatches, first: " \
                                 f"{bench.mismatches[0]}"
    assert res["vectors"] == res["expected"], res
    return res


# an Enum, so that cocotb names the tests ``spu/mode=<mode>`` (it names long strings by index)
_Mode = enum.Enum("_Mode", {m: m for m in MODES})


@cocotb.test()
@cocotb.parametrize(mode=list(_Mode))
async def spu(dut, mode):
    """One mode over a random workload (select one with the test filter ``spu/mode=<mode>``)."""
    await run_mode(dut, mode.value)
