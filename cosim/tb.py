"""cocotb-side toolkit: knobs, seeds, the streaming bench player, counters.

This module runs *inside* the simulator (it imports :mod:`cocotb`); the pytest side that
builds and launches the simulator is :mod:`cosim.runner`.

The model of a streaming unit under test: an input operation is accepted on every rising edge
where ``i_valid`` is high; after the unit's latency the matching output is presented with
``o_valid`` high, in order. Its bench is data (:mod:`cosim.stream`): a plan computed by the
runner before the simulator starts (``COSIM_PLAN_FILE``), played by :func:`play_stream` with
one trigger per cycle, the responses recorded and compared in bulk at the end (every bit and
every output's cycle).

Timing convention (the same on Icarus and Verilator): inputs are written at the falling edge
after a rising edge *n*, so the unit samples them at edge *n+1*; outputs are read at the
falling edge after an edge *m*, i.e. they are the values registered at edge *m*. A unit
with ``latency`` registers between input and output answers with ``m - n == latency``.

Knobs (environment variables, with defaults): ``COSIM_VECTORS`` (number of operations, an
integer >= 1, default given by the testbench), ``COSIM_IDLE`` (probability of an idle cycle,
0.25), ``COSIM_MUTANT`` (name of a deliberately broken reference model, "" for the golden
one), ``COSIM_RESULT_FILE`` (where a bench writes its counters as JSON; set by the runner),
``COSIM_TRACE_FILE`` (where a passing run records its responses; set by the runner),
``COSIM_PLAN_FILE`` (a stream bench's plan; set by the runner, which reads ``COSIM_VECTORS``,
``COSIM_IDLE`` and ``COSIM_MUTANT`` for it).
``COCOTB_RANDOM_SEED`` is cocotb's: every test builds its own
``random.Random(cocotb.RANDOM_SEED)`` with :func:`make_rng` and logs it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.handle import SimHandleBase
from cocotb.triggers import FallingEdge, Timer

from .stream import StreamPlan, compare, save_trace

__all__ = [
    "env_float",
    "env_int",
    "make_rng",
    "play_stream",
    "port_unsigned",
    "run_stream",
    "unit_of",
    "write_result",
]

_log = logging.getLogger("cosim")


def env_int(name: str, default: int) -> int:
    """A count knob ``name`` from the environment: an integer >= 1, ``default`` when unset or
    empty (zero vectors would check nothing and still pass)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw, 0)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: not an integer (allowed: an integer >= 1)") from None
    if n < 1:
        raise ValueError(f"{name}={n}: out of range (allowed: an integer >= 1)")
    return n


