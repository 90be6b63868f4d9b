"""Shared pytest fixtures and helpers."""

import os
import secrets
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/mx8_reference.py and friends

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def gen():
    """A seeded torch generator per test (seed logged by pytest on failure via the name)."""
    return torch.Generator().manual_seed(1234)


# One seed per session for the property-based tests (tests/test_spe_properties.py), drawn here
# so pytest's header logs it; set SPE_PROPERTY_SEED to replay a session.
os.environ.setdefault("SPE_PROPERTY_SEED", str(secrets.randbits(32)))


def pytest_report_header(config):
    seed = os.environ["SPE_PROPERTY_SEED"]
    return f"SPE property seed: {seed} (replay: SPE_PROPERTY_SEED={seed})"

# Co-simulation runs of the test suite write under build/test-sim/, never into the build/sim/
# files (summary.json, spu_timing.yaml, JUnit XML) that `make sim`, the report and the
# system model read; builds are shared (build/sim-cache/, keyed by content).
os.environ.setdefault("COSIM_OUT", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "build", "test-sim"))
