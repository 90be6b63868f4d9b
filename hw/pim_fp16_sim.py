"""Simulation toplevel of an fp16 baseline unit with its bank row buffers (:class:`PimFp16Sim`).

The unit (:class:`hw.pim_timemux_fp16.TimeMuxFp16` or
:class:`hw.pim_pipelined_fp16.PipelinedFp16`) drives one :class:`hw.spu_bank.BankModel` per
bank it serves; the testbench plays the memory controller (commands, ACTIVATE by loading a
whole row with ``i_act``, PRECHARGE by reading ``o_row_*``) and watches the column accesses
on ``o_trace_*``. Not synthesised.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .export import register_unit
from .pim_fp16_if import FP16, PimCmd
from .pim_pipelined_fp16 import PipelinedFp16
from .pim_timemux_fp16 import TimeMuxFp16
from .spu_bank import COLUMN_BITS, COLUMNS, attach_bank_models

__all__ = ["PimFp16Sim"]

_BANK_NAMES = "ab"


class PimFp16Sim(wiring.Component):
    """A baseline unit plus one bank model per bank it serves.

    Parameters
    ----------
    unit : TimeMuxFp16 or PipelinedFp16
        The unit (its properties: :attr:`unit`).

    Members
    -------
    i_cmd, i_addr, i_data, o_ready, o_busy, o_y_valid, o_y, o_y_bank, o_y_col
        The unit's ports.
    i_act : In(banks)
        ACTIVATE: load ``i_row_<bank>`` into the row buffer of each set bit.
    i_row_a, (i_row_b) : In(ArrayLayout(256, 32))
    o_row_a, (o_row_b) : Out(ArrayLayout(256, 32))
        The row buffers.
    o_trace_rd, o_trace_wr : Out(banks)
        Column read / write per bank in this cycle.
    o_trace_wr_col : Out(5)
        Column of the write (of the bank being written).
    o_collision : Out(banks)
        A bank is read and written in this cycle (bank model's check).
    o_collisions : Out(16)
        Collisions since reset, all banks.
    """

    def __init__(self, unit):
        if not isinstance(unit, (TimeMuxFp16, PipelinedFp16)):
            raise TypeError(f"unit must be a TimeMuxFp16 or PipelinedFp16, not {unit!r}")
        self._unit = unit
        nb = unit.banks
        row = data.ArrayLayout(COLUMN_BITS, COLUMNS)
        ports = {
            "i_cmd": In(PimCmd), "i_addr": In(8), "i_data": In(COLUMN_BITS),
            "o_ready": Out(1), "o_busy": Out(1), "o_y_valid": Out(1), "o_y": Out(FP16),
            "o_y_bank": Out(1), "o_y_col": Out(range(COLUMNS)),
            "i_act": In(nb),
            "o_trace_rd": Out(nb), "o_trace_wr": Out(nb), "o_trace_wr_col": Out(range(COLUMNS)),
            "o_collision": Out(nb), "o_collisions": Out(16),
        }
        for b in range(nb):
            ports[f"i_row_{_BANK_NAMES[b]}"] = In(row)
            ports[f"o_row_{_BANK_NAMES[b]}"] = Out(row)
        super().__init__(ports)

    @property
    def unit(self):
        """The unit inside."""
        return self._unit

    def elaborate(self, platform):
        m = Module()
        u = m.submodules.unit = self._unit
        banks = attach_bank_models(m, self, u, _BANK_NAMES)
        m.d.comb += [
            u.i_cmd.eq(self.i_cmd), u.i_addr.eq(self.i_addr), u.i_data.eq(self.i_data),
            self.o_ready.eq(u.o_ready), self.o_busy.eq(u.o_busy),
            self.o_y_valid.eq(u.o_y_valid), self.o_y.eq(u.o_y),
            self.o_y_bank.eq(u.o_y_bank), self.o_y_col.eq(u.o_y_col),
            self.o_trace_rd.eq(Cat(*(p.rd for p in u.bank))),
            self.o_trace_wr.eq(Cat(*(p.wr for p in u.bank))),
            self.o_trace_wr_col.eq(u.bank[0].wr_col),
            self.o_collision.eq(Cat(*(b.o_collision for b in banks))),
            self.o_collisions.eq(sum(b.o_collisions for b in banks)),
        ]
        return m


register_unit("timemux_fp16_naive_sim", lambda: PimFp16Sim(TimeMuxFp16(banks=2)))
register_unit("timemux_fp16_perbank_sim", lambda: PimFp16Sim(TimeMuxFp16(banks=1)))
register_unit("pipelined_fp16_perbank_sim", lambda: PimFp16Sim(PipelinedFp16()))
register_unit("pipelined_fp16_perbank_sim_noalt",
              lambda: PimFp16Sim(PipelinedFp16(_no_alternate=True)))
