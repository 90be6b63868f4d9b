"""Simulation toplevel: the SPU with its two banks (:class:`SpuSim`).

:class:`hw.spu.Spu` drives two :class:`hw.spu_bank.BankModel` row buffers through its real bank
ports; the testbench plays the memory controller (commands on ``i_cmd``/``i_addr``/``i_data``,
ACTIVATE by loading a whole row with ``i_act``, PRECHARGE by reading ``o_row_*``) and watches
every column access on the ``o_trace_*`` ports. Not synthesised.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .export import register_unit
from .spu import BANKS, Cmd, Spu
from .spu_bank import COLUMN_BITS, COLUMNS, BankModel

__all__ = ["STATUS", "SpuSim"]

#: ``o_status``: every narrow output of a cycle packed in one port, so that a testbench reads
#: one value per cycle instead of nine (field order = bit order, LSB first).
STATUS = data.StructLayout({
    "comp_ready": 1, "busy": 1, "err": 1, "rvalid": 1,
    "rd": BANKS, "wr": BANKS, "collision": BANKS, "rd_col": 5, "wr_col": 5,
})


class SpuSim(wiring.Component):
    """:class:`hw.spu.Spu` plus two bank models.

    Parameters
    ----------
    **spu_kwargs
        Passed to :class:`hw.spu.Spu` (``_even_distance=True`` gives the colliding variant).

    Members
    -------
    i_cmd, i_addr, i_data, o_comp_ready, o_busy, o_err, o_rvalid, o_rdata
        The SPU's command interface (:class:`hw.spu.Spu`).
    i_act : In(2)
        ACTIVATE bank A (bit 0) / B (bit 1): load ``i_row_a`` / ``i_row_b``.
    i_row_a, i_row_b : In(ArrayLayout(256, 32))
    o_row_a, o_row_b : Out(ArrayLayout(256, 32))
        The row buffers.
    o_trace_rd, o_trace_wr : Out(2)
        Column read / write of bank A (bit 0) and B (bit 1) in this cycle.
    o_trace_rd_col, o_trace_wr_col : Out(5)
        Column of the read (of the bank being read) and of the write.
    o_trace_wdata : Out(256)
        Data of the write.
    o_collision : Out(2)
        A bank is read and written in this cycle (bank model's check).
    o_collisions : Out(16)
        Collisions since reset, both banks.
    o_status : Out(STATUS)
        ``o_comp_ready``, ``o_busy``, ``o_err``, ``o_rvalid``, ``o_trace_rd``,
        ``o_trace_wr``, ``o_collision``, ``o_trace_rd_col`` and ``o_trace_wr_col`` packed.
    """

    def __init__(self, **spu_kwargs):
        self._spu = Spu(**spu_kwargs)
        row = data.ArrayLayout(COLUMN_BITS, COLUMNS)
        super().__init__({
            "i_cmd": In(Cmd),
            "i_addr": In(8),
            "i_data": In(COLUMN_BITS),
            "o_comp_ready": Out(1),
            "o_busy": Out(1),
            "o_err": Out(1),
            "o_rvalid": Out(1),
            "o_rdata": Out(COLUMN_BITS),
            "i_act": In(BANKS),
            "i_row_a": In(row),
            "i_row_b": In(row),
            "o_row_a": Out(row),
            "o_row_b": Out(row),
            "o_trace_rd": Out(BANKS),
            "o_trace_wr": Out(BANKS),
            "o_trace_rd_col": Out(5),
            "o_trace_wr_col": Out(5),
            "o_trace_wdata": Out(COLUMN_BITS),
            "o_collision": Out(BANKS),
            "o_collisions": Out(16),
            "o_status": Out(STATUS),
        })

    @property
    def spu(self) -> Spu:
        """The SPU inside (its timing properties)."""
        return self._spu

    def elaborate(self, platform):
        m = Module()
        m.submodules.spu = spu = self._spu
        banks = [BankModel() for _ in range(BANKS)]
        m.submodules.bank_a, m.submodules.bank_b = banks
        for b, bank in enumerate(banks):
            wiring.connect(m, spu.bank[b], bank.port)
        m.d.comb += [
            spu.i_cmd.eq(self.i_cmd),
            spu.i_addr.eq(self.i_addr),
            spu.i_data.eq(self.i_data),
            self.o_comp_ready.eq(spu.o_comp_ready),
            self.o_busy.eq(spu.o_busy),
            self.o_err.eq(spu.o_err),
            self.o_rvalid.eq(spu.o_rvalid),
            self.o_rdata.eq(spu.o_rdata),
            banks[0].i_act.eq(self.i_act[0]),
            banks[1].i_act.eq(self.i_act[1]),
            banks[0].i_row.eq(self.i_row_a),
            banks[1].i_row.eq(self.i_row_b),
            self.o_row_a.eq(banks[0].o_row),
            self.o_row_b.eq(banks[1].o_row),
            self.o_trace_rd.eq(Cat(spu.bank[0].rd, spu.bank[1].rd)),
            self.o_trace_wr.eq(Cat(spu.bank[0].wr, spu.bank[1].wr)),
            self.o_trace_rd_col.eq(Mux(spu.bank[1].rd, spu.bank[1].rd_col, spu.bank[0].rd_col)),
            self.o_trace_wr_col.eq(spu.bank[0].wr_col),
            self.o_trace_wdata.eq(spu.bank[0].wdata),
            self.o_collision.eq(Cat(banks[0].o_collision, banks[1].o_collision)),
            self.o_collisions.eq(banks[0].o_collisions + banks[1].o_collisions),
        ]
        st = self.o_status
        m.d.comb += [
            st.comp_ready.eq(self.o_comp_ready), st.busy.eq(self.o_busy), st.err.eq(self.o_err),
            st.rvalid.eq(self.o_rvalid), st.rd.eq(self.o_trace_rd), st.wr.eq(self.o_trace_wr),
            st.collision.eq(self.o_collision), st.rd_col.eq(self.o_trace_rd_col),
            st.wr_col.eq(self.o_trace_wr_col),
        ]
        return m


register_unit("spu_mx8_sim", lambda: SpuSim())
register_unit("spu_mx8_sim_even", lambda: SpuSim(_even_distance=True))
register_unit("spu_mx8_fused_sim", lambda: SpuSim(fused=True))
