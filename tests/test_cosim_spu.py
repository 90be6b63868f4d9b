"""Co-simulation of the SPU with two bank models (unit ``spu_mx8_sim``) against quant/.

Default (``make test``): every mode on Icarus with 256 COMPs (four row pairs, a nearest and a
stochastic chunk-group pair), the timing measured by the run compared with the committed
``sysmodel/measured/spu_timing.yaml``, and the colliding variant (even read-to-write distance) caught.
``@pytest.mark.slow``: longer runs on both simulators and the reference mutants. Any
``COCOTB_RANDOM_SEED`` must pass.
"""

from __future__ import annotations

import pytest

from cosim.benches import TESTBENCHES
from cosim.replay import Diverged, check_reference_mutant
from cosim.runner import SIMULATORS, run_cosim, sim_root
from sysmodel.measured import COMMITTED_TIMING, MODES, TIMING_KEYS, read_timing, spu_variant
from cosim.summary import read_summary


def _run(mode: str, sim: str, vectors: int, *, bench: str = "spu", **kwargs):
    """Run the testbench ``<bench>_<mode>`` (``spu`` or ``spu_fused``)."""
    tb = TESTBENCHES[f"{bench}_{mode}"]
    return run_cosim(tb.unit, tb.module, name=tb.name, sim=sim, vectors=vectors,
                     testcase=tb.testcase, **kwargs)


def _check(result, mode: str, vectors: int, *, bench: str = "spu"):
    assert result.passed and result.tests == 1
    assert result.mismatches == 0 and result.vectors == vectors
    counters = result.benches[f"spu_{mode}"]
    assert counters["collisions"] == 0 and counters["pending"] == 0
    record = read_summary(result.results_xml.parent / "summary.json")[
        f"{bench}_{mode}_{result.sim}"]
    assert record["vectors"] == vectors and record["mismatches"] == 0


#: The measured timing entry of each SPU bench (``None``: the top-level SPU modes).
TIMING_ENTRY = {"spu": None, "spu_fused": spu_variant(fused=True)}


def _check_timing(mode: str, vectors: int, *, bench: str = "spu"):
    """The run just written to the run's spu_timing.yaml agrees with the committed copy (for
    ``spu_fused``: under the fused variant's mapping)."""
    fresh, committed = (read_timing(path) for path in (sim_root() / "spu_timing.yaml",
                                                        COMMITTED_TIMING))
    if TIMING_ENTRY[bench] is not None:
        fresh, committed = fresh[TIMING_ENTRY[bench]], committed[TIMING_ENTRY[bench]]
    fresh, committed = fresh[mode], committed[mode]
    extra = {"provenance"} | ({"writeback_delay"} if mode == "state_update" else set())
    assert set(committed) == set(TIMING_KEYS) | extra
    for key in TIMING_KEYS:
        if key == "vectors_checked":
            assert fresh[key] == vectors and committed[key] > 0
        else:
            assert fresh[key] == committed[key], (mode, key, fresh[key], committed[key])
    if mode == "state_update":
        assert fresh["writeback_delay"] == committed["writeback_delay"]


@pytest.mark.parametrize("mode", MODES)
def test_cosim_spu_icarus(mode):
    result = _run(mode, "icarus", 256)
    _check(result, mode, 256)
    _check_timing(mode, 256)
    # the recorded run replays without the simulator: the golden model finds nothing, the
    # mutant that rounds to nearest disagrees (the other one changes the stimulus)
    assert check_reference_mutant(result.trace, None)[0] == 0
    if "nearest_only" in TESTBENCHES[f"spu_{mode}"].mutants:
        assert check_reference_mutant(result.trace, "nearest_only")[0] > 0
    with pytest.raises(Diverged):
        check_reference_mutant(result.trace, "swap_banks")


def test_committed_timing_file_shape():
    data = read_timing(COMMITTED_TIMING)
    assert tuple(m for m in data if m in MODES) == MODES   # (+ the fp16 baseline units)
    assert data["state_update"]["utilization"] == 1.0       # one sub-chunk per SPU cycle
    assert data["state_update"]["spu_cycles_per_comp"] == 1
    # attend: two interleaved partial accumulators per bank keep one COMP per SPU cycle
    assert data["attend"]["utilization"] == 1.0 and data["attend"]["spu_cycles_per_comp"] == 1
    assert all(data[m]["comps_per_row_pair"] == 64 for m in MODES)


def test_cosim_even_distance_collides():
    """With an even read-to-write distance the write-back hits the bank being read: the bank
    model's collision check (and the bench) must fail the run."""
    result = run_cosim("spu_mx8_sim_even", "cosim.tb_spu", name="spu_even",
                       testcase="spu/mode=state_update",
                       sim="icarus", vectors=256, check=False, record=False,
                       extra_env={"SPU_TIMING_FILE": "-"})
    assert not result.passed and result.mismatches > 0
    assert result.benches["spu_state_update"]["collisions"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("bench", TIMING_ENTRY)
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("mode", MODES)
def test_cosim_spu_long(mode, sim, bench):
    vectors = 2048 if sim == "verilator" else 1024
    result = _run(mode, sim, vectors, bench=bench)
    _check(result, mode, vectors, bench=bench)
    _check_timing(mode, vectors, bench=bench)


@pytest.mark.slow
@pytest.mark.parametrize("bench, mode, mutant", [
    (b, m, x) for b in TIMING_ENTRY for m in MODES for x in TESTBENCHES[f"{b}_{m}"].mutants])
def test_cosim_spu_mutants(bench, mode, mutant):
    result = _run(mode, "icarus", 256, bench=bench, mutant=mutant, check=False)
    assert not result.passed and result.mismatches > 0
