"""The design-space sweep: keys from the RTL, refusals, the system-model hookup, the fronts."""

from __future__ import annotations

import inspect
import math

import pytest

from dse import pareto
from dse.__main__ import main
from dse.evaluate import _throughput, study_variant
from dse.space import GridError, NOT_DESIGN_KEYS, DesignPoint, design_keys, load_grid, \
    unit_classes


def _grid(tmp_path, text):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_keys_are_the_constructors_keyword_parameters():
    for kind, by_fmt in unit_classes().items():
        for fmt, cls in by_fmt.items():
            params = inspect.signature(cls.__init__).parameters
            want = {n for n, p in params.items() if n != "self" and not n.startswith("_")
                    and n not in NOT_DESIGN_KEYS and p.default is not p.empty}
            assert set(design_keys(kind, fmt)) == want, (kind, fmt)
    assert {"rbits", "renorm"} <= set(design_keys("spu", "mx8"))
    assert set(unit_classes()["spe"]) == {"fp16", "e4m3", "e5m2", "int8", "mx8"}


def test_shipped_grids_parse():
    small = load_grid("dse/grids/small.yaml")
    full = load_grid("dse/grids/full.yaml")
    assert any(p.is_paper() for p in small.points)
    assert len(full.points) > len(small.points)
    assert len({p.ident for p in full.points}) == len(full.points)


