"""cocotb testbench of the PRBS31 generator ``lfsr`` (:class:`hw.lfsr.LFSR`).

Every cycle the generator's ``o_rand`` (the next ``lanes * rbits`` stream bits) and
``o_state`` are compared with :class:`quant.rng.LFSRStream`; ``i_en`` is driven randomly
(probability ``1 - COSIM_IDLE``), and only enabled cycles consume stream bits. Values are
sampled at the falling edge, when the registered state is stable, and ``i_en`` is changed there.
"""

from __future__ import annotations

import dataclasses
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from cosim.tb import Scoreboard, env_float, env_int, make_rng, unit_of, write_result
from quant.rng import LFSR_WIDTH, LFSRStream

DEFAULT_VECTORS = 3000


@dataclasses.dataclass(frozen=True)
class LfsrOut:
    rand: int
    state: int


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
    sb: Scoreboard[LfsrOut] = Scoreboard(dut._name, log=dut._log)
    blocks = _Blocks(LFSRStream(unit.seed), width)
    cur = blocks.next()
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i_en.value = 1  # ignored under reset
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    dut.i_en.value = 0
    wall0 = time.perf_counter()
    enabled = 0
    for _ in range(vectors):
        await FallingEdge(dut.clk)
        sb.expect(LfsrOut(cur, cur & ((1 << LFSR_WIDTH) - 1)))
        sb.receive(LfsrOut(dut.o_rand.value.to_unsigned(), dut.o_state.value.to_unsigned()))
        en = rng.random() >= idle
        dut.i_en.value = int(en)
        if en:
            enabled += 1
            cur = blocks.next()
    wall = time.perf_counter() - wall0
    result = {"vectors": sb.vectors, "expected": vectors, "mismatches": len(sb.mismatches),
              "pending": sb.pending, "cycles": vectors, "enabled_cycles": enabled,
              "wall_s": round(wall, 4),
              "cycles_per_s": round(vectors / wall, 1) if wall > 0 else None,
              "test_seed": cocotb.RANDOM_SEED}
    dut._log.info("%s; %d cycles (%d enabled) in %.2f s", sb.summary(), vectors, enabled, wall)
    write_result(dut._name, result)
    sb.check()

