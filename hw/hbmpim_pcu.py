"""The HBM-PIM (Samsung Aquabolt-XL) Programmable Computing Unit: ``hbmpim_pcu`` (one per bank
pair, the device as built) and ``hbmpim_pcu_perbank`` (one per bank).

A 16-lane fp16 SIMD unit (16 :class:`hw.fpmul.FPMul` + 16 :class:`hw.fpadd.FPAdd`, the
project's bit-exact float units) with the register files of the ISCA 2021 paper -- CRF
(32 x 32-bit instructions), GRF_A and GRF_B (8 x 256 bits each), SRF (one 256-bit register:
SRF_M = lanes 0-7, SRF_A = lanes 8-15) -- that executes one CRF instruction per column
command. ISA, encoding, programs: :mod:`quant.hbmpim_programs`; golden model:
:mod:`quant.hbmpim_pcu`; docs/baselines.md.

Commands (one per unit cycle = tCCD_L):

============ ======================= =================================================
``i_cmd``    ``i_addr``              effect
============ ======================= =================================================
NOP (0)      --                      nothing
REG_WRITE(1) ``space << 3 | index``  ``i_data`` into CRF block / GRF_A / GRF_B / SRF;
                                     CTRL starts the program (PC 0)
COLUMN (2)   ``col << 1 | bank``     a column command (RD or WR) on (bank, col) in PIM
                                     mode: executes the instruction at the PC
REG_READ (3) ``space << 3 | index``  GRF_A / GRF_B entry on ``o_rdata`` next cycle
============ ======================= =================================================

Execution: the operands are read in the command's cycle (the bank column combinationally
from the row buffer, GRF/SRF from the registers), multiplied and/or added through the
combinational fp16 lanes, and the result is written at the end of that cycle into the GRF
or into the bank (MOV to BANK: the column of the command), so :attr:`latency` (one stage,
``STAGES``) is 1: the instruction after it sees its result. MAC/MAD: product rounded to
fp16, then the sum rounded to fp16 (two roundings, as PIMSimulator's half-float
arithmetic). After the instruction, the PC moves on (AAM: after ``n`` commands, NOP: after
``count + 1``); a JUMP at the next PC is taken in zero cycles (one active loop), an EXIT there
ends the program (``o_running`` low). A column command while no program runs, or an
instruction with an unknown opcode or operand kind (a CRF written with garbage), is ignored
and sets the sticky ``o_error``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from hw.export import register_unit
from hw.fpadd import FPAdd
from hw.fpmul import FPMul
from quant.hbmpim_programs import (CRF_ENTRIES, CRF_WORDS_PER_COLUMN, GRF_ENTRIES, INSTR_BITS,
                                   LANES, SRF_ENTRIES, Op, Opd, Space, encode,
                                   validate_program)

from .pipeline import Staged
from .spu_bank import COLUMN_BITS, COLUMNS, bank_port, mux_tree

__all__ = ["PcuCmd", "HbmPimPcu", "reg_addr_layout", "column_addr_layout", "addr_layout",
           "crf_block_layout"]

FP16 = 16
assert LANES * FP16 == COLUMN_BITS


class PcuCmd(enum.Enum, shape=2):
    """Commands of the PCU."""
    NOP = 0
    REG_WRITE = 1
    COLUMN = 2
    REG_READ = 3


#: REG_WRITE / REG_READ address, ``space << 3 | index`` (:func:`quant.hbmpim_programs.reg_addr`).
reg_addr_layout = data.StructLayout({"index": 3, "space": 3})
#: COLUMN address, ``col << 1 | bank``.
column_addr_layout = data.StructLayout({"bank": 1, "col": range(COLUMNS)})
#: ``i_addr``: one view per command.
addr_layout = data.UnionLayout({"raw": 8, "reg": reg_addr_layout, "column": column_addr_layout})
#: A CRF block's REG_WRITE data: :data:`CRF_WORDS_PER_COLUMN` instructions.
crf_block_layout = data.ArrayLayout(INSTR_BITS, CRF_WORDS_PER_COLUMN)


class HbmPimPcu(Staged, wiring.Component):
    """HBM-PIM Programmable Computing Unit.

    Parameters
    ----------
    banks : {1, 2}
        Banks served: 2 = one PCU per bank pair (Aquabolt-XL), 1 = one per bank.
    crf_init : list of Instruction or int, optional
        CRF contents after reset (validated here: a bad program is refused with one line).
        Default: all EXIT (the host writes the CRF).

    Members
    -------
    i_cmd : In(PcuCmd)
    i_addr : In(8)
    i_data : In(256)
    o_rdata : Out(256)
        The register of the REG_READ of the previous cycle (``o_rvalid``).
    o_rvalid : Out(1)
    o_running : Out(1)
        A program is running (started by CTRL, EXIT not reached).
    o_pc : Out(5)
    o_error : Out(1)
        Sticky: an ignored column command (no program, or an invalid instruction).
    bank : Out(bank_port()).array(banks)
    """

    #: One stage: the instruction executes in its column command's cycle and the GRF / the
    #: row buffer take the result at the end of it (module docstring), so :attr:`latency` is
    #: 1 -- the instruction after it sees its result.
    STAGES = ("execute",)

    def __init__(self, *, banks: int = 2, crf_init=None):
        if not isinstance(banks, int) or isinstance(banks, bool):
            raise TypeError(f"banks must be an int, not {banks!r}")
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks}")
        self._banks = banks
        self._crf_init = None
        if crf_init is not None:
            prog = validate_program(crf_init)
            exit_word = encode(prog[-1])
            self._crf_init = [encode(i) for i in prog] + [exit_word] * (CRF_ENTRIES - len(prog))
        super().__init__({
            "i_cmd": In(PcuCmd),
            "i_addr": In(8),
            "i_data": In(COLUMN_BITS),
            "o_rdata": Out(COLUMN_BITS),
            "o_rvalid": Out(1),
            "o_running": Out(1),
            "o_pc": Out(range(CRF_ENTRIES)),
            "o_error": Out(1),
            "bank": Out(bank_port()).array(banks),
        })

    @property
    def banks(self) -> int:
        """Banks served by the unit."""
        return self._banks

    @property
    def lanes(self) -> int:
        """fp16 lanes."""
        return LANES

    def elaborate(self, platform):
        # the datapath below is combinational up to the registers it writes: one stage, or a
        # stage list that does not match fails to unpack
        (_execute,) = self.stages
        m = Module()
        exit_word = Op.EXIT << 28
        init = self._crf_init or [exit_word] * CRF_ENTRIES
        crf = [Signal(INSTR_BITS, name=f"crf{i}", init=init[i]) for i in range(CRF_ENTRIES)]
        grf_a = [Signal(COLUMN_BITS, name=f"grf_a{i}") for i in range(GRF_ENTRIES)]
        grf_b = [Signal(COLUMN_BITS, name=f"grf_b{i}") for i in range(GRF_ENTRIES)]
        srf = Signal(COLUMN_BITS)
        pc = Signal(range(CRF_ENTRIES))
        rep = Signal(16)
        loop_active = Signal()
        loop_left = Signal(16)
        running = Signal()
        error = Signal()
        m.d.comb += [self.o_running.eq(running), self.o_pc.eq(pc), self.o_error.eq(error)]

        cmd = self.i_cmd
        addr = data.View(addr_layout, self.i_addr)
        space = addr.reg.space
        ridx = addr.reg.index
        col = addr.column.col
        in_bank = addr.column.bank if self._banks > 1 else Const(0, 1)
        crf_block = data.View(crf_block_layout, self.i_data)

        # ---- host register writes and reads ----
        with m.If(cmd == PcuCmd.REG_WRITE):
            with m.Switch(space):
                with m.Case(Space.CRF):
                    for blk in range(CRF_ENTRIES // CRF_WORDS_PER_COLUMN):
                        with m.If(ridx == blk):
                            for w in range(CRF_WORDS_PER_COLUMN):
                                m.d.sync += crf[CRF_WORDS_PER_COLUMN * blk + w].eq(crf_block[w])
                with m.Case(Space.GRF_A):
                    for i in range(GRF_ENTRIES):
                        with m.If(ridx == i):
                            m.d.sync += grf_a[i].eq(self.i_data)
                with m.Case(Space.GRF_B):
                    for i in range(GRF_ENTRIES):
                        with m.If(ridx == i):
                            m.d.sync += grf_b[i].eq(self.i_data)
                with m.Case(Space.SRF):
                    m.d.sync += srf.eq(self.i_data)
                with m.Case(Space.CTRL):
                    m.d.sync += [pc.eq(0), rep.eq(0), loop_active.eq(0), loop_left.eq(0),
                                 running.eq(crf[0][28:32] != Op.EXIT)]
        m.d.sync += self.o_rvalid.eq(cmd == PcuCmd.REG_READ)
        with m.If(cmd == PcuCmd.REG_READ):
            m.d.sync += self.o_rdata.eq(Mux(space == Space.GRF_A, mux_tree(grf_a, ridx),
                                            mux_tree(grf_b, ridx)))

        # ---- decode the instruction at the PC ----
        ins = Signal(INSTR_BITS)
        m.d.comb += ins.eq(mux_tree(crf, pc))
        op = ins[28:32]
        dst_k, dst_i = ins[25:28], ins[22:25]
        s0_k, s0_i = ins[19:22], ins[16:19]
        s1_k, s1_i = ins[13:16], ins[10:13]
        s2_k, s2_i = ins[7:10], ins[4:7]
        aam = ins[3]
        count = ins[7:23]
        n_log = ins[4:7]
        aam_mask = Signal(3)
        m.d.comb += aam_mask.eq(Mux(n_log >= 3, 7, Mux(n_log == 2, 3, Mux(n_log == 1, 1, 0))))

        def kind_ok(k):
            return k <= Opd.SRF_A
        is_compute = Signal()
        m.d.comb += is_compute.eq(
            (op == Op.ADD) | (op == Op.MUL) | (op == Op.MAC) | (op == Op.MAD)
            | (op == Op.MOV) | (op == Op.FILL))
        valid = Signal()
        m.d.comb += valid.eq((op == Op.NOP)
                             | (is_compute & kind_ok(dst_k) & kind_ok(s0_k) & kind_ok(s1_k)
                                & (aam | kind_ok(s2_k))))
        column = cmd == PcuCmd.COLUMN
        execute = Signal()
        m.d.comb += execute.eq(column & running & valid)
        with m.If(column & ~(running & valid)):
            m.d.sync += error.eq(1)

        # ---- operands ----
        def by_bank(values):
            return values[0] if self._banks == 1 else mux_tree(values, in_bank)
        rdata = by_bank([p.rdata for p in self.bank])
        srf_lanes = [srf[FP16 * i:FP16 * (i + 1)] for i in range(2 * SRF_ENTRIES)]

        def operand(kind, idx, name):
            grf_idx = Signal(3, name=f"{name}_gidx")
            m.d.comb += grf_idx.eq(Mux(aam, col[:3] & aam_mask, idx))
            val = Signal(COLUMN_BITS, name=name)
            with m.Switch(kind):
                with m.Case(Opd.BANK):
                    m.d.comb += val.eq(rdata)
                with m.Case(Opd.GRF_A):
                    m.d.comb += val.eq(mux_tree(grf_a, grf_idx))
                with m.Case(Opd.GRF_B):
                    m.d.comb += val.eq(mux_tree(grf_b, grf_idx))
                with m.Case(Opd.SRF_M):
                    m.d.comb += val.eq(Cat(*[mux_tree(srf_lanes[:SRF_ENTRIES], idx)] * LANES))
                with m.Case(Opd.SRF_A):
                    m.d.comb += val.eq(Cat(*[mux_tree(srf_lanes[SRF_ENTRIES:], idx)] * LANES))
            return val, grf_idx

        src0, _ = operand(s0_k, s0_i, "src0")
        src1, _ = operand(s1_k, s1_i, "src1")
        # MAC adds its destination GRF_B entry; MAD its src2.
        is_mac = op == Op.MAC
        add_k = Signal(3)
        add_i = Signal(3)
        m.d.comb += [add_k.eq(Mux(is_mac, Opd.GRF_B, s2_k)), add_i.eq(Mux(is_mac, dst_i, s2_i))]
        addend, _ = operand(add_k, add_i, "addend")
        dst_idx = Signal(3)
        m.d.comb += dst_idx.eq(Mux(aam, col[:3] & aam_mask, dst_i))

        # ---- the 16 fp16 lanes ----
        result = Signal(COLUMN_BITS)
        is_add = op == Op.ADD
        is_mul = op == Op.MUL
        for i in range(LANES):
            mul = m.submodules[f"mul{i}"] = FPMul("fp16")
            add = m.submodules[f"add{i}"] = FPAdd("fp16")
            lane = slice(FP16 * i, FP16 * (i + 1))
            m.d.comb += [
                mul.a.eq(src0[lane]), mul.b.eq(src1[lane]),
                add.a.eq(Mux(is_add, src0[lane], mul.o)),
                add.b.eq(Mux(is_add, src1[lane], addend[lane])),
            ]
            with m.If(is_mul):
                m.d.comb += result[lane].eq(mul.o)
            with m.Elif((op == Op.MOV) | (op == Op.FILL)):
                m.d.comb += result[lane].eq(src0[lane])
            with m.Else():
                m.d.comb += result[lane].eq(add.o)

        # ---- write-back ----
        writes_bank = Signal()
        reads_bank = Signal()
        m.d.comb += [
            writes_bank.eq(execute & (op != Op.NOP) & (dst_k == Opd.BANK)),
            reads_bank.eq(execute & (op != Op.NOP)
                          & ((s0_k == Opd.BANK) | (s1_k == Opd.BANK))),
        ]
        with m.If(execute & (op != Op.NOP)):
            with m.Switch(dst_k):
                with m.Case(Opd.GRF_A):
                    for i in range(GRF_ENTRIES):
                        with m.If(dst_idx == i):
                            m.d.sync += grf_a[i].eq(result)
                with m.Case(Opd.GRF_B):
                    for i in range(GRF_ENTRIES):
                        with m.If(dst_idx == i):
                            m.d.sync += grf_b[i].eq(result)
        for b, port in enumerate(self.bank):
            m.d.comb += [
                port.rd.eq(reads_bank & (in_bank == b)), port.rd_col.eq(col),
                port.wr.eq(writes_bank & (in_bank == b)), port.wr_col.eq(col),
                port.wdata.eq(result),
            ]

        # ---- sequencing: repeats, zero-cycle JUMP, EXIT ----
        n_cmds = Signal(17)
        m.d.comb += n_cmds.eq(Mux(op == Op.NOP, count + 1,
                                  Mux(aam, Const(1, 17) << n_log, 1)))
        pc1 = Signal(range(CRF_ENTRIES + 1))
        m.d.comb += pc1.eq(pc + 1)
        w1 = Signal(INSTR_BITS)
        m.d.comb += w1.eq(mux_tree(crf, pc1[:5]))
        j_count, j_target = w1[7:23], w1[23:28]
        is_jump = (w1[28:32] == Op.JUMP) & (pc1 < CRF_ENTRIES)
        left = Signal(16)
        m.d.comb += left.eq(Mux(loop_active, loop_left, j_count))
        take = Signal()
        m.d.comb += take.eq(is_jump & (left != 0))
        pc2 = Signal(range(CRF_ENTRIES + 1))
        m.d.comb += pc2.eq(Mux(is_jump, Mux(take, j_target, pc1 + 1), pc1))
        w2 = Signal(INSTR_BITS)
        m.d.comb += w2.eq(mux_tree(crf, pc2[:5]))
        with m.If(execute):
            with m.If(rep + 1 < n_cmds):
                m.d.sync += rep.eq(rep + 1)
            with m.Else():
                m.d.sync += [rep.eq(0), pc.eq(pc2[:5])]
                with m.If(is_jump):
                    m.d.sync += [loop_active.eq(take), loop_left.eq(left - take)]
                with m.If((pc2 >= CRF_ENTRIES) | (w2[28:32] == Op.EXIT)):
                    m.d.sync += running.eq(0)
        return m


register_unit("hbmpim_pcu", lambda: HbmPimPcu(banks=2))
register_unit("hbmpim_pcu_perbank", lambda: HbmPimPcu(banks=1))
