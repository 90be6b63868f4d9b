"""LFSR (hw/lfsr.py) against quant.rng.LFSRStream and the bit-serial PRBS31 reference."""

import random

import pytest
from amaranth.sim import Simulator

from hw.lfsr import LFSR
from quant.rng import DEFAULT_SITE_SEEDS, LFSRStream, prbs31_reference

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl._ir.UnusedElaboratable")


def observed_blocks(dut: LFSR, enables: list[int]) -> list[tuple[int, int]]:
    """(o_rand, o_state) seen in each cycle, with i_en driven from ``enables``."""
    seen = []

    async def testbench(ctx):
        for en in enables:
            ctx.set(dut.i_en, en)
            seen.append((ctx.get(dut.o_rand.as_value()), ctx.get(dut.o_state)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize("lanes, rbits, seed", [
    (32, 8, DEFAULT_SITE_SEEDS["add"]), (32, 3, DEFAULT_SITE_SEEDS["mul_decay"]),
    (1, 8, 1), (16, 1, 0x7FFFFFFF),
])
def test_stream_matches_model(lanes, rbits, seed):
    dut = LFSR(lanes=lanes, rbits=rbits, seed=seed)
    rng = random.Random(seed)
    enables = [int(rng.random() < 0.7) for _ in range(120)]
    stream = LFSRStream(seed)
    for (bits, state), en in zip(observed_blocks(dut, enables), enables):
        assert state == stream.state()
        want = stream.bits(dut.width) if en else None
        if en:
            assert bits == sum(int(b) << j for j, b in enumerate(want))


def test_first_bits_are_the_seed_and_match_bit_serial_reference():
    seed = DEFAULT_SITE_SEEDS["mul_outer"]
    dut = LFSR(lanes=4, rbits=8, seed=seed)
    seen = observed_blocks(dut, [1] * 40)
    assert seen[0][0] & ((1 << 31) - 1) == seed
    ref = prbs31_reference(seed, 32 * 40)
    got = [(word >> j) & 1 for word, _ in seen for j in range(32)]
    assert got == ref


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"seed": 0}, ValueError, "seed must be a non-zero 31-bit value, not 0x0"),
    ({"seed": "1"}, TypeError, "seed must be an int, not '1'"),
    ({"rbits": 9}, ValueError, "rbits must be in 1..8, not 9"),
    ({"lanes": 0}, ValueError, "lanes must be in 1..256, not 0"),
    ({"lanes": 2.0}, TypeError, "lanes must be an int, not 2.0"),
])
def test_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        LFSR(**kwargs)
    assert str(info.value) == msg
