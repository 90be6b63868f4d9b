"""Co-simulation of ``hbmpim_pcu_perbank`` with its bank models (unit ``hbmpim_pcu_perbank_sim``,
hw/hbmpim_pcu_sim.py) against quant/hbmpim_pcu.py; see cosim/hbmpim_pcu_bench.py."""

import cocotb

from cosim.tb_hbmpim_pcu_common import run_unit


@cocotb.test()
async def programs(dut):
    await run_unit(dut, "hbmpim_pcu_perbank")
