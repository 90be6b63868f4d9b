"""HBM-PIM PCU in the system model (timing from the timing file, traffic from
quant/hbmpim_programs.py's plan), bank dealing, and the ablation script."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
import yaml

from quant import hbmpim_programs as hp
from quant.hbmpim_programs import Instruction, Op, Opd
from sysmodel import pim, pim_ablation as ablation
from sysmodel.config import CONFIG_DIR
from sysmodel.hardware import load_hardware
from sysmodel.pim import phase_cycles, round_cycles, round_shapes
from sysmodel.pimsim import simulate_phase
from sysmodel.system import Point, evaluate
from sysmodel.workload import StateUpdate, load_models, step_operators

DEFAULTS = (CONFIG_DIR / "spu_timing_defaults.yaml",)
HW = load_hardware(timing_files=DEFAULTS)
A100, H100 = HW.gpu("A100").memory, HW.gpu("H100").memory
PCU, PCU1 = HW.units["hbmpim_pcu"], HW.units["hbmpim_pcu_perbank"]


def test_defaults_are_marked_unmeasured():
    for unit in (PCU, PCU1):
        assert unit.is_pcu and unit.format.name == "fp16"
        assert [tm.commands_per_column for _, tm in unit.timing] == [4, 1, 1]
        assert all(tm.vectors_checked == 0 for _, tm in unit.timing)
        assert all(tm.source.endswith("spu_timing_defaults.yaml") for _, tm in unit.timing)
    assert (PCU.banks_per_unit, PCU1.banks_per_unit) == (2, 1)


def test_measured_pcu_entry_takes_precedence(tmp_path):
    rtl = tmp_path / "spu_timing.yaml"
    entry = {"banks_per_unit": 2, "lanes": 16,
             "state_update": {"commands_per_column": 5, "pipeline_depth": 7,
                              "vectors_checked": 96},
             "score": {"commands_per_column": 1, "pipeline_depth": 3, "vectors_checked": 64},
             "attend": {"commands_per_column": 2, "pipeline_depth": 3, "vectors_checked": 64},
             "provenance": {"simulator": "test", "seed": 1, "git_revision": "test",
                            "date": "2026-01-01"}}
    rtl.write_text(yaml.safe_dump({"hbmpim_pcu": entry}))
    hw = load_hardware(timing_files=(rtl,) + DEFAULTS)
    su = hw.units["hbmpim_pcu"].mode("state_update")
    assert (su.commands_per_column, su.pipeline_depth, su.vectors_checked) == (5, 7, 96)
    assert su.source == str(rtl)
    assert hw.units["hbmpim_pcu_perbank"].mode("state_update").source.endswith(
        "spu_timing_defaults.yaml")
    first, _ = round_shapes(A100, hw.units["hbmpim_pcu"], "attend", 0, 0, 0)
    assert first.comps == 2 * 32 * 2 and first.comp_interval == 4


def test_turnarounds_come_from_the_program():
    """The state update reads a run of columns (MUL), computes without the bank (two MACs,
    issued as RD), writes the run back (MOV): one RD->WR and one WR->RD switch per loop body
    (one row of the pass's blocks); score and attend only read."""
    assert pim._turnaround_pattern("state_update") == (4 * hp.SU_MAX_BLOCKS, 1, 1)
    for blocks in range(1, hp.SU_MAX_BLOCKS + 1):
        assert pim._turnaround_pattern("state_update", blocks, 9) == (4 * blocks, 1, 1)
    t = A100.timing
    # DRAMsim3 HBM2: RD->WR = CL 14 + burst 2 - CWL 4 + tRPRE 1 = 13; WR->RD = 4 + 2 + 8 = 14.
    assert (t.read_to_write, t.write_to_read) == (13, 14)
    assert pim.pcu_turnaround(A100, PCU, "state_update") == (16, (13 - 4) + (14 - 4))
    assert pim.pcu_turnaround(A100, PCU, "state_update", 2, 64) == (8, 19)
    h = H100.timing
    assert pim.pcu_turnaround(H100, PCU, "state_update") == (
        16, h.read_to_write + h.write_to_read - 2 * h.tCCD_L)
    for mode in ("score", "attend"):
        assert pim.pcu_turnaround(A100, PCU, mode) == (0, 0)
        assert pim._turnaround_pattern(mode, 3, 100) == (8 * 4, 0, 0)
    assert pim.pcu_turnaround(A100, replace(PCU, turnaround="free"), "state_update") == (0, 0)
    assert pim.pcu_turnaround(A100, HW.units["pimba_spu"], "state_update") == (0, 0)


def _one_column_at_a_time(blocks):
    """The first implementation's state update: MUL (RD), MAC (no bank), MOV (WR), MAC per
    column -- two switches per column."""
    body = []
    for b in range(blocks):
        body += [Instruction(Op.MUL, Opd.GRF_B, 7, Opd.BANK, 0, Opd.SRF_M, 0),
                 Instruction(Op.MAC, Opd.GRF_B, 7, Opd.GRF_A, b, Opd.SRF_M, 1),
                 Instruction(Op.MOV, Opd.BANK, 0, Opd.GRF_B, 7),
                 Instruction(Op.MAC, Opd.GRF_B, b, Opd.GRF_B, 7, Opd.SRF_M, 2)]
    return body + [Instruction(Op.JUMP, target=0, count=3), Instruction(Op.EXIT)]


def _schedule(kinds, t, bodies=2):
    """Issue times of ``bodies`` repetitions of a body of command kinds (R, W, - = no bank,
    issued as the kind before it) under tCCD_L, RD->WR and WR->RD (a hand model)."""
    times, time, prev = [], 0, None
    for _ in range(bodies):
        for k in kinds:
            k = prev if k == "-" else k
            if prev is not None:
                time += {("R", "W"): t.read_to_write,
                         ("W", "R"): t.write_to_read}.get((prev, k), t.tCCD_L)
            times.append(time)
            prev = k
    return times


@pytest.mark.parametrize("hbm", [A100, H100], ids=["A100", "H100"])
def test_turnaround_charge_per_body_by_hand(hbm, monkeypatch):
    """One body's cycles, worked out command by command, are ``gap_every`` tCCD_L slots plus
    the charged gap -- for the batched program and for the old one-column-at-a-time one (two
    switches per column, here a body of 2 columns: 8 commands, 2 + 2 switches)."""
    t = hbm.timing
    # Batched, 4 blocks: RRRR ---- ---- WWWW. A100: MULs at 0..12, MACs 16..44, first MOV
    # 44 + 13 = 57, MOVs to 69, next MUL 69 + 14 = 83 = 16 x 4 + 19.
    times = _schedule("RRRR" + "-" * 8 + "WWWW", t)
    every, gap = pim.pcu_turnaround(hbm, PCU, "state_update", 4, 64)
    assert times[16] - times[0] == every * t.tCCD_L + gap
    if hbm is A100:
        assert times[12] == 57 and times[16] == 83
    old = _one_column_at_a_time(2)
    assert pim.body_switches(old) == (8, 2, 2)
    monkeypatch.setattr(pim, "_turnaround_pattern", lambda *a: pim.body_switches(old))
    every, gap = pim.pcu_turnaround(hbm, PCU, "state_update", 2, 4)
    times = _schedule("R-W-R-W-", t)
    assert (every, times[8] - times[0]) == (8, 8 * t.tCCD_L + gap)
    assert gap == 2 * (t.read_to_write - t.tCCD_L) + 2 * (t.write_to_read - t.tCCD_L)


def test_cycles_per_column_batched_vs_per_column():
    """Bus cycles per state-update column: 4 tCCD_L + the switches of a body over its
    columns. Batches of 1 (the switches of one column at a time): A100 35, H100 52; batches
    of 4: 20.75 and 25."""
    def per_column(hbm, blocks):
        every, gap = pim.pcu_turnaround(hbm, PCU, "state_update", blocks, 64)
        return (every * hbm.timing.tCCD_L + gap) / blocks
    assert per_column(A100, 1) == 35 and per_column(H100, 1) == 52
    assert per_column(A100, 4) == 20.75 and per_column(H100, 4) == 25


def test_pcu_round_by_hand():
    first, rest = round_shapes(A100, PCU, "state_update", 0, 0, 0)
    # 4 commands x 32 columns x 2 banks; ACT4s end at 90, first command at 104; the last of
    # 256 commands 255 x 4 + 15 body turnaround gaps of 19 later = 1409 (one body = one row
    # i of 4 columns, 16 commands); write-back 3 x 4 later, tWR 16 -> precharge at 1437,
    # closed at 1451.
    assert first.comps == 256 and first == rest
    assert (first.gap_every, first.gap) == (16, 19)
    assert round_cycles(A100, first) == 104 + 255 * 4 + 15 * 19 + 12 + 16 + 14 == 1451
    two, _ = round_shapes(A100, PCU, "state_update", 0, 0, 0, pass_shape=(2, 64))
    assert (two.gap_every, two.gap) == (8, 19)
    assert round_cycles(A100, two) == 104 + 255 * 4 + 31 * 19 + 12 + 16 + 14
    one, _ = round_shapes(A100, PCU1, "state_update", 0, 0, 0)
    assert one.comps == 128
    free, _ = round_shapes(A100, replace(PCU, turnaround="free"), "state_update", 0, 0, 0)
    assert round_cycles(A100, free) == 104 + 255 * 4 + 12 + 16 + 14


@pytest.mark.parametrize("hbm", [A100, H100], ids=["A100", "H100"])
@pytest.mark.parametrize("dim_state", [16, 48, 112])
def test_pcu_pass_shape_closed_form_matches_simulator(hbm, dim_state):
    """The phase takes its turnarounds from the head's first pass (1-4 blocks); closed form
    and event simulator agree within 1 % for every body length."""
    unit = replace(PCU, dealing="groups")
    p = hp.plan("state_update", 64, dim_state)
    head = p.pass_plans[0]
    reg = -(-p.reg_write_columns // p.rows)
    reads = -(-p.result_read_columns // p.rows)
    first, _ = round_shapes(hbm, unit, "state_update", reg, reg, reads,
                            pass_shape=(head.blocks, head.iterations))
    assert first.gap_every == 4 * head.blocks
    cyc = round_cycles(hbm, first)
    for groups, cpg in ((1, 1), (2, 7)):        # 14 rounds cross a few refreshes
        closed = int(phase_cycles(hbm.timing, cyc, cyc, groups, cpg, refresh="postponed"))
        cycles, _ = simulate_phase(hbm, first, first, groups, cpg, refresh="postponed")
        assert abs(closed - cycles) <= 0.01 * cycles, (groups, cpg, closed, cycles)
    ph = pim.phase(hbm, unit, "state_update", 3, hbm.banks, 64, dim_state)
    expect = phase_cycles(hbm.timing, cyc, cyc, 3, p.rows, refresh="postponed")
    assert float(ph.time_s) * hbm.clock_ghz * 1e9 == pytest.approx(float(expect))


@pytest.mark.parametrize("mode,dim_head,lengths", [
    ("state_update", 128, [16, 64, 112, 128, 512, 1536]),
    ("score", 128, [1, 15, 16, 17, 127, 128, 129, 2049, 4096]),
    ("attend", 224, [1, 7, 8, 9, 2049, 3000]),
])
def test_memoised_plan_is_the_plan(mode, dim_head, lengths):
    for n in lengths:
        assert pim.pcu_plan(mode, dim_head, n) == hp.plan(mode, dim_head, n)
        assert pim.pcu_plan(mode, dim_head, n, True) == hp.plan(mode, dim_head, n, True)


@pytest.mark.parametrize("mode,length", [("state_update", 64), ("score", 300),
                                         ("attend", 300)])
def test_pcu_phase_whole_heads(mode, length):
    """``groups`` dealing: every head whole in one bank; traffic = heads x the plan."""
    unit = replace(PCU, dealing="groups")
    batch, heads, dh = 32, 20, 128
    ph = pim.phase(A100, unit, mode, batch, heads, dh, length)
    p = hp.plan(mode, dh, length)
    n = batch * heads
    w = ph.work
    assert int(w.rows) == n * p.rows and int(w.subchunks) == n * p.data_columns
    assert int(w.column_accesses) == n * (p.data_columns + p.bank_writes
                                          + p.reg_write_columns + p.result_read_columns)
    assert float(w.comps) == n * p.compute_commands / 8         # 8 PCUs per pseudo-channel
    assert int(ph.pieces) == 1 and int(ph.partials) == 1
    reg = -(-p.reg_write_columns // p.rows)
    reads = -(-p.result_read_columns // p.rows)
    first, _ = round_shapes(A100, unit, mode, reg, reg, reads)
    cyc = round_cycles(A100, first)
    expect = phase_cycles(A100.timing, cyc, cyc, -(-n // A100.banks), p.rows,
                          refresh="postponed")
    assert float(ph.time_s) * A100.clock_ghz * 1e9 == pytest.approx(float(expect))


def test_pcu_phase_vectorised_over_kv_lengths():
    kv = np.array([100, 2049, 2050, 4096])
    ph = pim.phase(A100, PCU, "score", 64, 32, 128, kv)
    for i, n in enumerate(kv):
        one = pim.phase(A100, PCU, "score", 64, 32, 128, int(n))
        assert ph.time_s[i] == pytest.approx(float(one.time_s))
        assert ph.work.column_accesses[i] == pytest.approx(float(one.work.column_accesses))
    assert np.all(np.diff(ph.time_s) >= 0)


def test_rows_dealing_splits_pcu_heads_and_pays_operands():
    """32 heads on 1280 banks: whole heads leave 1248 banks idle; pieces spread them and load
    each piece's registers (more REG_WRITEs), never fewer data columns."""
    whole = pim.phase(A100, replace(PCU, dealing="groups"), "state_update", 1, 32, 768, 1536)
    dealt = pim.phase(A100, PCU, "state_update", 1, 32, 768, 1536)
    assert int(dealt.pieces) > 1
    assert float(dealt.time_s) < float(whole.time_s) / 10
    assert dealt.work.reg_writes > whole.work.reg_writes
    assert dealt.work.subchunks == whole.work.subchunks      # 1536 / pieces is 16-aligned


def _busiest_over_mean(hbm, unit, op):
    groups, cpg = pim.state_groups(hbm, unit, op.batch, op.heads, op.dim_head, op.dim_state)
    first, rest = (round_cycles(hbm, s) for s in round_shapes(hbm, unit, "state_update"))
    pieces, per_bank, rows = pim.deal(hbm, unit, groups, cpg, first, rest)
    return float(per_bank * rows / (groups * cpg / hbm.banks))


def test_rows_dealing_balances_70b_batch_32():
    """The issue's case: 70B models on 8 GPUs, batch 32 -- whole chunk groups give the
    busiest bank 1.67x the mean rows; dealing rows brings every model within 8 %."""
    models = load_models()
    worst = {}
    for name in ("retnet-70b", "gla-70b", "hgrn2-70b", "mamba2-70b", "zamba2-70b"):
        op = next(o for o, _ in step_operators(models[name], 32, 8)
                  if isinstance(o, StateUpdate))
        for unit in ("pimba_spu", "timemux_fp16_naive"):
            u = HW.units[unit]
            old = _busiest_over_mean(A100, replace(u, dealing="groups"), op)
            new = _busiest_over_mean(A100, replace(u, dealing="rows"), op)
            assert new <= old + 1e-9
            assert new < 1.08, (name, unit, new)
            worst[unit] = max(worst.get(unit, 0), old)
    assert worst["pimba_spu"] == pytest.approx(5 / 3)


@pytest.mark.parametrize("mode", ["state_update", "score", "attend"])
def test_rows_dealing_accounting(mode):
    """Same rows and data columns; the extra REG_WRITEs are exactly the extra group starts."""
    unit = HW.units["pimba_spu"]
    groups, cpg = 1536, np.array([3, 48, 130])
    old = pim._chunk_phase(A100, replace(unit, dealing="groups"), mode, groups, cpg)
    new = pim._chunk_phase(A100, unit, mode, groups, cpg)
    assert np.array_equal(old.work.rows, new.work.rows)
    assert np.array_equal(old.work.subchunks, new.work.subchunks)
    assert np.array_equal(old.work.comps, new.work.comps)
    start, steady, _ = pim._mode_counts(A100, unit, mode, unit.format.bits_per_value)
    extra = groups * (new.pieces - 1) * (start - steady)
    assert np.array_equal(new.work.reg_writes - old.work.reg_writes, extra)
    assert np.array_equal(new.work.column_accesses - old.work.column_accesses, extra)
    assert np.all(new.time_s <= old.time_s)


@pytest.mark.parametrize("unit", ["pimba_spu", "timemux_fp16_naive", "per_bank_pipelined_fp16"])
def test_rows_dealt_phase_matches_simulator(unit):
    u = HW.units[unit]
    first_s, rest_s = round_shapes(A100, u, "state_update")
    first, rest = round_cycles(A100, first_s), round_cycles(A100, rest_s)
    for groups, cpg in ((1700, 6), (1500, 48), (2000, 4)):
        pieces, per_bank, rows = pim.deal(A100, u, groups, cpg, first, rest)
        closed = float(pim.phase_time_s(A100, u, "state_update", groups, cpg)) * 1.512e9
        cycles, _ = simulate_phase(A100, first_s, rest_s, int(per_bank), int(rows))
        assert abs(closed - cycles) <= 0.01 * cycles


def test_pcu_systems_end_to_end():
    r = evaluate(Point("mamba2-2.7b", "GPU+PIM", batch_size=64, output_len=8), HW).row()
    assert r["timing_source"].endswith("spu_timing_defaults.yaml")
    assert r["time_state_update_s"] > 0 and r["energy_state_update_j"] > 0
    for model in ("opt-7b", "zamba2-7b"):
        tput = {s: evaluate(Point(model, s, batch_size=32, output_len=8), HW).tokens_per_s
                for s in ("GPU", "GPU+PIM", "GPU+PIM (naive)", "Time-multiplexed", "Pimba")}
        # Attention: one MAC per column beats the naive unit's 2-3 cycles per sub-chunk.
        assert tput["GPU+PIM"] > tput["GPU+PIM (naive)"]
        assert tput["Pimba"] > tput["GPU+PIM"]


def test_ablation_variants_and_tables(tmp_path, monkeypatch):
    names = [v.name for v in ablation.variants()]
    assert names[0] == "before" and "after" in names and len(names) == len(set(names)) == 9
    before = ablation.variant_hardware(HW, ablation.variants()[0])
    assert before.system("GPU+PIM").pim_unit.key == "timemux_fp16_naive"
    assert {m.refresh for m in before.memories.values()} == {"window"}
    assert before.gpu("H100").memory.refresh == "window"
    assert {u.dealing for u in before.units.values()} == {"groups"}
    assert before.system("Pimba").pim_unit.dealing == "groups"
    rows = ablation.run(DEFAULTS, figures=(16,), output_len=2)
    assert len(rows) == 9 * 3
    for v, f, ratio, gm, mx in rows:
        assert f == 16 and 0 < gm <= mx
    by = {(v.name, r): gm for v, _, r, gm, _ in rows}
    assert by[("before", "Pimba / GPU")] == by[("before + PCU", "Pimba / GPU")]
    assert by[("before + PCU", "GPU+PIM / GPU")] != by[("before", "GPU+PIM / GPU")]
    text = ablation.markdown(rows)
    assert "| before | naive | window | groups |" in text
    monkeypatch.setattr(ablation, "run", lambda *a, **k: rows)
    assert ablation.main(["--out", str(tmp_path)]) == 0
    table = list(csv.DictReader(open(tmp_path / "pim_ablation.csv")))
    assert len(table) == 27 and table[0]["variant"] == "before"
    assert (tmp_path / "pim_ablation.md").read_text() == text


def test_ablation_bad_input(tmp_path, capsys):
    assert ablation.main(["--out", str(tmp_path / "x"), "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: argument --jobs: --jobs=0: out of range") and "\n" not in err
    assert ablation.main(["--out", str(tmp_path / "x"), "--timing", "nope.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_naive_ablation_system_in_a_grid(tmp_path):
    """``GPU+PIM (naive)`` is usable in grids; the default figures do not show it."""
    from sysmodel.sweep import FIGURES, figure_grid, load_grid, run_points
    grid = tmp_path / "naive.yaml"
    grid.write_text("name: naive\ntitle: t\nplot: {kind: throughput, baseline: GPU}\nblocks:\n"
                    "  - {models: [retnet-2.7b], systems: [GPU, GPU+PIM (naive), GPU+PIM],\n"
                    "     gpus: [A100], num_gpus: 1, batch_sizes: [16], input_len: 64,\n"
                    "     output_len: 4}\n")
    g = load_grid(grid)
    rows = run_points(g.points, timing_files=DEFAULTS, progress=False)
    assert [r["system"] for r in rows] == ["GPU", "GPU+PIM (naive)", "GPU+PIM"]
    assert rows[1]["tokens_per_s"] != rows[2]["tokens_per_s"]
    for n in FIGURES:
        assert "GPU+PIM (naive)" not in {p.system for p in load_grid(figure_grid(n)).points}
