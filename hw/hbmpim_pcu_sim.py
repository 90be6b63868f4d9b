"""Simulation toplevel of the HBM-PIM PCU with its bank row buffers (:class:`HbmPimPcuSim`).

The PCU (:class:`hw.hbmpim_pcu.HbmPimPcu`) drives one :class:`hw.spu_bank.BankModel` per
bank it serves; the testbench plays the memory controller (commands; ACTIVATE by loading a
whole row with ``i_act``; PRECHARGE by reading ``o_row_*``) and watches the column accesses
on ``o_trace_*``. Not synthesised.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .export import register_unit
from .hbmpim_pcu import HbmPimPcu, PcuCmd
from .spu_bank import COLUMN_BITS, COLUMNS, attach_bank_models

__all__ = ["HbmPimPcuSim"]

_BANK_NAMES = "ab"


class HbmPimPcuSim(wiring.Component):
    """A PCU plus one bank model per bank it serves.

    Members
    -------
    i_cmd, i_addr, i_data, o_rdata, o_rvalid, o_running, o_pc, o_error
        The PCU's ports.
    i_act : In(banks)
        ACTIVATE: load ``i_row_<bank>`` into the row buffer of each set bit.
    i_row_a, (i_row_b) : In(ArrayLayout(256, 32))
    o_row_a, (o_row_b) : Out(ArrayLayout(256, 32))
    o_trace_rd, o_trace_wr : Out(banks)
        Column read / write per bank in this cycle.
    o_collision : Out(banks)
    o_collisions : Out(16)
    """

    def __init__(self, unit: HbmPimPcu):
        if not isinstance(unit, HbmPimPcu):
            raise TypeError(f"unit must be an HbmPimPcu, not {unit!r}")
        self._unit = unit
        nb = unit.banks
        row = data.ArrayLayout(COLUMN_BITS, COLUMNS)
        ports = {
            "i_cmd": In(PcuCmd), "i_addr": In(8), "i_data": In(COLUMN_BITS),
            "o_rdata": Out(COLUMN_BITS), "o_rvalid": Out(1), "o_running": Out(1),
            "o_pc": Out(5), "o_error": Out(1),
            "i_act": In(nb), "o_trace_rd": Out(nb), "o_trace_wr": Out(nb),
            "o_collision": Out(nb), "o_collisions": Out(16),
        }
        for b in range(nb):
            ports[f"i_row_{_BANK_NAMES[b]}"] = In(row)
            ports[f"o_row_{_BANK_NAMES[b]}"] = Out(row)
        super().__init__(ports)

    @property
    def unit(self) -> HbmPimPcu:
        """The PCU inside."""
        return self._unit

    def elaborate(self, platform):
        m = Module()
        u = m.submodules.unit = self._unit
        banks = attach_bank_models(m, self, u, _BANK_NAMES)
        m.d.comb += [
            u.i_cmd.eq(self.i_cmd), u.i_addr.eq(self.i_addr), u.i_data.eq(self.i_data),
            self.o_rdata.eq(u.o_rdata), self.o_rvalid.eq(u.o_rvalid),
            self.o_running.eq(u.o_running), self.o_pc.eq(u.o_pc), self.o_error.eq(u.o_error),
            self.o_trace_rd.eq(Cat(*(p.rd for p in u.bank))),
            self.o_trace_wr.eq(Cat(*(p.wr for p in u.bank))),
            self.o_collision.eq(Cat(*(b.o_collision for b in banks))),
            self.o_collisions.eq(sum(b.o_collisions for b in banks)),
        ]
        return m


register_unit("hbmpim_pcu_sim", lambda: HbmPimPcuSim(HbmPimPcu(banks=2)))
register_unit("hbmpim_pcu_perbank_sim", lambda: HbmPimPcuSim(HbmPimPcu(banks=1)))
