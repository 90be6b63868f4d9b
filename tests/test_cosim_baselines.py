"""Co-simulation of the fp16 baseline PIM units with their bank models
(``<unit>_sim``, hw/pim_fp16_sim.py) against quant/fp16_pim.py.

Default (``make test``): every unit on Icarus with a short run; the timing it measures is
compared with the unit's properties and with the committed ``sysmodel/measured/spu_timing.yaml``.
``@pytest.mark.slow``: Verilator, longer runs and the reference mutants. Any
``COCOTB_RANDOM_SEED`` must pass.
"""

from __future__ import annotations

import pytest

from cosim.benches import TESTBENCHES
from cosim.replay import check_reference_mutant
from cosim.runner import SIMULATORS, run_cosim, sim_root
from sysmodel.measured import (BASELINE_KEYS, BASELINE_UNITS, COMMITTED_TIMING,
                              MODES, read_timing)
from hw.export import UNITS, load_units

load_units()


def _run(unit: str, sim: str, vectors: int, **kwargs):
    tb = TESTBENCHES[unit]
    return run_cosim(tb.unit, tb.module, name=tb.name, sim=sim, vectors=vectors,
                     testcase=tb.testcase, **kwargs)


def _check(result, unit: str):
    assert result.passed and result.tests == 1
    bench = result.benches[unit]
    assert result.mismatches == 0 and bench["collisions"] == 0
    assert bench["vectors"] == bench["expected"] and bench["vectors"] >= 64
    u = UNITS[unit]()
    t = bench["timing"]
    assert t["cycles_per_subchunk"] == u.cycles_per_subchunk
    assert t["pipeline_depth"] == u.latency
    fresh = read_timing(sim_root() / "spu_timing.yaml")[unit]
    committed = read_timing(COMMITTED_TIMING)[unit]
    for key in BASELINE_KEYS:
        if key == "vectors_checked":
            assert fresh[key] == bench["vectors"] and committed[key] > 0
        else:
            assert fresh[key] == committed[key], (unit, key, fresh[key], committed[key])


@pytest.mark.parametrize("unit", BASELINE_UNITS)
def test_cosim_baseline_icarus(unit):
    r = _run(unit, "icarus", 64)
    _check(r, unit)
    # replayed offline: the golden model agrees, dropping the outer product does not
    assert check_reference_mutant(r.trace, None)[0] == 0
    assert check_reference_mutant(r.trace, "no_outer")[0] > 0


def test_committed_baseline_timing():
    data = read_timing(COMMITTED_TIMING)
    assert all(m in data for m in MODES)
    assert data["timemux_fp16_naive"]["cycles_per_subchunk"] == 8
    assert data["timemux_fp16_perbank"]["cycles_per_subchunk"] == 8
    assert data["pipelined_fp16_perbank"]["cycles_per_subchunk"] == 2
    for unit in BASELINE_UNITS:
        assert set(data[unit]) == set(BASELINE_KEYS) | {"provenance"}
        assert data[unit]["values_per_subchunk"] == 16
        assert data[unit]["comps_per_row_pair"] == 32 * data[unit]["banks_per_unit"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("unit", BASELINE_UNITS)
def test_cosim_baseline_long(unit, sim):
    _check(_run(unit, sim, TESTBENCHES[unit].vectors), unit)


@pytest.mark.slow
@pytest.mark.parametrize("mutant", ("sequential_dot", "no_outer"))
@pytest.mark.parametrize("unit", BASELINE_UNITS)
def test_cosim_baseline_mutants(unit, mutant):
    r = _run(unit, "icarus", 500, mutant=mutant, check=False)  # subtle mutant: see benches
    assert not r.passed and r.mismatches > 0
