"""cocotb smoke test of the simulator-side Python: the project's packages and torch import.

Any unit can be the toplevel; it is not driven.
"""

from __future__ import annotations

import importlib
import time

import cocotb


@cocotb.test()
async def imports(dut):
    """``torch``, ``quant`` and ``hw`` import inside the simulator's Python."""
    for name in ("hw.export", "quant", "torch"):
        t0 = time.perf_counter()
        module = importlib.import_module(name)
        cocotb.log.info("import %s: %.2f s (%s)", name, time.perf_counter() - t0,
                        getattr(module, "__version__", getattr(module, "__file__", "")))
    import torch

    assert torch.tensor([1.0, 2.0]).sum().item() == 3.0
