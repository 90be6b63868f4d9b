"""Co-simulation of the SPU with the fused state update (unit ``spu_mx8_fused_sim``,
``hw.spu.Spu(fused=True)``) against quant/ (``SPEConfig(fused=True)``).

Default (``make test``): the state update on Icarus with 256 COMPs (four row pairs, a nearest
and a stochastic chunk-group pair), its timing compared with the committed
``sysmodel/measured/spu_timing.yaml`` (mapping ``spu_mx8_fused``), and the recorded run
replayed with the reference mutants: ``unfused`` (the three roundings of the unfused SPU) and
``nearest_only`` must disagree, ``swap_banks`` changes the stimulus. ``@pytest.mark.slow``:
every mode on both simulators and the mutants simulated. Any ``COCOTB_RANDOM_SEED`` must pass.
"""

from __future__ import annotations

import pytest

from cosim.benches import TESTBENCHES
from cosim.replay import Diverged, check_reference_mutant
from cosim.runner import SIMULATORS, sim_root
from hw.spu import Spu
from sysmodel.measured import COMMITTED_TIMING, MODES, TIMING_KEYS, read_timing, spu_variant
from tests import test_cosim_spu as spu_tests

VARIANT = spu_variant(fused=True)


def _run(mode: str, sim: str, vectors: int, **kwargs):
    return spu_tests._run(mode, sim, vectors, bench="spu_fused", **kwargs)


def _check(result, mode: str, vectors: int):
    spu_tests._check(result, mode, vectors, bench="spu_fused")


def _check_timing(mode: str, vectors: int):
    """The run's measurement (under the fused variant's mapping) agrees with the committed
    one."""
    fresh = read_timing(sim_root() / "spu_timing.yaml")[VARIANT][mode]
    committed = read_timing(COMMITTED_TIMING)[VARIANT][mode]
    for key in TIMING_KEYS:
        if key == "vectors_checked":
            assert fresh[key] == vectors and committed[key] > 0
        else:
            assert fresh[key] == committed[key], (mode, key, fresh[key], committed[key])
    if mode == "state_update":
        assert fresh["writeback_delay"] == committed["writeback_delay"]


def test_cosim_spu_fused_state_update_icarus():
    result = _run("state_update", "icarus", 256)
    _check(result, "state_update", 256)
    _check_timing("state_update", 256)
    assert check_reference_mutant(result.trace, None)[0] == 0
    assert check_reference_mutant(result.trace, "unfused")[0] > 0
    assert check_reference_mutant(result.trace, "nearest_only")[0] > 0
    with pytest.raises(Diverged):
        check_reference_mutant(result.trace, "swap_banks")


def test_committed_fused_timing_follows_the_rtl():
    """The committed measurement of the fused SPU: one COMP per cycle in every mode, the
    depths the stage lists give (the fused unit shortens the state update by the adder's and
    multiplier's stages less its own), an odd write-back distance."""
    data = read_timing(COMMITTED_TIMING)
    fused, spu = data[VARIANT], Spu(fused=True)
    assert tuple(fused) == MODES
    for mode in MODES:
        assert fused[mode]["spu_cycles_per_comp"] == 1 and fused[mode]["utilization"] == 1.0
        assert fused[mode]["comps_per_row_pair"] == spu.comps_per_row_pair
        assert fused[mode]["pipeline_depth"] == spu.latency[mode]
    assert fused["state_update"]["writeback_delay"] == spu.read_to_write
    assert spu.read_to_write % 2 == 1
    assert fused["state_update"]["pipeline_depth"] < data["state_update"]["pipeline_depth"]
    for mode in ("score", "attend"):          # unchanged by the fused update
        assert fused[mode]["pipeline_depth"] == data[mode]["pipeline_depth"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("mode", MODES)
def test_cosim_spu_fused_long(mode, sim):
    vectors = 2048 if sim == "verilator" else 1024
    result = _run(mode, sim, vectors)
    _check(result, mode, vectors)
    _check_timing(mode, vectors)


@pytest.mark.slow
@pytest.mark.parametrize("mode, mutant", [(m, x) for m in MODES
                                          for x in TESTBENCHES[f"spu_fused_{m}"].mutants])
def test_cosim_spu_fused_mutants(mode, mutant):
    result = _run(mode, "icarus", 256, mutant=mutant, check=False)
    assert not result.passed and result.mismatches > 0
