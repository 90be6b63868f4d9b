"""Time-multiplexed fp16 PIM unit, kept only as an ablation: ``timemux_fp16_naive`` (shared by
two banks; formerly called ``hbmpim_fp16``, but it is *not* Samsung's HBM-PIM, whose
processing unit is :mod:`hw.hbmpim_pcu`) and its per-bank variant (``timemux_fp16_perbank``).
It reduces the dot product 16 -> 1 on its own adders, unpipelined.

One lane group of 16 fp16 multipliers and one of 16 fp16 adders (:class:`hw.fpmul.FPMul`,
:class:`hw.fpadd.FPAdd`, combinational) do every step of a sub-chunk one after another; a new
COMP is accepted only when the previous sub-chunk is finished (no pipelining across
sub-chunks, no access interleaving). FSM, one state per cycle, for a COMP accepted in cycle 0:

====== ========== =================================================================
cycle  state      work
====== ========== =================================================================
0      IDLE       COMP accepted: read column ``col`` of ``bank`` into ``s``;
                  mul lanes: ``u = k * v_col``
1      DECAY      mul lanes: ``t = d * s``
2      ADD        add lanes: ``s = t + u``
3      WB         write ``s`` back to (``bank``, ``col``); mul lanes: ``t = s * q``
4..7   RED        add lanes 0..7: ``t[i] = t[2i] + t[2i+1]`` (4 steps, pairwise tree)
8      IDLE       ``o_y_valid``: ``o_y = t[0]``; the next COMP may be accepted
====== ========== =================================================================

so :attr:`cycles_per_subchunk` = 4 + log2(16) = 8. The golden model is
:func:`quant.fp16_pim.subchunk_update_fp16`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import FPMul

from .pim_fp16_if import FP16, LANES, OperandRegs, PimCmd, addr_layout, lanes_layout
from .pipeline import Staged
from .spu_bank import COLUMN_BITS, COLUMNS, bank_port, mux_tree

__all__ = ["TimeMuxFp16"]

_RED_STEPS = (LANES - 1).bit_length()          # log2(16) = 4


class TimeMuxFp16(Staged, wiring.Component):
    """Time-multiplexed fp16 state-update unit.

    Parameters
    ----------
    banks : {1, 2}
        Banks served: 2 = shared by a bank pair (HBM-PIM style), 1 = one unit per bank.

    Members
    -------
    i_cmd : In(PimCmd)
    i_addr : In(8)
    i_data : In(256)
        Commands (:mod:`hw.pim_fp16_if`).
    o_ready : Out(1)
        A COMP presented in this cycle is accepted (the FSM is idle).
    o_busy : Out(1)
        A sub-chunk is being processed.
    o_y_valid : Out(1)
        ``o_y`` holds the fp16 ``y`` partial of (``o_y_bank``, ``o_y_col``) (one cycle).
    o_y : Out(16)
    o_y_bank : Out(1)
    o_y_col : Out(5)
    bank : Out(bank_port()).array(banks)
        Column accesses of each bank.
    """

    #: The FSM's steps of one sub-chunk, one cycle each (module docstring): the COMP's read,
    #: decay, add, write-back, one step per level of the pairwise reduction.
    STAGES = ("read", "decay", "add", "write_back") + tuple(f"reduce{i}"
                                                            for i in range(_RED_STEPS))

    def __init__(self, *, banks: int = 2):
        if not isinstance(banks, int) or isinstance(banks, bool):
            raise TypeError(f"banks must be an int, not {banks!r}")
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks}")
        self._banks = banks
        super().__init__({
            "i_cmd": In(PimCmd),
            "i_addr": In(8),
            "i_data": In(COLUMN_BITS),
            "o_ready": Out(1),
            "o_busy": Out(1),
            "o_y_valid": Out(1),
            "o_y": Out(FP16),
            "o_y_bank": Out(1),
            "o_y_col": Out(range(COLUMNS)),
            "bank": Out(bank_port()).array(banks),
        })

    @property
    def banks(self) -> int:
        """Banks served by the unit."""
        return self._banks

    @property
    def lanes(self) -> int:
        """fp16 lanes (values per 256-bit column)."""
        return LANES

    @property
    def cycles_per_subchunk(self) -> int:
        """FSM cycles per sub-chunk: every stage in turn (read, decay, add, write-back,
        log2(lanes) reductions); the next COMP waits for the last."""
        return self.latency

    @property
    def read_to_write(self) -> int:
        """Cycles from the read of a sub-chunk to its write-back."""
        return self.stages.index("write_back")

    def elaborate(self, platform):
        # the FSM below has one state per stage up to the write-back, then one RED state
        # stepped once per reduction level: a stage list that does not match fails here
        _read, _decay, _add, _write_back, *reduce = self.stages
        if len(reduce) != _RED_STEPS:
            raise ValueError(f"{type(self).__name__}: {len(reduce)} reduction stages listed, "
                             f"the {LANES}-lane pairwise reduction has {_RED_STEPS}")
        m = Module()
        regs = OperandRegs(self._banks)
        regs.elaborate_writes(m, self.i_cmd, self.i_addr, self.i_data)

        muls = [FPMul("fp16") for _ in range(LANES)]
        adds = [FPAdd("fp16") for _ in range(LANES)]
        for i in range(LANES):
            m.submodules[f"mul{i}"] = muls[i]
            m.submodules[f"add{i}"] = adds[i]

        vec = lanes_layout()
        s = Signal(vec)
        t = Signal(vec)
        u = Signal(vec)
        cur_bank = Signal(range(max(self._banks, 2)))
        cur_col = Signal(range(COLUMNS))
        step = Signal(range(len(reduce)))
        y_valid = Signal()

        def by_bank(values, bank):
            return values[0] if self._banks == 1 else mux_tree(values, bank)

        comp = self.i_cmd == PimCmd.COMP
        addr = data.View(addr_layout, self.i_addr).comp
        in_bank = addr.bank if self._banks > 1 else Const(0, 1)
        in_col = addr.col
        d = by_bank([r.as_value() for r in regs.d], cur_bank)
        q = by_bank([r.as_value() for r in regs.q], cur_bank)
        k_in = by_bank([r.as_value() for r in regs.k], in_bank)
        v_in = mux_tree([by_bank([r[j] for r in regs.v], in_bank) for j in range(COLUMNS)],
                        in_col)
        rdata = by_bank([p.rdata for p in self.bank], in_bank)

        m.d.comb += [
            self.o_y.eq(t[0]),
            self.o_y_valid.eq(y_valid),
            self.o_y_bank.eq(cur_bank),
            self.o_y_col.eq(cur_col),
        ]
        for b, port in enumerate(self.bank):
            m.d.comb += [port.rd_col.eq(in_col), port.wr_col.eq(cur_col), port.wdata.eq(s)]
        m.d.sync += y_valid.eq(0)

        def lanes_mul(a, b_scalar=None, b=None):
            for i in range(LANES):
                m.d.comb += [muls[i].a.eq(a[16 * i:16 * (i + 1)]),
                             muls[i].b.eq(b_scalar if b is None else b[16 * i:16 * (i + 1)])]

        sv = s.as_value()
        # Outputs that the bench samples from the first cycle are plain assignments (continuous
        # assigns in the Verilog; Icarus does not evaluate an `always @*` whose inputs never
        # changed).
        with m.FSM() as fsm:
            with m.State("IDLE"):
                lanes_mul(k_in, b_scalar=v_in)
                with m.If(comp):
                    m.d.sync += [s.eq(rdata), cur_bank.eq(in_bank), cur_col.eq(in_col)]
                    m.d.sync += [u[i].eq(muls[i].o) for i in range(LANES)]
                    m.next = "DECAY"
            with m.State("DECAY"):
                lanes_mul(d, b=sv)
                m.d.sync += [t[i].eq(muls[i].o) for i in range(LANES)]
                m.next = "ADD"
            with m.State("ADD"):
                for i in range(LANES):
                    m.d.comb += [adds[i].a.eq(t[i]), adds[i].b.eq(u[i])]
                m.d.sync += [s[i].eq(adds[i].o) for i in range(LANES)]
                m.next = "WB"
            with m.State("WB"):
                lanes_mul(sv, b=q)
                m.d.sync += [t[i].eq(muls[i].o) for i in range(LANES)]
                m.d.sync += step.eq(0)
                m.next = "RED"
            with m.State("RED"):
                for i in range(LANES // 2):
                    m.d.comb += [adds[i].a.eq(t[2 * i]), adds[i].b.eq(t[2 * i + 1])]
                    m.d.sync += t[i].eq(adds[i].o)
                m.d.sync += step.eq(step + 1)
                with m.If(step == len(reduce) - 1):
                    m.d.sync += y_valid.eq(1)
                    m.next = "IDLE"
        idle, wb = fsm.ongoing("IDLE"), fsm.ongoing("WB")
        m.d.comb += [self.o_ready.eq(idle), self.o_busy.eq(~idle)]
        for b, port in enumerate(self.bank):
            m.d.comb += [port.rd.eq(idle & comp & (in_bank == b)),
                         port.wr.eq(wb & (cur_bank == b))]
        return m


register_unit("timemux_fp16_naive", lambda: TimeMuxFp16(banks=2))
register_unit("timemux_fp16_perbank", lambda: TimeMuxFp16(banks=1))
