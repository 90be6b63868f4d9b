"""cocotb testbench of the MX8 multipliers ``mx_mul`` and ``mx_mul_scalar``
(:class:`hw.mx_mul.MxMul`).

Random and directed operand streams with idle gaps, every output bit compared with the golden
model (:mod:`quant.spe` through :class:`cosim.mx_vectors.Expect`); see :mod:`cosim.mx_bench`.
"""

from __future__ import annotations

import cocotb

from cosim.mx_bench import run_mx_bench


@cocotb.test()
async def stream(dut):
    """Directed corner classes, then random batches; stochastic rounding on and off."""
    await run_mx_bench(dut)
