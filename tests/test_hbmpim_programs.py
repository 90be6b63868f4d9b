"""The HBM-PIM PCU's ISA, programs and command plan (quant/hbmpim_programs.py)."""

import subprocess
import sys

import pytest

from quant import hbmpim_programs as hp
from quant.hbmpim_programs import Instruction, Op, Opd


def test_module_is_torch_free():
    code = ("import sys, quant.hbmpim_programs as h; h.plan('state_update', 64, 128); "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("mode", hp.MODES)
def test_encoding_round_trip(mode):
    prog = hp.PROGRAMS[mode]
    words = [hp.encode(i) for i in prog]
    assert [hp.decode(w) for w in words] == prog
    assert hp.validate_program(words) == prog
    assert len(hp.program_words(prog)) == hp.CRF_ENTRIES


def test_programs_as_derived():
    su = hp.PROGRAMS["state_update"]
    assert [i.op for i in su[:4]] == [Op.MUL, Op.MAC, Op.MOV, Op.MAC]
    assert su[2].dst == Opd.BANK and su[0].src0 == Opd.BANK
    assert len(su) == 4 * hp.SU_MAX_BLOCKS + 2 <= hp.CRF_ENTRIES
    for mode in ("score", "attend"):
        body = hp.PROGRAMS[mode][:-2]
        assert len(body) == hp.SRF_ENTRIES
        assert all(i.op == Op.MAC and i.aam and i.count == 8 and i.src0 == Opd.BANK
                   and i.src1 == Opd.SRF_M for i in body)
    assert hp.commands_per_column("state_update") == 4
    assert hp.commands_per_column("score") == 1
    assert hp.commands_per_column("attend") == 1


@pytest.mark.parametrize("prog, match", [
    ([Instruction(5), Instruction(Op.EXIT)], "unknown opcode 5"),
    ([Instruction(Op.MUL, Opd.GRF_A, 8, Opd.BANK, 0, Opd.SRF_M, 0), Instruction(Op.EXIT)],
     r"dst register GRF_A\[8\] out of range 0..7"),
    ([Instruction(Op.MAC, Opd.GRF_B, 0, Opd.BANK, 0, Opd.SRF_M, 9), Instruction(Op.EXIT)],
     r"src1 register SRF_M\[9\] out of range"),
    ([Instruction(Op.MAC, Opd.GRF_A, 0, Opd.BANK, 0, Opd.SRF_M, 0), Instruction(Op.EXIT)],
     "dst cannot be GRF_A for MAC"),
    ([Instruction(Op.ADD, Opd.GRF_A, 0, 7, 0, Opd.GRF_A, 0), Instruction(Op.EXIT)],
     "src0 has unknown operand kind 7"),
    ([Instruction(Op.MOV, Opd.BANK, 0, Opd.BANK, 0), Instruction(Op.EXIT)],
     "cannot read and write the bank"),
    ([Instruction(Op.NOP)], "must end with EXIT"),
    ([Instruction(Op.NOP), Instruction(Op.JUMP, target=1, count=2), Instruction(Op.EXIT)],
     "JUMP target must be an earlier instruction"),
    ([Instruction(Op.NOP)] * 32 + [Instruction(Op.EXIT)], "the CRF holds 32"),
])
def test_bad_programs_refused_with_one_line(prog, match):
    with pytest.raises(ValueError, match=match) as exc:
        hp.validate_program(prog)
    assert "\n" not in str(exc.value)


def test_unknown_opcode_word_refused():
    with pytest.raises(ValueError, match="unknown opcode 6"):
        hp.validate_program([6 << 28, Op.EXIT << 28])


def test_plan_state_update():
    p = hp.plan("state_update", 64, 128)
    # 8 blocks of 16 values: two passes of 4 blocks (GRF_B holds 7 accumulators + 1 temp).
    assert p.passes == 2 and p.data_columns == 64 * 8 and p.rows == 16
    assert p.compute_commands == 4 * p.data_columns and p.bank_writes == p.data_columns
    assert p.srf_columns == 2 * 64 and p.grf_columns == 2 * 8 and p.ctrl_columns == 2
    assert p.result_read_columns == 8
    assert p.reg_write_columns == p.crf_columns + p.grf_columns + p.srf_columns + 2
    assert hp.plan("state_update", 64, 128, per_element_decay=True) == p
    one = hp.plan("state_update", 64, 112)
    assert one.passes == 1 and one.srf_columns == 64


def test_plan_score_attend():
    s = hp.plan("score", 64, 1024)        # 64 token blocks: 8 passes of 8
    assert s.passes == 8 and s.data_columns == 64 * 64 and s.compute_commands == 4096
    assert s.srf_columns == 8 * 8 and s.result_read_columns == 64 and s.bank_writes == 0
    a = hp.plan("attend", 128, 100)       # 8 dim_head blocks, 100 tokens padded to 104
    assert a.passes == 1 and a.data_columns == 8 * 104 and a.srf_columns == 13
    assert a.result_read_columns == 8
    odd = hp.plan("score", 16, 48)        # 3 token blocks padded to the AAM count 4
    assert odd.data_columns == 4 * 16


@pytest.mark.parametrize("args, match", [
    (("state_update", 64, 100), "multiple of 16"),
    (("attend", 24, 10), "multiple of 16"),
    (("gemv", 64, 64), "mode must be one of"),
    (("score", 0, 64), "dim_head must be >= 1"),
])
def test_plan_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        hp.plan(*args)


def test_reg_addr_range():
    assert hp.reg_addr(hp.Space.GRF_B, 7) == (2 << 3) | 7
    with pytest.raises(ValueError, match="CRF index must be in 0..3"):
        hp.reg_addr(hp.Space.CRF, 4)
