"""Local pool and Ray give the same results byte for byte: a small synthesis sweep and a short
co-simulation regression, each run on both executors (a real local Ray instance)."""

from __future__ import annotations

import json

import pytest

from dse.jobs import cosim_job
from executor import LocalExecutor, make_executor
from synth.config import load_config, load_units
from synth.flow import default_liberty, parse_liberty, run_flow

pytestmark = pytest.mark.slow

#: Small units of synth/units.yaml and short benches (unit, module, name, sim, seed, vectors).
SYNTH_UNITS = ("fpmul_e4m3", "fpadd_e4m3", "lfsr")
BENCHES = [("mx_dot", "cosim.tb_mx", "ray_mx_dot", "icarus", 11, 60),
           ("mx_add", "cosim.tb_mx", "ray_mx_add", "icarus", 12, 60),
           ("lfsr", "cosim.tb_lfsr", "ray_lfsr", "icarus", 13, 60)]


@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    with make_executor("ray", jobs=2) as ex:
        yield ex


def _synth(executor, out):
    specs = [s for s in load_units() if s.unit in SYNTH_UNITS]
    results = run_flow(specs, parse_liberty(default_liberty()), load_config(), out,
                       executor=executor)
    assert [s.unit for s, _ in results] == [s.unit for s in specs]
    return {s.unit: (out / "units" / s.unit / "result.json").read_bytes() for s in specs}


def test_synthesis_sweep_is_identical_on_ray_and_the_local_pool(ray_executor, tmp_path):
    with LocalExecutor(2) as local:
        want = _synth(local, tmp_path / "local")
    got = _synth(ray_executor, tmp_path / "ray")
    assert got == want                      # every result.json, byte for byte


def test_cosim_regression_is_identical_on_ray_and_the_local_pool(ray_executor):
    with LocalExecutor(2) as local:
        want = local.map(cosim_job, BENCHES)
    got = ray_executor.map(cosim_job, BENCHES)
    assert all(r["passed"] and r["vectors"] >= 60 for r in want), want
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
