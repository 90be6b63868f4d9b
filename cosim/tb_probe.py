"""cocotb probe of what one simulated cycle costs a bench, apart from the unit: the time of
one ``await FallingEdge`` (the C++ clock, ``impl="gpi"``), of writing and reading a wide and
a one-bit port, and of a write followed by an await, each averaged over ``COSIM_VECTORS``
repetitions (default 50,000). Run by :mod:`cosim.probe`; the unit only needs ``clk``,
``i_valid``, ``o_valid``, a wide input ``i_a`` and a wide output ``o_y`` (the MX units)."""

from __future__ import annotations

import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from cosim.tb import env_int, write_result


@cocotb.test()
async def probe(dut):
    """Microseconds per operation, written to the counters as ``us_<operation>``."""
    n = env_int("COSIM_VECTORS", 50_000)
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    fall = FallingEdge(dut.clk)
    a, y = dut.i_a._handle, dut.o_y._handle
    iv, ov = dut.i_valid._handle, dut.o_valid._handle
    ones = "1" * len(dut.i_a)
    us: dict[str, float] = {}

    def per_op(t0: float) -> float:
        return round((time.perf_counter() - t0) / n * 1e6, 3)

    t0 = time.perf_counter()
    for _ in range(n):
        await fall
    us["await_falling_edge"] = per_op(t0)
    t0 = time.perf_counter()
    for _ in range(n):
        a.set_signal_val_binstr(0, ones)
    us["write_wide"] = per_op(t0)
    t0 = time.perf_counter()
    for _ in range(n):
        iv.set_signal_val_int(0, 1)
    us["write_bit"] = per_op(t0)
    t0 = time.perf_counter()
    for _ in range(n):
        y.get_signal_val_binstr()
    us["read_wide"] = per_op(t0)
    t0 = time.perf_counter()
    for _ in range(n):
        ov.get_signal_val_binstr()
    us["read_bit"] = per_op(t0)
    t0 = time.perf_counter()
    for i in range(n):
        a.set_signal_val_binstr(0, ones if i & 1 else ones.replace("1", "0"))
        await fall
    us["write_wide_then_await"] = per_op(t0)
    dut._log.info("probe, us per operation: %s", us)
    write_result("probe", {"vectors": n, "mismatches": 0, "repetitions": n,
                           "width_i_a": len(dut.i_a), "width_o_y": len(dut.o_y),
                           **{f"us_{k}": v for k, v in us.items()}})
