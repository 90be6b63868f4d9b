"""Co-simulation of the MX8 units (cocotb through cosim.runner) against the golden model.

Short runs on the default simulator (``SIM``, else Icarus) are part of ``make test``; the
``slow`` tests run 1 M vectors per unit (``make sim-long`` runs the same through
``python -m cosim --long``). Knobs: ``SIM``, ``COCOTB_RANDOM_SEED`` (random when unset,
logged and recorded), ``COSIM_VECTORS``, ``WAVES=1``.
"""

from __future__ import annotations

import pytest

from cosim.benches import TESTBENCHES
from cosim.runner import BUILD_ROOT, SIMULATORS, default_sim, run_cosim
from cosim.stream import check_mutant

MX_BENCHES = ("mx_mul", "mx_mul_scalar", "mx_add", "mx_dot", "lfsr")
SHORT_VECTORS = 400


@pytest.mark.parametrize("name", MX_BENCHES)
def test_cosim_short(name):
    """A short golden run, then every reference mutant of the bench checked offline against
    its recorded responses (each must disagree with them; the golden plan must not)."""
    tb = TESTBENCHES[name]
    # Recorded as ``<tb>_short_<sim>``: the ``<tb>_<sim>`` record belongs to ``make sim``.
    r = run_cosim(tb.unit, tb.module, name=f"{tb.name}_short", vectors=SHORT_VECTORS)
    assert r.passed and r.mismatches == 0 and r.vectors == SHORT_VECTORS
    if tb.mutants:
        assert check_mutant(r.trace, None) == (0, SHORT_VECTORS)
        for mutant in tb.mutants:
            mism, vec = check_mutant(r.trace, mutant)
            assert mism > 0 and vec == SHORT_VECTORS, mutant


def test_rtl_mutant_is_caught():
    """The adder elaborated with an off-by-one alignment shift must fail the scoreboard."""
    from cosim.mutants import RTL_MUTANTS, registered

    with registered("mx_add_mutant_align", BUILD_ROOT / "verilog") as unit:
        r = run_cosim(unit, RTL_MUTANTS[unit][0], name="mx_add_mutant_align", vectors=300,
                      check=False, record=False)
    assert not r.passed
    assert r.mismatches > 0


def test_reference_mutant_fails_in_the_simulator():
    """A wrongly called reference (random bits consumed by nearest operations too) also fails
    a simulated run (the path ``COSIM_MUTANT`` takes), not only the offline check."""
    tb = TESTBENCHES["mx_mul"]
    r = run_cosim(tb.unit, tb.module, name=tb.name, vectors=300, mutant="stream_on_nearest",
                  check=False)
    assert not r.passed
    assert r.mismatches > 0


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("name", MX_BENCHES)
def test_cosim_long(name, sim):
    """1 M vectors per unit (about 2-3 min per unit on Verilator, 15-45 min on Icarus)."""
    tb = TESTBENCHES[name]
    assert tb.long_vectors >= 1_000_000
    r = run_cosim(tb.unit, tb.module, name=f"{tb.name}_long", sim=sim, vectors=tb.long_vectors)
    assert r.passed and r.mismatches == 0 and r.vectors == tb.long_vectors


def test_default_simulator_is_known():
    assert default_sim() in SIMULATORS