def test_a_key_the_rtl_does_not_take_is_refused_naming_it(tmp_path, capsys):
    path = _grid(tmp_path, "name: x\nblocks:\n  - {unit: spe, format: [fp16], renorm: [lod]}\n")
    with pytest.raises(GridError, match=r"blocks\[0\]\.renorm: not a parameter of the RTL of "
                                        r"spe fp16 .*allowed: format, rounding"):
        load_grid(path)
    out = tmp_path / "out"
    assert main(["--grid", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "renorm" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("text, match", [
    ("name: x\nblocks:\n  - {unit: spu, rbits: [9]}\n", r"rbits must be in 1\.\.8, not 9"),
    ("name: x\nblocks:\n  - {unit: spe, format: [fp32]}\n", r"format: 'fp32' has no spe"),
    ("name: x\nblocks:\n  - {unit: gpu}\n", r"unit: 'gpu' \(allowed: spe, spu\)"),
    ("name: x\ncosim: {vectors: 0}\nblocks:\n  - {unit: spu}\n", r"cosim\.vectors"),
    ("name: x\ntypo: 1\nblocks:\n  - {unit: spu}\n", r"typo: unknown key"),
])
def test_bad_grids_are_refused(tmp_path, text, match):
    with pytest.raises(GridError, match=match):
        load_grid(_grid(tmp_path, text))


def test_study_variant_of_each_kind():
    assert study_variant(DesignPoint("spe", "mx8", (("rounding", "sr"), ("renorm", "fixed")))
                         ).key.startswith("exact/mx8/SR8/fixed")
    assert study_variant(DesignPoint("spu", "mx8", (("rbits", 4), ("renorm", "lod")))
                         ).key.startswith("exact/mx8/SR4/lod")
    assert study_variant(DesignPoint("spe", "e4m3", (("rounding", "rne"),))
                         ).key == "fakequant/e4m3/RTN"
    # the study's decay encoding per datapath: feedback with the fused update
    assert study_variant(DesignPoint("spu", "mx8", (("rbits", 8), ("renorm", "lod"),
                                                    ("fused", True)))
                         ).key == "exact/mx8/SR8/lod/torch/d=feedback/fused"
    assert study_variant(DesignPoint("spu", "mx8", (("rbits", 8), ("renorm", "lod"),
                                                    ("fused", False)))
                         ).key == "exact/mx8/SR8/lod/torch/d=stochastic-carry"


def test_system_model_the_paper_slice_is_pimba_and_a_slow_path_costs_cycles(tmp_path):
    mx8 = DesignPoint("spe", "mx8", (("rounding", "sr"), ("renorm", "lod")))
    same = _throughput(mx8, {"crit_ns_dram": ""}, tmp_path)
    assert same["throughput_vs_pimba"] == 1.0 and same["spu_cycles_per_comp"] == 1
    from sysmodel.hardware import load_hardware
    period = 1e3 / load_hardware().gpu("A100").memory.spu_clock_mhz
    slow = _throughput(mx8, {"crit_ns_dram": 1.5 * period}, tmp_path)  # 1.5 tCCD_L: 2 cycles
    assert slow["spu_cycles_per_comp"] == 2 and slow["throughput_vs_pimba"] < 1.0
    fp16 = _throughput(DesignPoint("spe", "fp16", (("rounding", "rne"),)),
                       {"crit_ns_dram": ""}, tmp_path)
    assert fp16["throughput_vs_pimba"] < 1.0       # twice the state bytes


def test_system_model_a_fused_spu_point_takes_the_fused_timing(tmp_path):
    """An SPU point with ``fused`` reaches the grid and the system model takes the fused SPU's
    measured timing (its shorter state-update pipeline) for it."""
    from sysmodel.hardware import load_hardware

    assert design_keys("spu", "mx8")["fused"] is False
    grid = load_grid("dse/grids/full.yaml")
    assert any(p.kind == "spu" and dict(p.params)["fused"] for p in grid.points)
    hw = load_hardware()
    unfused = _throughput(DesignPoint("spu", "mx8", (("rbits", 8), ("renorm", "lod"),
                                                     ("fused", False))), {"crit_ns_dram": ""},
                          tmp_path)
    fused = _throughput(DesignPoint("spu", "mx8", (("rbits", 8), ("renorm", "lod"),
                                                   ("fused", True))), {"crit_ns_dram": ""},
                        tmp_path)
    assert unfused["throughput_vs_pimba"] == 1.0
    assert unfused["pipeline_depth"] == hw.units["pimba_spu"].mode("state_update").pipeline_depth
    assert fused["pipeline_depth"] == \
        hw.units["pimba_spu_fused"].mode("state_update").pipeline_depth
    assert fused["pipeline_depth"] < unfused["pipeline_depth"]
    # its own timing reaches the system model: a shorter state-update drain, a longer attend
    # fold (3 partials), so a throughput of its own, within 1 % of Pimba's on fig. 12's points
    assert fused["throughput_vs_pimba"] != 1.0
    assert abs(fused["throughput_vs_pimba"] - 1.0) < 0.01


def _row(pid, area, err, thr, paper=False):
    return {"point": pid, "label": pid, "unit": "spe", "format": "mx8", "area_mm2_10nm": area,
            "state_rel_err": err, "throughput_vs_pimba": thr, "paper_design": paper}


def test_pareto_front_and_where_the_paper_design_sits():
    rows = [_row("a", 1.0, 0.10, 1.0), _row("b", 2.0, 0.05, 1.0, paper=True),
            _row("c", 3.0, 0.05, 1.2), _row("d", 1.5, 0.20, 0.9)]
    assert [r["point"] for r in pareto.front(rows, "area_vs_error")] == ["a", "b"]
    assert pareto.paper_position(rows, "area_vs_error")["on_front"]
    pos = pareto.paper_position(rows, "area_vs_throughput")
    assert not pos["on_front"] and pos["dominated_by"] == ["a"]
    assert [r["point"] for r in pareto.front(rows, "area_vs_throughput")] == ["a", "c"]
    marked = pareto.mark_fronts(rows)
    assert [r["front_area_vs_error"] for r in marked] == [True, True, False, False]
    assert math.isclose(pareto.fronts_summary(rows)["area_vs_error"]["front"][0]["x"], 1.0)


def test_report_shows_the_fronts_when_the_dse_output_exists(tmp_path):
    from dse.__main__ import write_outputs
    from report.build import section_dse

    assert section_dse(tmp_path) == ""                 # not run: no section
    grid = load_grid("dse/grids/small.yaml")
    rows = [{**_row(p.ident, 1.0 + i, 0.1 / (i + 1), 1.0, p.is_paper()), "label": p.label,
             **p.as_dict} for i, p in enumerate(grid.points)]
    write_outputs(tmp_path / "dse", grid, rows, {"wall_s": 0})
    html = section_dse(tmp_path)
    assert html.count("<img") == 2
    assert html.count("MX8 design (SR, LOD)") == 2     # where it sits, on each front
    assert "Every point" in html


def test_unreachable_cluster_one_line_exit_2_nothing_written(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    assert main(["--grid", "dse/grids/small.yaml", "--out", str(out), "--executor", "ray",
                 "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Ray cluster at 127.0.0.1:1: unreachable" in err[0]
    assert not out.exists()
