"""The SPU's command interface as Amaranth layouts, and the encoders built from them.

One description of each field, used by both sides: :class:`hw.spu.Spu` reads its ports
``i_cmd``/``i_addr``/``i_data`` through views of these layouts, and the encoders
(:func:`reg_addr`, :func:`comp_addr`, :func:`result_addr`, :func:`mode_word`, used by the
co-simulation's memory controller, ``cosim/spu_bench.py``) build their words with the same
layouts' ``const``. The codes (commands, registers, modes) are :mod:`quant.constants`'.

``i_addr`` (8 bits) has one meaning per command (:data:`addr_layout`, a union)::

    REG_WRITE    bit 0 bank, bits 1-3 reg          (reg_addr_layout)
    COMP         bit 0 last COMP of a row pair      (comp_addr_layout)
    RESULT_READ  bits 0-4 column, bit 5 bank        (result_addr_layout)

``i_data`` (256 bits) is an operand sub-chunk, or for the MODE register the MODE word
(:data:`mode_word_layout`: bits 0-1 mode, bit 2 stochastic rounding).
"""

from __future__ import annotations

import functools

from amaranth.lib import data, enum

from quant.constants import (ADDR_BITS, BANKS, COLUMN_BITS, COLUMNS, MODE_BITS, MODES, CmdCode,
                             Mode, Reg)

__all__ = ["Cmd", "reg_addr_layout", "comp_addr_layout", "result_addr_layout", "addr_layout",
           "mode_word_layout", "data_layout", "command_layout", "reg_addr", "comp_addr",
           "result_addr", "mode_word"]


class Cmd(enum.Enum, shape=2):
    """The command of a cycle (``i_cmd``; codes :class:`quant.constants.CmdCode`)."""
    NOP = int(CmdCode.NOP)
    REG_WRITE = int(CmdCode.REG_WRITE)
    COMP = int(CmdCode.COMP)
    RESULT_READ = int(CmdCode.RESULT_READ)


_BANK = range(BANKS)

#: REG_WRITE address: the bank (0 = A, 1 = B) and the register (:class:`quant.constants.Reg`).
reg_addr_layout = data.StructLayout({"bank": _BANK, "reg": max(Reg).bit_length()})
#: COMP address: ``last`` marks the final COMP of a row pair (the pipeline then drains).
comp_addr_layout = data.StructLayout({"last": 1})
#: RESULT_READ address: the partial of ``(bank, col)`` (attend mode: the bank's accumulator).
result_addr_layout = data.StructLayout({"col": range(COLUMNS), "bank": _BANK})
#: ``i_addr``: one view per command.
addr_layout = data.UnionLayout({"raw": ADDR_BITS, "reg": reg_addr_layout,
                                "comp": comp_addr_layout, "result": result_addr_layout})
#: The MODE register's word: the mode code (:class:`quant.constants.Mode`) and stochastic
#: rounding.
mode_word_layout = data.StructLayout({"mode": MODE_BITS, "stochastic": 1})
#: ``i_data``: an operand sub-chunk, or the MODE word.
data_layout = data.UnionLayout({"operand": COLUMN_BITS, "mode": mode_word_layout})
#: One cycle's command: what the memory controller puts on ``i_cmd``, ``i_addr``, ``i_data``.
command_layout = data.StructLayout({"cmd": Cmd, "addr": addr_layout, "data": data_layout})

assert reg_addr_layout.size <= ADDR_BITS and result_addr_layout.size <= ADDR_BITS


def _check_bank(bank: int) -> int:
    if bank not in _BANK:
        raise ValueError(f"bank must be one of {tuple(_BANK)}, not {bank!r}")
    return int(bank)


def reg_addr(reg: Reg | int, bank: int) -> int:
    """``i_addr`` of a REG_WRITE of ``reg`` for ``bank`` (0 = A, 1 = B)."""
    return _reg_addr(int(reg), _check_bank(bank))


# The encoders below are called once per simulated command by the SPU bench: an Amaranth
# constant per call costs ~0.2 ms (a tenth of a 10,240-COMP bench), so each distinct
# address is built once.
@functools.cache
def _reg_addr(reg: int, bank: int) -> int:
    return addr_layout.const({"reg": {"reg": reg, "bank": bank}}).as_bits()


def comp_addr(last: bool) -> int:
    """``i_addr`` of a COMP: ``last`` marks the last COMP of a row pair."""
    return _comp_addr(int(bool(last)))


@functools.cache
def _comp_addr(last: int) -> int:
    return addr_layout.const({"comp": {"last": last}}).as_bits()


def result_addr(bank: int, col: int) -> int:
    """``i_addr`` of a RESULT_READ: the partial of ``(bank, col)``; in attend mode the
    accumulator of ``bank`` (``col`` ignored)."""
    if col not in range(COLUMNS):
        raise ValueError(f"col must be in 0..{COLUMNS - 1}, not {col!r}")
    return _result_addr(int(col), _check_bank(bank))


@functools.cache
def _result_addr(col: int, bank: int) -> int:
    return addr_layout.const({"result": {"col": col, "bank": bank}}).as_bits()


def mode_word(mode: Mode | str, stochastic: bool) -> int:
    """REG_WRITE data of the MODE register."""
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        mode = Mode(MODES.index(mode))
    return data_layout.const({"mode": {"mode": int(Mode(mode)),
                                       "stochastic": int(bool(stochastic))}}).as_bits()
