"""The fused update in the study: variant keys, option checks, the swamping CLI."""

import json
import subprocess
import sys

import pytest

from quant.study.plan import FUSED, fused_plan
from quant.study.runner import make_variant, run
from quant.study.workloads import make_workload


def test_fused_variant_key_and_checks():
    assert FUSED.key == "exact/mx8/SR8/lod/torch/d=stochastic-carry/fused"
    assert make_variant("exact", "mx8", "nearest").key.endswith("d=nearest")
    with pytest.raises(ValueError, match="fused applies to datapath exact only"):
        make_variant("fakequant", "mx8", "nearest", fused=True)
    with pytest.raises(ValueError, match="fused needs renorm lod"):
        make_variant("exact", "mx8", "nearest", renorm="fixed", fused=True)
    jobs = fused_plan(steps=8, seeds=(0,))
    assert len(jobs) == 4 and all(len(j.variants) == 8 for j in jobs)


def test_fused_exact_is_closer_than_unfused_on_a_short_run():
    wl = make_workload("mamba2", heads=2, dim_state=16)
    vs = [make_variant("exact", "mx8", "nearest", decay="stochastic-carry", fused=f)
          for f in (False, True)]
    res = run(wl, vs, 64, seed=3, every=64)
    assert res.state_err[vs[1].key][-1] < res.state_err[vs[0].key][-1]


def test_swamping_cli_takes_fused():
    p = subprocess.run([sys.executable, "-m", "quant.study", "swamping", "--datapath", "exact",
                        "--fused", "--steps", "4", "--heads", "1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["fused"] is True and out["variant"].endswith("/fused")
    bad = subprocess.run([sys.executable, "-m", "quant.study", "swamping", "--fused"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "fused applies to datapath exact only" in bad.stderr
