"""cocotb plumbing shared by the benches of the bank-attached baseline units (the fp16
ablation units, ``cosim/tb_pim_fp16.py``, and the HBM-PIM PCU,
``cosim/tb_hbmpim_pcu.py``): one command cycle on the ``<unit>_sim`` toplevel's
command and bank-row ports, and the clock/reset start-up with the common knobs.
"""

from __future__ import annotations

import logging
import os

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from .tb import env_int, make_rng, port_unsigned as _u, unit_of

__all__ = ["BankUnitIo", "start_bank_unit"]


class BankUnitIo:
    """Drive a cycle just after a rising edge, sample in the read-only phase, wait for the
    next rising edge (the harness's timing convention, ``docs/cosim.md``). Subclasses say
    what a sample holds (:meth:`sample`)."""

    def __init__(self, dut, banks: int):
        self.dut, self.banks = dut, banks

    def sample(self, dut):
        """The bench's ``Sample`` of the outputs, read in the read-only phase."""
        raise NotImplementedError

    async def cycle(self, cmd, addr, data, act, rows, read_rows):
        d = self.dut
        d.i_cmd.value = cmd
        d.i_addr.value = addr
        d.i_data.value = data
        d.i_act.value = act
        if rows is not None:
            for b, name in zip(range(self.banks), "ab"):
                getattr(d, f"i_row_{name}").value = rows[b]
        await ReadOnly()
        s = self.sample(d)
        if read_rows:
            s.rows = tuple(_u(getattr(d, f"o_row_{n}")) for n in "ab"[:self.banks])
        await RisingEdge(d.clk)
        return s


async def start_bank_unit(dut, name: str, default_vectors: int) -> tuple:
    """Start the clock, reset the unit and read the knobs: ``(log, sim_unit, seed, vectors,
    mutant)`` (``COSIM_VECTORS``, default ``default_vectors``; ``COSIM_MUTANT``); the bench's
    ``random.Random(seed)`` draws everything (a recorded run replays from it)."""
    log = logging.getLogger(f"cosim.{name}")
    sim_unit = unit_of(dut)
    seed = make_rng(log).getrandbits(63)
    vectors = env_int("COSIM_VECTORS", default_vectors)
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    dut.i_cmd.value = 0
    dut.i_act.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    mutant = os.environ.get("COSIM_MUTANT", "").strip() or None
    return log, sim_unit, seed, vectors, mutant
