"""Co-simulation of the SPE datapath slices ``spe_<format>[_sr]`` (cocotb through
cosim.runner) against the port-level golden model :func:`quant.spe_slice.reference`.

Short runs on the default simulator (``SIM``, else Icarus) are part of ``make test``; ``make
sim`` runs every slice on Icarus and Verilator with its mutants, the ``slow`` tests 100 k
operations each. Knobs: ``SIM``, ``COCOTB_RANDOM_SEED`` (random when unset, logged and
recorded), ``COSIM_VECTORS``, ``WAVES=1``.
"""

from __future__ import annotations

import pytest

from cosim.benches import SPE_FORMATS, TESTBENCHES
from cosim.runner import SIMULATORS, run_cosim
from cosim.stream import check_mutant

SPE_BENCHES = (tuple(f"spe_{f}{sr}" for f in SPE_FORMATS for sr in ("", "_sr"))
               + ("spe_mx8_fused", "spe_mx8_fused_sr"))
SHORT_VECTORS = 300


@pytest.mark.parametrize("name", SPE_BENCHES)
def test_cosim_spe_short(name):
    """A short golden run; every reference mutant (generators restarted, SR off, outer product
    dropped) must disagree with its recorded responses: the random-bit order and every term
    are really checked."""
    tb = TESTBENCHES[name]
    r = run_cosim(tb.unit, tb.module, name=f"{tb.name}_short", vectors=SHORT_VECTORS)
    assert r.passed and r.mismatches == 0 and r.vectors == SHORT_VECTORS
    assert check_mutant(r.trace, None) == (0, SHORT_VECTORS)
    for mutant in tb.mutants:
        mism, vec = check_mutant(r.trace, mutant)
        assert mism > 0 and vec == SHORT_VECTORS, mutant


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("name", SPE_BENCHES)
def test_cosim_spe_long(name, sim):
    tb = TESTBENCHES[name]
    r = run_cosim(tb.unit, tb.module, name=f"{tb.name}_long", sim=sim, vectors=tb.long_vectors)
    assert r.passed and r.mismatches == 0 and r.vectors == tb.long_vectors
