"""Pipelined fp16 PIM unit, one per bank (``pipelined_fp16_perbank``).

The brief's four-stage datapath in fp16 (:class:`hw.fpmul.FPMul`, :class:`hw.fpadd.FPAdd`),
for a COMP accepted (and its column read) in cycle 0:

======= ====== ===================================================================
cycle   stage  work
======= ====== ===================================================================
0       F      read column ``col`` (registered into ``f_s``)
1       M      ``d * s`` and ``k * v_col`` in parallel (32 multipliers)
2       A      ``t + u`` (16 adders)
3       W/D    write-back of the updated sub-chunk; dot products ``s' * q`` (16 mult.)
4..7    D      pairwise adder tree, one level per stage (8 + 4 + 2 + 1 adders)
8              ``o_y_valid``
======= ====== ===================================================================

The read-to-write distance is 3 (odd). One bank's row buffer cannot be read and written in
the same cycle, so reads and writes alternate: a COMP is accepted only in even cycles (a phase
bit, ``o_ready``), and every write-back lands in an odd cycle. The sustained rate is one
sub-chunk every :attr:`cycles_per_subchunk` = 2 cycles. The variant ``_no_alternate=True``
(simulation only) accepts a COMP every cycle and must collide in the bank model.
Golden model: :func:`quant.fp16_pim.subchunk_update_fp16`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import FPMul

from .pim_fp16_if import FP16, LANES, OperandRegs, PimCmd, addr_layout, lanes_layout
from .pipeline import Staged
from .spu_bank import COLUMN_BITS, COLUMNS, bank_port, mux_tree

__all__ = ["PipelinedFp16"]

_TREE_LEVELS = (LANES - 1).bit_length()        # 4


def _valid_name(stage: str) -> str:
    # the adder tree's valid registers are t<level>_v (the names the Verilog has always had)
    return f"{stage}_v" if stage.startswith("t") else f"{stage}_valid"


class PipelinedFp16(Staged, wiring.Component):
    """Per-bank pipelined fp16 state-update unit.

    Parameters
    ----------
    _no_alternate : bool
        Simulation only: accept a COMP in every cycle (reads collide with write-backs).

    Members
    -------
    i_cmd : In(PimCmd)
    i_addr : In(8)
    i_data : In(256)
        Commands (:mod:`hw.pim_fp16_if`; bank bit 0).
    o_ready : Out(1)
        A COMP presented in this cycle is accepted (read phase).
    o_busy : Out(1)
        A sub-chunk is in the pipeline.
    o_y_valid : Out(1)
        ``o_y`` holds the fp16 ``y`` partial of column ``o_y_col`` (one cycle).
    o_y : Out(16)
    o_y_bank : Out(1)
        Always 0 (one bank; same ports as :class:`hw.pim_timemux_fp16.TimeMuxFp16`).
    o_y_col : Out(5)
    bank : Out(bank_port()).array(1)
        Column accesses of the bank.
    """

    #: Register stages from the accepted COMP to ``o_y_valid`` (module docstring): F, M, A,
    #: the dot-product multipliers ``p``, one per level of the adder tree.
    STAGES = ("f", "m", "a", "p") + tuple(f"t{lv}" for lv in range(_TREE_LEVELS))

    def __init__(self, *, _no_alternate: bool = False):
        self._no_alternate = bool(_no_alternate)
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
            "bank": Out(bank_port()).array(1),
        })

    @property
    def banks(self) -> int:
        """Banks served by the unit (1)."""
        return 1

    @property
    def lanes(self) -> int:
        """fp16 lanes (values per 256-bit column)."""
        return LANES

    @property
    def read_to_write(self) -> int:
        """Cycles from the read of a sub-chunk to its write-back: the stages up to A, whose
        register drives the bank's write port."""
        return self.stages.index("a") + 1

    @property
    def cycles_per_subchunk(self) -> int:
        """Sustained cycles per sub-chunk: 2 (read and write-back cycles alternate; the
        odd read-to-write distance puts every write in a non-read cycle)."""
        assert self.read_to_write % 2 == 1
        return 1 if self._no_alternate else 2

    def elaborate(self, platform):
        # one valid register per stage (latency = len(STAGES)): a stage list that does not
        # match what is built here fails to unpack
        f_valid, m_valid, a_valid, valid, *tree_valids = self.stage_valids(last=True,
                                                                             name=_valid_name)
        if len(tree_valids) != _TREE_LEVELS:
            raise ValueError(f"{type(self).__name__}: {len(tree_valids)} adder-tree stages "
                             f"listed, the {LANES}-lane tree has {_TREE_LEVELS} levels")

        m = Module()
        regs = OperandRegs(1)
        regs.elaborate_writes(m, self.i_cmd, self.i_addr, self.i_data)
        port = self.bank[0]
        vec = lanes_layout()

        def stage(name):
            return Signal(vec, name=f"{name}_s"), Signal(range(COLUMNS), name=f"{name}_col")

        # Read phase: COMPs are accepted in even cycles only.
        phase = Signal()
        m.d.sync += phase.eq(~phase)
        ready = Signal()
        m.d.comb += ready.eq(1 if self._no_alternate else ~phase)
        accept = (self.i_cmd == PimCmd.COMP) & ready
        in_col = data.View(addr_layout, self.i_addr).comp.col

        # F: fetch
        f_s, f_col = stage("f")
        m.d.comb += [port.rd.eq(accept), port.rd_col.eq(in_col)]
        m.d.sync += [f_s.eq(port.rdata), f_col.eq(in_col), f_valid.eq(accept)]

        # M: decay and outer product in parallel
        m_t, m_col = stage("m")
        m_u = Signal(vec, name="m_u")
        v_j = mux_tree([regs.v[0][j] for j in range(COLUMNS)], f_col)
        for i in range(LANES):
            decay = m.submodules[f"mul_decay{i}"] = FPMul("fp16")
            outer = m.submodules[f"mul_outer{i}"] = FPMul("fp16")
            m.d.comb += [decay.a.eq(regs.d[0][i]), decay.b.eq(f_s[i]),
                         outer.a.eq(regs.k[0][i]), outer.b.eq(v_j)]
            m.d.sync += [m_t[i].eq(decay.o), m_u[i].eq(outer.o)]
        m.d.sync += [m_col.eq(f_col), m_valid.eq(f_valid)]

        # A: add
        a_s, a_col = stage("a")
        for i in range(LANES):
            add = m.submodules[f"add{i}"] = FPAdd("fp16")
            m.d.comb += [add.a.eq(m_t[i]), add.b.eq(m_u[i])]
            m.d.sync += a_s[i].eq(add.o)
        m.d.sync += [a_col.eq(m_col), a_valid.eq(m_valid)]

        # W/D: write-back and dot-product multiplies
        m.d.comb += [port.wr.eq(a_valid), port.wr_col.eq(a_col), port.wdata.eq(a_s)]
        level, col = [], Signal(range(COLUMNS), name="p_col")
        for i in range(LANES):
            mul = m.submodules[f"mul_dot{i}"] = FPMul("fp16")
            p = Signal(FP16, name=f"p{i}")
            m.d.comb += [mul.a.eq(a_s[i]), mul.b.eq(regs.q[0][i])]
            m.d.sync += p.eq(mul.o)
            level.append(p)
        m.d.sync += [col.eq(a_col), valid.eq(a_valid)]
        valids = [f_valid, m_valid, a_valid, valid]

        # D: pairwise adder tree, one registered level per stage
        for lv in range(_TREE_LEVELS):
            nxt = []
            for i in range(len(level) // 2):
                add = m.submodules[f"tree{lv}_{i}"] = FPAdd("fp16")
                r = Signal(FP16, name=f"t{lv}_{i}")
                m.d.comb += [add.a.eq(level[2 * i]), add.b.eq(level[2 * i + 1])]
                m.d.sync += r.eq(add.o)
                nxt.append(r)
            ncol, nvalid = Signal(range(COLUMNS), name=f"t{lv}_col"), tree_valids[lv]
            m.d.sync += [ncol.eq(col), nvalid.eq(valid)]
            level, col, valid = nxt, ncol, nvalid
            valids.append(valid)

        m.d.comb += [
            self.o_ready.eq(ready),
            self.o_busy.eq(Cat(*valids[:-1]).any()),     # low when the last y is out
            self.o_y.eq(level[0]),
            self.o_y_col.eq(col),
            self.o_y_valid.eq(valid),
            self.o_y_bank.eq(0),
        ]
        return m


register_unit("pipelined_fp16_perbank", lambda: PipelinedFp16())
