"""End-to-end points, figure grids, tables, determinism, parallel runs and the CLI."""

from __future__ import annotations

import csv

import pytest

from sysmodel.cli import main
from sysmodel.config import CONFIG_DIR
from sysmodel.hardware import load_hardware
from sysmodel.sweep import (COLUMNS, FIGURES, figure_grid, load_grid, run_points,
                            table_text)
from sysmodel.system import Point, evaluate
from sysmodel.workload import CATEGORIES

HW = load_hardware(timing_files=(CONFIG_DIR / "spu_timing_defaults.yaml",))
SYSTEMS = ("GPU", "GPU+Q", "GPU+PIM", "Pimba")


def test_figure_grids_have_the_issue_points():
    counts = {n: len(load_grid(figure_grid(n)).points) for n in FIGURES}
    assert counts == {3: 18, 5: 15, 12: 144, 13: 72, 14: 24, 16: 72}
    fig12 = load_grid(figure_grid(12))
    assert {(p.model.endswith("70b"), p.num_gpus) for p in fig12.points} == {(False, 1), (True, 8)}
    assert {p.system for p in fig12.points} == set(SYSTEMS)
    assert {p.gpu for p in load_grid(figure_grid(16)).points} == {"H100"}
    assert {p.system for p in load_grid(figure_grid(5)).points} == {
        "GPU", "Pipelined", "Time-multiplexed"}


def test_result_is_consistent():
    r = evaluate(Point("zamba2-7b", "Pimba", batch_size=32, output_len=64), HW)
    row = r.row()
    parts = sum(row[f"time_{c}_s"] for c in CATEGORIES)
    assert parts == pytest.approx(row["time_total_s"])
    assert row["tokens_per_s"] == pytest.approx(32 * 64 / row["time_total_s"])
    assert sum(row[f"energy_{c}_j"] for c in CATEGORIES) == pytest.approx(row["energy_j"])
    assert row["latency_per_token_s"] == pytest.approx(row["time_total_s"] / 64)
    assert row["time_state_update_s"] > 0 and row["time_attention_s"] > 0


@pytest.mark.parametrize("model,gpus", [("mamba2-2.7b", 1), ("retnet-70b", 8),
                                        ("opt-7b", 1), ("zamba2-70b", 8)])
def test_system_ordering(model, gpus):
    tput = {s: evaluate(Point(model, s, num_gpus=gpus, batch_size=128), HW).tokens_per_s
            for s in SYSTEMS}
    assert tput["Pimba"] > 1.5 * tput["GPU"]
    assert tput["Pimba"] > tput["GPU+PIM"] and tput["Pimba"] > tput["GPU+Q"]
    assert tput["GPU+Q"] > tput["GPU"]     # 8-bit state and 8-bit KV cache (OPT: KV only)


def test_pimba_gain_grows_with_batch():
    gain = []
    for b in (32, 64, 128):
        g = evaluate(Point("retnet-2.7b", "GPU", batch_size=b), HW).tokens_per_s
        p = evaluate(Point("retnet-2.7b", "Pimba", batch_size=b), HW).tokens_per_s
        gain.append(p / g)
    assert gain[0] < gain[1] < gain[2]


def test_pim_state_update_beats_gpu_for_every_unit():
    su = {}
    for s in ("GPU", "Time-multiplexed", "Pipelined", "GPU+PIM", "Pimba"):
        su[s] = evaluate(Point("mamba2-2.7b", s, output_len=16), HW).row()[
            "state_update_tokens_per_s"]
    assert su["GPU"] < su["Time-multiplexed"] < su["Pipelined"] < su["Pimba"]


def test_energy_lower_with_pimba():
    for model in ("retnet-70b", "opt-70b"):
        e = {s: evaluate(Point(model, s, num_gpus=8, output_len=64), HW).total_energy_j
             for s in ("GPU", "Pimba")}
        assert e["Pimba"] < e["GPU"]


def test_table_deterministic_and_parallel_identical():
    points = load_grid(figure_grid(14)).points
    timing = (CONFIG_DIR / "spu_timing_defaults.yaml",)
    one = table_text(run_points(points, jobs=1, timing_files=timing, progress=False))
    again = table_text(run_points(points, jobs=1, timing_files=timing, progress=False))
    two = table_text(run_points(points, jobs=2, timing_files=timing, progress=False))
    assert one == again == two
    header = one.splitlines()[0].split(",")
    assert header == list(COLUMNS)
    for col in ("model", "system", "gpu", "num_gpus", "batch_size", "tokens_per_s",
                "time_state_update_s", "time_attention_s", "time_gemm_s", "time_other_s",
                "time_comm_s", "energy_j", "energy_state_update_j", "energy_comm_j"):
        assert col in header


def test_sweep_writes_csv_and_png(tmp_path, capsys):
    assert main(["sweep", "--figure", "5", "--out", str(tmp_path), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "fig5.csv")))
    assert len(rows) == 15 and {r["system"] for r in rows} == {
        "GPU", "Pipelined", "Time-multiplexed"}
    png = (tmp_path / "fig5.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig5.csv", "fig5.png"]
    assert "fig5: 15 points" in capsys.readouterr().out


def test_custom_grid_and_errors_leave_nothing(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: mine\ntitle: t\nplot: {kind: throughput, baseline: GPU}\nblocks:\n"
                    "  - {models: [hgrn2-2.7b], systems: [GPU, Pimba], gpus: [H200, B200],\n"
                    "     num_gpus: 1, batch_sizes: [8], input_len: 128, output_len: 16}\n")
    out = tmp_path / "out"
    assert main(["sweep", "--grid", str(grid), "--out", str(out), "--no-plot", "--quiet"]) == 0
    assert len((out / "mine.csv").read_text().splitlines()) == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(grid.read_text().replace("Pimba", "Pimbo"))
    out2 = tmp_path / "out2"
    assert main(["sweep", "--grid", str(bad), "--out", str(out2), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: blocks[0].systems: unknown value 'Pimbo' (allowed: GPU, GPU+Q" in err
    assert not out2.exists()


def test_cli_run_prints_breakdown(capsys):
    assert main(["run", "--model", "mamba2-2.7b", "--system", "Pimba", "--gpu", "A100",
                 "--batch", "128", "--output-len", "32"]) == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "state_update" in out and "energy" in out
    assert "1 x A100" in out
