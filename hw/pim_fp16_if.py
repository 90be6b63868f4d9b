"""Command interface and operand registers shared by the fp16 baseline PIM units
(:class:`hw.pim_timemux_fp16.TimeMuxFp16`, :class:`hw.pim_pipelined_fp16.PipelinedFp16`).

One command per unit cycle (tCCD_L), as for the SPU (docs/spu.md section 4), reduced to what
the baselines need:

========== ========================== ======================================================
``i_cmd``  ``i_addr``                 effect
========== ========================== ======================================================
NOP (0)    --                         nothing
REG_WRITE  ``reg << 1 | bank``        ``i_data`` into operand register ``reg`` of ``bank``:
(1)                                   0 d, 1 k, 2 q (16 fp16 each), 3 v elements 0..15,
                                      4 v elements 16..31
COMP (2)   ``col << 1 | bank``        update sub-chunk ``col`` of ``bank`` with ``v_col``;
                                      accepted only while ``o_ready``
========== ========================== ======================================================

REG_WRITEs are legal only while the unit is idle (``o_busy`` low), as in the brief's schedule
(register writes between ACT4s). Per-bank units (one bank) use bank 0.
"""

from __future__ import annotations

from amaranth.lib import enum

from amaranth.hdl import Signal, unsigned
from amaranth.lib import data

from quant.constants import ADDR_BITS
from quant.constants import FP16_LANES as LANES

from .spu_bank import COLUMN_BITS, COLUMNS

__all__ = ["LANES", "FP16", "PimCmd", "PimReg", "lanes_layout", "reg_addr_layout",
           "comp_addr_layout", "addr_layout", "reg_addr", "comp_addr",
           "OperandRegs"]

#: fp16 encoding width.
FP16 = 16
assert LANES * FP16 == COLUMN_BITS


class PimCmd(enum.Enum, shape=2):
    """Command of the baseline units."""
    NOP = 0
    REG_WRITE = 1
    COMP = 2


class PimReg(enum.IntEnum):
    """Operand registers (per bank)."""
    D = 0
    K = 1
    Q = 2
    V_LO = 3
    V_HI = 4


def lanes_layout() -> data.ArrayLayout:
    """One sub-chunk: :data:`LANES` fp16 encodings."""
    return data.ArrayLayout(unsigned(FP16), LANES)


#: REG_WRITE address: the bank and the operand register (:class:`PimReg`).
reg_addr_layout = data.StructLayout({"bank": 1, "reg": 3})
#: COMP address: the bank and the column of the sub-chunk.
comp_addr_layout = data.StructLayout({"bank": 1, "col": range(COLUMNS)})
#: ``i_addr`` (8 bits): one view per command; the units read it through this layout and the
#: encoders below build it with the same layout.
addr_layout = data.UnionLayout({"raw": ADDR_BITS, "reg": reg_addr_layout,
                                "comp": comp_addr_layout})


def _check(name: str, value: int, allowed: range) -> int:
    if value not in allowed:
        raise ValueError(f"{name} must be in {allowed.start}..{allowed.stop - 1}, not {value!r}")
    return int(value)


def reg_addr(reg: int, bank: int = 0) -> int:
    """``i_addr`` of a REG_WRITE of operand register ``reg`` (:class:`PimReg`) of ``bank``."""
    reg = _check("reg", int(reg), range(min(PimReg), max(PimReg) + 1))
    return addr_layout.const({"reg": {"reg": reg, "bank": _check("bank", bank, range(2))}}
                             ).as_bits()


def comp_addr(col: int, bank: int = 0) -> int:
    """``i_addr`` of a COMP of column ``col`` of ``bank``."""
    return addr_layout.const({"comp": {"col": _check("col", col, range(COLUMNS)),
                                       "bank": _check("bank", bank, range(2))}}).as_bits()


class OperandRegs:
    """The per-bank operand registers (d, k, q, v) of a unit and their REG_WRITE logic.

    ``d[b]``, ``k[b]``, ``q[b]``: views of :func:`lanes_layout`; ``v[b]``: an
    ``ArrayLayout(16, 32)`` view (element ``j`` is ``v_j`` of column ``j``).
    """

    def __init__(self, banks: int):
        self.banks = banks
        vec = lanes_layout()
        self.d = [Signal(vec, name=f"reg_d{b}") for b in range(banks)]
        self.k = [Signal(vec, name=f"reg_k{b}") for b in range(banks)]
        self.q = [Signal(vec, name=f"reg_q{b}") for b in range(banks)]
        self.v = [Signal(data.ArrayLayout(unsigned(FP16), COLUMNS), name=f"reg_v{b}")
                  for b in range(banks)]

    def elaborate_writes(self, m, cmd, addr, wdata) -> None:
        """Add the REG_WRITE decoding to ``m`` (``cmd``/``addr``/``wdata`` the unit's ports)."""
        addr = data.View(addr_layout, addr)
        bank = addr.reg.bank if self.banks > 1 else 0
        reg = addr.reg.reg
        with m.If(cmd == PimCmd.REG_WRITE):
            for b in range(self.banks):
                with m.If(bank == b):
                    with m.Switch(reg):
                        with m.Case(PimReg.D):
                            m.d.sync += self.d[b].eq(wdata)
                        with m.Case(PimReg.K):
                            m.d.sync += self.k[b].eq(wdata)
                        with m.Case(PimReg.Q):
                            m.d.sync += self.q[b].eq(wdata)
                        with m.Case(PimReg.V_LO):
                            m.d.sync += self.v[b].as_value()[:COLUMN_BITS].eq(wdata)
                        with m.Case(PimReg.V_HI):
                            m.d.sync += self.v[b].as_value()[COLUMN_BITS:].eq(wdata)
