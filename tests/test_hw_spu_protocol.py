"""The SPU's command layouts (hw/spu_protocol.py): the encoders give the documented bit
positions (docs/spu.md §4), the RTL's views read the same fields, bad input is refused."""

import pytest
from amaranth.lib import data

from hw.spu_protocol import (addr_layout, comp_addr, command_layout, data_layout, mode_word,
                             reg_addr, result_addr)
from quant.constants import ADDR_BITS, COLUMN_BITS, COLUMNS, MODES, Mode, Reg


def test_encoders_follow_the_documented_wire_format():
    for reg in Reg:
        for bank in (0, 1):
            assert reg_addr(reg, bank) == int(reg) << 1 | bank
    assert (comp_addr(False), comp_addr(True)) == (0, 1)
    for bank in (0, 1):
        for col in range(COLUMNS):
            assert result_addr(bank, col) == bank << 5 | col
    for mode in MODES:
        for stoch in (False, True):
            assert mode_word(mode, stoch) == MODES.index(mode) | int(stoch) << 2
    assert mode_word(Mode.ATTEND, True) == mode_word("attend", True)


def test_views_read_back_what_the_encoders_wrote():
    addr = data.Const(addr_layout, reg_addr(Reg.ACC_CLEAR, 1))
    assert (addr.reg.reg, addr.reg.bank) == (int(Reg.ACC_CLEAR), 1)
    addr = data.Const(addr_layout, result_addr(1, 17))
    assert (addr.result.col, addr.result.bank) == (17, 1)
    word = data.Const(data_layout, mode_word("score", True))
    assert (word.mode.mode, word.mode.stochastic) == (int(Mode.SCORE), 1)
    assert addr_layout.size == ADDR_BITS and data_layout.size == COLUMN_BITS
    assert command_layout.size == 2 + ADDR_BITS + COLUMN_BITS


@pytest.mark.parametrize("call, msg", [
    (lambda: reg_addr(Reg.D, 2), "bank must be one of (0, 1), not 2"),
    (lambda: result_addr(0, COLUMNS), f"col must be in 0..{COLUMNS - 1}, not {COLUMNS}"),
    (lambda: mode_word("decay", False), "mode must be one of"),
])
def test_bad_input_is_refused(call, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        call()
