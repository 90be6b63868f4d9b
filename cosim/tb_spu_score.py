"""cocotb testbench of the SPU in score mode (see :mod:`cosim.spu_bench`)."""

import cocotb

from cosim.tb_spu_common import run_mode


@cocotb.test()
async def spu_score(dut):
    await run_mode(dut, "score")
