"""The SPU's pipeline registers as Amaranth layouts: one layout per stage boundary.

:class:`hw.spu.Spu` builds each stage register as ``Signal(<stage>_layout)``, so a field is
named once and what a stage holds is read here (docs/spu.md §3). A stage carries its
operation's :data:`tag_layout` beside the arithmetic units (which hold their own data), plus
the data the next stage reads and the copies of the bank and column selects (see
:data:`SELECT_COPIES`)::

    F  fetch_stage_layout      tag, data (the column read), bank_c, col_c
    M  mul_stage_layout        tag, bank_c          (one per multiplier stage)
    A  add_stage_layout        tag                  (one per adder stage)
    W  writeback_stage_layout  tag, data (the sum written back)
    D  dot_stage_layout        tag                  (one per dot-product stage)
    X  fma_stage_layout        tag                  (one per fused-unit stage; fused SPU)

The command interface's layouts (``i_cmd``/``i_addr``/``i_data``) are
:mod:`hw.spu_protocol`'s.
"""

from __future__ import annotations

from amaranth.lib import data

from quant.constants import BANKS, COLUMN_BITS, COLUMNS

__all__ = ["SELECT_COPIES", "COL_COPIES", "tag_layout", "fetch_stage_layout",
           "mul_stage_layout", "add_stage_layout", "writeback_stage_layout", "dot_stage_layout",
           "fma_stage_layout", "STAGE_REGISTERS", "stage_field"]

#: Copies of each bank-select register (the read bank, the bank of the operation in F, the
#: bank of a fold step): copy ``g`` selects bits ``[g * w, (g + 1) * w)`` (``w = 256 /
#: SELECT_COPIES``) of every 256-bit bank multiplexer it drives, so that no flip-flop drives
#: more than a few dozen multiplexer inputs (docs/spu.md §7, "Timing").
SELECT_COPIES = 16
#: Copies of the column of the operation in F; copy ``g`` drives the scalar multiplexer of
#: bit slice ``g`` of the 16-bit outer-product scalar.
COL_COPIES = 8

_BANK = range(BANKS)

#: An operation in flight: ``valid``, the bank and column it belongs to, and ``fold`` (an
#: attend fold step, partial ``col`` added into partial 0, instead of a COMP).
tag_layout = data.StructLayout({"valid": 1, "bank": _BANK, "col": range(COLUMNS), "fold": 1})
#: Copies of a stage's bank select (copy ``g`` drives slice ``g`` of a bank multiplexer).
_bank_copies = data.ArrayLayout(_BANK, SELECT_COPIES)

#: F: the COMP's column read, registered, with copies of the tag's bank and column.
fetch_stage_layout = data.StructLayout({
    "tag": tag_layout, "data": COLUMN_BITS, "bank_c": _bank_copies,
    "col_c": data.ArrayLayout(range(COLUMNS), COL_COPIES)})
#: M: a multiplier stage; the last one's ``bank_c`` selects the partial the adder reads.
mul_stage_layout = data.StructLayout({"tag": tag_layout, "bank_c": _bank_copies})
#: A: an adder stage.
add_stage_layout = data.StructLayout({"tag": tag_layout})
#: W: the write-back register (present when it makes ``read_to_write`` odd).
writeback_stage_layout = data.StructLayout({"tag": tag_layout, "data": COLUMN_BITS})
#: D: a dot-product stage.
dot_stage_layout = data.StructLayout({"tag": tag_layout})
#: X: a stage of the fused multiply-add (``Spu(fused=True)``: the state update's own path).
fma_stage_layout = data.StructLayout({"tag": tag_layout})

#: The stage registers :class:`hw.spu.Spu` builds, by name prefix (``m_stage0``, ``m_stage1``,
#: ... share ``m_stage``), and their layouts.
STAGE_REGISTERS = {"f_stage": fetch_stage_layout, "m_stage": mul_stage_layout,
                   "a_stage": add_stage_layout, "w_stage": writeback_stage_layout,
                   "d_stage": dot_stage_layout, "x_stage": fma_stage_layout}


def stage_field(register: str, bit: int) -> str | None:
    """The top-level field (``tag``, ``data``, ``bank_c``, ``col_c``) holding bit ``bit`` of the
    stage register ``register`` (``f_stage``, ``m_stage2``, ...); ``None`` for another name."""
    layout = STAGE_REGISTERS.get(register.rstrip("0123456789"))
    if layout is None:
        return None
    for name, field in layout:
        if field.offset <= bit < field.offset + field.width:
            return name
    raise ValueError(f"bit {bit} is outside {register} ({layout.size} bits)")