def env_float(name: str, default: float) -> float:
    """Float knob ``name`` from the environment, ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def make_rng(log: logging.Logger | None = None) -> random.Random:
    """The test's own random generator, seeded from ``cocotb.RANDOM_SEED`` (and logged).

    cocotb derives ``RANDOM_SEED`` per test from ``COCOTB_RANDOM_SEED`` and the test's name, so
    a failure replays with the same ``COCOTB_RANDOM_SEED``.
    """
    seed = cocotb.RANDOM_SEED
    (log or _log).info("random seed: test seed %d (COCOTB_RANDOM_SEED=%s)", seed,
                       os.environ.get("COCOTB_RANDOM_SEED", "<unset>"))
    return random.Random(seed)


def unit_of(dut: SimHandleBase):
    """A fresh instance of the Amaranth unit simulated as ``dut``, for its properties
    (``latency``, widths): the testbench reads them instead of hard-coding them.

    The unit is ``hw.export.UNITS[$COSIM_UNIT]`` (default: the toplevel's name); the runner
    sets ``COSIM_UNIT_MODULE`` to the module that registers it, so nothing else is imported.
    """
    import importlib

    from hw.export import UNITS, load_units

    name = os.environ.get("COSIM_UNIT", "").strip() or dut._name
    module = os.environ.get("COSIM_UNIT_MODULE", "").strip()
    if name not in UNITS and module:
        importlib.import_module(module)
    if name not in UNITS:
        load_units()
    return UNITS[name]()


def _bin(word: int, width: int) -> str:
    return format(word, f"0{width}b")


async def play_stream(dut: SimHandleBase, plan: StreamPlan, *, name: str, planner: str,
                      seed: int, idle: float, vectors: int | None = None,
                      period_ns: int = 10, log: logging.Logger | None = None,
                      window: Mapping[str, Any] | None = None) -> dict:
    """Drive ``plan`` into the streaming unit ``dut`` and check what it answers.

    One trigger per cycle: at each falling edge the outputs registered at the rising edge
    before are read (``o_valid``, and the data ports when it is high; X or Z on ``o_valid``
    fails at once), then the inputs of the next rising edge are written (an operation with
    ``i_valid`` high, or an idle cycle with junk on the data ports). Values go to and come
    from the simulator as bit strings precomputed in bulk, without per-cycle objects. After
    the last operation the bench runs ``latency + 4`` more cycles (a late or spurious output
    is caught), then compares everything (:func:`cosim.stream.compare`), writes its counters
    (``COSIM_RESULT_FILE``) and, when it passed, the trace of its responses
    (``COSIM_TRACE_FILE``, for the offline reference-mutant checks), and fails on any
    mismatch. ``vectors`` is the count the plan was made for (default: its length), recorded
    with ``planner``, ``seed`` and ``idle`` so that the plan can be rebuilt offline.

    ``window`` (``{"k": K, "in": [...], "out": [...]}``, from the runner): ``dut`` is the
    unit's ``K``-cycle window wrapper and the same cycles are exchanged ``K`` at a time, one
    trigger per window (:func:`_play_windows`).
    """
    log = log or logging.getLogger(f"cosim.{name}")
    clk = dut.clk
    Clock(clk, period_ns, unit="ns", impl="gpi").start()
    if window is not None:
        received, in_cycles, out_cycles, cycle, k, wall = await _play_windows(
            dut, plan, window, period_ns)
        return _finish(dut, plan, name=name, planner=planner, seed=seed, idle=idle,
                       vectors=vectors, log=log, received=received, in_cycles=in_cycles,
                       out_cycles=out_cycles, cycle=cycle, idle_cycles=k, wall=wall,
                       window=int(window["k"]))
    in_ports = list(plan.inputs)
    out_ports = list(plan.outputs)
    w = plan.widths
    i_handles = [getattr(dut, f"i_{p}")._handle for p in in_ports]
    o_handles = [getattr(dut, f"o_{p}")._handle for p in out_ports]
    valid_h = dut.i_valid._handle
    o_valid_h = dut.o_valid._handle
    # stimulus as bit strings, built before the first cycle
    words = [[_bin(x, w[p]) for x in plan.inputs[p]] for p in in_ports]
    junk = [[_bin(x, w[p]) for x in plan.junk[p]] for p in in_ports]
    zeros = [_bin(0, w[p]) for p in in_ports]
    ops = list(zip(*words))
    idle_words = [tuple(j[k] for j in junk) for k in plan.junk_pick.tolist()]
    dep = 0  # _GPISetAction.DEPOSIT

    dut.rst.value = 1
    valid_h.set_signal_val_int(dep, 0)
    for h, z in zip(i_handles, zeros):
        h.set_signal_val_binstr(dep, z)
    fall = FallingEdge(clk)
    for _ in range(3):
        await fall
    dut.rst.value = 0

    received: list[list[str]] = [[] for _ in out_ports]
    out_cycles: list[int] = []
    in_cycles: list[int] = []
    wall0 = time.perf_counter()
    cycle = 0
    k = 0  # idle cycles so far
    n = plan.vectors
    schedule = plan.gaps.tolist()
    recv = [r.append for r in received]

    get_valid = o_valid_h.get_signal_val_binstr
    set_valid = valid_h.set_signal_val_int
    readers = [h.get_signal_val_binstr for h in o_handles]
    writers = [h.set_signal_val_binstr for h in i_handles]
    nidle = len(idle_words)
    valid = 0  # what i_valid holds
    # One pass per operation: its idle gap, then the operation (the last pass, i == n, only
    # drains the pipeline). A clock cycle costs ~4 us inside `await fall` on Verilator
    # (python -m cosim.probe), so the Python here is kept to the minimum.
    for i in range(n + 1):
        g = schedule[i] if i < n else plan.latency + 4
        if g and valid:
            set_valid(dep, 0)
            valid = 0
        for c in range(g + (i < n)):
            if c < g:  # an idle cycle: junk on the data ports
                for w, s in zip(writers, idle_words[k % nidle]):
                    w(dep, s)
                k += 1
            else:
                if not valid:
                    set_valid(dep, 1)
                    valid = 1
                for w, s in zip(writers, ops[i]):
                    w(dep, s)
                in_cycles.append(cycle)
            await fall
            cycle += 1
            v = get_valid()
            if v == "1":
                out_cycles.append(cycle)
                for r, add in zip(readers, recv):
                    add(r())
            elif v != "0":
                raise AssertionError(f"o_valid is {v} (not 0/1) at cycle {cycle}")
    valid_h.set_signal_val_int(dep, 0)
    wall = time.perf_counter() - wall0
    return _finish(dut, plan, name=name, planner=planner, seed=seed, idle=idle,
                   vectors=vectors, log=log, received=dict(zip(out_ports, received)),
                   in_cycles=in_cycles, out_cycles=out_cycles, cycle=cycle, idle_cycles=k,
                   wall=wall, window=1)


async def _play_windows(dut: SimHandleBase, plan: StreamPlan, window: Mapping[str, Any],
                        period_ns: int):
    """The plan through the window wrapper (:func:`cosim.stream.window_verilog`): the same
    cycles as :func:`play_stream` drives one by one (each operation after its idle gap,
    junk on the idle cycles, ``latency + 4`` drain cycles, then idle cycles up to a whole
    window), written ``k`` cycles at a time as one word at a falling edge; after ``k``
    cycles (one trigger) the ``k`` output slots are read as one word. The words are split
    into ports and cycles after the last window."""
    k = int(window["k"])
    in_l = [(p, int(w)) for p, w in window["in"]]
    out_l = [(p, int(w)) for p, w in window["out"]]
    if [p for p, _ in in_l] != list(plan.inputs) or [p for p, _ in out_l] != list(
            plan.outputs):
        raise RuntimeError(f"the window layout {window} does not match the plan's ports")
    # one slot string per distinct cycle content (MSB first: last port ... first port, valid)
    ops = ["".join(_bin(x, w) for x, w in zip(reversed(vals), reversed([w for _, w in in_l])))
           + "1" for vals in zip(*(plan.inputs[p] for p, _ in in_l))]
    junk = [[_bin(x, w) for x in plan.junk[p]] for p, w in in_l]
    idle_slots = ["".join(reversed(t)) + "0" for t in zip(*junk)]
    pick = plan.junk_pick.tolist()
    slots: list[str] = []
    in_cycles: list[int] = []
    kk = 0
    for i, g in enumerate(plan.gaps.tolist()):
        for _ in range(g):
            slots.append(idle_slots[pick[kk % len(pick)]])
            kk += 1
        in_cycles.append(len(slots))
        slots.append(ops[i])
    total = len(slots) + plan.latency + 4
    total += -total % k
    while len(slots) < total:
        slots.append(idle_slots[pick[kk % len(pick)]])
        kk += 1
    words = ["".join(reversed(slots[b:b + k])) for b in range(0, total, k)]
    del slots
    wo = 1 + sum(w for _, w in out_l)
    i_h = dut.i_win._handle
    o_h = dut.o_win._handle
    dep = 0  # _GPISetAction.DEPOSIT
    dut.rst.value = 1
    i_h.set_signal_val_binstr(dep, "0" * len(words[0]))
    fall = FallingEdge(dut.clk)
    for _ in range(3):
        await fall
    dut.rst.value = 0
    step = Timer(k * period_ns, unit="ns")
    put = i_h.set_signal_val_binstr
    get = o_h.get_signal_val_binstr
    got: list[str] = []
    add = got.append
    wall0 = time.perf_counter()
    for word in words:
        put(dep, word)
        await step
        add(get())
    wall = time.perf_counter() - wall0
    # split: window w, slot j (bits [j*wo, (j+1)*wo) of the word) is cycle w*k + j + 1
    received: dict[str, list] = {p: [] for p, _ in out_l}
    out_cycles: list[int] = []
    spans = []
    hi = wo - 1  # position in the slot string (MSB first): valid is the last character
    for p, w in out_l:
        spans.append((received[p].append, hi - w, hi))
        hi -= w
    for wi, word in enumerate(got):
        for j in range(k):
            s = word[(k - 1 - j) * wo:(k - j) * wo]
            v = s[-1]
            if v == "1":
                out_cycles.append(wi * k + j + 1)
                for app, a, b in spans:
                    app(s[a:b])
            elif v != "0":
                raise AssertionError(f"o_valid is {v} (not 0/1) at cycle {wi * k + j + 1}")
    return received, in_cycles, out_cycles, total, kk, wall


def _finish(dut, plan: StreamPlan, *, name: str, planner: str, seed: int, idle: float,
            vectors: int | None, log: logging.Logger, received: Mapping[str, list],
            in_cycles: list[int], out_cycles: list[int], cycle: int, idle_cycles: int,
            wall: float, window: int) -> dict:
    """Compare, report and record a played plan (both ways of playing it)."""
    n = plan.vectors
    k = idle_cycles
    out_ports = list(plan.outputs)
    received = [received[p] for p in out_ports]
    got = {p: [_word(s) for s in r] for p, r in zip(out_ports, received)}
    mismatches = compare(plan, got, in_cycles, out_cycles)
    for m in mismatches[:10]:
        log.error("%s: %s", name, m)
    result = {
        "vectors": min(len(r) for r in received) if received else 0,
        "expected": n,
        "mismatches": len(mismatches),
        "pending": max(0, n - len(out_cycles)),
        "cycles": cycle,
        "idle_cycles": k,
        "wall_s": round(wall, 4),
        "cycles_per_s": round(cycle / wall, 1) if wall > 0 else None,
        "window": window,
        "test_seed": seed,
        **plan.info,
    }
    log.info("%s: %d vectors, %d mismatches; %d cycles in %.2f s (%s cycles/s)", name,
             result["vectors"], len(mismatches), cycle, wall, result["cycles_per_s"])
    write_result(name, result)
    trace = os.environ.get("COSIM_TRACE_FILE", "").strip()
    if trace and not mismatches:
        save_trace(trace, planner_name=planner, unit=os.environ.get("COSIM_UNIT", dut._name),
                   vectors=vectors or n, seed=seed, idle=idle, plan=plan, received=got)
    assert not mismatches, (f"{name}: {len(mismatches)} mismatches in {n} vectors, first: "
                            f"{mismatches[0]}")
    return result


def _word(s: str) -> int | str:
    """A port's bit string as an integer, or the string itself when it has X or Z bits."""
    try:
        return int(s, 2)
    except ValueError:
        return s


async def run_stream(dut: SimHandleBase, *, name: str | None = None) -> dict:
    """The whole streaming testbench of ``dut``: the plan that :func:`cosim.runner.run_cosim`
    computed before starting the simulator (``COSIM_PLAN_FILE``: stimulus and expectations of
    the golden or ``COSIM_MUTANT`` model, :func:`cosim.stream.make_plan`), played by
    :func:`play_stream`. This process needs neither the golden model nor torch."""
    from .stream import load_plan

    # the unit's name, also when the toplevel is its window wrapper
    name = name or os.environ.get("COSIM_UNIT", "").strip() or dut._name
    log = logging.getLogger(f"cosim.{name}")
    path = os.environ.get("COSIM_PLAN_FILE", "").strip()
    if not path:
        raise RuntimeError("COSIM_PLAN_FILE is not set: a stream bench plays the plan that "
                           "cosim.runner.run_cosim computes (run it through run_cosim or "
                           "python -m cosim)")
    t0 = time.perf_counter()
    plan, meta = load_plan(path)
    if meta["mutant"]:
        log.warning("using MUTANT reference model %r: this run is expected to fail",
                    meta["mutant"])
    log.info("%s: %d vectors, latency %d, plan seed %d (planned in %.2f s, loaded in %.2f s); "
             "%s", name, plan.vectors, plan.latency, meta["seed"], plan.info.get("plan_s", 0),
             time.perf_counter() - t0,
             {k: v for k, v in plan.info.items() if k != "coverage"})
    return await play_stream(dut, plan, name=name, planner=meta["planner"], seed=meta["seed"],
                             idle=meta["idle"], vectors=meta["vectors"], log=log,
                             window=meta.get("window"))


def write_result(name: str, result: Mapping[str, Any]) -> None:
    """Merge ``{name: result}`` into the JSON file named by ``COSIM_RESULT_FILE`` (if set)."""
    target = os.environ.get("COSIM_RESULT_FILE", "").strip()
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = dict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def port_unsigned(handle) -> int:
    """Unsigned value of a port; X or Z fails the test (``to_unsigned``/``int`` raise on them,
    cheaper than ``is_resolvable`` on wide ports)."""
    value = handle.value
    try:
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
    except ValueError:
        raise AssertionError(f"{handle._name} is {value} (not 0/1)") from None
