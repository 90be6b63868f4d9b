"""Co-simulation of ``timemux_fp16_naive`` (ablation) with its bank models (unit
``timemux_fp16_naive_sim``, hw/pim_fp16_sim.py) against quant/fp16_pim.py; see
cosim/pim_fp16_bench.py."""

import cocotb

from cosim.tb_pim_fp16_common import run_unit


@cocotb.test()
async def state_update(dut):
    await run_unit(dut, "timemux_fp16_naive")
