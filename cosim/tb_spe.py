"""cocotb testbench of the SPE datapath slices ``spe_<format>[_sr]`` (fp16, fp8 e4m3/e5m2,
int8 with an fp16 group scale, MX8): every output bit against :func:`quant.spe_slice.reference`;
see :mod:`cosim.spe_bench`."""

import cocotb

from cosim.tb import run_stream

#: The planner (:mod:`cosim.spe_bench`): :func:`cosim.runner.run_cosim` runs it before the
#: simulator starts, so this module imports neither the golden model nor torch.
PLANNER = "cosim.spe_bench:plan"


@cocotb.test()
async def stream(dut):
    """Random operation classes (raw bits, typical, cancelling, corner values, wide range)."""
    await run_stream(dut)
