"""cocotb testbench of the SPU in state update mode (see :mod:`cosim.spu_bench`)."""

import cocotb

from cosim.tb_spu_common import run_mode


@cocotb.test()
async def spu_state_update(dut):
    await run_mode(dut, "state_update")
