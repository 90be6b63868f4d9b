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


def _kinds(prog):
    """R (bank read), W (bank write) or - (no bank column) per column command of the body."""
    out = []
    for ins in hp.loop_body(prog):
        k = "W" if ins.dst == Opd.BANK else "R" if Opd.BANK in (ins.src0, ins.src1) else "-"
        out += [k] * hp.instruction_commands(ins)
    return "".join(out)


def test_programs_as_derived():
    su = hp.PROGRAMS["state_update"]
    n = hp.SU_MAX_BLOCKS
    assert n == 4 and hp.SU_TEMP_BASE == 4
    assert [i.op for i in su[:-2]] == [Op.MUL] * n + [Op.MAC] * 2 * n + [Op.MOV] * n
    assert len(su) == 4 * hp.SU_MAX_BLOCKS + 2 <= hp.CRF_ENTRIES
    for mode in ("score", "attend"):
        body = hp.PROGRAMS[mode][:-2]
        assert len(body) == hp.SRF_ENTRIES
        assert all(i.op == Op.MAC and i.aam and i.count == 8 and i.src0 == Opd.BANK
                   and i.src1 == Opd.SRF_M for i in body)
    assert hp.commands_per_column("state_update") == 4
    assert hp.commands_per_column("score") == 1
    assert hp.commands_per_column("attend") == 1


@pytest.mark.parametrize("blocks", range(1, hp.SU_MAX_BLOCKS + 1))
def test_state_update_reads_and_writes_in_runs(blocks):
    prog = hp.state_update_program(blocks, 5)
    # One run of bank reads, the no-bank MACs, one run of bank writes: with the MACs issued
    # as RD, one RD->WR and one WR->RD switch per row whatever the batch.
    assert _kinds(prog) == "R" * blocks + "-" * 2 * blocks + "W" * blocks
    assert hp.executed_commands(prog) == 5 * 4 * blocks
    body = hp.loop_body(prog)
    t = hp.SU_TEMP_BASE
    for b in range(blocks):
        mul, mac_k, mac_q, mov = body[b], body[blocks + b], body[2 * blocks + b], \
            body[3 * blocks + b]
        assert (mul.dst, mul.dst_idx, mul.src1_idx) == (Opd.GRF_B, t + b, hp.SRF_D)
        assert (mac_k.dst_idx, mac_k.src0, mac_k.src0_idx, mac_k.src1_idx) == (
            t + b, Opd.GRF_A, b, hp.SRF_K)
        assert (mac_q.dst_idx, mac_q.src0, mac_q.src0_idx, mac_q.src1_idx) == (
            b, Opd.GRF_B, t + b, hp.SRF_Q)
        assert (mov.dst, mov.src0, mov.src0_idx) == (Opd.BANK, Opd.GRF_B, t + b)
    # v, y and the updated columns never share a register.
    assert max(t + blocks - 1, blocks - 1) < hp.GRF_ENTRIES and t >= blocks
    with pytest.raises(ValueError, match="blocks must be in 1..4, not 5"):
        hp.state_update_program(5, 1)


def test_plan_is_memoised_and_cheap():
    hp._plan.cache_clear()
    first = hp.plan("attend", 128, 4097)
    assert hp.plan("attend", 128, 4097) is first
    with pytest.raises(TypeError, match="dim_head must be an int"):
        hp.plan("attend", True, 4097)


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
    # 8 blocks of 16 values: two passes of 4 blocks (GRF_B: 4 accumulators + 4 updated
    # columns); per pass: CRF 18 instructions = 3 columns, 4 v loads into GRF_A, 4 GRF_B
    # zeroings, 1 CTRL, one SRF write per row (64), 4 GRF_B reads.
    assert p.passes == 2 and p.data_columns == 64 * 8 and p.rows == 16
    assert p.compute_commands == 4 * p.data_columns and p.bank_writes == p.data_columns
    assert p.crf_columns == 2 * 3 and p.grf_columns == 2 * (4 + 4) and p.ctrl_columns == 2
    assert p.srf_columns == 2 * 64 and p.result_read_columns == 8
    assert p.reg_write_columns == 6 + 16 + 128 + 2
    assert hp.plan("state_update", 64, 128, per_element_decay=True) == p
    # 7 blocks: passes of 4 and 3 (CRF 18 and 14 instructions: 3 + 2 columns).
    odd = hp.plan("state_update", 64, 112)
    assert [pp.blocks for pp in odd.pass_plans] == [4, 3]
    assert odd.passes == 2 and odd.srf_columns == 128 and odd.crf_columns == 5
    assert odd.grf_columns == 2 * 7 and odd.result_read_columns == 7
    assert odd.compute_commands == 4 * 64 * 7
    one = hp.plan("state_update", 64, 64)
    assert one.passes == 1 and one.srf_columns == 64 and one.reg_write_columns == 3 + 8 + 64 + 1


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
