"""cocotb testbench of the harness's self-test unit ``example_mac``
(:class:`tests.example_mac.ExampleMac`), a stream plan (:mod:`cosim.stream`) like the real
units' benches; its reference mutants (:data:`tests.ref_example_mac.MODELS`) are checked
offline against the golden run's responses (:func:`cosim.stream.check_mutant`)."""

from __future__ import annotations

import random

import cocotb
import numpy as np

from cosim.stream import StreamPlan, gaps, junk_pool, port_widths
from tests.ref_example_mac import MODELS, MacIn

DEFAULT_VECTORS = 2000
PLANNER = "tests.tb_example_mac:plan"
MUTANTS = tuple(m for m in MODELS if m != "golden")


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


def plan(unit, vectors: int, seed: int, *, idle: float = 0.25,
         mutant: str | None = None) -> StreamPlan:
    """The corners and ``vectors`` random operations, expectations from the model named
    ``mutant`` (default: the golden one)."""
    if (mutant or "golden") not in MODELS:
        raise ValueError(f"COSIM_MUTANT={mutant!r}: unknown (allowed: {', '.join(MUTANTS)})")
    rng = random.Random(seed)
    txns = stimulus(rng, vectors, unit.width, unit.acc_width)
    model = MODELS[mutant or "golden"](acc_width=unit.acc_width)
    widths = port_widths(unit, ("a", "b", "clear"), ("acc",))
    nrng = np.random.default_rng(rng.getrandbits(63))
    g = gaps(nrng, len(txns), idle)
    junk, pick = junk_pool(nrng, widths, ("a", "b", "clear"), int(g.sum()))
    return StreamPlan(inputs={"a": [t.a for t in txns], "b": [t.b for t in txns],
                              "clear": [t.clear for t in txns]},
                      outputs={"acc": [model(t).acc for t in txns]}, widths=widths,
                      latency=unit.latency, gaps=g, junk=junk, junk_pick=pick)


@cocotb.test()
async def random_stream(dut):
    """Random operand stream with idle gaps; every output compared bit for bit."""
    from cosim.tb import run_stream

    await run_stream(dut)
