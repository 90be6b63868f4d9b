"""Shared pytest fixtures and helpers."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/mx8_reference.py and friends

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def gen():
    """A seeded torch generator per test (seed logged by pytest on failure via the name)."""
    return torch.Generator().manual_seed(1234)
