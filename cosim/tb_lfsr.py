"""cocotb testbench of the PRBS31 generator ``lfsr`` (:class:`hw.lfsr.LFSR`).

Every cycle the generator's ``o_rand`` (the next ``lanes * rbits`` stream bits) and
``o_state`` are compared with :class:`quant.rng.LFSRStream`; ``i_en`` is driven randomly
(probability ``1 - COSIM_IDLE``), and only enabled cycles consume stream bits. Values are
sampled at the falling edge, when the registered state is stable, and ``i_en`` is changed there.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from cosim.tb import env_float, env_int, make_rng, unit_of, write_result
from quant.rng import LFSR_WIDTH, LFSRStream

DEFAULT_VECTORS = 3000


class _Blocks:
    """The model's stream cut into ``width``-bit blocks (Python ints), drawn 4096 at a time
    (one vectorised call) and handed out in order."""

    def __init__(self, model: LFSRStream, width: int, batch: int = 4096):
        self.model, self.width, self.batch = model, width, batch
        self._buf: list[int] = []
        self._pos = 0

    def next(self) -> int:
        if self._pos == len(self._buf):
            raw = self.model.bits(self.width * self.batch).reshape(self.batch, self.width)
            rows = np.packbits(raw, axis=1, bitorder="little")
            self._buf = [int.from_bytes(r.tobytes(), "little") for r in rows]
            self._pos = 0
        self._pos += 1
        return self._buf[self._pos - 1]


@cocotb.test()
async def stream(dut):
    """Random enables; every cycle's output block and state compared bit for bit."""
    unit = unit_of(dut)
    rng = make_rng()
    vectors = env_int("COSIM_VECTORS", DEFAULT_VECTORS)
    idle = env_float("COSIM_IDLE", 0.25)
    width = unit.width
    assert width >= LFSR_WIDTH, "the bench reads the state from the first 31 block bits"
    dut._log.info("lfsr: %d lanes x %d bits, seed %#x, %d cycles", unit.lanes, unit.rbits,
                  unit.seed, vectors)
    # the enables of every cycle and the expected outputs, before the first cycle
    enables = [rng.random() >= idle for _ in range(vectors)]
    blocks = _Blocks(LFSRStream(unit.seed), width)
    cur = blocks.next()
    expected = []
    for en in enables:
        expected.append(cur)
        if en:
            cur = blocks.next()
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    dut.i_en.value = 1  # ignored under reset
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    dut.i_en.value = 0
    rand_h, state_h, en_h = dut.o_rand._handle, dut.o_state._handle, dut.i_en._handle
    fall = FallingEdge(dut.clk)
    rand, state = [], []
    wall0 = time.perf_counter()
    for en in enables:
        await fall
        rand.append(rand_h.get_signal_val_binstr())
        state.append(state_h.get_signal_val_binstr())
        en_h.set_signal_val_int(0, int(en))
    wall = time.perf_counter() - wall0
    mask = (1 << LFSR_WIDTH) - 1
    mismatches = []
    for i, (e, r, st) in enumerate(zip(expected, rand, state)):
        try:
            got = (int(r, 2), int(st, 2))
        except ValueError:
            got = (r, st)
        if got != (e, e & mask):
            mismatches.append(i)
            if len(mismatches) <= 10:
                dut._log.error("cycle %d: expected rand %#x state %#x, got %s", i, e, e & mask,
                               got)
    result = {"vectors": len(rand), "expected": vectors, "mismatches": len(mismatches),
              "pending": vectors - len(rand), "cycles": vectors,
              "enabled_cycles": sum(enables), "wall_s": round(wall, 4),
              "cycles_per_s": round(vectors / wall, 1) if wall > 0 else None,
              "test_seed": cocotb.RANDOM_SEED}
    dut._log.info("%d cycles (%d enabled) in %.2f s, %d mismatches", vectors, sum(enables),
                  wall, len(mismatches))
    write_result(dut._name, result)
    assert not mismatches, f"{len(mismatches)} mismatches, first at cycle {mismatches[0]}"
