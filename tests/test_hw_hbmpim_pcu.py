"""The HBM-PIM PCU: golden model (quant/hbmpim_pcu.py) against the closed-form references,
the two-rounding MAC in the golden model and in the RTL (hw/hbmpim_pcu.py), bad programs
refused, and the co-simulation bench (cosim/hbmpim_pcu_bench.py) in Amaranth's simulator.
"""

pytestmark = __import__("pytest").mark.filterwarnings(
    "ignore::amaranth.hdl._ir.UnusedElaboratable")

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosim.hbmpim_pcu_bench import PcuBench, Sample, random_fp16
from hw.hbmpim_pcu import HbmPimPcu, PcuCmd
from hw.hbmpim_pcu_sim import HbmPimPcuSim
from quant import hbmpim_pcu as pcu
from quant import hbmpim_programs as hp
from quant.hbmpim_programs import Instruction, Op, Opd, Space


class AmaranthIo:
    """The bench's simulator interface over an Amaranth async testbench context."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    async def cycle(self, cmd, addr, data, act, rows, read_rows) -> Sample:
        ctx, d = self.ctx, self.dut
        nb = d.unit.banks
        ctx.set(d.i_cmd, PcuCmd(cmd))
        ctx.set(d.i_addr, addr)
        ctx.set(d.i_data, data)
        ctx.set(d.i_act, act)
        if rows is not None:
            for b, name in zip(range(nb), "ab"):
                ctx.set(getattr(d, f"i_row_{name}").as_value(), rows[b])
        g = ctx.get
        s = Sample(g(d.o_rdata), g(d.o_rvalid), g(d.o_running), g(d.o_error),
                   g(d.o_trace_rd), g(d.o_trace_wr), g(d.o_collision))
        if read_rows:
            s.rows = tuple(g(getattr(d, f"o_row_{n}").as_value()) for n in "ab"[:nb])
        await ctx.tick()
        return s


def run_bench(banks, *, vectors=16, seed=1, modes=hp.MODES, mutant=None,
              random_programs=None):
    unit = HbmPimPcu(banks=banks)
    dut = HbmPimPcuSim(unit)
    out = {}

    async def testbench(ctx):
        bench = PcuBench(AmaranthIo(ctx, dut), unit=unit, rng=random.Random(seed),
                         vectors=vectors, modes=modes, mutant=mutant,
                         random_programs=random_programs)
        out["result"] = await bench.run()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out["result"]


# --- golden model ------------------------------------------------------------------------

def _gather(job, reads, n):
    out = np.zeros(n, np.int64)
    for sl, r in zip(job.outputs, reads):
        out[sl] = r[:len(out[sl])]
    return out


@pytest.mark.parametrize("dim_head, dim_state", [(3, 16), (4, 32), (8, 128), (5, 240)])
def test_golden_state_update_matches_formula(dim_head, dim_state):
    g = np.random.default_rng(dim_head * 1000 + dim_state)
    S = random_fp16(g, (dim_head, dim_state))
    d = random_fp16(g, dim_head, decay=True)
    k, q, v = random_fp16(g, dim_head), random_fp16(g, dim_head), random_fp16(g, dim_state)
    job = pcu.build_head("state_update", S=S, d=d, k=k, q=q, v=v)
    cols, reads = pcu.run_head(job)
    s_new, y = pcu.state_update_ref(S, d, k, v, q)
    base = blk = 0
    for pp in job.plan.pass_plans:
        for i in range(dim_head):
            for b in range(pp.blocks):
                want = s_new[i, 16 * (blk + b):16 * (blk + b + 1)]
                assert np.array_equal(cols[base + i * pp.padded_blocks + b], want)
        base += pp.padded_blocks * pp.padded_iterations
        blk += pp.blocks
    assert np.array_equal(_gather(job, reads, dim_state), y)


def _mad_form(blocks, rows):
    """The batched state update with the updated columns in GRF_A and MAD for ``+ k_i v_b``
    (refused by Samsung's ISA 1.0 checker, src2 only SRF_A; allowed by our operand rules)."""
    bs = range(blocks)
    body = [Instruction(Op.MUL, Opd.GRF_A, 4 + b, Opd.BANK, 0, Opd.SRF_M, 0) for b in bs]
    body += [Instruction(Op.MAD, Opd.GRF_A, 4 + b, Opd.GRF_A, b, Opd.SRF_M, 1, Opd.GRF_A, 4 + b)
             for b in bs]
    body += [Instruction(Op.MAC, Opd.GRF_B, b, Opd.GRF_A, 4 + b, Opd.SRF_M, 2) for b in bs]
    body += [Instruction(Op.MOV, Opd.BANK, 0, Opd.GRF_A, 4 + b) for b in bs]
    return body + [Instruction(Op.JUMP, target=0, count=rows - 1), Instruction(Op.EXIT)]


def test_mad_form_rounds_like_the_mac_form():
    """MAD ``fp16(fp16(v k) + t)`` and MAC ``fp16(t + fp16(v k))`` give the same bits (a
    rounded fp16 sum is commutative, NaN canonical): the MAD alternative would compute the
    same state and outputs; the shipped program uses MAC (docs/baselines.md)."""
    g = np.random.default_rng(7)
    dim_head, dim_state = 6, 64
    arrays = dict(S=random_fp16(g, (dim_head, dim_state)), d=random_fp16(g, dim_head, decay=True),
                  k=random_fp16(g, dim_head), q=random_fp16(g, dim_head),
                  v=random_fp16(g, dim_state))
    job = pcu.build_head("state_update", **arrays)
    assert [pp.blocks for pp in job.plan.pass_plans] == [4]
    words = hp.program_words(_mad_form(4, dim_head))
    crf = {c: sum(words[8 * c + j] << (32 * j) for j in range(8)) for c in range(4)}
    mad_cmds = [c for c in job.commands if not (c[0] == pcu.WRITE and c[1] == Space.CRF)]
    mad_cmds = [(pcu.WRITE, Space.CRF, c, w) for c, w in crf.items()] + mad_cmds
    mad_job = pcu.HeadJob("state_update", job.columns, mad_cmds, job.outputs, job.plan)
    cols, reads = pcu.run_head(job)
    mad_cols, mad_reads = pcu.run_head(mad_job)
    assert np.array_equal(cols, mad_cols)
    assert all(np.array_equal(a, b) for a, b in zip(reads, mad_reads))
    s_new, y = pcu.state_update_ref(arrays["S"], arrays["d"], arrays["k"], arrays["v"],
                                    arrays["q"])
    assert np.array_equal(cols[:dim_head * 4].reshape(dim_head, 4, 16).reshape(dim_head, -1),
                          s_new)
    assert np.array_equal(np.concatenate(reads), y)


@pytest.mark.parametrize("tokens, dim_head", [(1, 8), (37, 16), (200, 24)])
def test_golden_score_attend_match_formula(tokens, dim_head):
    g = np.random.default_rng(tokens)
    K, q = random_fp16(g, (tokens, dim_head)), random_fp16(g, dim_head)
    job = pcu.build_head("score", K=K, q=q)
    _, reads = pcu.run_head(job)
    assert np.array_equal(_gather(job, reads, 16 * -(-tokens // 16))[:tokens],
                          pcu.score_ref(K, q))
    dh = 16 * -(-dim_head // 16)
    V, p = random_fp16(g, (tokens, dh)), random_fp16(g, tokens, decay=True)
    job = pcu.build_head("attend", V=V, p=p)
    _, reads = pcu.run_head(job)
    assert np.array_equal(_gather(job, reads, dh), pcu.attend_ref(V, p))


def _two_vs_one_rounding(n=16, seed=3):
    """``n`` triples (a, b, c) of fp16 encodings whose MAC rounded twice differs from the
    exactly rounded ``a * b + c`` (the float64 sum is exact for these magnitudes)."""
    g = np.random.default_rng(seed)
    found = []
    while len(found) < n:
        a, b, c = (np.float16(x) for x in g.uniform(0.5, 2.0, 3))
        exact = np.float16(np.float64(a) * np.float64(b) + np.float64(c))
        twice = np.float16(np.float16(a * b) + c)
        if exact != twice:
            found.append(tuple(int(np.array(x).view(np.uint16)) for x in (a, b, c)))
    return found


def test_golden_mac_rounds_twice():
    for a, b, c in _two_vs_one_rounding():
        m = pcu.PcuModel()
        prog = [Instruction(Op.MAC, Opd.GRF_B, 0, Opd.GRF_A, 0, Opd.SRF_M, 0),
                Instruction(Op.EXIT)]
        m.reg_write(Space.CRF, 0, sum(w << (32 * i)
                                      for i, w in enumerate(hp.program_words(prog)[:8])))
        m.reg_write(Space.GRF_A, 0, [a] * 16)
        m.reg_write(Space.GRF_B, 0, [c] * 16)
        m.reg_write(Space.SRF, 0, [b] + [0] * 15)
        m.reg_write(Space.CTRL, 0, 0)
        m.column(0, 0, [np.zeros((32, 16), np.int64)])
        got = int(m.reg_read(Space.GRF_B, 0)[0])
        want = int(pcu.fadd(pcu.fmul(a, b), c)[0])
        exact = int(np.array(np.float16(np.float64(np.array(a, np.uint16).view(np.float16))
                                        * np.float64(np.array(b, np.uint16).view(np.float16))
                                        + np.float64(np.array(c, np.uint16).view(np.float16))
                                        )).view(np.uint16))
        assert got == want != exact
        assert m.done


def test_rtl_mac_rounds_twice():
    """One MAC on 16 lanes whose single- and double-rounded results all differ."""
    triples = _two_vs_one_rounding()
    prog = [Instruction(Op.MAC, Opd.GRF_B, 3, Opd.GRF_A, 2, Opd.GRF_A, 5),
            Instruction(Op.EXIT)]
    dut = HbmPimPcu(banks=1, crf_init=prog)
    a = pcu.lanes_to_column([t[0] for t in triples])
    b = pcu.lanes_to_column([t[1] for t in triples])
    c = pcu.lanes_to_column([t[2] for t in triples])
    want = [int(pcu.fadd(pcu.fmul(x, y), z)[0]) for x, y, z in triples]
    out = {}

    async def tb(ctx):
        for space, idx, val in ((Space.GRF_A, 2, a), (Space.GRF_A, 5, b),
                                (Space.GRF_B, 3, c), (Space.CTRL, 0, 0)):
            ctx.set(dut.i_cmd, PcuCmd.REG_WRITE)
            ctx.set(dut.i_addr, hp.reg_addr(space, idx))
            ctx.set(dut.i_data, val)
            await ctx.tick()
        assert ctx.get(dut.o_running)
        ctx.set(dut.i_cmd, PcuCmd.COLUMN)
        ctx.set(dut.i_addr, 0)
        await ctx.tick()
        assert not ctx.get(dut.o_running)            # EXIT reached
        ctx.set(dut.i_cmd, PcuCmd.REG_READ)
        ctx.set(dut.i_addr, hp.reg_addr(Space.GRF_B, 3))
        await ctx.tick()
        ctx.set(dut.i_cmd, PcuCmd.NOP)
        out["rdata"] = ctx.get(dut.o_rdata)
        out["error"] = ctx.get(dut.o_error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert pcu.column_to_lanes(out["rdata"]).tolist() == want and not out["error"]


def test_bad_program_refused_at_elaboration_and_by_golden_model():
    bad = [Instruction(Op.MUL, Opd.GRF_A, 9, Opd.BANK, 0, Opd.SRF_M, 0), Instruction(Op.EXIT)]
    with pytest.raises(ValueError, match=r"dst register GRF_A\[9\] out of range"):
        HbmPimPcu(crf_init=bad)
    with pytest.raises(ValueError, match="unknown opcode 7"):
        HbmPimPcu(crf_init=[7 << 28, Op.EXIT << 28])
    m = pcu.PcuModel()
    m.reg_write(Space.CRF, 0, (Op.EXIT << 60) | (11 << 28))
    with pytest.raises(ValueError, match="unknown opcode 11"):
        m.reg_write(Space.CTRL, 0, 0)


def test_rtl_error_flag_on_column_without_program():
    dut = HbmPimPcu(banks=2)
    out = {}

    async def tb(ctx):
        out["before"] = ctx.get(dut.o_error)
        ctx.set(dut.i_cmd, PcuCmd.COLUMN)
        ctx.set(dut.i_addr, 3)
        await ctx.tick()
        ctx.set(dut.i_cmd, PcuCmd.NOP)
        await ctx.tick()
        out["after"] = ctx.get(dut.o_error)
        out["wr"] = ctx.get(dut.bank[1].wr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert out == {"before": 0, "after": 1, "wr": 0}


def test_unit_properties():
    u = HbmPimPcu(banks=2)
    assert (u.banks, u.lanes, u.latency) == (2, 16, 1)
    assert HbmPimPcu(banks=1).banks == 1
    with pytest.raises(ValueError, match="banks must be 1 or 2"):
        HbmPimPcu(banks=3)


# --- the bench in Amaranth's simulator -----------------------------------------------------

def _check(res, banks):
    assert res["mismatches"] == 0 and res["collisions"] == 0
    assert res["modes"]["random_programs"]["programs"] >= 2
    for mode in hp.MODES:
        m = res["modes"][mode]
        assert m["commands_per_column"] == hp.commands_per_column(mode)
        assert m["pipeline_depth"] == 1 and m["vectors_checked"] > 0
        assert m["heads"] >= banks


def test_bench_perbank_all_modes():
    _check(run_bench(1, vectors=8), 1)


@pytest.mark.parametrize("banks", [1, 2])
def test_bench_random_programs_whole_isa(banks):
    """Random valid programs (every opcode, AAM, NOP counts, a JUMP loop) against the
    golden model, register writes in between."""
    res = run_bench(banks, vectors=8, seed=10 + banks, modes=(), random_programs=12)
    assert res["mismatches"] == 0 and res["collisions"] == 0
    assert res["modes"]["random_programs"]["programs"] == 12


@pytest.mark.slow
def test_bench_pair_all_modes():
    _check(run_bench(2, vectors=32, seed=2), 2)


@pytest.mark.slow
def test_bench_mutant_fails():
    res = run_bench(1, vectors=16, seed=4, modes=("state_update",),
                    mutant="mac_single_rounding")
    assert res["mismatches"] > 0


def test_address_layouts_decode_the_programs_encoders():
    """hw.hbmpim_pcu reads ``i_addr`` and a CRF block through layouts; they decode what
    quant.hbmpim_programs encodes."""
    from amaranth.lib import data

    from hw.hbmpim_pcu import addr_layout, crf_block_layout

    for space in (Space.GRF_A, Space.GRF_B):
        for idx in range(8):
            view = data.Const(addr_layout, hp.reg_addr(space, idx))
            assert (view.reg.space, view.reg.index) == (int(space), idx)
    view = data.Const(addr_layout, 17 << 1 | 1)
    assert (view.column.col, view.column.bank) == (17, 1)
    words = [hp.encode(Instruction(Op.EXIT)), hp.encode(Instruction(Op.NOP, count=3))]
    block = data.Const(crf_block_layout, words[0] | words[1] << hp.INSTR_BITS)
    assert [block[0], block[1]] == words
