"""Co-simulation of the SPU with the fused state update (unit ``spu_mx8_fused_sim``,
``hw.spu.Spu(fused=True)``) against quant/ (``SPEConfig(fused=True)``).

Default (``make test``): the state update on Icarus with 256 COMPs (four row pairs, a nearest
and a stochastic chunk-group pair), its timing compared with the committed
``sysmodel/measured/spu_timing.yaml`` (mapping ``spu_mx8_fused``), and the recorded run
replayed with the reference mutants: ``unfused`` (the three roundings of the unfused SPU) and
``nearest_only`` must disagree, ``swap_banks`` changes the stimulus. Every mode on both
simulators and the simulated mutants are tests/test_cosim_spu.py's slow tests (``bench``
``spu_fused``). Any ``COCOTB_RANDOM_SEED`` must pass.
"""

from __future__ import annotations

import pytest

from cosim.replay import Diverged, check_reference_mutant
from hw.spu import Spu
from sysmodel.measured import COMMITTED_TIMING, MODES, read_timing, spu_variant
from tests import test_cosim_spu as spu_tests

VARIANT = spu_variant(fused=True)


def _run(mode: str, sim: str, vectors: int, **kwargs):
    return spu_tests._run(mode, sim, vectors, bench="spu_fused", **kwargs)


def _check(result, mode: str, vectors: int):
    spu_tests._check(result, mode, vectors, bench="spu_fused")


def _check_timing(mode: str, vectors: int):
    spu_tests._check_timing(mode, vectors, bench="spu_fused")


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
    multiplier's stages less its own; attend's fold is longer), an odd write-back distance."""
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
    assert fused["score"]["pipeline_depth"] == data["score"]["pipeline_depth"]  # unchanged
    # attend through the fused unit: its 5 stages in place of the multiplier's and adder's
    # 7, but a fold of 3 partials, step 2 waiting for step 1 (5 iterations)
    x = len(spu.update_stages) - 1
    assert fused["attend"]["pipeline_depth"] == 1 + x + 1 + (1 * x + 2 - 1) + x == 18


# The longer runs on both simulators and the simulated mutants of the fused SPU are
# tests/test_cosim_spu.py's slow tests (parametrized by bench).
