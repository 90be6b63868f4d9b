"""cocotb testbench of the bulk mode (:mod:`cosim.bulk`): the wrapper ``bulk_<unit>`` streams
the vectors from memories, the responses are read back once per chunk and compared, every
bit, with the golden model; see :mod:`cosim.bulk_bench`."""

import cocotb

from cosim.bulk_bench import run_bulk_bench


@cocotb.test()
async def bulk(dut):
    """Class enumeration, then random chunks; every output bit, count and latency checked."""
    await run_bulk_bench(dut)
