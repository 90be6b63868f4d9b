"""The fused update in the study: variant keys, option checks, the swamping CLI."""

import json
import subprocess
import sys

import pytest

import torch

from quant import mx8
from quant.study.plan import FUSED, FUSED_FEEDBACK, fused_plan
from quant.study.runner import DecayEncoder, make_variant, run
from quant.study.workloads import make_workload


def test_fused_variant_key_and_checks():
    assert FUSED.key == "exact/mx8/SR8/lod/torch/d=stochastic-carry/fused"
    assert make_variant("exact", "mx8", "nearest").key.endswith("d=nearest")
    with pytest.raises(ValueError, match="fused applies to datapath exact only"):
        make_variant("fakequant", "mx8", "nearest", fused=True)
    with pytest.raises(ValueError, match="fused needs renorm lod"):
        make_variant("exact", "mx8", "nearest", renorm="fixed", fused=True)
    jobs = fused_plan(steps=8, seeds=(0,))
    assert len(jobs) == 4 and all(len(j.variants) == 12 for j in jobs)
    kvq = make_variant("fakequant", "mx8", "nearest", inputs="mx8-kvq")
    assert kvq.key == "fakequant/mx8/RTN/in=mx8-kvq" and kvq.decay == "-"
    assert FUSED_FEEDBACK.key == "exact/mx8/SR8/lod/torch/d=feedback/fused"
    assert FUSED_FEEDBACK in jobs[0].variants


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


def test_decay_feedback_keeps_the_running_sum():
    """Error feedback (``decay="feedback"``): the decays sent over any number of steps sum to
    within one rounding of the true sum (the residual is at most half a grid step: 1/64 in
    a group whose largest value carried to 1.0, 1/128 otherwise); without it a decay off the
    grid drifts by its rounding every step."""
    gen = torch.Generator().manual_seed(4)
    d = 0.97 + 0.02 * torch.rand(300, 3, 16, generator=gen)
    d[:, 0] = 0.985                                   # a constant decay off the 1/64 grid
    fb, plain = DecayEncoder("feedback"), DecayEncoder("nearest-carry")
    sent = torch.stack([mx8.decode(fb(x)) for x in d])
    drift = (sent.double().sum(0) - d.double().sum(0)).abs()
    assert drift.max() <= 1 / 64 + 1e-5
    assert (fb.residual.double() - (d.double().sum(0) - sent.double().sum(0))).abs().max() < 1e-4
    once = torch.stack([mx8.decode(plain(x)) for x in d])
    assert (once[:, 0].double().sum(0) - d[:, 0].double().sum(0)).abs().max() > 0.1
    fb.reset()
    assert fb.residual is None and torch.equal(mx8.decode(fb(d[0])), once[0])
    with pytest.raises(ValueError, match="decay feedback: decays of shape"):
        fb(d[0, :2])
    with pytest.raises(ValueError, match="decay must be one of"):
        DecayEncoder("feedbak")


def test_fused_with_decay_feedback_is_closer_on_hgrn2():
    """HGRN2 (heads with decays near 1, increments 1 - f): the GPU's decay rounding is the
    fused datapath's error; error feedback cuts it (docs/study.md)."""
    wl = make_workload("hgrn2", heads=2, dim_state=16)
    vs = [make_variant("exact", "mx8", "nearest", decay=d, fused=True)
          for d in ("stochastic-carry", "feedback")]
    res = run(wl, vs, 256, seed=3, every=256, extra=())
    assert res.state_err[vs[1].key][-1] < 0.8 * res.state_err[vs[0].key][-1]
