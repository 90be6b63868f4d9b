"""Amaranth-simulator driver for the pipelined units (async testbench, random idle gaps).

Not a test module: ``tests/test_hw_*.py`` import it (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import random

import torch

from amaranth.sim import Simulator


def _raw(port):
    return port.as_value() if hasattr(port, "as_value") else port


def run_stream(dut, inputs: list[dict[str, int]], outputs: list[str], *, idle_prob: float = 0.25,
               seed: int = 0) -> list[tuple[int, ...]]:
    """Drive ``inputs`` (dicts port name -> int) into ``dut`` with ``i_valid``, idle cycles with
    random junk on the data ports in between; return the values of ``outputs`` on every cycle
    with ``o_valid`` high. Asserts that each output comes exactly ``dut.latency`` cycles after
    its input and that no output is missing or extra."""
    rng = random.Random(seed)
    data_ports = [_raw(getattr(dut, p)) for p in inputs[0]] if inputs else []
    out_ports = [_raw(getattr(dut, p)) for p in outputs]
    sent: list[int] = []
    got: list[tuple[int, tuple[int, ...]]] = []

    async def testbench(ctx):
        cycle = 0
        i = 0
        while i < len(inputs) or cycle <= (sent[-1] if sent else 0) + dut.latency + 2:
            if i < len(inputs) and rng.random() >= idle_prob:
                for port, value in inputs[i].items():
                    ctx.set(_raw(getattr(dut, port)), value)
                ctx.set(dut.i_valid, 1)
                sent.append(cycle)
                i += 1
            else:
                ctx.set(dut.i_valid, 0)
                for port in data_ports:
                    ctx.set(port, rng.getrandbits(len(port)))
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o_valid):
                got.append((cycle, tuple(ctx.get(p) for p in out_ports)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(got) == len(inputs), f"{len(got)} outputs for {len(inputs)} inputs"
    lat = [c - s for (c, _), s in zip(got, sent)]
    assert all(x == dut.latency for x in lat), f"latencies {sorted(set(lat))}, " \
                                               f"expected {dut.latency}"
    return [v for _, v in got]


def measure_latency(dut, *, limit: int = 64) -> int:
    """Cycles from a single ``i_valid`` pulse to ``o_valid``, measured in the simulator (the
    unit's own ``latency`` is not used): 0 when ``o_valid`` follows combinationally."""
    out: dict[str, int] = {}

    async def testbench(ctx):
        ctx.set(dut.i_valid, 1)
        for cycle in range(limit + 1):
            if ctx.get(dut.o_valid):
                out["cycles"] = cycle
                return
            await ctx.tick()
            ctx.set(dut.i_valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert "cycles" in out, f"no o_valid within {limit} cycles"
    return out["cycles"]


def check_unit(dut, n: int, seed: int, *, directed: bool = False, port_rand: bool = False):
    """Run ``n`` vectors of :func:`cosim.mx_vectors.make_batch` through an MX unit and compare
    every output word with :class:`cosim.mx_vectors.Expect` (the golden model)."""
    from cosim.mx_vectors import Expect, make_batch, scalar_words, subchunk_words

    kind = dut.kind
    scalar = kind == "mul_scalar"
    gen = torch.Generator().manual_seed(seed)
    batch = make_batch(kind, n, gen, directed=directed)
    expect = Expect(kind, rbits=getattr(dut, "rbits", 8), renorm=getattr(dut, "renorm", "lod"),
                    seed=getattr(dut, "seed", None))
    rand = None
    if port_rand:
        n_st = int(batch.stoch.sum())
        rand = torch.randint(0, 1 << dut.rbits, (n_st, 32), generator=gen, dtype=torch.int32)
    want = expect(batch, rand)
    aw = subchunk_words(batch.a)
    bw = scalar_words(batch.b) if scalar else subchunk_words(batch.b)
    inputs = []
    k = 0
    for i in range(n):
        d = {"i_a": aw[i], "i_b": bw[i]}
        if kind != "dot":
            d["i_stoch"] = int(batch.stoch[i])
        if port_rand:
            word = 0
            if batch.stoch[i]:
                for lane, r in enumerate(rand[k].tolist()):
                    word |= r << (lane * dut.rbits)
                k += 1
            d["i_rand"] = word
        inputs.append(d)
    out = "o_p" if kind == "dot" else "o_y"
    got = [v[0] for v in run_stream(dut, inputs, [out], seed=seed)]
    bad = [i for i in range(n) if got[i] != want[i]]
    assert not bad, f"{len(bad)} mismatches, first at {bad[0]} (class {int(batch.cls[bad[0]])})"


def check_slice(dut, s: list[int], d: list[int], k: list[int], v: list[int], *, seed: int = 0,
                idle_prob: float = 0.25):
    """Stream ``len(s)`` operations (port words) through an SPE datapath slice, with idle
    cycles, and compare every ``o_s`` word and the ``o_valid`` timing (:func:`run_stream`)
    with :func:`quant.spe_slice.reference`; stochastic rounding is checked against
    ``SPERandom.lfsr(dut.seeds)`` (the slice's internal generators). Returns the words."""
    from quant.rng import SPERandom
    from quant.spe_slice import reference

    inputs = [{"i_s": a, "i_d": b, "i_k": c, "i_v": e} for a, b, c, e in zip(s, d, k, v)]
    got = [w for (w,) in run_stream(dut, inputs, ["o_s"], idle_prob=idle_prob, seed=seed)]
    rng = SPERandom.lfsr(dut.seeds) if dut.rounding == "sr" else None
    want = reference(dut.fmt, dut.rounding, s, d, k, v, rng, fused=getattr(dut, "fused", False))
    bad = [i for i in range(len(s)) if got[i] != want[i]]
    assert not bad, (f"{len(bad)} of {len(s)} outputs differ, first at operation {bad[0]}: "
                     f"{got[bad[0]]:#x} != {want[bad[0]]:#x}")
    return got
