"""Co-simulation of the HBM-PIM PCU with its bank models (``hbmpim_pcu_sim``,
``hbmpim_pcu_perbank_sim``; hw/hbmpim_pcu_sim.py) against quant/hbmpim_pcu.py.

Default (``make test``): both units on Icarus with a short run (one small head per bank and
mode); the commands per column and pipeline depth it measures are compared with the
programs, the unit's latency and the committed ``sysmodel/measured/spu_timing.yaml``. ``@pytest.mark.slow``:
Verilator, the registry's vector counts and the reference mutant. Any
``COCOTB_RANDOM_SEED`` must pass.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")

from cosim.benches import TESTBENCHES
from cosim.runner import SIMULATORS, run_cosim, sim_root
from sysmodel.measured import (COMMITTED_TIMING, MODES, PCU_KEYS, PCU_UNITS,
                              read_timing)
from hw.export import UNITS, load_units
from quant.hbmpim_programs import commands_per_column

load_units()


def _run(unit: str, sim: str, vectors: int, **kwargs):
    tb = TESTBENCHES[unit]
    return run_cosim(tb.unit, tb.module, name=tb.name, sim=sim, vectors=vectors,
                     testcase=tb.testcase, **kwargs)


def _check(result, unit: str):
    assert result.passed and result.tests == 1
    bench = result.benches[unit]
    assert result.mismatches == 0 and bench["collisions"] == 0
    u = UNITS[unit]()
    fresh = read_timing(sim_root() / "spu_timing.yaml")[unit]
    committed = read_timing(COMMITTED_TIMING)[unit]
    assert fresh["banks_per_unit"] == committed["banks_per_unit"] == u.banks
    for mode in MODES:
        m = bench["modes"][mode]
        assert m["commands_per_column"] == commands_per_column(mode)
        assert m["pipeline_depth"] == u.latency
        assert m["vectors_checked"] > 0 and m["heads"] >= u.banks
        for key in PCU_KEYS:
            if key == "vectors_checked":
                assert fresh[mode][key] == m[key] and committed[mode][key] > 0
            else:
                assert fresh[mode][key] == committed[mode][key], (unit, mode, key)


@pytest.mark.parametrize("unit", PCU_UNITS)
def test_cosim_pcu_icarus(unit):
    _check(_run(unit, "icarus", 8), unit)


def test_committed_pcu_timing():
    data = read_timing(COMMITTED_TIMING)
    for unit, banks in zip(PCU_UNITS, (2, 1)):
        assert data[unit]["banks_per_unit"] == banks and data[unit]["lanes"] == 16
        assert data[unit]["state_update"]["commands_per_column"] == 4
        assert data[unit]["score"]["commands_per_column"] == 1
        assert data[unit]["attend"]["commands_per_column"] == 1
    assert "hbmpim_fp16" not in data and "timemux_fp16_naive" in data


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("unit", PCU_UNITS)
def test_cosim_pcu_long(unit, sim):
    _check(_run(unit, sim, TESTBENCHES[unit].vectors), unit)


@pytest.mark.slow
@pytest.mark.parametrize("unit", PCU_UNITS)
def test_cosim_pcu_mutant(unit):
    r = _run(unit, "icarus", 64, mutant="mac_single_rounding", check=False)
    assert not r.passed and r.mismatches > 0
