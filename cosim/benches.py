"""The testbenches that ``python -m cosim`` (``make sim`` / ``make sim-long``) runs.

Add one :class:`Testbench` per cocotb testbench module; ``vectors``/``long_vectors`` are the
``COSIM_VECTORS`` of a normal and of a long regression.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TESTBENCHES", "Testbench"]


@dataclass(frozen=True)
class Testbench:
    """A cocotb testbench module run on a registered unit (see :func:`cosim.runner.run_cosim`).

    ``mutants`` lists the broken reference models the testbench offers; the harness checks
    that each of them fails.
    """
    name: str
    unit: str
    module: str
    vectors: int = 2000
    long_vectors: int = 100_000
    mutants: tuple[str, ...] = ()


TESTBENCHES: dict[str, Testbench] = {tb.name: tb for tb in [
    Testbench("example_mac", unit="example_mac", module="cosim.tb_example_mac",
              mutants=("narrow_product", "ignore_clear")),
]}
