"""cocotb testbench of ``example_mac`` (:class:`hw.example_mac.ExampleMac`)."""

from __future__ import annotations

import cocotb

from cosim.ref_example_mac import MODELS, MacIn, MacOut
from cosim.tb import StreamBench, env_int, make_rng, select_model, unit_of

DEFAULT_VECTORS = 2000


def stimulus(rng, n: int, width: int, acc_width: int) -> list[MacIn]:
    """Hand-picked corners (zeros, all-ones, a run long enough to wrap the accumulator),
    then ``n`` random operand pairs with an occasional clear."""
    top = (1 << width) - 1
    wrap_run = ((1 << acc_width) // (top * top)) + 2
    corners = [MacIn(0, 0, 1), MacIn(top, 0, 0), MacIn(0, top, 0), MacIn(top, top, 1)]
    corners += [MacIn(top, top, 0)] * wrap_run
    corners += [MacIn(1, 1, 1)]
    randoms = [MacIn(rng.getrandbits(width), rng.getrandbits(width), int(rng.random() < 1 / 32))
               for _ in range(n)]
    return corners + randoms


@cocotb.test()
async def random_stream(dut):
    """Random operand stream with idle gaps; every output compared bit for bit."""
    unit = unit_of(dut)
    rng = make_rng()
    model = select_model(MODELS)(acc_width=unit.acc_width)
    bench = StreamBench(dut, in_type=MacIn, out_type=MacOut, model=model, latency=unit.latency,
                        rng=rng)
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    await bench.run(stimulus(rng, vectors, unit.width, unit.acc_width))
