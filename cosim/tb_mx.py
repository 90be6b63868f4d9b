"""cocotb testbench of the MX8 arithmetic units ``mx_mul``, ``mx_mul_scalar``, ``mx_add`` and
``mx_dot`` (:mod:`hw.mx_mul`, :mod:`hw.mx_add`, :mod:`hw.mx_dot`): the unit's kind decides
the stream plan (:mod:`cosim.mx_bench`); every output bit and every output's cycle is
checked against the golden model (:mod:`quant.spe` through :class:`cosim.mx_vectors.Expect`).
"""

import cocotb

from cosim.tb import run_stream

#: The planner (:mod:`cosim.mx_bench`): :func:`cosim.runner.run_cosim` runs it before the
#: simulator starts, so this module imports neither the golden model nor torch.
PLANNER = "cosim.mx_bench:plan"


@cocotb.test()
async def stream(dut):
    """Directed corner classes, then random batches; stochastic rounding on and off."""
    await run_stream(dut)
