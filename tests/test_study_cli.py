"""CLI, determinism and output files of the accuracy study (small, fast cases)."""

import json
import os
import subprocess
import sys

import pytest

from quant.study import runner
from quant.study.plan import Job
from quant.study.run import read_curves, run_all
from quant.study.workloads import FAMILIES, InputStream, make_workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "quant.study", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_swamping_json_exact():
    p = cli("swamping", "--format", "mx8", "--rounding", "stochastic", "--datapath", "exact",
            "--steps", "8", "--seed", "7", "--heads", "2", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for k in ("state_rel_err", "output_rel_err", "format", "rounding", "datapath", "steps",
              "seed", "renorm", "rbits", "decay", "rounding_seed"):
        assert k in out
    assert out["datapath"] == "exact" and out["steps"] == 8 and out["seed"] == 7
    assert 0 < out["state_rel_err"] < 1 and 0 < out["output_rel_err"] < 1


@pytest.mark.parametrize("args,needle", [
    (["--format", "fp12"], "format must be one of fp32,fp16,bf16,int8,e4m3,e5m2,mx8,mx8c"),
    (["--datapath", "exact", "--format", "bf16"], "format must be mx8 for datapath exact"),
    (["--datapath", "exact", "--renorm", "x"], "renorm must be one of lod,fixed"),
    (["--rounding", "up"], "rounding must be one of nearest,stochastic"),
    (["--workload", "llama"], "workload must be one of mamba2,retnet,gla,hgrn2"),
    (["--steps", "x"], "--steps must be an integer"),
])
def test_config_errors_are_one_line(args, needle):
    p = cli("swamping", *args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, p.stderr


def test_all_bad_option_writes_nothing(tmp_path):
    out = tmp_path / "o"
    p = cli("all", "--out", str(out), "--seeds", "a,b")
    assert p.returncode == 2 and "--seeds" in p.stderr
    assert not out.exists()


def test_same_seed_same_bits_different_seed_differs():
    wl = make_workload("gla", heads=2, dim_state=16)
    v = runner.make_variant("exact", "mx8", "stochastic", 4, decay="stochastic-carry")
    a = runner.run(wl, [v], 6, 1, every=2)
    b = runner.run(wl, [v], 6, 1, every=2)
    c = runner.run(wl, [v], 6, 2, every=2)
    assert a.state_err == b.state_err and a.output_err == b.output_err
    assert a.state_err != c.state_err


@pytest.mark.parametrize("family", list(FAMILIES))
def test_workload_statistics(family):
    wl = make_workload(family, heads=3, batch=2, dim_state=16)
    inp = InputStream(wl, 0).next()
    assert inp.d.shape == (6, wl.dim_head) and inp.v.shape == (6, 16)
    assert bool(((inp.d > 0) & (inp.d <= 1)).all())
    again = InputStream(wl, 0).next()
    assert all(bool((getattr(inp, f) == getattr(again, f)).all()) for f in "dkvq")


def test_run_all_writes_tables_and_plots(tmp_path):
    wl = make_workload("mamba2", heads=2, dim_state=16)
    plan = [Job(wl, 0, 32, (runner.make_variant("fakequant", "bf16", "nearest"),
                            runner.make_variant("fakequant", "bf16", "stochastic"))),
            Job(wl, 0, 32, (runner.make_variant("exact", "mx8", "stochastic"),))]
    run_all(str(tmp_path), jobs=1, plan=plan)
    names = sorted(os.listdir(tmp_path))
    assert names == ["curves.csv", "error_vs_steps.png", "summary.csv", "summary.md",
                     "summary.png", "timing.json"]  # no sweep runs: no exact_sweep.png
    rows = read_curves(str(tmp_path))
    assert {r["variant"] for r in rows} == {"fakequant/bf16/RTN", "fakequant/bf16/SR8",
                                            "exact/mx8/SR8/lod/torch/d=nearest"}
    assert "| fakequant/bf16/RTN |" in (tmp_path / "summary.md").read_text()
