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


def test_stage_layouts_and_their_fields():
    """hw/spu_stages.py: every stage carries the tag; stage_field names the field of a bit of
    a stage register (synth/breakdown.py classes the SPU's flip-flops by it)."""
    from hw.spu_stages import (COL_COPIES, SELECT_COPIES, STAGE_REGISTERS, stage_field,
                               tag_layout)
    from synth.breakdown import TOP_FF_CLASSES

    for layout in STAGE_REGISTERS.values():
        assert layout["tag"].shape == tag_layout
    f = STAGE_REGISTERS["f_stage"]
    assert f.size == tag_layout.size + COLUMN_BITS + SELECT_COPIES + COL_COPIES * 5
    assert [stage_field("f_stage", b) for b in (0, tag_layout.size, f.size - 1)] == \
        ["tag", "data", "col_c"]
    assert stage_field("m_stage2", tag_layout.size) == "bank_c"
    assert stage_field("reg_d0", 3) is None
    with pytest.raises(ValueError, match="outside f_stage"):
        stage_field("f_stage", f.size)

    def cls(name):
        return next((c for c, rx in TOP_FF_CLASSES if rx.search(name)), "control")
    assert cls("f_stage.data") == cls("m_stage1.tag") == "pipeline registers"
    assert cls("f_stage.bank_c") == cls("m_stage0.bank_c") == "control"
